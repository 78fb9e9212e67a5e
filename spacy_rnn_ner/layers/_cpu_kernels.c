/* Python bindings of the kernels in _cpu_kernels.h: float32 arrays taken
 * through the buffer protocol; each binding checks dtype, number of
 * dimensions, shape and strides against its size arguments, with sizes
 * multiplied without overflow, before any kernel runs. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_cpu_kernels.h"

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
    packed_ok = cpu_has_avx512f();
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
