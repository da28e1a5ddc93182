// The Q4_0 x int8 kernel for the ARMv8.2 dot product (code: neon/q4_0_int8_neon_kernels.h).
#include "kernels/float_matmul.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_NEON
#define TL_NEON_DOT 1
#define TL_NEON_FN TL_NEONDOT
#include "kernels/neon/q4_0_int8_neon_kernels.h"

namespace ternlab {
void float_matmul_q4_0_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    q4_0_matmul(a, o0, o1);
}
}  // namespace ternlab

#endif
