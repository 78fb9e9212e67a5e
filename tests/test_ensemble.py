"""EnsembleCRFTagger.v1 and `python -m spacy_rnn_ner ensemble`: the mean of
the members' scores, trained from a config or joined from trained pipelines,
saved and loaded without loss, with clear errors for what can't be joined."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import registry

from spacy_rnn_ner.__main__ import main
from spacy_rnn_ner.crf import Chain
from spacy_rnn_ner.decode import decode, sentence_breaks
from spacy_rnn_ner.ensemble import join_pipelines, join_trained

from .conftest import TRAIN_DATA
from .robust import small_config, train_small

MEMBER = small_config(crf=True)["model"]
TEXT = ["Ada", "Lovelace", "met", "Alan", "in", "Paris", "."]


def member_model():
    return registry.resolve({"m": MEMBER})["m"]


def ensemble_config(n: int = 2) -> dict:
    return {"model": {"@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1",
                      "*": {f"member{i}": MEMBER for i in range(n)}}}


def ents(nlp, words=TEXT):
    return [(e.start, e.end, e.label_) for e in nlp(Doc(nlp.vocab, words=list(words))).ents]


@pytest.fixture(scope="module")
def two_pipelines():
    """The bytes of one config trained with seeds 0 and 1."""
    return [train_small({"model": MEMBER}, seed=seed).to_bytes() for seed in (0, 1)]


def load(data: bytes):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": MEMBER})
    return nlp.from_bytes(data)


def test_needs_two_crf_members():
    with pytest.raises(ValueError, match="at least 2 members"):
        registry.resolve({"m": {"@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1",
                                "*": {"a": MEMBER}}})
    softmax = {"@architectures": "spacy-rnn-ner.RNNTagger.v1", "tok2vec": MEMBER["tok2vec"]}
    with pytest.raises(ValueError, match="member 1 is not a CRF tagger"):
        registry.resolve({"m": {"@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1",
                                "*": {"a": MEMBER, "b": softmax}}})


def test_listener_member_is_refused():
    listening = {**MEMBER, "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 16}}
    with pytest.raises(ValueError, match="member 0 listens to a shared tok2vec"):
        registry.resolve({"m": {"@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1",
                                "*": {"a": listening, "b": MEMBER}}})


def test_forward_is_the_mean_and_backprop_splits_the_gradient():
    """Scores are the members' mean; each member gets 1/n of the gradient
    (checked against a finite difference of the members' parameters)."""
    nlp = train_small(ensemble_config(3), seed=0, steps=3)
    model = nlp.get_pipe("rnn_ner").model
    docs = [nlp.make_doc("Ada Lovelace met Alan"), nlp.make_doc("Paris .")]
    members = model.layers[:-1]
    want = [numpy.mean([m.predict(docs)[i] for m in members], axis=0) for i in range(2)]
    got = model.predict(docs)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # d(sum of scores * R)/d(b of member 1's output layer) = column sums of R / 3.
    rng = numpy.random.default_rng(0)
    R = [rng.normal(size=s.shape).astype("f") for s in got]
    scores, backprop = model.begin_update(docs)
    for node in model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                node.set_grad(name, node.ops.alloc(node.get_param(name).shape))
    backprop(R)
    output = members[1].get_ref("output_layer")
    want_grad = sum(r.sum(axis=0) for r in R) / 3
    numpy.testing.assert_allclose(output.get_grad("b"), want_grad, rtol=1e-4, atol=1e-5)


def test_trains_from_a_config_and_round_trips():
    """A config ensemble learns the training set, and survives to/from bytes."""
    nlp = train_small(ensemble_config(2), seed=0, steps=60)
    for words, tags in TRAIN_DATA:
        doc = nlp(Doc(nlp.vocab, words=words))
        assert [t.ent_iob_ + ("-" + t.ent_type_ if t.ent_type_ else "") for t in doc] == [
            {"B": "B", "I": "I", "L": "I", "U": "B", "O": "O"}[t[0]] + t[1:] for t in tags
        ]
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config=ensemble_config(2))
    nlp2.from_bytes(nlp.to_bytes())
    docs = [nlp.make_doc(" ".join(w)) for w, _ in TRAIN_DATA]
    for a, b in zip(nlp.get_pipe("rnn_ner").predict(docs), nlp2.get_pipe("rnn_ner").predict(docs)):
        numpy.testing.assert_array_equal(a, b)


def test_joined_pipeline_decodes_the_mean_and_saves(two_pipelines, tmp_path):
    members = [load(b) for b in two_pipelines]
    procs = [m.get_pipe("rnn_ner") for m in members]
    doc = members[0].make_doc(" ".join(TEXT))
    emissions = [numpy.asarray(p.loss.emissions(p.predict([doc]))[0]) for p in procs]
    chains = [p.loss.chain() for p in procs]
    mean_chain = Chain(chains[0].tags, *(numpy.mean([getattr(c, k) for c in chains], axis=0)
                                          for k in ("transitions", "start", "end")))
    (want,) = decode(numpy, mean_chain, [doc], [numpy.mean(emissions, axis=0)], None,
                     [sentence_breaks(doc)], with_probs=False)
    joined = join_pipelines(members)
    assert joined.get_pipe_config("rnn_ner")["model"]["@architectures"] == \
        "spacy-rnn-ner.EnsembleCRFTagger.v1"
    got = joined(" ".join(TEXT))
    assert [(e.start, e.end, e.label_) for e in got.ents] == \
        [(s.start, s.end, s.label_) for s in want.spans]
    joined.to_disk(tmp_path / "ens")
    again = spacy.load(tmp_path / "ens")
    assert ents(again) == ents(joined)
    assert not list((tmp_path / "ens").rglob("*.pkl"))
    with pytest.raises(ValueError, match="trained ensemble"):
        again.get_pipe("rnn_ner").add_label("MISC")
    assert ents(again) == ents(joined)


def test_join_refuses_other_labels_and_vectors(two_pipelines):
    other = train_small({"model": MEMBER}, seed=2, steps=1)
    other.get_pipe("rnn_ner").add_label("MISC")
    with pytest.raises(ValueError, match="labels"):
        join_pipelines([load(two_pipelines[0]), other])
    vectors = load(two_pipelines[1])
    vectors.vocab.set_vector("Paris", numpy.ones(4, "f"))
    with pytest.raises(ValueError, match="static vectors"):
        join_pipelines([load(two_pipelines[0]), vectors])
    with pytest.raises(ValueError, match="at least 2"):
        join_pipelines([load(two_pipelines[0])])
    same = load(two_pipelines[0])
    with pytest.raises(ValueError, match="twice"):
        join_pipelines([same, same])
    with pytest.raises(ValueError, match="must be trained"):
        join_trained([member_model(), member_model()])


def test_cli(two_pipelines, tmp_path, capsys):
    paths = []
    for i, data in enumerate(two_pipelines):
        load(data).to_disk(tmp_path / f"m{i}")
        paths.append(str(tmp_path / f"m{i}"))
    assert main(["ensemble", *paths, "--output", str(tmp_path / "ens")]) == 0
    assert "ensemble of 2" in capsys.readouterr().out
    assert ents(spacy.load(tmp_path / "ens"))
    assert main(["ensemble", paths[0], "--output", str(tmp_path / "x")]) == 1
    assert main(["ensemble", *paths, "-c", "ner", "--output", str(tmp_path / "x")]) == 1
    assert "no component 'ner'" in capsys.readouterr().err
    assert main(["ensemble", paths[0], str(tmp_path / "missing"), "-o", str(tmp_path / "x")]) == 1
