"""The BILUO tag inventory of the component, its transition constraints, and
what a missing gold tag is. Decoding is in crf.py (Viterbi) and decode.py.

Tag order is fixed: "O", then "B-X", "I-X", "L-X", "U-X" for each entity label
X in sorted order. Column j of the model's output always means `tags[j]`, so
the order must never depend on insertion or set iteration order.
"""
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans

OUT = "O"
PREFIXES = ("B", "I", "L", "U")
# Integer codes of the tag prefixes, as used by the constraint builders.
_O, _B, _I, _L, _U = 0, 1, 2, 3, 4
_PREFIX_CODES = {"B": _B, "I": _I, "L": _L, "U": _U}
# Gold tags that mean "no annotation" (`Example.get_aligned_ner()` gives None
# for misaligned tokens, "-" and "" come from BILUO input): no loss for these.
MISSING_TAGS = (None, "", "-")


def is_missing(tag: Optional[str]) -> bool:
    """Whether a gold BILUO tag means "annotation missing"."""
    return tag in MISSING_TAGS


def make_tags(labels: Iterable[str]) -> List[str]:
    """The tag inventory for entity `labels`: "O", then B-, I-, L-, U- for
    each distinct label in sorted order.

    labels (Iterable[str]): Entity types, e.g. ("PER", "ORG"). Duplicates are
        ignored.
    RETURNS (List[str]): E.g. ["O", "B-ORG", "I-ORG", "L-ORG", "U-ORG",
        "B-PER", ...].
    """
    labels = set(labels)
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"Entity labels must be non-empty strings, got {label!r}")
    tags = [OUT]
    for label in sorted(labels):
        tags.extend(f"{prefix}-{label}" for prefix in PREFIXES)
    return tags


def _parse_tags(tags: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Prefix code and label id (-1 for "O") of every tag."""
    prefixes = numpy.zeros((len(tags),), dtype="i")
    label_ids = numpy.full((len(tags),), -1, dtype="i")
    label_to_id: dict = {}
    for i, tag in enumerate(tags):
        if tag == OUT:
            continue
        prefix, sep, label = tag.partition("-")
        if prefix not in _PREFIX_CODES or not sep or not label:
            raise ValueError(
                f"Invalid BILUO tag {tag!r}: expected 'O' or 'B|I|L|U-LABEL'"
            )
        prefixes[i] = _PREFIX_CODES[prefix]
        label_ids[i] = label_to_id.setdefault(label, len(label_to_id))
    return prefixes, label_ids


def allowed_starts(tags: Sequence[str]) -> numpy.ndarray:
    """Boolean mask of the tags a sequence may start with: O, B-*, U-*."""
    prefixes, _ = _parse_tags(tags)
    return numpy.isin(prefixes, (_O, _B, _U))


def allowed_ends(tags: Sequence[str]) -> numpy.ndarray:
    """Boolean mask of the tags a sequence may end with: O, L-*, U-*."""
    prefixes, _ = _parse_tags(tags)
    return numpy.isin(prefixes, (_O, _L, _U))


def allowed_transitions(tags: Sequence[str]) -> numpy.ndarray:
    """Boolean matrix A with A[i, j] True if tag j may follow tag i: after
    B-X or I-X only I-X or L-X; after O, L-* or U-* only O, B-* or U-*.
    """
    prefixes, label_ids = _parse_tags(tags)
    inside_prev = numpy.isin(prefixes, (_B, _I))[:, None]
    continues = numpy.isin(prefixes, (_I, _L))[None, :]
    same_label = label_ids[:, None] == label_ids[None, :]
    opens = numpy.isin(prefixes, (_O, _B, _U))[None, :]
    return numpy.where(inside_prev, continues & same_label, opens)


def is_valid_sequence(tag_seq: Sequence[str]) -> bool:
    """Whether a sequence of tag strings is a well-formed BILUO sequence."""
    if not len(tag_seq):
        return True
    tags = sorted(set(tag_seq))
    index = {tag: i for i, tag in enumerate(tags)}
    ids = [index[tag] for tag in tag_seq]
    trans = allowed_transitions(tags)
    return bool(
        allowed_starts(tags)[ids[0]]
        and allowed_ends(tags)[ids[-1]]
        and all(trans[a, b] for a, b in zip(ids, ids[1:]))
    )


def tags_to_spans(doc: Doc, tag_seq: Sequence[str]) -> List[Span]:
    """Entity spans of a valid BILUO tag sequence over `doc`, via spaCy's own
    `biluo_tags_to_spans`.
    """
    return biluo_tags_to_spans(doc, list(tag_seq))
