"""Locked (variational) dropout and the RNNEncoder.v2 architecture."""
import numpy
import pytest
import spacy
from numpy.testing import assert_allclose, assert_equal
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam, fix_random_seed, set_dropout_rate

from spacy_rnn_ner.layers.locked_dropout import LockedDropout

from .util import max_rel_error, numeric_grad


def test_locked_dropout_one_mask_per_sequence():
    fix_random_seed(0)
    layer = LockedDropout(0.5)
    Xs = [numpy.ones((n, 400), dtype="f") for n in (7, 1, 30)]
    Ys, backprop = layer(Xs, is_train=True)
    for Y in Ys:
        # Every token of a sequence loses the same columns; kept ones are scaled.
        assert_equal(Y, numpy.broadcast_to(Y[0], Y.shape))
        assert set(numpy.unique(Y).tolist()) == {0.0, 2.0}
        assert 0.4 < (Y[0] == 0).mean() < 0.6
    # Sequences get different masks.
    assert not numpy.array_equal(Ys[0][0], Ys[2][0])
    dXs = backprop([numpy.full_like(X, 3.0) for X in Xs])
    for dX, Y in zip(dXs, Ys):
        assert_equal(dX, 3.0 * Y)


def test_locked_dropout_identity_outside_training():
    layer = LockedDropout(0.5)
    Xs = [numpy.random.rand(4, 3).astype("f")]
    Ys, backprop = layer(Xs, is_train=False)
    assert Ys[0] is Xs[0]
    assert layer([], is_train=True)[0] == []


def test_locked_dropout_not_overridden_by_training_dropout():
    layer = LockedDropout(0.3)
    set_dropout_rate(layer, 0.0)
    Ys, _ = layer([numpy.ones((2, 5000), dtype="f")], is_train=True)
    assert 0.25 < (Ys[0][0] == 0).mean() < 0.35


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2, True])
def test_locked_dropout_invalid_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        LockedDropout(rate)


def _encoder(**kwargs):
    build = registry.architectures.get("spacy-rnn-ner.RNNEncoder.v2")
    return build(**{"width": 6, "depth": 2, "cell": "lstm", "bidirectional": True, **kwargs})


def test_encoder_v2_shapes_and_inference_is_deterministic():
    fix_random_seed(0)
    model = _encoder(dropout=0.3)
    Xs = [numpy.random.uniform(-1, 1, (n, 5)).astype("f") for n in (3, 1, 8)]
    model.initialize(X=Xs)
    Ys = model.predict(Xs)
    assert [Y.shape for Y in Ys] == [(3, 6), (1, 6), (8, 6)]
    assert_allclose(model.predict(Xs)[2], Ys[2])
    # Batched equals one by one: no padding leaks into the outputs.
    for X, Y in zip(Xs, Ys):
        assert_allclose(model.predict([X])[0], Y, rtol=1e-5, atol=1e-6)


def test_encoder_v2_gradients_finite_differences():
    """With the dropout masks fixed by the seed, backprop matches central
    differences of the training forward in float64, for the input and every
    parameter of both stacked layers."""
    fix_random_seed(1)
    model = _encoder(width=4, dropout=0.4)
    Xs = [numpy.random.uniform(-1, 1, (n, 3)) for n in (4, 2)]
    model.initialize(X=[X.astype("f") for X in Xs])
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, node.get_param(name).astype("float64"))
    dYs = [numpy.random.uniform(-1, 1, (n, 4)) for n in (4, 2)]

    def loss() -> float:
        fix_random_seed(2)
        Ys, _ = model.begin_update(Xs)
        return float(sum((Y * dY).sum() for Y, dY in zip(Ys, dYs)))

    fix_random_seed(2)
    _, backprop = model.begin_update(Xs)
    dXs = backprop(dYs)
    for X, dX in zip(Xs, dXs):
        assert max_rel_error(dX, numeric_grad(loss, X, 1e-6)) < 1e-4
    rnns = [node for node in model.walk() if node.name == "rnn"]
    assert len(rnns) == 2
    for rnn in rnns:
        for name in rnn.param_names:
            numeric = numeric_grad(loss, rnn.get_param(name), 1e-6)
            assert max_rel_error(rnn.get_grad(name), numeric) < 1e-4, name


def test_encoder_v2_pipeline_learns_and_round_trips():
    fix_random_seed(0)
    config = {"model": {"tok2vec": {"encode": {
        "@architectures": "spacy-rnn-ner.RNNEncoder.v2", "width": 32, "depth": 2,
        "cell": "lstm", "bidirectional": True, "dropout": 0.2}}}}
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=config)
    text = "Vincent and Jules drove to Hollywood ."
    entities = {"entities": [(0, 7, "PER"), (12, 17, "PER"), (27, 36, "LOC")]}
    examples = [Example.from_dict(nlp.make_doc(text), entities)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(60):
        nlp.update(examples, sgd=optimizer)
    predicted = [(e.text, e.label_) for e in nlp(text).ents]
    assert predicted == [("Vincent", "PER"), ("Jules", "PER"), ("Hollywood", "LOC")]
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config=config)
    nlp2.from_bytes(nlp.to_bytes())
    assert [(e.text, e.label_) for e in nlp2(text).ents] == predicted
