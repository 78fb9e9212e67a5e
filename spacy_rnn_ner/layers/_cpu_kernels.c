/* RNN kernels for the CPU, float32.
 *
 * Gate kernels (*_fwd, *_bwd): the gate arithmetic of one time step, in one
 * pass over the step's rows instead of the dozen numpy passes of `cells.py`,
 * next to numpy's matmul. Transcendentals use a branch-free exp so that the
 * compiler vectorises the inner loops (with -fno-trapping-math);
 * `target_clones` builds AVX-512, AVX2 and baseline versions and picks one
 * at load time.
 *
 * AVX-512 kernels (HAS_PACKED, below): whole steps forward (products and
 * gates in one kernel, all steps of a direction in one call), the backward
 * steps of a direction in one call, a small matrix product with packed
 * weights, and the weight gradients dG.T @ [X | H_prev]; compiled for
 * AVX-512F only, used only where the CPU has it.
 *
 * Buffers are float32 arrays taken through the buffer protocol; each binding
 * checks dtype, number of dimensions, shape and strides against its size
 * arguments, with sizes multiplied without overflow, before any kernel runs.
 * The layouts are those of `cells.py`.
 *
 * Portable C99 (gcc, clang, MSVC; x86-64 and aarch64): only the AVX-512 part
 * and the target clones need gcc on x86-64, and are left out elsewhere.
 * Build with -DPACKED_OFF or -DCLONES_OFF to leave them out anywhere (CI
 * tests such a build).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define restrict __restrict
#endif

/* The cell, as the bindings take it (module constants CELL_ELMAN, ...). */
typedef enum { CELL_ELMAN = 0, CELL_GRU = 1, CELL_LSTM = 2 } Cell;

#if !defined(CLONES_OFF) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HAVE_CLONES 1
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

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

CLONES static void lstm_fwd(float *restrict g, const float *restrict rec, const float *restrict c_prev,
                            float *restrict c, float *restrict tc, float *restrict h, Py_ssize_t n,
                            Py_ssize_t n_prev, Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        float *restrict gi = g + r * 4 * H, *restrict gf = gi + H, *restrict go = gf + H, *restrict gg = go + H;
        float *restrict cr = c + r * H, *restrict tcr = tc + r * H, *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict ri = rec + r * 4 * H;
            const float *restrict cp = c_prev + r * H;
            for (Py_ssize_t j = 0; j < 4 * H; j++) gi[j] += ri[j];
            for (Py_ssize_t j = 0; j < H; j++) {
                float i = sigmoid_(gi[j]), f = sigmoid_(gf[j]);
                float o = sigmoid_(go[j]), u = tanh_(gg[j]);
                float cc = f * cp[j] + i * u;
                float t = tanh_(cc);
                gi[j] = i; gf[j] = f; go[j] = o; gg[j] = u;
                cr[j] = cc; tcr[j] = t; hr[j] = o * t;
            }
        } else {
            for (Py_ssize_t j = 0; j < H; j++) {
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
CLONES static void lstm_bwd(const float *restrict dh, float *restrict dc, const float *restrict g,
                            const float *restrict c_prev, const float *restrict tc, float *restrict dg,
                            float *restrict dc_prev, Py_ssize_t n, Py_ssize_t n_prev,
                            Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *restrict gi = g + r * 4 * H, *restrict gf = gi + H, *restrict go = gf + H, *restrict gg = go + H;
        float *restrict di = dg + r * 4 * H, *restrict df = di + H, *restrict dO = df + H, *restrict dG = dO + H;
        const float *restrict dhr = dh + r * H, *restrict tcr = tc + r * H;
        float *restrict dcr = dc + r * H;
        int has_prev = r < n_prev;
        const float *restrict cp = has_prev ? c_prev + r * H : NULL;
        float *restrict dcp = has_prev ? dc_prev + r * H : NULL;
        if (has_prev) {
            for (Py_ssize_t j = 0; j < H; j++) {
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
            for (Py_ssize_t j = 0; j < H; j++) {
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
CLONES static void gru_fwd(float *restrict g, const float *restrict rec, const float *restrict bh,
                           const float *restrict h_prev, float *restrict rn, float *restrict h,
                           Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        float *restrict gr = g + r * 3 * H, *restrict gz = gr + H, *restrict gn = gz + H;
        float *restrict rnr = rn + r * H, *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict rr = rec + r * 3 * H, *restrict rz = rr + H, *restrict rnn = rz + H;
            const float *restrict hp = h_prev + r * H;
            for (Py_ssize_t j = 0; j < H; j++) {
                float rg = sigmoid_(gr[j] + rr[j]);
                float zg = sigmoid_(gz[j] + rz[j]);
                float q = rnn[j] + bh[j];
                float nn = tanh_(gn[j] + rg * q);
                gr[j] = rg; gz[j] = zg; gn[j] = nn; rnr[j] = q;
                hr[j] = nn + zg * (hp[j] - nn);
            }
        } else {
            for (Py_ssize_t j = 0; j < H; j++) {
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
CLONES static void gru_bwd(const float *restrict dh, const float *restrict g, const float *restrict rn,
                           const float *restrict h_prev, Py_ssize_t ldh, float *restrict dg,
                           float *restrict drec, float *restrict dh_prev, Py_ssize_t n,
                           Py_ssize_t n_prev, Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *restrict gr = g + r * 3 * H, *restrict gz = gr + H, *restrict gn = gz + H;
        const float *restrict dhr = dh + r * H, *restrict rnr = rn + r * H;
        float *restrict gdr = dg + r * 3 * H, *restrict gdz = gdr + H, *restrict dn = gdz + H;
        float *restrict dr = drec + r * 3 * H, *restrict dz = dr + H, *restrict drn = dz + H;
        int has_prev = r < n_prev;
        const float *restrict hp = has_prev ? h_prev + r * ldh : NULL;
        float *restrict dhp = has_prev ? dh_prev + r * H : NULL;
        for (Py_ssize_t j = 0; j < H; j++) {
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
            for (Py_ssize_t j = 0; j < H; j++) dhp[j] += dhr[j] * gz[j];
    }
}

CLONES static void elman_fwd(float *restrict g, const float *restrict rec, float *restrict h, Py_ssize_t n,
                             Py_ssize_t n_prev, Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        float *restrict gr = g + r * H, *restrict hr = h + r * H;
        if (r < n_prev) {
            const float *restrict rr = rec + r * H;
            for (Py_ssize_t j = 0; j < H; j++) hr[j] = tanh_(gr[j] + rr[j]);
        } else {
            for (Py_ssize_t j = 0; j < H; j++) hr[j] = tanh_(gr[j]);
        }
    }
}

/* h's rows are ldh apart. */
CLONES static void elman_bwd(const float *restrict dh, const float *restrict h, Py_ssize_t ldh,
                             float *restrict dg, Py_ssize_t n, Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *restrict hr = h + r * ldh;
        const float *restrict dhr = dh + r * H;
        float *restrict dgr = dg + r * H;
        for (Py_ssize_t j = 0; j < H; j++) dgr[j] = dhr[j] * (1.0f - hr[j] * hr[j]);
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
#if !defined(PACKED_OFF) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HAVE_PACKED 1
#include <immintrin.h>
static inline int cell_gates(Cell cell) {
    return cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1;
}

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))
#define MR 6

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
static inline __mmask16 lanes(Py_ssize_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

/* W = [Wx | Wh] (G H, nI + H), the weights of one step of a cell with G
 * gates, in panels of U hidden units x G gates: packed[(u * K + k) * G U +
 * q U + l] = W[q H + U u + l, k], K = nI + H, zero for units U u + l >= H.
 * One AVX-512 register holds 16 units of a gate: LSTM U = 16 (4 registers
 * per row), GRU U = 16 (3), Elman U = 64 (4). */
static void step_pack(const float *restrict Wx, const float *restrict Wh, float *restrict packed,
                      Py_ssize_t nI, Py_ssize_t H, int G, int U) {
    Py_ssize_t n_blocks = (H + U - 1) / U, K = nI + H;
    for (Py_ssize_t u = 0; u < n_blocks; u++)
        for (Py_ssize_t k = 0; k < K; k++) {
            float *dst = packed + (u * K + k) * G * U;
            for (int q = 0; q < G; q++)
                for (int l = 0; l < U; l++) {
                    Py_ssize_t unit = U * u + l;
                    dst[q * U + l] = unit >= H ? 0.0f
                                     : k < nI ? Wx[(q * H + unit) * nI + k]
                                              : Wh[(q * H + unit) * H + k - nI];
                }
        }
}

/* acc[r][q] += sum_k a[r * lda + k] * panel[k * 64 + 16 q ...], rows r < mr */
#define TILE_PRODUCT(acc, a, lda, K, panel)                                         \
    for (Py_ssize_t k = 0; k < (K); k++) {                                          \
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
                             float *restrict h, Py_ssize_t r0, Py_ssize_t u, __mmask16 m,
                             Py_ssize_t nI, Py_ssize_t H, Py_ssize_t ld) {
    Py_ssize_t j = 16 * u;
    __m512 acc[MR][4];
    for (int q = 0; q < 4; q++) {
        __m512 bq = _mm512_maskz_loadu_ps(m, bias + q * H + j);
        for (int r = 0; r < mr; r++) acc[r][q] = bq;
    }
    STEP_PRODUCTS(acc)
    for (int r = 0; r < mr; r++) {
        Py_ssize_t row = r0 + r;
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
static void pack_b(const float *restrict B, float *restrict packed, Py_ssize_t K, Py_ssize_t N) {
    for (Py_ssize_t v = 0; v * 64 < N; v++)
        for (Py_ssize_t k = 0; k < K; k++) {
            float *dst = packed + (v * K + k) * 64;
            for (Py_ssize_t l = 0; l < 64; l++) {
                Py_ssize_t col = 64 * v + l;
                dst[l] = col < N ? B[k * N + col] : 0.0f;
            }
        }
}

/* C[r, col + c] (+)= sum_k A[r, k] panel[k, c] for rows r < mr and the first
 * 16 nq columns from col. Columns at or past N are neither read nor written
 * (`tail`: the last 16 columns of the tile are not all below N). */
AVX512 INLINE void gemm_tile(int mr, int nq, int tail, const float *restrict A,
                             const float *restrict panel, float *restrict C, Py_ssize_t K,
                             Py_ssize_t N, Py_ssize_t col, int accumulate) {
    __mmask16 m[4];
    for (int q = 0; q < nq; q++) m[q] = lanes(N - col - 16 * q);
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nq; q++) acc[r][q] = _mm512_setzero_ps();
    for (Py_ssize_t k = 0; k < K; k++) {
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
                              float *restrict C, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                              Py_ssize_t col, int accumulate) {
    Py_ssize_t width = N - col < 64 ? N - col : 64;
    int nq = (int)((width + 15) / 16), tail = width % 16 != 0;
    for (Py_ssize_t r0 = 0; r0 < M; r0 += MR) {
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
AVX512 static void gemm_packed(const float *restrict A, const float *restrict packed,
                               float *restrict C, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                               int accumulate) {
    for (Py_ssize_t v = 0; v * 64 < N; v++)
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
#define WG_KB 256

static void wgrad_pack(const float *restrict X, Py_ssize_t ldx, Py_ssize_t nX,
                       const float *restrict Hs, Py_ssize_t ldh, Py_ssize_t nH,
                       const int32_t *restrict prev, Py_ssize_t K, Py_ssize_t k0,
                       Py_ssize_t kb, float *restrict packed) {
    Py_ssize_t n = nX + nH, n_panels = (n + 63) / 64;
    for (Py_ssize_t kk = 0; kk < kb; kk++) {
        Py_ssize_t k = k0 + kk;
        const float *hrow = nH && prev[k] < K ? Hs + (Py_ssize_t)prev[k] * ldh : NULL;
        for (Py_ssize_t v = 0; v < n_panels; v++) {
            float *dst = packed + (v * kb + kk) * 64;
            Py_ssize_t c0 = 64 * v, c1 = c0 + 64;
            /* columns [c0, c1): X below nX, then H, then zeros */
            Py_ssize_t x_end = c1 < nX ? c1 : nX;
            if (c0 < x_end) memcpy(dst, X + k * ldx + c0, (x_end - c0) * 4);
            Py_ssize_t h0 = c0 > nX ? c0 : nX, h_end = c1 < n ? c1 : n;
            if (h0 < h_end) {
                if (hrow) memcpy(dst + h0 - c0, hrow + h0 - nX, (h_end - h0) * 4);
                else memset(dst + h0 - c0, 0, (h_end - h0) * 4);
            }
            Py_ssize_t z0 = c0 > n ? c0 : n;
            if (z0 < c1) memset(dst + z0 - c0, 0, (c1 - z0) * 4);
        }
    }
}

/* A's rows k0 .. k0 + kb - 1 as strips of MR columns: strips[(t kb + kk) MR
 * + r] = A[k0 + kk, MR t + r], zero past M. */
static void wgrad_pack_a(const float *restrict A, Py_ssize_t lda, Py_ssize_t M,
                         Py_ssize_t k0, Py_ssize_t kb, float *restrict strips) {
    Py_ssize_t n_full = M / MR, rest = M - n_full * MR;
    for (Py_ssize_t kk = 0; kk < kb; kk++) {
        const float *a = A + (k0 + kk) * lda;
        for (Py_ssize_t t = 0; t < n_full; t++) {
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
AVX512 INLINE void wgrad_tile(int mr, int nq, const float *restrict strip, Py_ssize_t kb,
                              const float *restrict panel, float *restrict C, Py_ssize_t n,
                              Py_ssize_t col, int load) {
    __mmask16 m[4];
    for (int q = 0; q < nq; q++) m[q] = lanes(n - col - 16 * q);
    __m512 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nq; q++)
            acc[r][q] = load ? _mm512_maskz_loadu_ps(m[q], C + r * n + col + 16 * q)
                             : _mm512_setzero_ps();
    for (Py_ssize_t kk = 0; kk < kb; kk++) {
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
AVX512 static void wgrad(const float *restrict A, Py_ssize_t lda, Py_ssize_t M,
                         const float *restrict X, Py_ssize_t ldx, Py_ssize_t nX,
                         const float *restrict Hs, Py_ssize_t ldh, Py_ssize_t nH,
                         const int32_t *restrict prev, Py_ssize_t K, float *restrict C,
                         int accumulate, float *restrict packed, float *restrict strips) {
    Py_ssize_t n = nX + nH;
    if (!accumulate && K == 0)
        for (Py_ssize_t i = 0; i < M * n; i++) C[i] = 0.0f;
    for (Py_ssize_t k0 = 0; k0 < K; k0 += WG_KB) {
        Py_ssize_t kb = K - k0 < WG_KB ? K - k0 : WG_KB;
        int load = accumulate || k0 > 0;
        wgrad_pack(X, ldx, nX, Hs, ldh, nH, prev, K, k0, kb, packed);
        wgrad_pack_a(A, lda, M, k0, kb, strips);
        for (Py_ssize_t v = 0; v * 64 < n; v++) {
            const float *panel = packed + v * kb * 64;
            Py_ssize_t col = 64 * v, width = n - col < 64 ? n - col : 64;
            int nq = (int)((width + 15) / 16);
            for (Py_ssize_t r0 = 0; r0 < M; r0 += MR) {
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
                            Py_ssize_t r0, Py_ssize_t u, __mmask16 m, Py_ssize_t nI,
                            Py_ssize_t H, Py_ssize_t ld) {
    Py_ssize_t j = 16 * u;
    __m512 acc[MR][4];
    for (int q = 0; q < 4; q++) {
        __m512 bq = _mm512_maskz_loadu_ps(m, q < 3 ? bias + q * H + j : bh + j);
        for (int r = 0; r < mr; r++) acc[r][q] = bq;
    }
    const float *xa = x + r0 * nI;
    for (Py_ssize_t k = 0; k < nI; k++) {
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
        for (Py_ssize_t k = 0; k < H; k++) {
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
        Py_ssize_t row = r0 + r;
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
                            float *restrict h, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t nI,
                            Py_ssize_t H, Py_ssize_t ld) {
    for (Py_ssize_t u = 0; u * 16 < H; u++) {
        __mmask16 m = lanes(H - 16 * u);
        const float *panel = packed + u * (nI + H) * 48;
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            Py_ssize_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
#define TILE(rows) gru_tile(rows, has_prev, x, h_prev, panel, bias, bh, g, rn, h, r0, u, m, nI, H, ld)
            ROW_TILES(r0, end, TILE)
#undef TILE
        }
    }
}

/* Elman rows r0 .. r0 + mr - 1, units 64 u .. 64 u + 63: h = tanh(...). */
AVX512 INLINE void elman_tile(int mr, int has_prev, const float *restrict x,
                              const float *restrict h_prev, const float *restrict panel,
                              const float *restrict bias, float *restrict h, Py_ssize_t r0,
                              Py_ssize_t u, Py_ssize_t nI, Py_ssize_t H, Py_ssize_t ld) {
    Py_ssize_t j = 64 * u;
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
                              float *restrict h, Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t nI,
                              Py_ssize_t H, Py_ssize_t ld) {
    for (Py_ssize_t u = 0; u * 64 < H; u++) {
        const float *panel = packed + u * (nI + H) * 64;
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            Py_ssize_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
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
                             float *restrict tc, float *restrict h, Py_ssize_t n,
                             Py_ssize_t n_prev, Py_ssize_t nI, Py_ssize_t H, Py_ssize_t ld) {
    for (Py_ssize_t u = 0; u * 16 < H; u++) {
        __mmask16 m = lanes(H - 16 * u);
        const float *panel = packed + u * (nI + H) * 64;
        /* rows with a previous state first, then the others */
        for (int has_prev = 1; has_prev >= 0; has_prev--) {
            Py_ssize_t r0 = has_prev ? 0 : n_prev, end = has_prev ? n_prev : n;
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
AVX512 static void run_steps(Cell cell, const float *restrict X, float *restrict Hs,
                             const float *restrict packed, const float *restrict bias,
                             const float *restrict bh, const int64_t *restrict steps,
                             Py_ssize_t n_steps, float *restrict G, float *restrict state,
                             float *restrict TC, Py_ssize_t nI, Py_ssize_t H, Py_ssize_t ld) {
    int n_gates = cell_gates(cell);
    for (Py_ssize_t s = 0; s < n_steps; s++) {
        Py_ssize_t start = steps[4 * s], size = steps[4 * s + 1];
        Py_ssize_t p_start = steps[4 * s + 2], n_prev = steps[4 * s + 3];
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
AVX512 static void run_back_steps(Cell cell, const int64_t *restrict steps, Py_ssize_t n_steps,
                                  float *restrict dH, float *restrict dG,
                                  const float *restrict Wh_packed, const float *restrict G,
                                  const float *restrict state, const float *restrict TC,
                                  const float *restrict Hs, Py_ssize_t ldh,
                                  float *restrict drec, float *restrict dc, Py_ssize_t H) {
    Py_ssize_t GH = cell_gates(cell) * H;
    for (Py_ssize_t s = n_steps - 1; s >= 0; s--) {
        Py_ssize_t start = steps[4 * s], size = steps[4 * s + 1];
        Py_ssize_t p_start = steps[4 * s + 2], n_prev = steps[4 * s + 3];
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

/* ---- Python bindings --------------------------------------------------- */

/* Sizes are multiplied (and added, below) with these: -1 stands for
 * "negative or overflowed" and propagates, and every buffer check refuses it. */
static Py_ssize_t mul(Py_ssize_t a, Py_ssize_t b) {
    if (a < 0 || b < 0 || (a != 0 && b > PY_SSIZE_T_MAX / a)) return -1;
    return a * b;
}

#define MAX_BUFS 10

typedef struct {
    Py_buffer views[MAX_BUFS];
    int count;
} Buffers;

static void release(Buffers *b) {
    for (int i = 0; i < b->count; i++) PyBuffer_Release(&b->views[i]);
    b->count = 0;
}

/* Borrow a float32 array named `name`:
 * - ndim 1: exactly `rows` contiguous floats (cols unused);
 * - ndim 2: shape (rows, cols), or (>= rows, cols) when `min_rows`, with
 *   C-contiguous rows; when `ld` is not NULL the rows may be apart (a column
 *   block of a wider array) and *ld receives their distance in floats.
 * None stands for an empty array. Returns NULL with an exception set
 * (TypeError: not a float32 array; ValueError: wrong shape or strides). */
static float *take_f32(Buffers *b, PyObject *obj, const char *name, int writable, int ndim,
                       Py_ssize_t rows, Py_ssize_t cols, int min_rows, Py_ssize_t *ld) {
    static float empty[1];
    if (rows < 0 || (ndim == 2 && cols < 0)) {
        PyErr_Format(PyExc_ValueError, "%s: the sizes are negative or too large", name);
        return NULL;
    }
    if (ld != NULL) *ld = cols;
    if (obj == Py_None && (rows == 0 || (ndim == 2 && cols == 0))) return empty;
    if (b->count >= MAX_BUFS) {
        PyErr_SetString(PyExc_RuntimeError, "too many buffers");
        return NULL;
    }
    Py_buffer *v = &b->views[b->count];
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) != 0) return NULL;
    b->count++;
    if (v->itemsize != 4 || v->format == NULL || strcmp(v->format, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a float32 array", name);
        return NULL;
    }
    int ok = v->ndim == ndim;
    if (ok && ndim == 1) {
        ok = v->shape[0] == rows && (rows <= 1 || v->strides[0] == 4);
    } else if (ok) {
        Py_ssize_t r = v->shape[0], c = v->shape[1], s0 = v->strides[0];
        ok = c == cols && (min_rows ? r >= rows : r == rows) && (c <= 1 || v->strides[1] == 4) &&
             (r <= 1 || (s0 % 4 == 0 && (ld != NULL ? s0 >= 4 * c : s0 == 4 * c)));
        if (ok && ld != NULL) *ld = r > 1 ? s0 / 4 : c;
    }
    if (!ok) {
        if (ndim == 1)
            PyErr_Format(PyExc_ValueError, "%s must be a contiguous 1-D float32 array of %zd floats",
                         name, rows);
        else
            PyErr_Format(PyExc_ValueError,
                         "%s must be a 2-D float32 array of shape (%s%zd, %zd) with contiguous rows",
                         name, min_rows ? ">= " : "", rows, cols);
        return NULL;
    }
    return (float *)v->buf;
}

/* Declare `var`, borrowed from `obj` by take_f32; on failure release and
 * return NULL from the binding (which must have `bufs`). */
#define TAKE_AS(var, obj, w, ndim, rows, cols, min_rows, ld)                              \
    float *var = take_f32(&bufs, obj, #var, w, ndim, rows, cols, min_rows, ld);            \
    if (var == NULL) { release(&bufs); return NULL; }
/* The same into a declared variable (an argument that not every cell uses). */
#define SET_ARR(var, obj, rows, cols, w)                                                   \
    var = take_f32(&bufs, obj, #var, w, 2, rows, cols, 0, NULL);                           \
    if (var == NULL) { release(&bufs); return NULL; }
/* A C-contiguous (rows, cols) array, one of at least `rows` rows, a vector. */
#define ARR(var, obj, rows, cols, w) TAKE_AS(var, obj, w, 2, rows, cols, 0, NULL)
#define MIN_ROWS(var, obj, rows, cols, w) TAKE_AS(var, obj, w, 2, rows, cols, 1, NULL)
#define VEC(var, obj, n, w) TAKE_AS(var, obj, w, 1, n, 0, 0, NULL)

static int check_sizes(Py_ssize_t n, Py_ssize_t n_prev, Py_ssize_t H) {
    if (n < 0 || n_prev < 0 || n_prev > n || H < 0) {
        PyErr_SetString(PyExc_ValueError, "invalid step sizes");
        return -1;
    }
    return 0;
}

static PyObject *py_lstm_fwd(PyObject *self, PyObject *args) {
    PyObject *o_g, *o_rec, *o_cp, *o_c, *o_tc, *o_h;
    Py_ssize_t n, n_prev, H;
    if (!PyArg_ParseTuple(args, "OOOOOOnnn", &o_g, &o_rec, &o_cp, &o_c, &o_tc, &o_h,
                          &n, &n_prev, &H) || check_sizes(n, n_prev, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(g, o_g, n, mul(4, H), 1)
    MIN_ROWS(rec, o_rec, n_prev, mul(4, H), 0)
    ARR(c_prev, o_cp, n_prev, H, 0)
    ARR(c, o_c, n, H, 1)
    ARR(tc, o_tc, n, H, 1)
    ARR(h, o_h, n, H, 1)
    Py_BEGIN_ALLOW_THREADS
    lstm_fwd(g, rec, c_prev, c, tc, h, n, n_prev, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_lstm_bwd(PyObject *self, PyObject *args) {
    PyObject *o_dh, *o_dc, *o_g, *o_cp, *o_tc, *o_dg, *o_dcp;
    Py_ssize_t n, n_prev, H;
    if (!PyArg_ParseTuple(args, "OOOOOOOnnn", &o_dh, &o_dc, &o_g, &o_cp, &o_tc, &o_dg,
                          &o_dcp, &n, &n_prev, &H) || check_sizes(n, n_prev, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(dh, o_dh, n, H, 0)
    ARR(dc, o_dc, n, H, 1)
    ARR(g, o_g, n, mul(4, H), 0)
    ARR(c_prev, o_cp, n_prev, H, 0)
    ARR(tc, o_tc, n, H, 0)
    ARR(dg, o_dg, n, mul(4, H), 1)
    ARR(dc_prev, o_dcp, n_prev, H, 1)
    Py_BEGIN_ALLOW_THREADS
    lstm_bwd(dh, dc, g, c_prev, tc, dg, dc_prev, n, n_prev, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_gru_fwd(PyObject *self, PyObject *args) {
    PyObject *o_g, *o_rec, *o_bh, *o_hp, *o_rn, *o_h;
    Py_ssize_t n, n_prev, H;
    if (!PyArg_ParseTuple(args, "OOOOOOnnn", &o_g, &o_rec, &o_bh, &o_hp, &o_rn, &o_h,
                          &n, &n_prev, &H) || check_sizes(n, n_prev, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(g, o_g, n, mul(3, H), 1)
    MIN_ROWS(rec, o_rec, n_prev, mul(3, H), 0)
    VEC(bh, o_bh, H, 0)
    ARR(h_prev, o_hp, n_prev, H, 0)
    ARR(rn, o_rn, n, H, 1)
    ARR(h, o_h, n, H, 1)
    Py_BEGIN_ALLOW_THREADS
    gru_fwd(g, rec, bh, h_prev, rn, h, n, n_prev, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_gru_bwd(PyObject *self, PyObject *args) {
    PyObject *o_dh, *o_g, *o_rn, *o_hp, *o_dg, *o_drec, *o_dhp;
    Py_ssize_t n, n_prev, H;
    if (!PyArg_ParseTuple(args, "OOOOOOOnnn", &o_dh, &o_g, &o_rn, &o_hp, &o_dg, &o_drec,
                          &o_dhp, &n, &n_prev, &H) || check_sizes(n, n_prev, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(dh, o_dh, n, H, 0)
    ARR(g, o_g, n, mul(3, H), 0)
    ARR(rn, o_rn, n, H, 0)
    ARR(h_prev, o_hp, n_prev, H, 0)
    ARR(dg, o_dg, n, mul(3, H), 1)
    ARR(drec, o_drec, n, mul(3, H), 1)
    ARR(dh_prev, o_dhp, n_prev, H, 1)
    Py_BEGIN_ALLOW_THREADS
    gru_bwd(dh, g, rn, h_prev, H, dg, drec, dh_prev, n, n_prev, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_elman_fwd(PyObject *self, PyObject *args) {
    PyObject *o_g, *o_rec, *o_h;
    Py_ssize_t n, n_prev, H;
    if (!PyArg_ParseTuple(args, "OOOnnn", &o_g, &o_rec, &o_h, &n, &n_prev, &H) ||
        check_sizes(n, n_prev, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(g, o_g, n, H, 0)
    MIN_ROWS(rec, o_rec, n_prev, H, 0)
    ARR(h, o_h, n, H, 1)
    Py_BEGIN_ALLOW_THREADS
    elman_fwd(g, rec, h, n, n_prev, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_elman_bwd(PyObject *self, PyObject *args) {
    PyObject *o_dh, *o_h, *o_dg;
    Py_ssize_t n, H;
    if (!PyArg_ParseTuple(args, "OOOnn", &o_dh, &o_h, &o_dg, &n, &H) ||
        check_sizes(n, 0, H))
        return NULL;
    Buffers bufs = {.count = 0};
    ARR(dh, o_dh, n, H, 0)
    ARR(h, o_h, n, H, 0)
    ARR(dg, o_dg, n, H, 1)
    Py_BEGIN_ALLOW_THREADS
    elman_bwd(dh, h, H, dg, n, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

#ifdef HAVE_PACKED
static int packed_ok = 0;

static Py_ssize_t add(Py_ssize_t a, Py_ssize_t b) {
    if (a < 0 || b < 0 || b > PY_SSIZE_T_MAX - a) return -1;
    return a + b;
}

/* ceil(a / b) * b for a >= 0, b >= 1 (-1 on overflow). */
static Py_ssize_t round_up(Py_ssize_t a, Py_ssize_t b) {
    if (a < 0 || b < 1) return -1;
    return mul(a / b + (a % b != 0), b);
}


#define NEED_AVX512(name)                                                                 \
    if (!packed_ok) return PyErr_Format(PyExc_RuntimeError, name " needs a CPU with AVX-512F");

static PyObject *py_step_pack(PyObject *self, PyObject *args) {
    PyObject *o_wx, *o_wh, *o_p;
    Py_ssize_t nI, H;
    int G, U;
    if (!PyArg_ParseTuple(args, "OOOnnii", &o_wx, &o_wh, &o_p, &nI, &H, &G, &U)) return NULL;
    if (nI < 0 || H < 0 || G < 1 || G > 4 || U < 1 || U > 64)
        return PyErr_Format(PyExc_ValueError, "invalid sizes");
    Buffers bufs = {.count = 0};
    ARR(Wx, o_wx, mul(G, H), nI, 0)
    ARR(Wh, o_wh, mul(G, H), H, 0)
    VEC(packed, o_p, mul(mul(round_up(H, U), add(nI, H)), G), 1)
    step_pack(Wx, Wh, packed, nI, H, G, U);
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_pack_b(PyObject *self, PyObject *args) {
    PyObject *o_b, *o_p;
    Py_ssize_t K, N;
    if (!PyArg_ParseTuple(args, "OOnn", &o_b, &o_p, &K, &N)) return NULL;
    Buffers bufs = {.count = 0};
    ARR(B, o_b, K, N, 0)
    VEC(packed, o_p, mul(round_up(N, 64), K), 1)
    pack_b(B, packed, K, N);
    release(&bufs);
    Py_RETURN_NONE;
}

static PyObject *py_gemm_packed(PyObject *self, PyObject *args) {
    PyObject *o_a, *o_p, *o_c;
    Py_ssize_t M, K, N;
    int accumulate;
    NEED_AVX512("gemm_packed")
    if (!PyArg_ParseTuple(args, "OOOnnnp", &o_a, &o_p, &o_c, &M, &K, &N, &accumulate)) return NULL;
    Buffers bufs = {.count = 0};
    ARR(A, o_a, M, K, 0)
    VEC(packed, o_p, mul(round_up(N, 64), K), 0)
    ARR(C, o_c, M, N, 1)
    Py_BEGIN_ALLOW_THREADS
    gemm_packed(A, packed, C, M, K, N, accumulate);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

/* The shape of a 2-D buffer (ValueError naming it otherwise). */
static int shape_2d(PyObject *obj, const char *name, Py_ssize_t *rows, Py_ssize_t *cols) {
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_STRIDES) != 0) return -1;
    int ok = v.ndim == 2;
    if (ok) { *rows = v.shape[0]; *cols = v.shape[1]; }
    PyBuffer_Release(&v);
    if (!ok) PyErr_Format(PyExc_ValueError, "%s must be 2-D", name);
    return ok ? 0 : -1;
}

/* wgrad(A, X, H, prev, C, accumulate): C (M, nX + nH) (+)= A.T @ [X | H[prev]]
 * with A (K, M), X (K, nX) or None, H (K, nH) or None, prev (K,) int32 in
 * [0, K] (K: a zero row), all of them arrays with contiguous rows. */
static PyObject *py_wgrad(PyObject *self, PyObject *args) {
    PyObject *o_a, *o_x, *o_h, *o_prev, *o_c;
    int accumulate;
    NEED_AVX512("wgrad")
    if (!PyArg_ParseTuple(args, "OOOOOp", &o_a, &o_x, &o_h, &o_prev, &o_c, &accumulate))
        return NULL;
    Py_ssize_t K, M, rows, nX = 0, nH = 0, lda, ldx = 0, ldh = 0;
    if (shape_2d(o_a, "A", &K, &M) != 0) return NULL;
    if (o_x != Py_None && shape_2d(o_x, "X", &rows, &nX) != 0) return NULL;
    if (o_h != Py_None && shape_2d(o_h, "H", &rows, &nH) != 0) return NULL;
    Buffers bufs = {.count = 0};
    TAKE_AS(A, o_a, 0, 2, K, M, 0, &lda)
    float *X = NULL, *Hs = NULL;
    const int32_t *prev = NULL;
    if (o_x != Py_None) {
        TAKE_AS(Xs, o_x, 0, 2, K, nX, 0, &ldx)
        X = Xs;
    }
    if (o_h != Py_None) {
        TAKE_AS(H, o_h, 0, 2, K, nH, 0, &ldh)
        Hs = H;
        Py_buffer *pv = &bufs.views[bufs.count];
        if (PyObject_GetBuffer(o_prev, pv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
            release(&bufs);
            return NULL;
        }
        bufs.count++;
        if (pv->itemsize != 4 || pv->format == NULL || pv->ndim != 1 ||
            (strcmp(pv->format, "i") != 0 && strcmp(pv->format, "l") != 0) || pv->shape[0] != K) {
            PyErr_Format(PyExc_ValueError, "prev must be an int32 array of %zd rows", K);
            release(&bufs);
            return NULL;
        }
        prev = (const int32_t *)pv->buf;
        for (Py_ssize_t k = 0; k < K; k++)
            if (prev[k] < 0 || prev[k] > K) {
                PyErr_Format(PyExc_ValueError, "prev[%zd] = %d is outside [0, %zd]", k, prev[k], K);
                release(&bufs);
                return NULL;
            }
    }
    ARR(C, o_c, M, nX + nH, 1)
    /* scratch: 64-column panels of WG_KB rows, then WG_KB x M rounded up to MR */
    Py_ssize_t panels = round_up(nX + nH, 64), m_round = round_up(M, MR);
    Py_ssize_t n_scratch = mul(add(panels, m_round), WG_KB);
    float *scratch = NULL;
    if (n_scratch < 0 || n_scratch > PY_SSIZE_T_MAX / 4 - 1 ||
        (K > 0 && (scratch = PyMem_RawMalloc((size_t)n_scratch * 4 + 4)) == NULL)) {
        release(&bufs);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    wgrad(A, lda, M, X, ldx, nX, Hs, ldh, nH, prev, K, C, accumulate, scratch,
          scratch == NULL ? NULL : scratch + panels * WG_KB);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    release(&bufs);
    Py_RETURN_NONE;
}

/* Borrow `steps` (T, 4) int64 (start, size, prev_start, n_prev), each step
 * checked to stay inside the N rows, its previous rows apart from its own,
 * before any runs. */
static int get_steps(PyObject *o_steps, Py_buffer *view, Py_ssize_t N, const int64_t **steps,
                     Py_ssize_t *n_steps) {
    if (PyObject_GetBuffer(o_steps, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return -1;
    if (view->itemsize != 8 || view->format == NULL ||
        (strcmp(view->format, "l") != 0 && strcmp(view->format, "q") != 0) || view->ndim != 2 ||
        view->shape[1] != 4) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "steps must be an int64 array of shape (T, 4)");
        return -1;
    }
    *steps = view->buf;
    *n_steps = view->shape[0];
    for (Py_ssize_t s = 0; s < *n_steps; s++) {
        const int64_t *st = *steps + 4 * s;
        int64_t start = st[0], size = st[1], p_start = st[2], n_prev = st[3];
        /* written so that nothing overflows: every value is in [0, N] first */
        int ok = start >= 0 && size >= 0 && p_start >= 0 && n_prev >= 0 && start <= N &&
                 p_start <= N && size <= N - start && n_prev <= N - p_start && n_prev <= size &&
                 (n_prev == 0 || p_start + n_prev <= start || start + size <= p_start);
        if (!ok) {
            PyBuffer_Release(view);
            PyErr_Format(PyExc_ValueError, "step %zd is outside the %zd rows", s, N);
            return -1;
        }
    }
    return 0;
}

static int check_cell(int cell) {
    if (cell != CELL_ELMAN && cell != CELL_GRU && cell != CELL_LSTM) {
        PyErr_Format(PyExc_ValueError, "invalid cell %d", cell);
        return -1;
    }
    return 0;
}

static PyObject *py_run_steps(PyObject *self, PyObject *args) {
    PyObject *o_x, *o_h, *o_p, *o_b, *o_bh, *o_steps, *o_g, *o_state, *o_tc;
    Py_ssize_t N, nI, H;
    int cell_arg;
    NEED_AVX512("run_steps")
    if (!PyArg_ParseTuple(args, "iOOOOOOOOOnnn", &cell_arg, &o_x, &o_h, &o_p, &o_b, &o_bh,
                          &o_steps, &o_g, &o_state, &o_tc, &N, &nI, &H) ||
        check_cell(cell_arg) != 0)
        return NULL;
    if (N < 0 || nI < 0 || H < 0) return PyErr_Format(PyExc_ValueError, "invalid sizes");
    Cell cell = (Cell)cell_arg;
    int n_gates = cell_gates(cell), units = cell == CELL_ELMAN ? 64 : 16;
    Py_ssize_t GH = mul(n_gates, H);
    int train = o_g != Py_None;
    const int64_t *steps;
    Py_ssize_t n_steps, ld;
    Buffers bufs = {.count = 0};
    if (get_steps(o_steps, &bufs.views[0], N, &steps, &n_steps) != 0) return NULL;
    bufs.count = 1; /* released with the others */
    ARR(X, o_x, N, nI, 0)
    /* H may be a column block of a wider C-contiguous array: rows ld apart */
    float *Hs = take_f32(&bufs, o_h, "H", 1, 2, N, H, 0, &ld);
    if (Hs == NULL) { release(&bufs); return NULL; }
    VEC(packed, o_p, mul(mul(round_up(H, units), add(nI, H)), n_gates), 0)
    VEC(bias, o_b, GH, 0)
    float *bh = NULL, *G = NULL, *state = NULL, *tc = NULL;
    if (cell == CELL_GRU) {
        bh = take_f32(&bufs, o_bh, "bh", 0, 1, H, 0, 0, NULL);
        if (bh == NULL) { release(&bufs); return NULL; }
    }
    if (train) { SET_ARR(G, o_g, N, GH, 1) }
    if (cell == CELL_LSTM || (cell == CELL_GRU && train)) { SET_ARR(state, o_state, N, H, 1) }
    if (cell == CELL_LSTM && train) { SET_ARR(tc, o_tc, N, H, 1) }
    Py_BEGIN_ALLOW_THREADS
    run_steps(cell, X, Hs, packed, bias, bh, steps, n_steps, G, state, tc, nI, H, ld);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

/* run_back_steps(cell, steps, dH, dG, Wh_packed, G, state, tc, H_out, drec, dc, N, H);
 * H_out (N, H) may be a column block of a wider array; arguments a cell does
 * not use may be None. */
static PyObject *py_run_back_steps(PyObject *self, PyObject *args) {
    PyObject *o_steps, *o_dh, *o_dg, *o_p, *o_g, *o_state, *o_tc, *o_hc, *o_drec, *o_dc;
    Py_ssize_t N, H;
    int cell_arg;
    NEED_AVX512("run_back_steps")
    if (!PyArg_ParseTuple(args, "iOOOOOOOOOOnn", &cell_arg, &o_steps, &o_dh, &o_dg, &o_p, &o_g,
                          &o_state, &o_tc, &o_hc, &o_drec, &o_dc, &N, &H) ||
        check_cell(cell_arg) != 0)
        return NULL;
    if (N < 0 || H < 0) return PyErr_Format(PyExc_ValueError, "invalid sizes");
    Cell cell = (Cell)cell_arg;
    Py_ssize_t GH = mul(cell_gates(cell), H), ldh = H;
    const int64_t *steps;
    Py_ssize_t n_steps;
    Buffers bufs = {.count = 0};
    if (get_steps(o_steps, &bufs.views[0], N, &steps, &n_steps) != 0) return NULL;
    bufs.count = 1;
    float *G = NULL, *state = NULL, *tc = NULL, *Hs = NULL, *drec = NULL, *dc = NULL;
    ARR(dH, o_dh, N, H, 1)
    ARR(dG, o_dg, N, GH, 1)
    VEC(packed, o_p, mul(round_up(H, 64), GH), 0)
    if (cell == CELL_LSTM || cell == CELL_GRU) {
        SET_ARR(G, o_g, N, GH, 0)
        SET_ARR(state, o_state, N, H, 0)
    }
    if (cell == CELL_LSTM) {
        SET_ARR(tc, o_tc, N, H, 0)
        SET_ARR(dc, o_dc, N, H, 1)
    } else {
        Hs = take_f32(&bufs, o_hc, "H", 0, 2, N, H, 0, &ldh);
        if (Hs == NULL) { release(&bufs); return NULL; }
    }
    if (cell == CELL_GRU) { SET_ARR(drec, o_drec, N, GH, 1) }
    Py_BEGIN_ALLOW_THREADS
    run_back_steps(cell, steps, n_steps, dH, dG, packed, G, state, tc, Hs, ldh, drec, dc, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}
#endif

static PyMethodDef methods[] = {
    {"lstm_fwd", py_lstm_fwd, METH_VARARGS, "LSTM gates of one step, forward."},
    {"lstm_bwd", py_lstm_bwd, METH_VARARGS, "LSTM gates of one step, backward."},
    {"gru_fwd", py_gru_fwd, METH_VARARGS, "GRU gates of one step, forward."},
    {"gru_bwd", py_gru_bwd, METH_VARARGS, "GRU gates of one step, backward."},
    {"elman_fwd", py_elman_fwd, METH_VARARGS, "Elman step, forward."},
    {"elman_bwd", py_elman_bwd, METH_VARARGS, "Elman step, backward."},
#ifdef HAVE_PACKED
    {"step_pack", py_step_pack, METH_VARARGS,
     "Pack Wx (G H, nI) and Wh (G H, H) for the *_step kernels, in panels of U units."},
    {"run_steps", py_run_steps, METH_VARARGS,
     "All whole steps of one direction (cell: CELL_ELMAN, CELL_GRU or CELL_LSTM)."},
    {"pack_b", py_pack_b, METH_VARARGS, "Pack B (K, N) for gemm_packed."},
    {"gemm_packed", py_gemm_packed, METH_VARARGS, "C = [C +] A @ B with B from pack_b."},
    {"wgrad", py_wgrad, METH_VARARGS, "C = [C +] A.T @ [X | H[prev]] (weight gradients)."},
    {"run_back_steps", py_run_back_steps, METH_VARARGS,
     "Backprop through all steps of one direction (gates and recurrent products)."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_kernels",
    "Fused float32 gate arithmetic of one RNN step (CPU).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cpu_kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    int has_packed = 0, packed_built = 0, clones_built = 0;
#ifdef HAVE_PACKED
    __builtin_cpu_init();
    packed_ok = __builtin_cpu_supports("avx512f") ? 1 : 0;
    has_packed = packed_ok;
    packed_built = 1;
#endif
#ifdef HAVE_CLONES
    clones_built = 1;
#endif
    /* HAS_PACKED: whether step_pack, run_steps, run_back_steps, pack_b,
     * gemm_packed and wgrad exist and this CPU can run them; *_BUILT: what
     * this build compiled in. */
    if (PyModule_AddIntConstant(m, "HAS_PACKED", has_packed) != 0 ||
        PyModule_AddIntConstant(m, "PACKED_BUILT", packed_built) != 0 ||
        PyModule_AddIntConstant(m, "CLONES_BUILT", clones_built) != 0 ||
        PyModule_AddIntConstant(m, "CELL_ELMAN", CELL_ELMAN) != 0 ||
        PyModule_AddIntConstant(m, "CELL_GRU", CELL_GRU) != 0 ||
        PyModule_AddIntConstant(m, "CELL_LSTM", CELL_LSTM) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
