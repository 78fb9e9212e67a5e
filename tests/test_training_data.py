"""Odd training data and diverging training: misaligned gold, unknown
labels, empty examples, non-finite scores and gradients give no loss or a
clear error, never corrupted weights."""
import math
import warnings

import numpy
import pytest
import spacy
from numpy.testing import assert_equal
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam

from .conftest import TRAIN_DATA, make_example, make_examples
from .robust import SMALL, TAGGERS, copy_of


def loss_and_grads(ner, examples):
    scores = ner.model.predict([eg.predicted for eg in examples])
    return ner.get_loss(examples, scores)


def test_misaligned_gold_offsets_get_no_loss(nlp):
    """spaCy warns (W030) and marks the tokens of offsets that don't match
    token boundaries missing; they get no loss and a zero gradient."""
    ner = copy_of(nlp).get_pipe("rnn_ner")
    doc = Doc(ner.vocab, words=["Ada", "Lovelace", "lives", "in", "London", "."])
    with pytest.warns(UserWarning, match="W030"):
        eg = Example.from_dict(doc, {"entities": [(0, 5, "PER"), (22, 28, "LOC")]})
    assert eg.get_aligned_ner() == [None, None, "O", "O", "U-LOC", "O"]
    loss, (d_scores,) = loss_and_grads(ner, [eg])
    assert not d_scores[:2].any()
    assert d_scores[2:].any(axis=1).all()
    missing = make_example(ner.vocab, [t.text for t in doc], ["-", "-", "O", "O", "U-LOC", "O"])
    loss2, (d_scores2,) = loss_and_grads(ner, [missing])
    assert loss == loss2 and numpy.array_equal(d_scores, d_scores2)


def test_misaligned_tokenization_gets_no_loss(nlp):
    """A predicted token spanning an entity boundary has no gold tag."""
    ner = copy_of(nlp).get_pipe("rnn_ner")
    words = ["Ada", "Lovelace", "lives", "in", "London", "."]
    reference = make_example(ner.vocab, words, ["B-PER", "L-PER", "O", "O", "U-LOC", "O"]).reference
    predicted = Doc(ner.vocab, words=["AdaLovelace", "lives", "inLondon", "."])
    eg = Example(predicted, reference)
    assert eg.get_aligned_ner() == ["U-PER", "O", None, "O"]
    loss, (d_scores,) = loss_and_grads(ner, [eg])
    assert not d_scores[2].any() and d_scores[[0, 1, 3]].any(axis=1).all()


def test_overlapping_gold_spans_raise_clear_error(nlp):
    """spaCy refuses overlapping entities when the Example is built (E103),
    so they never reach the loss; invalid BILUO sequences likewise (E067)."""
    doc = nlp.make_doc("Ada Lovelace lives in London")
    with pytest.raises(ValueError, match=r"E103.*overlap"):
        Example.from_dict(doc, {"entities": [(0, 12, "PER"), (4, 12, "LOC")]})
    with pytest.raises(ValueError, match="E067"):
        Example.from_dict(doc, {"entities": ["I-PER", "O", "O", "O", "O"]})


def test_unknown_label_warns_once_and_is_missing(nlp):
    nlp2 = spacy.blank("en")
    ner = nlp2.add_pipe("rnn_ner", config=SMALL)
    examples = make_examples(nlp2.vocab)
    ner.initialize(lambda: examples, nlp=nlp2, labels=["ORG", "PER"])
    words, tags = TRAIN_DATA[4]  # two LOC entities
    eg = make_example(nlp2.vocab, words, tags)
    missing = make_example(nlp2.vocab, words, ["-" if t.endswith("LOC") else t for t in tags])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, (d_scores,) = loss_and_grads(ner, [eg])
        optimizer = Adam(0.01)
        for _ in range(3):
            nlp2.update(examples, sgd=optimizer)
    messages = [str(w.message) for w in caught if "'LOC'" in str(w.message)]
    assert len(messages) == 1 and "'rnn_ner'" in messages[0]
    # The same loss and gradient as with those tokens marked missing.
    ner2 = copy_of(nlp2).get_pipe("rnn_ner")
    ner2_loss, (d2,) = loss_and_grads(ner2, [missing])
    loss_after, (d_after,) = loss_and_grads(ner, [eg])
    assert loss_after == ner2_loss and numpy.array_equal(d_after, d2)
    assert loss > 0 and not d_scores[[2, 4]].any()


def test_empty_examples(nlp):
    nlp2 = copy_of(nlp)
    ner = nlp2.get_pipe("rnn_ner")
    empty = [Example.from_dict(nlp2.make_doc(text), {"entities": []}) for text in ("", "")]
    assert ner.update(empty, sgd=Adam(0.01)) == {"rnn_ner": 0.0}
    assert ner.update([]) == {"rnn_ner": 0.0}
    # Empty examples add nothing to a batch's loss.
    real = make_examples(nlp2.vocab)[:2]
    loss_real, _ = loss_and_grads(ner, real)
    losses = ner.update(empty[:1] + real + empty[1:])
    assert math.isfinite(losses["rnn_ner"])
    assert losses["rnn_ner"] == pytest.approx(loss_real, rel=1e-6)


@pytest.mark.parametrize("tagger", TAGGERS)
@pytest.mark.parametrize("value", [numpy.nan, numpy.inf, -numpy.inf])
@pytest.mark.parametrize("token", [0, 2])  # token 2 has a missing gold tag
def test_non_finite_scores_raise(pipelines, tagger, value, token):
    ner = copy_of(pipelines(tagger)[0]).get_pipe("rnn_ner")
    eg = make_example(ner.vocab, ["Ada", "Lovelace", "lives"], ["B-PER", "L-PER", "-"])
    (scores,) = ner.model.predict([eg.predicted])
    scores = scores.copy()
    scores[token, 0] = value
    with pytest.raises(ValueError, match=r"'rnn_ner'.*not finite"):
        ner.get_loss([eg], [scores])


@pytest.mark.parametrize("tagger", TAGGERS)
def test_diverged_model_update_raises(pipelines, tagger):
    """NaN weights reach `update` as NaN scores: a clear error, no NaN loss."""
    nlp2 = copy_of(pipelines(tagger)[0])
    ner = nlp2.get_pipe("rnn_ner")
    output_layer = ner.model.get_ref("output_layer")
    b = output_layer.get_param("b").copy()
    b[0] = numpy.nan
    output_layer.set_param("b", b)
    with pytest.raises(ValueError, match=r"'rnn_ner'.*not finite"):
        nlp2.update(make_examples(nlp2.vocab))


def params_of(model):
    return {(node.id, name): node.get_param(name).copy()
            for node in model.walk() for name in node.param_names if node.has_param(name)}


@pytest.mark.parametrize("tagger", TAGGERS)
@pytest.mark.parametrize("value", [numpy.nan, numpy.inf])
def test_non_finite_gradient_raises_before_the_step(pipelines, tagger, value, monkeypatch):
    """A NaN or inf gradient (here injected into the scores' gradient) must
    not reach the weights: a clear error before the optimizer step."""
    nlp2 = copy_of(pipelines(tagger)[0])
    ner = nlp2.get_pipe("rnn_ner")
    examples = make_examples(nlp2.vocab)
    real_loss = ner._get_loss

    def broken_loss(examples, scores, **kwargs):
        loss, d_scores = real_loss(examples, scores, **kwargs)
        d_scores[0] = d_scores[0].copy()
        d_scores[0][0, 0] = value
        return loss, d_scores

    before = params_of(ner.model)
    optimizer = Adam(0.01)
    monkeypatch.setattr(ner, "_get_loss", broken_loss)
    with pytest.raises(ValueError, match=r"'rnn_ner': the gradient of parameter .* not finite"):
        nlp2.update(examples, sgd=optimizer)
    after = params_of(ner.model)
    assert before.keys() == after.keys()
    for key in before:
        assert_equal(after[key], before[key])
    # The bad gradients were discarded: training goes on with finite weights.
    monkeypatch.setattr(ner, "_get_loss", real_loss)
    nlp2.update(examples, sgd=optimizer)
    assert all(numpy.isfinite(p).all() for p in params_of(ner.model).values())
    assert any((params_of(ner.model)[k] != before[k]).any() for k in before)
