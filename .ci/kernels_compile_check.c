/* Compile check of the kernels for other compilers and targets (.ci/run):
 * takes every kernel's address, so that each is compiled, not dropped as an
 * unused static function. */
#include "_cpu_kernels.h"

typedef void (*kernel)(void);

const kernel kernels[] = {
    (kernel)lstm_fwd, (kernel)lstm_bwd, (kernel)gru_fwd, (kernel)gru_bwd,
    (kernel)elman_fwd, (kernel)elman_bwd,
#ifdef HAVE_PACKED
    (kernel)cpu_has_avx512f, (kernel)step_pack, (kernel)pack_b, (kernel)gemm_packed,
    (kernel)wgrad, (kernel)run_steps, (kernel)run_back_steps,
#endif
};
