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


def reference_is_valid(seq) -> bool:
    """BILUO grammar written out independently of tags.py's matrices."""
    open_label = None
    for tag in seq:
        if tag == "O" or tag[0] in "BU":
            if open_label is not None:
                return False
            if tag[0] == "B":
                open_label = tag[2:]
        elif open_label != tag[2:]:
            return False
        elif tag[0] == "L":
            open_label = None
    return open_label is None
