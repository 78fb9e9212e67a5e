"""VocabEmbed.v1 and WordCharEmbed.v2: a word table over the training
vocabulary, with a learned unknown-word row."""
import numpy
import pytest
import spacy
from numpy.testing import assert_allclose, assert_equal
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn_ner.layers.vocab_embed import (
    KEYS_ATTR,
    VocabEmbed,
    build_vocab,
    lookup_rows,
    vocab_layers,
)

from .util import check_param_grads

NLP = spacy.blank("en")


def docs(*texts):
    return [Doc(NLP.vocab, words=t.split()) if t else Doc(NLP.vocab, words=[]) for t in texts]


def norms(words):
    return numpy.array([[NLP.vocab.strings.add(w.lower())] for w in words], dtype="uint64")


def make_layer(**kwargs):
    layer = VocabEmbed(4, kwargs.pop("nV", 10), **kwargs)
    layer.initialize()
    return layer


def test_build_vocab_counts_min_freq_and_cap():
    layer = make_layer(nV=2, min_freq=2)
    size = build_vocab(layer, docs("a a a b b c", "", "d d b"))
    assert size == 2
    # b (3x) and a (3x) are the two most frequent; d (2x) is cut by nV, c by min_freq.
    rows = lookup_rows(layer, norms("a b c d".split())[:, 0])
    assert sorted(rows[:2].tolist()) == [1, 2]
    assert rows[2:].tolist() == [0, 0]


def test_build_vocab_is_deterministic_on_ties():
    first, second = make_layer(nV=2), make_layer(nV=2)
    build_vocab(first, docs("x y z w"))
    build_vocab(second, docs("w z y x"))
    assert_equal(first.attrs[KEYS_ATTR], second.attrs[KEYS_ATTR])


def test_unknown_words_share_the_unknown_row_and_known_words_differ():
    layer = make_layer()
    build_vocab(layer, docs("Vincent met Jules"))
    X = norms("vincent jules marsellus wallace".split())
    Y, _ = layer(X, is_train=False)
    E = layer.get_param("E")
    assert_allclose(Y[2], E[0])
    assert_allclose(Y[3], E[0])
    assert not numpy.allclose(Y[0], Y[1])
    assert not numpy.allclose(Y[0], E[0])


def test_empty_vocabulary_and_empty_input():
    layer = make_layer()
    Y, backprop = layer(norms(["anything"]), is_train=False)
    assert_allclose(Y[0], layer.get_param("E")[0])
    Y, backprop = layer(numpy.zeros((0, 1), dtype="uint64"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(Y).shape == (0, 1)


def test_unk_rate_replaces_known_words_in_training_only():
    fix_random_seed(0)
    layer = make_layer(unk_rate=0.3)
    build_vocab(layer, docs("a"))
    X = norms(["a"] * 4000)
    Y, _ = layer(X, is_train=True)
    unknown = numpy.all(Y == layer.get_param("E")[0], axis=1).mean()
    assert 0.27 < unknown < 0.33
    Y, _ = layer(X, is_train=False)
    assert not numpy.all(Y == layer.get_param("E")[0], axis=1).any()


def test_gradient_matches_finite_differences():
    layer = make_layer()
    build_vocab(layer, docs("a b"))
    X = norms("a b a zzz".split())
    W = numpy.random.default_rng(0).normal(size=(4, 4))
    Y, backprop = layer(X, is_train=False)
    backprop(W.astype("f"))
    analytic = {"E": layer.get_grad("E").copy()}

    def loss():
        return float((layer.predict(X).astype("float64") * W).sum())

    errors = check_param_grads(layer, loss, analytic, eps=1e-2)
    assert errors["E"] < 1e-3


def test_vocabulary_survives_serialization():
    layer = make_layer()
    build_vocab(layer, docs("Vincent met Jules"))
    X = norms("vincent met jules unseen".split())
    expected = layer.predict(X)
    loaded = VocabEmbed(4, 10).from_bytes(layer.to_bytes())
    assert_equal(loaded.attrs[KEYS_ATTR], layer.attrs[KEYS_ATTR])
    assert_allclose(loaded.predict(X), expected)


@pytest.mark.parametrize(
    "kwargs",
    [{"nO": 0}, {"nV": 0}, {"min_freq": 0}, {"unk_rate": 1.0}, {"unk_rate": -0.1}, {"attr": "NOPE"}],
)
def test_invalid_arguments(kwargs):
    args = {"nO": 4, "nV": 10, **kwargs}
    with pytest.raises(ValueError):
        VocabEmbed(args.pop("nO"), args.pop("nV"), **args)


EMBED_V2 = {
    "@architectures": "spacy-rnn-ner.WordCharEmbed.v2",
    "width": 16,
    "attrs": ["NORM", "SHAPE"],
    "rows": [100, 50],
    "word_dropout": 0.1,
    "char_width": 8,
    "char_nM": 4,
}
MODEL_V2 = {
    "@architectures": "spacy-rnn-ner.RNNCRFTagger.v1",
    "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": EMBED_V2,
        "encode": {"@architectures": "spacy-rnn-ner.RNNEncoder.v1", "width": 16},
    },
}


def name_examples(vocab, n):
    """n examples, each with its own person name, so that names after the
    10th are outside the component's initialization sample."""
    examples = []
    for i in range(n):
        words = [f"Name{i}", "met", "Jules", "."]
        doc = Doc(vocab, words=words)
        examples.append(Example.from_dict(doc, {"entities": ["U-PER", "O", "U-PER", "O"]}))
    return examples


def test_component_builds_the_vocabulary_from_all_training_docs():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": MODEL_V2})
    examples = name_examples(nlp.vocab, 15)
    nlp.initialize(lambda: examples)
    (layer,) = vocab_layers(nlp.get_pipe("rnn_ner").model)
    assert len(layer.attrs[KEYS_ATTR]) == 15 + 3
    rows = lookup_rows(layer, norms(["name14", "name99"])[:, 0])
    assert rows[0] > 0 and rows[1] == 0


def test_component_overfits_and_round_trips(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": MODEL_V2})
    examples = name_examples(nlp.vocab, 4)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(50):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["rnn_ner"] < 1.0
    doc = nlp("Name2 met Jules .")
    assert [(e.text, e.label_) for e in doc.ents] == [("Name2", "PER"), ("Jules", "PER")]
    nlp.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    (layer,) = vocab_layers(loaded.get_pipe("rnn_ner").model)
    assert len(layer.attrs[KEYS_ATTR]) == 4 + 3
    texts = ["Name2 met Jules .", "Somebody met Name0 ."]
    for a, b in zip(nlp.pipe(texts), loaded.pipe(texts)):
        assert_allclose(a.spans["rnn_ner"].attrs["scores"], b.spans["rnn_ner"].attrs["scores"])


def test_shared_tok2vec_gets_the_vocabulary_of_all_training_docs():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {**MODEL_V2["tok2vec"]}})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "*"}
    nlp.add_pipe("rnn_ner", config={"model": {**MODEL_V2, "tok2vec": listener}})
    examples = name_examples(nlp.vocab, 15)
    optimizer = nlp.initialize(lambda: examples)
    (layer,) = vocab_layers(nlp.get_pipe("tok2vec").model)
    assert len(layer.attrs[KEYS_ATTR]) == 15 + 3
    nlp.update(examples, sgd=optimizer)


def test_v2_config_trains_with_adam():
    """The word table's gradient reaches the optimizer: known rows change."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": MODEL_V2})
    examples = name_examples(nlp.vocab, 3)
    nlp.initialize(lambda: examples)
    (layer,) = vocab_layers(nlp.get_pipe("rnn_ner").model)
    before = layer.get_param("E").copy()
    optimizer = Adam(0.01)
    # The output layer starts at zero, so the first update reaches no embedding.
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    changed = numpy.any(layer.get_param("E") != before, axis=1)
    # The 3 names, "met", "Jules", "." and the unknown row (word dropout).
    assert changed[1:7].all()
