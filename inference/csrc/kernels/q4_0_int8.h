// Q4_0 weights x int8 activations (ggml's Q4_0 x Q8_0 scheme), the kernels of
// the float tables' Q4_0 entries (float_matmul.h). A Q4_0 head is 4.5 bits a
// weight against Q6_K's 6.56: decode reads 185 MB less per token on the 2B
// shape (docs/engine-benchmarks.md has the perplexity cost).
//
// Block j of a GGUF row (32 values, 18 bytes): fp16 d_j, then 16 bytes qs;
// value v is d_j * (q_v - 8) with q_v the low nibble of qs[v] (v < 16) or the
// high nibble of qs[v - 16]. The kernels read rows repacked at load
// (q40_repack_row), the same bytes in another order: per group of 8 blocks
// (the last group may hold fewer, an even number), the group's fp16 d's, then
// its blocks' qs. So one load brings 8 scales, and one 256-bit load a pair's
// nibbles (in GGUF order they sit 18 bytes apart, behind their scales).
//
// Numerics, for K a multiple of 64 (pairs p = 0 .. K/64 - 1 of blocks 2p, 2p+1):
//
//   activations: each token's block j of x is quantized with the ternary
//     layers' per-row quantizer (QuantRowKernel, common.h), bit-exact across ISAs:
//       backend().quant_row(x + 32 j, 32, code + 32 j, &s_j, &sum)
//       r_j = 1 / s_j                               one float32 division
//     A token it refuses (a non-finite value) gets NaN outputs.
//   lanes: lane l = 0..7 of pair p covers block b(l) = 2p + l / 4 and its
//     values V(l) = {4m .. 4m+3} and {16+4m .. 16+4m+3}, m = l % 4 (the int32
//     lanes of a 256-bit vector [qs of 2p | qs of 2p+1] split into nibbles):
//       P_p[l] = sum_{v in V(l)} (q_v - 8) * code_v     exact int32 (|.| <= 2^13)
//   float32, with fused multiply-adds, two 8-lane accumulators E (even pairs)
//   and O (odd pairs), both starting at 0, pairs in increasing order:
//       F_b = d_b * r_b
//       acc[l] = fma(float(P_p[l]), F_{b(l)}, acc[l])   acc = E if p even, else O
//       S[l] = E[l] + O[l]
//       y[t, o] = ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7))
//
// The integer lanes are exact, so however a kernel forms them (maddubs with
// unsigned levels and the 8 * code sums taken off, VNNI, signed dot products)
// it gets the same P; the float steps are the same IEEE operations in the same
// order. So every kernel (scalar reference, AVX2, AVX-512, NEON), every thread
// split, and GEMV vs GEMM give identical results. An AVX-512 vector holds two
// pairs, the even one in its low half: E and O are its halves.
//
// Error against the dequantized weights in exact arithmetic: rounding x to
// code / s_j moves each value by at most 0.5 / s_j (plus the float32 steps).
#pragma once

#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/int8_lanes.h"

namespace ternlab {

constexpr int64_t kQ40PairValues = 2 * kQ4Block;  // K must be a multiple of this

constexpr int64_t kQ40GroupBlocks = 8;  // blocks per group of a repacked row

// A GGUF row of K values (K / 32 blocks) in the kernels' order, into dst.
void q40_repack_row(const uint8_t* src, int64_t K, uint8_t* dst);

// One thread's int8 copy of the activations [T, K] (quantized per call).
//   codes: per token, blocks in groups of `group` (the last group may hold
//     fewer, an even number): a group of n blocks from block g is 32 n bytes,
//     the codes of values 0..15 of blocks g .. g+n-1, then those of values
//     16..31. group 1 is plain value order; 2 is a 256-bit pair, 4 two pairs.
//   off: per token and block, 4 int32: 8 * (the sum of lane m's 8 codes).
struct Q40Acts {
    const int8_t* codes;    // [T * K]; zeros for a refused token
    const float* r;         // [T * K / 32 + 8]: r_j = 1 / s_j (8 spare: whole-group loads)
    const int32_t* off;     // [T * K / 32 * 4]
    const uint8_t* finite;  // [T]: 0 for a token quant_row refused
};

// Quantizes x [T, K] with the current ISA's quant_row into this thread's
// scratch, codes grouped by `group` blocks; valid until the thread's next call.
Q40Acts q40_quantize_acts(const float* x, int64_t T, int64_t K, int group);

// Rows per GEMM tile: their weights (K / 32 * 18 bytes each) stay in cache while
// every token of the call passes over them. Each ISA writes this row loop out
// with its row_dot inlined: called through a pointer, the 2B head took 25%
// longer (AVX2, one thread: 12-12.7 ms against 9-10).
constexpr int64_t kQ40RowTile = 16;

}  // namespace ternlab
