"""The xp backend: numpy or cupy ufuncs only, any float dtype (the path of
cupy, float64 and installs without the C kernels).

The step functions work on slices of preallocated packed buffers (the rows
of one time step are contiguous), use only `xp` ufuncs with `out=` and
`xp.matmul`, and so run unchanged on numpy and cupy. Rows that have a
previous state are always the first `n_prev` rows of a step (sequences are
sorted by length); the others start from zeros.

Speed notes (the step loop is the sequential part, so it does the least work):
- The input projection `x_t @ Wx.T + b` of every step is computed beforehand
  in one product; a step adds the recurrent product and applies the gates.
- Sigmoid gates use sigmoid(x) = (tanh(x / 2) + 1) / 2, with the 1/2 folded
  into the weights of those gates (`gate_scale`), so one tanh call covers all
  gates of a step.
- Backward, every factor that does not depend on the incoming gradient (gate
  derivatives, products with saved activations) is computed for all steps at
  once by `*_factors` before the step loop; a backward step is then a few
  products, one matmul and the additions into the previous step.
"""
from typing import Dict, Tuple

from thinc.types import Floats2d

from ..cells import Cell
from ..workspace import WORKSPACE
from .base import (
    Backend, Backprop, Grads, Weights, gather_prev, once, recurrent_weights, take_grads, take_state,
)


def gate_scale(xp, cell: Cell, nH: int, dtype):
    """Per-row factor for Wx, Wh and b: 1/2 for sigmoid gates, 1 otherwise."""
    scale = xp.ones((cell.n_gates * nH,), dtype=dtype)
    scale[: cell.n_sigmoid * nH] = 0.5
    return scale


def _sigmoid_from_half(x) -> None:
    """x holds tanh(z / 2): turn it into sigmoid(z) in place."""
    x *= 0.5
    x += 0.5


def _dsigmoid(xp, y, out):
    """out = y * (1 - y)."""
    xp.multiply(y, y, out=out)
    xp.subtract(y, out, out=out)
    return out


def _dtanh(xp, y, out):
    """out = 1 - y ** 2."""
    xp.multiply(y, y, out=out)
    xp.subtract(1.0, out, out=out)
    return out


def _add_recurrent(xp, g, h_prev, Wh_T, scratch) -> None:
    n_prev = h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
        g[:n_prev] += scratch[:n_prev]


def backprop_recurrent(xp, dg, Wh, dh_prev, scratch) -> None:
    """dh_prev += dg[:n_prev] @ Wh."""
    n_prev = dh_prev.shape[0]
    if n_prev:
        xp.matmul(dg[:n_prev], Wh, out=scratch[:n_prev])
        dh_prev += scratch[:n_prev]


# --- Elman ------------------------------------------------------------------


def elman_forward(xp, g, h_prev, Wh_T, h, scratch) -> None:
    _add_recurrent(xp, g, h_prev, Wh_T, scratch)
    xp.tanh(g, out=h)


def elman_factors(xp, G, H, H_prev, state) -> Dict:
    return {"K": _dtanh(xp, H, xp.empty_like(H))}


def elman_backward(xp, dh, dg, Wh, dh_prev, scratch, K) -> None:
    xp.multiply(dh, K, out=dg)
    backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


# --- GRU --------------------------------------------------------------------


def gru_forward(xp, g, h_prev, Wh_T, h, scratch, rn, bh) -> None:
    H = h.shape[1]
    n_prev = h_prev.shape[0]
    if n_prev:
        rec = scratch[:n_prev]
        xp.matmul(h_prev, Wh_T, out=rec)
        g[:n_prev, : 2 * H] += rec[:, : 2 * H]
        xp.add(rec[:, 2 * H :], bh, out=rn[:n_prev])
    rn[n_prev:] = bh
    rz = g[:, : 2 * H]
    xp.tanh(rz, out=rz)
    _sigmoid_from_half(rz)
    r = g[:, :H]
    z = g[:, H : 2 * H]
    n = g[:, 2 * H :]
    # n = tanh(x_n + r * rn); h = n + z * (h_prev - n)
    xp.multiply(r, rn, out=h)
    n += h
    xp.tanh(n, out=n)
    xp.multiply(z, n, out=h)
    xp.subtract(n, h, out=h)
    if n_prev:
        zh = scratch[:n_prev, :H]
        xp.multiply(z[:n_prev], h_prev, out=zh)
        h[:n_prev] += zh


def gru_factors(xp, G, H, H_prev, state) -> Dict:
    nH = H.shape[1]
    r = G[:, :nH]
    z = G[:, nH : 2 * nH]
    n = G[:, 2 * nH :]
    tmp = xp.empty_like(H)
    # dz = dh * (h_prev - n) * z (1 - z)
    Kz = xp.subtract(H_prev, n)
    Kz *= _dsigmoid(xp, z, tmp)
    # dn = dh * (1 - z) * (1 - n^2)
    Kn = xp.subtract(1.0, z)
    Kn *= _dtanh(xp, n, tmp)
    # dr = dn * rn * r (1 - r)
    Kr = xp.multiply(state["rn"], _dsigmoid(xp, r, tmp))
    return {"Kz": Kz, "Kn": Kn, "Kr": Kr, "r": r, "z": z}


def gru_backward(xp, dh, dg, drec, Wh, dh_prev, scratch, Kz, Kn, Kr, r, z) -> None:
    """Writes dg[:, 2H:] = d x_n, and drec = d[x_r, x_z, rn] (dg[:, :2H] is
    copied from drec after the loop). Adds the recurrent gradient to dh_prev."""
    H = dh.shape[1]
    dn = dg[:, 2 * H :]
    xp.multiply(dh, Kn, out=dn)
    xp.multiply(dn, Kr, out=drec[:, :H])
    xp.multiply(dh, Kz, out=drec[:, H : 2 * H])
    xp.multiply(dn, r, out=drec[:, 2 * H :])
    n_prev = dh_prev.shape[0]
    if n_prev:
        backprop_recurrent(xp, drec, Wh, dh_prev, scratch)
        dz = scratch[:n_prev, :H]
        xp.multiply(dh[:n_prev], z[:n_prev], out=dz)
        dh_prev += dz


# --- LSTM -------------------------------------------------------------------


def lstm_forward(xp, g, h_prev, Wh_T, h, scratch, c_prev, c, tc) -> None:
    H = h.shape[1]
    n_prev = h_prev.shape[0]
    _add_recurrent(xp, g, h_prev, Wh_T, scratch)
    xp.tanh(g, out=g)
    _sigmoid_from_half(g[:, : 3 * H])
    i = g[:, :H]
    f = g[:, H : 2 * H]
    o = g[:, 2 * H : 3 * H]
    gg = g[:, 3 * H :]
    xp.multiply(i, gg, out=c)
    if n_prev:
        xp.multiply(f[:n_prev], c_prev, out=tc[:n_prev])
        c[:n_prev] += tc[:n_prev]
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)


def lstm_factors(xp, G, H, H_prev, state) -> Dict:
    nH = H.shape[1]
    i = G[:, :nH]
    f = G[:, nH : 2 * nH]
    o = G[:, 2 * nH : 3 * nH]
    gg = G[:, 3 * nH :]
    TC = state["tc"]
    tmp = xp.empty_like(H)
    K = xp.empty_like(G)
    # Gate derivatives: di = dc g i(1-i), df = dc c_prev f(1-f),
    # do = dh tanh(c) o(1-o), dg = dc i (1-g^2)
    xp.multiply(gg, _dsigmoid(xp, i, tmp), out=K[:, :nH])
    xp.multiply(state["C_prev"], _dsigmoid(xp, f, tmp), out=K[:, nH : 2 * nH])
    xp.multiply(TC, _dsigmoid(xp, o, tmp), out=K[:, 2 * nH : 3 * nH])
    xp.multiply(i, _dtanh(xp, gg, tmp), out=K[:, 3 * nH :])
    # dc += dh o (1 - tanh(c)^2)
    Kc = xp.multiply(o, _dtanh(xp, TC, tmp))
    return {"K": K, "Kc": Kc, "f": f}


def lstm_backward(xp, dh, dg, dc, dc_prev, Wh, dh_prev, scratch, K, Kc, f) -> None:
    """dh, dc: gradients of h and c (n, H); writes dg (n, 4H); adds into
    dh_prev and dc_prev (n_prev, H)."""
    H = dh.shape[1]
    tmp = scratch[: dh.shape[0], :H]
    xp.multiply(dh, Kc, out=tmp)
    dc += tmp
    xp.multiply(dc, K[:, :H], out=dg[:, :H])
    xp.multiply(dc, K[:, H : 2 * H], out=dg[:, H : 2 * H])
    xp.multiply(dh, K[:, 2 * H : 3 * H], out=dg[:, 2 * H : 3 * H])
    xp.multiply(dc, K[:, 3 * H :], out=dg[:, 3 * H :])
    n_prev = dh_prev.shape[0]
    if n_prev:
        tmp = scratch[:n_prev, :H]
        xp.multiply(dc[:n_prev], f[:n_prev], out=tmp)
        dc_prev += tmp
        backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


# --- The direction ----------------------------------------------------------

FACTORS = {"elman": elman_factors, "gru": gru_factors, "lstm": lstm_factors}


def forward(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d) -> Backprop:
    Wx, Wh, b, bh = w
    nH = Wh.shape[1]
    N, dtype = X.shape[0], X.dtype
    max_batch = max(sched.sizes, default=0)
    steps = sched.steps(direction)
    # Input projection of every step in one product, then the recurrence.
    scale = gate_scale(xp, cell, nH, dtype)
    G = xp.matmul(X, (Wx * scale[:, None]).T)
    G += b * scale
    W_rec = recurrent_weights(xp, Wh * scale[:, None])
    H = xp.empty((N, nH), dtype=dtype)
    scratch = xp.empty((max_batch, Wh.shape[0]), dtype=dtype)
    state = take_state(xp, cell, N, nH, dtype)
    for start, size, p_start, n_prev in steps:
        r = slice(start, start + size)
        p = slice(p_start, p_start + n_prev)
        if cell.name == "lstm":
            c, tc = state["c"], state["tc"]
            lstm_forward(xp, G[r], H[p], W_rec, H[r], scratch, c[p], c[r], tc[r])
        elif cell.name == "gru":
            gru_forward(xp, G[r], H[p], W_rec, H[r], scratch, state["rn"][r], bh)
        else:
            elman_forward(xp, G[r], H[p], W_rec, H[r], scratch)
    out[...] = H

    def backprop(dH: Floats2d) -> Tuple[Floats2d, Grads]:
        prev_rows = sched.prev_rows[direction]
        H_prev = gather_prev(xp, H, prev_rows)
        dG = WORKSPACE.take(xp, G.shape, dtype)
        grads = take_grads(xp, cell, G, nH)
        if cell.name == "lstm":
            state["C_prev"] = gather_prev(xp, state["c"], prev_rows)
        saved = FACTORS[cell.name](xp, G, H, H_prev, state)
        scratch = xp.empty((max_batch, nH), dtype=dtype)
        for start, size, p_start, n_prev in reversed(steps):
            r = slice(start, start + size)
            p = slice(p_start, p_start + n_prev)
            s = {key: value[r] for key, value in saved.items()}
            if cell.name == "lstm":
                dc = grads["dc"]
                lstm_backward(xp, dH[r], dG[r], dc[r], dc[p], Wh, dH[p], scratch, **s)
            elif cell.name == "gru":
                gru_backward(xp, dH[r], dG[r], grads["drec"][r], Wh, dH[p], scratch, **s)
            else:
                elman_backward(xp, dH[r], dG[r], Wh, dH[p], scratch, **s)
        # Weight gradients of all steps in one product each.
        out: Grads = {}
        dRec = dG
        if cell.name == "gru":
            # The n gate's recurrent part has its own gradient (drec).
            dRec = grads["drec"]
            dG[:, : 2 * nH] = dRec[:, : 2 * nH]
            out["bh"] = dRec[:, 2 * nH :].sum(axis=0)
        out["Wh"] = xp.matmul(dRec.T, H_prev)
        out["Wx"] = xp.matmul(dG.T, X)
        out["b"] = dG.sum(axis=0)
        dX = xp.matmul(dG, Wx)
        WORKSPACE.give(dG, H_prev, *state.values(), *grads.values())
        return dX, out

    return once(backprop)


def infer(xp, cell: Cell, w: Weights, X: Floats2d, sched, direction: str, out: Floats2d, block_rows: int) -> None:
    forward(xp, cell, w, X, sched, direction, out)


BACKEND = Backend("numpy", forward, infer, blas_in_inference=True)
