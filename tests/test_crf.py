"""The BILUO CRF against brute-force enumeration of all valid tag sequences,
finite differences, and batched == one-by-one."""
import functools
import itertools

import numpy
import pytest

from spacy_rnn_ner.crf import (
    LOG_ZERO,
    Chain,
    expected_counts,
    forward_backward,
    gold_mask_from_biluo,
    log_partition,
    marginals,
    negative_span_nll,
    nll_and_grads,
    span_labels,
    span_log_marginals,
    spans_above_threshold,
    viterbi,
)
from spacy_rnn_ner.decode import best_paths
from spacy_rnn_ner.tags import make_tags

from .util import numeric_grad, reference_is_valid

xp = numpy
LABELS = ["A", "B"]
TAGS = make_tags(LABELS)  # O, B-A, I-A, L-A, U-A, B-B, I-B, L-B, U-B
N_TAGS = len(TAGS)


@pytest.fixture(params=["kernels", "numpy"], autouse=True)
def chain_path(request, monkeypatch):
    """Every test on both paths: the compiled chain kernels and numpy."""
    from spacy_rnn_ner import crf
    from spacy_rnn_ner.layers import cells

    if request.param == "kernels":
        if crf._chain_kernels(numpy, numpy.float32) is None:
            pytest.skip("the compiled chain kernels are not built")
    else:
        monkeypatch.setattr(cells, "_cpu_kernels", None)
    return request.param


@functools.lru_cache(maxsize=None)
def valid_paths(n_tokens):
    """All valid tag-index sequences of length n_tokens, shape (n_paths, n)."""
    paths = [
        ids
        for ids in itertools.product(range(N_TAGS), repeat=n_tokens)
        if reference_is_valid([TAGS[i] for i in ids])
    ]
    return numpy.asarray(paths, dtype="i").reshape(len(paths), n_tokens)


def path_scores(paths, emis, trans, start, end):
    n = paths.shape[1]
    if n == 0:
        return numpy.zeros((len(paths),))
    scores = start[paths[:, 0]] + end[paths[:, -1]]
    scores = scores + emis[numpy.arange(n), paths].sum(axis=1)
    return scores + trans[paths[:, :-1], paths[:, 1:]].sum(axis=1)


def brute(emis, trans, start, end, mask=None):
    """(paths, probabilities, log_Z) of one sequence, optionally restricted
    to the paths whose tags `mask` (n, n_tags) allows."""
    paths = valid_paths(emis.shape[0])
    if mask is not None:
        paths = paths[mask[numpy.arange(emis.shape[0]), paths].all(axis=1)]
    scores = path_scores(paths, emis, trans, start, end)
    if not len(scores):
        return paths, scores, -numpy.inf
    top = scores.max()
    log_Z = top + numpy.log(numpy.exp(scores - top).sum())
    return paths, numpy.exp(scores - log_Z), log_Z


def span_tags(s, e, label):
    name = LABELS[label]
    if e - s == 1:
        return [TAGS.index(f"U-{name}")]
    inside = [TAGS.index(f"I-{name}")] * (e - s - 2)
    return [TAGS.index(f"B-{name}")] + inside + [TAGS.index(f"L-{name}")]


def brute_span_prob(paths, probs, s, e, label):
    hit = (paths[:, s:e] == numpy.asarray(span_tags(s, e, label))).all(axis=1)
    return probs[hit].sum()


def all_spans(n_tokens, max_len=None):
    max_len = n_tokens if max_len is None else max_len
    return [
        (s, e, label)
        for s in range(n_tokens)
        for e in range(s + 1, min(n_tokens, s + max_len) + 1)
        for label in range(len(LABELS))
    ]


def path_to_spans(path):
    spans, begin = [], None
    for t, tag_id in enumerate(path):
        prefix, _, label = TAGS[tag_id].partition("-")
        if prefix == "B":
            begin = t
        elif prefix in "LU":
            spans.append((t if prefix == "U" else begin, t + 1, LABELS.index(label)))
    return spans


def random_crf(seed, lengths, n_steps=None, scale=2.0, dtype="float64"):
    """Padded emissions (garbage on padding), lengths, transitions, start, end."""
    rng = numpy.random.default_rng(seed)
    n_steps = max(lengths, default=0) if n_steps is None else n_steps
    emis = rng.normal(0, scale, (len(lengths), n_steps, N_TAGS))
    params = [rng.normal(0, 1, shape) for shape in [(N_TAGS, N_TAGS), (N_TAGS,), (N_TAGS,)]]
    return [emis.astype(dtype), numpy.asarray(lengths, dtype="i")] + [
        p.astype(dtype) for p in params
    ]


def random_partial_mask(seed, emis, lengths, missing=0.5):
    """A gold mask from a random valid path with some tokens missing."""
    rng = numpy.random.default_rng(seed)
    biluo = []
    for n in lengths:
        paths = valid_paths(int(n))
        path = paths[rng.integers(len(paths))]
        biluo.append([None if rng.random() < missing else TAGS[i] for i in path])
    return gold_mask_from_biluo(xp, biluo, TAGS, n_steps=emis.shape[1]), biluo


LENGTHS = [4, 1, 3, 0, 2, 4]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("masked", [False, True])
def test_partition_and_marginals_match_brute_force(seed, masked):
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS)
    mask = None
    if masked:
        rng = numpy.random.default_rng(seed + 100)
        mask = rng.random(emis.shape) < 0.7
        mask[:, :, 0] = True  # keep "all O" possible, so every row is feasible
    fb = forward_backward(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=mask)
    log_Z = log_partition(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=mask)
    marg = marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=mask)
    numpy.testing.assert_allclose(fb.log_Z, log_Z)
    for b, n in enumerate(LENGTHS):
        paths, probs, ref_log_Z = brute(emis[b, :n], trans, start, end, None if mask is None else mask[b, :n])
        assert log_Z[b] == pytest.approx(ref_log_Z, abs=1e-9)
        ref_marg = numpy.zeros((emis.shape[1], N_TAGS))
        for t in range(n):
            numpy.add.at(ref_marg[t], paths[:, t], probs)
        numpy.testing.assert_allclose(marg[b], ref_marg, atol=1e-10)
        # alpha + beta - log_Z gives the same marginals.
        if n:
            joint = numpy.exp(fb.log_alpha[b, :n] + fb.log_beta[b, :n] - log_Z[b])
            numpy.testing.assert_allclose(joint, ref_marg[:n], atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_span_marginals_match_brute_force(seed):
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS)
    spans = [all_spans(n) for n in LENGTHS]
    log_p = span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, spans)
    for b, n in enumerate(LENGTHS):
        paths, probs, _ = brute(emis[b, :n], trans, start, end)
        ref = [brute_span_prob(paths, probs, *span) for span in spans[b]]
        assert len(log_p[b]) == len(spans[b])
        numpy.testing.assert_allclose(numpy.exp(log_p[b]), ref, atol=1e-10)
    # Labels can be given by name too.
    named = [[(s, e, LABELS[label]) for s, e, label in row] for row in spans]
    by_name = span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, named)
    for a, b in zip(log_p, by_name):
        numpy.testing.assert_array_equal(a, b)
    assert span_labels(TAGS) == LABELS


def test_span_marginals_respect_allowed_mask():
    emis, lengths, trans, start, end = random_crf(3, [4, 3])
    mask = numpy.ones(emis.shape, dtype=bool)
    mask[0, 2] = False
    mask[0, 2, TAGS.index("I-A")] = True  # token 2 of row 0 must be I-A
    spans = [all_spans(4), all_spans(3)]
    log_p = span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, spans, allowed_mask=mask)
    for b, n in enumerate([4, 3]):
        paths, probs, _ = brute(emis[b, :n], trans, start, end, mask[b, :n])
        ref = [brute_span_prob(paths, probs, *span) for span in spans[b]]
        numpy.testing.assert_allclose(numpy.exp(log_p[b]), ref, atol=1e-10)
    assert (log_p[0] <= 0).all() and (log_p[0] == LOG_ZERO).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.02, 0.3, 0.6])
@pytest.mark.parametrize("max_len", [None, 2])
def test_spans_above_threshold_match_brute_force(seed, threshold, max_len):
    # Low emission scale so that many spans have sizeable probabilities.
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS, scale=0.7)
    found = spans_above_threshold(
        xp,
        Chain(TAGS, trans, start, end),
        emis,
        lengths,
        threshold,
        max_len=max_len,
    )
    assert len(found) == len(LENGTHS)
    for b, n in enumerate(LENGTHS):
        paths, probs, _ = brute(emis[b, :n], trans, start, end)
        ref = []
        for s, e, label in all_spans(n, max_len):
            prob = brute_span_prob(paths, probs, s, e, label)
            if prob >= threshold:
                ref.append((s, e, label, prob))
        assert [hit[:3] for hit in found[b]] == [r[:3] for r in ref]
        numpy.testing.assert_allclose([h[3] for h in found[b]], [r[3] for r in ref], atol=1e-10)
        if threshold > 0.5:
            covered = [t for s, e, _, _ in found[b] for t in range(s, e)]
            assert len(covered) == len(set(covered))


def test_spans_above_threshold_can_overlap_below_one_half():
    emis = numpy.zeros((1, 3, N_TAGS))
    emis[0, :, 0] = -20.0  # almost surely no "O": overlapping readings compete
    lengths = numpy.asarray([3], dtype="i")
    zeros = [numpy.zeros((N_TAGS, N_TAGS)), numpy.zeros(N_TAGS), numpy.zeros(N_TAGS)]
    found = spans_above_threshold(xp, Chain(TAGS, *zeros), emis, lengths, 0.01)[0]
    starts = {(s, e) for s, e, _, _ in found}
    assert (0, 2) in starts and (1, 3) in starts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_viterbi_is_best_valid_path(seed):
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS)
    forbid = numpy.random.default_rng(seed).random(emis.shape[:2]) < 0.3
    for mask in (None, forbid):
        # A forced "O" (a preset entity's token) as the decoder passes it.
        allowed = None if mask is None else ~mask[:, :, None] | (numpy.arange(N_TAGS) == 0)
        paths = viterbi(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=allowed)
        for b, n in enumerate(LENGTHS):
            candidates = valid_paths(n)
            if mask is not None:
                allowed = ~mask[b, :n, None] | (numpy.arange(N_TAGS) == 0)
                candidates = candidates[allowed[numpy.arange(n), candidates].all(axis=1)]
            scores = path_scores(candidates, emis[b, :n], trans, start, end)
            assert paths[b].dtype == numpy.int32 and paths[b].shape == (n,)
            numpy.testing.assert_array_equal(paths[b], candidates[scores.argmax()])


def test_viterbi_padded_agrees_with_bucketed_lists():
    lengths = [7, 0, 12, 1, 5]
    emis, lengths_arr, _, _, _ = random_crf(5, lengths)
    zeros = [numpy.zeros((N_TAGS, N_TAGS)), numpy.zeros(N_TAGS), numpy.zeros(N_TAGS)]
    ours = viterbi(xp, Chain(TAGS, *zeros), emis, lengths_arr)
    theirs = best_paths(xp, Chain.zeros(xp, TAGS), [emis[b, :n] for b, n in enumerate(lengths)])
    for a, b in zip(ours, theirs):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1])
def test_nll_full_and_partial_gold_match_brute_force(seed):
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS)
    for missing in (0.0, 0.5):
        gold_mask, biluo = random_partial_mask(seed, emis, LENGTHS, missing)
        loss, d_emis, d_trans, d_start, d_end = nll_and_grads(
            xp,
            Chain(TAGS, trans, start, end),
            emis,
            lengths,
            gold_mask,
        )
        assert loss.shape == (len(LENGTHS),)
        for b, n in enumerate(LENGTHS):
            _, _, log_Z = brute(emis[b, :n], trans, start, end)
            _, _, log_Z_gold = brute(emis[b, :n], trans, start, end, gold_mask[b, :n])
            assert loss[b] == pytest.approx(log_Z - log_Z_gold, abs=1e-9)
            if missing == 0.0 and n:
                ids = numpy.asarray([[TAGS.index(tag) for tag in biluo[b]]])
                score = path_scores(ids, emis[b, :n], trans, start, end)[0]
                assert loss[b] == pytest.approx(log_Z - score, abs=1e-9)
        assert (loss >= -1e-12).all()
        assert not d_emis[numpy.arange(emis.shape[1])[None, :] >= lengths[:, None]].any()


NEG_SPANS = [[(0, 2, 0), (1, 4, 1), (3, 4, "A")], [(0, 1, 1)], [(1, 3, 0)], [], [(0, 2, "B")], []]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("missing", [1.0, 0.5])
def test_negative_span_nll_matches_brute_force(seed, missing):
    emis, lengths, trans, start, end = random_crf(seed, LENGTHS)
    gold_mask, _ = random_partial_mask(seed, emis, LENGTHS, missing)
    chain = Chain(TAGS, trans, start, end)
    loss = negative_span_nll(xp, chain, emis, lengths, gold_mask, NEG_SPANS)[0]
    for b, n in enumerate(LENGTHS):
        paths, probs, _ = brute(emis[b, :n], trans, start, end, gold_mask[b, :n])
        expected = 0.0
        for s, e, label in NEG_SPANS[b]:
            label = LABELS.index(label) if isinstance(label, str) else label
            prob = brute_span_prob(paths, probs, s, e, label)
            expected += -numpy.log1p(-min(prob, 1 - 1e-6))
        assert loss[b] == pytest.approx(expected, abs=1e-9)
    assert loss[0] > 0.0


def test_negative_span_nll_gradients_match_finite_differences():
    emis, lengths, trans, start, end = random_crf(3, LENGTHS)
    gold_mask, _ = random_partial_mask(3, emis, LENGTHS, missing=0.7)

    def total():
        chain = Chain(TAGS, trans, start, end)
        return float(negative_span_nll(xp, chain, emis, lengths, gold_mask, NEG_SPANS)[0].sum())

    grads = negative_span_nll(xp, Chain(TAGS, trans, start, end), emis, lengths, gold_mask, NEG_SPANS)[1:]
    for analytic, array in zip(grads, (emis, trans, start, end)):
        numeric = numeric_grad(total, array, 1e-6)
        numpy.testing.assert_allclose(analytic, numeric, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_nll_gradients_match_finite_differences(missing):
    """missing=0: every tag known, the gold chain is one path (scored
    directly); otherwise forward-backward over the gold mask."""
    emis, lengths, trans, start, end = random_crf(7, [4, 1, 0, 3, 2])
    gold_mask, _ = random_partial_mask(7, emis, [4, 1, 0, 3, 2], missing=missing)

    def total():
        return float(nll_and_grads(xp, Chain(TAGS, trans, start, end), emis, lengths, gold_mask)[0].sum())

    _, d_emis, d_trans, d_start, d_end = nll_and_grads(
        xp,
        Chain(TAGS, trans, start, end),
        emis,
        lengths,
        gold_mask,
    )
    for analytic, array in [(d_emis, emis), (d_trans, trans), (d_start, start), (d_end, end)]:
        numeric = numeric_grad(total, array, 1e-6)
        numpy.testing.assert_allclose(analytic, numeric, atol=1e-7, rtol=1e-5)
    # Forbidden transitions, starts and ends have no influence.
    assert d_trans[TAGS.index("B-A"), TAGS.index("O")] == 0.0
    assert d_start[TAGS.index("I-A")] == 0.0 and d_end[TAGS.index("B-B")] == 0.0


def test_expected_counts_are_the_gradients_of_log_z():
    emis, lengths, trans, start, end = random_crf(3, [4, 1, 0, 3, 2])
    chain = Chain(TAGS, trans, start, end)

    def total():
        return float(log_partition(xp, Chain(TAGS, trans, start, end), emis, lengths).sum())

    log_Z, d_emis, d_trans, d_start, d_end = expected_counts(xp, chain, emis, lengths)
    numpy.testing.assert_allclose(log_Z, log_partition(xp, chain, emis, lengths))
    numpy.testing.assert_allclose(d_emis, marginals(xp, chain, emis, lengths))
    for analytic, array in [(d_emis, emis), (d_trans, trans), (d_start, start), (d_end, end)]:
        numeric = numeric_grad(total, array, 1e-6)
        numpy.testing.assert_allclose(analytic, numeric, atol=1e-7, rtol=1e-5)


def test_batched_equals_one_by_one():
    lengths = [0, 1, 3, 4, 2, 0]
    emis, lengths_arr, trans, start, end = random_crf(11, lengths, scale=0.7)
    gold_mask, _ = random_partial_mask(11, emis, lengths)
    spans = [all_spans(n) for n in lengths]
    chain = Chain(TAGS, trans, start, end)
    log_Z = log_partition(xp, chain, emis, lengths_arr)
    marg = marginals(xp, chain, emis, lengths_arr)
    loss, d_emis, d_trans, d_start, d_end = nll_and_grads(xp, chain, emis, lengths_arr, gold_mask)
    paths = viterbi(xp, chain, emis, lengths_arr)
    span_p = span_log_marginals(xp, chain, emis, lengths_arr, spans)
    found = spans_above_threshold(xp, chain, emis, lengths_arr, 0.05)
    sums = [numpy.zeros_like(trans), numpy.zeros_like(start), numpy.zeros_like(end)]
    for b, n in enumerate(lengths):
        one = emis[b : b + 1, :n]
        n_arr = numpy.asarray([n])
        assert log_partition(xp, chain, one, n_arr)[0] == pytest.approx(log_Z[b], abs=1e-12)
        numpy.testing.assert_allclose(marginals(xp, chain, one, n_arr)[0], marg[b, :n], atol=1e-12)
        single = nll_and_grads(xp, chain, one, n_arr, gold_mask[b : b + 1, :n])
        assert single[0][0] == pytest.approx(loss[b], abs=1e-12)
        numpy.testing.assert_allclose(single[1][0], d_emis[b, :n], atol=1e-12)
        for total, part in zip(sums, single[2:]):
            total += part
        numpy.testing.assert_array_equal(viterbi(xp, chain, one, n_arr)[0], paths[b])
        numpy.testing.assert_allclose(
            span_log_marginals(xp, chain, one, n_arr, [spans[b]])[0], span_p[b], atol=1e-12
        )
        single_found = spans_above_threshold(xp, chain, one, n_arr, 0.05)[0]
        assert [h[:3] for h in single_found] == [h[:3] for h in found[b]]
        assert not marg[b, n:].any()
    for total, batched in zip(sums, (d_trans, d_start, d_end)):
        numpy.testing.assert_allclose(total, batched, atol=1e-12)


@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (2, 5)])
def test_empty_sequences(shape):
    n_seqs, n_steps = shape
    emis, _, trans, start, end = random_crf(0, [], n_steps=n_steps)
    emis = numpy.zeros((n_seqs, n_steps, N_TAGS))
    lengths = numpy.zeros((n_seqs,), dtype="i")
    chain = Chain(TAGS, trans, start, end)
    assert (log_partition(xp, chain, emis, lengths) == 0).all()
    assert not marginals(xp, chain, emis, lengths).any()
    gold = numpy.ones(emis.shape, dtype=bool)
    loss, d_emis, d_trans, d_start, d_end = nll_and_grads(xp, chain, emis, lengths, gold)
    assert loss.shape == (n_seqs,) and not loss.any() and not d_emis.any()
    assert not d_trans.any() and not d_start.any() and not d_end.any()
    assert [len(p) for p in viterbi(xp, chain, emis, lengths)] == [0] * n_seqs
    assert spans_above_threshold(xp, chain, emis, lengths, 0.5) == [[]] * n_seqs
    assert [len(p) for p in span_log_marginals(xp, chain, emis, lengths, [[]] * n_seqs)] == [0] * n_seqs


def test_large_emissions_are_stable():
    emis, lengths, trans, start, end = random_crf(4, LENGTHS, scale=1e3)
    trans *= 1e3
    gold_mask, _ = random_partial_mask(4, emis, LENGTHS)
    with numpy.errstate(over="raise", invalid="raise", divide="raise"):
        log_Z = log_partition(xp, Chain(TAGS, trans, start, end), emis, lengths)
        marg = marginals(xp, Chain(TAGS, trans, start, end), emis, lengths)
        out = nll_and_grads(xp, Chain(TAGS, trans, start, end), emis, lengths, gold_mask)
        span_p = span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, [all_spans(n) for n in LENGTHS])
        spans_above_threshold(xp, Chain(TAGS, trans, start, end), emis, lengths, 0.5)
    for array in (log_Z, marg, *out, *span_p):
        assert numpy.isfinite(array).all()
    numpy.testing.assert_allclose(marg.sum(axis=2), numpy.arange(4)[None, :] < lengths[:, None], atol=1e-9)
    assert (out[0] >= -1e-6).all()
    for b, n in enumerate(LENGTHS):
        assert log_Z[b] == pytest.approx(brute(emis[b, :n], trans, start, end)[2], rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scaled_forward_backward_matches_log_space(dtype):
    """The scaled messages (one matrix product per step) and the pair counts
    against the log-space recursion in float64, on long sequences of mixed
    lengths, with and without an allowed mask. In float32 the scaled path
    is the more accurate one (its sums run in float64)."""
    from spacy_rnn_ner import crf

    emis, lengths, trans, start, end = random_crf(11, [600, 1, 37, 0, 599], scale=4.0)
    mask = numpy.random.default_rng(1).random(emis.shape) > 0.2
    mask[:, :, 0] = True
    tol = 1e-4 if dtype == "float32" else 1e-9
    for allowed in (None, mask):
        prep64 = crf._prepare(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed)
        log_alpha, log_Z = crf._forward(xp, prep64)
        log_beta = crf._backward(xp, prep64)
        pairs = numpy.zeros((N_TAGS, N_TAGS))
        for t in range(1, emis.shape[1]):
            score = (log_alpha[:, t - 1, :, None] + prep64.trans[None]
                     + (prep64.emis[:, t] + log_beta[:, t])[:, None, :])
            pairs += numpy.exp(crf._normalise(xp, score, log_Z[:, None, None])).sum(axis=0)
        chain = Chain(TAGS, *(p.astype(dtype) for p in (trans, start, end)))
        prep = crf._prepare(xp, chain, emis.astype(dtype), lengths, allowed)
        scaled, redo = crf._scaled_forward_backward(xp, prep)
        assert redo is None and scaled.log_alpha.dtype == dtype
        numpy.testing.assert_allclose(scaled.log_Z, log_Z, rtol=tol)
        for got, want in ((scaled.log_alpha, log_alpha), (scaled.log_beta, log_beta)):
            possible = want > LOG_ZERO / 2
            assert ((got > LOG_ZERO / 2) == possible).all()
            numpy.testing.assert_allclose(got[possible], want[possible], rtol=tol, atol=tol)
        counts = crf._pair_counts(xp, prep, scaled)
        numpy.testing.assert_allclose(counts, pairs, rtol=1e-3 if dtype == "float32" else 1e-8,
                                      atol=1e-9)


def test_float32_input():
    emis64, lengths, trans, start, end = random_crf(9, LENGTHS)
    emis = emis64.astype("float32")
    gold_mask, _ = random_partial_mask(9, emis, LENGTHS)
    log_Z = log_partition(xp, Chain(TAGS, trans, start, end), emis, lengths)
    assert log_Z.dtype == numpy.float32
    numpy.testing.assert_allclose(log_Z, log_partition(xp, Chain(TAGS, trans, start, end), emis64, lengths), rtol=1e-5)
    marg = marginals(xp, Chain(TAGS, trans, start, end), emis, lengths)
    assert marg.dtype == numpy.float32
    out = nll_and_grads(xp, Chain(TAGS, trans, start, end), emis, lengths, gold_mask)
    out64 = nll_and_grads(xp, Chain(TAGS, trans, start, end), emis64, lengths, gold_mask)
    for a, b in zip(out, out64):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    spans = [all_spans(n) for n in LENGTHS]
    for a, b in zip(
        span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, spans),
        span_log_marginals(xp, Chain(TAGS, trans, start, end), emis64, lengths, spans),
    ):
        numpy.testing.assert_allclose(numpy.exp(a), numpy.exp(b), atol=1e-5)


def test_softmax_tagger_as_crf():
    """Without a CRF: emissions log(p), zero parameters, constraints still on."""
    lengths = [6, 3, 0, 5]
    rng = numpy.random.default_rng(13)
    logits = rng.normal(0, 2, (len(lengths), 6, N_TAGS)).astype("float32")
    probs = numpy.exp(logits) / numpy.exp(logits).sum(axis=2, keepdims=True)
    emis = numpy.log(probs)
    lengths_arr = numpy.asarray(lengths, dtype="i")
    zeros = [numpy.zeros((N_TAGS, N_TAGS), "f"), numpy.zeros(N_TAGS, "f"), numpy.zeros(N_TAGS, "f")]
    chain = Chain(TAGS, *zeros)
    paths = viterbi(xp, chain, emis, lengths_arr)
    for path, ref in zip(paths, best_paths(xp, Chain.zeros(xp, TAGS), [emis[b, :n] for b, n in enumerate(lengths)])):
        numpy.testing.assert_array_equal(path, ref)
    spans = [all_spans(n, max_len=3) for n in lengths]
    for p in span_log_marginals(xp, chain, emis, lengths_arr, spans):
        assert ((numpy.exp(p) >= 0) & (numpy.exp(p) <= 1)).all()
    best = [path_to_spans(path) for path in paths]
    assert any(best)
    for p in span_log_marginals(xp, chain, emis, lengths_arr, best):
        assert (numpy.exp(p) > 0).all()


def test_infeasible_gold_raises_and_impossible_rows_are_zero():
    emis, lengths, trans, start, end = random_crf(0, [3, 2])
    gold = gold_mask_from_biluo(xp, [["O", None, "O"], ["I-A", None]], TAGS)
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        nll_and_grads(xp, Chain(TAGS, trans, start, end), emis, lengths, gold)
    log_Z = log_partition(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=gold)
    assert log_Z[0] > LOG_ZERO / 2 and log_Z[1] == LOG_ZERO
    marg = marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, allowed_mask=gold)
    assert not marg[1].any() and marg[0].sum() == pytest.approx(3.0)


def test_gold_mask_from_biluo():
    mask = gold_mask_from_biluo(xp, [["B-A", None, "L-A"], ["-"], []], TAGS)
    assert mask.shape == (3, 3, N_TAGS) and mask.dtype == bool
    assert mask[0, 0].sum() == 1 and mask[0, 0, TAGS.index("B-A")]
    assert mask[0, 1].all() and mask[1, 0].all() and mask[1, 1:].all() and mask[2].all()
    with pytest.raises(ValueError):
        gold_mask_from_biluo(xp, [["B-X"]], TAGS)


def test_bad_inputs_raise():
    emis, lengths, trans, start, end = random_crf(0, [2, 1])
    with pytest.raises(ValueError):
        log_partition(xp, Chain(TAGS, trans, start, end), emis[:, :, :5], lengths)
    with pytest.raises(ValueError):
        log_partition(xp, Chain(TAGS, trans, start, end), emis, numpy.asarray([3, 1]))
    with pytest.raises(ValueError):
        span_log_marginals(xp, Chain(TAGS, trans, start, end), emis, lengths, [[(0, 3, 0)], []])
    with pytest.raises(ValueError):
        spans_above_threshold(xp, Chain(TAGS, trans, start, end), emis, lengths, 0.0)


def test_kernels_and_numpy_give_the_same_paths_and_messages(monkeypatch):
    """The compiled Viterbi picks the same paths as numpy's, ties included
    (scores rounded to halves), and the messages agree."""
    from spacy_rnn_ner import crf
    from spacy_rnn_ner.layers import cells

    if crf._chain_kernels(numpy, numpy.float32) is None:
        pytest.skip("the compiled chain kernels are not built")
    lengths = [30, 1, 0, 17, 30, 5]
    emis, lengths, trans, start, end = random_crf(5, lengths, dtype="float32")
    emis, trans = numpy.round(emis * 2) / 2, numpy.round(trans * 2) / 2
    mask = numpy.random.default_rng(2).random(emis.shape) > 0.3
    mask[:, :, 0] = True
    chain = Chain(TAGS, trans, start, end)
    results = {}
    for path in ("kernels", "numpy"):
        if path == "numpy":
            monkeypatch.setattr(cells, "_cpu_kernels", None)
        results[path] = (
            viterbi(xp, chain, emis, lengths),
            viterbi(xp, chain, emis, lengths, allowed_mask=mask),
            forward_backward(xp, chain, emis, lengths, allowed_mask=mask),
        )
    for got, want in zip(results["kernels"][:2], results["numpy"][:2]):
        assert [p.tolist() for p in got] == [p.tolist() for p in want]
    for got, want in zip(results["kernels"][2], results["numpy"][2]):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
