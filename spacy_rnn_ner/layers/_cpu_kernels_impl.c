/* The kernels declared in _cpu_kernels.h (see there).
 *
 * Transcendentals use a branch-free exp so that the compiler vectorises the
 * inner loops (with -fno-trapping-math). A translation unit of its own, so
 * that the code the compiler makes of them does not depend on the bindings.
 */
#include <math.h>
#include <string.h>

#include "_cpu_kernels.h"

/* exp(x) with relative error ~2e-7 on the clamped range. */
static inline float exp_(float x) {
    /* ternaries, not fminf: NaN must propagate; they vectorise as blends */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f;
    float fi = (t + 12582912.0f) - 12582912.0f; /* round to nearest, no libm */
    float f = t - fi;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    int32_t bits = ((int32_t)fi + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }

static inline float tanh_(float x) {
    /* 1 - 2 / (exp(2x) + 1), odd-symmetric to keep precision for x < 0 */
    float y = 1.0f - 2.0f / (exp_(2.0f * fabsf(x)) + 1.0f);
    return copysignf(y, x);
}

/* ---- kernels on raw pointers ------------------------------------------ */

CLONES KERNEL void lstm_fwd(float *restrict g, const float *restrict rec, const float *restrict c_prev,
                            float *restrict c, float *restrict tc, float *restrict h, ptrdiff_t n,
                            ptrdiff_t n_prev, ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        float *restrict gi = g + r * 4 * H, *restrict gf = gi + H, *restrict go = gf + H, *restrict gg = go + H;
        float *restrict cr = c + r * H, *restrict tcr = tc + r * H, *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict ri = rec + r * 4 * H;
            const float *restrict cp = c_prev + r * H;
            for (ptrdiff_t j = 0; j < 4 * H; j++) gi[j] += ri[j];
            for (ptrdiff_t j = 0; j < H; j++) {
                float i = sigmoid_(gi[j]), f = sigmoid_(gf[j]);
                float o = sigmoid_(go[j]), u = tanh_(gg[j]);
                float cc = f * cp[j] + i * u;
                float t = tanh_(cc);
                gi[j] = i; gf[j] = f; go[j] = o; gg[j] = u;
                cr[j] = cc; tcr[j] = t; hr[j] = o * t;
            }
        } else {
            for (ptrdiff_t j = 0; j < H; j++) {
                float i = sigmoid_(gi[j]), f = sigmoid_(gf[j]);
                float o = sigmoid_(go[j]), u = tanh_(gg[j]);
                float cc = i * u;
                float t = tanh_(cc);
                gi[j] = i; gf[j] = f; go[j] = o; gg[j] = u;
                cr[j] = cc; tcr[j] = t; hr[j] = o * t;
            }
        }
    }
}

/* dc (n, H) holds the carried cell gradient and is completed in place;
 * dg (n, 4H) receives the gate gradients; dc_prev (n_prev, H) += dc * f. */
CLONES KERNEL void lstm_bwd(const float *restrict dh, float *restrict dc, const float *restrict g,
                            const float *restrict c_prev, const float *restrict tc, float *restrict dg,
                            float *restrict dc_prev, ptrdiff_t n, ptrdiff_t n_prev,
                            ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        const float *restrict gi = g + r * 4 * H, *restrict gf = gi + H, *restrict go = gf + H, *restrict gg = go + H;
        float *restrict di = dg + r * 4 * H, *restrict df = di + H, *restrict dO = df + H, *restrict dG = dO + H;
        const float *restrict dhr = dh + r * H, *restrict tcr = tc + r * H;
        float *restrict dcr = dc + r * H;
        int has_prev = r < n_prev;
        const float *restrict cp = has_prev ? c_prev + r * H : NULL;
        float *restrict dcp = has_prev ? dc_prev + r * H : NULL;
        if (has_prev) {
            for (ptrdiff_t j = 0; j < H; j++) {
                float i = gi[j], f = gf[j], o = go[j], u = gg[j], t = tcr[j];
                float d = dcr[j] + dhr[j] * o * (1.0f - t * t);
                dcr[j] = d;
                di[j] = d * u * i * (1.0f - i);
                df[j] = d * cp[j] * f * (1.0f - f);
                dO[j] = dhr[j] * t * o * (1.0f - o);
                dG[j] = d * i * (1.0f - u * u);
                dcp[j] += d * f;
            }
        } else {
            for (ptrdiff_t j = 0; j < H; j++) {
                float i = gi[j], o = go[j], u = gg[j], t = tcr[j];
                float d = dcr[j] + dhr[j] * o * (1.0f - t * t);
                dcr[j] = d;
                di[j] = d * u * i * (1.0f - i);
                df[j] = 0.0f;
                dO[j] = dhr[j] * t * o * (1.0f - o);
                dG[j] = d * i * (1.0f - u * u);
            }
        }
    }
}

/* GRU: g = [r, z, n] (n, 3H) holds x-projections; rec (n_prev, 3H) holds
 * h_prev @ Wh.T; bh (H). Writes activations into g, rn = rec_n + bh, h. */
CLONES KERNEL void gru_fwd(float *restrict g, const float *restrict rec, const float *restrict bh,
                           const float *restrict h_prev, float *restrict rn, float *restrict h,
                           ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        float *restrict gr = g + r * 3 * H, *restrict gz = gr + H, *restrict gn = gz + H;
        float *restrict rnr = rn + r * H, *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict rr = rec + r * 3 * H, *restrict rz = rr + H, *restrict rnn = rz + H;
            const float *restrict hp = h_prev + r * H;
            for (ptrdiff_t j = 0; j < H; j++) {
                float rg = sigmoid_(gr[j] + rr[j]);
                float zg = sigmoid_(gz[j] + rz[j]);
                float q = rnn[j] + bh[j];
                float nn = tanh_(gn[j] + rg * q);
                gr[j] = rg; gz[j] = zg; gn[j] = nn; rnr[j] = q;
                hr[j] = nn + zg * (hp[j] - nn);
            }
        } else {
            for (ptrdiff_t j = 0; j < H; j++) {
                float rg = sigmoid_(gr[j]);
                float zg = sigmoid_(gz[j]);
                float q = bh[j];
                float nn = tanh_(gn[j] + rg * q);
                gr[j] = rg; gz[j] = zg; gn[j] = nn; rnr[j] = q;
                hr[j] = nn - zg * nn;
            }
        }
    }
}

/* Writes dg = d[x_r, x_z, x_n] and drec = d[x_r, x_z, rn] (n, 3H: the r
 * and z blocks are the same); dh_prev (n_prev, H) += dh * z. h_prev's rows
 * are ldh apart. */
CLONES KERNEL void gru_bwd(const float *restrict dh, const float *restrict g, const float *restrict rn,
                           const float *restrict h_prev, ptrdiff_t ldh, float *restrict dg,
                           float *restrict drec, float *restrict dh_prev, ptrdiff_t n,
                           ptrdiff_t n_prev, ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        const float *restrict gr = g + r * 3 * H, *restrict gz = gr + H, *restrict gn = gz + H;
        const float *restrict dhr = dh + r * H, *restrict rnr = rn + r * H;
        float *restrict gdr = dg + r * 3 * H, *restrict gdz = gdr + H, *restrict dn = gdz + H;
        float *restrict dr = drec + r * 3 * H, *restrict dz = dr + H, *restrict drn = dz + H;
        int has_prev = r < n_prev;
        const float *restrict hp = has_prev ? h_prev + r * ldh : NULL;
        float *restrict dhp = has_prev ? dh_prev + r * H : NULL;
        for (ptrdiff_t j = 0; j < H; j++) {
            float rg = gr[j], zg = gz[j], nn = gn[j], d = dhr[j];
            float prev = has_prev ? hp[j] : 0.0f;
            float dnp = d * (1.0f - zg) * (1.0f - nn * nn);
            float dzj = d * (prev - nn) * zg * (1.0f - zg), drj = dnp * rnr[j] * rg * (1.0f - rg);
            dn[j] = dnp;
            dz[j] = dzj;
            gdz[j] = dzj;
            dr[j] = drj;
            gdr[j] = drj;
            drn[j] = dnp * rg;
        }
        if (has_prev)
            for (ptrdiff_t j = 0; j < H; j++) dhp[j] += dhr[j] * gz[j];
    }
}

CLONES KERNEL void elman_fwd(const float *restrict g, const float *restrict rec, float *restrict h, ptrdiff_t n,
                             ptrdiff_t n_prev, ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        const float *restrict gr = g + r * H;
        float *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict rr = rec + r * H;
            for (ptrdiff_t j = 0; j < H; j++) hr[j] = tanh_(gr[j] + rr[j]);
        } else {
            for (ptrdiff_t j = 0; j < H; j++) hr[j] = tanh_(gr[j]);
        }
    }
}

/* h's rows are ldh apart. */
CLONES KERNEL void elman_bwd(const float *restrict dh, const float *restrict h, ptrdiff_t ldh,
                             float *restrict dg, ptrdiff_t n, ptrdiff_t H) {
    for (ptrdiff_t r = 0; r < n; r++) {
        const float *restrict hr = h + r * ldh;
        const float *restrict dhr = dh + r * H;
        float *restrict dgr = dg + r * H;
        for (ptrdiff_t j = 0; j < H; j++) dgr[j] = dhr[j] * (1.0f - hr[j] * hr[j]);
    }
}

/* ---- LSTM step with its own recurrent product (AVX-512) ----------------
 *
 * For small batches the recurrent product h_prev @ Wh.T of one step (e.g.
 * 64 x 128 @ 128 x 512) runs at ~60% of the matmul peak in OpenBLAS, which
 * repacks Wh on every call. Here Wh is packed once per forward pass into
 * panels of 16 hidden units x 4 gates (64 columns, one AVX-512 register per
 * gate), and a 6-row x 64-column register tile of the product gets the gate
 * arithmetic applied while still in registers: the product is never written
 * out. Only built by GCC on x86-64; chosen at run time when the CPU has
 * AVX-512F (`HAS_PACKED`), otherwise the layer keeps numpy's matmul.
 */
#ifdef HAVE_PACKED
#include <immintrin.h>

/* Whether this CPU runs the AVX-512 kernels. */
KERNEL int cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}


#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

/* The same polynomial as exp_ above, 16 lanes at a time. */
AVX512 INLINE __m512 exp16(__m512 x) {
    /* max/min return their second operand when one is NaN: NaN propagates */
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    __m512 fi = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, fi);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, fi);
}

AVX512 INLINE __m512 sigmoid16(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

AVX512 INLINE __m512 tanh16(__m512 x) {
    __m512i sign_mask = _mm512_set1_epi32((int)0x80000000u);
    __m512i xi = _mm512_castps_si512(x);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign_mask, xi));
    __m512 e = exp16(_mm512_add_ps(ax, ax));
    __m512 y = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                             _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    __m512i s = _mm512_and_si512(sign_mask, xi);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), s));
}

/* Lanes of a register that hold one of `left` remaining columns or units. */
static inline __mmask16 lanes(ptrdiff_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

/* W = [Wx | Wh] (G H, nI + H), the weights of one step of a cell with G
 * gates, in panels of U hidden units x G gates: packed[(u * K + k) * G U +
 * q U + l] = W[q H + U u + l, k], K = nI + H, zero for units U u + l >= H.
 * One AVX-512 register holds 16 units of a gate: LSTM U = 16 (4 registers
 * per row), GRU U = 16 (3), Elman U = 64 (4). */
KERNEL void step_pack(const float *restrict Wx, const float *restrict Wh, float *restrict packed,
                      ptrdiff_t nI, ptrdiff_t H, int G, int U) {
    ptrdiff_t n_blocks = (H + U - 1) / U, K = nI + H;
    for (ptrdiff_t u = 0; u < n_blocks; u++)
        for (ptrdiff_t k = 0; k < K; k++) {
            float *dst = packed + (u * K + k) * G * U;
            for (int q = 0; q < G; q++)
                for (int l = 0; l < U; l++) {
                    ptrdiff_t unit = U * u + l;
                    dst[q * U + l] = unit >= H ? 0.0f
                                     : k < nI ? Wx[(q * H + unit) * nI + k]
                                              : Wh[(q * H + unit) * H + k - nI];
                }
        }
}

/* acc[r][q] += sum_k a[r * lda + k] * panel[k * 64 + 16 q ...], rows r < mr */
#define TILE_PRODUCT(acc, a, lda, K, panel)                                         \
    for (ptrdiff_t k = 0; k < (K); k++) {                                          \
        const float *bk = (panel) + k * 64;                                         \
        __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);             \
        __m512 b2 = _mm512_loadu_ps(bk + 32), b3 = _mm512_loadu_ps(bk + 48);        \
        for (int r = 0; r < mr; r++) {                                              \
            __m512 ar = _mm512_set1_ps((a)[r * (lda) + k]);                         \
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);                         \
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);                         \
            acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);                         \
            acc[r][3] = _mm512_fmadd_ps(ar, b3, acc[r][3]);                         \
        }                                                                           \
    }

/* The products of a whole-step tile with its inputs: x rows r0 .. r0 + mr - 1
 * with the panel's first nI rows, then (when `has_prev`) the same rows of
 * h_prev, ld apart, with its next H rows. Uses the tile's own arguments. */
#define STEP_PRODUCTS(acc)                                              \
    TILE_PRODUCT(acc, x + r0 * nI, nI, nI, panel)                       \
    if (has_prev) {                                                     \
        const float *ph = panel + nI * 64;                              \
        TILE_PRODUCT(acc, h_prev + r0 * ld, ld, H, ph)                  \
    }

/* Rows r0 .. r0 + mr - 1 of a step, units 16 u .. 16 u + 15: the products
 * with x (and h_prev when `has_prev`), then the gates, from registers. */
AVX512 INLINE void lstm_tile(int mr, int has_prev, const float *restrict x,
                             const float *restrict h_prev, const float *restrict panel,
                             const float *restrict bias, const float *restrict c_prev,
                             float *restrict g, float *restrict c, float *restrict tc,
                             float *restrict h, ptrdiff_t r0, ptrdiff_t u, __mmask16 m,
                             ptrdiff_t nI, ptrdiff_t H, ptrdiff_t ld) {
    ptrdiff_t j = 16 * u;
    __m512 acc[MR][4];
    for (int q = 0; q < 4; q++) {
        __m512 bq = _mm512_maskz_loadu_ps(m, bias + q * H + j);
        for (int r = 0; r < mr; r++) acc[r][q] = bq;
    }
    STEP_PRODUCTS(acc)
    for (int r = 0; r < mr; r++) {
        ptrdiff_t row = r0 + r;
        __m512 i = sigmoid16(acc[r][0]), f = sigmoid16(acc[r][1]);
        __m512 o = sigmoid16(acc[r][2]), v = tanh16(acc[r][3]);
        __m512 cc = _mm512_mul_ps(i, v);
        if (has_prev) cc = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c_prev + row * H + j), cc);
        __m512 t = tanh16(cc);
        if (g != NULL) {
            float *gr = g + row * 4 * H + j;
            _mm512_mask_storeu_ps(gr, m, i);
            _mm512_mask_storeu_ps(gr + H, m, f);
            _mm512_mask_storeu_ps(gr + 2 * H, m, o);
            _mm512_mask_storeu_ps(gr + 3 * H, m, v);
            _mm512_mask_storeu_ps(tc + row * H + j, m, t);
        }
        _mm512_mask_storeu_ps(c + row * H + j, m, cc);
        _mm512_mask_storeu_ps(h + row * ld + j, m, _mm512_mul_ps(o, t));
    }
}

/* C (M, N) = [C +] A (M, K) @ B (K, N), B packed by pack_b into panels of 64
 * columns: packed[(v * K + k) * 64 + l] = B[k, 64 v + l], zero past N.
 * A and C are C-contiguous with K and N columns. */
KERNEL void pack_b(const float *restrict B, float *restrict packed, ptrdiff_t K, ptrdiff_t N) {
    for (ptrdiff_t v = 0; v * 64 < N; v++)
        for (ptrdiff_t k = 0; k < K; k++) {
            float *dst = packed + (v * K + k) * 64;
            for (ptrdiff_t l = 0; l < 64; l++) {
                ptrdiff_t col = 64 * v + l;
                dst[l] = col < N ? B[k * N + col] : 0.0f;
            }
        }
}

/* C[r, col + c] (+)= sum_k A[r, k] panel[k, c] for rows r < mr and the first
 * 16 nq columns from col. Columns at or past N are neither read nor written
 * (`tail`: the last 16 columns of the tile are not all below N). */
AVX512 INLINE void gemm_tile(int mr, int nq, int tail, const float *restrict A,
                             const float *restrict panel, float *restrict C, ptrdiff_t K,
                             ptrdiff_t N, ptrdiff_t col, int accumulate) {
    __mmask16 m[4];
    for (int q = 0; q < nq; q++) m[q] = lanes(N - col - 16 * q);
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nq; q++) acc[r][q] = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *bk = panel + k * 64;
        __m512 bq[4];
        for (int q = 0; q < nq; q++)
            bq[q] = tail && q == nq - 1 ? _mm512_maskz_loadu_ps(m[q], bk + 16 * q)
                                        : _mm512_loadu_ps(bk + 16 * q);
        for (int r = 0; r < mr; r++) {
            __m512 ar = _mm512_set1_ps(A[r * K + k]);
            for (int q = 0; q < nq; q++) acc[r][q] = _mm512_fmadd_ps(ar, bq[q], acc[r][q]);
        }
    }
    for (int q = 0; q < nq; q++)
        for (int r = 0; r < mr; r++) {
            float *c = C + r * N + col + 16 * q;
            __m512 v = acc[r][q];
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[q], c));
            _mm512_mask_storeu_ps(c, m[q], v);
        }
}

/* Tiles for rows [0, M) and the columns [col, col + 64) of C (fewer at its
 * end): the tile sizes become constants, so acc stays in registers. */
AVX512 INLINE void gemm_panel(const float *restrict A, const float *restrict panel,
                              float *restrict C, ptrdiff_t M, ptrdiff_t K, ptrdiff_t N,
                              ptrdiff_t col, int accumulate) {
    ptrdiff_t width = N - col < 64 ? N - col : 64;
    int nq = (int)((width + 15) / 16), tail = width % 16 != 0;
    for (ptrdiff_t r0 = 0; r0 < M; r0 += MR) {
        int mr = M - r0 < MR ? (int)(M - r0) : MR;
        const float *a = A + r0 * K;
        float *c = C + r0 * N;
#define CASE(MRV, NQV)                                                              \
    case MRV * 16 + NQV * 2:                                                        \
        gemm_tile(MRV, NQV, 0, a, panel, c, K, N, col, accumulate); break;          \
    case MRV * 16 + NQV * 2 + 1:                                                    \
        gemm_tile(MRV, NQV, 1, a, panel, c, K, N, col, accumulate); break;
#define CASES(MRV) CASE(MRV, 1) CASE(MRV, 2) CASE(MRV, 3) CASE(MRV, 4)
        switch (mr * 16 + nq * 2 + tail) {
            CASES(1) CASES(2) CASES(3) CASES(4) CASES(5) CASES(6)
            default: break;
        }
#undef CASES
#undef CASE
    }
}

/* C (M, N) (+)= A (M, K) @ B, B from pack_b. */
AVX512 KERNEL void gemm_packed(const float *restrict A, const float *restrict packed,
                               float *restrict C, ptrdiff_t M, ptrdiff_t K, ptrdiff_t N,
                               int accumulate) {
    for (ptrdiff_t v = 0; v * 64 < N; v++)
        gemm_panel(A, packed + v * K * 64, C, M, K, N, 64 * v, accumulate);
}

/* ---- Weight gradients: C (M, nX + nH) (+)= A.T @ [X | H[prev]] ----------
 * A (K, M): the gate gradients of all K rows (lda apart); row k of the right
 * operand is X[k] (nX columns) then H[prev[k]] (nH columns), zeros where
 * prev[k] == K (a sequence's first step). Blocks of WG_KB rows: the right
 * operand's rows are gathered straight into 64-column panels (neither
 * [X | H_prev] nor H_prev is ever built) and A's block into strips of 6 of
 * its columns; each 6 x 64 tile of C then runs over the block as in
 * gemm_packed. */

static void wgrad_pack(const float *restrict X, ptrdiff_t ldx, ptrdiff_t nX,
                       const float *restrict Hs, ptrdiff_t ldh, ptrdiff_t nH,
                       const int32_t *restrict prev, ptrdiff_t K, ptrdiff_t k0,
                       ptrdiff_t kb, float *restrict packed) {
    ptrdiff_t n = nX + nH, n_panels = (n + 63) / 64;
    for (ptrdiff_t kk = 0; kk < kb; kk++) {
        ptrdiff_t k = k0 + kk;
        const float *hrow = nH && prev[k] < K ? Hs + (ptrdiff_t)prev[k] * ldh : NULL;
        for (ptrdiff_t v = 0; v < n_panels; v++) {
            float *dst = packed + (v * kb + kk) * 64;
            ptrdiff_t c0 = 64 * v, c1 = c0 + 64;
            /* columns [c0, c1): X below nX, then H, then zeros */
            ptrdiff_t x_end = c1 < nX ? c1 : nX;
            if (c0 < x_end) memcpy(dst, X + k * ldx + c0, (x_end - c0) * 4);
            ptrdiff_t h0 = c0 > nX ? c0 : nX, h_end = c1 < n ? c1 : n;
            if (h0 < h_end) {
                if (hrow) memcpy(dst + h0 - c0, hrow + h0 - nX, (h_end - h0) * 4);
                else memset(dst + h0 - c0, 0, (h_end - h0) * 4);
            }
            ptrdiff_t z0 = c0 > n ? c0 : n;
            if (z0 < c1) memset(dst + z0 - c0, 0, (c1 - z0) * 4);
        }
    }
}

/* A's rows k0 .. k0 + kb - 1 as strips of MR columns: strips[(t kb + kk) MR
 * + r] = A[k0 + kk, MR t + r], zero past M. */
static void wgrad_pack_a(const float *restrict A, ptrdiff_t lda, ptrdiff_t M,
                         ptrdiff_t k0, ptrdiff_t kb, float *restrict strips) {
    ptrdiff_t n_full = M / MR, rest = M - n_full * MR;
    for (ptrdiff_t kk = 0; kk < kb; kk++) {
        const float *a = A + (k0 + kk) * lda;
        for (ptrdiff_t t = 0; t < n_full; t++) {
            float *dst = strips + (t * kb + kk) * MR;
            for (int r = 0; r < MR; r++) dst[r] = a[t * MR + r];
        }
        if (rest) {
            float *dst = strips + (n_full * kb + kk) * MR;
            for (int r = 0; r < MR; r++) dst[r] = r < rest ? a[n_full * MR + r] : 0.0f;
        }
    }
}

/* C[r, col ..] (+)= sum_kk strip[kk, r] panel[kk, ..] for r < mr and 16 nq
 * columns (masked past n). */
AVX512 INLINE void wgrad_tile(int mr, int nq, const float *restrict strip, ptrdiff_t kb,
                              const float *restrict panel, float *restrict C, ptrdiff_t n,
                              ptrdiff_t col, int load) {
    __mmask16 m[4];
    for (int q = 0; q < nq; q++) m[q] = lanes(n - col - 16 * q);
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nq; q++)
            acc[r][q] = load ? _mm512_maskz_loadu_ps(m[q], C + r * n + col + 16 * q)
                             : _mm512_setzero_ps();
    for (ptrdiff_t kk = 0; kk < kb; kk++) {
        const float *bk = panel + kk * 64;
        __m512 bq[4];
        for (int q = 0; q < nq; q++) bq[q] = _mm512_loadu_ps(bk + 16 * q);
        const float *sk = strip + kk * MR;
        for (int r = 0; r < mr; r++) {
            __m512 ar = _mm512_set1_ps(sk[r]);
            for (int q = 0; q < nq; q++) acc[r][q] = _mm512_fmadd_ps(ar, bq[q], acc[r][q]);
        }
    }
    for (int q = 0; q < nq; q++)
        for (int r = 0; r < mr; r++)
            _mm512_mask_storeu_ps(C + r * n + col + 16 * q, m[q], acc[r][q]);
}

/* packed: 64-column panels of WG_KB rows; strips: WG_KB x M rounded up to MR. */
AVX512 KERNEL void wgrad(const float *restrict A, ptrdiff_t lda, ptrdiff_t M,
                         const float *restrict X, ptrdiff_t ldx, ptrdiff_t nX,
                         const float *restrict Hs, ptrdiff_t ldh, ptrdiff_t nH,
                         const int32_t *restrict prev, ptrdiff_t K, float *restrict C,
                         int accumulate, float *restrict packed, float *restrict strips) {
    ptrdiff_t n = nX + nH;
    if (!accumulate && K == 0)
        for (ptrdiff_t i = 0; i < M * n; i++) C[i] = 0.0f;
    for (ptrdiff_t k0 = 0; k0 < K; k0 += WG_KB) {
        ptrdiff_t kb = K - k0 < WG_KB ? K - k0 : WG_KB;
        int load = accumulate || k0 > 0;
        wgrad_pack(X, ldx, nX, Hs, ldh, nH, prev, K, k0, kb, packed);
        wgrad_pack_a(A, lda, M, k0, kb, strips);
        for (ptrdiff_t v = 0; v * 64 < n; v++) {
            const float *panel = packed + v * kb * 64;
            ptrdiff_t col = 64 * v, width = n - col < 64 ? n - col : 64;
            int nq = (int)((width + 15) / 16);
            for (ptrdiff_t r0 = 0; r0 < M; r0 += MR) {
                int mr = M - r0 < MR ? (int)(M - r0) : MR;
                const float *strip = strips + (r0 / MR) * kb * MR;
                float *c = C + r0 * n;
#define CASE(MRV, NQV) \
    case MRV * 8 + NQV: wgrad_tile(MRV, NQV, strip, kb, panel, c, n, col, load); break;
#define CASES(MRV) CASE(MRV, 1) CASE(MRV, 2) CASE(MRV, 3) CASE(MRV, 4)
                switch (mr * 8 + nq) {
                    CASES(1) CASES(2) CASES(3) CASES(4) CASES(5) CASES(6)
                    default: break;
                }
#undef CASES
#undef CASE
            }
        }
    }
}

/* TILE(rows) for the row tiles from r0 up to end: MR rows at a time, then
 * the rest, each call with a constant row count. */
#define ROW_TILES(r0, end, TILE)                 \
    for (; (r0) + MR <= (end); (r0) += MR) TILE(MR); \
    switch ((end) - (r0)) {                        \
        case 5: TILE(5); break;                    \
        case 4: TILE(4); break;                    \
        case 3: TILE(3); break;                    \
        case 2: TILE(2); break;                    \
        case 1: TILE(1); break;                    \
        default: break;                            \
    }

/* GRU rows r0 .. r0 + mr - 1, units 16 u .. 16 u + 15. The panel rows hold
 * [r, z, n] of Wx, then of Wh; the n gate keeps the x and the h products
 * apart (acc[r][2] and acc[r][3]): n = tanh(x_n + r * (h Wh_n + bh)). */
AVX512 INLINE void gru_tile(int mr, int has_prev, const float *restrict x,
                            const float *restrict h_prev, const float *restrict panel,
                            const float *restrict bias, const float *restrict bh,
                            float *restrict g, float *restrict rn, float *restrict h,
                            ptrdiff_t r0, ptrdiff_t u, __mmask16 m, ptrdiff_t nI,
                            ptrdiff_t H, ptrdiff_t ld) {
    ptrdiff_t j = 16 * u;
    __m512 acc[MR][4];
    for (int q = 0; q < 4; q++) {
        __m512 bq = _mm512_maskz_loadu_ps(m, q < 3 ? bias + q * H + j : bh + j);
        for (int r = 0; r < mr; r++) acc[r][q] = bq;
    }
    const float *xa = x + r0 * nI;
    for (ptrdiff_t k = 0; k < nI; k++) {
        const float *bk = panel + k * 48;
        __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32);
        for (int r = 0; r < mr; r++) {
            __m512 ar = _mm512_set1_ps(xa[r * nI + k]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);
        }
    }
    const float *ha = h_prev + r0 * ld;
    if (has_prev)
        for (ptrdiff_t k = 0; k < H; k++) {
            const float *bk = panel + (nI + k) * 48;
            __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32);
            for (int r = 0; r < mr; r++) {
                __m512 ar = _mm512_set1_ps(ha[r * ld + k]);
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
                acc[r][3] = _mm512_fmadd_ps(ar, b2, acc[r][3]);
            }
        }
    for (int r = 0; r < mr; r++) {
        ptrdiff_t row = r0 + r;
        __m512 rg = sigmoid16(acc[r][0]), zg = sigmoid16(acc[r][1]);
        __m512 nn = tanh16(_mm512_fmadd_ps(rg, acc[r][3], acc[r][2]));
        /* h = n + z (h_prev - n), h_prev = 0 without a previous state */
        __m512 hp = has_prev ? _mm512_maskz_loadu_ps(m, ha + r * ld + j) : _mm512_setzero_ps();
        __m512 hv = _mm512_fmadd_ps(zg, _mm512_sub_ps(hp, nn), nn);
        if (g != NULL) {
            float *gr = g + row * 3 * H + j;
            _mm512_mask_storeu_ps(gr, m, rg);
            _mm512_mask_storeu_ps(gr + H, m, zg);
            _mm512_mask_storeu_ps(gr + 2 * H, m, nn);
            _mm512_mask_storeu_ps(rn + row * H + j, m, acc[r][3]);
        }
        _mm512_mask_storeu_ps(h + row * ld + j, m, hv);
    }
}

/* One whole GRU step (see lstm_step): writes h (n, H) and, when g is not
 * NULL, the activations r, z, n into g (n, 3H) and h Wh_n + bh into rn, as
 * gru_fwd does. `packed` is step_pack(G = 3, U = 16); bias (3H), bh (H). */
AVX512 static void gru_step(const float *restrict x, const float *restrict h_prev,
                            const float *restrict packed, const float *restrict bias,
                            const float *restrict bh, float *restrict g, float *restrict rn,
                            float *restrict h, ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t nI,
                            ptrdiff_t H, ptrdiff_t ld) {
    for (ptrdiff_t u = 0; u * 16 < H; u++) {
        __mmask16 m = lanes(H - 16 * u);
        const float *panel = packed + u * (nI + H) * 48;
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            ptrdiff_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
#define TILE(rows) gru_tile(rows, has_prev, x, h_prev, panel, bias, bh, g, rn, h, r0, u, m, nI, H, ld)
            ROW_TILES(r0, end, TILE)
#undef TILE
        }
    }
}

/* Elman rows r0 .. r0 + mr - 1, units 64 u .. 64 u + 63: h = tanh(...). */
AVX512 INLINE void elman_tile(int mr, int has_prev, const float *restrict x,
                              const float *restrict h_prev, const float *restrict panel,
                              const float *restrict bias, float *restrict h, ptrdiff_t r0,
                              ptrdiff_t u, ptrdiff_t nI, ptrdiff_t H, ptrdiff_t ld) {
    ptrdiff_t j = 64 * u;
    __mmask16 m[4];
    __m512 acc[MR][4];
    for (int q = 0; q < 4; q++) {
        m[q] = lanes(H - j - 16 * q);
        __m512 bq = _mm512_maskz_loadu_ps(m[q], bias + j + 16 * q);
        for (int r = 0; r < mr; r++) acc[r][q] = bq;
    }
    STEP_PRODUCTS(acc)
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < 4; q++)
            _mm512_mask_storeu_ps(h + (r0 + r) * ld + j + 16 * q, m[q], tanh16(acc[r][q]));
}

/* One whole Elman step: h = tanh(x Wx.T + h_prev Wh.T + b) for n rows (the
 * first n_prev with a previous state). `packed` is step_pack(G = 1, U = 64). */
AVX512 static void elman_step(const float *restrict x, const float *restrict h_prev,
                              const float *restrict packed, const float *restrict bias,
                              float *restrict h, ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t nI,
                              ptrdiff_t H, ptrdiff_t ld) {
    for (ptrdiff_t u = 0; u * 64 < H; u++) {
        const float *panel = packed + u * (nI + H) * 64;
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            ptrdiff_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
#define TILE(rows) elman_tile(rows, has_prev, x, h_prev, panel, bias, h, r0, u, nI, H, ld)
            ROW_TILES(r0, end, TILE)
#undef TILE
        }
    }
}

/* One whole LSTM step: for its n rows x (n, nI) and the first n_prev rows'
 * previous h_prev and c_prev, writes c and h (n, H) and, when g is not NULL
 * (training), the activations i, f, o, tanh(u) into g (n, 4H) and tanh(c)
 * into tc, as lstm_fwd does. `packed` is step_pack(G = 4, U = 16), bias (4H). */
AVX512 static void lstm_step(const float *restrict x, const float *restrict h_prev,
                             const float *restrict packed, const float *restrict bias,
                             const float *restrict c_prev, float *restrict g, float *restrict c,
                             float *restrict tc, float *restrict h, ptrdiff_t n,
                             ptrdiff_t n_prev, ptrdiff_t nI, ptrdiff_t H, ptrdiff_t ld) {
    for (ptrdiff_t u = 0; u * 16 < H; u++) {
        __mmask16 m = lanes(H - 16 * u);
        const float *panel = packed + u * (nI + H) * 64;
        /* rows with a previous state first, then the others */
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            ptrdiff_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
#define TILE(rows) lstm_tile(rows, has_prev, x, h_prev, panel, bias, c_prev, g, c, tc, h, r0, u, m, nI, H, ld)
            ROW_TILES(r0, end, TILE)
#undef TILE
        }
    }
}
#endif

#ifdef HAVE_PACKED
/* All steps of one direction: steps[s] = (start, size, prev_start, n_prev)
 * in reading order (rows of the packed, time-major batch; see rnn.py). The
 * buffers hold all N rows: X (N, nI), Hs (N, H) with rows ld floats apart
 * (a column block of the layer's output), state (N, H): the LSTM
 * cell or the GRU's rn; G (N, gates H) and TC (N, H) only when training
 * (else NULL). `packed` from step_pack. */
AVX512 KERNEL void run_steps(Cell cell, const float *restrict X, float *restrict Hs,
                             const float *restrict packed, const float *restrict bias,
                             const float *restrict bh, const int64_t *restrict steps,
                             ptrdiff_t n_steps, float *restrict G, float *restrict state,
                             float *restrict TC, ptrdiff_t nI, ptrdiff_t H, ptrdiff_t ld) {
    int n_gates = cell_gates(cell);
    for (ptrdiff_t s = 0; s < n_steps; s++) {
        ptrdiff_t start = steps[4 * s], size = steps[4 * s + 1];
        ptrdiff_t p_start = steps[4 * s + 2], n_prev = steps[4 * s + 3];
        const float *x = X + start * nI, *h_prev = Hs + p_start * ld;
        float *h = Hs + start * ld;
        float *g = G != NULL ? G + start * n_gates * H : NULL;
        if (cell == CELL_LSTM)
            lstm_step(x, h_prev, packed, bias, state + p_start * H, g, state + start * H,
                      TC != NULL ? TC + start * H : NULL, h, size, n_prev, nI, H, ld);
        else if (cell == CELL_GRU)
            gru_step(x, h_prev, packed, bias, bh, g, g != NULL ? state + start * H : NULL, h,
                     size, n_prev, nI, H, ld);
        else
            elman_step(x, h_prev, packed, bias, h, size, n_prev, nI, H, ld);
    }
}

/* Backprop through all steps of one direction, last step first: each step's
 * gate kernel (as lstm_bwd / gru_bwd / elman_bwd), then dh_prev += dR @ Wh
 * with Wh packed by pack_b (dR: dG, or the GRU's drec). dH (N, H) holds the
 * gradients of the outputs and receives those of the previous states; the
 * rest as in run_steps (state: the LSTM cell or the GRU's rn; Hs: the
 * outputs, rows ld apart; dc: the LSTM's cell gradient, zeros on entry). */
AVX512 KERNEL void run_back_steps(Cell cell, const int64_t *restrict steps, ptrdiff_t n_steps,
                                  float *restrict dH, float *restrict dG,
                                  const float *restrict Wh_packed, const float *restrict G,
                                  const float *restrict state, const float *restrict TC,
                                  const float *restrict Hs, ptrdiff_t ldh,
                                  float *restrict drec, float *restrict dc, ptrdiff_t H) {
    ptrdiff_t GH = cell_gates(cell) * H;
    for (ptrdiff_t s = n_steps - 1; s >= 0; s--) {
        ptrdiff_t start = steps[4 * s], size = steps[4 * s + 1];
        ptrdiff_t p_start = steps[4 * s + 2], n_prev = steps[4 * s + 3];
        float *dh = dH + start * H, *dh_prev = dH + p_start * H, *dg = dG + start * GH;
        const float *dr = dg;
        if (cell == CELL_LSTM) {
            lstm_bwd(dh, dc + start * H, G + start * GH, state + p_start * H, TC + start * H, dg,
                     dc + p_start * H, size, n_prev, H);
        } else if (cell == CELL_GRU) {
            gru_bwd(dh, G + start * GH, state + start * H, Hs + p_start * ldh, ldh, dg,
                    drec + start * GH, dh_prev, size, n_prev, H);
            dr = drec + start * GH;
        } else {
            elman_bwd(dh, Hs + start * ldh, ldh, dg, size, H);
        }
        if (n_prev) gemm_packed(dr, Wh_packed, dh_prev, n_prev, GH, H, 1);
    }
}
#endif

#ifndef HAVE_PACKED
/* Not built: see _cpu_kernels.h. */
KERNEL int cpu_has_avx512f(void) { return 0; }
KERNEL void step_pack(const float *restrict Wx, const float *restrict Wh, float *restrict packed,
                      ptrdiff_t nI, ptrdiff_t H, int G, int U) {}
KERNEL void pack_b(const float *restrict B, float *restrict packed, ptrdiff_t K, ptrdiff_t N) {}
KERNEL void gemm_packed(const float *restrict A, const float *restrict packed, float *restrict C,
                        ptrdiff_t M, ptrdiff_t K, ptrdiff_t N, int accumulate) {}
KERNEL void wgrad(const float *restrict A, ptrdiff_t lda, ptrdiff_t M, const float *restrict X,
                  ptrdiff_t ldx, ptrdiff_t nX, const float *restrict Hs, ptrdiff_t ldh,
                  ptrdiff_t nH, const int32_t *restrict prev, ptrdiff_t K, float *restrict C,
                  int accumulate, float *restrict packed, float *restrict strips) {}
KERNEL void run_steps(Cell cell, const float *restrict X, float *restrict Hs,
                      const float *restrict packed, const float *restrict bias,
                      const float *restrict bh, const int64_t *restrict steps, ptrdiff_t n_steps,
                      float *restrict G, float *restrict state, float *restrict TC, ptrdiff_t nI,
                      ptrdiff_t H, ptrdiff_t ld) {}
KERNEL void run_back_steps(Cell cell, const int64_t *restrict steps, ptrdiff_t n_steps,
                           float *restrict dH, float *restrict dG,
                           const float *restrict Wh_packed, const float *restrict G,
                           const float *restrict state, const float *restrict TC,
                           const float *restrict Hs, ptrdiff_t ldh, float *restrict drec,
                           float *restrict dc, ptrdiff_t H) {}
#endif
