"""The BILUO tag inventory of the component, its transition constraints, and
constrained Viterbi decoding of per-token tag scores into entity spans.

Tag order is fixed: "O", then "B-X", "I-X", "L-X", "U-X" for each entity label
X in sorted order. Column j of the model's output always means `tags[j]`, so
the order must never depend on insertion or set iteration order.
"""
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans
from thinc.types import Floats2d
from thinc.util import get_array_module

from . import batching

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


# Docs are decoded in length buckets (see batching.py), so that one long doc
# in a big batch doesn't make the whole (n_docs, max_len, n_tags) backpointer
# array huge. The budget is the package's one value, named here so that a
# test can shrink it for this module.
MAX_PADDED_TOKENS = batching.MAX_PADDED_TOKENS


def viterbi_decode(
    scores_list: Sequence[Floats2d],
    tags: Sequence[str],
    forbid_mask_list: Optional[Sequence[Optional[numpy.ndarray]]] = None,
    *,
    xp=None,
    transitions=None,
    start=None,
    end=None,
) -> List[numpy.ndarray]:
    """Find, per doc, the valid BILUO tag sequence with the highest total
    score. Docs are padded and decoded together: the loop runs over time only.

    scores_list (Sequence[Floats2d]): Per doc an (n_tokens, n_tags) array of
        log-scores (e.g. log-probabilities). Must be free of NaN.
    tags (Sequence[str]): The tag of each column, e.g. from `make_tags`.
    forbid_mask_list (Optional[Sequence]): Per doc None or a boolean array of
        shape (n_tokens,); True forces the token to "O" (e.g. it already
        belongs to an entity).
    xp: numpy or cupy; inferred from the scores if None.
    transitions, start, end: Optional learned scores (n_tags, n_tags),
        (n_tags,), (n_tags,) of a CRF, added to the path score; zeros if None.
    RETURNS (List[numpy.ndarray]): Per doc the best tag indices (int32, host
        memory). Every sequence is valid, whatever the (finite) scores.
    """
    n_tags = len(tags)
    if xp is None:
        xp = get_array_module(scores_list[0]) if len(scores_list) else numpy
    for scores in scores_list:
        if scores.ndim != 2 or scores.shape[1] != n_tags:
            raise ValueError(
                f"Expected scores of shape (n_tokens, {n_tags}), got {scores.shape}"
            )
    if forbid_mask_list is None:
        forbid_mask_list = [None] * len(scores_list)
    # Forbidden starts and transitions get -inf; "O" is always allowed.
    neg_inf = xp.asarray(-numpy.inf, dtype="f")

    def constrained(allowed, scores):
        scores = xp.zeros(allowed.shape, dtype="f") if scores is None else scores
        return xp.where(xp.asarray(allowed), xp.asarray(scores, dtype="f"), neg_inf)

    start = constrained(allowed_starts(tags), start)
    end = constrained(allowed_ends(tags), end)
    trans = constrained(allowed_transitions(tags), transitions)
    lengths = [int(scores.shape[0]) for scores in scores_list]
    paths: List[numpy.ndarray] = [numpy.zeros((n,), dtype="i") for n in lengths]
    for chunk in batching.length_buckets(lengths, max_padded=MAX_PADDED_TOKENS):
        chunk_paths = _viterbi_padded(
            xp,
            [scores_list[i] for i in chunk],
            [forbid_mask_list[i] for i in chunk],
            start,
            end,
            trans,
        )
        for i, path in zip(chunk, chunk_paths):
            paths[i] = path
    return paths


def _viterbi_padded(xp, scores_list, forbid_mask_list, start, end, trans):
    """Viterbi over non-empty docs padded into one (B, T, n_tags) array, with
    -inf log-scores for forbidden starts, ends and transitions.
    """
    n_docs = len(scores_list)
    n_tags = trans.shape[0]
    lengths = [int(scores.shape[0]) for scores in scores_list]
    max_len = max(lengths)
    neg_inf = xp.asarray(-numpy.inf, dtype="f")
    emissions = xp.zeros((n_docs, max_len, n_tags), dtype="f")
    forbid = xp.zeros((n_docs, max_len), dtype=bool)
    for i, (scores, mask) in enumerate(zip(scores_list, forbid_mask_list)):
        emissions[i, : lengths[i]] = xp.asarray(scores, dtype="f")
        if mask is not None:
            forbid[i, : lengths[i]] = xp.asarray(mask, dtype=bool)
    if bool(xp.isnan(emissions).any()):
        raise ValueError("Cannot decode NaN scores")
    emissions[:, :, 1:] = xp.where(forbid[:, :, None], neg_inf, emissions[:, :, 1:])
    # Every path takes "O" at a forced token, so its own score does not
    # matter: keep it finite so that the forced token can't sink all paths.
    emissions[:, :, 0] = xp.where(forbid, 0.0, emissions[:, :, 0])
    lengths_arr = xp.asarray(lengths, dtype="i")
    # A padded step keeps delta unchanged and back-points to the same tag, so
    # backtracking from the last step walks to each doc's own last token.
    identity = xp.arange(n_tags, dtype="i")
    backpointers = xp.zeros((n_docs, max_len, n_tags), dtype="i")
    delta = start[None, :] + emissions[:, 0]
    for t in range(1, max_len):
        candidates = delta[:, :, None] + trans[None, :, :]
        best_prev = candidates.argmax(axis=1).astype("i")
        new_delta = candidates.max(axis=1) + emissions[:, t]
        active = (lengths_arr > t)[:, None]
        delta = xp.where(active, new_delta, delta)
        backpointers[:, t] = xp.where(active, best_prev, identity[None, :])
    path = xp.zeros((n_docs, max_len), dtype="i")
    path[:, max_len - 1] = (delta + end[None, :]).argmax(axis=1)
    rows = xp.arange(n_docs)
    for t in range(max_len - 1, 0, -1):
        path[:, t - 1] = backpointers[rows, t, path[:, t]]
    if hasattr(path, "get"):
        path = path.get()
    return [
        numpy.ascontiguousarray(path[i, :n], dtype="i") for i, n in enumerate(lengths)
    ]


def tags_to_spans(doc: Doc, tag_seq: Sequence[str]) -> List[Span]:
    """Entity spans of a valid BILUO tag sequence over `doc`, via spaCy's own
    `biluo_tags_to_spans`.
    """
    return biluo_tags_to_spans(doc, list(tag_seq))
