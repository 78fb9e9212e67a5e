"""with_padded_buckets: the RNN encoders pad by length bucket, with the same
outputs and gradients as thinc's with_padded, and load its saved models."""
import random

import numpy
import pytest
from numpy.testing import assert_allclose
from spacy.util import registry
from thinc.api import Dropout, chain, fix_random_seed, with_padded

from spacy_rnn_ner.batching import length_buckets
from spacy_rnn_ner.layers.locked_dropout import LockedDropout
from spacy_rnn_ner.layers.rnn import RNN
from spacy_rnn_ner.layers.with_padded_buckets import with_padded_buckets

WIDTH, N_IN = 8, 6
ENCODERS = ["spacy-rnn-ner.RNNEncoder.v1", "spacy-rnn-ner.RNNEncoder.v2"]


def mixed_inputs(long_len: int = 3000, n_short: int = 30, seed: int = 0):
    """One long sequence among short ones and an empty one, in random order."""
    rng = numpy.random.default_rng(seed)
    lengths = [long_len, 0] + [int(n) for n in rng.integers(1, 40, n_short)]
    random.Random(seed).shuffle(lengths)
    return [rng.normal(size=(n, N_IN)).astype("f") for n in lengths]


def build(name: str, cell: str = "lstm", depth: int = 2):
    fix_random_seed(0)
    build_encoder = registry.architectures.get(name)
    model = build_encoder(width=WIDTH, depth=depth, cell=cell, bidirectional=True)
    model.initialize(X=mixed_inputs(long_len=5, n_short=3))
    return model


def unbucketed(model):
    """The same model, sharing its weights, with thinc's with_padded instead:
    the encoder as it was before bucketing."""
    layers = [
        with_padded(node.layers[0]) if node.name.startswith("with_padded") else node
        for node in model.layers
    ]
    return chain(*layers)


def run(model, Xs, seeds=None):
    """Outputs, input gradients and weight gradients of one update, with
    output gradient i drawn from seed `seeds[i]` (default i)."""
    for node in model.walk():
        for name in node.grad_names:
            node.get_grad(name).fill(0)
    Ys, backprop = model.begin_update(Xs)
    seeds = range(len(Ys)) if seeds is None else seeds
    dYs = [
        numpy.random.default_rng(seed).normal(size=Y.shape).astype("f")
        for seed, Y in zip(seeds, Ys)
    ]
    dXs = backprop(dYs)
    grads = {
        (node.id, name): node.get_grad(name).copy()
        for node in model.walk()
        for name in node.grad_names
    }
    return Ys, dXs, grads


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_bucketed_equals_unbucketed_and_one_by_one(name, cell):
    model = build(name, cell)
    Xs = mixed_inputs()
    assert len(length_buckets([len(X) for X in Xs])) > 1  # the case at hand
    Ys, dXs, grads = run(model, Xs)
    Ys_0, dXs_0, grads_0 = run(unbucketed(model), Xs)
    assert grads.keys() == grads_0.keys() and grads
    for key in grads:
        # Sums over 3,000+ tokens in float32, in another order: compare at
        # the scale of the whole gradient.
        scale = float(numpy.abs(grads_0[key]).max())
        assert_allclose(grads[key], grads_0[key], rtol=1e-4, atol=1e-5 * scale)
    predicted = model.predict(Xs)
    for i, X in enumerate(Xs):
        assert Ys[i].shape == (len(X), WIDTH) and dXs[i].shape == X.shape
        assert_allclose(Ys[i], Ys_0[i], rtol=1e-5, atol=1e-6)
        assert_allclose(dXs[i], dXs_0[i], rtol=1e-5, atol=1e-6)
        assert_allclose(predicted[i], Ys[i], rtol=1e-5, atol=1e-6)
        (Y_1,), (dX_1,), _ = run(model, [X], seeds=[i])
        assert_allclose(Ys[i], Y_1, rtol=1e-5, atol=1e-6)
        assert_allclose(dXs[i], dX_1, rtol=1e-5, atol=1e-6)


def test_empty_batches():
    model = build(ENCODERS[0])
    assert model.predict([]) == []
    Ys, backprop = model.begin_update([numpy.zeros((0, N_IN), dtype="f")])
    assert Ys[0].shape == (0, WIDTH)
    assert backprop([Y.copy() for Y in Ys])[0].shape == (0, N_IN)


def test_padded_input_passes_through():
    model = build(ENCODERS[0])
    wrapper = model.layers[1]
    Xs = mixed_inputs(long_len=50, n_short=5)
    Yp = wrapper.predict(model.ops.list2padded(Xs))
    for Y, expected in zip(model.ops.padded2list(Yp), wrapper.predict(Xs)):
        assert_allclose(Y, expected, rtol=1e-5, atol=1e-6)


def test_no_backward_pass_after_inference():
    model = build(ENCODERS[0])
    Ys, backprop = model.layers[1](mixed_inputs(long_len=9, n_short=2), is_train=False)
    with pytest.raises(ValueError, match="is_train=False"):
        backprop(Ys)


def old_encoder(name: str):
    """The trees `RNNEncoder.v1`/`v2` built with thinc's with_padded (before
    bucketing), depth 2."""
    fix_random_seed(1)
    if name.endswith("v1"):
        return chain(Dropout(0.0), with_padded(RNN(nO=WIDTH, depth=2)))
    layers = [Dropout(0.0)]
    for _ in range(2):
        layers += [LockedDropout(0.0), with_padded(RNN(nO=WIDTH, depth=1))]
    return chain(*layers, LockedDropout(0.0))


@pytest.mark.parametrize("name", ENCODERS)
def test_models_saved_before_bucketing_load(name):
    old = old_encoder(name)
    old.initialize(X=mixed_inputs(long_len=5, n_short=3))
    new = registry.architectures.get(name)(width=WIDTH, depth=2, cell="lstm", bidirectional=True)
    assert [node.name for node in new.walk()] == [node.name for node in old.walk()]
    new.from_bytes(old.to_bytes())
    Xs = mixed_inputs()
    for Y_new, Y_old in zip(new.predict(Xs), old.predict(Xs)):
        assert_allclose(Y_new, Y_old, rtol=1e-5, atol=1e-6)
    # And the other way round: a model saved now loads into the old tree.
    fresh = old_encoder(name)
    fresh.from_bytes(new.to_bytes())
    for Y_new, Y_old in zip(new.predict(Xs[:5]), fresh.predict(Xs[:5])):
        assert_allclose(Y_new, Y_old, rtol=1e-5, atol=1e-6)
