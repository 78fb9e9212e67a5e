"""From per-token scores to entities and their probabilities.

The same linear-chain machinery serves both kinds of tagger: a CRF tagger
gives emission scores and learned transitions; a softmax tagger gives token
posteriors p, used as emissions log(p) with zero transitions. Either way the
BILUO constraints apply, Viterbi gives the best valid path, and
forward-backward gives each entity's marginal probability under the model.
Docs are decoded in buckets of similar length (batching.py), padded into one
array each.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from thinc.types import Floats2d

from . import batching, crf
from .tags import tags_to_spans

# Padded tokens per length bucket (see batching.py): bounds the (B, T, n_tags)
# arrays of a batch that holds one very long doc.
MAX_PADDED_TOKENS = batching.MAX_PADDED_TOKENS
# Longest alternative span considered by the recall mode (`threshold`).
MAX_ALTERNATIVE_LEN = 16


class DocDecoding(NamedTuple):
    spans: List[Span]  # the entities on the best path
    probs: numpy.ndarray  # marginal probability of each of them
    alternatives: List[Tuple[int, int, int, float]]  # (start, end, label index, prob)


def decode(
    xp,
    docs: Sequence[Doc],
    emissions_list: Sequence[Floats2d],
    tags: Sequence[str],
    transitions,
    start,
    end,
    forbid_list: Optional[Sequence[Optional[numpy.ndarray]]] = None,
    *,
    with_probs: bool = True,
    threshold: Optional[float] = None,
) -> List[DocDecoding]:
    """Best valid path per doc, the marginal probability of each entity on it,
    and (if `threshold`) the other spans whose marginal is >= threshold.

    emissions_list: per doc an (n_tokens, n_tags) array of scores.
    RETURNS: per doc its entities as spaCy spans (from `biluo_tags_to_spans`),
        their probabilities (empty unless `with_probs`) and the alternatives.
    forbid_list: per doc None or a bool array (n_tokens,): True forces "O".
    """
    n_tags = len(tags)
    lengths = [int(e.shape[0]) for e in emissions_list]
    empty = numpy.zeros((0,), dtype="f")
    results: List[DocDecoding] = [DocDecoding([], empty, []) for _ in lengths]
    label_ids = {label: i for i, label in enumerate(crf.span_labels(tags))}
    for chunk in batching.length_buckets(lengths, max_padded=MAX_PADDED_TOKENS):
        T = lengths[chunk[0]]
        emissions = xp.zeros((len(chunk), T, n_tags), dtype="f")
        forbid = numpy.zeros((len(chunk), T), dtype=bool)
        for row, i in enumerate(chunk):
            emissions[row, : lengths[i]] = emissions_list[i]
            if forbid_list is not None and forbid_list[i] is not None:
                forbid[row, : lengths[i]] = forbid_list[i]
        chunk_lengths = xp.asarray([lengths[i] for i in chunk], dtype="i")
        args = (emissions, chunk_lengths, transitions, start, end, tags, xp)
        paths = crf.viterbi(*args, forbid_mask=xp.asarray(forbid))
        ents = [
            tags_to_spans(docs[i], [tags[t] for t in path.tolist()])
            for i, path in zip(chunk, paths)
        ]
        spans = [[(e.start, e.end, label_ids[e.label_]) for e in doc_ents] for doc_ents in ents]
        if with_probs or threshold is not None:
            allowed = None
            if forbid.any():
                allowed_np = numpy.ones((len(chunk), T, n_tags), dtype=bool)
                allowed_np[:, :, 1:] &= ~forbid[:, :, None]
                allowed = xp.asarray(allowed_np)
            fb = crf.forward_backward(*args, allowed_mask=allowed)
            log_probs = crf.span_log_marginals(
                *args[:6], spans, xp, allowed_mask=allowed, fb=fb
            )
            alternatives: List[List[Tuple[int, int, int, float]]] = [[] for _ in chunk]
            if threshold is not None:
                found = crf.spans_above_threshold(
                    *args, threshold, max_len=MAX_ALTERNATIVE_LEN, allowed_mask=allowed, fb=fb
                )
                for row, hits in enumerate(found):
                    on_path = set(spans[row])
                    alternatives[row] = [h for h in hits if h[:3] not in on_path]
        for row, i in enumerate(chunk):
            if with_probs or threshold is not None:
                probs = numpy.exp(log_probs[row]).astype("f")
                results[i] = DocDecoding(ents[row], probs, alternatives[row])
            else:
                results[i] = DocDecoding(ents[row], empty, [])
    return results

