/* Fused gate arithmetic of one RNN time step, float32, for the CPU.
 *
 * The matrix products stay in numpy (OpenBLAS); these kernels replace the
 * dozen numpy passes per step of `cells.py` with one pass over the step's
 * rows. Buffers are C-contiguous float32, taken through the buffer protocol;
 * the layouts are those of `cells.py`. Transcendentals use a branch-free exp
 * so that the compiler vectorises the inner loops (with -fno-trapping-math); `target_clones` builds
 * AVX-512, AVX2 and baseline versions and picks one at load time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if !defined(CLONES_OFF) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
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
    float y = 1.0f - 2.0f / (exp_(2.0f * __builtin_fabsf(x)) + 1.0f);
    return __builtin_copysignf(y, x);
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

/* Writes dg[:, 2H:] = d x_n and drec = d[x_r, x_z, rn] (n, 3H);
 * dh_prev (n_prev, H) += dh * z. */
CLONES static void gru_bwd(const float *restrict dh, const float *restrict g, const float *restrict rn,
                           const float *restrict h_prev, float *restrict dg, float *restrict drec,
                           float *restrict dh_prev, Py_ssize_t n, Py_ssize_t n_prev,
                           Py_ssize_t H) {
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *restrict gr = g + r * 3 * H, *restrict gz = gr + H, *restrict gn = gz + H;
        const float *restrict dhr = dh + r * H, *restrict rnr = rn + r * H;
        float *restrict dn = dg + r * 3 * H + 2 * H;
        float *restrict dr = drec + r * 3 * H, *restrict dz = dr + H, *restrict drn = dz + H;
        int has_prev = r < n_prev;
        const float *restrict hp = has_prev ? h_prev + r * H : NULL;
        float *restrict dhp = has_prev ? dh_prev + r * H : NULL;
        for (Py_ssize_t j = 0; j < H; j++) {
            float rg = gr[j], zg = gz[j], nn = gn[j], d = dhr[j];
            float prev = has_prev ? hp[j] : 0.0f;
            float dnp = d * (1.0f - zg) * (1.0f - nn * nn);
            dn[j] = dnp;
            dz[j] = d * (prev - nn) * zg * (1.0f - zg);
            dr[j] = dnp * rnr[j] * rg * (1.0f - rg);
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

CLONES static void elman_bwd(const float *restrict dh, const float *restrict h, float *restrict dg,
                             Py_ssize_t n, Py_ssize_t H) {
    for (Py_ssize_t i = 0; i < n * H; i++) dg[i] = dh[i] * (1.0f - h[i] * h[i]);
}

/* ---- Python bindings --------------------------------------------------- */

/* Borrow a C-contiguous float32 buffer of at least `need` floats. */
static int get_f32(PyObject *obj, Py_buffer *view, Py_ssize_t need,
                   int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) return -1;
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a float32 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len / 4 < need) {
        PyErr_Format(PyExc_ValueError, "%s has %zd floats, needs %zd", name,
                     view->len / 4, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#define MAX_BUFS 10

typedef struct {
    Py_buffer views[MAX_BUFS];
    int count;
} Buffers;

static void release(Buffers *b) {
    for (int i = 0; i < b->count; i++) PyBuffer_Release(&b->views[i]);
}

static float *take(Buffers *b, PyObject *obj, Py_ssize_t need, int writable,
                   const char *name) {
    if (need == 0) {
        static float dummy;
        return &dummy;
    }
    if (get_f32(obj, &b->views[b->count], need, writable, name) != 0) return NULL;
    return (float *)b->views[b->count++].buf;
}

#define TAKE(var, obj, need, w)                                \
    float *var = take(&bufs, obj, need, w, #var);              \
    if (var == NULL) { release(&bufs); return NULL; }

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
    TAKE(g, o_g, n * 4 * H, 1);
    TAKE(rec, o_rec, n_prev * 4 * H, 0);
    TAKE(c_prev, o_cp, n_prev * H, 0);
    TAKE(c, o_c, n * H, 1);
    TAKE(tc, o_tc, n * H, 1);
    TAKE(h, o_h, n * H, 1);
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
    TAKE(dh, o_dh, n * H, 0);
    TAKE(dc, o_dc, n * H, 1);
    TAKE(g, o_g, n * 4 * H, 0);
    TAKE(c_prev, o_cp, n_prev * H, 0);
    TAKE(tc, o_tc, n * H, 0);
    TAKE(dg, o_dg, n * 4 * H, 1);
    TAKE(dc_prev, o_dcp, n_prev * H, 1);
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
    TAKE(g, o_g, n * 3 * H, 1);
    TAKE(rec, o_rec, n_prev * 3 * H, 0);
    TAKE(bh, o_bh, H, 0);
    TAKE(h_prev, o_hp, n_prev * H, 0);
    TAKE(rn, o_rn, n * H, 1);
    TAKE(h, o_h, n * H, 1);
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
    TAKE(dh, o_dh, n * H, 0);
    TAKE(g, o_g, n * 3 * H, 0);
    TAKE(rn, o_rn, n * H, 0);
    TAKE(h_prev, o_hp, n_prev * H, 0);
    TAKE(dg, o_dg, n * 3 * H, 1);
    TAKE(drec, o_drec, n * 3 * H, 1);
    TAKE(dh_prev, o_dhp, n_prev * H, 1);
    Py_BEGIN_ALLOW_THREADS
    gru_bwd(dh, g, rn, h_prev, dg, drec, dh_prev, n, n_prev, H);
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
    TAKE(g, o_g, n * H, 0);
    TAKE(rec, o_rec, n_prev * H, 0);
    TAKE(h, o_h, n * H, 1);
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
    TAKE(dh, o_dh, n * H, 0);
    TAKE(h, o_h, n * H, 0);
    TAKE(dg, o_dg, n * H, 1);
    Py_BEGIN_ALLOW_THREADS
    elman_bwd(dh, h, dg, n, H);
    Py_END_ALLOW_THREADS
    release(&bufs);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"lstm_fwd", py_lstm_fwd, METH_VARARGS, "LSTM gates of one step, forward."},
    {"lstm_bwd", py_lstm_bwd, METH_VARARGS, "LSTM gates of one step, backward."},
    {"gru_fwd", py_gru_fwd, METH_VARARGS, "GRU gates of one step, forward."},
    {"gru_bwd", py_gru_bwd, METH_VARARGS, "GRU gates of one step, backward."},
    {"elman_fwd", py_elman_fwd, METH_VARARGS, "Elman step, forward."},
    {"elman_bwd", py_elman_bwd, METH_VARARGS, "Elman step, backward."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_kernels",
    "Fused float32 gate arithmetic of one RNN step (CPU).", -1, methods,
};

PyMODINIT_FUNC PyInit__cpu_kernels(void) { return PyModule_Create(&module); }
