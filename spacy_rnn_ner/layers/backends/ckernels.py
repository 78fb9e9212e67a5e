"""The C-kernels backend (numpy float32, any CPU): the input projection of
all steps is one BLAS product (in inference one per block of steps), then
per step one BLAS product for the recurrence and one fused C kernel for the
gates (`_cpu_kernels_impl.c`, unscaled weights: no tanh trick needed). Backward
mirrors it: per step a C gate kernel and a BLAS product, then the weight
gradients in one product each.

`MATMUL` is the product of the steps and of the weight and input
gradients: numpy's (OpenBLAS) by default; benchmarks/gemm.py sets blis's to
compare.
"""
from typing import Tuple

import numpy
from thinc.types import Floats2d

from .. import cells
from ..cells import Cell
from ..workspace import WORKSPACE
from .base import (
    Backend, Backprop, Grads, Weights, gather_prev, once, recurrent_weights, take_grads, take_state,
)

MATMUL = numpy.matmul


def _recurrent(h_prev, Wh_T, scratch) -> None:
    if h_prev.shape[0]:
        MATMUL(h_prev, Wh_T, out=scratch[: h_prev.shape[0]])


def _backprop_recurrent(dg, Wh, dh_prev, scratch) -> None:
    """dh_prev += dg[:n_prev] @ Wh."""
    n_prev = dh_prev.shape[0]
    if n_prev:
        MATMUL(dg[:n_prev], Wh, out=scratch[:n_prev])
        dh_prev += scratch[:n_prev]


def lstm_forward(g, h_prev, Wh_T, h, scratch, c_prev, c, tc) -> None:
    _recurrent(h_prev, Wh_T, scratch)
    cells._cpu_kernels.lstm_fwd(g, scratch, c_prev, c, tc, h, g.shape[0], h_prev.shape[0], h.shape[1])


def lstm_backward(dh, dg, Wh, dh_prev, scratch, g, c_prev, tc, dc, dc_prev) -> None:
    n, n_prev = dh.shape[0], dh_prev.shape[0]
    cells._cpu_kernels.lstm_bwd(dh, dc, g, c_prev, tc, dg, dc_prev, n, n_prev, dh.shape[1])
    _backprop_recurrent(dg, Wh, dh_prev, scratch)


def gru_forward(g, h_prev, Wh_T, h, scratch, rn, bh) -> None:
    _recurrent(h_prev, Wh_T, scratch)
    cells._cpu_kernels.gru_fwd(g, scratch, bh, h_prev, rn, h, g.shape[0], h_prev.shape[0], h.shape[1])


def gru_backward(dh, dg, drec, Wh, dh_prev, scratch, g, rn, h_prev) -> None:
    n, n_prev = dh.shape[0], dh_prev.shape[0]
    cells._cpu_kernels.gru_bwd(dh, g, rn, h_prev, dg, drec, dh_prev, n, n_prev, dh.shape[1])
    _backprop_recurrent(drec, Wh, dh_prev, scratch)


def elman_forward(g, h_prev, Wh_T, h, scratch) -> None:
    _recurrent(h_prev, Wh_T, scratch)
    cells._cpu_kernels.elman_fwd(g, scratch, h, g.shape[0], h_prev.shape[0], h.shape[1])


def elman_backward(dh, dg, Wh, dh_prev, scratch, h) -> None:
    cells._cpu_kernels.elman_bwd(dh, h, dg, dh.shape[0], dh.shape[1])
    _backprop_recurrent(dg, Wh, dh_prev, scratch)


def _step_forward(cell: Cell, g, h_prev, Wh_T, h, scratch, c_prev, c, tc, rn, bh) -> None:
    """One step of any cell (the arguments a cell does not use are None)."""
    if cell.name == "lstm":
        lstm_forward(g, h_prev, Wh_T, h, scratch, c_prev, c, tc)
    elif cell.name == "gru":
        gru_forward(g, h_prev, Wh_T, h, scratch, rn, bh)
    else:
        elman_forward(g, h_prev, Wh_T, h, scratch)


def forward(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d) -> Backprop:
    Wx, Wh, b, bh = w
    nH = Wh.shape[1]
    X = xp.ascontiguousarray(X)
    N, dtype = X.shape[0], X.dtype
    max_batch = max(sched.sizes, default=0)
    steps = sched.steps(direction)
    G = WORKSPACE.take(xp, (N, Wh.shape[0]), dtype)
    MATMUL(X, Wx.T, out=G)
    G += b
    H = xp.empty((N, nH), dtype=dtype)
    Wh_T = recurrent_weights(xp, Wh)
    scratch = xp.empty((max_batch, Wh.shape[0]), dtype=dtype)
    state = take_state(xp, cell, N, nH, dtype)
    c, tc, rn = state.get("c"), state.get("tc"), state.get("rn")
    for start, size, p_start, n_prev in steps:
        r = slice(start, start + size)
        p = slice(p_start, p_start + n_prev)
        _step_forward(
            cell, G[r], H[p], Wh_T, H[r], scratch,
            c_prev=None if c is None else c[p], c=None if c is None else c[r],
            tc=None if tc is None else tc[r], rn=None if rn is None else rn[r], bh=bh,
        )
    out[...] = H

    def backprop(dH: Floats2d) -> Tuple[Floats2d, Grads]:
        return backward(xp, cell, w, X, G, H, state, sched, direction, dH)

    return once(backprop)


def backward(
    xp, cell: Cell, w: Weights, X: Floats2d, G: Floats2d, H: Floats2d, state: Grads, sched,
    direction: str, dH: Floats2d,
) -> Tuple[Floats2d, Grads]:
    """Backprop through one direction from what `forward` (or the AVX-512
    backend's `run_steps`, which leaves the same G and state) kept: X and H
    with contiguous rows, G the gate activations. dH is consumed in place;
    G, state and the gradient buffers go back to the workspace."""
    Wx, Wh = w.Wx, w.Wh
    nH = Wh.shape[1]
    dtype = X.dtype
    max_batch = max(sched.sizes, default=0)
    steps = sched.steps(direction)
    c, tc, rn = state.get("c"), state.get("tc"), state.get("rn")
    prev_rows = sched.prev_rows[direction]
    H_prev = gather_prev(xp, H, prev_rows)
    dG = WORKSPACE.take(xp, G.shape, dtype)
    grads = take_grads(xp, cell, G, nH)
    scratch = xp.empty((max_batch, nH), dtype=dtype)
    for start, size, p_start, n_prev in reversed(steps):
        r = slice(start, start + size)
        p = slice(p_start, p_start + n_prev)
        if cell.name == "lstm":
            dc = grads["dc"]
            lstm_backward(dH[r], dG[r], Wh, dH[p], scratch, G[r], c[p], tc[r], dc[r], dc[p])
        elif cell.name == "gru":
            gru_backward(dH[r], dG[r], grads["drec"][r], Wh, dH[p], scratch, G[r], rn[r], H[p])
        else:
            elman_backward(dH[r], dG[r], Wh, dH[p], scratch, H[r])
    # Weight gradients of all steps in one product each. The GRU's n gate
    # has its own recurrent gradient (drec); the C kernels write the r and
    # z gates' into both dG and drec.
    out: Grads = {}
    dRec = dG
    if cell.name == "gru":
        dRec = grads["drec"]
        out["bh"] = dRec[:, 2 * nH :].sum(axis=0)
    out["Wh"] = MATMUL(dRec.T, H_prev)
    out["Wx"] = MATMUL(dG.T, X)
    out["b"] = dG.sum(axis=0)
    dX = MATMUL(dG, Wx)
    WORKSPACE.give(G, dG, H_prev, *state.values(), *grads.values())
    return dX, out


def infer(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d, block_rows: int) -> None:
    """`forward`'s output, keeping nothing for backprop. The input
    projection is made `block_rows` rows (consecutive steps) at a time, and
    the per-step state that only backprop reads (gate activations, LSTM cell
    and tanh(cell), GRU reset product) lives in buffers of one step: working
    memory is O(block + batch) rows instead of O(N) rows of 4-6 hidden
    widths, no page faults on fresh multi-MB buffers, and the block of the
    projection is still in cache when its steps read it."""
    Wx, Wh, b, bh = w
    nG, nH = Wh.shape
    X = xp.ascontiguousarray(X)
    N, dtype = X.shape[0], X.dtype
    H = xp.empty((N, nH), dtype=dtype)
    Wh_T = recurrent_weights(xp, Wh)
    # Blocks of a few hundred rows also multiply faster by a contiguous Wx.T
    # (3-12% of an inference pass, benchmarks/speed.py shapes).
    Wx_T = xp.ascontiguousarray(Wx.T)
    max_batch = max(sched.sizes, default=0)
    block_rows = max(block_rows, max_batch)
    G = xp.empty((min(N, block_rows), nG), dtype=dtype)
    scratch = xp.empty((max_batch, nG), dtype=dtype)
    # LSTM: the previous step's cell and this step's; the rows with a
    # previous state are the first n_prev rows of the previous step.
    cell_state = [xp.empty((max_batch, nH), dtype=dtype) for _ in range(2)]
    spare = xp.empty((max_batch, nH), dtype=dtype)
    steps = sched.steps(direction)
    i = 0
    while i < len(steps):
        # Steps i..j-1 in reading order cover one contiguous run of rows.
        j, rows = i, 0
        while j < len(steps) and rows + steps[j][1] <= block_rows:
            rows += steps[j][1]
            j += 1
        lo = min(steps[i][0], steps[j - 1][0])
        block = G[:rows]
        MATMUL(X[lo : lo + rows], Wx_T, out=block)
        block += b
        for start, size, p_start, n_prev in steps[i:j]:
            c_prev, c = cell_state[0][:n_prev], cell_state[1][:size]
            _step_forward(
                cell, block[start - lo : start - lo + size], H[p_start : p_start + n_prev],
                Wh_T, H[start : start + size], scratch,
                c_prev=c_prev, c=c, tc=spare[:size], rn=spare[:size], bh=bh,
            )
            if cell.name == "lstm":
                cell_state.reverse()
        i = j
    out[...] = H


BACKEND = Backend("c", forward, infer, blas_in_inference=True)
