import sys

import numpy
import pytest
from thinc.api import Adam, NumpyOps, fix_random_seed, registry
from thinc.types import Padded

from spacy_rnn_ner.layers import backends, cells
from spacy_rnn_ner.layers.rnn import RNN

from .util import check_param_grads, max_rel_error, numeric_grad

OPS = NumpyOps()
CELLS = ["elman", "gru", "lstm"]


@pytest.fixture(params=["avx512", "c", "numpy"])
def backend(request, monkeypatch) -> str:
    """Run the test on one backend for numpy float32 (skipped where this
    machine cannot run it): avx512, c (AVX-512 kernels switched off) or
    numpy (C kernels switched off)."""
    name = request.param
    if name not in backends.available():
        pytest.skip(f"the {name} backend does not run here")
    if name == "c":
        monkeypatch.setattr(cells, "USE_PACKED", False)
    elif name == "numpy":
        monkeypatch.setattr(cells, "_cpu_kernels", None)
    assert backends.select(numpy, numpy.dtype("float32")).name == name
    return name


def make_padded(lengths, nI, dtype="f", seed=0):
    rng = numpy.random.RandomState(seed)
    seqs = [rng.normal(size=(n, nI)).astype(dtype) for n in lengths]
    return OPS.list2padded(seqs), seqs


def valid_mask(Xp: Padded) -> numpy.ndarray:
    mask = numpy.zeros(Xp.data.shape[:2] + (1,), dtype=Xp.data.dtype)
    for t, size in enumerate(Xp.size_at_t):
        mask[t, :size] = 1.0
    return mask


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [[1], [3, 1], [9, 2, 4]])
def test_shapes(cell, bidirectional, lengths, backend):
    model = RNN(nO=6, nI=5, cell=cell, bidirectional=bidirectional, depth=2)
    Xp, _ = make_padded(lengths, 5)
    model.initialize(X=Xp)
    Yp, backprop = model(Xp, is_train=True)
    assert isinstance(Yp, Padded)
    assert Yp.data.shape == (max(lengths), len(lengths), 6)
    assert Yp.data.dtype == numpy.float32
    assert numpy.isfinite(Yp.data).all()
    dXp = backprop(Padded(numpy.ones_like(Yp.data), Yp.size_at_t, Yp.lengths, Yp.indices))
    assert dXp.data.shape == Xp.data.shape


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("depth", [1, 2])
def test_gradients_match_finite_differences(cell, bidirectional, depth):
    """Input and every parameter, in float64, with padding in the batch."""
    fix_random_seed(0)
    model = RNN(nO=4 if bidirectional else 3, nI=3, cell=cell, bidirectional=bidirectional, depth=depth)
    Xp, _ = make_padded([4, 2, 3], 3, dtype="float64")
    model.initialize(X=Xp)
    rng = numpy.random.RandomState(1)
    for name in model.param_names:
        param = model.get_param(name).astype("float64")
        model.set_param(name, param + rng.normal(scale=0.3, size=param.shape))
    mask = valid_mask(Xp)
    weights = rng.normal(size=(Xp.data.shape[0], Xp.data.shape[1], model.get_dim("nO")))

    def loss() -> float:
        Yp, _ = model(Xp, is_train=False)
        return float((Yp.data * weights * mask).sum())

    Yp, backprop = model(Xp, is_train=True)
    for name in model.param_names:
        model.set_grad(name, numpy.zeros_like(model.get_param(name)))
    dXp = backprop(Padded(weights * mask, Yp.size_at_t, Yp.lengths, Yp.indices))
    analytic = {name: model.get_grad(name).copy() for name in model.param_names}
    assert max_rel_error(dXp.data * mask, numeric_grad(loss, Xp.data, 1e-6)) < 1e-5
    errors = check_param_grads(model, loss, analytic, 1e-6)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_float32(cell, bidirectional, backend):
    """The float32 path (what training uses) agrees with finite differences
    within float32 tolerance."""
    fix_random_seed(0)
    model = RNN(nO=4, nI=3, cell=cell, bidirectional=bidirectional)
    Xp, _ = make_padded([3, 2], 3)
    model.initialize(X=Xp)
    mask = valid_mask(Xp)
    weights = numpy.random.RandomState(2).normal(size=(3, 2, 4)).astype("f")

    def loss() -> float:
        Yp, _ = model(Xp, is_train=False)
        return float((Yp.data.astype("float64") * weights * mask).sum())

    Yp, backprop = model(Xp, is_train=True)
    dXp = backprop(Padded(weights * mask, Yp.size_at_t, Yp.lengths, Yp.indices))
    assert max_rel_error(dXp.data * mask, numeric_grad(loss, Xp.data, 1e-2)) < 1e-2


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_batch_equals_one_by_one(cell, bidirectional, backend):
    """Padding never leaks into real positions, forward or backward."""
    model = RNN(nO=8, nI=5, cell=cell, bidirectional=bidirectional, depth=2)
    Xp, seqs = make_padded([9, 2, 4, 4, 1], 5)
    model.initialize(X=Xp)
    Yp, backprop = model(Xp, is_train=True)
    dY = numpy.random.RandomState(3).normal(size=Yp.data.shape).astype("f")
    dXp = backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
    Ys = OPS.padded2list(Yp)
    dYs = OPS.padded2list(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
    dXs = OPS.padded2list(dXp)
    for seq, Y, dY1, dX in zip(seqs, Ys, dYs, dXs):
        Xp1 = OPS.list2padded([seq])
        Y1, backprop1 = model(Xp1, is_train=True)
        numpy.testing.assert_allclose(Y1.data[:, 0], Y, rtol=1e-4, atol=1e-5)
        dX1 = backprop1(Padded(dY1[:, None, :], Y1.size_at_t, Y1.lengths, Y1.indices))
        numpy.testing.assert_allclose(dX1.data[:, 0], dX, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_direction(cell, backend):
    """Changing the last token changes the right-to-left output at position 0,
    not the left-to-right one; changing the first token is the mirror case."""
    model = RNN(nO=8, nI=5, cell=cell, bidirectional=True)
    Xp, (seq,) = make_padded([6], 5)
    model.initialize(X=Xp)
    Y = model.predict(Xp).data[:, 0]
    changed = seq.copy()
    changed[-1] += 1.0
    Y2 = model.predict(OPS.list2padded([changed])).data[:, 0]
    numpy.testing.assert_array_equal(Y[0, :4], Y2[0, :4])
    assert numpy.abs(Y[0, 4:] - Y2[0, 4:]).max() > 1e-4
    numpy.testing.assert_array_equal(Y[:-1, :4], Y2[:-1, :4])
    changed = seq.copy()
    changed[0] += 1.0
    Y3 = model.predict(OPS.list2padded([changed])).data[:, 0]
    numpy.testing.assert_array_equal(Y[-1, 4:], Y3[-1, 4:])
    assert numpy.abs(Y[-1, :4] - Y3[-1, :4]).max() > 1e-4


@pytest.mark.parametrize("cell", CELLS)
def test_learns_sequence_task(cell, backend):
    """Output at each step: has a 1 been seen so far (left to right)? Needs the
    recurrence; the loss must fall clearly."""
    fix_random_seed(0)
    rng = numpy.random.RandomState(0)
    model = RNN(nO=8, nI=2, cell=cell, bidirectional=False)
    seqs = []
    targets = []
    for n in rng.randint(3, 9, size=16):
        bits = (rng.rand(n) < 0.15).astype("f")
        seqs.append(numpy.stack([bits, 1 - bits], axis=1))
        targets.append(numpy.repeat(numpy.maximum.accumulate(bits)[:, None], 8, axis=1) * 0.8)
    Xp = OPS.list2padded(seqs)
    Tp = OPS.list2padded(targets)
    mask = valid_mask(Xp)
    model.initialize(X=Xp)
    optimizer = Adam(0.01)
    losses = []
    for _ in range(150):
        Yp, backprop = model(Xp, is_train=True)
        diff = (Yp.data - Tp.data) * mask
        losses.append(float((diff**2).sum()))
        backprop(Padded(diff, Yp.size_at_t, Yp.lengths, Yp.indices))
        model.finish_update(optimizer)
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_dropout_only_in_training(backend):
    model = RNN(nO=8, nI=5, dropout=0.5)
    Xp, _ = make_padded([4, 3], 5)
    model.initialize(X=Xp)
    first = model.predict(Xp).data
    numpy.testing.assert_array_equal(first, model.predict(Xp).data)
    Y_train, _ = model(Xp, is_train=True)
    assert (Y_train.data == 0).sum() > (first == 0).sum()


def test_empty_batch_and_inferred_dims(backend):
    model = RNN(nO=4, cell="gru")
    Xp, _ = make_padded([2], 7)
    model.initialize(X=Xp)
    assert model.get_dim("nI") == 7
    empty = Padded(
        numpy.zeros((0, 0, 7), dtype="f"), OPS.alloc1i(0), OPS.alloc1i(0), OPS.alloc1i(0)
    )
    Yp, backprop = model(empty, is_train=True)
    assert Yp.data.shape == (0, 0, 4)
    assert backprop(Yp).data.shape == (0, 0, 7)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"cell": "rnn"}, "Unknown RNN cell"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
        ({"nO": 5, "bidirectional": True}, "multiple"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNN(**kwargs)


def test_structure_fixed_and_roundtrip(backend):
    """Parameters are declared up front, so a fresh model loads saved bytes."""
    model = RNN(nO=6, nI=4, cell="lstm", depth=2)
    assert len(model.param_names) == 2 * 2 * 3
    Xp, _ = make_padded([3, 2], 4)
    model.initialize(X=Xp)
    data = model.to_bytes()
    other = RNN(nO=6, nI=4, cell="lstm", depth=2).from_bytes(data)
    numpy.testing.assert_array_equal(model.predict(Xp).data, other.predict(Xp).data)


def test_resolves_from_registry():
    model = registry.resolve(
        {"layer": {"@layers": "spacy-rnn-ner.RNN.v1", "nO": 4, "cell": "gru", "depth": 2}}
    )["layer"]
    assert model.attrs == {"cell": "gru", "bidirectional": True, "depth": 2, "dropout": 0.0}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_kernels_match_ufunc_path(cell, bidirectional, monkeypatch):
    """The C kernels (numpy float32) and the xp-ufunc path (used on cupy and
    for other dtypes) compute the same outputs and gradients."""
    from spacy_rnn_ner.layers import cells

    if cells._cpu_kernels is None:
        pytest.skip("C kernels not built")
    model = RNN(nO=8, nI=5, cell=cell, bidirectional=bidirectional, depth=2)
    Xp, _ = make_padded([7, 3, 3, 1], 5)
    model.initialize(X=Xp)
    dY = numpy.random.RandomState(4).normal(size=(7, 4, 8)).astype("f") * valid_mask(Xp)

    def run():
        for name in model.param_names:
            model.set_grad(name, numpy.zeros_like(model.get_param(name)))
        Yp, backprop = model(Xp, is_train=True)
        dXp = backprop(Padded(dY.copy(), Yp.size_at_t, Yp.lengths, Yp.indices))
        return Yp.data.copy(), dXp.data.copy(), {n: model.get_grad(n).copy() for n in model.param_names}

    Y1, dX1, g1 = run()
    monkeypatch.setattr(cells, "_cpu_kernels", None)
    assert not cells.kernels_available(numpy, numpy.float32)
    Y2, dX2, g2 = run()
    numpy.testing.assert_allclose(Y1, Y2, rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(dX1, dX2, rtol=1e-4, atol=1e-5)
    for name in g1:
        numpy.testing.assert_allclose(g1[name], g2[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_backprop_leaves_output_gradient_alone(bidirectional, backend):
    model = RNN(nO=4, nI=3, bidirectional=bidirectional)
    Xp, _ = make_padded([3, 3], 3)
    model.initialize(X=Xp)
    Yp, backprop = model(Xp, is_train=True)
    dY = numpy.ones_like(Yp.data)
    backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
    assert (dY == 1).all()


def _run(model, Xp):
    """Output, input gradient and parameter gradients of one training step."""
    for name in model.param_names:
        if model.has_grad(name):
            model.set_grad(name, numpy.zeros_like(model.get_grad(name)))
    Yp, backprop = model(Xp, is_train=True)
    dXp = backprop(Padded(Yp.data * 0.5 + 1.0, Yp.size_at_t, Yp.lengths, Yp.indices))
    grads = {name: model.get_grad(name).copy() for name in model.param_names}
    return Yp.data.copy(), dXp.data.copy(), grads


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("depth", [1, 2])
def test_parallel_directions_identical(monkeypatch, cell, depth):
    """The two directions on two threads give bit-identical results."""
    import contextlib

    from spacy_rnn_ner.layers import rnn as rnn_module

    # Force the threaded path whether or not BLAS threads can be controlled.
    monkeypatch.setattr(rnn_module, "blas_limiter", contextlib.nullcontext)
    monkeypatch.setattr(rnn_module, "_blas_allows_threads", lambda: True)
    model = RNN(nO=8, nI=5, cell=cell, bidirectional=True, depth=depth)
    Xp, _ = make_padded([7, 4, 4, 1], 5)
    model.initialize(X=Xp)
    monkeypatch.setattr(rnn_module, "PARALLEL_DIRECTIONS", False)
    sequential = _run(model, Xp)
    predicted = model.predict(Xp).data.copy()
    monkeypatch.setattr(rnn_module, "PARALLEL_DIRECTIONS", True)
    parallel = _run(model, Xp)
    numpy.testing.assert_array_equal(model.predict(Xp).data, predicted)
    numpy.testing.assert_array_equal(parallel[0], sequential[0])
    numpy.testing.assert_array_equal(parallel[1], sequential[1])
    for name in model.param_names:
        numpy.testing.assert_array_equal(parallel[2][name], sequential[2][name], err_msg=name)


def test_parallel_directions_error_propagates(monkeypatch):
    import contextlib

    from spacy_rnn_ner.layers import rnn as rnn_module

    monkeypatch.setattr(rnn_module, "blas_limiter", contextlib.nullcontext)
    monkeypatch.setattr(rnn_module, "_blas_allows_threads", lambda: True)

    def fail():
        raise RuntimeError("in the worker thread")

    with pytest.raises(RuntimeError, match="worker thread"):
        rnn_module._run_directions(numpy, [lambda: 1, fail])


@pytest.mark.parametrize("is_train", [False, True])
def test_one_direction_holds_blas_to_one_thread(monkeypatch, backend, is_train):
    """A unidirectional layer runs with BLAS held to one thread too (when BLAS
    may use more and can be controlled): many small step products on two
    BLAS threads were several times slower on a busy machine."""
    import contextlib

    from spacy_rnn_ner.layers import rnn as rnn_module

    entered = []

    @contextlib.contextmanager
    def limiter():
        entered.append(True)
        yield

    monkeypatch.setattr(rnn_module, "_blas_allows_threads", lambda: True)
    monkeypatch.setattr(rnn_module, "blas_limiter", limiter)
    model = RNN(nO=8, nI=5, cell="lstm", bidirectional=False)
    Xp, _ = make_padded([4, 2], 5)
    model.initialize(X=Xp)
    Yp, backprop = model(Xp, is_train=is_train)
    uses_blas = is_train or backends.BACKENDS[backend].blas_in_inference
    assert entered == ([True] if uses_blas else [])
    if is_train:
        backprop(Yp)
        assert entered == [True, True]


def _forward_in_child(queue):
    model = RNN(nO=8, nI=5, cell="lstm", bidirectional=True)
    Xp, _ = make_padded([3, 2], 5)
    model.initialize(X=Xp)
    Yp, _ = model(Xp, is_train=False)
    queue.put(Yp.data.shape)


@pytest.mark.skipif(sys.platform != "linux", reason="needs the fork start method")
def test_parallel_directions_after_fork(monkeypatch):
    """A forked child (nlp.pipe(n_process=...)) inherits the parent's thread
    pool object but not its thread: it must make its own, not hang."""
    import contextlib
    import multiprocessing

    from spacy_rnn_ner.layers import rnn as rnn_module

    monkeypatch.setattr(rnn_module, "blas_limiter", contextlib.nullcontext)
    monkeypatch.setattr(rnn_module, "_blas_allows_threads", lambda: True)
    monkeypatch.setattr(rnn_module, "PARALLEL_DIRECTIONS", True)
    _forward_in_child(multiprocessing.Queue())  # creates the pool in this process
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forward_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("forward pass in a forked child hung")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (3, 2, 8)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(
    "lengths,block_rows",
    [([7, 4, 4, 1], 256), ([7, 4, 4, 1], 5), ([9, 6, 2, 2, 1], 1), ([300, 5], 256), ([3] * 300, 256)],
)
def test_inference_matches_training_forward(monkeypatch, cell, bidirectional, lengths, block_rows):
    """The inference path (input projection a block of steps at a time, one
    step of state) gives the training forward's output: one block, several,
    blocks of one step, blocks smaller than a step, padding."""
    from spacy_rnn_ner.layers import cells
    from spacy_rnn_ner.layers import rnn as rnn_module

    if not cells.kernels_available(numpy, numpy.dtype("float32")):
        pytest.skip("the inference path needs the C kernels")
    monkeypatch.setattr(rnn_module, "INFER_BLOCK_ROWS", block_rows)
    model = RNN(nO=8, nI=5, cell=cell, bidirectional=bidirectional, depth=2)
    Xp, _ = make_padded(lengths, 5)
    model.initialize(X=Xp)
    calls = []
    infer = rnn_module._direction_infer
    monkeypatch.setattr(rnn_module, "_direction_infer", lambda *a: calls.append(1) or infer(*a))
    Y_infer, backprop = model(Xp, is_train=False)
    assert len(calls) == 2 * (2 if bidirectional else 1)
    Y_train, _ = model(Xp, is_train=True)
    numpy.testing.assert_allclose(Y_infer.data, Y_train.data, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="is_train=False"):
        backprop(Y_infer)


def _needs_packed():
    from spacy_rnn_ner.layers import cells

    if not cells.kernels_available(numpy, numpy.dtype("float32")):
        pytest.skip("C kernels not built")
    if not cells._cpu_kernels.HAS_PACKED:
        pytest.skip("this CPU has no AVX-512F: the packed kernels are not used")
    return cells


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("nI,nO", [(5, 8), (33, 32), (3, 140)])
def test_packed_kernels_match_numpy_products(monkeypatch, cell, nI, nO):
    """With the packed kernels (AVX-512: a whole step forward in one kernel;
    the products of backprop) outputs and gradients, training and inference,
    equal those of the path with numpy's matmul. Hidden widths 4, 16 and 70
    per direction cover the masked unit tails (of 16- and 64-unit panels);
    13 sequences of different lengths cover the row tiles and the rows
    without a previous state."""
    cells = _needs_packed()
    model = RNN(nO=nO, nI=nI, cell=cell, bidirectional=True, depth=2)
    Xp, _ = make_padded([11, 9, 9, 8, 7, 7, 7, 6, 4, 3, 2, 2, 1], nI)
    model.initialize(X=Xp)
    rng = numpy.random.RandomState(1)
    for name in model.param_names:  # biases too (they start at zero)
        param = model.get_param(name)
        model.set_param(name, rng.normal(scale=0.1, size=param.shape).astype("f"))
    calls = []
    for name in ("run_steps", "gemm_packed", "wgrad", "run_back_steps"):
        kernel = getattr(cells._cpu_kernels, name)
        monkeypatch.setattr(
            cells._cpu_kernels, name, lambda *a, k=kernel, n=name: calls.append(n) or k(*a)
        )
    packed = _run(model, Xp), model.predict(Xp).data.copy()
    assert {"run_steps", "gemm_packed", "wgrad", "run_back_steps"} <= set(calls)
    monkeypatch.setattr(cells, "USE_PACKED", False)
    plain = _run(model, Xp), model.predict(Xp).data.copy()
    numpy.testing.assert_allclose(packed[1], plain[1], rtol=1e-5, atol=1e-6)
    (Y1, dX1, g1), (Y2, dX2, g2) = packed[0], plain[0]
    numpy.testing.assert_allclose(Y1, Y2, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(dX1, dX2, rtol=1e-4, atol=1e-5)
    for name in g1:
        numpy.testing.assert_allclose(g1[name], g2[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_cell_table_matches_the_kernels():
    """The per-cell table's C enum values are the extension's."""
    if cells._cpu_kernels is None:
        pytest.skip("C kernels not built")
    for name, spec in cells.CELLS.items():
        assert spec.code == getattr(cells._cpu_kernels, f"CELL_{name.upper()}")


@pytest.mark.parametrize("is_train", [False, True])
def test_layer_runs_the_selected_backend(monkeypatch, backend, is_train):
    """The layer hands each direction to the backend `select` picks, and to
    no other, in training and inference."""
    calls = []
    for other in backends.BACKENDS.values():
        method = "forward" if is_train else "infer"
        original = getattr(other, method)

        def spy(*args, name=other.name, original=original):
            calls.append(name)
            return original(*args)

        monkeypatch.setitem(backends.BACKENDS, other.name, other._replace(**{method: spy}))
    model = RNN(nO=8, nI=5, cell="gru", bidirectional=True, depth=2)
    Xp, _ = make_padded([4, 2], 5)
    model.initialize(X=Xp)
    model(Xp, is_train=is_train)
    assert calls == [backend] * 4


def test_float64_takes_the_xp_backend():
    assert backends.select(numpy, numpy.dtype("float64")).name == "numpy"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("variant", ["numpy-products", "blis-products", "c-backward", "c-backward-blis"])
def test_product_variants_match(monkeypatch, cell, variant):
    """The AVX-512 backend with its packed products swapped out (what
    benchmarks/gemm.py measures) computes the same outputs and gradients."""
    from spacy_rnn_ner.layers.backends import avx512, base, ckernels

    _needs_packed()
    model = RNN(nO=40, nI=7, cell=cell, bidirectional=True, depth=2)
    Xp, _ = make_padded([11, 9, 8, 4, 1], 7)
    model.initialize(X=Xp)
    packed = _run(model, Xp)
    if variant.startswith("c-backward"):
        monkeypatch.setattr(avx512, "PACKED_BACKWARD", False)
    else:
        monkeypatch.setattr(avx512, "PRODUCTS", numpy.matmul if variant == "numpy-products" else base.blis_matmul)
    if variant == "c-backward-blis":
        monkeypatch.setattr(ckernels, "MATMUL", base.blis_matmul)
    other = _run(model, Xp)
    numpy.testing.assert_array_equal(packed[0], other[0])
    numpy.testing.assert_allclose(packed[1], other[1], rtol=1e-4, atol=1e-5)
    for name in packed[2]:
        numpy.testing.assert_allclose(packed[2][name], other[2][name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_blis_matmul_on_the_c_backend(monkeypatch, backend):
    """ckernels.MATMUL = blis: same results as numpy's products."""
    from spacy_rnn_ner.layers.backends import base, ckernels

    if backend != "c":
        pytest.skip("the c backend's products")
    model = RNN(nO=16, nI=5, cell="lstm", bidirectional=True)
    Xp, _ = make_padded([6, 3, 1], 5)
    model.initialize(X=Xp)
    plain = _run(model, Xp), model.predict(Xp).data.copy()
    monkeypatch.setattr(ckernels, "MATMUL", base.blis_matmul)
    blis = _run(model, Xp), model.predict(Xp).data.copy()
    numpy.testing.assert_allclose(plain[1], blis[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(plain[0][:2], blis[0][:2]):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
