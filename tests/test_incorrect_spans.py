"""`incorrect_spans_key`: negative annotation, as in spaCy's `ner`. The
loss's math is checked against brute force in test_crf.py; here, that a
trained component unlearns the spans, for both kinds of tagger."""
import copy

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Adam, Model, fix_random_seed

from spacy_rnn_ner.losses import SoftmaxTagLoss
from spacy_rnn_ner.pipeline import DEFAULT_RNN_NER_MODEL
from spacy_rnn_ner.tags import make_tags

from .conftest import TRAIN_DATA, make_examples
from .util import numeric_grad

KEY = "incorrect"
ARCHITECTURES = {
    "softmax": "spacy-rnn-ner.RNNTagger.v1",
    "crf": "spacy-rnn-ner.RNNCRFTagger.v1",
}
# "Alan visited Berlin and Rome for Globex ." with Berlin (token 2) a LOC.
WORDS, GOLD = TRAIN_DATA[4]
BERLIN = (2, 3, "LOC")


def trained(tagger: str):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = copy.deepcopy(dict(DEFAULT_RNN_NER_MODEL))
    model["@architectures"] = ARCHITECTURES[tagger]
    model["tok2vec"]["embed"]["width"] = model["tok2vec"]["encode"]["width"] = 32
    nlp.add_pipe("rnn_ner", config={"model": model, "threshold": 0.001})
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    return nlp


def negative_example(nlp, spans, tags=None):
    """WORDS annotated with `tags` (default: all missing) and the spans that
    are not entities."""
    tags = ["-"] * len(WORDS) if tags is None else tags
    eg = Example.from_dict(Doc(nlp.vocab, words=WORDS), {"entities": tags})
    eg.reference.spans[KEY] = [Span(eg.reference, s, e, label=label) for s, e, label in spans]
    return eg


def prediction(nlp):
    """The entities of WORDS, and the probability of BERLIN (0 if it isn't
    even a recall-mode candidate)."""
    doc = nlp(Doc(nlp.vocab, words=WORDS))
    group = doc.spans["rnn_ner"]
    probs = {(s.start, s.end, s.label_): float(p) for s, p in zip(group, group.attrs["scores"])}
    return {(e.start, e.end, e.label_) for e in doc.ents}, probs.get(BERLIN, 0.0)


def train_with_negative(nlp, key, n_iter=30):
    ner = nlp.get_pipe("rnn_ner")
    ner.incorrect_spans_key = key
    # WORDS keeps its gold tags but Berlin's, which is missing: only the
    # negative span says anything about it.
    examples = make_examples(nlp.vocab, TRAIN_DATA[:4])
    tags = GOLD[:2] + ["-"] + GOLD[3:]
    examples.append(negative_example(nlp, [BERLIN], tags))
    optimizer = Adam(0.01)
    losses = {}
    for _ in range(n_iter):
        losses = nlp.update(examples, sgd=optimizer, losses={})
    return losses["rnn_ner"]


@pytest.mark.parametrize("tagger", ["softmax", "crf"])
def test_incorrect_spans_are_unlearned(tagger):
    nlp = trained(tagger)
    ents, prob = prediction(nlp)
    assert BERLIN in ents and prob > 0.5
    train_with_negative(nlp, KEY)
    ents_after, prob_after = prediction(nlp)
    assert BERLIN not in ents_after
    assert prob_after < 0.1
    # The rest of the sentence keeps its entities.
    assert ents_after == {(0, 1, "PER"), (4, 5, "LOC"), (6, 7, "ORG")}


def test_negative_span_loss_and_gradient_only_where_the_span_is_probable():
    nlp = trained("softmax")
    ner = nlp.get_pipe("rnn_ner")
    ner.incorrect_spans_key = KEY
    scores = ner.model.predict([Doc(nlp.vocab, words=WORDS)])
    # Berlin as a LOC is probable: loss and gradient; as a PER it isn't.
    loss, (d_scores,) = ner.get_loss([negative_example(nlp, [BERLIN])], scores)
    assert loss > 0.5 and d_scores[2].any()
    loss, (d_scores,) = ner.get_loss([negative_example(nlp, [(2, 3, "PER")])], scores)
    assert loss < 0.05
    # Labels the component doesn't have can't be predicted: no loss.
    loss, (d_scores,) = ner.get_loss([negative_example(nlp, [(2, 3, "MISC")])], scores)
    assert loss == 0.0 and not d_scores.any()
    # Without the setting, the span group means nothing to the component.
    ner.incorrect_spans_key = None
    loss, (d_scores,) = ner.get_loss([negative_example(nlp, [BERLIN])], scores)
    assert loss == 0.0 and not d_scores.any()


def test_incorrect_span_that_is_a_gold_entity_raises():
    nlp = trained("softmax")
    ner = nlp.get_pipe("rnn_ner")
    ner.incorrect_spans_key = KEY
    eg = make_examples(nlp.vocab, TRAIN_DATA[4:5])[0]
    eg.reference.spans[KEY] = [Span(eg.reference, 2, 3, label="LOC")]
    with pytest.raises(ValueError, match="E868"):
        nlp.update([eg])


def test_setting_from_config():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rnn_ner", config={"incorrect_spans_key": "neg"})
    assert ner.incorrect_spans_key == "neg"
    assert nlp.config["components"]["rnn_ner"]["incorrect_spans_key"] == "neg"
    assert spacy.blank("en").add_pipe("rnn_ner").incorrect_spans_key is None


def test_softmax_negative_span_gradient_is_for_the_logits():
    """The softmax layer's backprop takes the gradient of its logits: check
    the negative spans' one by finite differences through the softmax."""
    tags = make_tags(["A", "B"])
    loss_obj = SoftmaxTagLoss(Model("stub", lambda *args: None), tags)
    logits = numpy.random.default_rng(0).normal(0, 2, (5, len(tags)))
    truths = [[None, "O", None, None, None]]
    negatives = [[(2, 4, "A"), (0, 1, "B")]]

    def loss_at(z):
        p = numpy.exp(z - z.max(axis=1, keepdims=True))
        return loss_obj.get_loss([p / p.sum(axis=1, keepdims=True)], truths, negatives=negatives)

    (d_logits,), loss = loss_at(logits)
    assert loss > 0.0
    numeric = numeric_grad(lambda: loss_at(logits)[1], logits, 1e-6)
    # The cross-entropy part of token 1 is p - onehot, not a derivative of
    # the reported loss (the summed squared gradients): compare the others.
    others = [0, 2, 3, 4]
    numpy.testing.assert_allclose(d_logits[others], numeric[others], atol=1e-8)
