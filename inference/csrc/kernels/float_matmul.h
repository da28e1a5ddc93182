// Float weight x float32 activation products for the F32, F16, Q8_0, Q6_K and
// Q4_0 tensors of a GGUF model (the FP16 baseline's layers and the output head):
//
//   y[t, o] = sum_k w[o, k] * x[t, k]
//
// F32 and F16 rows are multiplied in float32 with float32 activations: the
// weights stay in their file format and are converted in registers (an fp16
// value is exact in float32), so the only rounding is the float32
// accumulation. The quantized formats quantize the activations to int8 and
// multiply in integers, as ggml does: Q6_K per 256-value block (q6k_int8.h,
// ggml's Q6_K x Q8_K), Q8_0 and Q4_0 per 32-value block (q8_0_int8.h and
// q4_0_int8.h; ggml's Q8_0 x Q8_0 and Q4_0 x Q8_0). Each of those headers
// defines its numerics; their kernels are bit-identical across ISAs. The rest
// of this comment is about F32 and F16.
//
// Every output element is computed by the same sequence of operations whatever
// the thread split, the row tiling or the token count (GEMV and GEMM share
// it), so a token gives the same logits in a batch (prefill) and alone
// (decode). On x86 the columns are taken 8 at a time (the last step masked),
// step s goes with a fused multiply-add into accumulator s % 4, and the
// accumulators and their lanes are added in a fixed tree; the avx2 and avx512
// kernels share this sequence (avx512 reuses the AVX2 GEMV, see
// float_matmul_avx512.cpp), so their results are identical. The scalar
// reference uses 8 lanes with a separate multiply and add: it agrees with them
// to within float32 summation error, not bit for bit.
#pragma once

#include <cstdint>
#include <cstring>

namespace ternlab {

// Row formats of float weight tensors (index into Backend::float_gemv/float_gemm).
enum FloatFormat : int {
    kFmtF32 = 0,
    kFmtF16 = 1,
    kFmtQ8_0 = 2,
    kFmtQ6_K = 3,
    kFmtQ4_0 = 4,
    kNumFloatFormats = 5
};

constexpr int64_t kQ8Block = 32;       // Q8_0: values per block
constexpr int64_t kQ8BlockBytes = 34;  // fp16 d, then 32 int8 codes

constexpr int64_t kQ6KValues = 256;      // Q6_K: values per block (q6k.h)
constexpr int64_t kQ6KRowBlockBytes = 210;
constexpr int64_t kQ4Block = 32;       // Q4_0: values per block (q4_0_int8.h)
constexpr int64_t kQ4BlockBytes = 18;  // fp16 d, then 16 bytes of nibbles

// Bytes of one row of k values in `fmt` (k a multiple of the block for Q8_0, Q6_K, Q4_0).
inline int64_t float_row_bytes(FloatFormat fmt, int64_t k) {
    switch (fmt) {
        case kFmtF32: return 4 * k;
        case kFmtF16: return 2 * k;
        case kFmtQ8_0: return k / kQ8Block * kQ8BlockBytes;
        case kFmtQ4_0: return k / kQ4Block * kQ4BlockBytes;
        default: return k / kQ6KValues * kQ6KRowBlockBytes;
    }
}

struct FloatGemmArgs {
    const uint8_t* w;    // row o at w + o * row_bytes
    int64_t row_bytes;   // float_row_bytes(fmt, K)
    int64_t K;           // values per row
    const float* x;      // activations [T, K], row-major
    int64_t T;           // tokens
    float* y;            // output, y[t * y_stride + o]
    int64_t y_stride;    // >= number of rows
};

// Computes rows [o0, o1) of y for every token.
using FloatKernel = void (*)(const FloatGemmArgs& a, int64_t o0, int64_t o1);

// ---- scalar helpers (also the reference) -------------------------------------
// A 16-bit field of a GGUF block at any alignment (little-endian, as GGUF and
// every target CPU).
inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
float fp16_to_fp32(uint16_t h);
// fp16_to_fp32 without branches, inline (the scalar f16 attention reference's loops
// vectorize with it): the normal path rebiases the exponent by a multiply with 2^-112
// (exact), the subnormal one subtracts 0.5 from 0.5 + m 2^-24 (exact). Equal to
// fp16_to_fp32 for every half except signalling NaNs, which it may quiet (the self-test
// checks all 65536).
inline float fp16_to_fp32_inline(uint16_t h) {
    const uint32_t w = static_cast<uint32_t>(h) << 16, sign = w & 0x80000000u, two_w = w + w;
    const uint32_t nbits = (two_w >> 4) + (0xe0u << 23), sbits = (two_w >> 17) | (126u << 23);
    float normal, subnormal;
    std::memcpy(&normal, &nbits, sizeof normal);
    std::memcpy(&subnormal, &sbits, sizeof subnormal);
    normal *= 0x1.0p-112f;
    subnormal -= 0.5f;
    uint32_t nout, sout;
    std::memcpy(&nout, &normal, sizeof nout);
    std::memcpy(&sout, &subnormal, sizeof sout);
    const uint32_t sub = 0u - static_cast<uint32_t>(two_w < (1u << 27));  // all ones or 0
    const uint32_t out = sign | (sout & sub) | (nout & ~sub);
    float f;
    std::memcpy(&f, &out, sizeof f);
    return f;
}
// The IEEE half nearest to f, ties to even (what torch's .half() and numpy's
// astype(float16) give): beyond the largest half (65504) +-inf, below 2^-14
// subnormal halves, NaN a quiet NaN. The f16 KV cache is written with it.
uint16_t fp32_to_fp16(float f);
// One row of k values of `fmt` at `src` as float32.
void float_row_to_f32(FloatFormat fmt, const uint8_t* src, int64_t k, float* out);
// Per-thread scratch of at least n floats, 64-byte aligned (kernel panels).
float* float_scratch(int64_t n);

// ---- kernels -------------------------------------------------------------------
void float_matmul_f32_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_matmul_f16_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_matmul_q6_k_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // q6k_int8.cpp

void float_gemv_f32_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemv_f16_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemm_f32_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemm_f16_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);

void float_gemm_f32_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemm_f16_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1);

// Q6_K x int8 (q6k_int8.h): all bit-identical with the scalar reference.
void float_gemv_q6_k_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemm_q6_k_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemv_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemm_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemv_q6_k_neon(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // q6k_int8_neon.cpp
void float_gemm_q6_k_neon(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_gemv_q6_k_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // sdot
void float_gemm_q6_k_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1);

// Q4_0 x int8 (q4_0_int8.h): all bit-identical with the scalar reference.
void float_matmul_q4_0_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // q4_0_int8.cpp
void float_matmul_q4_0_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // GEMV and GEMM
void float_matmul_q4_0_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_matmul_q4_0_neon(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_matmul_q4_0_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1);

// Q8_0 x int8 (q8_0_int8.h): all bit-identical with the scalar reference.
void float_matmul_q8_0_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // q8_0_int8.cpp
void float_matmul_q8_0_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1);  // GEMV and GEMM
void float_matmul_q8_0_neon(const FloatGemmArgs& a, int64_t o0, int64_t o1);
void float_matmul_q8_0_neondot(const FloatGemmArgs& a, int64_t o0, int64_t o1);

}  // namespace ternlab
