"""The Elman, GRU and LSTM cells: their facts in one table (`CELLS`), and
the Python face of the C kernels (`_cpu_kernels.pyx` bindings over
`_cpu_kernels_impl.c`): loading, availability (`backend_info`) and thin
wrappers of the entry points that take more than arrays. The compute paths that use them are in `backends/`.

Gate layouts (columns of the fused gate buffer, H = hidden width):
- elman: [z]; h = tanh(z)
- gru:   [r, z, n]; n = tanh(x_n + r * (h_prev @ Wh_n.T + bh)); h = (1 - z) n + z h_prev
- lstm:  [i, f, o, g]; c = f c_prev + i g; h = o tanh(c)
"""
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy


@dataclass(frozen=True)
class Cell:
    """What every compute path needs to know about a cell."""

    name: str
    # The C kernels' `Cell` enum value (module constant CELL_<NAME>).
    code: int
    n_gates: int
    # Leading gate blocks that are sigmoids.
    n_sigmoid: int
    # Hidden units per panel of the whole-step kernels' packed weights (one
    # AVX-512 register holds 16 units of one gate).
    panel_units: int
    # Per-row (N, H) arrays a training forward keeps besides gates and output.
    state: Tuple[str, ...]
    # Parameters besides Wx, Wh and b.
    extra_params: Tuple[str, ...] = ()


CELLS: Dict[str, Cell] = {
    "elman": Cell("elman", code=0, n_gates=1, n_sigmoid=0, panel_units=64, state=()),
    "gru": Cell("gru", code=1, n_gates=3, n_sigmoid=2, panel_units=16, state=("rn",), extra_params=("bh",)),
    "lstm": Cell("lstm", code=2, n_gates=4, n_sigmoid=3, panel_units=16, state=("c", "tc")),
}


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


def step_pack(xp, cell: str, Wx, Wh):
    """[Wx | Wh] in the panel layout of the whole-step kernels (made once
    per forward pass: packing costs less than one step)."""
    spec = CELLS[cell]
    units = spec.panel_units
    nH, nI = Wh.shape[1], Wx.shape[1]
    packed = xp.empty((-(-nH // units) * (nI + nH) * spec.n_gates * units,), dtype=Wh.dtype)
    _cpu_kernels.step_pack(
        xp.ascontiguousarray(Wx), xp.ascontiguousarray(Wh), packed, nI, nH, spec.n_gates, units
    )
    return packed


def run_steps(cell: str, X, H, W_packed, b, bh, steps, G, state, tc) -> None:
    """All steps of one direction with whole-step kernels (AVX-512): each
    step's kernel computes x @ Wx.T + h_prev @ Wh.T + b and the gates, the
    products never leaving registers. X (N, nI) in, H (N, nH) out; `steps`
    from `Schedule.step_array`. `state` (N, nH) holds the LSTM cell (always)
    or the GRU's rn (training). Training passes G (N, gates * nH), which
    receives the gate activations as the C gate kernels leave them, and for
    the LSTM tc = tanh(cell); inference passes None for both."""
    _cpu_kernels.run_steps(
        CELLS[cell].code, X, H, W_packed, b, bh, steps, G, state, tc,
        X.shape[0], X.shape[1], H.shape[1],
    )


def run_back_steps(cell: str, steps, dH, dG, Wh: "PackedMatrix", G, state, tc, H, drec, dc) -> None:
    """Backprop through all steps of one direction in one C call (AVX-512),
    last step first: each step's gate kernel, then dh_prev += dG_t @ Wh
    (GRU: drec_t). dH (N, nH) holds the output gradients and receives the
    previous states' ones; dG (N, gates * nH) the gate gradients. G, state
    (LSTM cell / GRU rn) and tc as `run_steps` left them; H: the outputs
    (GRU, Elman), rows may be apart (a column block); drec (GRU) and dc
    (LSTM, zeros) receive gradients. Arguments a cell does not read may be
    None."""
    _cpu_kernels.run_back_steps(
        CELLS[cell].code, steps, dH, dG, Wh.data, G, state, tc, H, drec, dc,
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

