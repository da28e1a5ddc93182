// The reference backend: the plain scalar version of every kernel family. Every
// other ISA's table starts as a copy of it and replaces the slots it speeds up,
// so a family without a SIMD kernel on some ISA still runs (correct, slower).
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/quant_act.h"

namespace ternlab {

const Backend& scalar_backend() {
    // The scalar ternary kernel handles any T, so it is the GEMV too.
    static const Backend b{
        "scalar",
        quant_row_scalar,
        {gemm_scalar, gemm3_scalar},
        {gemm_scalar, gemm3_scalar},
        {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
         float_matmul_q6_k_scalar, float_matmul_q4_0_scalar},
        {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
         float_matmul_q6_k_scalar, float_matmul_q4_0_scalar},
        "scalar",
        &kAttentionScalar,
        1,
        silu_mul_scalar,
        kBits2};
    return b;
}

}  // namespace ternlab
