// Chooses the float kernels for the ISA the ternary kernels use (set_isa
// switches both), so one knob selects every kernel the engine runs.
#include <cstring>

#include "dispatch.h"
#include "float_matmul.h"
#include "isa.h"

namespace ternlab {

namespace {

const FloatKernelTable kScalar{
    "scalar",
    {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
     float_matmul_q6_k_scalar},
    {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
     float_matmul_q6_k_scalar}};

#if TERNLAB_X86
const FloatKernelTable kAvx2{"avx2",
                             {float_gemv_f32_avx2, float_gemv_f16_avx2, float_gemv_q8_0_avx2,
                              float_gemv_q6_k_avx2},
                             {float_gemm_f32_avx2, float_gemm_f16_avx2, float_gemm_q8_0_avx2,
                              float_gemm_q6_k_avx2}};
// The 512-bit kernels reproduce the AVX2 GEMV's per-element sequence, so both
// tables give identical results (Q6_K's integer kernels: every table gives the
// scalar reference's result, q6k_int8.h). F32 rows need no conversion: the
// 256-bit GEMV already streams them at the memory bandwidth.
const FloatKernelTable kAvx512{
    "avx512",
    {float_gemv_f32_avx2, float_gemv_f16_avx512, float_gemv_q8_0_avx512, float_gemv_q6_k_avx512},
    {float_gemm_f32_avx512, float_gemm_f16_avx512, float_gemm_q8_0_avx512,
     float_gemm_q6_k_avx512}};

bool has_f16c() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") != 0;
}
#endif

#if TERNLAB_NEON
// Only Q6_K has NEON kernels (integer, bit-identical with the reference); the
// other formats take the scalar reference.
const FloatKernelTable kNeon{
    "neon",
    {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
     float_gemv_q6_k_neon},
    {float_matmul_f32_scalar, float_matmul_f16_scalar, float_matmul_q8_0_scalar,
     float_gemm_q6_k_neon}};
#endif

}  // namespace

const FloatKernelTable* float_kernel_table(const char* isa) {
    if (std::strcmp(isa, "scalar") == 0) return &kScalar;
#if TERNLAB_X86
    // The ternary table's availability check covers AVX2/FMA and AVX-512 F/BW/VL;
    // the float kernels also convert fp16 with F16C.
    static const bool f16c = has_f16c();
    if (std::strcmp(isa, "avx2") == 0) return f16c && kernel_table("avx2") ? &kAvx2 : nullptr;
    if (std::strcmp(isa, "avx512") == 0 || std::strcmp(isa, "avx512vbmi") == 0)
        return f16c && kernel_table(isa) ? &kAvx512 : nullptr;  // vbmi adds ternary kernels only
#endif
#if TERNLAB_NEON
    if (std::strcmp(isa, "neon") == 0) return kernel_table(isa) ? &kNeon : nullptr;
#endif
    return nullptr;
}

const FloatKernelTable& float_kernels() {
    const FloatKernelTable* t = float_kernel_table(kernels().name);
    return t ? *t : kScalar;
}

}  // namespace ternlab
