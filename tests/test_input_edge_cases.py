"""Any input gives well-formed annotations: any text (about 2,300 generated
docs in all, `--hypothesis-show-statistics` shows the share with entities),
any words, batches of mixed lengths, pre-set entities and blocked tokens,
any probabilities, a 20,000-token text."""

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from spacy.tokens import Doc, Span

from .robust import (
    HARD,
    LONG_TEXTS,
    PROPERTY,
    TAGGERS,
    TEXTS,
    WORD_LISTS,
    WORDS,
    check_doc,
    ent_tuples,
)


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
