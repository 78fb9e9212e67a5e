"""The one Viterbi (crf.viterbi, in length buckets via decode.best_paths)
against brute force over all valid tag sequences, and on degenerate input."""
import itertools

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from spacy.tokens import Doc

from spacy_rnn_ner import batching
from spacy_rnn_ner.crf import Chain
from spacy_rnn_ner.decode import best_paths, decode, sentence_breaks
from spacy_rnn_ner.tags import is_valid_sequence, make_tags

from .util import reference_is_valid


def viterbi_decode(scores_list, tags, forbid_list=None, breaks_list=None):
    """Best paths of a softmax tagger's chain (no transition scores)."""
    return best_paths(numpy, Chain.zeros(numpy, tags), scores_list, forbid_list, breaks_list)


def brute_force(scores, tags, forbid=None, breaks=None):
    """Best valid sequence by enumerating all of them."""
    n_tokens = scores.shape[0]
    best, best_score = None, -numpy.inf
    for ids in itertools.product(range(len(tags)), repeat=n_tokens):
        if forbid is not None and any(forbid[i] and ids[i] != 0 for i in range(n_tokens)):
            continue
        # An entity crossing a break holds an I- or L- tag on the break.
        if breaks is not None and any(
            breaks[i] and tags[ids[i]][:1] in ("I", "L") for i in range(n_tokens)
        ):
            continue
        if not reference_is_valid([tags[i] for i in ids]):
            continue
        score = sum(scores[i, j] for i, j in enumerate(ids))
        if score > best_score:
            best, best_score = ids, score
    return list(best), best_score


def path_score(scores, ids):
    return sum(scores[i, j] for i, j in enumerate(ids))


@pytest.mark.parametrize("labels", [["A"], ["A", "B"]])
@pytest.mark.parametrize("n_tokens", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viterbi_matches_brute_force(labels, n_tokens, seed):
    tags = make_tags(labels)
    scores = numpy.random.RandomState(seed).normal(0, 2, (n_tokens, len(tags))).astype("f")
    expected, best = brute_force(scores, tags)
    (got,) = viterbi_decode([scores], tags)
    assert got.tolist() == expected
    assert path_score(scores, got) == pytest.approx(best, abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_with_mask_matches_brute_force(seed):
    rng = numpy.random.RandomState(seed)
    tags = make_tags(["A", "B"])
    scores = rng.normal(0, 2, (4, len(tags))).astype("f")
    # Make entities attractive so that the mask has something to block.
    scores[:, 1:] += 2.0
    forbid = rng.rand(4) < 0.4
    expected, _ = brute_force(scores, tags, forbid)
    (got,) = viterbi_decode([scores], tags, [forbid])
    assert got.tolist() == expected
    assert all(got[forbid] == 0)


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_with_sentence_breaks_matches_brute_force(seed):
    rng = numpy.random.RandomState(seed)
    tags = make_tags(["A", "B"])
    scores = rng.normal(0, 2, (5, len(tags))).astype("f")
    # Entities that want to run across the whole sequence.
    scores[:, [tags.index("I-A"), tags.index("L-A"), tags.index("B-A")]] += 4.0
    breaks = numpy.asarray([False, False, True, False, True])
    forbid = numpy.asarray([False, False, False, seed % 2 == 0, False])
    expected, _ = brute_force(scores, tags, forbid, breaks)
    (got,) = viterbi_decode([scores], tags, [forbid], [breaks])
    assert got.tolist() == expected
    assert not any(tags[t][:1] in ("I", "L") for t in got[breaks])


def test_decode_entities_stay_inside_sentences():
    nlp = spacy.blank("en")
    tags = make_tags(["PER"])
    # The scores want "Damien Flemming" as one name; the data's sentence
    # break between the two words must split it, and the probabilities must
    # be those of the constrained chain (one-token names here).
    words = ["Damien", "Flemming", "took", "two"]
    scores = numpy.full((4, len(tags)), -5.0, dtype="f")
    scores[0, tags.index("B-PER")] = 5.0
    scores[1, tags.index("L-PER")] = 5.0
    scores[0, tags.index("U-PER")] = scores[1, tags.index("U-PER")] = 1.0
    scores[2:, 0] = 5.0
    chain = Chain.zeros(numpy, tags)
    free = Doc(nlp.vocab, words=words)
    split = Doc(nlp.vocab, words=words, sent_starts=[True, True, True, False])
    assert sentence_breaks(free) is None
    assert sentence_breaks(split).tolist() == [False, True, True, False]
    (whole,) = decode(numpy, chain, [free], [scores], None, [sentence_breaks(free)])
    (parts,) = decode(numpy, chain, [split], [scores], None, [sentence_breaks(split)])
    assert [(e.start, e.end) for e in whole.spans] == [(0, 2)]
    assert [(e.start, e.end) for e in parts.spans] == [(0, 1), (1, 2)]
    # Each word alone: U-PER (score 1) against O (score -5).
    p_name = numpy.exp(1.0) / (numpy.exp(1.0) + numpy.exp(-5.0))
    assert parts.probs.tolist() == pytest.approx([p_name, p_name], rel=1e-4)


def test_sentence_breaks_edge_cases():
    nlp = spacy.blank("en")
    assert sentence_breaks(Doc(nlp.vocab, words=[])) is None
    assert sentence_breaks(Doc(nlp.vocab, words=["one"], sent_starts=[True])) is None
    # One sentence: its start is the doc's start, no break.
    assert sentence_breaks(Doc(nlp.vocab, words=["a", "b"], sent_starts=[True, False])) is None


@pytest.mark.parametrize("max_padded", [2**16, 12])
def test_viterbi_batched_equals_one_by_one(monkeypatch, max_padded):
    # A small chunk budget decodes the batch in several length-sorted chunks.
    monkeypatch.setattr(batching, "MAX_PADDED_TOKENS", max_padded)
    rng = numpy.random.RandomState(0)
    tags = make_tags(["LOC", "ORG", "PER"])
    lengths = [7, 0, 1, 12, 3, 0, 5]
    scores = [rng.normal(0, 3, (n, len(tags))).astype("f") for n in lengths]
    masks = [rng.rand(n) < 0.2 for n in lengths]
    masks[3] = None
    batched = viterbi_decode(scores, tags, masks)
    assert [len(path) for path in batched] == lengths
    for doc_scores, mask, path in zip(scores, masks, batched):
        (alone,) = viterbi_decode([doc_scores], tags, [mask])
        assert path.tolist() == alone.tolist()
        assert is_valid_sequence([tags[i] for i in path])


def test_viterbi_empty():
    tags = make_tags(["PER"])
    assert viterbi_decode([], tags) == []
    empty = numpy.zeros((0, len(tags)), dtype="f")
    paths = viterbi_decode([empty, empty], tags, [numpy.zeros((0,), dtype=bool), None])
    assert [path.shape for path in paths] == [(0,), (0,)]


@pytest.mark.parametrize("n_tokens", [1, 2, 5, 50])
@pytest.mark.parametrize("n_labels", [0, 1, 4])
def test_viterbi_degenerate_scores_give_valid_sequences(n_tokens, n_labels):
    tags = make_tags([f"L{i}" for i in range(n_labels)])
    uniform = numpy.full((n_tokens, len(tags)), numpy.log(1.0 / len(tags)), dtype="f")
    # Scores where a greedy argmax would give I- tags without a B-.
    inside = numpy.zeros((n_tokens, len(tags)), dtype="f")
    inside[:, 2::4] = 10.0
    # Log of zero probabilities for everything but one tag.
    zeros_but_one = numpy.full((n_tokens, len(tags)), -numpy.inf, dtype="f")
    zeros_but_one[:, -1] = 0.0
    for scores in (uniform, inside, zeros_but_one, numpy.zeros_like(uniform)):
        (path,) = viterbi_decode([scores], tags)
        assert is_valid_sequence([tags[i] for i in path])
    (path,) = viterbi_decode([uniform], tags)
    assert path.tolist() == [0] * n_tokens


@settings(max_examples=50, deadline=None)
@given(
    arrays("float32", st.tuples(st.integers(0, 6), st.just(9)), elements=st.floats(-1e6, 1e6, width=32)),
    st.integers(0, 6),
)
def test_viterbi_any_finite_scores_give_valid_sequences(scores, n_other):
    tags = make_tags(["A", "B"])
    other = numpy.zeros((n_other, len(tags)), dtype="f")
    paths = viterbi_decode([scores, other], tags)
    for path in paths:
        assert is_valid_sequence([tags[i] for i in path])


def test_viterbi_long_doc():
    tags = make_tags(["LOC", "ORG", "PER"])
    scores = numpy.random.RandomState(0).normal(0, 1, (5000, len(tags))).astype("f")
    (path,) = viterbi_decode([scores], tags)
    assert len(path) == 5000
    assert is_valid_sequence([tags[i] for i in path])


def test_viterbi_rejects_bad_input():
    tags = make_tags(["PER"])
    with pytest.raises(ValueError, match="NaN"):
        viterbi_decode([numpy.full((2, len(tags)), numpy.nan, dtype="f")], tags)
    with pytest.raises(ValueError, match="shape"):
        viterbi_decode([numpy.zeros((2, len(tags) + 1), dtype="f")], tags)
