// The Q8_0 x int8 kernel for baseline ARMv8-A (code: q8_0_int8_neon_kernels.h).
#include "kernels/float_matmul.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_NEON
#define TL_NEON_DOT 0
#define TL_NEON_FN
#include "kernels/neon/q8_0_int8_neon_kernels.h"

namespace ternlab {
void float_matmul_q8_0_neon(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    q8_0_matmul(a, o0, o1);
}
}  // namespace ternlab

#else  // not aarch64: never selected (no backend table holds it)

namespace ternlab {
void float_matmul_q8_0_neon(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
