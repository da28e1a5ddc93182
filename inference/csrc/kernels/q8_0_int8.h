// Q8_0 weights x int8 activations (ggml's Q8_0 x Q8_0 scheme), the kernels of
// the float tables' Q8_0 entries (float_matmul.h). The FP16 baseline is often
// exported as Q8_0; with float activations its decode GEMV converted every code
// to float and ran at 0.68-0.93x llama.cpp's (docs/engine-benchmarks.md), while
// int8 codes times int8 codes is one instruction per 4 (VNNI) or 2 (maddubs)
// products.
//
// Block j of a GGUF row (32 values, 34 bytes): fp16 d_j, then 32 int8 codes q;
// value v is d_j * q_v (q in -128..127: a code of -128 is read as such). The
// kernels read rows repacked at load (q80_repack_row), the same bytes in
// another order: per group of 8 blocks (the last group may hold fewer), the
// group's fp16 d's, then its blocks' codes. So one load brings 8 scales, and
// the codes of two blocks sit side by side (one 512-bit load).
//
// Numerics, for K a multiple of 32 (blocks b = 0 .. K/32 - 1):
//
//   activations: each token's block j of x is quantized with the ternary
//     layers' per-row quantizer (QuantRowKernel, common.h), bit-exact across ISAs:
//       backend().quant_row(x + 32 j, 32, code + 32 j, &s_j, &sum)
//       r_j = 1 / s_j                               one float32 division
//     A token it refuses (a non-finite value) gets NaN outputs.
//   lanes: lane l = 0..7 of block b covers its values 4l .. 4l+3:
//       P_b[l] = sum_{v = 4l}^{4l+3} q_v * code_v        exact int32 (|.| <= 2^16)
//   float32, with fused multiply-adds, two 8-lane accumulators E (even blocks)
//   and O (odd blocks), both starting at 0, blocks in increasing order:
//       F_b = d_b * r_b
//       acc[l] = fma(float(P_b[l]), F_b, acc[l])        acc = E if b even, else O
//       S[l] = E[l] + O[l]
//       y[t, o] = ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7))
//
// The integer lanes are exact, so however a kernel forms them (maddubs of |q|
// and sign-moved codes, VNNI on q + 128 less the 128 * code sums, vmull_s8) it
// gets the same P; the float steps are the same IEEE operations in the same
// order. So every kernel (scalar reference, AVX2, AVX-512, NEON), every thread
// split, and GEMV vs GEMM give identical results. An AVX-512 vector holds two
// blocks, the even one in its low half: E and O are its halves.
//
// Error against the dequantized weights in exact arithmetic: rounding x to
// code / s_j moves each value by at most 0.5 / s_j (plus the float32 steps).
#pragma once

#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/int8_lanes.h"

namespace ternlab {

constexpr int64_t kQ80GroupBlocks = 8;  // blocks per group of a repacked row

// A GGUF row of K values (K / 32 blocks) in the kernels' order, into dst.
void q80_repack_row(const uint8_t* src, int64_t K, uint8_t* dst);

// One thread's int8 copy of the activations [T, K] (quantized per call).
struct Q80Acts {
    const int8_t* codes;    // [T * K], value order; zeros for a refused token
    const float* r;         // [T * K / 32 + 8]: r_j = 1 / s_j (8 spare: whole-group loads)
    const int32_t* off;     // [T * K / 32 * 8]: -128 * (lane l's 4 codes summed); or null
    const uint8_t* finite;  // [T]: 0 for a token quant_row refused
};

// Quantizes x [T, K] with the current ISA's quant_row into this thread's
// scratch (the lane offsets only if `offsets`); valid until the thread's next call.
Q80Acts q80_quantize_acts(const float* x, int64_t T, int64_t K, bool offsets);

// Rows per GEMM tile: their weights (K / 32 * 34 bytes each) stay in cache while
// every token of the call passes over them. As for Q4_0 (q4_0_int8.h), each ISA
// writes this row loop out with its row_dot inlined.
constexpr int64_t kQ80RowTile = 16;

}  // namespace ternlab
