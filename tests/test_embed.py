"""The embedding layers: character CNN, word dropout, WordCharEmbed."""
import numpy
import pytest
import spacy
from numpy.testing import assert_allclose, assert_equal
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, fix_random_seed, set_dropout_rate
from spacy.util import registry

from spacy_rnn_ner.layers.char_cnn import CharCNN, char_ids
from spacy_rnn_ner.layers.token_dropout import TokenDropout

from .util import check_param_grads

VOCAB = spacy.blank("en").vocab


def docs(*texts):
    return [Doc(VOCAB, words=text.split()) if text else Doc(VOCAB, words=[]) for text in texts]


def test_char_ids_markers_lengths_and_unicode():
    ids, lengths, inverse = char_ids(docs("ab Köln 東京🙂"), max_chars=20)
    assert_equal(lengths, [4, 6, 5])
    assert_equal(inverse, [0, 1, 2])
    assert ids.tolist() == [2, ord("a"), ord("b"), 3,
                            2, *map(ord, "Köln"), 3,
                            2, *map(ord, "東京🙂"), 3]


def test_char_ids_once_per_distinct_text():
    ids, lengths, inverse = char_ids(docs("ab cd ab", "", "cd Ab"), max_chars=20)
    assert_equal(lengths, [4, 4, 4])
    assert_equal(inverse, [0, 1, 0, 1, 2])
    assert "".join(map(chr, ids)) == "\x02ab\x03\x02cd\x03\x02Ab\x03"


def test_char_ids_long_token_keeps_both_ends():
    word = "abcdefghij" + "x" * 50 + "0123456789"
    ids, lengths, _ = char_ids(docs(word), max_chars=20)
    assert lengths.tolist() == [22]
    assert "".join(map(chr, ids[1:-1])) == "abcdefghij0123456789"


@pytest.mark.parametrize("texts", [("",), ("", ""), ("a b", "", "c")])
def test_char_cnn_shapes_with_empty_docs(texts):
    model = CharCNN(width=8, nM=4, rows=50)
    model.initialize()
    batch = docs(*texts)
    Y, backprop = model(batch, is_train=True)
    assert [y.shape for y in Y] == [(len(d), 8) for d in batch]
    assert backprop([numpy.ones_like(y) for y in Y]) == []


def test_char_cnn_sees_middle_characters():
    """Fixed first/last byte features cannot tell these apart; the CNN can."""
    model = CharCNN(width=16, nM=8, rows=200)
    model.initialize()
    Y, _ = model(docs("Abcdefgh_ijklmnop Abcdefgh-ijklmnop"), is_train=False)
    assert not numpy.allclose(Y[0][0], Y[0][1])


def test_char_cnn_batch_equals_one_by_one():
    model = CharCNN(width=8, nM=4, rows=50)
    model.initialize()
    batch = docs("Vincent and Jules", "", "Marsellus Wallace")
    together, _ = model(batch, is_train=False)
    for doc, Y in zip(batch, together):
        alone, _ = model([doc], is_train=False)
        assert_allclose(alone[0], Y, rtol=1e-6)


def test_char_cnn_gradients_finite_differences():
    """Every parameter against central differences. Thinc's Maxout runs in
    float32 only, so the loss is summed in float64 and the tolerance is loose."""
    fix_random_seed(0)
    model = CharCNN(width=5, nM=3, rows=20)
    model.initialize()
    rng = numpy.random.default_rng(0)
    for node in model.walk():
        for name in node.param_names:
            param = node.get_param(name)
            node.set_param(name, (param + rng.normal(scale=0.3, size=param.shape)).astype("f"))
    # Repeated words: their gradients are summed into one row per text.
    batch = docs("ab cde ab", "f ab cde")
    weights = [rng.normal(size=(len(d), 5)) for d in batch]

    def loss():
        Y, _ = model(batch, is_train=False)
        return float(sum((y.astype("float64") * w).sum() for y, w in zip(Y, weights)))

    _, backprop = model(batch, is_train=False)
    backprop([w.astype("f") for w in weights])
    for node in model.walk():
        if not node.param_names:
            continue
        analytic = {name: node.get_grad(name) for name in node.param_names}
        errors = check_param_grads(node, loss, analytic, eps=1e-3)
        assert max(errors.values()) < 2e-2, (node.name, errors)


def test_char_cnn_repeated_words_get_the_same_rows():
    model = CharCNN(width=8, nM=4, rows=50)
    model.initialize()
    (Y,), _ = model(docs("Jules and Jules"), is_train=True)
    assert_equal(Y[0], Y[2])
    assert not numpy.array_equal(Y[0], Y[1])


def test_char_cnn_invalid_settings():
    with pytest.raises(ValueError, match="window_size"):
        CharCNN(window_size=-1)
    with pytest.raises(ValueError, match="width"):
        CharCNN(width=0)


def test_token_dropout_zeroes_whole_rows_in_training_only():
    fix_random_seed(0)
    layer = TokenDropout(0.5)
    X = numpy.ones((2000, 4), dtype="f")
    Y, backprop = layer(X, is_train=True)
    rows = Y.sum(axis=1)
    assert set(numpy.unique(rows).tolist()) == {0.0, 4.0}
    assert 0.4 < (rows == 0).mean() < 0.6
    dX = backprop(numpy.full_like(X, 3.0))
    assert_equal(dX == 0, Y == 0)
    Y_pred, _ = layer(X, is_train=False)
    assert_equal(Y_pred, X)


def test_token_dropout_not_overridden_by_training_dropout():
    layer = TokenDropout(0.3)
    set_dropout_rate(layer, 0.0)
    Y, _ = layer(numpy.ones((5000, 1), dtype="f"), is_train=True)
    assert 0.25 < (Y == 0).mean() < 0.35


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_token_dropout_invalid_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        TokenDropout(rate)


def test_word_char_embed_rows_must_match_attrs():
    build = registry.architectures.get("spacy-rnn-ner.WordCharEmbed.v1")
    with pytest.raises(ValueError, match="rows"):
        build(width=8, attrs=["NORM", "SHAPE"], rows=[10])


WORD_CHAR_EMBED = {
    "@architectures": "spacy-rnn-ner.WordCharEmbed.v1",
    "width": 16,
    "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    "rows": [200, 50, 50, 50],
    "word_dropout": 0.2,
    "char_width": 8,
    "char_nM": 4,
}


def test_word_char_embed_pipeline_learns_and_round_trips():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": {"tok2vec": {"embed": WORD_CHAR_EMBED}}})
    text = "Vincent and Jules drove to Hollywood ."
    doc = nlp.make_doc(text)
    entities = {"entities": [(0, 7, "PER"), (12, 17, "PER"), (27, 36, "LOC")]}
    examples = [Example.from_dict(doc, entities)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    predicted = [(e.text, e.label_) for e in nlp(text).ents]
    assert predicted == [("Vincent", "PER"), ("Jules", "PER"), ("Hollywood", "LOC")]
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config={"model": {"tok2vec": {"embed": WORD_CHAR_EMBED}}})
    nlp2.from_bytes(nlp.to_bytes())
    assert [(e.text, e.label_) for e in nlp2(text).ents] == predicted
    scores = nlp(text).spans["rnn_ner"].attrs["scores"]
    assert_allclose(nlp2(text).spans["rnn_ner"].attrs["scores"], scores, rtol=1e-6)


def test_word_char_embed_with_static_vectors():
    """include_static_vectors adds the vocab's vectors: the model changes
    with the vectors table and still trains."""
    from spacy.vectors import Vectors

    fix_random_seed(0)
    nlp = spacy.blank("en")
    words = ["Vincent", "and", "Jules", "drove", "to", "Hollywood", "."]
    data = numpy.random.default_rng(0).normal(size=(len(words), 6)).astype("f")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    embed = dict(WORD_CHAR_EMBED, include_static_vectors=True)
    nlp.add_pipe("rnn_ner", config={"model": {"tok2vec": {"embed": embed}}})
    text = " ".join(words[:-1]) + " ."
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": [(0, 7, "PER"), (12, 17, "PER")]})]
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    assert [(e.text, e.label_) for e in nlp(text).ents] == [("Vincent", "PER"), ("Jules", "PER")]
    before = nlp("Vincent and Jules").spans["rnn_ner"].attrs["scores"].copy()
    nlp.vocab.vectors.data[:] = 0.0
    after = nlp("Vincent and Jules").spans["rnn_ner"].attrs["scores"]
    assert not numpy.allclose(before, after)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("static_vectors", [False, True])
def test_word_char_embed_predicts_once_per_word_type(version, static_vectors):
    """Out of training the embedding runs once per word type of the batch:
    the same vectors as per token (a training pass without dropout runs per
    token), also where a token's NORM differs from its lexeme's."""
    from spacy.vectors import Vectors

    from spacy_rnn_ner.layers.by_word_type import word_types
    from spacy_rnn_ner.layers.vocab_embed import build_vocab, vocab_layers

    fix_random_seed(0)
    vocab = spacy.blank("en").vocab
    words = ["Vincent", "and", "Jules", "drove", "to", "Hollywood", "."]
    data = numpy.random.default_rng(0).normal(size=(len(words), 6)).astype("f")
    vocab.vectors = Vectors(strings=vocab.strings, data=data, keys=words)
    config = dict(WORD_CHAR_EMBED, word_dropout=0.0, include_static_vectors=static_vectors)
    config["@architectures"] = f"spacy-rnn-ner.WordCharEmbed.{version}"
    embed = registry.resolve({"embed": config})["embed"]
    batch = [Doc(vocab, words=t.split()) if t else Doc(vocab, words=[]) for t in
             ("Vincent and Jules drove to Hollywood .", "", "Jules and Vincent and Jules", "x")]
    batch[2][1].norm_ = "und"  # a token-level NORM (as tokenizer exceptions set)
    for layer in vocab_layers(embed):
        build_vocab(layer, batch)
    embed.initialize(X=batch)
    predicted = embed.predict(batch)
    per_token, _ = embed(batch, is_train=True)
    # Equal up to float32 rounding: numpy's BLAS (layers/matmul_ops.py) may
    # round a product of the types' rows differently from the tokens' rows.
    for got, want in zip(predicted, per_token):
        assert got.shape == want.shape
        assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # "and" with its own NORM is a type of its own.
    assert not numpy.allclose(predicted[2][1], predicted[0][1])
    assert_allclose(predicted[2][3], predicted[0][1], rtol=1e-6)
    types_doc, inverse = word_types(batch, [spacy.attrs.NORM])
    assert len(types_doc) == 9 and inverse.shape == (sum(len(d) for d in batch),)
    assert embed.predict([Doc(vocab, words=[])])[0].shape == (0, 16)
