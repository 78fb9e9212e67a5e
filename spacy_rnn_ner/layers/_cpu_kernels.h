/* RNN kernels for the CPU, float32, on raw pointers: their declarations
 * (definitions in _cpu_kernels_impl.c, Python bindings in _cpu_kernels.pyx,
 * which check every array and size before calling them).
 *
 * Gate kernels (*_fwd, *_bwd): the gate arithmetic of one time step, in one
 * pass over the step's rows instead of the dozen numpy passes of `cells.py`,
 * next to numpy's matmul. `target_clones` builds AVX-512, AVX2 and baseline
 * versions and picks one at load time.
 *
 * AVX-512 kernels (HAVE_PACKED): whole steps forward (products and gates in
 * one kernel, all steps of a direction in one call), the backward steps of
 * a direction in one call, a small matrix product with packed weights, and
 * the weight gradients dG.T @ [X | H_prev]; compiled for AVX-512F only,
 * used only where the CPU has it (cpu_has_avx512f).
 *
 * The kernels trust their sizes and pointers. The layouts are those of
 * `cells.py`.
 *
 * Portable C99: the C library's maths functions and no compiler builtins
 * outside the guarded parts; .ci/run compiles the kernels for aarch64 (gcc,
 * clang) and for Windows (MinGW gcc, clang in MSVC mode). The target clones
 * need gcc on x86-64 Linux (ifuncs), the AVX-512 part gcc on x86-64 outside
 * Windows (whose ABI aligns the stack to 16 bytes only, and gcc spills
 * 64-byte registers with aligned moves there: gcc bug 54412); both are left
 * out elsewhere, and with -DCLONES_OFF or -DPACKED_OFF anywhere (CI tests
 * such a build).
 */
#ifndef SPACY_RNN_NER_CPU_KERNELS_H
#define SPACY_RNN_NER_CPU_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define restrict __restrict
#endif

/* Not exported from the extension (nor interposable): gcc and clang. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define KERNEL __attribute__((visibility("hidden")))
#else
#define KERNEL
#endif

#if !defined(CLONES_OFF) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__)
#define HAVE_CLONES 1
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#if !defined(PACKED_OFF) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(_WIN32)
#define HAVE_PACKED 1
#endif

/* The cell, as the bindings take it (module constants CELL_ELMAN, ...). */
typedef enum { CELL_ELMAN = 0, CELL_GRU = 1, CELL_LSTM = 2 } Cell;

/* Gate blocks per row of the fused gate buffer. */
static inline int cell_gates(Cell cell) {
    return cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1;
}

/* The AVX-512 kernels' tiles: MR rows; the weight gradients take WG_KB
 * rows at a time (the bindings size wgrad's scratch with them). */
#define MR 6
#define WG_KB 256

/* ---- gate kernels of one step (n rows, the first n_prev with a previous
 * state; H units) ---- */

/* g (n, 4H) [i, f, o, u] pre-activations in, activations out; rec (>= n_prev,
 * 4H) = h_prev @ Wh.T; writes c, tc = tanh(c), h (n, H). */
KERNEL void lstm_fwd(float *restrict g, const float *restrict rec, const float *restrict c_prev,
                     float *restrict c, float *restrict tc, float *restrict h, ptrdiff_t n,
                     ptrdiff_t n_prev, ptrdiff_t H);
/* dc (n, H) completed in place; dg (n, 4H) out; dc_prev (n_prev, H) += dc f. */
KERNEL void lstm_bwd(const float *restrict dh, float *restrict dc, const float *restrict g,
                     const float *restrict c_prev, const float *restrict tc, float *restrict dg,
                     float *restrict dc_prev, ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t H);
/* g (n, 3H) [r, z, n]; rec (>= n_prev, 3H); bh (H); writes rn, h (n, H). */
KERNEL void gru_fwd(float *restrict g, const float *restrict rec, const float *restrict bh,
                    const float *restrict h_prev, float *restrict rn, float *restrict h,
                    ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t H);
/* dg, drec (n, 3H) out; dh_prev (n_prev, H) +=; h_prev's rows ldh apart. */
KERNEL void gru_bwd(const float *restrict dh, const float *restrict g, const float *restrict rn,
                    const float *restrict h_prev, ptrdiff_t ldh, float *restrict dg,
                    float *restrict drec, float *restrict dh_prev, ptrdiff_t n, ptrdiff_t n_prev,
                    ptrdiff_t H);
/* h (n, H) = tanh(g + rec) (rec for the first n_prev rows). */
KERNEL void elman_fwd(const float *restrict g, const float *restrict rec, float *restrict h,
                      ptrdiff_t n, ptrdiff_t n_prev, ptrdiff_t H);
/* dg (n, H) = dh (1 - h^2); h's rows ldh apart. */
KERNEL void elman_bwd(const float *restrict dh, const float *restrict h, ptrdiff_t ldh,
                      float *restrict dg, ptrdiff_t n, ptrdiff_t H);

/* ---- AVX-512 kernels (see _cpu_kernels_impl.c). Where they are not built
 * (no HAVE_PACKED) they are no-ops that the bindings never reach: they
 * check cpu_has_avx512f(), 0 there, first. ---- */
#ifdef HAVE_PACKED
#define KERNELS_PACKED_BUILT 1
#else
#define KERNELS_PACKED_BUILT 0
#endif
/* Whether this CPU runs the AVX-512 kernels. */
KERNEL int cpu_has_avx512f(void);
/* [Wx | Wh] (G H, nI + H) in panels of U units x G gates. */
KERNEL void step_pack(const float *restrict Wx, const float *restrict Wh, float *restrict packed,
                      ptrdiff_t nI, ptrdiff_t H, int G, int U);
/* B (K, N) in panels of 64 columns, for gemm_packed. */
KERNEL void pack_b(const float *restrict B, float *restrict packed, ptrdiff_t K, ptrdiff_t N);
/* C (M, N) (+)= A (M, K) @ B, B from pack_b. */
KERNEL void gemm_packed(const float *restrict A, const float *restrict packed, float *restrict C,
                        ptrdiff_t M, ptrdiff_t K, ptrdiff_t N, int accumulate);
/* C (M, nX + nH) (+)= A.T @ [X | H[prev]]; packed and strips: scratch. */
KERNEL void wgrad(const float *restrict A, ptrdiff_t lda, ptrdiff_t M, const float *restrict X,
                  ptrdiff_t ldx, ptrdiff_t nX, const float *restrict Hs, ptrdiff_t ldh,
                  ptrdiff_t nH, const int32_t *restrict prev, ptrdiff_t K, float *restrict C,
                  int accumulate, float *restrict packed, float *restrict strips);
/* All steps of one direction, steps[s] = (start, size, prev_start, n_prev). */
KERNEL void run_steps(Cell cell, const float *restrict X, float *restrict Hs,
                      const float *restrict packed, const float *restrict bias,
                      const float *restrict bh, const int64_t *restrict steps, ptrdiff_t n_steps,
                      float *restrict G, float *restrict state, float *restrict TC, ptrdiff_t nI,
                      ptrdiff_t H, ptrdiff_t ld);
/* Backprop through all steps of one direction, last step first. */
KERNEL void run_back_steps(Cell cell, const int64_t *restrict steps, ptrdiff_t n_steps,
                           float *restrict dH, float *restrict dG,
                           const float *restrict Wh_packed, const float *restrict G,
                           const float *restrict state, const float *restrict TC,
                           const float *restrict Hs, ptrdiff_t ldh, float *restrict drec,
                           float *restrict dc, ptrdiff_t H);

#ifdef HAVE_CLONES
#define KERNELS_CLONES_BUILT 1
#else
#define KERNELS_CLONES_BUILT 0
#endif

#endif
