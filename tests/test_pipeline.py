import warnings

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose, assert_equal
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.training.iob_utils import doc_to_biluo_tags
from thinc.api import Adam, fix_random_seed

from spacy_rnn_ner.pipeline import DEFAULT_RNN_NER_MODEL, RNNEntityRecognizer
from spacy_rnn_ner.tags import make_tags

from .conftest import TRAIN_DATA, make_example, make_examples

LABELS = ("LOC", "ORG", "PER")
# Small widths keep the untrained-model tests fast; overfitting uses the default.
SMALL = {"model": {"tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}}


def blank(config=SMALL, **cfg) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={**config, **cfg})
    return nlp


def train(nlp: Language, examples, n_iter: int = 50) -> float:
    """Overfit `examples`; Adam(0.01) converges in well under 50 steps."""
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(n_iter):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses["rnn_ner"]


def gold_tags():
    return [tags for _, tags in TRAIN_DATA]


def predicted_tags(nlp, data=TRAIN_DATA):
    return [doc_to_biluo_tags(nlp(Doc(nlp.vocab, words=words))) for words, _ in data]


@pytest.fixture(scope="module")
def overfit():
    """The default model overfitted on TRAIN_DATA, and its last loss."""
    fix_random_seed(0)
    nlp = blank(config={})
    loss = train(nlp, make_examples(nlp.vocab))
    return nlp, loss


@pytest.fixture
def trained_nlp(overfit) -> Language:
    """A copy of the overfitted pipeline, free to modify."""
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    return nlp.from_bytes(overfit[0].to_bytes())


def test_factory_and_default_config():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rnn_ner")
    assert isinstance(ner, RNNEntityRecognizer)
    assert ner.labels == () and ner.tags == ["O"]
    model_cfg = nlp.config["components"]["rnn_ner"]["model"]
    assert model_cfg["@architectures"] == "spacy-rnn-ner.RNNTagger.v1"
    assert model_cfg["tok2vec"]["encode"]["@architectures"] == "spacy-rnn-ner.RNNEncoder.v1"
    assert model_cfg["tok2vec"]["encode"]["width"] == model_cfg["tok2vec"]["embed"]["width"] == 96
    assert DEFAULT_RNN_NER_MODEL["tok2vec"]["embed"]["rows"] == [5000, 1000, 2500, 2500]
    meta = Language.get_factory_meta("rnn_ner")
    assert set(meta.assigns) == {"doc.ents", "token.ent_iob", "token.ent_type"}
    assert meta.default_score_weights["ents_f"] == 1.0
    # The config alone rebuilds the pipeline.
    nlp2 = spacy.util.load_model_from_config(nlp.config, auto_fill=True)
    assert nlp2.pipe_names == ["rnn_ner"]


def test_uninitialized_gives_spacy_error():
    nlp = blank()
    with pytest.raises(ValueError, match="E109"):
        nlp("Ada Lovelace")


def test_untrained_predicts_valid_output():
    nlp = blank()
    nlp.initialize(lambda: make_examples(nlp.vocab))
    doc = nlp("x")
    assert doc[0].ent_iob_ == "O"
    for doc in nlp.pipe(["Ada Lovelace lived in London.", "x y z " * 20]):
        assert all(token.ent_iob_ in ("O", "B", "I") for token in doc)
        doc_to_biluo_tags(doc)  # valid


@pytest.mark.parametrize("n_docs", [0, 1, 2])
def test_empty_docs(n_docs):
    nlp = blank()
    optimizer = nlp.initialize(lambda: make_examples(nlp.vocab))
    texts = [""] * n_docs
    docs = list(nlp.pipe(texts))
    assert len(docs) == n_docs and all(len(doc.ents) == 0 for doc in docs)
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": []}) for text in texts]
    # Language.update skips an empty batch altogether; the component doesn't.
    assert nlp.update(examples, sgd=optimizer).get("rnn_ner", 0.0) == 0.0
    assert nlp.get_pipe("rnn_ner").update(examples, sgd=optimizer) == {"rnn_ner": 0.0}


def test_empty_docs_mixed_with_others():
    nlp = blank()
    optimizer = nlp.initialize(lambda: make_examples(nlp.vocab))
    texts = ["", "Ada Lovelace", "", "   ", "\n"]
    docs = list(nlp.pipe(texts, batch_size=8))
    assert [len(doc) for doc in docs] == [len(nlp.make_doc(t)) for t in texts]
    scores = nlp.get_pipe("rnn_ner").predict([nlp.make_doc(t) for t in texts])
    assert [s.shape for s in scores] == [(len(d), 13) for d in docs]
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": []}) for t in texts]
    examples.append(make_examples(nlp.vocab)[0])
    losses = nlp.update(examples, sgd=optimizer)
    assert losses["rnn_ner"] > 0


def test_whitespace_only_doc():
    nlp = blank()
    nlp.initialize(lambda: make_examples(nlp.vocab))
    doc = nlp("   \n\t ")
    assert len(doc) >= 1 and doc.ents == ()
    assert all(token.ent_iob_ == "O" for token in doc)


def test_long_doc():
    nlp = blank()
    nlp.initialize(lambda: make_examples(nlp.vocab))
    doc = nlp(Doc(nlp.vocab, words=[f"w{i % 97}" for i in range(5000)]))
    assert len(doc) == 5000
    assert all(token.ent_iob_ in ("O", "B", "I") for token in doc)


def _onehot_probs(tags, tag_seq):
    """Scores that make the model prefer `tag_seq`."""
    probs = numpy.full((len(tag_seq), len(tags)), 0.01, dtype="f")
    for i, tag in enumerate(tag_seq):
        probs[i, tags.index(tag)] = 0.9
    return probs


def test_set_annotations_keeps_existing_ents():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    for label in LABELS:
        ner.add_label(label)
    doc = Doc(nlp.vocab, words=["Ada", "Lovelace", "met", "Charles", "Babbage", "today"])
    doc.set_ents([Span(doc, 1, 2, "ORG")], blocked=[Span(doc, 4, 5)], default="missing")
    # The model wants "Ada Lovelace" and "Charles Babbage" as PER.
    want = ["B-PER", "L-PER", "O", "B-PER", "L-PER", "O"]
    probs = _onehot_probs(ner.tags, want)
    # Its second choice for "Ada" and "Charles" is a one-token PER.
    probs[[0, 3], ner.tags.index("U-PER")] = 0.05
    ner.set_annotations([doc], [probs])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "PER"), (1, 2, "ORG"), (3, 4, "PER")]
    # The blocked token stays blocked, the missing ones become O.
    assert (doc[4].ent_iob_, doc[4].ent_type) == ("B", 0)
    assert doc[2].ent_iob_ == doc[5].ent_iob_ == "O"


def test_set_annotations_overwrite_ents():
    nlp = blank(overwrite_ents=True)
    ner = nlp.get_pipe("rnn_ner")
    assert ner.overwrite_ents
    for label in LABELS:
        ner.add_label(label)
    doc = Doc(nlp.vocab, words=["Ada", "Lovelace", "met", "Charles", "Babbage"])
    doc.set_ents([Span(doc, 1, 3, "ORG")])
    want = ["B-PER", "L-PER", "O", "B-PER", "L-PER"]
    ner.set_annotations([doc], [_onehot_probs(ner.tags, want)])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 2, "PER"), (3, 5, "PER")]


def test_set_annotations_keeps_entities_inside_sentences():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    ner.add_label("PER")
    words = ["Damien", "Flemming", "took", "two"]
    # The model wants one name over both words; its second choice for each
    # word is a one-token name.
    probs = _onehot_probs(ner.tags, ["B-PER", "L-PER", "O", "O"])
    probs[[0, 1], ner.tags.index("U-PER")] = 0.05
    no_sents = Doc(nlp.vocab, words=words)
    ner.set_annotations([no_sents], [probs])
    assert [(e.start, e.end) for e in no_sents.ents] == [(0, 2)]
    # The data puts a sentence break between the two words (as CoNLL-2003
    # does in a few places): like spaCy's ner, no entity crosses it.
    sents = Doc(nlp.vocab, words=words, sent_starts=[True, True, False, False])
    ner.set_annotations([sents], [probs])
    assert [(e.start, e.end, e.label_) for e in sents.ents] == [(0, 1, "PER"), (1, 2, "PER")]
    assert list(sents.spans[ner.spans_key]) == list(sents.ents)


def test_set_annotations_zero_probabilities():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    ner.add_label("PER")
    doc = Doc(nlp.vocab, words=["a", "b", "c"])
    probs = numpy.zeros((3, len(ner.tags)), dtype="f")
    probs[:, ner.tags.index("I-PER")] = 1.0  # invalid everywhere, log(0) elsewhere
    ner.set_annotations(doc, [probs])
    doc_to_biluo_tags(doc)


def test_entity_ruler_before(trained_nlp):
    nlp = trained_nlp
    ruler = nlp.add_pipe("entity_ruler", before="rnn_ner")
    ruler.add_patterns([{"label": "ORG", "pattern": "Lovelace"}])
    words, _ = TRAIN_DATA[0]
    doc = nlp(Doc(nlp.vocab, words=words))
    ents = [(e.start, e.end, e.label_) for e in doc.ents]
    assert (1, 2, "ORG") in ents
    assert (4, 6, "PER") in ents and (7, 8, "LOC") in ents
    assert sum(e.start <= 1 < e.end for e in doc.ents) == 1


def test_overwrite_ents_with_entity_ruler_before(trained_nlp):
    nlp = trained_nlp
    nlp.get_pipe("rnn_ner").overwrite_ents = True
    ruler = nlp.add_pipe("entity_ruler", before="rnn_ner")
    ruler.add_patterns([{"label": "ORG", "pattern": "Lovelace"}])
    words, tags = TRAIN_DATA[0]
    doc = nlp(Doc(nlp.vocab, words=words))
    assert doc_to_biluo_tags(doc) == tags


def test_partial_annotation_has_no_loss():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    nlp.initialize(lambda: make_examples(nlp.vocab))
    words = ["Ada", "Lovelace", "met", "Charles", "Babbage", "."]
    tags = ["B-PER", "L-PER", "-", "-", "-", "O"]
    eg = make_example(nlp.vocab, words, tags)
    assert eg.get_aligned_ner() == ["B-PER", "L-PER", None, None, None, "O"]
    scores = ner.model.predict([eg.predicted])
    loss, (d_scores,) = ner.get_loss([eg], scores)
    assert loss > 0
    assert not d_scores[2:5].any()
    assert d_scores[[0, 1, 5]].any(axis=1).all()
    # No entity annotation at all: no loss.
    unannotated = Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words))
    loss, (d_scores,) = ner.get_loss([unannotated], scores)
    assert loss == 0.0 and not d_scores.any()
    assert ner.update([unannotated]) == {"rnn_ner": 0.0}


def test_unknown_gold_label_is_missing():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    examples = make_examples(nlp.vocab)
    ner.initialize(lambda: examples, nlp=nlp, labels=["PER", "ORG"])
    eg = examples[0]  # has LOC at token 7
    scores = ner.model.predict([eg.predicted])
    with pytest.warns(UserWarning, match="'LOC'"):
        _, (d_scores,) = ner.get_loss([eg], scores)
    assert not d_scores[7].any() and d_scores[0].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ner.get_loss([eg], scores)  # warned once only


def test_nan_loss_raises():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    scores = [numpy.full((len(eg.predicted), len(ner.tags)), numpy.nan, dtype="f") for eg in examples]
    with pytest.raises(ValueError, match="E910"):
        ner.get_loss(examples, scores)


def test_initialize_with_labels():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    ner.initialize(lambda: make_examples(nlp.vocab), nlp=nlp, labels=["PER", "AAA"])
    assert ner.labels == ("AAA", "PER") == ner.label_data
    assert ner.tags == make_tags(["AAA", "PER"])
    assert ner.model.get_ref("output_layer").get_dim("nO") == 9


def test_initialize_labels_from_config():
    nlp = blank()
    nlp.config["initialize"]["components"]["rnn_ner"] = {"labels": ["PER", "LOC"]}
    nlp.initialize(lambda: make_examples(nlp.vocab))
    assert nlp.get_pipe("rnn_ner").labels == ("LOC", "PER")


def test_initialize_labels_from_data():
    nlp = blank()
    nlp.initialize(lambda: make_examples(nlp.vocab))
    ner = nlp.get_pipe("rnn_ner")
    assert ner.labels == LABELS
    assert ner.model.get_ref("output_layer").get_dim("nO") == 13


def test_no_label():
    nlp = blank()
    examples = make_examples(nlp.vocab, [(["no", "ents"], ["O", "O"])])
    with pytest.raises(ValueError, match="E143"):
        nlp.initialize(lambda: examples)


def test_initialize_bad_get_examples():
    nlp = blank()
    with pytest.raises(TypeError):
        nlp.get_pipe("rnn_ner").initialize(lambda: [], labels=["PER"])


def test_add_label():
    nlp = blank()
    ner = nlp.get_pipe("rnn_ner")
    assert ner.add_label("PER") == 1
    assert ner.add_label("PER") == 0
    assert ner.add_label("LOC") == 1
    assert ner.labels == ("LOC", "PER")
    for bad in ("", None, 3):
        with pytest.raises(ValueError):
            ner.add_label(bad)


def test_add_label_after_training_resizes(trained_nlp):
    nlp = trained_nlp
    ner = nlp.get_pipe("rnn_ner")
    old_tags = ner.tags
    old = ner.model.get_ref("output_layer")
    old_W = old.get_param("W").copy()
    assert ner.add_label("AAA") == 1  # sorts first: the new rows go in front
    new = ner.model.get_ref("output_layer")
    assert new.get_dim("nO") == ner.model.get_dim("nO") == 17
    for i, tag in enumerate(ner.tags):
        if tag in old_tags:
            assert_equal(new.get_param("W")[i], old_W[old_tags.index(tag)])
        else:
            assert not new.get_param("W")[i].any()
    # The resized model predicts, and trains (with a fresh optimizer state).
    assert predicted_tags(nlp) == gold_tags()
    examples = make_examples(nlp.vocab, [(["Zed", "ran"], ["U-AAA", "O"])])
    optimizer = Adam(0.01)
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
    assert predicted_tags(nlp, [(["Zed", "ran"], None)]) == [["U-AAA", "O"]]


def test_resize_output_comes_from_the_architecture(trained_nlp):
    """The taggers resize themselves (model.attrs["resize_output"], as
    spaCy's textcat); a trained model whose architecture can't is refused
    with a clear error, and the component is left as it was."""
    ner = trained_nlp.get_pipe("rnn_ner")
    assert ner.model.attrs["resize_output"] is not None
    labels, before = ner.labels, ner.model.to_bytes()
    del ner.model.attrs["resize_output"]
    with pytest.raises(ValueError, match="'rnn_ner' can't add labels.*resize_output"):
        ner.add_label("MISC")
    assert ner.labels == labels and ner.model.to_bytes() == before


def _snapshot(nlp, texts):
    """Raw tag probabilities by tag, entities, and the span group with scores."""
    ner = nlp.get_pipe("rnn_ner")
    docs = [nlp.make_doc(text) for text in texts]
    probs = [dict(zip(ner.tags, p.T)) for p in ner.predict(docs)]
    docs = list(nlp.pipe(docs))
    ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]
    spans = [[(s.start, s.end, s.label_) for s in doc.spans["rnn_ner"]] for doc in docs]
    scores = [doc.spans["rnn_ner"].attrs["scores"] for doc in docs]
    return probs, ents, spans, scores


@pytest.mark.parametrize("crf", [False, True])
def test_add_label_keeps_predictions_until_trained(trained_nlp, crf):
    if crf:
        fix_random_seed(0)
        model = {**DEFAULT_RNN_NER_MODEL, "@architectures": "spacy-rnn-ner.RNNCRFTagger.v1"}
        nlp = blank(config={"model": model})
        train(nlp, make_examples(nlp.vocab), n_iter=30)
    else:
        nlp = trained_nlp
    ner = nlp.get_pipe("rnn_ner")
    ner.threshold = 0.05  # the recall-mode spans and scores too
    texts = [" ".join(words) for words, _ in TRAIN_DATA] + [
        "India beat Australia in Delhi on Monday .",
        "Zed Globex met Ada in Rome and Acme Corp said nothing .",
    ]
    probs, ents, spans, scores = _snapshot(nlp, texts)
    assert ner.add_label("MISC") == 1
    probs2, ents2, spans2, scores2 = _snapshot(nlp, texts)

    def is_masked(column):  # probability 0, or a CRF emission score of ~-1e4
        return bool((column == 0.0).all() if not crf else (column < -1000).all())

    assert ents2 == ents and spans2 == spans
    # Equal up to float32 rounding: the wider output matmul (numpy's BLAS,
    # layers/matmul_ops.py) may round logits differently in the last bit,
    # by a few 1e-6 (and a span probability near 1 with them).
    for before, after in zip(scores, scores2):
        assert_allclose(after, before, rtol=1e-5, atol=1e-7)
    for before, after in zip(probs, probs2):
        for tag in ner.tags:
            if tag.endswith("-MISC"):
                assert is_masked(after[tag])
            else:
                assert_allclose(after[tag], before[tag], rtol=1e-5, atol=1e-6)
    # Training on other labels keeps MISC masked; gold MISC unmasks it.
    nlp.update(make_examples(nlp.vocab), sgd=Adam(0.01))
    assert is_masked(_snapshot(nlp, texts[:1])[0][0]["U-MISC"])
    examples = make_examples(nlp.vocab) + make_examples(
        nlp.vocab, [(["Zed", "ran", "Kiwi", "."], ["O", "O", "U-MISC", "O"])]
    )
    optimizer = Adam(0.01)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    assert predicted_tags(nlp, [(["Zed", "ran", "Kiwi", "."], None)]) == [["O", "O", "U-MISC", "O"]]
    assert predicted_tags(nlp) == gold_tags()


@pytest.mark.parametrize("crf", [False, True])
def test_rehearse_pulls_towards_the_rehearsal_model(trained_nlp, crf):
    if crf:
        fix_random_seed(0)
        model = {**DEFAULT_RNN_NER_MODEL, "@architectures": "spacy-rnn-ner.RNNCRFTagger.v1"}
        nlp = blank(config={"model": model})
        train(nlp, make_examples(nlp.vocab), n_iter=30)
    else:
        nlp = trained_nlp
    ner = nlp.get_pipe("rnn_ner")
    examples = make_examples(nlp.vocab)
    # Without a rehearsal model, rehearse does nothing.
    before = ner.model.to_bytes()
    assert nlp.rehearse(examples, sgd=Adam(0.01)) == {"rnn_ner": 0.0}
    assert ner.model.to_bytes() == before
    optimizer = nlp.resume_training()
    assert nlp.rehearse(examples, sgd=optimizer)["rnn_ner"] == pytest.approx(0.0, abs=1e-12)
    # Forget: everything is "O" now.
    forget = [make_example(nlp.vocab, words, ["O"] * len(words)) for words, _ in TRAIN_DATA]
    for _ in range(5):
        nlp.update(forget, sgd=optimizer)
    first = nlp.rehearse(examples, sgd=optimizer)["rnn_ner"]
    assert first > 0.0
    for _ in range(30):
        last = nlp.rehearse(examples, sgd=optimizer)["rnn_ner"]
    assert last < first / 10
    assert predicted_tags(nlp) == gold_tags()


def test_overfitting(trained_nlp):
    assert predicted_tags(trained_nlp) == gold_tags()
    scores = trained_nlp.evaluate(make_examples(trained_nlp.vocab))
    assert scores["ents_f"] == 1.0


def test_overfitting_loss(overfit):
    assert overfit[1] < 1e-3


def test_update_all_empty_leaves_weights():
    nlp = blank()
    optimizer = nlp.initialize(lambda: make_examples(nlp.vocab))
    ner = nlp.get_pipe("rnn_ner")
    before = ner.model.to_bytes()
    ner.update([Example.from_dict(nlp.make_doc(""), {})], sgd=optimizer)
    assert ner.model.to_bytes() == before


def test_deterministic():
    def run():
        fix_random_seed(1)
        nlp = blank()
        train(nlp, make_examples(nlp.vocab), n_iter=3)
        docs = [Doc(nlp.vocab, words=words) for words, _ in TRAIN_DATA]
        return nlp.get_pipe("rnn_ner").predict(docs)

    for a, b in zip(run(), run()):
        assert_equal(a, b)


LISTENER_CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec", "rnn_ner"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 32
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [500, 100, 250, 250]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy-rnn-ner.RNNEncoder.v1"
width = 32

[components.rnn_ner]
factory = "rnn_ner"

[components.rnn_ner.model]
@architectures = "spacy-rnn-ner.RNNTagger.v1"

[components.rnn_ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 32
upstream = "*"
"""


def test_listener():
    fix_random_seed(0)
    config = spacy.util.load_config_from_str(LISTENER_CONFIG)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    assert nlp.get_pipe("tok2vec").listening_components == ["rnn_ner"]
    optimizer = Adam(0.01)
    for _ in range(50):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["rnn_ner"] < 1.0
    assert predicted_tags(nlp) == gold_tags()
