"""What every backend offers, and helpers they share.

A backend runs one layer of the RNN in one direction over the packed rows
of a batch (see `rnn.Schedule`): `forward` keeps what its backprop needs,
`infer` keeps nothing. Backprop takes the gradient of the direction's output
(consumed in place) and returns the input gradient and the parameter
gradients by name ("Wx", "Wh", "b" and the cell's extra parameters).
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple

from thinc.types import Floats1d, Floats2d

from ..cells import Cell
from ..workspace import WORKSPACE

Grads = Dict[str, Floats2d]
Backprop = Callable[[Floats2d], Tuple[Floats2d, Grads]]


class Weights(NamedTuple):
    """The parameters of one layer in one direction (`bh`: GRU only)."""

    Wx: Floats2d
    Wh: Floats2d
    b: Floats1d
    bh: Optional[Floats1d]


class Backend(NamedTuple):
    """One compute path. `forward(xp, cell, w, X, sched, direction, out)`
    writes the direction's output for the packed rows X (N, nI) into `out`
    (N, nH), which may be a column block of a wider array, and returns its
    backprop (callable once); `infer(...)` does the same keeping nothing.
    `blas_in_inference`: whether `infer` calls BLAS (then the layer holds
    BLAS to one thread while directions run in parallel)."""

    name: str
    forward: Callable[..., Backprop]
    infer: Callable[..., None]
    blas_in_inference: bool


def once(backprop: Backprop) -> Backprop:
    """`backprop`, refusing a second call: the saved state goes back to the
    workspace at the end of the first."""
    done = []

    def backprop_once(dH: Floats2d) -> Tuple[Floats2d, Grads]:
        if done:
            raise ValueError("RNN: the backprop of a forward pass can only be called once")
        done.append(True)
        return backprop(dH)

    return backprop_once


def take_state(xp, cell: Cell, N: int, nH: int, dtype) -> Dict[str, Floats2d]:
    """The cell's per-row state arrays (LSTM: c, tc; GRU: rn), from the
    workspace."""
    return {name: WORKSPACE.take(xp, (N, nH), dtype) for name in cell.state}


def take_grads(xp, cell: Cell, G: Floats2d, nH: int) -> Dict[str, Floats2d]:
    """Backprop's extra gradient buffers: LSTM dc (zeros), GRU drec."""
    if cell.name == "lstm":
        return {"dc": WORKSPACE.take(xp, (G.shape[0], nH), G.dtype, zero=True)}
    if cell.name == "gru":
        return {"drec": WORKSPACE.take(xp, G.shape, G.dtype)}
    return {}


def gather_prev(xp, H: Floats2d, prev_rows) -> Floats2d:
    """Previous state of each row, zeros where a sequence starts (where
    prev_rows holds N), in a workspace array."""
    N = H.shape[0]
    out = WORKSPACE.take(xp, H.shape, H.dtype)
    if N:
        xp.take(H, xp.minimum(prev_rows, N - 1), axis=0, out=out)
        out[prev_rows == N] = 0
    return out


def recurrent_weights(xp, Wh: Floats2d) -> Floats2d:
    """Wh.T (nH, G*nH) as a C-contiguous copy, for the per-step products
    h_prev @ Wh.T. OpenBLAS multiplies a few dozen rows by a transposed view
    at about half the speed of by a contiguous matrix (numpy float32, 1
    thread: 64x128 @ 128x512 55 vs 96 GFLOP/s), and the step products are
    most of a forward pass; the copy is made once per direction and pass."""
    return xp.ascontiguousarray(Wh.T)


def blis_matmul(A, B, out=None):
    """`numpy.matmul(A, B, out=out)` for 2-d float32 arrays, made by
    `blis.py.gemm` (the BLAS that thinc ships), to compare products
    (benchmarks/gemm.py). Transposed views go in as transpose flags."""
    from blis.py import gemm

    def operand(M):
        if M.flags.c_contiguous:
            return M, False
        if M.T.flags.c_contiguous:
            return M.T, True
        return M.copy(), False

    (A, trans1), (B, trans2) = operand(A), operand(B)
    if out is None:
        return gemm(A, B, trans1=trans1, trans2=trans2)
    # With out=, blis.py.gemm adds to it (beta=1) unless told otherwise.
    gemm(A, B, out=out, trans1=trans1, trans2=trans2, alpha=1.0, beta=0.0)
    return out
