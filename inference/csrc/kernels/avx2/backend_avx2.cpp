// The AVX2 backend (AVX2 + FMA + F16C): every kernel family has an AVX2 kernel.
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/quant_act.h"

#if defined(__x86_64__) || defined(__i386__)

namespace ternlab {

const Backend& avx2_backend() {
    static const Backend b = [] {
        Backend t = scalar_backend();
        t.name = "avx2";
        t.quant_row = quant_row_avx2;
        t.ternary_gemv[kBits2] = gemv_avx2;
        t.ternary_gemm[kBits2] = gemm_avx2;
        // Base-3 decodes at about half the 2-bit kernels' speed here (compute-bound,
        // docs/engine-kernels.md), so the 2-bit layout stays preferred.
        t.ternary_gemv[kBase3] = gemv3_avx2;
        t.ternary_gemm[kBase3] = gemm3_avx2;
        t.float_gemv[kFmtF32] = float_gemv_f32_avx2;
        t.float_gemv[kFmtF16] = float_gemv_f16_avx2;
        t.float_gemv[kFmtQ8_0] = float_matmul_q8_0_avx2;
        t.float_gemv[kFmtQ6_K] = float_gemv_q6_k_avx2;
        t.float_gemm[kFmtF32] = float_gemm_f32_avx2;
        t.float_gemm[kFmtF16] = float_gemm_f16_avx2;
        t.float_gemm[kFmtQ8_0] = float_matmul_q8_0_avx2;
        t.float_gemm[kFmtQ6_K] = float_gemm_q6_k_avx2;
        t.float_gemv[kFmtQ4_0] = float_matmul_q4_0_avx2;
        t.float_gemm[kFmtQ4_0] = float_matmul_q4_0_avx2;
        t.float_isa = "avx2";
        t.attention = &kAttentionAvx2;
        t.attention_lanes = 8;
        t.silu_mul = silu_mul_avx2;
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
