"""The CRF tagger in the component, and entity probabilities in doc.spans."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans
from thinc.api import Adam, fix_random_seed

from .conftest import TRAIN_DATA, make_examples
from .test_pipeline import train

CRF_MODEL = {
    "model": {
        "@architectures": "spacy-rnn-ner.RNNCRFTagger.v1",
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {
                "@architectures": "spacy-rnn-ner.CharMultiHashEmbed.v1",
                "width": 32,
                "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                "rows": [500, 100, 200, 200],
            },
            "encode": {"@architectures": "spacy-rnn-ner.RNNEncoder.v1", "width": 32},
        },
    }
}


def docs_for(nlp):
    return [Doc(nlp.vocab, words=words) for words, _ in TRAIN_DATA]


def gold_ents(nlp):
    return [
        [(e.start, e.end, e.label_) for e in biluo_tags_to_spans(doc, tags)]
        for doc, (_, tags) in zip(docs_for(nlp), TRAIN_DATA)
    ]


def predicted(nlp, docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


@pytest.fixture(scope="module")
def crf_nlp():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=CRF_MODEL)
    loss = train(nlp, make_examples(nlp.vocab))
    return nlp, loss


def test_crf_overfits_and_roundtrips(crf_nlp, tmp_path):
    nlp, loss = crf_nlp
    assert loss < 0.05
    crf = nlp.get_pipe("rnn_ner").model.get_ref("crf")
    assert numpy.abs(crf.get_param("transitions")).max() > 0  # trained
    expected = gold_ents(nlp)
    assert predicted(nlp, [nlp(d) for d in docs_for(nlp)]) == expected
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert predicted(nlp2, [nlp2(Doc(nlp2.vocab, words=[t.text for t in d])) for d in docs_for(nlp)]) == expected
    nlp3 = spacy.blank("en")
    nlp3.add_pipe("rnn_ner", config=CRF_MODEL)
    nlp3.from_bytes(nlp.to_bytes())
    assert predicted(nlp3, list(nlp3.pipe(docs_for(nlp3)))) == expected


def test_crf_partial_annotation_trains():
    """Missing tokens are marginalised: loss stays finite and positive."""
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=CRF_MODEL)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    words, tags = TRAIN_DATA[0]
    partial = make_examples(nlp.vocab, [(words, ["-"] * 4 + tags[4:])])
    losses = nlp.update(partial, sgd=Adam(0.01))
    assert 0 < losses["rnn_ner"] < float("inf")


def test_scores_in_span_group(crf_nlp):
    nlp, _ = crf_nlp
    for doc in nlp.pipe(docs_for(nlp)):
        group = doc.spans["rnn_ner"]
        assert [(s.start, s.end, s.label_) for s in group] == [
            (e.start, e.end, e.label_) for e in doc.ents
        ]
        scores = group.attrs["scores"]
        assert len(scores) == len(group)
        assert all(0.9 < p <= 1.0 + 1e-6 for p in scores)


@pytest.mark.parametrize("crf", [True, False])
def test_untrained_scores_are_probabilities(crf):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=CRF_MODEL if crf else {})
    nlp.initialize(lambda: make_examples(nlp.vocab))
    doc = nlp("Ada Lovelace met Charles Babbage in London yesterday .")
    scores = doc.spans["rnn_ner"].attrs["scores"]
    assert ((scores >= 0) & (scores <= 1 + 1e-6)).all()


def test_threshold_adds_alternatives(crf_nlp):
    """Recall mode: every span at least `threshold` probable is listed."""
    nlp, _ = crf_nlp
    ner = nlp.get_pipe("rnn_ner")
    doc = nlp.make_doc("Ada Lovelace visited Globex in Rome and Berlin .")
    scores = ner.predict([doc])
    ner.threshold = 0.001
    try:
        ner.set_annotations([doc], scores)
    finally:
        ner.threshold = None
    group = doc.spans["rnn_ner"]
    probs = group.attrs["scores"]
    assert len(group) > len(doc.ents)
    assert {(e.start, e.end, e.label_) for e in doc.ents} <= {(s.start, s.end, s.label_) for s in group}
    assert all(p >= 0.001 - 1e-6 for p in probs)
    # Probabilities of alternatives for the same tokens can't sum past 1.
    by_span = {}
    for span, p in zip(group, probs):
        by_span.setdefault((span.start, span.end), 0.0)
        by_span[(span.start, span.end)] += p
    assert max(by_span.values()) <= 1.0 + 1e-5


def test_span_group_survives_docbin(crf_nlp):
    from spacy.tokens import DocBin

    nlp, _ = crf_nlp
    doc = nlp("Ada Lovelace worked in London .")
    doc2 = list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))[0]
    numpy.testing.assert_allclose(doc2.spans["rnn_ner"].attrs["scores"], doc.spans["rnn_ner"].attrs["scores"])


def test_no_spans_key():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"spans_key": None})
    nlp.initialize(lambda: make_examples(nlp.vocab))
    assert "rnn_ner" not in nlp("Ada Lovelace met Charles Babbage .").spans


@pytest.mark.parametrize("config", [{"threshold": 0.0}, {"threshold": 1.5}, {"threshold": 0.5, "spans_key": None}])
def test_invalid_threshold(config):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="threshold"):
        nlp.add_pipe("rnn_ner", config=config)


def test_crf_add_label_keeps_transitions(crf_nlp):
    nlp = _copy(crf_nlp[0])
    ner = nlp.get_pipe("rnn_ner")
    crf = ner.model.get_ref("crf")
    old_tags = ner.tags
    old = crf.get_param("transitions").copy()
    ner.add_label("MISC")
    new_tags = ner.tags
    new = ner.model.get_ref("crf").get_param("transitions")
    assert new.shape == (len(new_tags), len(new_tags))
    i, j = new_tags.index("B-PER"), new_tags.index("L-PER")
    assert new[i, j] == old[old_tags.index("B-PER"), old_tags.index("L-PER")]
    assert predicted(nlp, [nlp(d) for d in docs_for(nlp)]) == gold_ents(nlp)


def _copy(nlp):
    other = spacy.blank("en")
    other.add_pipe("rnn_ner", config=CRF_MODEL)
    return other.from_bytes(nlp.to_bytes())


def test_temperature_changes_probabilities_not_entities(crf_nlp):
    nlp, _ = crf_nlp
    ner = nlp.get_pipe("rnn_ner")
    doc = nlp.make_doc("Ada Lovelace visited Globex in Rome and Berlin .")
    scores = ner.predict([doc])
    results = {}
    for temperature in (1.0, 3.0):
        ner.temperature = temperature
        copy = nlp.make_doc(doc.text)
        ner.set_annotations([copy], scores)
        results[temperature] = ([(e.start, e.end, e.label_) for e in copy.ents], copy.spans["rnn_ner"].attrs["scores"])
    ner.temperature = 1.0
    assert results[1.0][0] == results[3.0][0]
    assert (results[3.0][1] < results[1.0][1]).all()


def test_invalid_temperature():
    with pytest.raises(ValueError, match="temperature"):
        spacy.blank("en").add_pipe("rnn_ner", config={"temperature": 0.0})
