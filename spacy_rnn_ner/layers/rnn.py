"""`spacy-rnn-ner.RNN.v1`: a stacked, optionally bidirectional Elman/GRU/LSTM
layer over `Padded` batches, with backpropagation through time by hand.

Inside the layer the batch is kept *packed in time-major order*: the rows of
step t are the `size_at_t[t]` active sequences, stored contiguously. Because
`Padded` sorts sequences by decreasing length, the rows of step t that have a
previous state are always the first ones, so every recurrent product is one
matmul over a contiguous block, and no work is spent on padding.

How a layer runs one direction is a backend's job (`backends/`): AVX-512
whole-step C kernels, C gate kernels with BLAS products, or `xp` ufuncs
(numpy and cupy, any dtype). `backends.select` picks one once per pass,
from the arrays and the machine; `cells.backend_info()` says which.
The large buffers of a training pass come from `workspace.WORKSPACE`.
"""
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple

import numpy
from thinc.api import Model, registry
from thinc.types import Floats2d, Padded

from ..config_types import Cell, PositiveInt, Rate, StrictBool, setting_error
from . import backends, cells
from .workspace import WORKSPACE

InT = Padded
OutT = Padded

DIRECTIONS = ("fwd", "bwd")


@registry.layers("spacy-rnn-ner.RNN.v1")
def RNN(
    nO: Optional[PositiveInt] = None,
    nI: Optional[PositiveInt] = None,
    *,
    cell: Cell = "lstm",
    bidirectional: StrictBool = True,
    depth: PositiveInt = 1,
    dropout: Rate = 0.0,
) -> Model[InT, OutT]:
    """A recurrent layer: `depth` stacked layers of `cell` ("elman", "gru" or
    "lstm"), each reading left to right and, if `bidirectional`, also right to
    left, the output of a step being [fwd; bwd]. `nO` is the output width (the
    hidden width times the number of directions). `dropout` is applied to the
    output of each stacked layer during training; it is kept under its own
    attribute so that spaCy's `[training] dropout` does not override it.
    """
    # For calls from Python: from a config, the annotations reject these first.
    if cell not in cells.CELLS:
        raise ValueError(
            f"Unknown RNN cell {cell!r}: expected one of {sorted(cells.CELLS)}"
        )
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"RNN depth must be an integer >= 1, got {depth!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"RNN dropout must be in [0, 1), got {dropout!r}")
    n_dirs = 2 if bidirectional else 1
    error = _nO_error(nO, n_dirs) if nO is not None else ""
    if error:
        raise setting_error("spacy-rnn-ner.RNN.v1", "nO", error)
    return Model(
        "rnn",
        forward,
        init=init,
        dims={"nO": nO, "nI": nI},
        params={name: None for name in param_names(cell, depth, n_dirs)},
        attrs={
            "cell": cell,
            "bidirectional": bool(bidirectional),
            "depth": depth,
            "dropout": float(dropout),
        },
    )


def param_names(cell: str, depth: int, n_dirs: int) -> List[str]:
    names = []
    for layer in range(depth):
        for direction in DIRECTIONS[:n_dirs]:
            suffix = f"{layer}_{direction}"
            names += [f"Wx_{suffix}", f"Wh_{suffix}", f"b_{suffix}"]
            names += [f"{extra}_{suffix}" for extra in cells.CELLS[cell].extra_params]
    return names


def _nO_error(nO: int, n_dirs: int) -> str:
    if nO < n_dirs or nO % n_dirs:
        return (
            f"RNN output width nO={nO} must be a positive multiple of the number "
            f"of directions ({n_dirs})"
        )
    return ""


def init(
    model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> None:
    if X is not None and not model.has_dim("nI"):
        model.set_dim("nI", X.data.shape[2])
    if Y is not None and not model.has_dim("nO"):
        model.set_dim("nO", Y.data.shape[2])
    cell = model.attrs["cell"]
    n_dirs = 2 if model.attrs["bidirectional"] else 1
    nO = model.get_dim("nO")
    error = _nO_error(nO, n_dirs)
    if error:
        raise ValueError(error)
    nH = nO // n_dirs
    G = cells.CELLS[cell].n_gates
    for layer in range(model.attrs["depth"]):
        nI = model.get_dim("nI") if layer == 0 else nO
        for direction in DIRECTIONS[:n_dirs]:
            suffix = f"{layer}_{direction}"
            model.set_param(f"Wx_{suffix}", _glorot(model, G, nH, nI))
            model.set_param(f"Wh_{suffix}", _orthogonal(model, G, nH))
            b = numpy.zeros((G * nH,), dtype="f")
            if cell == "lstm":
                b[nH : 2 * nH] = 1.0  # forget-gate bias: remember by default
            model.set_param(f"b_{suffix}", model.ops.asarray1f(b))
            if cell == "gru":
                model.set_param(f"bh_{suffix}", model.ops.alloc1f(nH))


def _glorot(model: Model, G: int, nH: int, nI: int):
    scale = numpy.sqrt(6.0 / (nI + nH))
    W = numpy.random.uniform(-scale, scale, (G * nH, nI)).astype("f")
    return model.ops.asarray2f(W)


def _orthogonal(model: Model, G: int, nH: int):
    """One orthogonal block per gate: keeps the recurrence well-conditioned."""
    blocks = []
    for _ in range(G):
        q, r = numpy.linalg.qr(numpy.random.normal(0.0, 1.0, (nH, nH)))
        blocks.append(q * numpy.sign(numpy.diag(r)))
    return model.ops.asarray2f(numpy.concatenate(blocks, axis=0).astype("f"))


class Schedule:
    """Row bookkeeping of a packed, time-major batch, shared by all layers."""

    def __init__(self, ops, size_at_t: List[int], n_batch: int):
        xp = ops.xp
        T = len(size_at_t)
        sizes = numpy.asarray(size_at_t, dtype="i")
        starts = numpy.zeros(T + 1, dtype="i")
        numpy.cumsum(sizes, out=starts[1:])
        self.T = T
        self.N = int(starts[-1])
        self.sizes = size_at_t
        self.starts = starts.tolist()
        t_of_row = numpy.repeat(numpy.arange(T, dtype="i"), sizes)
        b_of_row = numpy.arange(self.N, dtype="i") - starts[t_of_row]
        # Row of each packed row in the flattened (T * B) padded array, or None
        # when there is no padding and the padded array is already packed.
        if self.N == T * n_batch:
            self.padded_rows = None
        else:
            self.padded_rows = xp.asarray(t_of_row * n_batch + b_of_row)
        # Previous-state row of each packed row per direction; N means "none"
        # (zeros when gathering, see `backends.base.gather_prev`).
        prev_fwd = numpy.where(
            t_of_row > 0, starts[numpy.maximum(t_of_row - 1, 0)] + b_of_row, self.N
        )
        nxt = numpy.minimum(t_of_row + 1, T - 1) if T else t_of_row
        has_next = (t_of_row + 1 < T) & (b_of_row < sizes[nxt] if T else False)
        prev_bwd = numpy.where(has_next, starts[nxt] + b_of_row, self.N)
        self.prev_rows = {
            "fwd": xp.asarray(prev_fwd.astype("i")),
            "bwd": xp.asarray(prev_bwd.astype("i")),
        }

    def step_array(self, direction: str):
        """`steps(direction)` as an int64 numpy array (T, 4), for the C kernels."""
        key = f"_array_{direction}"
        if not hasattr(self, key):
            setattr(self, key, numpy.asarray(self.steps(direction), dtype=numpy.int64).reshape(-1, 4))
        return getattr(self, key)

    def steps(self, direction: str) -> List[Tuple[int, int, int, int]]:
        """(start, size, prev_start, n_prev) for each step, in reading order."""
        s, o, T = self.sizes, self.starts, self.T
        if direction == "fwd":
            return [
                (o[t], s[t], o[t - 1] if t else 0, s[t] if t else 0) for t in range(T)
            ]
        return [
            (o[t], s[t], o[t + 1] if t + 1 < T else 0, s[t + 1] if t + 1 < T else 0)
            for t in reversed(range(T))
        ]


def forward(model: Model[InT, OutT], Xp: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    xp = ops.xp
    cell = model.attrs["cell"]
    n_dirs = 2 if model.attrs["bidirectional"] else 1
    depth = model.attrs["depth"]
    rate = model.attrs["dropout"] if is_train else 0.0
    nO = model.get_dim("nO")
    T, B, nI = Xp.data.shape
    if T * B and nI != model.get_dim("nI"):
        # Checked here so that every compute path refuses it alike.
        raise ValueError(f"RNN: input width {nI} does not match the layer's nI = {model.get_dim('nI')}")
    sched = Schedule(ops, ops.to_numpy(Xp.size_at_t).tolist(), B)
    X2d = Xp.data.reshape((T * B, nI))
    X = X2d if sched.padded_rows is None else X2d[sched.padded_rows]
    backend = backends.select(xp, X.dtype)
    spec = cells.CELLS[cell]
    run_direction = _direction_forward if is_train else _direction_infer
    nH = nO // n_dirs
    backprops = []
    for layer in range(depth):
        # Each direction writes its output into its column block of Y.
        Y = xp.empty((X.shape[0], nO), dtype=X.dtype)
        jobs = [
            (
                lambda d=direction, X=X, out=Y[:, i * nH : (i + 1) * nH]: run_direction(
                    model, backend, spec, f"{layer}_{d}", d, X, sched, out
                )
            )
            for i, direction in enumerate(DIRECTIONS[:n_dirs])
        ]
        uses_blas = is_train or backend.blas_in_inference
        backprops.extend(bp for _, bp in _run_directions(xp, jobs, uses_blas=uses_blas))
        X = Y
        mask = None
        if rate > 0.0:
            mask = ops.get_dropout_mask(X.shape, rate)
            X = X * mask
        backprops.append(mask)
    Y = _unpack(ops, X, sched, T, B, nO)

    def backprop(dYp: OutT) -> InT:
        if not is_train:
            raise ValueError("RNN: no backward pass after a forward pass with is_train=False")
        dX = dYp.data.reshape((T * B, nO))
        if sched.padded_rows is not None:
            dX = dX[sched.padded_rows]
        bps = list(backprops)
        for layer in reversed(range(depth)):
            mask = bps.pop()
            if mask is not None:
                dX = dX * mask
            nH = dX.shape[1] // n_dirs
            layer_bps = bps[len(bps) - n_dirs :]
            del bps[len(bps) - n_dirs :]
            # dH is a copy: the direction's backprop consumes it in place,
            # and dX may be the caller's array.
            dHs = []
            for d in range(n_dirs):
                dHs.append(WORKSPACE.take(xp, (dX.shape[0], nH), dX.dtype))
                dHs[-1][...] = dX[:, d * nH : (d + 1) * nH]
            jobs = [(lambda bp=bp, dH=dH: bp(dH)) for bp, dH in zip(layer_bps, dHs)]
            grads = _run_directions(xp, jobs)
            WORKSPACE.give(*dHs)
            dX = grads[0] if n_dirs == 1 else grads[0] + grads[1]
        return Padded(
            _unpack(ops, dX, sched, T, B, nI), Xp.size_at_t, Xp.lengths, Xp.indices
        )

    return Padded(Y, Xp.size_at_t, Xp.lengths, Xp.indices), backprop


# Bidirectional layers on numpy can run their two directions at the same time,
# one per thread: numpy's matmul and the C kernels release the GIL. Only when
# BLAS may use >= 2 threads (see `blas_limiter`), and then each direction's
# products run single-threaded, so the process never uses more cores than
# BLAS was allowed. The small per-step products gain more from this than from
# BLAS splitting each of them over two threads (benchmarks/speed.py). A single
# direction runs with BLAS held to one thread as well. While a layer runs,
# BLAS calls from other threads of the process get one thread too.
PARALLEL_DIRECTIONS = True
# (pid, pool): a forked child (spaCy's nlp.pipe(n_process=...)) inherits the
# pool object but not its thread, so each process makes its own.
_pool: Optional[Tuple[int, ThreadPoolExecutor]] = None


def _run_directions(xp, jobs: List[Callable], uses_blas: bool = True) -> List:
    """Run the zero-argument `jobs` (one per direction), in parallel when
    worthwhile; results in the order of `jobs`. `uses_blas`: whether the jobs
    call BLAS (then held to one thread while they run)."""
    global _pool
    if xp is not numpy or not _blas_allows_threads():
        return [job() for job in jobs]
    if len(jobs) != 2 or not PARALLEL_DIRECTIONS:
        # One direction at a time (a unidirectional layer) still holds BLAS
        # to one thread: two threads per small step product made a
        # unidirectional LSTM 8.5x slower forward and 1.9x slower forward +
        # backward on the c path of a busy 2-core machine (batch 64, 96/128).
        with blas_limiter() if uses_blas else contextlib.nullcontext():
            return [job() for job in jobs]
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnn-direction"))
    with blas_limiter() if uses_blas else contextlib.nullcontext():
        future = _pool[1].submit(jobs[1])
        try:
            first = jobs[0]()
        finally:
            # Never leave the worker running once BLAS threads are restored.
            second = future.result()
        return [first, second]


_controller = None


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries, or False without
    threadpoolctl."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _blas_allows_threads() -> bool:
    """Whether BLAS may use >= 2 threads and its threads can be controlled
    (the signal that the process may use two cores for the directions)."""
    controller = _blas_controller()
    return bool(controller) and max(
        (c.num_threads for c in controller.lib_controllers), default=1
    ) >= 2


def blas_limiter():
    """A context manager that holds BLAS to one thread, or None when BLAS
    already runs single-threaded or its threads cannot be controlled
    (threadpoolctl not installed)."""
    if not _blas_allows_threads():
        return None
    return _blas_controller().limit(limits=1)


def _unpack(ops, X: Floats2d, sched: Schedule, T: int, B: int, width: int):
    if sched.padded_rows is None:
        return X.reshape((T, B, width))
    out = ops.alloc2f(T * B, width, dtype=X.dtype)
    out[sched.padded_rows] = X
    return out.reshape((T, B, width))


def _weights(model: Model, cell: cells.Cell, suffix: str) -> backends.Weights:
    bh = model.get_param(f"bh_{suffix}") if "bh" in cell.extra_params else None
    return backends.Weights(
        model.get_param(f"Wx_{suffix}"), model.get_param(f"Wh_{suffix}"),
        model.get_param(f"b_{suffix}"), bh,
    )


def _direction_forward(
    model: Model, backend: backends.Backend, cell: cells.Cell, suffix: str, direction: str,
    X: Floats2d, sched: Schedule, out: Floats2d,
) -> Tuple[Floats2d, Callable[[Floats2d], Floats2d]]:
    """Run one layer in one direction over packed rows X (N, nI); the output
    goes into `out` (N, nH), which may be a column block of a wider array.
    The backprop consumes its dH (N, nH) in place, once only."""
    xp = model.ops.xp
    backprop_direction = backend.forward(xp, cell, _weights(model, cell, suffix), X, sched, direction, out)

    def backprop(dH: Floats2d) -> Floats2d:
        dX, grads = backprop_direction(dH)
        for name, grad in grads.items():
            model.inc_grad(f"{name}_{suffix}", grad)
        return dX

    return out, backprop


# Rows of the input projection that inference computes at a time (where the
# backend makes it in blocks: `backends.ckernels.infer`).
INFER_BLOCK_ROWS = 256


def _direction_infer(
    model: Model, backend: backends.Backend, cell: cells.Cell, suffix: str, direction: str,
    X: Floats2d, sched: Schedule, out: Floats2d,
) -> Tuple[Floats2d, None]:
    """`_direction_forward`'s output, keeping nothing for backprop."""
    xp = model.ops.xp
    backend.infer(xp, cell, _weights(model, cell, suffix), X, sched, direction, out, INFER_BLOCK_ROWS)
    return out, None
