"""Length buckets, so that the memory of a batch follows its tokens.

The RNN runs on a padded (longest doc x n_docs) batch, and the CRF and the
decoder on padded (n_docs, longest doc, n_tags) arrays. One long doc in a
batch of short ones would make all of them as long as it: 1 x 5,000 tokens +
199 short docs took +1.1 GiB through `nlp.pipe`, against +22 MiB one by one.
Every place that pads by batch runs instead on buckets of docs of similar
length, one after the other, each padded on its own: the RNN encoders
through `layers.with_padded_buckets` (so also inside a shared `tok2vec`
component), the component's CRF and decoder through the functions below.
A very long doc is predicted in overlapping windows (`predict_bucketed`).
"""
from typing import Callable, List, Optional, Sequence, Tuple

from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

# Most padded positions (n_items x longest item) in a bucket, unless one item
# alone is longer: bounds the arrays of a batch of many long docs.
MAX_PADDED_TOKENS = 2**16
# Padding (padded positions minus real tokens) a bucket may always hold;
# beyond it, at most as much padding as real tokens. So a bucket's padded
# size is at most max(2 x its tokens, its tokens + MAX_PADDING): a long doc
# doesn't pad the short ones to its length, and batches of similar lengths
# (the common case) stay in one bucket, which the RNN steps through fastest.
MAX_PADDING = 2**13
# Docs of more tokens than this are predicted in overlapping windows
# (`predict_bucketed`): their working memory is that of a bucket of windows,
# not of the doc, and the windows run as a batch, not as one long sequence
# (benchmarks/results/pipeline-speed.md: a 200,000-token doc through README
# command 1's pipeline). Below it, splitting costs more than it saves (the
# windows' docs and overlaps); far above any CoNLL-2003 article (1,335).
SPLIT_ABOVE_TOKENS = 2**15
# The windows: at most this many tokens, each with PIECE_MARGIN tokens of
# context beyond its core on either side.
MAX_PIECE_TOKENS = 4096
PIECE_MARGIN = 256


def length_buckets(
    lengths: Sequence[int],
    *,
    max_padded: int = MAX_PADDED_TOKENS,
    max_padding: int = MAX_PADDING,
) -> List[List[int]]:
    """Group the indices of the non-empty items into buckets, longest first.

    lengths (Sequence[int]): The length of each item (e.g. tokens per doc).
    max_padded (int): Most padded positions per bucket (a bucket of one item
        may exceed it).
    max_padding (int): Padding a bucket may hold even if it has fewer real
        tokens than that.
    RETURNS (List[List[int]]): Indices into `lengths`, each bucket sorted by
        decreasing length; items of length 0 are left out.
    """
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: -lengths[i])
    buckets: List[List[int]] = []
    longest = n_real = 0
    for i in order:
        if buckets:
            padded = longest * (len(buckets[-1]) + 1)
            real = n_real + lengths[i]
            if padded <= max_padded and padded - real <= max(real, max_padding):
                buckets[-1].append(i)
                n_real = real
                continue
        buckets.append([i])
        longest = n_real = lengths[i]
    return buckets


def has_listener(model: Model) -> bool:
    """Whether the model reads its token vectors from an upstream `tok2vec`
    component (which already ran on the whole batch)."""
    return any(isinstance(node, Tok2VecListener) for node in model.walk())


def predict_bucketed(model: Model, docs: Sequence[Doc], n_out: int) -> List[Floats2d]:
    """`model.predict(docs)`, run bucket by bucket, in the order of `docs`.
    Empty docs get (0, n_out) arrays without running the model. A doc of
    more than SPLIT_ABOVE_TOKENS tokens is predicted in overlapping pieces
    (`piece_bounds`), unless the model listens to an upstream tok2vec."""
    scores: List[Floats2d] = [model.ops.alloc2f(0, n_out) for _ in docs]
    # (doc index, window start, window end, core start, core end)
    items = []
    pieces = not has_listener(model)
    for i, doc in enumerate(docs):
        if pieces and len(doc) > SPLIT_ABOVE_TOKENS:
            scores[i] = model.ops.alloc2f(len(doc), n_out)
            items.extend((i, *bounds) for bounds in piece_bounds(len(doc)))
        else:
            items.append((i, 0, len(doc), 0, len(doc)))
    split = {i for i, start, end, _, _ in items if not (start == 0 and end == len(docs[i]))}
    sources = {i: _PieceSource(docs[i]) for i in split}
    for bucket in length_buckets([end - start for _, start, end, _, _ in items]):
        batch = []
        for k in bucket:
            i, start, end, _, _ = items[k]
            whole = start == 0 and end == len(docs[i])
            batch.append(docs[i] if whole else sources[i].piece(start, end))
        bucket_scores = model.predict(batch)
        _check_count(bucket_scores, bucket)
        for k, piece_scores in zip(bucket, bucket_scores):
            i, start, end, core_start, core_end = items[k]
            if start == 0 and end == len(docs[i]):
                scores[i] = piece_scores
            else:
                scores[i][core_start:core_end] = piece_scores[core_start - start : core_end - start]
        del batch, bucket_scores
    return scores


class _PieceSource:
    """Makes docs of token ranges of one doc: its words, spaces and token
    attributes read once (`Span.as_doc` reads the whole doc per span)."""

    ATTRS = ("NORM", "LEMMA", "TAG", "POS", "MORPH", "SENT_START", "ENT_IOB", "ENT_TYPE")

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.words = [token.text for token in doc]
        self.spaces = [bool(token.whitespace_) for token in doc]
        self.attrs = [attr for attr in self.ATTRS if attr not in ("SENT_START",)
                      or doc.has_annotation("SENT_START")]
        self.values = doc.to_array(self.attrs)
        self.ent_iob = self.attrs.index("ENT_IOB")

    def piece(self, start: int, end: int) -> Doc:
        piece = Doc(self.doc.vocab, words=self.words[start:end], spaces=self.spaces[start:end])
        values = self.values[start:end].copy()
        if len(values) and values[0, self.ent_iob] == 1:  # "I" opens the piece: "B"
            values[0, self.ent_iob] = 3
        piece.from_array(self.attrs, values)
        return piece


def piece_bounds(
    n_tokens: int, max_tokens: Optional[int] = None, margin: Optional[int] = None
) -> List[Tuple[int, int, int, int]]:
    """Overlapping windows of at most `max_tokens` tokens (default
    MAX_PIECE_TOKENS) over a doc of `n_tokens`: (start, end, core_start,
    core_end), the cores tiling the doc and each window reaching `margin`
    tokens (default PIECE_MARGIN) beyond its core on either side where the
    doc goes on, so that every token's scores see that much context."""
    max_tokens = MAX_PIECE_TOKENS if max_tokens is None else max_tokens
    margin = PIECE_MARGIN if margin is None else margin
    core = max_tokens - 2 * margin
    if core < 1:
        raise ValueError(f"max_tokens ({max_tokens}) must exceed twice the margin ({margin})")
    bounds = []
    for core_start in range(0, n_tokens, core):
        core_end = min(n_tokens, core_start + core)
        bounds.append((max(0, core_start - margin), min(n_tokens, core_end + margin),
                       core_start, core_end))
    return bounds


def begin_update_bucketed(
    model: Model, docs: Sequence[Doc], n_out: int
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], None]]:
    """`model.begin_update(docs)`, run bucket by bucket: the scores in the
    order of `docs`, and a callback that backpropagates their gradients.

    A model that listens to an upstream `tok2vec` gets the whole batch in one
    call: the listener only accepts the batch the upstream component saw.
    """
    if has_listener(model):
        buckets = [list(range(len(docs)))]
    else:
        buckets = length_buckets([len(doc) for doc in docs])
    scores: List[Floats2d] = [model.ops.alloc2f(0, n_out) for _ in docs]
    callbacks = []
    for bucket in buckets:
        bucket_scores, backprop = model.begin_update([docs[i] for i in bucket])
        _check_count(bucket_scores, bucket)
        for i, doc_scores in zip(bucket, bucket_scores):
            scores[i] = doc_scores
        callbacks.append((bucket, backprop))

    def backprop_bucketed(d_scores: List[Floats2d]) -> None:
        for bucket, backprop in callbacks:
            backprop([d_scores[i] for i in bucket])

    return scores, backprop_bucketed


def _check_count(scores: Sequence, bucket: Sequence[int]) -> None:
    if len(scores) != len(bucket):
        raise ValueError(f"Expected scores for {len(bucket)} docs, got {len(scores)}")
