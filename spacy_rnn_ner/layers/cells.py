"""Elman, GRU and LSTM cells: one time step forward, one step backward.

The functions work on slices of preallocated packed buffers (the rows of one
time step are contiguous, see `rnn.py`), use only `xp` ufuncs with `out=` and
`xp.matmul`, and so run unchanged on numpy and cupy. Rows that have a previous
state are always the first `n_prev` rows of a step (sequences are sorted by
length); the others start from zeros.

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

Gate layouts (columns of the fused gate buffer, H = hidden width):
- elman: [z]; h = tanh(z)
- gru:   [r, z, n]; n = tanh(x_n + r * (h_prev @ Wh_n.T + bh)); h = (1 - z) n + z h_prev
- lstm:  [i, f, o, g]; c = f c_prev + i g; h = o tanh(c)
"""
import os
import sys
import warnings
from typing import Dict, Optional, Tuple

import numpy

N_GATES: Dict[str, int] = {"elman": 1, "gru": 3, "lstm": 4}
# Number of leading gate blocks that are sigmoids.
N_SIGMOID: Dict[str, int] = {"elman": 0, "gru": 2, "lstm": 3}


def gate_scale(xp, cell: str, nH: int, dtype):
    """Per-row factor for Wx, Wh and b: 1/2 for sigmoid gates, 1 otherwise."""
    scale = xp.ones((N_GATES[cell] * nH,), dtype=dtype)
    scale[: N_SIGMOID[cell] * nH] = 0.5
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


def _backprop_recurrent(xp, dg, Wh, dh_prev, scratch) -> None:
    """dh_prev += dg[:n_prev] @ Wh (Wh an array or a `PackedMatrix`)."""
    n_prev = dh_prev.shape[0]
    if not n_prev:
        return
    if isinstance(Wh, PackedMatrix):
        Wh.matmul(dg[:n_prev], dh_prev, accumulate=True)
    else:
        xp.matmul(dg[:n_prev], Wh, out=scratch[:n_prev])
        dh_prev += scratch[:n_prev]


def matmul(xp, A, B, out=None):
    """A @ B for B an array or a `PackedMatrix` (see `weights_for_products`)."""
    if not isinstance(B, PackedMatrix):
        return xp.matmul(A, B, out=out)
    if out is None:
        out = xp.empty((A.shape[0], B.N), dtype=A.dtype)
    B.matmul(xp.ascontiguousarray(A), out, accumulate=False)
    return out


# --- Elman ------------------------------------------------------------------


def elman_forward(xp, g, h_prev, Wh_T, h, scratch, **_) -> None:
    _add_recurrent(xp, g, h_prev, Wh_T, scratch)
    xp.tanh(g, out=h)


def elman_factors(xp, G, H, H_prev, state) -> Dict:
    return {"K": _dtanh(xp, H, xp.empty_like(H))}


def elman_backward(xp, dh, dg, Wh, dh_prev, scratch, K, **_) -> None:
    xp.multiply(dh, K, out=dg)
    _backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


# --- GRU --------------------------------------------------------------------


def gru_forward(xp, g, h_prev, Wh_T, h, scratch, rn, bh, **_) -> None:
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


def gru_backward(
    xp, dh, dg, drec, Wh, dh_prev, scratch, Kz, Kn, Kr, r, z, **_
) -> None:
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
        _backprop_recurrent(xp, drec, Wh, dh_prev, scratch)
        dz = scratch[:n_prev, :H]
        xp.multiply(dh[:n_prev], z[:n_prev], out=dz)
        dh_prev += dz


# --- LSTM -------------------------------------------------------------------


def lstm_forward(xp, g, h_prev, Wh_T, h, scratch, c_prev, c, tc, **_) -> None:
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


def lstm_backward(
    xp, dh, dg, dc, dc_prev, Wh, dh_prev, scratch, K, Kc, f, **_
) -> None:
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
        _backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


# --- Fused C kernels (numpy, float32) ---------------------------------------
# Same buffers and layouts as above, but the gates of a step are computed in
# one pass by `_cpu_kernels.c`, with unscaled weights (no tanh trick needed).
# On CPUs with AVX-512F the kernels also make the products (`run_steps`,
# `PackedMatrix`), beating numpy's matmul on the small per-step products.

class KernelsWarning(UserWarning):
    """The RNN layer runs without its C kernels (the slower numpy path).
    Silence with `warnings.filterwarnings("ignore", category=KernelsWarning)`."""


# Set to 0 to run the layer without the C kernels (the numpy path), e.g. to
# test that path; nothing is warned then.
KERNELS_ENV = "SPACY_RNN_NER_KERNELS"
HOW_TO_BUILD = (
    "install a C compiler and reinstall (pip install --force-reinstall --no-deps "
    "spacy-rnn-ner, or pip install -e . in a checkout)"
)


def _local_kernels() -> Optional[str]:
    """The file of the kernels built next to this module, if any."""
    from importlib.machinery import EXTENSION_SUFFIXES

    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in EXTENSION_SUFFIXES:
        if os.path.exists(os.path.join(here, "_cpu_kernels" + suffix)):
            return os.path.join(here, "_cpu_kernels" + suffix)
    return None


def _installed_kernels() -> Optional[str]:
    """Built kernels of another copy of this package on sys.path, if any (a
    checkout shadowing its `pip install .`)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(os.path.join(entry or ".", "spacy_rnn_ner", "layers"))
        if folder == here:
            continue
        for suffix in EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_cpu_kernels" + suffix)
            if os.path.exists(path):
                return path
    return None


def _import_kernels():
    """The C kernels module, or None (then a `KernelsWarning` says why)."""
    if os.environ.get(KERNELS_ENV, "1") == "0":
        return None, f"disabled by {KERNELS_ENV}=0"
    try:
        from . import _cpu_kernels as module
    except ImportError as error:
        here = os.path.dirname(os.path.abspath(__file__))
        built = _local_kernels()
        installed = _installed_kernels()
        if built:
            reason = f"{built} failed to load ({error})"
        elif installed:
            reason = (
                f"the source tree {here} shadows the installed package, which has them "
                f"({installed}); run from another folder or use pip install -e ."
            )
        else:
            reason = f"not built; {HOW_TO_BUILD}"
        warnings.warn(
            f"spacy-rnn-ner: C kernels unavailable, the RNN layer runs on the slower numpy "
            f"path: {reason}",
            KernelsWarning,
            stacklevel=3,
        )
        return None, reason
    return module, ""


_cpu_kernels, _KERNELS_MISSING = _import_kernels()


def kernels_available(xp, dtype) -> bool:
    """Whether the fused C kernels can run these arrays."""
    return _cpu_kernels is not None and xp is numpy and dtype == numpy.float32


# Whether the layer may use the AVX-512 kernels that make their own matrix
# products (`run_steps`, `PackedMatrix`); tests switch it off to compare.
USE_PACKED = True


def packed_available(xp, dtype) -> bool:
    """Whether the AVX-512 kernels (whole steps, packed products) can run
    these arrays on this CPU."""
    return (
        USE_PACKED
        and kernels_available(xp, dtype)
        and bool(getattr(_cpu_kernels, "HAS_PACKED", 0))
    )


class PackedMatrix:
    """A matrix B (K, N) in the panel layout of `_cpu_kernels.gemm_packed`,
    whose products with small batches of rows beat numpy's matmul (which
    repacks B on every call). Pack once per pass, use for every step."""

    def __init__(self, xp, B):
        B = xp.ascontiguousarray(B)
        self.K, self.N = B.shape
        self.data = xp.empty(((self.N + 63) // 64 * self.K * 64,), dtype=B.dtype)
        _cpu_kernels.pack_b(B, self.data, self.K, self.N)

    def matmul(self, A, out, accumulate: bool) -> None:
        """out = A @ B, or out += A @ B; A (M, K) and out (M, N) C-contiguous."""
        _cpu_kernels.gemm_packed(A, self.data, out, A.shape[0], self.K, self.N, accumulate)


def weights_for_products(xp, W):
    """W for `matmul`: a `PackedMatrix` where this CPU allows, else the
    array. (For the input gradient dG @ Wx too, packing included, the packed
    product measured 1.10-1.16x numpy's on the benchmark's shapes.)"""
    return PackedMatrix(xp, W) if packed_available(xp, W.dtype) else W


# Per cell: gates, and hidden units per panel of the packed step weights
# (one AVX-512 register holds 16 units of one gate).
STEP_PANELS: Dict[str, Tuple[int, int]] = {"elman": (1, 64), "gru": (3, 16), "lstm": (4, 16)}


def step_pack(xp, cell: str, Wx, Wh):
    """[Wx | Wh] in the panel layout of the whole-step kernels (made once
    per forward pass: packing costs less than one step)."""
    n_gates, units = STEP_PANELS[cell]
    nH, nI = Wh.shape[1], Wx.shape[1]
    packed = xp.empty((-(-nH // units) * (nI + nH) * n_gates * units,), dtype=Wh.dtype)
    _cpu_kernels.step_pack(
        xp.ascontiguousarray(Wx), xp.ascontiguousarray(Wh), packed, nI, nH, n_gates, units
    )
    return packed


def _cell_code(cell: str) -> int:
    """The cell as the C bindings take it (their `Cell` enum)."""
    return getattr(_cpu_kernels, f"CELL_{cell.upper()}")


def run_back_steps(cell: str, steps, dH, dG, Wh: "PackedMatrix", G, state, tc, H, drec, dc) -> None:
    """Backprop through all steps of one direction in one C call (AVX-512),
    last step first: each step's gate kernel (as `*_backward_c`), then
    dh_prev += dG_t @ Wh (GRU: drec_t). dH (N, nH) holds the output
    gradients and receives the previous states' ones; dG (N, gates * nH) the
    gate gradients. G, state (LSTM cell / GRU rn) and tc as `run_steps` left
    them; H: the outputs (GRU, Elman), rows may be apart (a column block);
    drec (GRU) and dc (LSTM, zeros) receive gradients. Arguments a cell does
    not read may be None."""
    _cpu_kernels.run_back_steps(
        _cell_code(cell), steps, dH, dG, Wh.data, G, state, tc, H, drec, dc,
        dH.shape[0], dH.shape[1],
    )


def weight_gradient(xp, dG, X, H, prev_rows):
    """dG.T @ [X | H_prev] (AVX-512), H_prev[i] = H[prev_rows[i]] or zeros
    where prev_rows[i] == N, without building [X | H_prev]: the rows are
    gathered while the kernel packs them. X or H may be None (left out). dG
    (N, M), X (N, nI) and H (N, nH) need contiguous rows only; returns a new
    (M, nI + nH) array."""
    width = (0 if X is None else X.shape[1]) + (0 if H is None else H.shape[1])
    out = xp.empty((dG.shape[1], width), dtype=dG.dtype)
    _cpu_kernels.wgrad(dG, X, H, prev_rows, out, False)
    return out


def run_steps(cell: str, X, H, W_packed, b, bh, steps, G, state, tc) -> None:
    """All steps of one direction with whole-step kernels (AVX-512): each
    step's kernel computes x @ Wx.T + h_prev @ Wh.T + b and the gates, the
    products never leaving registers. X (N, nI) in, H (N, nH) out; `steps`
    from `Schedule.step_array`. `state` (N, nH) holds the LSTM cell (always)
    or the GRU's rn (training). Training passes G (N, gates * nH), which
    receives the gate activations as `*_forward_c` leaves them, and for the
    LSTM tc = tanh(cell); inference passes None for both."""
    _cpu_kernels.run_steps(
        _cell_code(cell), X, H, W_packed, b, bh, steps, G, state, tc,
        X.shape[0], X.shape[1], H.shape[1],
    )


def lstm_forward_c(xp, g, h_prev, Wh_T, h, scratch, c_prev, c, tc, **_) -> None:
    n, n_prev = g.shape[0], h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
    _cpu_kernels.lstm_fwd(g, scratch, c_prev, c, tc, h, n, n_prev, h.shape[1])


def lstm_backward_c(xp, dh, dg, Wh, dh_prev, scratch, g, c_prev, tc, dc, dc_prev, **_) -> None:
    n, n_prev = dh.shape[0], dh_prev.shape[0]
    _cpu_kernels.lstm_bwd(dh, dc, g, c_prev, tc, dg, dc_prev, n, n_prev, dh.shape[1])
    _backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


def gru_forward_c(xp, g, h_prev, Wh_T, h, scratch, rn, bh, **_) -> None:
    n, n_prev = g.shape[0], h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
    _cpu_kernels.gru_fwd(g, scratch, bh, h_prev, rn, h, n, n_prev, h.shape[1])


def gru_backward_c(xp, dh, dg, drec, Wh, dh_prev, scratch, g, rn, h_prev, **_) -> None:
    n, n_prev = dh.shape[0], dh_prev.shape[0]
    _cpu_kernels.gru_bwd(dh, g, rn, h_prev, dg, drec, dh_prev, n, n_prev, dh.shape[1])
    _backprop_recurrent(xp, drec, Wh, dh_prev, scratch)


def elman_forward_c(xp, g, h_prev, Wh_T, h, scratch, **_) -> None:
    n, n_prev = g.shape[0], h_prev.shape[0]
    if n_prev:
        xp.matmul(h_prev, Wh_T, out=scratch[:n_prev])
    _cpu_kernels.elman_fwd(g, scratch, h, n, n_prev, h.shape[1])


def elman_backward_c(xp, dh, dg, Wh, dh_prev, scratch, h, **_) -> None:
    _cpu_kernels.elman_bwd(dh, h, dg, dh.shape[0], dh.shape[1])
    _backprop_recurrent(xp, dg, Wh, dh_prev, scratch)


def backend_info() -> Dict[str, Optional[str]]:
    """Which compute path the RNN layer takes for numpy float32 input on this
    machine (cupy and other dtypes always take the xp-ufunc path): `path` is
    "avx512" (C kernels with whole-step AVX-512F kernels), "c" (C gate
    kernels with numpy's matmul) or "numpy" (no kernels: slower); `detail`
    says why, `kernels` is the extension's file or None."""
    if _cpu_kernels is None:
        return {"path": "numpy", "detail": f"C kernels unavailable: {_KERNELS_MISSING}", "kernels": None}
    kernels = getattr(_cpu_kernels, "__file__", None)
    if packed_available(numpy, numpy.float32):
        return {"path": "avx512", "detail": "C kernels with AVX-512F whole-step kernels", "kernels": kernels}
    if not USE_PACKED:
        why = "AVX-512 kernels switched off (cells.USE_PACKED)"
    elif getattr(_cpu_kernels, "PACKED_BUILT", 0):
        why = "this CPU has no AVX-512F"
    else:
        why = "built without the AVX-512 kernels"
    return {"path": "c", "detail": f"C gate kernels with numpy matmul ({why})", "kernels": kernels}

