"""The AVX-512 backend (numpy float32 on CPUs with AVX-512F): one C call
runs all steps of a direction (`cells.run_steps`); each step's kernel makes
the input and recurrent products and applies the gates while the products
are still in registers. Backprop runs all steps in one C call too
(`cells.run_back_steps`, recurrent products with weights packed once per
pass, `cells.PackedMatrix`), then one kernel makes the weight gradients
(`cells.weight_gradient`) and a packed product the input gradient.

Switches for benchmarks/gemm.py, which measures what the hand-written
products gain: `PRODUCTS` picks the weight- and input-gradient products of
backprop, "packed" (the kernels above, the default) or a function
`matmul(A, B)` (numpy's, blis's); `PACKED_BACKWARD = False` runs backprop
as the C-kernels backend does (per-step gate kernels and its `MATMUL`), so
that no packed product is left.
"""
from typing import Tuple

from thinc.types import Floats2d

from .. import cells
from . import ckernels
from ..cells import Cell
from ..workspace import WORKSPACE
from .base import Backend, Backprop, Grads, Weights, gather_prev, once, take_grads, take_state

PRODUCTS = "packed"
PACKED_BACKWARD = True


def _weight_and_input_grads(xp, cell: Cell, w: Weights, X, H, dG, dRec, prev_rows) -> Tuple[Floats2d, Grads]:
    """dWx = dG.T @ X, dWh = dRec.T @ H_prev and dX = dG @ Wx."""
    nI = X.shape[1]
    out: Grads = {}
    if PRODUCTS != "packed":
        H_prev = gather_prev(xp, H, prev_rows)
        out["Wh"] = PRODUCTS(dRec.T, H_prev)
        out["Wx"] = PRODUCTS(dG.T, X)
        WORKSPACE.give(H_prev)
        return PRODUCTS(dG, w.Wx), out
    if dRec is dG:
        dW = cells.weight_gradient(xp, dG, X, H, prev_rows)
        out["Wx"] = dW[:, :nI]
        out["Wh"] = dW[:, nI:]
    else:
        out["Wh"] = cells.weight_gradient(xp, dRec, None, H, prev_rows)
        out["Wx"] = cells.weight_gradient(xp, dG, X, None, None)
    Wx = cells.PackedMatrix(xp, w.Wx)
    dX = xp.empty((dG.shape[0], Wx.N), dtype=dG.dtype)
    Wx.matmul(xp.ascontiguousarray(dG), dX, accumulate=False)
    return dX, out


def forward(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d) -> Backprop:
    Wx, Wh, b, bh = w
    nH = Wh.shape[1]
    X = xp.ascontiguousarray(X)
    N, dtype = X.shape[0], X.dtype
    G = WORKSPACE.take(xp, (N, Wh.shape[0]), dtype)
    state = take_state(xp, cell, N, nH, dtype)
    saved, tc = state.get("c", state.get("rn")), state.get("tc")
    steps = sched.step_array(direction)
    # The steps write the output into `out` directly.
    H = out
    cells.run_steps(cell.name, X, H, cells.step_pack(xp, cell.name, Wx, Wh), b, bh, steps, G, saved, tc)

    def backprop(dH: Floats2d) -> Tuple[Floats2d, Grads]:
        if not PACKED_BACKWARD:
            # The C gate kernels read contiguous rows of H.
            Hc = xp.ascontiguousarray(H)
            return ckernels.backward(xp, cell, w, X, G, Hc, state, sched, direction, dH)
        dG = WORKSPACE.take(xp, G.shape, dtype)
        grads = take_grads(xp, cell, G, nH)
        cells.run_back_steps(
            cell.name, steps, dH, dG, cells.PackedMatrix(xp, Wh), G, saved, tc, H,
            grads.get("drec"), grads.get("dc"),
        )
        # The n gate of the GRU has its own recurrent gradient (drec).
        dRec = grads["drec"] if cell.name == "gru" else dG
        dX, out = _weight_and_input_grads(xp, cell, w, X, H, dG, dRec, sched.prev_rows[direction])
        if cell.name == "gru":
            out["bh"] = dRec[:, 2 * nH :].sum(axis=0)
        out["b"] = dG.sum(axis=0)
        WORKSPACE.give(G, dG, *state.values(), *grads.values())
        return dX, out

    return once(backprop)


def infer(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d, block_rows: int) -> None:
    """All steps in one C call, keeping only the LSTM's cell state."""
    Wx, Wh, b, bh = w
    X = xp.ascontiguousarray(X)
    cell_state = WORKSPACE.take(xp, (X.shape[0], Wh.shape[1]), X.dtype) if cell.name == "lstm" else None
    packed = cells.step_pack(xp, cell.name, Wx, Wh)
    cells.run_steps(cell.name, X, out, packed, b, bh, sched.step_array(direction), None, cell_state, None)
    WORKSPACE.give(cell_state)


BACKEND = Backend("avx512", forward, infer, blas_in_inference=False)
