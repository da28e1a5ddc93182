// The ternary GEMV and GEMM kernels (2-bit and base-3 layouts) for the ARMv8.2 dot
// product (code: neon/gemm_neon_kernels.h).
#include "kernels/float_matmul.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_NEON
#define TL_NEON_DOT 1
#define TL_NEON_FN TL_NEONDOT
#include "kernels/neon/gemm_neon_kernels.h"

namespace ternlab {
void gemv_neondot(const GemmArgs& a, int64_t o0, int64_t o1) { gemv_bits2(a, o0, o1); }
void gemm_neondot(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_bits2(a, o0, o1); }
void gemv3_neondot(const GemmArgs& a, int64_t o0, int64_t o1) { gemv_base3(a, o0, o1); }
void gemm3_neondot(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_base3(a, o0, o1); }
}  // namespace ternlab

#endif
