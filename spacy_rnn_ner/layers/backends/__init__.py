"""The RNN layer's compute paths, one backend each (see `base.Backend`):
`avx512` (whole-step C kernels), `c` (C gate kernels with BLAS products)
and `numpy` (`xp` ufuncs, numpy or cupy). `select` picks one from the
arrays and the machine, once per pass of the layer."""
import numpy

from .. import cells
from . import avx512, ckernels, xp
from .base import Backend, Weights

BACKENDS = {"avx512": avx512.BACKEND, "c": ckernels.BACKEND, "numpy": xp.BACKEND}


def select(xp_module, dtype) -> Backend:
    """The fastest backend that runs arrays of `xp_module` and `dtype` here
    (what `cells.backend_info` reports for numpy float32)."""
    if cells.packed_available(xp_module, dtype):
        return BACKENDS["avx512"]
    if cells.kernels_available(xp_module, dtype):
        return BACKENDS["c"]
    return BACKENDS["numpy"]


def available() -> list:
    """Names of the backends that can run numpy float32 on this machine."""
    names = ["numpy"]
    if cells.kernels_available(numpy, numpy.float32):
        names.append("c")
        if cells.packed_available(numpy, numpy.float32):
            names.append("avx512")
    return names


__all__ = ["BACKENDS", "Backend", "Weights", "available", "select"]
