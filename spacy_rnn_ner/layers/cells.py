"""Elman, GRU and LSTM cells: one time step forward and one step backward.

The functions work on slices of preallocated packed buffers (rows of one time
step are contiguous, see `rnn.py`), use only `xp` ufuncs with `out=` and
`xp.matmul`, and so run unchanged on numpy and cupy. The input projection
`x_t @ Wx.T + b` of every step is computed beforehand in one product; a step
adds the recurrent product of the rows that have a previous state (`n_prev`,
always the first rows, because sequences are sorted by length) and applies the
gate arithmetic in place. Rows without a previous state start from zeros.

Gate layouts (columns of the fused gate buffer, H = hidden width):
- elman: [z]; h = tanh(z)
- gru:   [r, z, n]; n = tanh(x_n + r * (h_prev @ Wh_n.T + bh)); h = (1 - z) n + z h_prev
- lstm:  [i, f, o, g]; c = f c_prev + i g; h = o tanh(c)
"""
from typing import Dict

N_GATES: Dict[str, int] = {"elman": 1, "gru": 3, "lstm": 4}


def _sigmoid_(xp, x) -> None:
    """In-place logistic function through tanh (one transcendental, no overflow)."""
    x *= 0.5
    xp.tanh(x, out=x)
    x *= 0.5
    x += 0.5


def _mul_dsigmoid_(xp, d, y, tmp) -> None:
    """d *= y * (1 - y), for y = sigmoid(x)."""
    xp.multiply(y, y, out=tmp)
    xp.subtract(y, tmp, out=tmp)
    d *= tmp


def _mul_dtanh_(xp, d, y, tmp) -> None:
    """d *= 1 - y ** 2, for y = tanh(x)."""
    xp.multiply(y, y, out=tmp)
    xp.subtract(1.0, tmp, out=tmp)
    d *= tmp


# --- Elman ------------------------------------------------------------------
# Stored per step: g (pre-activation, overwritten by nothing), h.


def elman_forward(xp, g, h_prev, Wh_T, h, scratch, **_) -> None:
    n_prev = h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
        g[:n_prev] += scratch[:n_prev]
    xp.tanh(g, out=h)


def elman_backward(xp, dh, h, dg, Wh, dh_prev, tmp, **_) -> None:
    """dh: gradient of h (n, H); writes dg (n, H); adds into dh_prev (n_prev, H)."""
    tmp = tmp[: dh.shape[0]]
    dg[...] = dh
    _mul_dtanh_(xp, dg, h, tmp)
    n_prev = dh_prev.shape[0]
    if n_prev:
        dh_prev += xp.matmul(dg[:n_prev], Wh)


# --- GRU --------------------------------------------------------------------
# Stored per step: g = [r, z, n] activations, rn = h_prev @ Wh_n.T + bh, h.


def gru_forward(xp, g, h_prev, Wh_T, h, scratch, rn, bh, **_) -> None:
    H = h.shape[1]
    n_prev = h_prev.shape[0]
    if n_prev:
        rec = scratch[:n_prev]
        xp.matmul(h_prev, Wh_T, out=rec)
        g[:n_prev, : 2 * H] += rec[:, : 2 * H]
        rn[:n_prev] = rec[:, 2 * H :]
    rn[n_prev:] = 0.0
    rn += bh
    _sigmoid_(xp, g[:, : 2 * H])
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
        xp.multiply(z[:n_prev], h_prev, out=scratch[:n_prev, :H])
        h[:n_prev] += scratch[:n_prev, :H]


def gru_backward(xp, dh, h_prev, g, rn, dg, drec, Wh, dh_prev, tmp, **_) -> None:
    """Writes dg = d[x_r, x_z, x_n] and drec[:, 2H:] = d rn; drec[:, :2H] is
    filled from dg after the loop. Adds the recurrent gradient into dh_prev."""
    H = dh.shape[1]
    n_prev = h_prev.shape[0]
    tmp = tmp[: dh.shape[0]]
    r = g[:, :H]
    z = g[:, H : 2 * H]
    n = g[:, 2 * H :]
    dr = dg[:, :H]
    dz = dg[:, H : 2 * H]
    dn = dg[:, 2 * H :]
    drn = drec[:, 2 * H :]
    # dz = dh * (h_prev - n)
    xp.negative(n, out=dz)
    if n_prev:
        dz[:n_prev] += h_prev
    dz *= dh
    _mul_dsigmoid_(xp, dz, z, tmp)
    # dn = dh * (1 - z) * (1 - n^2)
    xp.subtract(1.0, z, out=dn)
    dn *= dh
    _mul_dtanh_(xp, dn, n, tmp)
    # d rn = dn * r ; dr = dn * rn * r (1 - r)
    xp.multiply(dn, r, out=drn)
    xp.multiply(dn, rn, out=dr)
    _mul_dsigmoid_(xp, dr, r, tmp)
    if n_prev:
        drec[:n_prev, : 2 * H] = dg[:n_prev, : 2 * H]
        dh_prev += xp.matmul(drec[:n_prev], Wh)
        xp.multiply(dh[:n_prev], z[:n_prev], out=tmp[:n_prev])
        dh_prev += tmp[:n_prev]


# --- LSTM -------------------------------------------------------------------
# Stored per step: g = [i, f, o, g] activations, c, tc = tanh(c), h.


def lstm_forward(xp, g, h_prev, Wh_T, h, scratch, c_prev, c, tc, **_) -> None:
    H = h.shape[1]
    n_prev = h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
        g[:n_prev] += scratch[:n_prev]
    _sigmoid_(xp, g[:, : 3 * H])
    xp.tanh(g[:, 3 * H :], out=g[:, 3 * H :])
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


def lstm_backward(
    xp, dh, g, c_prev, tc, dg, dc, dc_prev, Wh, dh_prev, tmp, **_
) -> None:
    """dh, dc: gradients of h and c (n, H); writes dg (n, 4H); adds into
    dh_prev and dc_prev (n_prev, H)."""
    H = dh.shape[1]
    n_prev = dh_prev.shape[0]
    tmp = tmp[: dh.shape[0]]
    i = g[:, :H]
    f = g[:, H : 2 * H]
    o = g[:, 2 * H : 3 * H]
    gg = g[:, 3 * H :]
    di = dg[:, :H]
    df = dg[:, H : 2 * H]
    do = dg[:, 2 * H : 3 * H]
    dgg = dg[:, 3 * H :]
    # do = dh * tanh(c) ; dc += dh * o * (1 - tanh(c)^2)
    xp.multiply(dh, tc, out=do)
    _mul_dsigmoid_(xp, do, o, tmp)
    xp.multiply(dh, o, out=dgg)
    _mul_dtanh_(xp, dgg, tc, tmp)
    dc += dgg
    # di = dc * g ; dg = dc * i ; df = dc * c_prev ; dc_prev += dc * f
    xp.multiply(dc, gg, out=di)
    _mul_dsigmoid_(xp, di, i, tmp)
    xp.multiply(dc, i, out=dgg)
    _mul_dtanh_(xp, dgg, gg, tmp)
    if n_prev:
        xp.multiply(dc[:n_prev], c_prev, out=df[:n_prev])
        _mul_dsigmoid_(xp, df[:n_prev], f[:n_prev], tmp[:n_prev])
        xp.multiply(dc[:n_prev], f[:n_prev], out=tmp[:n_prev])
        dc_prev += tmp[:n_prev]
        dh_prev += xp.matmul(dg[:n_prev], Wh)
    df[n_prev:] = 0.0
