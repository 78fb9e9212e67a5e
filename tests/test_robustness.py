"""A component that no input can break: any text, pre-set entities, odd
training data, damaged or hostile model directories, several processes.

The property-based tests push about 2,300 generated docs through two small
pipelines (softmax and CRF tagger) trained for a few steps, so that they
predict entities and the decoding of entities, not only of "O", is exercised
(`--hypothesis-show-statistics` shows the share of docs with entities).
"""
import json
import math
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_equal
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example, biluo_tags_to_spans
from spacy.training.iob_utils import doc_to_biluo_tags
from thinc.api import Adam, fix_random_seed

from .conftest import TRAIN_DATA, make_example, make_examples


def small_config(*, crf: bool = False, width: int = 16, **encode) -> dict:
    """A small component config: the softmax tagger (MultiHashEmbed), or the
    CRF tagger with character embeddings, whose decoding, loss and embedding
    of arbitrary unicode differ."""
    encode = {"width": width, **encode}
    if not crf:
        return {"model": {"tok2vec": {"embed": {"width": width}, "encode": encode}}}
    embed = {
        "@architectures": "spacy-rnn-ner.CharMultiHashEmbed.v1",
        "width": width,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 200, 200],
    }
    tok2vec = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": embed,
        "encode": {"@architectures": "spacy-rnn-ner.RNNEncoder.v1", **encode},
    }
    return {"model": {"@architectures": "spacy-rnn-ner.RNNCRFTagger.v1", "tok2vec": tok2vec}}


SMALL = small_config()
TAGGERS = {"softmax": SMALL, "crf": small_config(crf=True)}
REPO = Path(__file__).resolve().parent.parent

# Hard cases mixed into the generated text: entity words the model knows,
# emoji ZWJ sequences and flags, RTL text and direction overrides, combining
# marks, zero-width and control characters, odd whitespace, URLs, numbers.
HARD = [
    "Ada", "Lovelace", "Charles", "Babbage", "London", "Acme", "Corp", "Paris",
    "Grace", "Hopper", "United", "States", "Navy", "Alan", "Berlin", "Globex", ".",
    "👩‍👩‍👧", "🇺🇸", "🏳️‍🌈", "👍🏽", "مرحبا بالعالم", "שלום", "\u200f", "\u202e", "\u2066",
    "e\u0301", "\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇l͖͎g̞̥͈ͮo̓", "\u200b", "\u200d", "\ufeff", "\x00", "\x1b[31m",
    "\x7f", "\t", "\n", "\r\n", "\n\n\n", "  ", "\u00a0", "\u3000", "\u2028", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "東京", "ﷺ", "\U0010fffd", "https://example.com/a?b=c", "@user", "#tag", "U.S.A.",
    "1,000.00", "can't", "''", '"', "--", "...", "(", ")",
]
# Every code point but lone surrogates: a str holding one is not valid text,
# and spaCy's tokenizer already fails to encode it (UnicodeEncodeError).
CHARS = st.characters(blacklist_categories=("Cs",))
PIECES = st.one_of(
    st.text(CHARS, max_size=8),
    st.sampled_from(HARD),
    st.sampled_from([" ", "  ", "\n"]),
)
TEXTS = st.lists(PIECES, max_size=40).map("".join)
LONG_TEXTS = st.lists(PIECES, min_size=100, max_size=400).map(" ".join)
WORDS = st.one_of(st.sampled_from(HARD), st.text(CHARS, min_size=1, max_size=6))
WORD_LISTS = st.lists(WORDS, max_size=60)
PROPERTY = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def copy_of(nlp: Language, **settings) -> Language:
    """A pipeline with `nlp`'s config and weights, free to modify."""
    config = dict(nlp.get_pipe_config("rnn_ner"))
    config.pop("factory")
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config={**config, **settings})
    return nlp2.from_bytes(nlp.to_bytes())


def trained_a_little(config: dict) -> Language:
    """It tags entities on TRAIN_DATA, not perfectly."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=config)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    n_ents = sum(len(nlp(Doc(nlp.vocab, words=words)).ents) for words, _ in TRAIN_DATA)
    assert n_ents >= 8, "the fixture should predict entities"
    return nlp


@pytest.fixture(scope="module")
def pipelines():
    """Per tagger, the pipeline and a copy with overwrite_ents, made once."""
    made = {}

    def get(tagger: str):
        if tagger not in made:
            nlp = trained_a_little(TAGGERS[tagger])
            made[tagger] = nlp, copy_of(nlp, overwrite_ents=True)
        return made[tagger]

    return get


@pytest.fixture(scope="module")
def nlp(pipelines) -> Language:
    return pipelines("softmax")[0]


def ent_tuples(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def check_doc(doc: Doc, ner, preset_labels=()) -> None:
    """The annotations the component leaves on `doc` are well-formed."""
    n = len(doc)
    ents = list(doc.ents)
    prev_end = 0
    for ent in ents:
        assert prev_end <= ent.start < ent.end <= n, ent_tuples(doc)
        assert ent.label_ in ner.labels or ent.label_ in preset_labels, ent.label_
        prev_end = ent.end
    iob = [t.ent_iob_ for t in doc]
    types = [t.ent_type_ for t in doc]
    inside = [False] * n
    for ent in ents:
        for i in range(ent.start, ent.end):
            inside[i] = True
            assert types[i] == ent.label_
            assert iob[i] == ("B" if i == ent.start else "I")
    for i in range(n):
        if not inside[i]:
            # "O", or blocked (B without a type); never left missing.
            assert (iob[i], types[i]) in (("O", ""), ("B", "")), (i, iob[i], types[i])
    # spaCy's own BILUO view of the doc is valid and gives back doc.ents.
    spans = biluo_tags_to_spans(doc, doc_to_biluo_tags(doc, missing="O"))
    assert [(s.start, s.end, s.label_) for s in spans] == ent_tuples(doc)
    key = getattr(ner, "spans_key", None)
    if key is not None and key in doc.spans:
        group = doc.spans[key]
        for span in group:
            assert 0 <= span.start < span.end <= n
        probs = numpy.asarray(group.attrs.get("scores", []), dtype="f")
        assert len(probs) == len(group)
        assert numpy.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1 + 1e-5).all()


# 1. Any input ------------------------------------------------------------


@pytest.mark.parametrize("tagger", TAGGERS)
@settings(max_examples=600, **PROPERTY)
@given(text=TEXTS)
def test_any_text(pipelines, tagger, text):
    nlp = pipelines(tagger)[0]
    doc = nlp(text)
    assert doc.text == text
    check_doc(doc, nlp.get_pipe("rnn_ner"))
    event("with entities" if doc.ents else "without entities")


@pytest.mark.parametrize("tagger", TAGGERS)
@settings(max_examples=200, **PROPERTY)
@given(words=WORD_LISTS, data=st.data())
def test_any_words(pipelines, tagger, words, data):
    """Docs built from words, so also whitespace-only and control tokens."""
    nlp = pipelines(tagger)[0]
    spaces = data.draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    doc = nlp(Doc(nlp.vocab, words=words, spaces=spaces))
    assert [t.text for t in doc] == words
    check_doc(doc, nlp.get_pipe("rnn_ner"))


@pytest.mark.parametrize("tagger", TAGGERS)
@settings(max_examples=30, **PROPERTY)
@given(texts=st.lists(st.one_of(TEXTS, TEXTS, TEXTS, LONG_TEXTS), max_size=8))
def test_batched_equals_one_by_one(pipelines, tagger, texts):
    """Padding a batch with longer (up to ~1,000 token) docs changes nothing."""
    nlp = pipelines(tagger)[0]
    one_by_one = [nlp(text) for text in texts]
    for batch_size in (3, 1000):
        for doc, single in zip(nlp.pipe(texts, batch_size=batch_size), one_by_one):
            check_doc(doc, nlp.get_pipe("rnn_ner"))
            assert ent_tuples(doc) == ent_tuples(single)


# (gap before, length, what) of the spans set before the component runs:
# a known label, a label the component doesn't have, or blocked tokens.
PRESET = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 4), st.sampled_from(["PER", "EXT", None])),
    max_size=6,
)


@pytest.mark.parametrize("tagger", TAGGERS)
@settings(max_examples=200, **PROPERTY)
@given(
    words=st.lists(WORDS, min_size=1, max_size=40),
    preset=PRESET,
    default=st.sampled_from(["missing", "outside", "unmodified"]),
)
def test_preset_entities_are_kept(pipelines, tagger, words, preset, default):
    nlp, nlp_overwrite = pipelines(tagger)
    ner = nlp.get_pipe("rnn_ner")
    doc = Doc(nlp.vocab, words=words)
    ents, blocked, start = [], [], 0
    for gap, length, label in preset:
        start += gap
        end = min(start + length, len(doc))
        if start >= end:
            break
        (ents if label else blocked).append(Span(doc, start, end, label=label or ""))
        start = end
    doc.set_ents(ents, blocked=blocked, default=default)
    preset_ents = ent_tuples(doc)
    blocked_tokens = {i for span in blocked for i in range(span.start, span.end)}
    plain = ner(Doc(nlp.vocab, words=words))  # the same words, nothing preset

    kept = ner(doc.copy())
    check_doc(kept, ner, preset_labels=("EXT",))
    assert set(preset_ents) <= set(ent_tuples(kept))
    for i in blocked_tokens:
        assert (kept[i].ent_iob_, kept[i].ent_type) == ("B", 0)
    preset_tokens = {i for s, e, _ in preset_ents for i in range(s, e)} | blocked_tokens
    new = set(ent_tuples(kept)) - set(preset_ents)
    for start, end, label in new:
        assert label in ner.labels
        assert not preset_tokens & set(range(start, end))
    event("new entities next to preset ones" if new and preset_tokens else "other")

    # overwrite_ents: the preset annotation is ignored, as if it weren't there.
    overwritten = nlp_overwrite.get_pipe("rnn_ner")(doc.copy())
    check_doc(overwritten, ner)
    assert ent_tuples(overwritten) == ent_tuples(plain)


@settings(max_examples=200, **PROPERTY)
@given(data=st.data())
def test_any_probabilities_decode_to_valid_entities(nlp, data):
    """Whatever a softmax gives (zeros, ones, ties, subnormals), the decoded
    entities are valid."""
    ner = nlp.get_pipe("rnn_ner")
    n = data.draw(st.integers(1, 30))
    probs = data.draw(
        arrays("f", (n, len(ner.tags)), elements=st.floats(0, 1, width=32))
    )
    doc = Doc(nlp.vocab, words=[f"w{i}" for i in range(n)])
    ner.set_annotations([doc], [probs])
    check_doc(doc, ner)


def test_20000_token_text(nlp):
    words = [HARD[(i * 7919) % len(HARD)].strip() or "x" for i in range(20000)]
    doc = nlp(" ".join(words))
    assert len(doc) >= 20000
    check_doc(doc, nlp.get_pipe("rnn_ner"))
    assert doc.ents  # the long doc goes through the same decoding


# 2. Training data ----------------------------------------------------------


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


# 3. Loading ---------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "model"
    nlp.to_disk(path)
    return path


def damaged_copy(saved: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(saved, path)
    return path


@pytest.mark.parametrize(
    "damage,match",
    [
        ("delete model", r"'rnn_ner'.*rnn_ner/model"),
        ("delete cfg", r"'rnn_ner'.*rnn_ner/cfg"),
        ("delete component", r"'rnn_ner'.*rnn_ner/cfg"),
        ("empty model", r"'rnn_ner'.*rnn_ner/model"),
        ("truncate cfg", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg not a dict", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg labels not strings", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg has other labels", r"'rnn_ner'.*rnn_ner/model"),
        ("cfg labels renamed", r"'rnn_ner'.*rnn_ner/model.*trained with the labels"),
    ],
)
def test_damaged_directory_raises_clear_error(saved, tmp_path, damage, match):
    path = damaged_copy(saved, tmp_path)
    component = path / "rnn_ner"
    if damage == "delete model":
        (component / "model").unlink()
    elif damage == "delete cfg":
        (component / "cfg").unlink()
    elif damage == "delete component":
        shutil.rmtree(component)
    elif damage == "empty model":
        (component / "model").write_bytes(b"")
    elif damage == "truncate cfg":
        data = (component / "cfg").read_bytes()
        (component / "cfg").write_bytes(data[: len(data) // 2])
    elif damage == "cfg not a dict":
        (component / "cfg").write_text('["LOC", "ORG", "PER"]')
    elif damage == "cfg labels not strings":
        (component / "cfg").write_text('{"labels": ["LOC", 3, null]}')
    elif damage == "cfg has other labels":
        # The output layer in the model file has 13 rows, the cfg asks for 9.
        (component / "cfg").write_text('{"labels": ["LOC", "PER"]}')
    elif damage == "cfg labels renamed":
        # Same count, so the same 13 rows: it would load and relabel PER.
        (component / "cfg").write_text('{"labels": ["LOC", "ORG", "PERSON"]}')
    with pytest.raises((ValueError, OSError), match=match):
        spacy.load(path)


def test_renamed_labels_in_bytes_raise(nlp):
    msg = srsly.msgpack_loads(nlp.get_pipe("rnn_ner").to_bytes())
    msg["cfg"] = srsly.json_dumps({"labels": ["LOC", "ORG", "PERSON"]}).encode("utf8")
    fresh = spacy.blank("en").add_pipe("rnn_ner", config=SMALL)
    with pytest.raises(ValueError, match=r"'rnn_ner'.*bytes.*\['LOC', 'ORG', 'PER'\].*PERSON"):
        fresh.from_bytes(srsly.msgpack_dumps(msg))


@pytest.mark.parametrize("value", [numpy.nan, numpy.inf])
def test_non_finite_weight_fails_at_load(nlp, tmp_path, value):
    nlp2 = copy_of(nlp)
    layer = nlp2.get_pipe("rnn_ner").model.get_ref("output_layer")
    W = layer.get_param("W").copy()
    W[1, 2] = value
    layer.set_param("W", W)
    nlp2.to_disk(tmp_path / "model")
    match = r"Could not load component 'rnn_ner' from .*parameter 'W' of layer 'softmax' has [01] NaN and [01] inf"
    with pytest.raises(ValueError, match=match):
        spacy.load(tmp_path / "model")
    fresh = spacy.blank("en").add_pipe("rnn_ner", config=SMALL)
    with pytest.raises(ValueError, match=match.replace(" from .*", " from bytes.*")):
        fresh.from_bytes(nlp2.get_pipe("rnn_ner").to_bytes())


@pytest.mark.parametrize(
    "other_config,match",
    [
        ({"width": 24}, "nO"),
        ({"cell": "gru"}, "cell|bh_0"),
        ({"cell": "elman"}, "cell"),
        ({"bidirectional": False}, "bidirectional"),
        ({"depth": 2}, "depth|_1_"),
        ({"crf": True}, "structure"),
    ],
)
def test_model_saved_by_other_config_raises(saved, tmp_path, other_config, match):
    """A model file from a differently configured component must not load:
    thinc's `from_bytes` takes the saved attrs as they are, so a saved GRU
    would otherwise silently run in place of the configured LSTM."""
    other = spacy.blank("en")
    other.add_pipe("rnn_ner", config=small_config(**other_config))
    other.initialize(lambda: make_examples(other.vocab))
    other.get_pipe("rnn_ner").to_disk(tmp_path / "other")
    path = damaged_copy(saved, tmp_path)
    shutil.copy(tmp_path / "other" / "model", path / "rnn_ner" / "model")
    with pytest.raises(ValueError, match=r"Could not load the model of component 'rnn_ner'.*rnn_ner/model") as err:
        spacy.load(path)
    assert err.match(match)


def test_bytes_have_no_pickle(nlp):
    """test_serialize scans the saved directory; this scans `to_bytes`, down
    through the nested msgpack of the pipeline, component and model."""
    data = nlp.to_bytes()
    component = srsly.msgpack_loads(data)["rnn_ner"]  # without the vocab
    standalone = nlp.get_pipe("rnn_ner").to_bytes()  # with it
    model = srsly.msgpack_loads(component)["model"]
    for blob in (data, component, standalone, model):
        assert not _is_pickle(blob)
        for value in _leaves(srsly.msgpack_loads(blob)):
            if isinstance(value, bytes):
                assert not _is_pickle(value)
            elif isinstance(value, numpy.ndarray):
                assert value.dtype != object


def _is_pickle(data: bytes) -> bool:
    return data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5


def _leaves(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _leaves(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _leaves(value)
    else:
        yield obj


class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _object_array_model(model: bytes, payload: bytes) -> bytes:
    """The model file with its first param replaced by an object array holding
    a pickle, in msgpack-numpy's encoding (pickle-based decoders unpickle it)."""
    msg = srsly.msgpack_loads(model)
    params = next(p for p in msg["params"] if p)
    name = next(iter(params))
    params[name] = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1], b"data": payload}
    return srsly.msgpack_dumps(msg)


@pytest.mark.parametrize("where", ["extra files", "model", "cfg", "object array"])
def test_loading_runs_no_code_from_the_model_dir(nlp, saved, tmp_path, where):
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker), protocol=4)
    pickle.loads(payload)  # the payload is live ...
    assert marker.exists()
    marker.unlink()
    path = damaged_copy(saved, tmp_path)
    component = path / "rnn_ner"
    code = f"open({str(marker)!r}, 'w').write('pwned')\n"
    if where == "extra files":
        for py in (path / "__init__.py", component / "__init__.py", component / "model.py"):
            py.write_text(code)
        for pkl in (component / "model.pkl", component / "model.pickle", path / "nlp.pkl"):
            pkl.write_bytes(payload)
        text = "Ada Lovelace lives in London ."
        assert ent_tuples(spacy.load(path)(text)) == ent_tuples(nlp(text))
    else:
        target, data = {
            "model": ("model", payload),
            "cfg": ("cfg", payload),
            "object array": ("model", _object_array_model((component / "model").read_bytes(), payload)),
        }[where]
        (component / target).write_bytes(data)
        with pytest.raises(ValueError, match=rf"'rnn_ner'.*rnn_ner/{target}"):
            spacy.load(path)
    assert not marker.exists()  # ... but loading never unpickled it


# 4. Processes, seeds, memory ---------------------------------------------


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


MEMORY_SCRIPT = """
import json, resource, time, tracemalloc
import spacy
from spacy.tokens import Doc
from spacy.training import Example

nlp = spacy.blank("en")
nlp.add_pipe("rnn_ner")  # the default model: width 96, LSTM
text = "Ada Lovelace lives in London ."
eg = Example.from_dict(nlp.make_doc(text), {"entities": [(0, 12, "PER"), (22, 28, "LOC")]})
nlp.initialize(lambda: [eg])
nlp(text)
words = (text.split() + ["Grace", "Hopper", "joined", "the", "Navy", "."]) * 2000
words = words[:20000]

def run():
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == 20000
    return len(doc.ents)

def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

try:
    # Reset the peak RSS (VmHWM) to the current RSS, so that the peak of the
    # run is measured, not the one of loading and initializing.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    method = "VmHWM after clear_refs"
    before = status_kb("VmRSS")
except OSError:
    method = "ru_maxrss"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
n_ents = run()
seconds = time.perf_counter() - start
after = status_kb("VmHWM") if method != "ru_maxrss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
run()
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({
    "rss_before_mb": round(before / 1024, 1),
    "peak_rss_growth_mb": round((after - before) / 1024, 1),
    "rss_method": method,
    "traced_peak_mb": round(traced_peak / 2**20, 1),
    "seconds": round(seconds, 2),
    "n_ents": n_ents,
}))
"""


@pytest.mark.slow  # ~15 s: a fresh process and two passes over the doc
def test_memory_of_20000_token_doc_is_bounded():
    """Peak memory of one 20,000-token doc with the default model, in a fresh
    process: the peak RSS during the run over the RSS before it, and the
    tracemalloc peak of a second run (Python and numpy allocations)."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("20,000-token doc:", result)
    assert result["peak_rss_growth_mb"] < 500, result
    assert result["traced_peak_mb"] < 500, result
