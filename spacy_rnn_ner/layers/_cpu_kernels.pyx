# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Python bindings of the RNN kernels in `_cpu_kernels.h` (float32, CPU), and
the CRF chain kernels of `crf.py` (Cython, at the end).

Typed memoryviews check each array's dtype, number of dimensions,
C-contiguity and writability; the checks below compare its shape with the
size arguments, multiplied without overflow (`mul`, -1 for negative or
overflowed, which every check refuses), and every step table against the
rows, before any kernel runs. Every failure is a Python exception. The
layouts are those of `cells.py`; the GIL is released while a kernel runs.
"""
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.stdint cimport int32_t, int64_t, uint8_t


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


cdef extern from "_cpu_kernels.h" nogil:
    ctypedef enum Cell:
        C_ELMAN "CELL_ELMAN"
        C_GRU "CELL_GRU"
        C_LSTM "CELL_LSTM"
    int cell_gates(Cell cell)
    int MR
    int WG_KB
    int KERNELS_PACKED_BUILT
    int KERNELS_CLONES_BUILT
    int cpu_has_avx512f()
    void k_lstm_fwd "lstm_fwd"(float *g, const float *rec, const float *c_prev, float *c,
                               float *tc, float *h, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H)
    void k_lstm_bwd "lstm_bwd"(const float *dh, float *dc, const float *g, const float *c_prev,
                               const float *tc, float *dg, float *dc_prev, Py_ssize_t n,
                               Py_ssize_t n_prev, Py_ssize_t H)
    void k_gru_fwd "gru_fwd"(float *g, const float *rec, const float *bh, const float *h_prev,
                             float *rn, float *h, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H)
    void k_gru_bwd "gru_bwd"(const float *dh, const float *g, const float *rn, const float *h_prev,
                             Py_ssize_t ldh, float *dg, float *drec, float *dh_prev, Py_ssize_t n,
                             Py_ssize_t n_prev, Py_ssize_t H)
    void k_elman_fwd "elman_fwd"(const float *g, const float *rec, float *h, Py_ssize_t n,
                                 Py_ssize_t n_prev, Py_ssize_t H)
    void k_elman_bwd "elman_bwd"(const float *dh, const float *h, Py_ssize_t ldh, float *dg,
                                 Py_ssize_t n, Py_ssize_t H)
    void k_step_pack "step_pack"(const float *Wx, const float *Wh, float *packed, Py_ssize_t nI,
                                 Py_ssize_t H, int G, int U)
    void k_pack_b "pack_b"(const float *B, float *packed, Py_ssize_t K, Py_ssize_t N)
    void k_gemm_packed "gemm_packed"(const float *A, const float *packed, float *C, Py_ssize_t M,
                                     Py_ssize_t K, Py_ssize_t N, int accumulate)
    void k_wgrad "wgrad"(const float *A, Py_ssize_t lda, Py_ssize_t M, const float *X,
                         Py_ssize_t ldx, Py_ssize_t nX, const float *Hs, Py_ssize_t ldh,
                         Py_ssize_t nH, const int32_t *prev, Py_ssize_t K, float *C,
                         int accumulate, float *packed, float *strips)
    void k_run_steps "run_steps"(Cell cell, const float *X, float *Hs, const float *packed,
                                 const float *bias, const float *bh, const int64_t *steps,
                                 Py_ssize_t n_steps, float *G, float *state, float *TC,
                                 Py_ssize_t nI, Py_ssize_t H, Py_ssize_t ld)
    void k_run_back_steps "run_back_steps"(Cell cell, const int64_t *steps, Py_ssize_t n_steps,
                                           float *dH, float *dG, const float *Wh_packed,
                                           const float *G, const float *state, const float *TC,
                                           const float *Hs, Py_ssize_t ldh, float *drec,
                                           float *dc, Py_ssize_t H)


# HAS_PACKED: whether step_pack, pack_b, gemm_packed, wgrad, run_steps and
# run_back_steps can run (built, and this CPU has AVX-512F; they raise
# RuntimeError otherwise); *_BUILT: what this build compiled in.
HAS_PACKED = int(cpu_has_avx512f())
PACKED_BUILT = KERNELS_PACKED_BUILT
CLONES_BUILT = KERNELS_CLONES_BUILT
# The cell argument of run_steps and run_back_steps (the C enum Cell).
CELL_ELMAN = int(C_ELMAN)
CELL_GRU = int(C_GRU)
CELL_LSTM = int(C_LSTM)

cdef bint packed_ok = HAS_PACKED != 0


# ---- size arithmetic: -1 stands for "negative or overflowed" and propagates

cdef inline Py_ssize_t mul(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    if a < 0 or b < 0 or (a != 0 and b > PY_SSIZE_T_MAX // a):
        return -1
    return a * b


cdef inline Py_ssize_t add(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    if a < 0 or b < 0 or b > PY_SSIZE_T_MAX - a:
        return -1
    return a + b


cdef inline Py_ssize_t round_up(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) * b for a >= 0, b >= 1 (-1 otherwise or on overflow)."""
    if a < 0 or b < 1:
        return -1
    return mul(a // b + (a % b != 0), b)


# ---- checks of shapes against sizes (dtype, contiguity: the memoryviews)

cdef int sizes(Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H) except -1:
    if n < 0 or n_prev < 0 or n_prev > n or H < 0:
        raise ValueError("invalid step sizes")
    return 0


cdef int shape2(str name, Py_ssize_t r, Py_ssize_t c, Py_ssize_t rows, Py_ssize_t cols,
                bint min_rows=False) except -1:
    """A (rows, cols) array, or (>= rows, cols) when `min_rows`."""
    if rows < 0 or cols < 0:
        raise ValueError(f"{name}: the sizes are negative or too large")
    if c != cols or (r < rows if min_rows else r != rows):
        at_least = ">= " if min_rows else ""
        raise ValueError(
            f"{name} must be a 2-D float32 array of shape ({at_least}{rows}, {cols}), "
            f"not ({r}, {c})"
        )
    return 0


cdef int shape1(str name, Py_ssize_t n, Py_ssize_t size) except -1:
    if size < 0:
        raise ValueError(f"{name}: the sizes are negative or too large")
    if n != size:
        raise ValueError(f"{name} must be a contiguous 1-D float32 array of {size} floats, not {n}")
    return 0


cdef Py_ssize_t row_stride(str name, Py_ssize_t r, Py_ssize_t c, Py_ssize_t s0, Py_ssize_t s1,
                           Py_ssize_t rows, Py_ssize_t cols) except -1:
    """Checks a (rows, cols) float32 array whose rows are contiguous but may
    lie apart (a column block of a wider array); returns their distance in
    floats."""
    shape2(name, r, c, rows, cols)
    if not ((c <= 1 or s1 == 4) and (r <= 1 or (s0 % 4 == 0 and s0 >= 4 * c))):
        raise ValueError(f"{name} must be a 2-D float32 array with contiguous rows")
    return s0 // 4 if r > 1 else c


cdef int need_packed(str name) except -1:
    if not packed_ok:
        raise RuntimeError(f"{name} needs a build with the AVX-512 kernels and a CPU with AVX-512F")
    return 0


cdef int check_cell(Py_ssize_t cell) except -1:
    if cell != C_ELMAN and cell != C_GRU and cell != C_LSTM:
        raise ValueError(f"invalid cell {cell}")
    return 0


cdef int check_steps(const int64_t[:, ::1] steps, Py_ssize_t N) except -1:
    """Each step (start, size, prev_start, n_prev) inside the N rows, its
    previous rows apart from its own (written so that nothing overflows:
    every value is in [0, N] first)."""
    cdef Py_ssize_t s
    cdef int64_t start, size, p_start, n_prev
    if steps.shape[1] != 4:
        raise ValueError("steps must be an int64 array of shape (T, 4)")
    for s in range(steps.shape[0]):
        start, size, p_start, n_prev = steps[s, 0], steps[s, 1], steps[s, 2], steps[s, 3]
        if not (start >= 0 and size >= 0 and p_start >= 0 and n_prev >= 0 and start <= N
                and p_start <= N and size <= N - start and n_prev <= N - p_start
                and n_prev <= size
                and (n_prev == 0 or p_start + n_prev <= start or start + size <= p_start)):
            raise ValueError(f"step {s} is outside the {N} rows")
    return 0


# ---- gate kernels of one step (the C backend)

def lstm_fwd(float[:, ::1] g not None, const float[:, ::1] rec not None,
             const float[:, ::1] c_prev not None, float[:, ::1] c not None,
             float[:, ::1] tc not None, float[:, ::1] h not None,
             Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H):
    """LSTM gates of one step, forward."""
    sizes(n, n_prev, H)
    shape2("g", g.shape[0], g.shape[1], n, mul(4, H))
    shape2("rec", rec.shape[0], rec.shape[1], n_prev, mul(4, H), True)
    shape2("c_prev", c_prev.shape[0], c_prev.shape[1], n_prev, H)
    shape2("c", c.shape[0], c.shape[1], n, H)
    shape2("tc", tc.shape[0], tc.shape[1], n, H)
    shape2("h", h.shape[0], h.shape[1], n, H)
    with nogil:
        k_lstm_fwd(&g[0, 0], &rec[0, 0], &c_prev[0, 0], &c[0, 0], &tc[0, 0], &h[0, 0], n, n_prev, H)


def lstm_bwd(const float[:, ::1] dh not None, float[:, ::1] dc not None,
             const float[:, ::1] g not None, const float[:, ::1] c_prev not None,
             const float[:, ::1] tc not None, float[:, ::1] dg not None,
             float[:, ::1] dc_prev not None, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H):
    """LSTM gates of one step, backward."""
    sizes(n, n_prev, H)
    shape2("dh", dh.shape[0], dh.shape[1], n, H)
    shape2("dc", dc.shape[0], dc.shape[1], n, H)
    shape2("g", g.shape[0], g.shape[1], n, mul(4, H))
    shape2("c_prev", c_prev.shape[0], c_prev.shape[1], n_prev, H)
    shape2("tc", tc.shape[0], tc.shape[1], n, H)
    shape2("dg", dg.shape[0], dg.shape[1], n, mul(4, H))
    shape2("dc_prev", dc_prev.shape[0], dc_prev.shape[1], n_prev, H)
    with nogil:
        k_lstm_bwd(&dh[0, 0], &dc[0, 0], &g[0, 0], &c_prev[0, 0], &tc[0, 0], &dg[0, 0],
                   &dc_prev[0, 0], n, n_prev, H)


def gru_fwd(float[:, ::1] g not None, const float[:, ::1] rec not None,
            const float[::1] bh not None, const float[:, ::1] h_prev not None,
            float[:, ::1] rn not None, float[:, ::1] h not None,
            Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H):
    """GRU gates of one step, forward."""
    sizes(n, n_prev, H)
    shape2("g", g.shape[0], g.shape[1], n, mul(3, H))
    shape2("rec", rec.shape[0], rec.shape[1], n_prev, mul(3, H), True)
    shape1("bh", bh.shape[0], H)
    shape2("h_prev", h_prev.shape[0], h_prev.shape[1], n_prev, H)
    shape2("rn", rn.shape[0], rn.shape[1], n, H)
    shape2("h", h.shape[0], h.shape[1], n, H)
    with nogil:
        k_gru_fwd(&g[0, 0], &rec[0, 0], &bh[0], &h_prev[0, 0], &rn[0, 0], &h[0, 0], n, n_prev, H)


def gru_bwd(const float[:, ::1] dh not None, const float[:, ::1] g not None,
            const float[:, ::1] rn not None, const float[:, ::1] h_prev not None,
            float[:, ::1] dg not None, float[:, ::1] drec not None,
            float[:, ::1] dh_prev not None, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H):
    """GRU gates of one step, backward."""
    sizes(n, n_prev, H)
    shape2("dh", dh.shape[0], dh.shape[1], n, H)
    shape2("g", g.shape[0], g.shape[1], n, mul(3, H))
    shape2("rn", rn.shape[0], rn.shape[1], n, H)
    shape2("h_prev", h_prev.shape[0], h_prev.shape[1], n_prev, H)
    shape2("dg", dg.shape[0], dg.shape[1], n, mul(3, H))
    shape2("drec", drec.shape[0], drec.shape[1], n, mul(3, H))
    shape2("dh_prev", dh_prev.shape[0], dh_prev.shape[1], n_prev, H)
    with nogil:
        k_gru_bwd(&dh[0, 0], &g[0, 0], &rn[0, 0], &h_prev[0, 0], H, &dg[0, 0], &drec[0, 0],
                  &dh_prev[0, 0], n, n_prev, H)


def elman_fwd(const float[:, ::1] g not None, const float[:, ::1] rec not None,
              float[:, ::1] h not None, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H):
    """Elman step, forward."""
    sizes(n, n_prev, H)
    shape2("g", g.shape[0], g.shape[1], n, H)
    shape2("rec", rec.shape[0], rec.shape[1], n_prev, H, True)
    shape2("h", h.shape[0], h.shape[1], n, H)
    with nogil:
        k_elman_fwd(&g[0, 0], &rec[0, 0], &h[0, 0], n, n_prev, H)


def elman_bwd(const float[:, ::1] dh not None, const float[:, ::1] h not None,
              float[:, ::1] dg not None, Py_ssize_t n, Py_ssize_t H):
    """Elman step, backward."""
    sizes(n, 0, H)
    shape2("dh", dh.shape[0], dh.shape[1], n, H)
    shape2("h", h.shape[0], h.shape[1], n, H)
    shape2("dg", dg.shape[0], dg.shape[1], n, H)
    with nogil:
        k_elman_bwd(&dh[0, 0], &h[0, 0], H, &dg[0, 0], n, H)


# ---- AVX-512 kernels

def step_pack(const float[:, ::1] Wx not None, const float[:, ::1] Wh not None,
              float[::1] packed not None, Py_ssize_t nI, Py_ssize_t H, Py_ssize_t G,
              Py_ssize_t U):
    """Pack Wx (G H, nI) and Wh (G H, H) for the whole-step kernels, in
    panels of U units."""
    need_packed("step_pack")
    if nI < 0 or H < 0 or G < 1 or G > 4 or U < 1 or U > 64:
        raise ValueError("invalid sizes")
    shape2("Wx", Wx.shape[0], Wx.shape[1], mul(G, H), nI)
    shape2("Wh", Wh.shape[0], Wh.shape[1], mul(G, H), H)
    shape1("packed", packed.shape[0], mul(mul(round_up(H, U), add(nI, H)), G))
    with nogil:
        k_step_pack(&Wx[0, 0], &Wh[0, 0], &packed[0], nI, H, <int>G, <int>U)


def pack_b(const float[:, ::1] B not None, float[::1] packed not None, Py_ssize_t K, Py_ssize_t N):
    """Pack B (K, N) for gemm_packed."""
    need_packed("pack_b")
    shape2("B", B.shape[0], B.shape[1], K, N)
    shape1("packed", packed.shape[0], mul(round_up(N, 64), K))
    with nogil:
        k_pack_b(&B[0, 0], &packed[0], K, N)


def gemm_packed(const float[:, ::1] A not None, const float[::1] packed not None,
                float[:, ::1] C not None, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                bint accumulate):
    """C = [C +] A @ B with B from pack_b."""
    need_packed("gemm_packed")
    shape2("A", A.shape[0], A.shape[1], M, K)
    shape1("packed", packed.shape[0], mul(round_up(N, 64), K))
    shape2("C", C.shape[0], C.shape[1], M, N)
    with nogil:
        k_gemm_packed(&A[0, 0], &packed[0], &C[0, 0], M, K, N, accumulate)


def wgrad(const float[:, :] A not None, X, H, prev, float[:, ::1] C not None, bint accumulate):
    """C = [C +] A.T @ [X | H[prev]] (weight gradients): A (K, M), X (K, nX)
    or None, H (K, nH) or None, prev (K,) int32 in [0, K] (K: a zero row),
    all of them arrays with contiguous rows."""
    need_packed("wgrad")
    cdef const float[:, :] Xv, Hv
    cdef const int32_t[::1] pv
    cdef Py_ssize_t K = A.shape[0], M = A.shape[1], nX = 0, nH = 0, k
    cdef Py_ssize_t lda, ldx = 0, ldh = 0
    cdef const float *x = NULL
    cdef const float *hs = NULL
    cdef const int32_t *p = NULL
    lda = row_stride("A", K, M, A.strides[0], A.strides[1], K, M)
    if X is not None:
        Xv = X
        nX = Xv.shape[1]
        ldx = row_stride("X", Xv.shape[0], nX, Xv.strides[0], Xv.strides[1], K, nX)
        x = &Xv[0, 0]
    if H is not None:
        Hv = H
        nH = Hv.shape[1]
        ldh = row_stride("H", Hv.shape[0], nH, Hv.strides[0], Hv.strides[1], K, nH)
        hs = &Hv[0, 0]
        if prev is None:
            raise ValueError(f"prev must be an int32 array of {K} rows")
        pv = prev
        if pv.shape[0] != K:
            raise ValueError(f"prev must be an int32 array of {K} rows, not {pv.shape[0]}")
        for k in range(K):
            if pv[k] < 0 or pv[k] > K:
                raise ValueError(f"prev[{k}] = {pv[k]} is outside [0, {K}]")
        p = &pv[0]
    shape2("C", C.shape[0], C.shape[1], M, add(nX, nH))
    # scratch: 64-column panels of WG_KB rows, then WG_KB x M rounded up to MR
    cdef Py_ssize_t panels = round_up(nX + nH, 64), n_scratch = mul(add(panels, round_up(M, MR)), WG_KB)
    cdef float *scratch = NULL
    if n_scratch < 0 or n_scratch > PY_SSIZE_T_MAX // 4 - 1:
        raise MemoryError()
    if K > 0:
        scratch = <float *>PyMem_RawMalloc(<size_t>n_scratch * 4 + 4)
        if scratch == NULL:
            raise MemoryError()
    try:
        with nogil:
            k_wgrad(&A[0, 0], lda, M, x, ldx, nX, hs, ldh, nH, p, K, &C[0, 0], accumulate, scratch,
                    NULL if scratch == NULL else scratch + panels * WG_KB)
    finally:
        PyMem_RawFree(scratch)


def run_steps(Py_ssize_t cell, const float[:, ::1] X not None, float[:, :] H not None,
              const float[::1] packed not None, const float[::1] bias not None, bh,
              const int64_t[:, ::1] steps not None, G, state, tc,
              Py_ssize_t N, Py_ssize_t nI, Py_ssize_t nH):
    """All whole steps of one direction (cell: CELL_ELMAN, CELL_GRU or
    CELL_LSTM): X (N, nI), H (N, nH) out, rows may lie apart (a column
    block); bh (nH) for the GRU; G (N, gates nH) or None (inference);
    state (N, nH): the LSTM cell, the GRU's rn when training; tc (N, nH)
    for a training LSTM. Arguments a cell does not use may be anything."""
    need_packed("run_steps")
    check_cell(cell)
    cdef Cell c = <Cell>cell
    if N < 0 or nI < 0 or nH < 0:
        raise ValueError("invalid sizes")
    cdef int n_gates = cell_gates(c), units = 64 if c == C_ELMAN else 16
    cdef Py_ssize_t GH = mul(n_gates, nH), ld
    cdef bint train = G is not None
    cdef const float[::1] bhv
    cdef float[:, ::1] Gv, sv, tv
    cdef const float *bh_p = NULL
    cdef float *G_p = NULL
    cdef float *s_p = NULL
    cdef float *tc_p = NULL
    check_steps(steps, N)
    shape2("X", X.shape[0], X.shape[1], N, nI)
    ld = row_stride("H", H.shape[0], H.shape[1], H.strides[0], H.strides[1], N, nH)
    shape1("packed", packed.shape[0], mul(mul(round_up(nH, units), add(nI, nH)), n_gates))
    shape1("bias", bias.shape[0], GH)
    if c == C_GRU:
        bhv = _not_none(bh, "bh")
        shape1("bh", bhv.shape[0], nH)
        bh_p = &bhv[0]
    if train:
        Gv = G
        shape2("G", Gv.shape[0], Gv.shape[1], N, GH)
        G_p = &Gv[0, 0]
    if c == C_LSTM or (c == C_GRU and train):
        sv = _not_none(state, "state")
        shape2("state", sv.shape[0], sv.shape[1], N, nH)
        s_p = &sv[0, 0]
    if c == C_LSTM and train:
        tv = _not_none(tc, "tc")
        shape2("tc", tv.shape[0], tv.shape[1], N, nH)
        tc_p = &tv[0, 0]
    with nogil:
        k_run_steps(c, &X[0, 0], &H[0, 0], &packed[0], &bias[0], bh_p, &steps[0, 0],
                    steps.shape[0], G_p, s_p, tc_p, nI, nH, ld)


def run_back_steps(Py_ssize_t cell, const int64_t[:, ::1] steps not None, float[:, ::1] dH not None,
                   float[:, ::1] dG not None, const float[::1] packed not None, G, state, tc,
                   H, drec, dc, Py_ssize_t N, Py_ssize_t nH):
    """Backprop through all steps of one direction (gates and recurrent
    products): dH (N, nH), dG (N, gates nH), packed: Wh by pack_b; G, state
    (LSTM cell, GRU rn) and tc as run_steps left them (LSTM, GRU); H: the
    outputs (GRU, Elman), rows may lie apart; drec (GRU) and dc (LSTM)
    receive gradients. Arguments a cell does not use may be anything."""
    need_packed("run_back_steps")
    check_cell(cell)
    cdef Cell c = <Cell>cell
    if N < 0 or nH < 0:
        raise ValueError("invalid sizes")
    cdef Py_ssize_t GH = mul(cell_gates(c), nH), ldh = nH
    cdef const float[:, ::1] Gv, sv, tv
    cdef const float[:, :] Hv
    cdef float[:, ::1] drv, dcv
    cdef const float *G_p = NULL
    cdef const float *s_p = NULL
    cdef const float *tc_p = NULL
    cdef const float *H_p = NULL
    cdef float *drec_p = NULL
    cdef float *dc_p = NULL
    check_steps(steps, N)
    shape2("dH", dH.shape[0], dH.shape[1], N, nH)
    shape2("dG", dG.shape[0], dG.shape[1], N, GH)
    shape1("packed", packed.shape[0], mul(round_up(nH, 64), GH))
    if c == C_LSTM or c == C_GRU:
        Gv = _not_none(G, "G")
        shape2("G", Gv.shape[0], Gv.shape[1], N, GH)
        sv = _not_none(state, "state")
        shape2("state", sv.shape[0], sv.shape[1], N, nH)
        G_p, s_p = &Gv[0, 0], &sv[0, 0]
    if c == C_LSTM:
        tv = _not_none(tc, "tc")
        shape2("tc", tv.shape[0], tv.shape[1], N, nH)
        dcv = _not_none(dc, "dc")
        shape2("dc", dcv.shape[0], dcv.shape[1], N, nH)
        tc_p, dc_p = &tv[0, 0], &dcv[0, 0]
    else:
        Hv = _not_none(H, "H")
        ldh = row_stride("H", Hv.shape[0], Hv.shape[1], Hv.strides[0], Hv.strides[1], N, nH)
        H_p = &Hv[0, 0]
    if c == C_GRU:
        drv = _not_none(drec, "drec")
        shape2("drec", drv.shape[0], drv.shape[1], N, GH)
        drec_p = &drv[0, 0]
    with nogil:
        k_run_back_steps(c, &steps[0, 0], steps.shape[0], &dH[0, 0], &dG[0, 0], &packed[0],
                         G_p, s_p, tc_p, H_p, ldh, drec_p, dc_p, nH)


cdef object _not_none(object array, str name):
    if array is None:
        raise ValueError(f"{name} is needed by this cell, not None")
    return array


# ---- the linear-chain CRF (crf.py): Viterbi and scaled forward-backward --
#
# Written in Cython alone (no C of their own): per row a loop over the steps
# and tags, where numpy needs a Python loop over the steps. Same maths as the
# numpy paths of crf.py, which stay the fallback (cupy, no build).

from libc.math cimport exp, log, INFINITY

ctypedef fused real_t:
    float
    double


cdef int _chain_shapes(Py_ssize_t B, Py_ssize_t T, Py_ssize_t n, Py_ssize_t n_lengths,
                       Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t n_start,
                       Py_ssize_t n_end) except -1:
    if n_lengths != B:
        raise ValueError(f"lengths must have {B} entries, not {n_lengths}")
    if t0 != n or t1 != n or n_start != n or n_end != n:
        raise ValueError(f"transitions must be ({n}, {n}) and start, end ({n},)")
    return 0


cdef int _check_lengths(const int32_t[::1] lengths, Py_ssize_t T) except -1:
    cdef Py_ssize_t b
    for b in range(lengths.shape[0]):
        if lengths[b] < 0 or lengths[b] > T:
            raise ValueError(f"lengths must be in [0, {T}]")
    return 0


def crf_viterbi(const float[:, :, ::1] emis not None, const int32_t[::1] lengths not None,
                const float[:, ::1] trans not None, const float[::1] start not None,
                const float[::1] end not None, int32_t[:, :, ::1] backpointers not None,
                int32_t[:, ::1] path not None):
    """Best path per row (crf.viterbi's maths, float32 with -inf for what is
    forbidden): emis (B, T, n), trans[i, j] (tag i then j), start, end (n,);
    backpointers (B, T, n) scratch; path (B, T) receives each row's tags up
    to its length. Ties go to the lowest tag index, as numpy's argmax."""
    cdef Py_ssize_t B = emis.shape[0], T = emis.shape[1], n = emis.shape[2]
    _chain_shapes(B, T, n, lengths.shape[0], trans.shape[0], trans.shape[1], start.shape[0],
                  end.shape[0])
    if backpointers.shape[0] != B or backpointers.shape[1] != T or backpointers.shape[2] != n:
        raise ValueError("backpointers must have the shape of emis")
    if path.shape[0] != B or path.shape[1] != T:
        raise ValueError("path must be (B, T)")
    _check_lengths(lengths, T)
    if n == 0:
        return
    cdef float *delta = <float *>PyMem_RawMalloc(2 * n * sizeof(float))
    if delta == NULL:
        raise MemoryError()
    cdef float *new = delta + n
    cdef float best, cand
    cdef Py_ssize_t b, t, i, j, L, arg
    with nogil:
        for b in range(B):
            L = lengths[b]
            if L == 0:
                continue
            for j in range(n):
                delta[j] = start[j] + emis[b, 0, j]
            for t in range(1, L):
                for j in range(n):
                    best = delta[0] + trans[0, j]
                    arg = 0
                    for i in range(1, n):
                        cand = delta[i] + trans[i, j]
                        if cand > best:
                            best = cand
                            arg = i
                    new[j] = best + emis[b, t, j]
                    backpointers[b, t, j] = <int32_t>arg
                for j in range(n):
                    delta[j] = new[j]
            best = delta[0] + end[0]
            arg = 0
            for j in range(1, n):
                cand = delta[j] + end[j]
                if cand > best:
                    best = cand
                    arg = j
            path[b, L - 1] = <int32_t>arg
            for t in range(L - 1, 0, -1):
                path[b, t - 1] = backpointers[b, t, path[b, t]]
    PyMem_RawFree(delta)


cdef inline double _shift(const real_t[:, :, ::1] emis, Py_ssize_t b, Py_ssize_t t,
                          Py_ssize_t n, double half) noexcept nogil:
    """The largest possible score of row b, step t (-inf if none is)."""
    cdef double top = -INFINITY
    cdef Py_ssize_t j
    for j in range(n):
        if emis[b, t, j] > half and emis[b, t, j] > top:
            top = emis[b, t, j]
    return top


cdef inline void _exp_row(const real_t[:, :, ::1] emis, Py_ssize_t b, Py_ssize_t t,
                          Py_ssize_t n, double half, double shift, double *out) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = exp(emis[b, t, j] - shift) if emis[b, t, j] > half else 0.0


cdef inline double _exp_vector(const real_t *scores, Py_ssize_t n, Py_ssize_t stride,
                               double half, double *out) noexcept nogil:
    """out = exp(scores - their max), 0 where impossible; returns that max
    (0 if none is possible)."""
    cdef double top = -INFINITY
    cdef Py_ssize_t k
    for k in range(n):
        if scores[k * stride] > half and scores[k * stride] > top:
            top = scores[k * stride]
    if top == -INFINITY:
        top = 0.0
    for k in range(n):
        out[k] = exp(scores[k * stride] - top) if scores[k * stride] > half else 0.0
    return top


def crf_forward_backward(const real_t[:, :, ::1] emis not None,
                         const int32_t[::1] lengths not None,
                         const real_t[:, ::1] trans not None, const real_t[::1] start not None,
                         const real_t[::1] end not None, real_t[:, :, ::1] log_alpha not None,
                         real_t[:, :, ::1] log_beta not None, real_t[::1] log_Z not None,
                         uint8_t[::1] lost not None, double log_zero):
    """crf._scaled_forward_backward's maths, in float64 per row: emis (B, T,
    n) and the constrained trans, start, end with log_zero where impossible;
    log_alpha and log_beta (B, T, n) must come filled with log_zero (only
    each row's steps are written), log_Z (B,). lost[b] is set to 1 where a
    row's messages became all zero (no valid path, or an underflow): those
    rows are to be computed again in log space."""
    cdef Py_ssize_t B = emis.shape[0], T = emis.shape[1], n = emis.shape[2]
    _chain_shapes(B, T, n, lengths.shape[0], trans.shape[0], trans.shape[1], start.shape[0],
                  end.shape[0])
    if (log_alpha.shape[0] != B or log_alpha.shape[1] != T or log_alpha.shape[2] != n
            or log_beta.shape[0] != B or log_beta.shape[1] != T or log_beta.shape[2] != n):
        raise ValueError("log_alpha and log_beta must have the shape of emis")
    if log_Z.shape[0] != B or lost.shape[0] != B:
        raise ValueError("log_Z and lost must have B entries")
    _check_lengths(lengths, T)
    if n == 0 or B == 0:
        return
    cdef double *buf = <double *>PyMem_RawMalloc((n * n + 6 * n) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    cdef double *P = buf
    cdef double *S = P + n * n
    cdef double *E = S + n
    cdef double *a = E + n
    cdef double *v = a + n
    cdef double *e = v + n
    cdef double *w = e + n
    cdef double half = log_zero / 2, t_top, s_top, e_top, shift, c, scale, z, acc
    cdef Py_ssize_t b, t, i, j, L
    cdef bint ok
    with nogil:
        t_top = _exp_vector(&trans[0, 0], n * n, 1, half, P)
        s_top = _exp_vector(&start[0], n, 1, half, S)
        e_top = _exp_vector(&end[0], n, 1, half, E)
        for b in range(B):
            L = lengths[b]
            lost[b] = 0
            if L == 0:
                log_Z[b] = 0.0
                continue
            ok = True
            scale = 0.0
            for t in range(L):
                shift = _shift(emis, b, t, n, half)
                if shift == -INFINITY:
                    ok = False
                    break
                _exp_row(emis, b, t, n, half, shift, e)
                if t == 0:
                    for j in range(n):
                        v[j] = S[j] * e[j]
                else:
                    for j in range(n):
                        acc = 0.0
                        for i in range(n):
                            acc = acc + a[i] * P[i * n + j]
                        v[j] = acc * e[j]
                c = 0.0
                for j in range(n):
                    if v[j] > c:
                        c = v[j]
                if not c > 0.0:
                    ok = False
                    break
                scale = scale + log(c) + shift + (t_top if t else s_top)
                for j in range(n):
                    a[j] = v[j] / c
                    if a[j] > 0.0:
                        acc = log(a[j]) + scale
                        log_alpha[b, t, j] = <real_t>(acc if acc > log_zero else log_zero)
            if ok:
                z = 0.0
                for j in range(n):
                    z = z + a[j] * E[j]
                ok = z > 0.0
            if not ok:
                lost[b] = 1
                continue
            z = scale + log(z) + e_top
            log_Z[b] = <real_t>(z if z > log_zero else log_zero)
            # Backward: beta_{L-1} = exp(end), then beta_t = P (e_{t+1} beta_{t+1}).
            scale = e_top
            for i in range(n):
                a[i] = E[i]
                if a[i] > 0.0:
                    log_beta[b, L - 1, i] = <real_t>(log(a[i]) + scale)
            for t in range(L - 2, -1, -1):
                shift = _shift(emis, b, t + 1, n, half)
                _exp_row(emis, b, t + 1, n, half, shift, e)
                for j in range(n):
                    w[j] = e[j] * a[j]
                c = 0.0
                for i in range(n):
                    acc = 0.0
                    for j in range(n):
                        acc = acc + P[i * n + j] * w[j]
                    v[i] = acc
                    if acc > c:
                        c = acc
                if not c > 0.0:
                    lost[b] = 1
                    break
                scale = scale + log(c) + t_top + shift
                for i in range(n):
                    a[i] = v[i] / c
                    if a[i] > 0.0:
                        acc = log(a[i]) + scale
                        log_beta[b, t, i] = <real_t>(acc if acc > log_zero else log_zero)
    PyMem_RawFree(buf)
