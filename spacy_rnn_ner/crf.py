"""A linear-chain CRF over BILUO tags, as array math on padded batches.

Every function takes `emissions` (B, T, n_tags) per-token scores, `lengths`
(B,), and the CRF parameters as arrays: `transitions` (n_tags, n_tags), the
score of tag j following tag i, and `start`/`end` (n_tags,). The BILUO
constraints of `tags.py` are always applied on top, so only valid sequences
have nonzero probability. `xp` is numpy or cupy; batch items and tags are
vectorised, Python loops run over time steps (or span lengths) only.

Log-probability zero is the finite `LOG_ZERO`, never -inf, so no inf - inf can
give NaN. It is far enough below any real score that exp() of anything that
contains it is exactly 0: forbidden paths are excluded, not just penalised.
Impossible entries are clamped at `LOG_ZERO`; test them with `<= LOG_ZERO / 2`.

A softmax tagger without a CRF is the special case emissions = log(p) with
zero transitions, start and end: the same functions give its constrained
chain's marginals, span confidences and best path.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy

# tags.py keeps these private; they are the constraint parser and the
# constrained Viterbi that the pipeline's decoder uses.
from .tags import (
    _B,
    _I,
    _L,
    _U,
    _parse_tags,
    allowed_ends,
    allowed_starts,
    allowed_transitions,
    is_missing,
    viterbi_decode,
)

LOG_ZERO = -1e30

SpanT = Tuple[int, int, Union[str, int]]


class ForwardBackward(NamedTuple):
    log_alpha: "numpy.ndarray"  # (B, T, n_tags), includes the emission at t
    log_beta: "numpy.ndarray"  # (B, T, n_tags), excludes the emission at t
    log_Z: "numpy.ndarray"  # (B,); 0 for empty sequences


def log_partition(
    emissions, lengths, transitions, start, end, tags, xp, allowed_mask=None
):
    """Log-sum-exp of the scores of all valid tag sequences, per sequence (B,).
    `allowed_mask` (B, T, n_tags) optionally restricts the tags per token; a
    sequence it leaves no valid path for gets LOG_ZERO.
    """
    chain = _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask)
    return _forward(xp, chain)[1]


def forward_backward(
    emissions, lengths, transitions, start, end, tags, xp, allowed_mask=None
) -> ForwardBackward:
    """Forward and backward log-messages and log_Z. Padding and impossible
    entries of log_alpha/log_beta are LOG_ZERO.
    """
    chain = _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask)
    return _forward_backward(xp, chain)


def marginals(
    emissions, lengths, transitions, start, end, tags, xp, allowed_mask=None, fb=None
):
    """Token marginals P(y_t = j), shape (B, T, n_tags), zero on padding (and
    everywhere for a sequence that `allowed_mask` makes impossible). Pass `fb`
    from `forward_backward` with the same arguments to skip recomputing it.
    """
    chain = _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, chain)
    return _token_marginals(xp, chain, fb)


def nll_and_grads(
    emissions, lengths, transitions, start, end, tags, gold_mask, xp
):
    """Negative log-likelihood of the gold annotation, per sequence (B,), and
    the gradients of its sum: d_emissions (B, T, n_tags) (zero on padding),
    d_transitions, d_start, d_end. `gold_mask` (B, T, n_tags) marks the
    allowed tags per token: one-hot where annotated, all True where missing,
    so missing tags are marginalised: loss = log Z - log Z_gold.
    Raises ValueError if some gold_mask admits no valid BILUO path.
    """
    free = _prepare(xp, emissions, lengths, transitions, start, end, tags, None)
    gold = _prepare(xp, emissions, lengths, transitions, start, end, tags, gold_mask)
    counts_free = _expected_counts(xp, free, _forward_backward(xp, free))
    counts_gold = _expected_counts(xp, gold, _forward_backward(xp, gold))
    log_Z_gold = counts_gold[0]
    infeasible = (log_Z_gold <= LOG_ZERO / 2) & (gold.lengths > 0)
    if bool(infeasible.any()):
        rows = [int(i) for i in xp.nonzero(infeasible)[0]]
        raise ValueError(
            f"gold_mask admits no valid BILUO sequence for batch rows {rows}"
        )
    loss = counts_free[0] - log_Z_gold
    grads = tuple(f - g for f, g in zip(counts_free[1:], counts_gold[1:]))
    return (loss,) + grads


def viterbi(
    emissions, lengths, transitions, start, end, tags, xp, forbid_mask=None
) -> List[numpy.ndarray]:
    """Best valid BILUO path per sequence (int32 host arrays of its length),
    via the constrained decoder of tags.py (which scores in float32).
    `forbid_mask` (B, T) bool forces "O" where True, as in `viterbi_decode`.
    """
    _check_shapes(emissions, tags)
    lengths_host = [int(n) for n in _to_host(lengths)]
    return viterbi_decode(
        [emissions[i, :n] for i, n in enumerate(lengths_host)],
        tags,
        None if forbid_mask is None else [forbid_mask[i, :n] for i, n in enumerate(lengths_host)],
        xp=xp,
        transitions=transitions,
        start=start,
        end=end,
    )


def span_labels(tags: Sequence[str]) -> List[str]:
    """The entity labels in label-index order (the order of the B- tags, which
    is sorted order for `make_tags`)."""
    idx = _label_tag_indices(tags)
    return [tags[i].partition("-")[2] for i in idx[0]]


def span_log_marginals(
    emissions,
    lengths,
    transitions,
    start,
    end,
    tags,
    spans: Sequence[Sequence[SpanT]],
    xp,
    allowed_mask=None,
    fb=None,
) -> List[numpy.ndarray]:
    """Per sequence, the log-probability (host array, one per span) that each
    (start, end_exclusive, label) span is exactly an entity: B-, I-..., L- or
    U-label. Labels are strings or label indices (see `span_labels`).
    Impossible spans get LOG_ZERO.
    """
    chain = _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, chain)
    idx = _label_tag_indices(tags)
    label_to_id = {label: i for i, label in enumerate(span_labels(tags))}
    lengths_host = _to_host(chain.lengths)
    if len(spans) != len(lengths_host):
        raise ValueError(f"Expected {len(lengths_host)} span lists, got {len(spans)}")
    flat = [
        (b, s, e, label_to_id[lab] if isinstance(lab, str) else int(lab))
        for b, seq_spans in enumerate(spans)
        for s, e, lab in seq_spans
    ]
    counts = [len(seq_spans) for seq_spans in spans]
    if not flat:
        return [numpy.zeros((0,), dtype=chain.emis.dtype) for _ in counts]
    b_h, s_h, e_h, lab_h = (numpy.asarray(col, dtype="i") for col in zip(*flat))
    if ((s_h < 0) | (e_h <= s_h) | (e_h > lengths_host[b_h])).any():
        raise ValueError("Spans must have 0 <= start < end <= length of their sequence")
    if ((lab_h < 0) | (lab_h >= idx.shape[1])).any():
        raise ValueError("Span label index out of range")
    b, s, e = xp.asarray(b_h), xp.asarray(s_h), xp.asarray(e_h)
    n = e - s
    tag_b, tag_i, tag_l, tag_u = (xp.asarray(row)[xp.asarray(lab_h)] for row in idx)
    alpha, beta, emis, trans = fb.log_alpha, fb.log_beta, chain.emis, chain.trans
    # Walk each span from its B- tag: at offset k the tag is L- at the last
    # token, I- before; spans already past their end keep their score.
    acc = alpha[b, s, tag_b]
    prev = tag_b
    last_t = emis.shape[1] - 1
    for k in range(1, int((e_h - s_h).max())):
        cur = xp.where(n - 1 == k, tag_l, tag_i)
        step = trans[prev, cur] + emis[b, xp.minimum(s + k, last_t), cur]
        acc = xp.where(n > k, xp.maximum(acc + step, LOG_ZERO), acc)
        prev = cur
    score = xp.where(
        n == 1,
        alpha[b, s, tag_u] + beta[b, s, tag_u],
        acc + beta[b, e - 1, tag_l],
    )
    log_p = _normalise(xp, score, fb.log_Z[b])
    return numpy.split(_to_host(log_p), numpy.cumsum(counts)[:-1])


def spans_above_threshold(
    emissions,
    lengths,
    transitions,
    start,
    end,
    tags,
    xp,
    threshold: float,
    *,
    max_len: Optional[int] = None,
    allowed_mask=None,
    fb=None,
) -> List[List[Tuple[int, int, int, float]]]:
    """All entity spans of at most `max_len` tokens (default: any) whose
    marginal probability is >= `threshold` (0 < threshold <= 1), per sequence
    as (start, end_exclusive, label_index, prob), sorted. With threshold > 0.5
    they never overlap; below that they may.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    chain = _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, chain)
    n_seqs, n_steps, _ = chain.emis.shape
    max_len = n_steps if max_len is None else min(int(max_len), n_steps)
    tag_b, tag_i, tag_l, tag_u = (xp.asarray(row) for row in _label_tag_indices(tags))
    alpha, beta, emis, trans = fb.log_alpha, fb.log_beta, chain.emis, chain.trans
    log_Z = fb.log_Z[:, None, None]
    lengths_ = chain.lengths[:, None, None]
    positions = xp.arange(n_steps)[None, :, None]
    hits = []  # (row, start, end, label, prob) arrays, one tuple per span length

    def collect(score, n_tokens):
        n_starts = score.shape[1]
        prob = xp.exp(_normalise(xp, score, log_Z))
        keep = (prob >= threshold) & (positions[:, :n_starts] + n_tokens <= lengths_)
        rows, starts, labels = xp.nonzero(keep)
        hits.append((rows, starts, starts + n_tokens, labels, prob[keep]))

    if max_len >= 1:
        collect(alpha[:, :, tag_u] + beta[:, :, tag_u], 1)
    # acc[:, s, l]: score of B-l at s then I-l up to s + n - 2, for s <= T - n.
    acc = alpha[:, :, tag_b]
    emis_i, emis_l, beta_l = emis[:, :, tag_i], emis[:, :, tag_l], beta[:, :, tag_l]
    for n_tokens in range(2, max_len + 1):
        n_starts = n_steps - n_tokens + 1
        prev = tag_b if n_tokens == 2 else tag_i
        acc = acc[:, :n_starts]
        collect(
            acc + trans[prev, tag_l] + emis_l[:, n_tokens - 1 :] + beta_l[:, n_tokens - 1 :],
            n_tokens,
        )
        acc = xp.maximum(acc + trans[prev, tag_i] + emis_i[:, n_tokens - 1 :], LOG_ZERO)
    output: List[List[Tuple[int, int, int, float]]] = [[] for _ in range(n_seqs)]
    if not hits:
        return output
    rows, starts, ends, labels, probs = (
        _to_host(xp.concatenate([h[i] for h in hits])) for i in range(5)
    )
    for i in numpy.lexsort((labels, ends, starts, rows)):
        output[rows[i]].append((int(starts[i]), int(ends[i]), int(labels[i]), float(probs[i])))
    return output


def gold_mask_from_biluo(
    biluo: Sequence[Sequence[Optional[str]]], tags: Sequence[str], xp, n_steps: Optional[int] = None
):
    """The (B, T, n_tags) bool `gold_mask` for `nll_and_grads` from BILUO tag
    strings per doc (e.g. `Example.get_aligned_ner()`): one-hot for known
    tags, all True for missing tags (`tags.is_missing`) and for padding.
    """
    lengths = [len(seq) for seq in biluo]
    n_steps = max(lengths, default=0) if n_steps is None else n_steps
    index = {tag: i for i, tag in enumerate(tags)}
    ids = numpy.full((len(biluo), n_steps), -1, dtype="i")
    for b, seq in enumerate(biluo):
        for t, tag in enumerate(seq):
            if is_missing(tag):
                continue
            if tag not in index:
                raise ValueError(f"Unknown BILUO tag {tag!r} in gold annotation")
            ids[b, t] = index[tag]
    mask = (ids[:, :, None] == numpy.arange(len(tags))[None, None, :]) | (ids < 0)[:, :, None]
    return xp.asarray(mask)


# Internals.


class _Chain(NamedTuple):
    emis: "numpy.ndarray"  # (B, T, n_tags); LOG_ZERO where masked or padding
    lengths: "numpy.ndarray"  # (B,) int32 on xp
    trans: "numpy.ndarray"  # (n_tags, n_tags); LOG_ZERO where forbidden
    start: "numpy.ndarray"
    end: "numpy.ndarray"


def _check_shapes(emissions, tags):
    if emissions.ndim != 3 or emissions.shape[2] != len(tags):
        raise ValueError(
            f"Expected emissions of shape (B, T, {len(tags)}), got {emissions.shape}"
        )


def _prepare(xp, emissions, lengths, transitions, start, end, tags, allowed_mask) -> _Chain:
    """Fold the BILUO constraints, `allowed_mask` and padding into the scores."""
    _check_shapes(emissions, tags)
    n_seqs, n_steps, n_tags = emissions.shape
    dtype = emissions.dtype if emissions.dtype.kind == "f" else numpy.dtype("f")
    lengths = xp.asarray(lengths, dtype="i")
    if lengths.shape != (n_seqs,):
        raise ValueError(f"Expected lengths of shape ({n_seqs},), got {lengths.shape}")
    if n_seqs and (int(lengths.min()) < 0 or int(lengths.max()) > n_steps):
        raise ValueError(f"lengths must be in [0, {n_steps}]")
    keep = (xp.arange(n_steps)[None, :] < lengths[:, None])[:, :, None]
    if allowed_mask is not None:
        keep = keep & xp.asarray(allowed_mask, dtype=bool)
    neg = xp.asarray(LOG_ZERO, dtype=dtype)

    def constrain(allowed, scores):
        return xp.where(xp.asarray(allowed), xp.asarray(scores, dtype=dtype), neg)

    return _Chain(
        emis=xp.where(keep, emissions.astype(dtype, copy=False), neg),
        lengths=lengths,
        trans=constrain(allowed_transitions(tags), transitions),
        start=constrain(allowed_starts(tags), start),
        end=constrain(allowed_ends(tags), end),
    )


def _logsumexp(xp, x, axis):
    top = x.max(axis=axis, keepdims=True)
    return (top + xp.log(xp.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _forward(xp, chain: _Chain):
    """log_alpha (B, T, n_tags) and log_Z (B,)."""
    emis, lengths = chain.emis, chain.lengths
    n_seqs, n_steps, _ = emis.shape
    log_alpha = xp.full(emis.shape, LOG_ZERO, dtype=emis.dtype)
    if n_steps == 0:
        return log_alpha, xp.zeros((n_seqs,), dtype=emis.dtype)
    # Padding needs no special case: its emissions are LOG_ZERO, so padded
    # steps clamp to LOG_ZERO; log_Z reads each row's own last step.
    log_alpha[:, 0] = xp.maximum(chain.start[None, :] + emis[:, 0], LOG_ZERO)
    for t in range(1, n_steps):
        scores = log_alpha[:, t - 1, :, None] + chain.trans[None, :, :]
        log_alpha[:, t] = xp.maximum(_logsumexp(xp, scores, 1) + emis[:, t], LOG_ZERO)
    last = log_alpha[xp.arange(n_seqs), xp.maximum(lengths - 1, 0)]
    log_Z = xp.maximum(_logsumexp(xp, last + chain.end[None, :], 1), LOG_ZERO)
    return log_alpha, xp.where(lengths > 0, log_Z, 0.0).astype(emis.dtype)


def _backward(xp, chain: _Chain):
    """log_beta (B, T, n_tags): end score at each row's last token, LOG_ZERO
    on padding."""
    emis = chain.emis
    n_steps = emis.shape[1]
    log_beta = xp.full(emis.shape, LOG_ZERO, dtype=emis.dtype)
    is_last = chain.lengths[:, None] - 1 == xp.arange(n_steps)[None, :]
    for t in range(n_steps - 1, -1, -1):
        if t + 1 < n_steps:
            following = (emis[:, t + 1] + log_beta[:, t + 1])[:, None, :]
            rest = xp.maximum(_logsumexp(xp, chain.trans[None] + following, 2), LOG_ZERO)
        else:
            rest = log_beta[:, t]
        log_beta[:, t] = xp.where(is_last[:, t, None], chain.end[None, :], rest)
    return log_beta


def _forward_backward(xp, chain: _Chain) -> ForwardBackward:
    log_alpha, log_Z = _forward(xp, chain)
    return ForwardBackward(log_alpha, _backward(xp, chain), log_Z)


def _normalise(xp, score, log_Z):
    """score - log_Z, LOG_ZERO for impossible scores or impossible rows (whose
    log_Z is LOG_ZERO, so that the difference would be meaningless)."""
    possible = (score > LOG_ZERO / 2) & (log_Z > LOG_ZERO / 2)
    return xp.where(possible, xp.minimum(score - log_Z, 0.0), LOG_ZERO).astype(score.dtype)


def _token_marginals(xp, chain: _Chain, fb: ForwardBackward):
    log_p = _normalise(xp, fb.log_alpha + fb.log_beta, fb.log_Z[:, None, None])
    return xp.exp(log_p)


def _expected_counts(xp, chain: _Chain, fb: ForwardBackward):
    """log_Z and its gradients w.r.t. emissions, transitions, start and end:
    the expected emission, transition, start and end counts."""
    emis, lengths = chain.emis, chain.lengths
    n_seqs, n_steps, n_tags = emis.shape
    d_emis = _token_marginals(xp, chain, fb)
    d_trans = xp.zeros((n_tags, n_tags), dtype=emis.dtype)
    if n_steps == 0:
        zeros = xp.zeros((n_tags,), dtype=emis.dtype)
        return fb.log_Z, d_emis, d_trans, zeros, zeros.copy()
    d_start = d_emis[:, 0].sum(axis=0)
    d_end = d_emis[xp.arange(n_seqs), xp.maximum(lengths - 1, 0)].sum(axis=0)
    log_Z = fb.log_Z[:, None, None]
    for t in range(1, n_steps):
        # Pair marginals P(y_{t-1} = i, y_t = j), summed over the batch;
        # padded steps have LOG_ZERO emissions and so contribute 0.
        score = (
            fb.log_alpha[:, t - 1, :, None]
            + chain.trans[None, :, :]
            + (emis[:, t] + fb.log_beta[:, t])[:, None, :]
        )
        d_trans += xp.exp(_normalise(xp, score, log_Z)).sum(axis=0)
    return fb.log_Z, d_emis, d_trans, d_start, d_end


def _label_tag_indices(tags: Sequence[str]) -> numpy.ndarray:
    """(4, n_labels) tag indices of B-, I-, L-, U- per label index."""
    prefixes, label_ids = _parse_tags(tags)
    n_labels = int(label_ids.max()) + 1 if len(tags) else 0
    idx = numpy.full((4, n_labels), -1, dtype="i")
    for row, code in enumerate((_B, _I, _L, _U)):
        selected = prefixes == code
        idx[row, label_ids[selected]] = numpy.nonzero(selected)[0]
    if (idx < 0).any():
        raise ValueError("Every label needs its B-, I-, L- and U- tag")
    return idx


def _to_host(array) -> numpy.ndarray:
    return array.get() if hasattr(array, "get") else numpy.asarray(array)
