"""`spacy-rnn-ner.RNN.v1`: a stacked, optionally bidirectional Elman/GRU/LSTM
layer over `Padded` batches, with backpropagation through time by hand.

Inside the layer the batch is kept *packed in time-major order*: the rows of
step t are the `size_at_t[t]` active sequences, stored contiguously. Because
`Padded` sorts sequences by decreasing length, the rows of step t that have a
previous state are always the first ones, so every recurrent product is one
matmul over a contiguous block, and no work is spent on padding.

How a layer runs one direction depends on the arrays and the machine:
- numpy float32 on a CPU with AVX-512F (`cells.packed_available`): one C call
  runs all steps (`cells.run_steps`); each step's kernel makes the input and
  recurrent products and applies the gates while the products are still in
  registers. Backprop runs all steps in one C call too
  (`cells.run_back_steps`, recurrent products with weights packed once per
  pass, `cells.PackedMatrix`), then one kernel makes the weight gradients
  (`cells.weight_gradient`) and a packed product the input gradient.
- numpy float32 elsewhere: the input projection of all steps is one matmul
  (in inference one per block of steps: see `_direction_infer`), then per
  step one numpy matmul and a fused C gate kernel.
- cupy or other dtypes: the same steps with `xp` ufuncs (`cells.py`).
The large buffers of a training pass come from `workspace.WORKSPACE`.
"""
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple

import numpy
from thinc.api import Model, registry
from thinc.types import Floats2d, Padded

from . import cells
from .workspace import WORKSPACE

InT = Padded
OutT = Padded

DIRECTIONS = ("fwd", "bwd")
# Saved per-row arrays that each cell's fused backward step needs.
FUSED_BACKWARD_READS = {"elman": ("h",), "gru": ("g", "rn"), "lstm": ("g", "tc")}


@registry.layers("spacy-rnn-ner.RNN.v1")
def RNN(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    cell: str = "lstm",
    bidirectional: bool = True,
    depth: int = 1,
    dropout: float = 0.0,
) -> Model[InT, OutT]:
    """A recurrent layer: `depth` stacked layers of `cell` ("elman", "gru" or
    "lstm"), each reading left to right and, if `bidirectional`, also right to
    left, the output of a step being [fwd; bwd]. `nO` is the output width (the
    hidden width times the number of directions). `dropout` is applied to the
    output of each stacked layer during training; it is kept under its own
    attribute so that spaCy's `[training] dropout` does not override it.
    """
    if cell not in cells.N_GATES:
        raise ValueError(
            f"Unknown RNN cell {cell!r}: expected one of {sorted(cells.N_GATES)}"
        )
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"RNN depth must be an integer >= 1, got {depth!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"RNN dropout must be in [0, 1), got {dropout!r}")
    n_dirs = 2 if bidirectional else 1
    if nO is not None:
        _check_nO(nO, n_dirs)
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
            if cell == "gru":
                names.append(f"bh_{suffix}")
    return names


def _check_nO(nO: int, n_dirs: int) -> None:
    if nO < n_dirs or nO % n_dirs:
        raise ValueError(
            f"RNN output width nO={nO} must be a positive multiple of the number "
            f"of directions ({n_dirs})"
        )


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
    _check_nO(nO, n_dirs)
    nH = nO // n_dirs
    G = cells.N_GATES[cell]
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
        # (zeros when gathering, see `_gather_prev`).
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
    # Inference on numpy with the C kernels keeps nothing for a backward pass.
    infer = not is_train and cells.kernels_available(xp, X.dtype)
    run_direction = _direction_infer if infer else _direction_forward
    nH = nO // n_dirs
    backprops = []
    for layer in range(depth):
        # Each direction writes its output into its column block of Y.
        Y = xp.empty((X.shape[0], nO), dtype=X.dtype)
        jobs = [
            (
                lambda d=direction, X=X, out=Y[:, i * nH : (i + 1) * nH]: run_direction(
                    model, cell, f"{layer}_{d}", d, X, sched, out
                )
            )
            for i, direction in enumerate(DIRECTIONS[:n_dirs])
        ]
        # Inference with whole steps makes no BLAS call: no BLAS limit needed.
        no_blas = infer and cells.packed_available(xp, X.dtype)
        backprops.extend(bp for _, bp in _run_directions(xp, jobs, uses_blas=not no_blas))
        X = Y
        mask = None
        if rate > 0.0:
            mask = ops.get_dropout_mask(X.shape, rate)
            X = X * mask
        backprops.append(mask)
    Y = _unpack(ops, X, sched, T, B, nO)

    def backprop(dYp: OutT) -> InT:
        if infer:
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
# BLAS splitting each of them over two threads (benchmarks/speed.py). While a
# layer runs, BLAS calls from other threads of the process get one thread too.
PARALLEL_DIRECTIONS = True
# (pid, pool): a forked child (spaCy's nlp.pipe(n_process=...)) inherits the
# pool object but not its thread, so each process makes its own.
_pool: Optional[Tuple[int, ThreadPoolExecutor]] = None


def _run_directions(xp, jobs: List[Callable], uses_blas: bool = True) -> List:
    """Run the zero-argument `jobs` (one per direction), in parallel when
    worthwhile; results in the order of `jobs`. `uses_blas`: whether the jobs
    call BLAS (then held to one thread while they run)."""
    global _pool
    if len(jobs) != 2 or not PARALLEL_DIRECTIONS or xp is not numpy:
        return [job() for job in jobs]
    if not _blas_allows_threads():
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


def _direction_forward(
    model: Model, cell: str, suffix: str, direction: str, X: Floats2d, sched: Schedule,
    out: Floats2d,
) -> Tuple[Floats2d, Callable[[Floats2d], Floats2d]]:
    """Run one layer in one direction over packed rows X (N, nI); the output
    goes into `out` (N, nH), which may be a column block of a wider array."""
    xp = model.ops.xp
    Wx = model.get_param(f"Wx_{suffix}")
    Wh = model.get_param(f"Wh_{suffix}")
    b = model.get_param(f"b_{suffix}")
    nH = Wh.shape[1]
    N = X.shape[0]
    dtype = X.dtype
    max_batch = max(sched.sizes, default=0)
    fused = cells.kernels_available(xp, dtype)
    suffix_c = "_c" if fused else ""
    step_forward = getattr(cells, f"{cell}_forward{suffix_c}")
    step_backward = getattr(cells, f"{cell}_backward{suffix_c}")
    # Whole steps (AVX-512): each step's kernel does its input projection,
    # recurrent product and gates, and the steps run in one C call.
    whole_steps = fused and cells.packed_available(xp, dtype)
    # The steps for the Python loops (whole steps take `sched.step_array`).
    n_steps = [] if whole_steps else sched.steps(direction)
    if fused:
        X = xp.ascontiguousarray(X)
        G = WORKSPACE.take(xp, (N, Wh.shape[0]), dtype)
        W_rec = cells.step_pack(xp, cell, Wx, Wh) if whole_steps else Wh.T
        if not whole_steps:
            xp.matmul(X, Wx.T, out=G)
            G += b
    else:
        scale = cells.gate_scale(xp, cell, nH, dtype)
        G = xp.matmul(X, (Wx * scale[:, None]).T)
        G += b * scale
        W_rec = (Wh * scale[:, None]).T
    # Input projection of every step in one product (G, unless the steps do
    # it), then the recurrence. Whole steps write into `out` directly; the
    # other paths need contiguous rows of H and copy them there at the end.
    H = out if whole_steps else xp.empty((N, nH), dtype=dtype)
    scratch = None if whole_steps else xp.empty((max_batch, Wh.shape[0]), dtype=dtype)
    state: Dict = {}
    if cell == "lstm":
        state["c"] = WORKSPACE.take(xp, (N, nH), dtype)
        state["tc"] = WORKSPACE.take(xp, (N, nH), dtype)
    elif cell == "gru":
        state["rn"] = WORKSPACE.take(xp, (N, nH), dtype)
    bh = model.get_param(f"bh_{suffix}") if cell == "gru" else None
    if whole_steps:
        saved = state.get("c", state.get("rn"))
        cells.run_steps(
            cell, X, H, W_rec, b, bh, sched.step_array(direction), G, saved, state.get("tc")
        )
    for start, size, p_start, n_prev in n_steps:
        rows = slice(start, start + size)
        prev = slice(p_start, p_start + n_prev)
        step = {key: value[rows] for key, value in state.items()}
        if cell == "lstm":
            step["c_prev"] = state["c"][prev]
        step_forward(xp, G[rows], H[prev], W_rec, H[rows], scratch, bh=bh, **step)
    if H is not out:
        out[...] = H

    done = []

    def backprop(dH: Floats2d) -> Floats2d:
        """dH: gradient of this direction's output (N, nH), consumed in place.
        Once only: the saved state goes back to the workspace at the end."""
        if done:
            raise ValueError("RNN: the backprop of a forward pass can only be called once")
        done.append(True)
        prev_rows = sched.prev_rows[direction]
        # The packed weight-gradient kernel gathers the previous states itself.
        H_prev = None if whole_steps else _gather_prev(xp, H, prev_rows)
        dG = WORKSPACE.take(xp, G.shape, dtype)
        grads: Dict = {}
        if cell == "lstm":
            grads["dc"] = WORKSPACE.take(xp, (N, nH), dtype, zero=True)
        elif cell == "gru":
            grads["drec"] = WORKSPACE.take(xp, G.shape, dtype)
        W_back = cells.weights_for_products(xp, Wh) if fused else Wh
        if whole_steps:
            # All steps in one C call.
            cells.run_back_steps(
                cell, sched.step_array(direction), dH, dG, W_back, G,
                state.get("c", state.get("rn")), state.get("tc"), H, grads.get("drec"),
                grads.get("dc"),
            )
        else:
            # The per-step C kernels of GRU and Elman read contiguous rows of H.
            Hc = xp.ascontiguousarray(H) if fused and cell != "lstm" else H
            if fused:
                # Only what the C backward step of this cell reads, sliced per step.
                all_saved = {"g": G, "h": Hc, **state}
                saved = {k: all_saved[k] for k in FUSED_BACKWARD_READS[cell]}
            else:
                if cell == "lstm":
                    state["C_prev"] = _gather_prev(xp, state["c"], prev_rows)
                saved = getattr(cells, f"{cell}_factors")(xp, G, H, H_prev, state)
            back_scratch = xp.empty((max_batch, nH), dtype=dtype)
            for start, size, p_start, n_prev in reversed(n_steps):
                rows = slice(start, start + size)
                prev = slice(p_start, p_start + n_prev)
                step = {key: value[rows] for key, value in saved.items()}
                step.update((key, value[rows]) for key, value in grads.items())
                if cell == "lstm":
                    step["c_prev"] = state["c"][prev]
                    step["dc_prev"] = grads["dc"][prev]
                elif cell == "gru":
                    step["h_prev"] = Hc[prev]
                step_backward(
                    xp, dH[rows], dG[rows], Wh=W_back, dh_prev=dH[prev], scratch=back_scratch, **step
                )
        # Weight gradients of all steps in one product each (with whole steps:
        # one kernel for [dWx | dWh] = dG.T @ [X | H_prev]).
        dRec = dG
        if cell == "gru":
            # The n gate's recurrent part has its own gradient (drec); the C
            # kernels write the r and z gates' into both.
            dRec = grads["drec"]
            if not fused:
                dG[:, : 2 * nH] = dRec[:, : 2 * nH]
            model.inc_grad(f"bh_{suffix}", dRec[:, 2 * nH :].sum(axis=0))
        if not whole_steps:
            model.inc_grad(f"Wh_{suffix}", xp.matmul(dRec.T, H_prev))
            model.inc_grad(f"Wx_{suffix}", xp.matmul(dG.T, X))
        elif cell == "gru":
            model.inc_grad(f"Wh_{suffix}", cells.weight_gradient(xp, dRec, None, H, prev_rows))
            model.inc_grad(f"Wx_{suffix}", cells.weight_gradient(xp, dG, X, None, None))
        else:
            dW = cells.weight_gradient(xp, dG, X, H, prev_rows)
            model.inc_grad(f"Wx_{suffix}", dW[:, : X.shape[1]])
            model.inc_grad(f"Wh_{suffix}", dW[:, X.shape[1] :])
        model.inc_grad(f"b_{suffix}", dG.sum(axis=0))
        dX = cells.matmul(xp, dG, cells.weights_for_products(xp, Wx))
        WORKSPACE.give(G, dG, *state.values(), *grads.values())
        if H_prev is not None:
            WORKSPACE.give(H_prev)
        return dX

    return out, backprop


# Rows of the input projection that inference computes at a time.
INFER_BLOCK_ROWS = 256


def _direction_infer(
    model: Model, cell: str, suffix: str, direction: str, X: Floats2d, sched: Schedule,
    out: Floats2d,
) -> Tuple[Floats2d, None]:
    """Inference-only `_direction_forward` (numpy, fused kernels): the same
    output, keeping nothing for backprop. With whole-step kernels (AVX-512),
    one C call runs all steps. Otherwise the input projection is made a block
    of consecutive steps at a time, and the per-step state that only backprop
    reads (gate activations, LSTM cell and tanh(cell), GRU reset product)
    lives in buffers of one step: working memory is O(block + batch) rows
    instead of O(N) rows of 4-6 hidden widths, no page faults on fresh
    multi-MB buffers, and the block of the projection is still in cache when
    its steps read it."""
    xp = numpy
    Wx = model.get_param(f"Wx_{suffix}")
    Wh = model.get_param(f"Wh_{suffix}")
    b = model.get_param(f"b_{suffix}")
    bh = model.get_param(f"bh_{suffix}") if cell == "gru" else None
    nG, nH = Wh.shape
    X = xp.ascontiguousarray(X)
    N, dtype = X.shape[0], X.dtype
    if cells.packed_available(xp, dtype):
        cell_state = WORKSPACE.take(xp, (N, nH), dtype) if cell == "lstm" else None
        W_steps = cells.step_pack(xp, cell, Wx, Wh)
        cells.run_steps(
            cell, X, out, W_steps, b, bh, sched.step_array(direction), None, cell_state, None
        )
        WORKSPACE.give(cell_state)
        return out, None
    H = xp.empty((N, nH), dtype=dtype)
    max_batch = max(sched.sizes, default=0)
    block_rows = max(INFER_BLOCK_ROWS, max_batch)
    step_forward = getattr(cells, f"{cell}_forward_c")
    G = xp.empty((min(N, block_rows), nG), dtype=dtype)
    scratch = xp.empty((max_batch, nG), dtype=dtype)
    # LSTM: the previous step's cell and this step's; the rows with a
    # previous state are the first n_prev rows of the previous step.
    cells_state = [xp.empty((max_batch, nH), dtype=dtype) for _ in range(2)]
    spare = xp.empty((max_batch, nH), dtype=dtype)
    steps = sched.steps(direction)
    Wx_T, Wh_T = Wx.T, Wh.T
    i = 0
    while i < len(steps):
        # Steps i..j-1 in reading order cover one contiguous run of rows.
        j, rows = i, 0
        while j < len(steps) and rows + steps[j][1] <= block_rows:
            rows += steps[j][1]
            j += 1
        lo = min(steps[i][0], steps[j - 1][0])
        block = G[:rows]
        xp.matmul(X[lo : lo + rows], Wx_T, out=block)
        block += b
        for start, size, p_start, n_prev in steps[i:j]:
            g = block[start - lo : start - lo + size]
            h_prev = H[p_start : p_start + n_prev]
            h = H[start : start + size]
            if cell == "lstm":
                c_prev, c = cells_state[0][:n_prev], cells_state[1][:size]
                step_forward(xp, g, h_prev, Wh_T, h, scratch, c_prev=c_prev, c=c, tc=spare[:size])
                cells_state.reverse()
            elif cell == "gru":
                step_forward(xp, g, h_prev, Wh_T, h, scratch, rn=spare[:size], bh=bh)
            else:
                step_forward(xp, g, h_prev, Wh_T, h, scratch)
        i = j
    out[...] = H
    return out, None


def _gather_prev(xp, H: Floats2d, prev_rows) -> Floats2d:
    """Previous state of each row, zeros where a sequence starts (where
    prev_rows holds N), in a workspace array."""
    N = H.shape[0]
    out = WORKSPACE.take(xp, H.shape, H.dtype)
    if N:
        xp.take(H, xp.minimum(prev_rows, N - 1), axis=0, out=out)
        out[prev_rows == N] = 0
    return out
