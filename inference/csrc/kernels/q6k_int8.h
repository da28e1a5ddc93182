// Q6_K weights x int8 activations (ggml's Q6_K x Q8_K scheme), the kernels of
// the float tables' Q6_K entries (float_matmul.h). Decoding each row to float32
// and running the F32 kernel was compute-bound (6 tokens/s on the 2B shape
// against 35 with a Q8_0 head); here the 6-bit levels meet int8 activation
// codes in integer multiply-adds and the kernel keeps up with the memory.
//
// Numerics, for K a multiple of 256 (blocks b = 0 .. K/256 - 1):
//
//   activations: each token's row x[K] is quantized per block of 256 values
//     with the ternary layers' per-row quantizer (QuantRowKernel, common.h):
//       backend().quant_row(x + 256 b, 256, code + 256 b, &s[b], &sum)
//       s[b] = (1 / max(max |x_b|, EPS)) * 127,  code = clamp(round_half_even(x s[b]), -128, 127)
//     bit-exact across ISAs. A token it refuses (a non-finite value) gets NaN
//     outputs, as a float kernel would produce (the model then reports it).
//   per row o and block b (exact int32: |q - 32| <= 32, |code| <= 128,
//     |scale| <= 128, so |isum_b| <= 2^27):
//       isum_b = sum_{i < 16} scale_i * sum_{j in sub-block i} (q_j - 32) * code_j
//   float32, blocks in increasing order, separate multiply and add
//   (-ffp-contract=off), d_b the block's fp16 d as float32:
//       f_b = d_b / s[b]                       one division
//       acc = 0;  acc = acc + float(isum_b) * f_b   for b = 0, 1, ...
//       y[t, o] = acc
//
// isum_b is exact, so however a kernel sums it (SIMD lanes, pairs, the -32 as
// 32 * sum_i scale_i * xsum_i with xsum_i the sum of sub-block i's codes) it
// gets the same integer; the float steps are the same three IEEE operations in
// the same order (q6k_accumulate). Hence every kernel (scalar reference, AVX2,
// AVX-512), every thread split and GEMV vs GEMM give identical results, and a
// token's logits are the same in a batch (prefill) and alone (decode).
//
// Error against the dequantized weights in exact arithmetic: rounding x to
// code / s[b] moves each value by at most 0.5 / s[b], so
//   |y - sum_k w_k x_k| <= sum_b (0.5 / s[b]) sum_{k in b} |w_k|
// plus float32 rounding of the per-block terms and the sum.
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/float_matmul.h"

namespace ternlab {

// One thread's int8 copy of the activations [T, K] (quantized per call).
struct Q6KActs {
    const int8_t* codes;    // [T * K]; zeros for a refused token
    const float* s;         // [T * K / 256]: s[b] of each block
    const int16_t* xsum;    // [T * K / 16]: sum of each 16 codes (|.| <= 2048)
    const uint8_t* finite;  // [T]: 0 for a token quant_row refused
};

// Quantizes x [T, K] with the current ISA's quant_row into this thread's
// scratch, valid until the thread's next call.
Q6KActs q6k_quantize_acts(const float* x, int64_t T, int64_t K);

// The float kernels' per-thread scratch (float_scratch), as >= n bytes for a GEMM panel.
inline uint8_t* panel_bytes(int64_t n) {
    return reinterpret_cast<uint8_t*>(float_scratch((n + 3) / 4));
}

inline constexpr float kQ6KNaN = std::numeric_limits<float>::quiet_NaN();

// The float step every kernel runs per block (see above).
inline float q6k_accumulate(float acc, int32_t isum, float d, float s) {
    return acc + static_cast<float>(isum) * (d / s);
}

}  // namespace ternlab
