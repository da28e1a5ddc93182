// The ternary GEMV and GEMM kernels (2-bit and base-3 layouts) for baseline ARMv8-A
// (code: gemm_neon_kernels.h).
#include "kernels/float_matmul.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_NEON
#define TL_NEON_DOT 0
#define TL_NEON_FN
#include "kernels/neon/gemm_neon_kernels.h"

namespace ternlab {
void gemv_neon(const GemmArgs& a, int64_t o0, int64_t o1) { gemv_bits2(a, o0, o1); }
void gemm_neon(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_bits2(a, o0, o1); }
void gemv3_neon(const GemmArgs& a, int64_t o0, int64_t o1) { gemv_base3(a, o0, o1); }
void gemm3_neon(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_base3(a, o0, o1); }
}  // namespace ternlab

#else  // not aarch64: never selected (no backend table holds it)

namespace ternlab {
void gemv_neon(const GemmArgs&, int64_t, int64_t) {}
void gemm_neon(const GemmArgs&, int64_t, int64_t) {}
void gemv3_neon(const GemmArgs&, int64_t, int64_t) {}
void gemm3_neon(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
