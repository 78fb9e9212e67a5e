"""SelfAttention.v1: against a direct full-matrix implementation, finite
differences, masking, the window, memory on a long doc, serialization."""
import math
import tracemalloc

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam, fix_random_seed, set_dropout_rate

from spacy_rnn_ner.layers import attention
from spacy_rnn_ner.layers.attention import SelfAttention, distance_buckets

from .util import max_rel_error, numeric_grad


def make_layer(width=8, dtype="float64", seed=0, **kwargs):
    fix_random_seed(seed)
    layer = SelfAttention(width, **kwargs)
    layer.initialize()
    rng = numpy.random.RandomState(seed)
    for name in layer.param_names:
        # Random, not the init values (zero biases, unit gains), so that
        # every gradient is exercised.
        value = rng.uniform(-0.5, 0.5, layer.get_param(name).shape)
        if name == "G":
            value += 1.0
        layer.set_param(name, value.astype(dtype))
    return layer


def reference(layer, X):
    """Self-attention of one doc written out directly: full score matrix."""
    n, width = X.shape
    H = layer.attrs["heads"]
    d = width // H
    p = {name: layer.get_param(name) for name in layer.param_names}
    QKV = X @ p["Wqkv"].T + p["bqkv"]
    out = numpy.zeros_like(X)
    i, j = numpy.meshgrid(numpy.arange(n), numpy.arange(n), indexing="ij")
    for h in range(H):
        q = QKV[:, h * d : (h + 1) * d]
        k = QKV[:, width + h * d : width + (h + 1) * d]
        v = QKV[:, 2 * width + h * d : 2 * width + (h + 1) * d]
        S = q @ k.T / math.sqrt(d)
        if "R" in p:
            S = S + p["R"][h][distance_buckets(numpy, j - i, layer.attrs["n_buckets"], layer.attrs["max_distance"])]
        if layer.attrs["window"]:
            S = numpy.where(numpy.abs(j - i) <= layer.attrs["window"], S, -numpy.inf)
        P = numpy.exp(S - S.max(axis=1, keepdims=True))
        out[:, h * d : (h + 1) * d] = (P / P.sum(axis=1, keepdims=True)) @ v
    Z = X + out @ p["Wo"].T + p["bo"]
    N = (Z - Z.mean(1, keepdims=True)) / numpy.sqrt(Z.var(1, keepdims=True) + attention.LN_EPS)
    return N * p["G"] + p["B"]


SETTINGS = [
    {"heads": 2, "window": 0, "distance_bias": True},
    {"heads": 1, "window": 0, "distance_bias": False},
    {"heads": 2, "window": 2, "distance_bias": True},
    {"heads": 4, "window": 1, "distance_bias": False},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_matches_full_matrix_reference(settings):
    layer = make_layer(**settings, n_buckets=8, max_distance=8)
    rng = numpy.random.RandomState(1)
    Xs = [rng.normal(size=(n, 8)) for n in (13, 1, 5, 0, 30)]
    Ys = layer.predict(Xs)
    for X, Y in zip(Xs, Ys):
        assert Y.shape == X.shape
        if len(X):
            assert_allclose(Y, reference(layer, X), rtol=1e-10, atol=1e-10)


def test_small_blocks_give_the_same_result(monkeypatch):
    """Blocked computation equals one block."""
    rng = numpy.random.RandomState(2)
    Xs = [rng.normal(size=(n, 8)) for n in (40, 17, 3)]
    for window in (0, 3):
        layer = make_layer(heads=2, window=window)
        one_block = layer.predict(Xs)
        monkeypatch.setattr(attention, "BLOCK_ELEMENTS", 7)
        for Y, Y_blocked in zip(one_block, layer.predict(Xs)):
            assert_allclose(Y_blocked, Y, rtol=1e-10, atol=1e-12)
        monkeypatch.undo()


def test_distance_buckets():
    rel = numpy.arange(-300, 301)
    b = distance_buckets(numpy, rel, 32, 128)
    assert b.min() == 0 and b.max() == 31
    assert b[300] == 0  # distance 0
    # Exact near 0, one bucket per sign, monotone in distance, clipped far away.
    assert list(b[301:309]) == list(range(17, 25))
    assert list(b[292:300][::-1]) == list(range(1, 9))
    assert numpy.all(numpy.diff(b[301:]) >= 0)
    assert b[-1] == b[300 + 128] == 31 and b[0] == 15


@pytest.mark.parametrize("settings", SETTINGS)
def test_gradients_match_finite_differences(settings):
    layer = make_layer(width=4, **settings, n_buckets=8, max_distance=4)
    rng = numpy.random.RandomState(3)
    Xs = [rng.normal(size=(n, 4)) for n in (6, 2, 4)]
    weights = [rng.normal(size=X.shape) for X in Xs]

    def loss() -> float:
        return float(sum((Y * w).sum() for Y, w in zip(layer.predict(Xs), weights)))

    Ys, backprop = layer.begin_update(Xs)
    dXs = backprop(weights)
    for X, dX in zip(Xs, dXs):
        assert max_rel_error(dX, numeric_grad(loss, X, 1e-6)) < 1e-5
    for name in layer.param_names:
        analytic = layer.get_grad(name)
        assert max_rel_error(analytic, numeric_grad(loss, layer.get_param(name), 1e-6)) < 1e-5, name


@pytest.mark.parametrize("lengths", [(20, 3, 0, 19, 1, 7), (6, 0, 6, 6), (5, 5)])
def test_padding_and_other_docs_do_not_change_a_doc(lengths):
    """Batched (docs padded together, or equal lengths with and without a
    gap) == one by one, forward and backward."""
    layer = make_layer(heads=2, window=3)
    rng = numpy.random.RandomState(4)
    Xs = [rng.normal(size=(n, 8)) for n in lengths]
    dYs = [rng.normal(size=X.shape) for X in Xs]
    Ys, backprop = layer.begin_update(Xs)
    dXs = backprop(dYs)
    batched_grads = {name: layer.get_grad(name).copy() for name in layer.param_names}
    total = {name: 0.0 for name in layer.param_names}
    for X, Y, dY, dX in zip(Xs, Ys, dYs, dXs):
        for name in layer.param_names:
            layer.set_grad(name, numpy.zeros_like(layer.get_param(name)))
        (Y1,), bp = layer.begin_update([X])
        (dX1,) = bp([dY])
        assert_allclose(Y, Y1, rtol=1e-12, atol=1e-12)
        assert_allclose(dX, dX1, rtol=1e-12, atol=1e-12)
        for name in layer.param_names:
            total[name] = total[name] + layer.get_grad(name)
    for name in layer.param_names:
        assert_allclose(batched_grads[name], total[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("window", [1, 4])
def test_tokens_outside_the_window_have_no_effect(window):
    layer = make_layer(heads=2, window=window)
    X = numpy.random.RandomState(5).normal(size=(30, 8))
    (Y,) = layer.predict([X])
    i, far, near = 10, 10 + window + 1, 10 + window
    X2 = X.copy()
    X2[far] += 5.0
    (Y2,) = layer.predict([X2])
    assert_allclose(Y2[i], Y[i], rtol=1e-12, atol=1e-12)
    assert_allclose(Y2[i - window - 1], Y[i - window - 1], rtol=1e-12, atol=1e-12)
    X3 = X.copy()
    X3[near] += 5.0
    (Y3,) = layer.predict([X3])
    assert numpy.abs(Y3[i] - Y[i]).max() > 1e-3
    # Without a window, every token sees every other.
    whole = make_layer(heads=2, window=0)
    (Y, Y2) = whole.predict([X, X2])
    assert numpy.abs(Y2[i] - Y[i]).max() > 1e-3


def _peak_memory(layer, n: int, width: int) -> int:
    X = numpy.random.RandomState(6).normal(size=(n, width)).astype("f")
    tracemalloc.start()
    try:
        (Y,), backprop = layer.begin_update([X])
        (dX,) = backprop([numpy.ones_like(Y)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Y.shape == dX.shape == (n, width)
    assert numpy.isfinite(Y).all() and numpy.isfinite(dX).all()
    return peak


def test_long_document_memory_is_bounded():
    """20,000 tokens, window 64, forward + backward: memory grows linearly
    with the length and stays a few dozen (n x width) arrays, far below one
    20,000 x 20,000 float32 score matrix per head (1.6 GB). Measured: ~90
    MB peak at 20,000 tokens (about 18 arrays of n x width)."""
    width = 64
    layer = make_layer(width=width, dtype="float32", heads=4, window=64)
    peak_5k = _peak_memory(layer, 5_000, width)
    peak_20k = _peak_memory(layer, 20_000, width)
    assert peak_20k < 40 * 20_000 * width * 4, peak_20k / 2**20
    # Linear (x4), not quadratic (x16), in the length.
    assert peak_20k < 4.5 * peak_5k, (peak_5k, peak_20k)


def test_whole_document_memory_is_bounded():
    """Window 0: every block's scores and bias are freed before the next,
    never the whole (heads x n x n) set of them: peak memory hardly grows
    from 2,000 to 4,000 tokens (kept, they would make it x4)."""
    layer = make_layer(width=8, dtype="float32", heads=2, window=0)
    peak_2k = _peak_memory(layer, 2_000, 8)
    peak_4k = _peak_memory(layer, 4_000, 8)
    assert peak_4k < 1.3 * peak_2k, (peak_2k, peak_4k)


def test_dropout_only_in_training_and_not_overridden():
    layer = make_layer(heads=2, dropout=0.5)
    X = numpy.random.RandomState(7).normal(size=(12, 8))
    set_dropout_rate(layer, 0.0)
    assert layer.attrs[attention.RATE_ATTR] == 0.5
    (Y,) = layer.predict([X])
    assert_allclose(layer.predict([X])[0], Y)
    (Yt,), _ = layer.begin_update([X])
    assert not numpy.allclose(Yt, Y)


def test_serialization_round_trip():
    layer = make_layer(dtype="float32", heads=2, window=3)
    X = numpy.random.RandomState(8).normal(size=(9, 8)).astype("f")
    fresh = SelfAttention(8, heads=2, window=3)
    fresh.initialize()
    fresh.from_bytes(layer.to_bytes())
    assert_allclose(fresh.predict([X])[0], layer.predict([X])[0])
    assert fresh.attrs == layer.attrs


def test_registered_and_infers_width():
    build = registry.layers.get("spacy-rnn-ner.SelfAttention.v1")
    layer = build(heads=2)
    X = numpy.zeros((3, 6), dtype="f")
    layer.initialize(X=[X])
    assert layer.get_dim("nO") == 6
    assert layer.predict([X])[0].shape == (3, 6)
    assert layer.predict([]) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"heads": 0}, {"window": -1}, {"heads": 2.0}, {"dropout": 1.0}, {"n_buckets": 2}, {"n_buckets": 9},
     {"max_distance": 3}],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError, match="SelfAttention"):
        SelfAttention(8, **kwargs)


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        SelfAttention(6, heads=4)
    layer = SelfAttention(heads=4)
    with pytest.raises(ValueError, match="divisible"):
        layer.initialize(X=[numpy.zeros((2, 6), dtype="f")])


# --- RNNAttentionEncoder.v1 ---------------------------------------------------


def _attention_encoder(**kwargs):
    build = registry.architectures.get("spacy-rnn-ner.RNNAttentionEncoder.v1")
    return build(**{"width": 8, "depth": 1, "attention_heads": 2, **kwargs})


@pytest.mark.parametrize("window", [0, 2])
def test_encoder_shapes_and_batching(window):
    fix_random_seed(0)
    model = _attention_encoder(attention_window=window)
    Xs = [numpy.random.uniform(-1, 1, (n, 5)).astype("f") for n in (3, 1, 0, 11)]
    model.initialize(X=Xs)
    assert model.get_dim("nO") == 8
    Ys = model.predict(Xs)
    assert [Y.shape for Y in Ys] == [(3, 8), (1, 8), (0, 8), (11, 8)]
    for X, Y in zip(Xs, Ys):
        assert_allclose(model.predict([X])[0], Y, rtol=1e-5, atol=1e-6)


def test_encoder_width_must_divide_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        _attention_encoder(width=10, attention_heads=4)


def test_encoder_pipeline_learns_and_round_trips():
    fix_random_seed(0)
    config = {"model": {"tok2vec": {"encode": {
        "@architectures": "spacy-rnn-ner.RNNAttentionEncoder.v1", "width": 32,
        "attention_heads": 4, "attention_window": 3, "attention_dropout": 0.1}}}}
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=config)
    text = "Vincent and Jules drove to Hollywood ."
    entities = {"entities": [(0, 7, "PER"), (12, 17, "PER"), (27, 36, "LOC")]}
    examples = [Example.from_dict(nlp.make_doc(text), entities)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    losses = [nlp.update(examples, sgd=optimizer)["rnn_ner"] for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0]
    predicted = [(e.text, e.label_) for e in nlp(text).ents]
    assert predicted == [("Vincent", "PER"), ("Jules", "PER"), ("Hollywood", "LOC")]
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config=config)
    nlp2.from_bytes(nlp.to_bytes())
    assert [(e.text, e.label_) for e in nlp2(text).ents] == predicted
    assert_allclose(nlp2.get_pipe("rnn_ner").predict([nlp2.make_doc(text)])[0],
                    nlp.get_pipe("rnn_ner").predict([nlp.make_doc(text)])[0], rtol=1e-6)
