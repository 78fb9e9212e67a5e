import itertools

import pytest
from spacy.tokens import Doc
from spacy.vocab import Vocab

from spacy_rnn_ner.tags import (
    allowed_ends,
    allowed_starts,
    allowed_transitions,
    is_valid_sequence,
    make_tags,
    tags_to_spans,
)

from .util import reference_is_valid



def test_make_tags_order():
    assert make_tags([]) == ["O"]
    assert make_tags(["PER", "LOC"]) == [
        "O",
        "B-LOC", "I-LOC", "L-LOC", "U-LOC",
        "B-PER", "I-PER", "L-PER", "U-PER",
    ]  # fmt: skip
    labels = [f"L{i}" for i in range(50)]
    expected = make_tags(sorted(labels))
    assert make_tags(reversed(labels)) == expected
    assert make_tags(set(labels)) == expected
    assert make_tags(labels + labels) == expected


@pytest.mark.parametrize("label", ["", None, 3])
def test_make_tags_rejects_bad_labels(label):
    with pytest.raises(ValueError):
        make_tags(["PER", label])


def test_labels_with_hyphens():
    tags = make_tags(["WORK-OF-ART", "WORK"])
    trans = allowed_transitions(tags)
    i = tags.index
    assert trans[i("B-WORK-OF-ART"), i("L-WORK-OF-ART")]
    assert not trans[i("B-WORK-OF-ART"), i("L-WORK")]
    assert not trans[i("B-WORK"), i("I-WORK-OF-ART")]


@pytest.mark.parametrize("tag", ["X", "B", "B-", "X-PER", "b-PER"])
def test_invalid_tags_raise(tag):
    with pytest.raises(ValueError):
        allowed_transitions(["O", tag])


def test_constraints_match_the_grammar():
    tags = make_tags(["LOC", "ORG", "PER"])
    starts, ends, trans = allowed_starts(tags), allowed_ends(tags), allowed_transitions(tags)
    for i, tag in enumerate(tags):
        assert starts[i] == (tag == "O" or tag[0] in "BU")
        assert ends[i] == (tag == "O" or tag[0] in "LU")
    for (i, a), (j, b) in itertools.product(enumerate(tags), repeat=2):
        # A pair is allowed iff it occurs in some valid sequence: open a's
        # entity before it and close b's after it where needed.
        before = ["B-" + a[2:]] if a[0] in "IL" else []
        after = ["L-" + b[2:]] if b[0] in "BI" else []
        assert trans[i, j] == reference_is_valid(before + [a, b] + after), (a, b)


def test_is_valid_sequence_matches_reference():
    tags = make_tags(["A", "B"])
    for n in range(4):
        for seq in itertools.product(tags, repeat=n):
            assert is_valid_sequence(seq) == reference_is_valid(seq), seq


def test_tags_to_spans():
    doc = Doc(Vocab(), words=["Ada", "Lovelace", "met", "Babbage", "in", "London"])
    tags = ["B-PER", "L-PER", "O", "U-PER", "O", "U-LOC"]
    spans = tags_to_spans(doc, tags)
    assert [(s.start, s.end, s.label_) for s in spans] == [(0, 2, "PER"), (3, 4, "PER"), (5, 6, "LOC")]
    assert tags_to_spans(doc[:0].as_doc(), []) == []
    with pytest.raises(ValueError):
        tags_to_spans(doc, ["I-PER", "L-PER", "O", "O", "O", "O"])
