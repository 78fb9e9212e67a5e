"""From per-token scores to entities and their probabilities.

The same linear-chain machinery serves both kinds of tagger: a CRF tagger
gives emission scores and learned transitions; a softmax tagger gives token
posteriors p, used as emissions log(p) with zero transitions. Either way the
BILUO constraints apply, Viterbi gives the best valid path, and
forward-backward gives each entity's marginal probability under the model.
Docs are decoded in buckets of similar length (batching.py), padded into one
array each. Where a doc's sentence starts are known, no entity crosses one
(as with spaCy's `ner`): a sentence start only takes tags that may open a
sequence (O, B-*, U-*).
"""
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from thinc.types import Floats2d

from . import batching, crf
from .crf import Chain
from .tags import allowed_starts, tags_to_spans

# Longest alternative span considered by the recall mode (`threshold`).
MAX_ALTERNATIVE_LEN = 16

ForbidT = Optional[Sequence[Optional[numpy.ndarray]]]


class DocDecoding(NamedTuple):
    spans: List[Span]  # the entities on the best path
    probs: numpy.ndarray  # marginal probability of each of them
    alternatives: List[Tuple[int, int, int, float]]  # (start, end, label index, prob)


class _Bucket(NamedTuple):
    items: List[int]  # indices into the inputs, longest first
    emissions: Floats2d  # (B, T, n_tags), zero on padding
    lengths: Floats2d  # (B,) int32 on xp
    forbid: numpy.ndarray  # (B, T) bool, host
    breaks: numpy.ndarray  # (B, T) bool, host: no entity continues into the token

    def allowed(self, tags: Sequence[str]) -> Optional[numpy.ndarray]:
        """(B, T, n_tags) bool mask of the tags each token may take (host),
        or None when nothing is restricted."""
        if not (self.forbid.any() or self.breaks.any()):
            return None
        allowed = numpy.ones(self.forbid.shape + (len(tags),), dtype=bool)
        allowed[:, :, 1:] &= ~self.forbid[:, :, None]
        allowed[self.breaks] &= allowed_starts(tags)
        return allowed


def best_paths(
    xp,
    chain: Chain,
    emissions_list: Sequence[Floats2d],
    forbid_list: ForbidT = None,
    breaks_list: ForbidT = None,
) -> List[numpy.ndarray]:
    """The best valid tag path (int32 tag indices, host memory) of every
    item of a list of (n_tokens, n_tags) scores, in length buckets.

    forbid_list: per item None or a bool array (n_tokens,): True forces "O".
    breaks_list: per item None or a bool array (n_tokens,): True where no
        entity may continue into the token (a sentence start).
    """
    paths = [numpy.zeros((int(e.shape[0]),), dtype="i") for e in emissions_list]
    for bucket in _buckets(xp, chain, emissions_list, forbid_list, breaks_list):
        allowed = bucket.allowed(chain.tags)
        found = crf.viterbi(
            xp, chain, bucket.emissions, bucket.lengths,
            allowed_mask=None if allowed is None else xp.asarray(allowed),
        )
        for i, path in zip(bucket.items, found):
            paths[i] = path
    return paths


def decode(
    xp,
    chain: Chain,
    docs: Sequence[Doc],
    emissions_list: Sequence[Floats2d],
    forbid_list: ForbidT = None,
    breaks_list: ForbidT = None,
    *,
    with_probs: bool = True,
    threshold: Optional[float] = None,
) -> List[DocDecoding]:
    """Best valid path per doc, the marginal probability of each entity on it,
    and (if `threshold`) the other spans whose marginal is >= threshold.

    emissions_list: per doc an (n_tokens, n_tags) array of scores.
    forbid_list: per doc None or a bool array (n_tokens,): True forces "O".
    breaks_list: per doc None or a bool array (n_tokens,): True where no
        entity may continue into the token (see `sentence_breaks`).
    RETURNS: per doc its entities as spaCy spans (from `biluo_tags_to_spans`),
        their probabilities (empty unless `with_probs`) and the alternatives.
    """
    tags = chain.tags
    empty = numpy.zeros((0,), dtype="f")
    results = [DocDecoding([], empty, []) for _ in emissions_list]
    label_ids = {label: i for i, label in enumerate(crf.span_labels(tags))}
    for bucket in _buckets(xp, chain, emissions_list, forbid_list, breaks_list):
        items = bucket.items
        args = (xp, chain, bucket.emissions, bucket.lengths)
        allowed_np = bucket.allowed(tags)
        allowed = None if allowed_np is None else xp.asarray(allowed_np)
        paths = crf.viterbi(*args, allowed_mask=allowed)
        ents = [
            tags_to_spans(docs[i], [tags[t] for t in path.tolist()])
            for i, path in zip(items, paths)
        ]
        spans = [[(e.start, e.end, label_ids[e.label_]) for e in doc_ents] for doc_ents in ents]
        if with_probs or threshold is not None:
            fb = crf.forward_backward(*args, allowed_mask=allowed)
            log_probs = crf.span_log_marginals(*args, spans, allowed_mask=allowed, fb=fb)
            alternatives: List[List[Tuple[int, int, int, float]]] = [[] for _ in items]
            if threshold is not None:
                found = crf.spans_above_threshold(
                    *args, threshold, max_len=MAX_ALTERNATIVE_LEN, allowed_mask=allowed, fb=fb
                )
                for row, hits in enumerate(found):
                    on_path = set(spans[row])
                    alternatives[row] = [h for h in hits if h[:3] not in on_path]
        for row, i in enumerate(items):
            if with_probs or threshold is not None:
                probs = numpy.exp(log_probs[row]).astype("f")
                results[i] = DocDecoding(ents[row], probs, alternatives[row])
            else:
                results[i] = DocDecoding(ents[row], empty, [])
    return results


def sentence_breaks(doc: Doc) -> Optional[numpy.ndarray]:
    """Bool (n_tokens,): True at every sentence start but the first token,
    where an entity may not continue; None if the doc has no sentence start
    set (then entities may span any tokens)."""
    if len(doc) < 2 or not doc.has_annotation("SENT_START"):
        return None
    breaks = doc.to_array("SENT_START") == 1
    breaks[0] = False
    return breaks if breaks.any() else None


def _buckets(
    xp,
    chain: Chain,
    emissions_list: Sequence[Floats2d],
    forbid_list: ForbidT,
    breaks_list: ForbidT = None,
) -> Iterator[_Bucket]:
    """The non-empty items, padded into length buckets (see batching.py):
    bounds the (B, T, n_tags) arrays of a batch that holds one very long doc."""
    n_tags = len(chain.tags)
    for emissions in emissions_list:
        if emissions.ndim != 2 or emissions.shape[1] != n_tags:
            raise ValueError(
                f"Expected scores of shape (n_tokens, {n_tags}), got {emissions.shape}"
            )
    lengths = [int(e.shape[0]) for e in emissions_list]
    # Read at call time, so that a test can shrink it.
    max_padded = batching.MAX_PADDED_TOKENS
    for items in batching.length_buckets(lengths, max_padded=max_padded):
        n_steps = lengths[items[0]]
        emissions = xp.zeros((len(items), n_steps, n_tags), dtype="f")
        forbid = numpy.zeros((len(items), n_steps), dtype=bool)
        breaks = numpy.zeros((len(items), n_steps), dtype=bool)
        for row, i in enumerate(items):
            emissions[row, : lengths[i]] = emissions_list[i]
            for given, mask in ((forbid_list, forbid), (breaks_list, breaks)):
                if given is not None and given[i] is not None:
                    mask[row, : lengths[i]] = given[i]
        lengths_xp = xp.asarray([lengths[i] for i in items], dtype="i")
        yield _Bucket(items, emissions, lengths_xp, forbid, breaks)
