"""Length buckets, so that the memory of a batch follows its tokens.

The RNN runs on a padded (longest doc x n_docs) batch, and the CRF and the
decoder on padded (n_docs, longest doc, n_tags) arrays. One long doc in a
batch of short ones would make all of them as long as it: 1 x 5,000 tokens +
199 short docs took +1.1 GiB through `nlp.pipe`, against +22 MiB one by one.
Every place that pads by batch runs instead on buckets of docs of similar
length, one after the other, each padded on its own: the RNN encoders
through `layers.with_padded_buckets` (so also inside a shared `tok2vec`
component), the component's CRF and decoder through the functions below.
"""
from typing import Callable, List, Sequence, Tuple

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
    Empty docs get (0, n_out) arrays without running the model."""
    scores: List[Floats2d] = [model.ops.alloc2f(0, n_out) for _ in docs]
    for bucket in length_buckets([len(doc) for doc in docs]):
        bucket_scores = model.predict([docs[i] for i in bucket])
        _check_count(bucket_scores, bucket)
        for i, doc_scores in zip(bucket, bucket_scores):
            scores[i] = doc_scores
    return scores


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
