// The NEON backend with the ARMv8.2 dot product: neon's table with every int8
// product (ternary, Q6_K, Q4_0, Q8_0) taken by its sdot twin (neondot/).
#include "kernels/dispatch.h"
#include "kernels/gemm.h"

#if defined(__aarch64__)

namespace ternlab {

const Backend& neondot_backend() {
    static const Backend b = [] {
        Backend t = neon_backend();
        t.name = "neondot";
        t.ternary_gemv[kBits2] = gemv_neondot;
        t.ternary_gemm[kBits2] = gemm_neondot;
        t.ternary_gemv[kBase3] = gemv3_neondot;
        t.ternary_gemm[kBase3] = gemm3_neondot;
        t.float_gemv[kFmtQ6_K] = float_gemv_q6_k_neondot;
        t.float_gemm[kFmtQ6_K] = float_gemm_q6_k_neondot;
        t.float_gemv[kFmtQ8_0] = float_matmul_q8_0_neondot;
        t.float_gemm[kFmtQ8_0] = float_matmul_q8_0_neondot;
        t.float_gemv[kFmtQ4_0] = float_matmul_q4_0_neondot;
        t.float_gemm[kFmtQ4_0] = float_matmul_q4_0_neondot;
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
