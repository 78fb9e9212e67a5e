"""Test helpers: a finite-difference gradient check for Thinc layers."""
from typing import Callable, Dict

import numpy


def numeric_grad(f: Callable[[], float], array: numpy.ndarray, eps: float) -> numpy.ndarray:
    """Central differences of the scalar f() with respect to `array`, in place."""
    grad = numpy.zeros_like(array)
    for idx in numpy.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        plus = f()
        array[idx] = old - eps
        minus = f()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def max_rel_error(analytic: numpy.ndarray, numeric: numpy.ndarray) -> float:
    scale = numpy.maximum(numpy.abs(analytic) + numpy.abs(numeric), 1e-3)
    return float((numpy.abs(analytic - numeric) / scale).max())


def check_param_grads(model, loss: Callable[[], float], analytic: Dict[str, numpy.ndarray], eps: float) -> Dict[str, float]:
    """Relative error between analytic and numeric gradients, per parameter."""
    return {
        name: max_rel_error(analytic[name], numeric_grad(loss, model.get_param(name), eps))
        for name in model.param_names
    }
