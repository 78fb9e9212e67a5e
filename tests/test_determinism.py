"""Several processes and seeds: n_process=2 gives the same annotations as one
process; the same seed gives the same weights and predictions."""

import numpy
import spacy
from numpy.testing import assert_equal
from spacy.tokens import Doc
from thinc.api import Adam, fix_random_seed

from .conftest import TRAIN_DATA, make_examples
from .robust import HARD, SMALL, ent_tuples


def pipe_texts():
    texts = [" ".join(words) for words, _ in TRAIN_DATA]
    texts += ["", " ", "\n\n", "👩‍👩‍👧 מרחבא e\u0301 \x00", "Ada" * 50]
    texts += [f"{HARD[i % len(HARD)]} met Grace Hopper in {HARD[(i * 5) % len(HARD)]} ." for i in range(40)]
    return texts[:50]


def token_attrs(doc):
    return doc.to_array(["ENT_IOB", "ENT_TYPE"]).tolist()


def test_multiprocess_pipe_equals_single_process(nlp):
    texts = pipe_texts()
    assert len(texts) == 50
    single = list(nlp.pipe(texts))
    multi = list(nlp.pipe(texts, n_process=2, batch_size=7))
    assert [d.text for d in multi] == texts
    assert [ent_tuples(d) for d in multi] == [ent_tuples(d) for d in single]
    assert [token_attrs(d) for d in multi] == [token_attrs(d) for d in single]
    assert sum(len(d.ents) for d in single) > 20


def _params(model):
    return [
        (node.name, name, node.get_param(name).copy())
        for node in model.walk()
        for name in node.param_names
        if node.has_param(name)
    ]


def _train_with_seed(seed):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=SMALL)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(4):
        nlp.update(examples, sgd=optimizer, drop=0.3)  # dropout draws random numbers
    ner = nlp.get_pipe("rnn_ner")
    docs = [Doc(nlp.vocab, words=words) for words, _ in TRAIN_DATA]
    return _params(ner.model), ner.predict(docs), [ent_tuples(d) for d in nlp.pipe(docs)]


def test_same_seed_same_weights_and_predictions():
    params_a, scores_a, ents_a = _train_with_seed(0)
    params_b, scores_b, ents_b = _train_with_seed(0)
    assert [(n, p) for n, p, _ in params_a] == [(n, p) for n, p, _ in params_b]
    for (_, _, a), (_, _, b) in zip(params_a, params_b):
        assert_equal(a, b)
    for a, b in zip(scores_a, scores_b):
        assert_equal(a, b)
    assert ents_a == ents_b
    # Not vacuous: another seed gives other weights.
    params_c, _, _ = _train_with_seed(1)
    assert any(not numpy.array_equal(a, c) for (_, _, a), (_, _, c) in zip(params_a, params_c))
