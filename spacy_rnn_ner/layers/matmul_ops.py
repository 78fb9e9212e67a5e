"""Thinc's `NumpyOps` with numpy's matrix product for float32 `gemm`.

`NumpyOps.gemm` calls blis; the RNN layer's products already run on
numpy's BLAS (`backends/ckernels.py`), which was 2-3x faster on the CPUs
measured here (`benchmarks/results/gemm.md`; on an AMD EPYC without
AVX-512, one thread: 89 against 29 GFLOP/s for the mixing maxout's
9,488 x 576 x 384 product). The models our architectures build use these
ops for their dense layers (Maxout, Linear, Softmax), so those layers get
numpy's products too. Only where the current ops are plain `NumpyOps`:
on GPU (CupyOps) or with other CPU ops (e.g. thinc-apple-ops) nothing
changes, and `Model.to_gpu` replaces them as any ops.
"""
import numpy
from thinc.api import Model, NumpyOps, get_current_ops


class NumpyMatmulOps(NumpyOps):
    """NumpyOps whose float32 2d `gemm` is `numpy.matmul`."""

    def gemm(self, x, y, *, out=None, trans1=False, trans2=False):
        if (
            x.dtype == numpy.float32 and y.dtype == numpy.float32
            and x.ndim == 2 and y.ndim == 2
            and (out is None or (out.dtype == numpy.float32 and out.flags.c_contiguous))
        ):
            return numpy.matmul(x.T if trans1 else x, y.T if trans2 else y, out=out)
        return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)


def use_numpy_matmul(model: Model) -> Model:
    """Give every node of `model` that has plain NumpyOps the NumpyMatmulOps
    (in place); returns the model."""
    if type(get_current_ops()) is not NumpyOps:
        return model
    ops = NumpyMatmulOps()
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            node.ops = ops
    return model
