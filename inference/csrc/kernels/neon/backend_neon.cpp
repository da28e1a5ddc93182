// The NEON backend (baseline ARMv8-A AdvSIMD). F32 and F16 rows keep the
// scalar reference. The 2-bit layout stays preferred: the base-3 kernels are
// bit-exact (qemu self-test) but have not been timed on an aarch64 CPU yet.
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/quant_act.h"

#if defined(__aarch64__)

namespace ternlab {

const Backend& neon_backend() {
    static const Backend b = [] {
        Backend t = scalar_backend();
        t.name = "neon";
        t.quant_row = quant_row_neon;
        t.ternary_gemv[kBits2] = gemv_neon;
        t.ternary_gemm[kBits2] = gemm_neon;
        t.ternary_gemv[kBase3] = gemv3_neon;
        t.ternary_gemm[kBase3] = gemm3_neon;
        t.float_gemv[kFmtQ6_K] = float_gemv_q6_k_neon;
        t.float_gemm[kFmtQ6_K] = float_gemm_q6_k_neon;
        t.float_gemv[kFmtQ8_0] = float_matmul_q8_0_neon;
        t.float_gemm[kFmtQ8_0] = float_matmul_q8_0_neon;
        t.float_gemv[kFmtQ4_0] = float_matmul_q4_0_neon;
        t.float_gemm[kFmtQ4_0] = float_matmul_q4_0_neon;
        t.attention = &kAttentionNeon;
        t.attention_lanes = 4;
        t.silu_mul = silu_mul_neon;
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
