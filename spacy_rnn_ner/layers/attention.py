"""`spacy-rnn-ner.SelfAttention.v1`: multi-head scaled dot-product
self-attention over the token vectors of each document, with a residual
connection and layer normalisation (post-norm, as in Vaswani et al. 2017),
an optional learned bias per head and relative-distance bucket (T5-style log
buckets, Raffel et al. 2020), and an optional window: every token attends to
the tokens within `window` positions of it in its own document (0 = the whole
document).

Documents never see each other: each attends over its own tokens only; docs
of similar length are padded together (`batching.length_buckets`) and the
padding is masked. Scores are computed for blocks of query positions at a
time, each against the keys its window can reach, and recomputed in the
backward pass from the stored per-row log-sum-exp (as FlashAttention does),
so no (n x n) matrix is ever held: memory is O(n x width) plus one block,
whatever the window. With `window > 0` the cost is O(n x window) too; with
`window = 0` it is O(n^2) in time.
"""
import math
from typing import Callable, Iterator, List, Optional, Tuple

from thinc.api import Model, glorot_uniform_init, registry
from thinc.types import Floats2d

from ..batching import length_buckets

InT = List[Floats2d]

# Not "dropout_rate": spaCy sets that attribute on every layer to the
# [training] dropout on each update, which would override this rate.
RATE_ATTR = "attention_dropout_rate"
# Most score entries (padded docs x heads x queries x keys) in one block.
BLOCK_ELEMENTS = 2**21
# Masked scores: finite, so that a padded query with no key in reach gives a
# uniform row (its output is dropped) instead of NaN.
MASKED = -1e30
LN_EPS = 1e-5


@registry.layers("spacy-rnn-ner.SelfAttention.v1")
def SelfAttention(
    nO: Optional[int] = None,
    *,
    heads: int = 4,
    window: int = 0,
    distance_bias: bool = True,
    n_buckets: int = 32,
    max_distance: int = 128,
    dropout: float = 0.0,
) -> Model[InT, InT]:
    """Self-attention within each document, residual and layer norm; the
    output width equals the input width `nO`, which must divide by `heads`.

    nO (Optional[int]): Width; inferred at initialization if None.
    heads (int): Attention heads.
    window (int): Attend within +/- window tokens; 0 = the whole document.
    distance_bias (bool): Learn a score bias per head and distance bucket.
    n_buckets (int): Distance buckets (half per direction), log-spaced.
    max_distance (int): Distances from here on share the last bucket.
    dropout (float): Dropout on the attention output, before the residual.
    """
    for name, value, low in (("heads", heads, 1), ("window", window, 0), ("n_buckets", n_buckets, 4)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"SelfAttention: {name} must be an int >= {low}, got {value!r}")
    if n_buckets % 2:
        raise ValueError(f"SelfAttention: n_buckets must be even (half per direction), got {n_buckets}")
    if max_distance < n_buckets // 2:
        raise ValueError(f"SelfAttention: max_distance must be >= n_buckets // 2, got {max_distance}")
    if isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"SelfAttention: dropout must be in [0, 1), got {dropout!r}")
    params = {"Wqkv": None, "bqkv": None, "Wo": None, "bo": None, "G": None, "B": None}
    if distance_bias:
        params["R"] = None
    model: Model[InT, InT] = Model(
        "self_attention",
        forward,
        init=init,
        dims={"nO": nO, "nI": nO},
        params=params,
        attrs={
            "heads": heads,
            "window": window,
            "distance_bias": bool(distance_bias),
            "n_buckets": n_buckets,
            "max_distance": max_distance,
            RATE_ATTR: float(dropout),
        },
    )
    if nO is not None:
        _check_width(nO, heads)
    return model


def _check_width(width: int, heads: int) -> None:
    if width % heads:
        raise ValueError(f"SelfAttention: width {width} must be divisible by heads={heads}")


def init(model: Model[InT, InT], X: Optional[InT] = None, Y: Optional[InT] = None) -> None:
    if not model.has_dim("nO") or model.get_dim("nO") is None:
        if not X:
            raise ValueError("SelfAttention: nO is not set and no sample X to infer it from")
        model.set_dim("nO", X[0].shape[1])
    nO = model.get_dim("nO")
    model.set_dim("nI", nO)
    _check_width(nO, model.attrs["heads"])
    ops = model.ops
    model.set_param("Wqkv", glorot_uniform_init(ops, (3 * nO, nO)))
    model.set_param("bqkv", ops.alloc1f(3 * nO))
    model.set_param("Wo", glorot_uniform_init(ops, (nO, nO)))
    model.set_param("bo", ops.alloc1f(nO))
    model.set_param("G", ops.xp.ones((nO,), dtype="f"))
    model.set_param("B", ops.alloc1f(nO))
    if model.attrs["distance_bias"]:
        model.set_param("R", ops.alloc2f(model.attrs["heads"], model.attrs["n_buckets"]))


def forward(model: Model[InT, InT], Xs: InT, is_train: bool) -> Tuple[InT, Callable]:
    ops = model.ops
    xp = ops.xp
    lengths = [X.shape[0] for X in Xs]
    if not Xs or sum(lengths) == 0:
        return Xs, lambda dYs: dYs
    X = xp.concatenate(Xs) if len(Xs) > 1 else Xs[0]
    dtype = X.dtype
    nO = model.get_dim("nO")
    if X.ndim != 2 or X.shape[1] != nO:
        raise ValueError(f"SelfAttention: expected width {nO}, got input of shape {X.shape}")
    H = model.attrs["heads"]
    Wqkv = model.get_param("Wqkv").astype(dtype, copy=False)
    bqkv = model.get_param("bqkv").astype(dtype, copy=False)
    Wo = model.get_param("Wo").astype(dtype, copy=False)
    bo = model.get_param("bo").astype(dtype, copy=False)
    G = model.get_param("G").astype(dtype, copy=False)
    R = model.get_param("R").astype(dtype, copy=False) if model.attrs["distance_bias"] else None
    QKV = X @ Wqkv.T + bqkv
    groups = [_Group(xp, idx, lengths, H) for idx in length_buckets(lengths)]
    # Every row of A and dQKV belongs to one group, which writes it.
    A = xp.empty_like(X)
    # Per group: log-sum-exp of every score row and, in training, the
    # (scaled) query, key and value heads, which backprop needs.
    saved = [_attend_forward(model, g, QKV, R, A, keep=is_train) for g in groups]
    del QKV
    O = A @ Wo.T + bo
    rate = model.attrs[RATE_ATTR]
    mask = ops.get_dropout_mask(O.shape, rate) if is_train and rate > 0 else None
    if mask is not None:
        O *= mask
    Z = X + O
    del O
    Z -= Z.mean(axis=1, keepdims=True)
    inv = 1.0 / xp.sqrt((Z**2).mean(axis=1, keepdims=True) + LN_EPS)
    N = Z * inv
    del Z
    Y = N * G + model.get_param("B").astype(dtype, copy=False)
    Ys = _split(Y, lengths)

    def backprop(dYs: InT) -> InT:
        dY = xp.concatenate(dYs) if len(dYs) > 1 else dYs[0]
        _inc_grad(model, "G", (dY * N).sum(axis=0))
        _inc_grad(model, "B", dY.sum(axis=0))
        dZ = dY * G
        dZ -= dZ.mean(axis=1, keepdims=True) + N * (dZ * N).mean(axis=1, keepdims=True)
        dZ *= inv
        dO = dZ * mask if mask is not None else dZ
        _inc_grad(model, "Wo", (dO.T @ A))
        _inc_grad(model, "bo", dO.sum(axis=0))
        dA = dO @ Wo
        # D_i = sum_j P_ij dP_ij = dA_i . A_i per head (FlashAttention's row term).
        D = (dA * A).reshape(A.shape[0], H, -1).sum(axis=-1)
        dQKV = xp.empty((X.shape[0], 3 * nO), dtype=dtype)
        dR = xp.zeros_like(R) if R is not None else None
        for group, (lse, heads) in zip(groups, saved):
            _attend_backward(model, group, heads, R, lse, dA, D, dQKV, dR)
        if dR is not None:
            _inc_grad(model, "R", dR)
        _inc_grad(model, "Wqkv", (dQKV.T @ X))
        _inc_grad(model, "bqkv", dQKV.sum(axis=0))
        dX = dQKV @ Wqkv
        dX += dZ
        return _split(dX, lengths)

    return Ys, backprop


def _inc_grad(model: Model, name: str, grad) -> None:
    model.inc_grad(name, grad.astype(model.get_param(name).dtype, copy=False))


def _split(Y, lengths: List[int]) -> InT:
    starts = [0]
    for n in lengths:
        starts.append(starts[-1] + n)
    return [Y[starts[i] : starts[i + 1]] for i in range(len(lengths))]


class _Group:
    """Docs of similar length, padded to (n_docs, longest): `rows[b, t]` is
    the flat row of token t of doc b, or 0 for padding (masked by `valid`)."""

    def __init__(self, xp, doc_ids: List[int], lengths: List[int], heads: int):
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        self.lens = [lengths[i] for i in doc_ids]
        self.B, self.T, self.H = len(doc_ids), self.lens[0], heads
        pos = xp.arange(self.T)
        self.valid = pos[None, :] < xp.asarray(self.lens).reshape(-1, 1)
        offsets = xp.asarray([starts[i] for i in doc_ids]).reshape(-1, 1)
        self.rows = xp.where(self.valid, offsets + pos[None, :], 0)
        self.flat_rows = self.rows[self.valid]
        self.padded = min(self.lens) < self.T
        # Unpadded docs that follow each other in the batch: their rows are
        # one slice of the flat arrays, no gather or scatter needed.
        self.span = None
        if not self.padded and list(doc_ids) == list(range(doc_ids[0], doc_ids[0] + self.B)):
            self.span = slice(starts[doc_ids[0]], starts[doc_ids[0]] + self.B * self.T)
        self.key_bias = None
        if self.padded:
            # Added to the scores: padded keys get no weight.
            self.key_bias = xp.where(self.valid, 0.0, MASKED)[:, None, None, :]

    def heads_of(self, M):
        """(flat rows, width) -> contiguous (B, H, T, width // H)."""
        rows = M[self.span] if self.span is not None else M[self.rows.ravel()]
        return rows.reshape(self.B, self.T, self.H, -1).transpose(0, 2, 1, 3).copy()

    def scatter(self, out, M) -> None:
        """Write (B, H, T, d) into the group's flat rows of `out` (each row
        belongs to one group)."""
        P = M.transpose(0, 2, 1, 3).reshape(self.B, self.T, -1)
        if self.span is not None:
            out[self.span] = P.reshape(-1, P.shape[-1])
        else:
            out[self.flat_rows] = P[self.valid] if self.padded else P.reshape(-1, P.shape[-1])

    def blocks(self, window: int) -> Iterator[Tuple[int, int, int, int]]:
        """(q0, q1, k0, k1): query block and the key range it can reach."""
        T = self.T
        if window == 0:
            size = max(1, min(T, BLOCK_ELEMENTS // (self.B * self.H * T)))
        else:
            # At least 32 queries a block: a small window would otherwise
            # mean a Python loop step per few tokens.
            size = max(1, min(T, max(window, 32)))
            while size > 1 and self.B * self.H * size * min(T, size + 2 * window) > BLOCK_ELEMENTS:
                size //= 2
        for q0 in range(0, T, size):
            q1 = min(T, q0 + size)
            if window == 0:
                yield q0, q1, 0, T
            else:
                yield q0, q1, max(0, q0 - window), min(T, q1 + window)


def distance_buckets(xp, rel, n_buckets: int, max_distance: int):
    """T5's bidirectional relative-position buckets of `rel` = key - query:
    half the buckets per sign, exact up to n_buckets // 4, log-spaced to
    `max_distance`, beyond which distances share the last bucket."""
    n = n_buckets // 2
    exact = n // 2
    dist = xp.abs(rel)
    log_part = exact + (
        xp.log(xp.maximum(dist, 1) / exact) / math.log(max_distance / exact) * (n - exact)
    ).astype("int64")
    bucket = xp.where(dist < exact, dist, xp.minimum(log_part, n - 1))
    return bucket + n * (rel > 0)


class _BlockBias:
    """The (heads, queries, keys) term added to a block's scores: distance
    bias and window mask. It depends only on where the keys start relative to
    the queries and on the block's shape, so the interior blocks of a window
    share one: it is computed once for a run of such blocks. Only the last
    one is kept: with window 0 every block differs, and keeping them all
    would hold heads x n x n values."""

    def __init__(self, model: Model, R, dtype):
        self.xp = model.ops.xp
        self.R = R
        self.window = model.attrs["window"]
        self.n_buckets = model.attrs["n_buckets"]
        self.max_distance = model.attrs["max_distance"]
        self.dtype = dtype
        self.cache: dict = {}

    def __call__(self, q0: int, q1: int, k0: int, k1: int):
        """(bias or None, buckets or None) for the block."""
        key = (k0 - q0, q1 - q0, k1 - k0)
        if key not in self.cache:
            self.cache.clear()
            xp = self.xp
            rel = xp.arange(k0, k1, dtype="int32")[None, :] - xp.arange(q0, q1, dtype="int32")[:, None]
            bias = bucket = None
            if self.R is not None:
                # Bucket the distinct distances, then look them up.
                lo = k0 - (q1 - 1)
                per_distance = distance_buckets(xp, xp.arange(lo, k1 - q0), self.n_buckets, self.max_distance)
                bucket = per_distance[rel - lo]
                bias = self.R[:, bucket]
            if self.window and int(xp.abs(rel).max()) > self.window:
                outside = xp.where(xp.abs(rel) <= self.window, 0.0, MASKED).astype(self.dtype)
                bias = outside[None] if bias is None else bias + outside
            self.cache[key] = (bias, bucket)
        return self.cache[key]


def _block_scores(g: _Group, Qs, Kh, bias, q0, q1, k0, k1):
    """Biased and masked scores (B, H, q, k) of queries Qs, pre-scaled."""
    S = Qs[:, :, q0:q1] @ Kh[:, :, k0:k1].transpose(0, 1, 3, 2)
    if bias is not None:
        S += bias
    if g.key_bias is not None:
        S += g.key_bias[..., k0:k1]
    return S


def _attend_forward(model, g: _Group, QKV, R, A, keep: bool):
    """Attention of one group into the flat rows of A; returns the
    log-sum-exp of every score row and, if `keep`, the heads (Q scaled)."""
    xp = model.ops.xp
    nO = A.shape[1]
    Qh, Kh, Vh = (g.heads_of(QKV[:, i * nO : (i + 1) * nO]) for i in range(3))
    Qh *= 1.0 / math.sqrt(nO // g.H)
    block_bias = _BlockBias(model, R, QKV.dtype)
    lse = xp.empty((g.B, g.H, g.T, 1), dtype=QKV.dtype)
    out = xp.empty_like(Qh)
    for q0, q1, k0, k1 in g.blocks(model.attrs["window"]):
        bias, _ = block_bias(q0, q1, k0, k1)
        S = _block_scores(g, Qh, Kh, bias, q0, q1, k0, k1)
        m = S.max(axis=-1, keepdims=True)
        S -= m
        P = xp.exp(S, out=S)
        total = P.sum(axis=-1, keepdims=True)
        lse[:, :, q0:q1] = m + xp.log(total)
        out[:, :, q0:q1] = (P @ Vh[:, :, k0:k1]) / total
    g.scatter(A, out)
    return lse, ((Qh, Kh, Vh) if keep else None)


def _attend_backward(model, g: _Group, heads, R, lse, dA, D, dQKV, dR) -> None:
    xp = model.ops.xp
    Qh, Kh, Vh = heads
    nO = dA.shape[1]
    scale = 1.0 / math.sqrt(nO // g.H)
    dAh = g.heads_of(dA)
    Dh = D[g.rows].transpose(0, 2, 1)[..., None]
    if g.padded:
        # Padded query rows gathered row 0's gradient and D: zero them.
        dAh *= g.valid[:, None, :, None]
        Dh = Dh * g.valid[:, None, :, None]
    # Query blocks are disjoint and cover every row: dQ is written, not added to.
    dQh, dKh, dVh = xp.empty_like(Qh), xp.zeros_like(Kh), xp.zeros_like(Vh)
    block_bias = _BlockBias(model, R, dA.dtype)
    for q0, q1, k0, k1 in g.blocks(model.attrs["window"]):
        bias, bucket = block_bias(q0, q1, k0, k1)
        S = _block_scores(g, Qh, Kh, bias, q0, q1, k0, k1)
        S -= lse[:, :, q0:q1]
        P = xp.exp(S, out=S)
        dAb = dAh[:, :, q0:q1]
        dVh[:, :, k0:k1] += P.transpose(0, 1, 3, 2) @ dAb
        dS = dAb @ Vh[:, :, k0:k1].transpose(0, 1, 3, 2)
        dS -= Dh[:, :, q0:q1]
        dS *= P
        if dR is not None:
            per_head = dS.sum(axis=0).reshape(g.H, -1)
            flat = bucket.ravel()
            for h in range(g.H):
                dR[h] += xp.bincount(flat, weights=per_head[h], minlength=dR.shape[1])
        # Scores are (scale Q) . K: the scale goes to dQ here, and dK gets
        # it through the scaled Qh.
        dQh[:, :, q0:q1] = (dS @ Kh[:, :, k0:k1]) * scale
        dKh[:, :, k0:k1] += dS.transpose(0, 1, 3, 2) @ Qh[:, :, q0:q1]
    for i, M in enumerate((dQh, dKh, dVh)):
        g.scatter(dQKV[:, i * nO : (i + 1) * nO], M)
