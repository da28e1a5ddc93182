// The AVX-512 backends (F + BW + DQ + VL + VNNI), and avx512vbmi: the same plus
// the base-3 kernels that decode with VBMI byte permutes.
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/quant_act.h"

#if defined(__x86_64__) || defined(__i386__)

namespace ternlab {

const Backend& avx512_backend() {
    static const Backend b = [] {
        Backend t = avx2_backend();  // base-3 and attention keep the AVX2 kernels
        t.name = "avx512";
        t.quant_row = quant_row_avx512;
        t.ternary_gemv[kBits2] = gemv_avx512;
        t.ternary_gemm[kBits2] = gemm_avx512;
        // The 512-bit float GEMMs reproduce the AVX2 GEMV's per-element sequence, so
        // both give identical results. F32 and F16 rows keep the 256-bit GEMV, which
        // streams them at the memory bandwidth (its 512-bit twin decoded the 2b-shape
        // F16 model more slowly on Zen 4: 3.8-4.1 against 4.8-4.9 tokens/s).
        t.float_gemv[kFmtQ6_K] = float_gemv_q6_k_avx512;
        t.float_gemm[kFmtF32] = float_gemm_f32_avx512;
        t.float_gemm[kFmtF16] = float_gemm_f16_avx512;
        t.float_gemm[kFmtQ6_K] = float_gemm_q6_k_avx512;
        // Q4_0 decode streams as fast or faster with the 256-bit kernel (one thread, 2B
        // head: 9.6 against 9.8 ms; whole-model decode 23.0-25.8 against 22.7-23.1
        // tok/s); the 512-bit one is faster for several tokens (3.5 against 4.3-4.9 ms
        // a token for 16). Both give identical results (q4_0_int8.h).
        t.float_gemv[kFmtQ4_0] = float_matmul_q4_0_avx2;
        t.float_gemm[kFmtQ4_0] = float_matmul_q4_0_avx512;
        // Q8_0 keeps the AVX2 table's int8 kernels (q8_0_int8.h): a VNNI twin, as Q4_0
        // has, was not written on the AVX2-only machine it would have been tested on.
        t.float_isa = "avx512";
        return t;
    }();
    return b;
}

const Backend& avx512vbmi_backend() {
    static const Backend b = [] {
        Backend t = avx512_backend();
        t.name = "avx512vbmi";
        t.ternary_gemv[kBase3] = gemv3_avx512vbmi;
        t.ternary_gemm[kBase3] = gemm3_avx512vbmi;
        t.preferred_layout = kBase3;  // 20% fewer bytes at the 2-bit kernels' speed
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
