"""Reuse of the large buffers of the RNN's training pass.

A training step of the layer allocates a dozen arrays of N x (1-4 hidden
widths) floats (N = tokens in the batch): gate activations and cell states
saved for backprop, and the gradient buffers of backprop. Fresh multi-MB
numpy arrays are memory-mapped anew by malloc, and each of their 4 KiB pages
faults on its first write; on the benchmark machine (a VM) that cost ~25% of
the layer's training time. The layer therefore takes these arrays from a
`Workspace` and gives them back once nothing can read them any more (at the
end of its backprop), much as cupy's memory pool does on the GPU (the
workspace leaves cupy arrays to that pool).
"""
import threading
import weakref
from typing import Dict, List

import numpy


class Workspace:
    """Free 1-d float buffers, handed out as views of the requested shape.

    Thread-safe; holds at most `max_free_bytes` of free buffers (dropping
    the smallest first). Only arrays made by `take` are taken back."""

    def __init__(self, max_free_bytes: int = 256 * 2**20):
        self.max_free_bytes = max_free_bytes
        self._free: List[numpy.ndarray] = []
        # id -> weak reference of every buffer made here (and still alive)
        self._made: Dict[int, weakref.ref] = {}
        self._lock = threading.Lock()

    def take(self, xp, shape, dtype, zero: bool = False):
        """An uninitialised (or `zero`ed) array of `shape`, reusing a free
        buffer when one is large enough."""
        size = 1
        for dim in shape:
            size *= dim
        if xp is not numpy:
            return xp.zeros(shape, dtype=dtype) if zero else xp.empty(shape, dtype=dtype)
        dtype = numpy.dtype(dtype)
        buffer = None
        with self._lock:
            fits = [b for b in self._free if b.dtype == dtype and b.size >= size]
            if fits:
                buffer = min(fits, key=lambda b: b.size)
                self._free = [b for b in self._free if b is not buffer]
        if buffer is None:
            buffer = numpy.empty((max(size, 1),), dtype=dtype)
            key = id(buffer)
            with self._lock:
                self._made[key] = weakref.ref(buffer, lambda _, k=key: self._made.pop(k, None))
        view = buffer[:size].reshape(shape)
        if zero:
            view.fill(0)
        return view

    def give(self, *arrays) -> None:
        """Return arrays made by `take`; the caller must not use them after."""
        with self._lock:
            for array in arrays:
                base = getattr(array, "base", None)
                ref = self._made.get(id(base))
                if base is None or ref is None or ref() is not base:
                    continue  # not from `take` (a cupy array, a plain array)
                if any(b is base for b in self._free):
                    continue
                self._free.append(base)
            self._free.sort(key=lambda b: b.nbytes, reverse=True)
            total = 0
            for i, buffer in enumerate(self._free):
                total += buffer.nbytes
                if total > self.max_free_bytes:
                    del self._free[i:]
                    break

    def clear(self) -> None:
        """Drop all free buffers."""
        with self._lock:
            self._free = []

    @property
    def free_bytes(self) -> int:
        with self._lock:
            return sum(b.nbytes for b in self._free)


# One per process, shared by all RNN layers (a forked child gets a copy of
# the parent's free buffers, which it may reuse or drop: both are safe).
WORKSPACE = Workspace()
