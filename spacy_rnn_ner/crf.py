"""A linear-chain CRF over BILUO tags, as array math on padded batches: the
one home of Viterbi, forward-backward, the likelihood and span marginals.

Every function takes `xp` (numpy or cupy) first, then the `Chain` (the tags
and the learned scores: `transitions` (n_tags, n_tags), the score of tag j
following tag i, and `start`/`end` (n_tags,)), then `emissions` (B, T,
n_tags) per-token scores and `lengths` (B,). The BILUO constraints of
`tags.py` are always applied on top, so only valid sequences have nonzero
probability. Batch items and tags are vectorised, Python loops run over time
steps (or span lengths) only.

Log-probability zero is the finite `LOG_ZERO`, never -inf, so no inf - inf can
give NaN. It is far enough below any real score that exp() of anything that
contains it is exactly 0: forbidden paths are excluded, not just penalised.
Impossible entries are clamped at `LOG_ZERO`; test them with `<= LOG_ZERO / 2`.

A softmax tagger without a CRF is the special case emissions = log(p) with
zero transitions, start and end (`Chain.zeros`): the same functions give its
constrained chain's marginals, span confidences and best path.
"""
import math
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy

# tags.py keeps these private: they are the constraint parser.
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
)

LOG_ZERO = -1e30

SpanT = Tuple[int, int, Union[str, int]]


class Chain(NamedTuple):
    """The chain of a tagger: its tags, and the learned scores of its CRF
    (zeros for a softmax tagger). The BILUO constraints apply on top."""

    tags: Sequence[str]
    transitions: Any  # (n_tags, n_tags): score of tag j following tag i
    start: Any  # (n_tags,)
    end: Any  # (n_tags,)

    @classmethod
    def zeros(cls, xp, tags: Sequence[str]) -> "Chain":
        """The chain of a softmax tagger: constraints only."""
        n_tags = len(tags)
        zeros = xp.zeros((n_tags,), dtype="f")
        return cls(list(tags), xp.zeros((n_tags, n_tags), dtype="f"), zeros, zeros.copy())

    def select(self, indices: Sequence[int]) -> "Chain":
        """The chain over the tags `indices` only (the others can't occur)."""
        idx = list(indices)
        trans = self.transitions[idx][:, idx]
        return Chain([self.tags[i] for i in idx], trans, self.start[idx], self.end[idx])

    def with_temperature(self, temperature: float) -> "Chain":
        """Every score divided by `temperature` (divide the emissions alike)."""
        params = (self.transitions, self.start, self.end)
        return Chain(self.tags, *(p / temperature for p in params))


class ForwardBackward(NamedTuple):
    log_alpha: "numpy.ndarray"  # (B, T, n_tags), includes the emission at t
    log_beta: "numpy.ndarray"  # (B, T, n_tags), excludes the emission at t
    log_Z: "numpy.ndarray"  # (B,); 0 for empty sequences


def log_partition(xp, chain: Chain, emissions, lengths, allowed_mask=None):
    """Log-sum-exp of the scores of all valid tag sequences, per sequence (B,).
    `allowed_mask` (B, T, n_tags) optionally restricts the tags per token; a
    sequence it leaves no valid path for gets LOG_ZERO.
    """
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    return _forward(xp, prep)[1]


def forward_backward(
    xp, chain: Chain, emissions, lengths, allowed_mask=None
) -> ForwardBackward:
    """Forward and backward log-messages and log_Z. Padding and impossible
    entries of log_alpha/log_beta are LOG_ZERO.
    """
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    return _forward_backward(xp, prep)


def marginals(xp, chain: Chain, emissions, lengths, allowed_mask=None, fb=None):
    """Token marginals P(y_t = j), shape (B, T, n_tags), zero on padding (and
    everywhere for a sequence that `allowed_mask` makes impossible). Pass `fb`
    from `forward_backward` with the same arguments to skip recomputing it.
    """
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, prep)
    return _token_marginals(xp, prep, fb)


def expected_counts(xp, chain: Chain, emissions, lengths, allowed_mask=None):
    """log Z per sequence (B,) and its gradients, the expected counts under
    the chain: token marginals (B, T, n_tags), and the transition (n_tags,
    n_tags), start and end counts summed over the batch. The gradient of
    a cross-entropy against another chain's paths is the difference of two
    such counts (e.g. for distillation)."""
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    return _expected_counts(xp, prep, _forward_backward(xp, prep))


def nll_and_grads(xp, chain: Chain, emissions, lengths, gold_mask):
    """Negative log-likelihood of the gold annotation, per sequence (B,), and
    the gradients of its sum: d_emissions (B, T, n_tags) (zero on padding),
    d_transitions, d_start, d_end. `gold_mask` (B, T, n_tags) marks the
    allowed tags per token: one-hot where annotated, all True where missing,
    so missing tags are marginalised: loss = log Z - log Z_gold.
    Raises ValueError if some gold_mask admits no valid BILUO path.
    """
    free = _prepare(xp, chain, emissions, lengths, None)
    counts_free = _expected_counts(xp, free, _forward_backward(xp, free))
    gold_mask = xp.asarray(gold_mask, dtype=bool)
    real = xp.arange(gold_mask.shape[1])[None, :] < free.lengths[:, None]
    if gold_mask.shape[1] and bool(((gold_mask.sum(axis=2) == 1) | ~real).all()):
        # Every tag known (the usual case): the gold chain is one path.
        counts_gold = _path_counts(xp, free, gold_mask.argmax(axis=2))
    else:
        gold = _prepare(xp, chain, emissions, lengths, gold_mask)
        counts_gold = _expected_counts(xp, gold, _forward_backward(xp, gold))
    log_Z_gold = counts_gold[0]
    infeasible = (log_Z_gold <= LOG_ZERO / 2) & (free.lengths > 0)
    if bool(infeasible.any()):
        rows = [int(i) for i in xp.nonzero(infeasible)[0]]
        raise ValueError(
            f"gold_mask admits no valid BILUO sequence for batch rows {rows}"
        )
    loss = counts_free[0] - log_Z_gold
    grads = tuple(f - g for f, g in zip(counts_free[1:], counts_gold[1:]))
    return (loss,) + grads


def negative_span_nll(xp, chain: Chain, emissions, lengths, gold_mask, spans: Sequence[Sequence[SpanT]]):
    """For spans known NOT to be entities (spaCy's `incorrect_spans_key`):
    per span -log(1 - P(span | gold)), where P(span | gold) = Z_{gold, span} /
    Z_gold is the probability that (start, end_exclusive, label) is exactly an
    entity among the paths `gold_mask` allows. Summed per sequence (B,), with
    the gradients of the sum: d_emissions, d_transitions, d_start, d_end.

    Its minimum moves the span's probability to the other paths that agree
    with the gold tags. Forcing a span is a tag mask (B-, I-..., L- or U-),
    so each span costs one forward-backward on its own sequence. For one
    span this is exactly log Z_gold - log(Z_gold - Z_{gold, span}); spans
    that can occur on one path together are counted once each.
    """
    _check_shapes(emissions, chain.tags)
    n_seqs, n_steps, n_tags = emissions.shape
    if len(spans) != n_seqs:
        raise ValueError(f"Expected {n_seqs} span lists, got {len(spans)}")
    dtype = emissions.dtype if emissions.dtype.kind == "f" else numpy.dtype("f")
    lengths = xp.asarray(lengths, dtype="i")
    gold_mask = xp.asarray(gold_mask, dtype=bool)
    loss = xp.zeros((n_seqs,), dtype=dtype)
    d_emis = xp.zeros((n_seqs, n_steps, n_tags), dtype=dtype)
    d_params = [xp.zeros(p.shape, dtype=dtype) for p in (chain.transitions, chain.start, chain.end)]
    idx = _label_tag_indices(chain.tags)
    label_to_id = {label: i for i, label in enumerate(span_labels(chain.tags))}
    for b, seq_spans in enumerate(spans):
        if not len(seq_spans):
            continue
        row = slice(b, b + 1)
        gold = _prepare(xp, chain, emissions[row], lengths[row], gold_mask[row])
        counts_gold = _expected_counts(xp, gold, _forward_backward(xp, gold))
        log_Z_gold = float(counts_gold[0][0])
        if log_Z_gold <= LOG_ZERO / 2:
            continue  # no path agrees with the gold: nll_and_grads says so
        n = int(lengths[b])
        for start, end, label in seq_spans:
            lab = label_to_id[label] if isinstance(label, str) else int(label)
            if not 0 <= start < end <= n:
                raise ValueError("Spans must have 0 <= start < end <= length of their sequence")
            force = numpy.ones((1, n_steps, n_tags), dtype=bool)
            span_tags = [idx[3, lab]] if end - start == 1 else (
                [idx[0, lab]] + [idx[1, lab]] * (end - start - 2) + [idx[2, lab]]
            )
            for t, tag in zip(range(start, end), span_tags):
                force[0, t] = False
                force[0, t, tag] = True
            with_span = _prepare(xp, chain, emissions[row], lengths[row], gold_mask[row] & xp.asarray(force))
            counts_span = _expected_counts(xp, with_span, _forward_backward(xp, with_span))
            log_Z_span = float(counts_span[0][0])
            if log_Z_span <= LOG_ZERO / 2:
                continue  # the span can't occur: nothing to learn
            # P(span | gold) < 1 unless the gold allows the span's paths only
            # (then the annotation contradicts itself): clamp for the log.
            prob = min(math.exp(min(log_Z_span - log_Z_gold, 0.0)), 1.0 - 1e-6)
            loss[b] += -math.log1p(-prob)
            weight = prob / (1.0 - prob)
            d_emis[b] += weight * (counts_span[1][0] - counts_gold[1][0])
            for total, with_s, without in zip(d_params, counts_span[2:], counts_gold[2:]):
                total += weight * (with_s - without)
    return (loss, d_emis) + tuple(d_params)


def viterbi(
    xp, chain: Chain, emissions, lengths, allowed_mask=None
) -> List[numpy.ndarray]:
    """Best valid BILUO path per sequence (int32 host arrays of its length):
    the package's one Viterbi. `allowed_mask` (B, T, n_tags) optionally
    restricts the tags per token, as in `forward_backward` (e.g. only "O" on
    a token that already belongs to an entity); it must leave "O" allowed,
    so that a valid path remains. Every path is valid, whatever the (finite)
    scores; NaN scores raise.

    Unlike the sums above, this scores in float32 with -inf, not LOG_ZERO,
    for forbidden moves: a max has no inf - inf, and a valid path of very
    low (finite) emissions must still beat every forbidden one.
    """
    tags = chain.tags
    _check_shapes(emissions, tags)
    n_seqs, n_steps, n_tags = emissions.shape
    lengths_host = [int(n) for n in _to_host(lengths)]
    if not n_seqs or not n_steps:
        return [numpy.zeros((n,), dtype="i") for n in lengths_host]
    lengths_arr = xp.asarray(lengths_host, dtype="i")
    real = xp.arange(n_steps)[None, :] < lengths_arr[:, None]
    emissions = xp.where(real[:, :, None], xp.asarray(emissions, dtype="f"), 0.0).astype("f")
    if bool(xp.isnan(emissions).any()):
        raise ValueError("Cannot decode NaN scores")
    neg_inf = xp.asarray(-numpy.inf, dtype="f")

    def constrained(allowed, scores):
        return xp.where(xp.asarray(allowed), xp.asarray(scores, dtype="f"), neg_inf)

    start = constrained(allowed_starts(tags), chain.start)
    end = constrained(allowed_ends(tags), chain.end)
    trans = constrained(allowed_transitions(tags), chain.transitions)
    if allowed_mask is not None:
        allowed = xp.asarray(allowed_mask, dtype=bool) | ~real[:, :, None]
        if bool((~allowed[:, :, 0]).any()):
            raise ValueError("allowed_mask must allow 'O' on every token")
        emissions = xp.where(allowed, emissions, neg_inf).astype("f")
        # Every path takes "O" at a token where only "O" is allowed, so its
        # own score does not matter: keep it 0, so that a very low (finite)
        # score there can't sink all paths.
        only_out = ~allowed[:, :, 1:].any(axis=2)
        emissions[:, :, 0] = xp.where(only_out, 0.0, emissions[:, :, 0])
    kernels = _chain_kernels(xp, numpy.dtype("f"))
    if kernels is not None:
        path = numpy.zeros((n_seqs, n_steps), dtype="i")
        kernels.crf_viterbi(
            numpy.ascontiguousarray(emissions, dtype="f"), numpy.asarray(lengths_host, dtype="i"),
            *(numpy.ascontiguousarray(p, dtype="f") for p in (trans, start, end)),
            numpy.zeros((n_seqs, n_steps, n_tags), dtype="i"), path,
        )
        return [path[i, :n].copy() for i, n in enumerate(lengths_host)]
    # A padded step keeps delta unchanged and back-points to the same tag, so
    # backtracking from the last step walks to each row's own last token.
    identity = xp.arange(n_tags, dtype="i")
    backpointers = xp.zeros((n_seqs, n_steps, n_tags), dtype="i")
    delta = start[None, :] + emissions[:, 0]
    # candidates[b, j, i]: tag i before tag j, so that the max runs over the
    # contiguous last axis; the max is read at the argmax (one reduction).
    trans_T = xp.ascontiguousarray(trans.T)
    for t in range(1, n_steps):
        candidates = delta[:, None, :] + trans_T[None, :, :]
        best_prev = candidates.argmax(axis=2).astype("i")
        best = xp.take_along_axis(candidates, best_prev[:, :, None], axis=2)[:, :, 0]
        new_delta = best + emissions[:, t]
        active = (lengths_arr > t)[:, None]
        delta = xp.where(active, new_delta, delta)
        backpointers[:, t] = xp.where(active, best_prev, identity[None, :])
    path = xp.zeros((n_seqs, n_steps), dtype="i")
    path[:, n_steps - 1] = (delta + end[None, :]).argmax(axis=1)
    rows = xp.arange(n_seqs)
    for t in range(n_steps - 1, 0, -1):
        path[:, t - 1] = backpointers[rows, t, path[:, t]]
    path = _to_host(path)
    return [numpy.ascontiguousarray(path[i, :n], dtype="i") for i, n in enumerate(lengths_host)]


def span_labels(tags: Sequence[str]) -> List[str]:
    """The entity labels in label-index order (the order of the B- tags, which
    is sorted order for `make_tags`)."""
    idx = _label_tag_indices(tags)
    return [tags[i].partition("-")[2] for i in idx[0]]


def span_log_marginals(
    xp,
    chain: Chain,
    emissions,
    lengths,
    spans: Sequence[Sequence[SpanT]],
    allowed_mask=None,
    fb=None,
) -> List[numpy.ndarray]:
    """Per sequence, the log-probability (host array, one per span) that each
    (start, end_exclusive, label) span is exactly an entity: B-, I-..., L- or
    U-label. Labels are strings or label indices (see `span_labels`).
    Impossible spans get LOG_ZERO.
    """
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, prep)
    idx = _label_tag_indices(chain.tags)
    label_to_id = {label: i for i, label in enumerate(span_labels(chain.tags))}
    lengths_host = _to_host(prep.lengths)
    if len(spans) != len(lengths_host):
        raise ValueError(f"Expected {len(lengths_host)} span lists, got {len(spans)}")
    flat = [
        (b, s, e, label_to_id[lab] if isinstance(lab, str) else int(lab))
        for b, seq_spans in enumerate(spans)
        for s, e, lab in seq_spans
    ]
    counts = [len(seq_spans) for seq_spans in spans]
    if not flat:
        return [numpy.zeros((0,), dtype=prep.emis.dtype) for _ in counts]
    b_h, s_h, e_h, lab_h = (numpy.asarray(col, dtype="i") for col in zip(*flat))
    if ((s_h < 0) | (e_h <= s_h) | (e_h > lengths_host[b_h])).any():
        raise ValueError("Spans must have 0 <= start < end <= length of their sequence")
    if ((lab_h < 0) | (lab_h >= idx.shape[1])).any():
        raise ValueError("Span label index out of range")
    b, s, e = xp.asarray(b_h), xp.asarray(s_h), xp.asarray(e_h)
    n = e - s
    tag_b, tag_i, tag_l, tag_u = (xp.asarray(row)[xp.asarray(lab_h)] for row in idx)
    alpha, beta, emis, trans = fb.log_alpha, fb.log_beta, prep.emis, prep.trans
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
    xp,
    chain: Chain,
    emissions,
    lengths,
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
    prep = _prepare(xp, chain, emissions, lengths, allowed_mask)
    if fb is None:
        fb = _forward_backward(xp, prep)
    n_seqs, n_steps, _ = prep.emis.shape
    max_len = n_steps if max_len is None else min(int(max_len), n_steps)
    tag_b, tag_i, tag_l, tag_u = (xp.asarray(row) for row in _label_tag_indices(chain.tags))
    alpha, beta, emis, trans = fb.log_alpha, fb.log_beta, prep.emis, prep.trans
    log_Z = fb.log_Z[:, None, None]
    lengths_ = prep.lengths[:, None, None]
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
    xp, biluo: Sequence[Sequence[Optional[str]]], tags: Sequence[str], n_steps: Optional[int] = None
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


class _Prepared(NamedTuple):
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


def _prepare(xp, chain: Chain, emissions, lengths, allowed_mask) -> _Prepared:
    """Fold the BILUO constraints, `allowed_mask` and padding into the scores."""
    tags = chain.tags
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

    return _Prepared(
        emis=xp.where(keep, emissions.astype(dtype, copy=False), neg),
        lengths=lengths,
        trans=constrain(allowed_transitions(tags), chain.transitions),
        start=constrain(allowed_starts(tags), chain.start),
        end=constrain(allowed_ends(tags), chain.end),
    )


def _logsumexp(xp, x, axis):
    top = x.max(axis=axis, keepdims=True)
    return (top + xp.log(xp.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _forward(xp, prep: _Prepared):
    """log_alpha (B, T, n_tags) and log_Z (B,)."""
    emis, lengths = prep.emis, prep.lengths
    n_seqs, n_steps, _ = emis.shape
    log_alpha = xp.full(emis.shape, LOG_ZERO, dtype=emis.dtype)
    if n_steps == 0:
        return log_alpha, xp.zeros((n_seqs,), dtype=emis.dtype)
    # Padding needs no special case: its emissions are LOG_ZERO, so padded
    # steps clamp to LOG_ZERO; log_Z reads each row's own last step.
    log_alpha[:, 0] = xp.maximum(prep.start[None, :] + emis[:, 0], LOG_ZERO)
    for t in range(1, n_steps):
        scores = log_alpha[:, t - 1, :, None] + prep.trans[None, :, :]
        log_alpha[:, t] = xp.maximum(_logsumexp(xp, scores, 1) + emis[:, t], LOG_ZERO)
    last = log_alpha[xp.arange(n_seqs), xp.maximum(lengths - 1, 0)]
    log_Z = xp.maximum(_logsumexp(xp, last + prep.end[None, :], 1), LOG_ZERO)
    return log_alpha, xp.where(lengths > 0, log_Z, 0.0).astype(emis.dtype)


def _backward(xp, prep: _Prepared):
    """log_beta (B, T, n_tags): end score at each row's last token, LOG_ZERO
    on padding."""
    emis = prep.emis
    n_steps = emis.shape[1]
    log_beta = xp.full(emis.shape, LOG_ZERO, dtype=emis.dtype)
    is_last = prep.lengths[:, None] - 1 == xp.arange(n_steps)[None, :]
    for t in range(n_steps - 1, -1, -1):
        if t + 1 < n_steps:
            following = (emis[:, t + 1] + log_beta[:, t + 1])[:, None, :]
            rest = xp.maximum(_logsumexp(xp, prep.trans[None] + following, 2), LOG_ZERO)
        else:
            rest = log_beta[:, t]
        log_beta[:, t] = xp.where(is_last[:, t, None], prep.end[None, :], rest)
    return log_beta


def _forward_backward(xp, prep: _Prepared) -> ForwardBackward:
    """Forward and backward messages in scaled probability space (one
    matrix product per step); the rows that underflow there (or have no
    valid path) are computed again in log space."""
    fb, redo = _scaled_forward_backward(xp, prep)
    if redo is not None:
        rows = xp.asarray(redo)
        sub = prep._replace(emis=prep.emis[rows], lengths=prep.lengths[rows])
        log_alpha, log_Z = _forward(xp, sub)
        fb.log_alpha[rows] = log_alpha
        fb.log_beta[rows] = _backward(xp, sub)
        fb.log_Z[rows] = log_Z
    return fb


def _exp_shifted(xp, scores):
    """exp(scores - their max), in float64, 0 where a score is impossible
    (<= LOG_ZERO / 2), and that max along the last axis (0 where none is
    possible)."""
    scores = scores.astype("float64")
    possible = scores > LOG_ZERO / 2
    top = xp.where(possible, scores, -numpy.inf).max(axis=-1, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    return xp.where(possible, xp.exp(scores - top), 0.0), top[..., 0]


def _scaled_forward_backward(xp, prep: _Prepared) -> Tuple[ForwardBackward, Optional[List[int]]]:
    """The scaled forward-backward algorithm (Rabiner 1989): alpha_t =
    (alpha_{t-1} @ exp(trans)) * exp(emis_t), each step divided by its max
    and the logs of the divisors summed, in float64. Every score is
    exponentiated once, not once per pair of tags as in log space. Returns
    the messages and the rows to compute again (None if none): those whose
    messages became all zero (no valid path, or an underflow, which needs
    scores hundreds of units apart)."""
    emis, lengths = prep.emis, prep.lengths
    n_seqs, n_steps, n_tags = emis.shape
    dtype = emis.dtype
    if n_seqs == 0 or n_steps == 0:
        log_alpha, log_Z = _forward(xp, prep)
        return ForwardBackward(log_alpha, _backward(xp, prep), log_Z), None
    kernels = _chain_kernels(xp, dtype)
    if kernels is not None:
        fb = ForwardBackward(
            xp.full(emis.shape, LOG_ZERO, dtype=dtype), xp.full(emis.shape, LOG_ZERO, dtype=dtype),
            xp.zeros((n_seqs,), dtype=dtype),
        )
        lost = numpy.zeros((n_seqs,), dtype=numpy.uint8)
        kernels.crf_forward_backward(
            numpy.ascontiguousarray(emis), numpy.asarray(lengths, dtype="i"),
            *(numpy.ascontiguousarray(p, dtype=dtype) for p in (prep.trans, prep.start, prep.end)),
            fb.log_alpha, fb.log_beta, fb.log_Z, lost, LOG_ZERO,
        )
        redo = [int(i) for i in numpy.flatnonzero(lost)]
        return fb, (redo or None)
    e, shift = _exp_shifted(xp, emis)  # (B, T, n), (B, T)
    P = _exp_shifted(xp, prep.trans.ravel())
    trans_p, trans_top = P[0].reshape(prep.trans.shape), P[1]
    start_p, start_top = _exp_shifted(xp, prep.start)
    end_p, end_top = _exp_shifted(xp, prep.end)
    positions = xp.arange(n_steps)
    real = positions[None, :] < lengths[:, None]  # (B, T)
    alpha = xp.zeros((n_seqs, n_steps, n_tags), dtype="float64")
    scale_a = xp.zeros((n_seqs, n_steps), dtype="float64")
    lost = xp.zeros((n_seqs,), dtype=bool)
    v = start_p[None, :] * e[:, 0]
    for t in range(n_steps):
        if t:
            v = (alpha[:, t - 1] @ trans_p) * e[:, t]
        c = v.max(axis=1)
        lost |= real[:, t] & ~(c > 0)
        c = xp.where(c > 0, c, 1.0)
        alpha[:, t] = v / c[:, None]
        step = xp.log(c) + shift[:, t] + (trans_top if t else start_top)
        scale_a[:, t] = step + (scale_a[:, t - 1] if t else 0.0)
    last = xp.maximum(lengths - 1, 0)
    rows = xp.arange(n_seqs)
    z = (alpha[rows, last] * end_p[None, :]).sum(axis=1)
    lost |= (lengths > 0) & ~(z > 0)
    log_Z = xp.where(lengths > 0, scale_a[rows, last] + xp.log(xp.where(z > 0, z, 1.0)) + end_top, 0.0)
    beta = xp.zeros((n_seqs, n_steps, n_tags), dtype="float64")
    scale_b = xp.zeros((n_seqs, n_steps), dtype="float64")
    for t in range(n_steps - 1, -1, -1):
        is_last = (lengths - 1 == t)[:, None]
        if t + 1 < n_steps:
            v = (e[:, t + 1] * beta[:, t + 1]) @ trans_p.T
            d = v.max(axis=1)
            inside = real[:, t + 1]
            lost |= inside & ~(d > 0)
            d = xp.where(d > 0, d, 1.0)
            beta[:, t] = xp.where(is_last, end_p[None, :], xp.where(inside[:, None], v / d[:, None], 0.0))
            rest = scale_b[:, t + 1] + xp.log(d) + trans_top + shift[:, t + 1]
            scale_b[:, t] = xp.where(is_last[:, 0], end_top, rest)
        else:
            beta[:, t] = xp.where(is_last, end_p[None, :], 0.0)
            scale_b[:, t] = end_top

    def to_log(messages, scale):
        logs = xp.log(xp.where(messages > 0, messages, 1.0)) + scale[:, :, None]
        logs = xp.where((messages > 0) & real[:, :, None], logs, LOG_ZERO)
        return xp.maximum(logs, LOG_ZERO).astype(dtype)

    fb = ForwardBackward(to_log(alpha, scale_a), to_log(beta, scale_b), log_Z.astype(dtype))
    redo = [int(i) for i in _to_host(xp.nonzero(lost)[0])]
    return fb, (redo or None)


def _normalise(xp, score, log_Z):
    """score - log_Z, LOG_ZERO for impossible scores or impossible rows (whose
    log_Z is LOG_ZERO, so that the difference would be meaningless)."""
    possible = (score > LOG_ZERO / 2) & (log_Z > LOG_ZERO / 2)
    return xp.where(possible, xp.minimum(score - log_Z, 0.0), LOG_ZERO).astype(score.dtype)


def _token_marginals(xp, prep: _Prepared, fb: ForwardBackward):
    log_p = _normalise(xp, fb.log_alpha + fb.log_beta, fb.log_Z[:, None, None])
    return xp.exp(log_p)


def _expected_counts(xp, prep: _Prepared, fb: ForwardBackward):
    """log_Z and its gradients w.r.t. emissions, transitions, start and end:
    the expected emission, transition, start and end counts."""
    emis, lengths = prep.emis, prep.lengths
    n_seqs, n_steps, n_tags = emis.shape
    d_emis = _token_marginals(xp, prep, fb)
    d_trans = xp.zeros((n_tags, n_tags), dtype=emis.dtype)
    if n_steps == 0:
        zeros = xp.zeros((n_tags,), dtype=emis.dtype)
        return fb.log_Z, d_emis, d_trans, zeros, zeros.copy()
    d_start = d_emis[:, 0].sum(axis=0)
    d_end = d_emis[xp.arange(n_seqs), xp.maximum(lengths - 1, 0)].sum(axis=0)
    if n_steps > 1:
        d_trans += _pair_counts(xp, prep, fb).astype(emis.dtype)
    return fb.log_Z, d_emis, d_trans, d_start, d_end


def _pair_counts(xp, prep: _Prepared, fb: ForwardBackward):
    """The pair marginals P(y_{t-1} = i, y_t = j) summed over the batch and
    its steps. Per step they are a(i) exp(trans_ij) w(j) divided by their
    sum (they sum to 1 on every step of a possible sequence), with a =
    exp(log_alpha_{t-1}) and w = exp(emis_t + log_beta_t), each scaled by
    its max: one matrix product for all steps. Steps where that sum
    underflows are summed in log space."""
    emis = prep.emis
    a, _ = _exp_shifted(xp, fb.log_alpha[:, :-1])
    w, _ = _exp_shifted(xp, emis[:, 1:].astype("float64") + fb.log_beta[:, 1:])
    trans_p, _ = _exp_shifted(xp, prep.trans.ravel())
    trans_p = trans_p.reshape(prep.trans.shape)
    n_tags = trans_p.shape[0]
    possible = (fb.log_Z > LOG_ZERO / 2)[:, None] & (
        xp.arange(1, emis.shape[1])[None, :] < prep.lengths[:, None]
    )
    total = ((a @ trans_p) * w).sum(axis=2)  # (B, T - 1)
    good = possible & (total > 0)
    a = xp.where(good[:, :, None], a / xp.where(good, total, 1.0)[:, :, None], 0.0)
    counts = trans_p * (a.reshape(-1, n_tags).T @ w.reshape(-1, n_tags))
    lost = possible & ~good
    if bool(lost.any()):
        b, t = xp.nonzero(lost)
        score = (
            fb.log_alpha[b, t, :, None]
            + prep.trans[None, :, :]
            + (emis[b, t + 1] + fb.log_beta[b, t + 1])[:, None, :]
        )
        counts = counts + xp.exp(_normalise(xp, score, fb.log_Z[b][:, None, None])).sum(axis=0)
    return counts


def _path_counts(xp, prep: _Prepared, path):
    """As `_expected_counts` for a chain that allows one path, `path` (B, T)
    tag indices (read up to each row's length): its score (LOG_ZERO if it is
    not a valid BILUO path) and its emission, transition, start and end
    counts."""
    emis, lengths = prep.emis, prep.lengths
    n_seqs, n_steps, n_tags = emis.shape
    dtype = emis.dtype
    real = xp.arange(n_steps)[None, :] < lengths[:, None]
    path = xp.where(real, path, 0).astype("i")
    d_emis = (path[:, :, None] == xp.arange(n_tags)[None, None, :]) & real[:, :, None]
    rows = xp.arange(n_seqs)
    last = path[rows, xp.maximum(lengths - 1, 0)]
    nonempty = lengths > 0
    score = xp.take_along_axis(emis, path[:, :, None], axis=2)[:, :, 0]
    score = xp.where(real, score, 0.0).sum(axis=1, dtype="float64")
    score = score + xp.where(nonempty, prep.start[path[:, 0]] + prep.end[last], 0.0)
    steps = real[:, 1:]
    pair_ids = (path[:, :-1] * n_tags + path[:, 1:])[steps]
    score = score + xp.where(steps, prep.trans[path[:, :-1], path[:, 1:]], 0.0).sum(axis=1)
    d_trans = xp.bincount(pair_ids, minlength=n_tags * n_tags).reshape(n_tags, n_tags)
    d_start = xp.bincount(path[nonempty, 0], minlength=n_tags)
    d_end = xp.bincount(last[nonempty], minlength=n_tags)
    log_Z = xp.where(score > LOG_ZERO / 2, score, LOG_ZERO).astype(dtype)
    return (log_Z, d_emis.astype(dtype), d_trans.astype(dtype),
            d_start.astype(dtype), d_end.astype(dtype))


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


def _chain_kernels(xp, dtype):
    """The compiled chain kernels (`layers/_cpu_kernels.pyx`) for numpy
    arrays of float32 or float64, or None: then the numpy code here runs
    (cupy, other dtypes, no C build, or SPACY_RNN_NER_KERNELS=0)."""
    from .layers import cells

    kernels = cells._cpu_kernels
    if (
        kernels is None
        or xp is not numpy
        or numpy.dtype(dtype) not in (numpy.float32, numpy.float64)
        or not hasattr(kernels, "crf_forward_backward")
    ):
        return None
    return kernels


def _to_host(array) -> numpy.ndarray:
    return array.get() if hasattr(array, "get") else numpy.asarray(array)
