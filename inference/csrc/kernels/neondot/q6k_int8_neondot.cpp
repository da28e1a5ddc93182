// The Q6_K x int8 kernels for the ARMv8.2 dot product (code: neon/q6k_int8_neon_kernels.h).
#include "kernels/float_matmul.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_NEON
#define TL_NEON_DOT 1
#define TL_NEON_FN TL_NEONDOT
#include "kernels/neon/q6k_int8_neon_kernels.h"

namespace ternlab {
void float_gemv_q6_k_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    q6k_gemv(a, o0, o1);
}
void float_gemm_q6_k_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    q6k_gemm(a, o0, o1);
}
}  // namespace ternlab

#endif
