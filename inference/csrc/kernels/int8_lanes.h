// What the Q4_0 and Q8_0 x int8 kernels (q4_0_int8.h, q8_0_int8.h) share: the
// per-block activation quantization, the row repack, the final reduction of the
// even and odd accumulators, and the output of a token the quantizer refused.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/common.h"

namespace ternlab {

// One token's K values quantized block by block (`block` values each) with
// quant_row: codes and r_j = 1 / s_j. False if quant_row refused a block; the
// codes are then zeroed (defined data for the SIMD loops).
inline bool int8_quantize_blocks(QuantRowKernel quant_row, const float* x, int64_t K,
                                 int64_t block, int8_t* codes, float* r) {
    for (int64_t j = 0; j < K / block; ++j) {
        float s;
        int32_t sum;
        if (!quant_row(x + block * j, block, codes + block * j, &s, &sum)) {
            std::memset(codes, 0, static_cast<size_t>(K));
            return false;
        }
        r[j] = 1.0f / s;
    }
    return true;
}

// A row of nb blocks (an fp16 scale, then block_bytes - 2 payload bytes each)
// repacked per group of `group` blocks (fewer in the last): the group's scales
// first, then its payloads, in block order.
inline void int8_repack_groups(const uint8_t* src, int64_t nb, int64_t group,
                               int64_t block_bytes, uint8_t* dst) {
    const int64_t payload = block_bytes - 2;
    for (int64_t g0 = 0; g0 < nb; g0 += group) {
        const int64_t n = nb - g0 < group ? nb - g0 : group;
        for (int64_t i = 0; i < n; ++i) {
            const uint8_t* blk = src + block_bytes * (g0 + i);
            std::memcpy(dst + 2 * i, blk, 2);
            std::memcpy(dst + 2 * n + payload * i, blk + 2, static_cast<size_t>(payload));
        }
        dst += block_bytes * n;
    }
}

inline constexpr float kInt8RefusedToken = std::numeric_limits<float>::quiet_NaN();

// S = e + o lane by lane, then ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7)):
// the order both headers define (the SIMD kernels reduce their registers the same way).
inline float int8_lanes_reduce(const float* e, const float* o) {
    float s[8];
    for (int l = 0; l < 8; ++l) s[l] = e[l] + o[l];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

}  // namespace ternlab
