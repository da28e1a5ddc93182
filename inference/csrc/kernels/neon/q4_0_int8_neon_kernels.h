// NEON Q4_0 x int8 kernels (numerics: q4_0_int8.h; aarch64 only), on rows
// repacked at load, compiled twice (see neon_kernels.h). The levels are taken
// as signed q - 8 in [-8, 7], so no offset term is needed, and the int32 lane m
// is values 4m..4m+3 and 16+4m..16+4m+3 of the definition. Baseline: vmull_s8
// of values v and vmlal_s8 of v + 16 give int16 sums (|.| <= 2 * 8 * 128), and
// two pairwise widening adds make the lanes. Dot product: two vdotq_s32, the
// low nibbles' and the high nibbles', add the same four products a lane. A block's four lanes
// are half of a pair's eight: E and O are kept as low (even block) and high
// (odd block) halves. The codes stay in value order (group 1).
#pragma once

#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/neon/neon_kernels.h"
#include "kernels/q4_0_int8.h"

namespace ternlab {

namespace {

// The four int32 lanes of one block: nibbles at qs, its 32 codes at c.
TL_NEON_FN inline int32x4_t block_lanes(const uint8_t* qs, const int8_t* c) {
    const uint8x16_t v = vld1q_u8(qs);
    const int8x16_t eight = vdupq_n_s8(8);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
    const int8x16_t c0 = vld1q_s8(c), c1 = vld1q_s8(c + 16);
#if TL_NEON_DOT
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, c0), hi, c1);
#else
    // int16 lane v: value v and value v + 16 (v = 0..7, then 8..15).
    const int16x8_t a = vmlal_s8(vmull_s8(vget_low_s8(lo), vget_low_s8(c0)), vget_low_s8(hi),
                                 vget_low_s8(c1));
    const int16x8_t b = vmlal_high_s8(vmull_high_s8(lo, c0), hi, c1);
    return vpaddq_s32(vpaddlq_s16(a), vpaddlq_s16(b));
#endif
}

// One repacked row, one token; E and O as their halves: e0 = E lanes 0-3 (a
// pair's even block), e1 = E lanes 4-7 (its odd block), o0, o1 the same of O.
TL_NEON_FN inline float row_dot(const uint8_t* row, int64_t K, const int8_t* codes,
                                const float* r) {
    const int64_t nb = K / kQ4Block;
    float32x4_t e0 = vdupq_n_f32(0.0f), e1 = e0, o0 = e0, o1 = e0;
    for (int64_t g0 = 0; g0 < nb; g0 += kQ40GroupBlocks) {
        const int64_t n = nb - g0 < kQ40GroupBlocks ? nb - g0 : kQ40GroupBlocks;
        const uint8_t* group = row + kQ4BlockBytes * g0;
        for (int64_t i = 0; i < n; i += 2) {
            const int64_t b = g0 + i;
            const float f0 = fp16_to_fp32(load_u16(group + 2 * i)) * r[b];
            const float f1 = fp16_to_fp32(load_u16(group + 2 * i + 2)) * r[b + 1];
            const float32x4_t p0 =
                vcvtq_f32_s32(block_lanes(group + 2 * n + 16 * i, codes + kQ4Block * b));
            const float32x4_t p1 =
                vcvtq_f32_s32(block_lanes(group + 2 * n + 16 * i + 16, codes + kQ4Block * b + 32));
            if (i % 4 == 0) {  // a group starts at an even pair
                e0 = vfmaq_n_f32(e0, p0, f0);
                e1 = vfmaq_n_f32(e1, p1, f1);
            } else {
                o0 = vfmaq_n_f32(o0, p0, f0);
                o1 = vfmaq_n_f32(o1, p1, f1);
            }
        }
    }
    // T = (S0 + S4, S1 + S5, S2 + S6, S3 + S7); y = (T0 + T2) + (T1 + T3).
    const float32x4_t t = vaddq_f32(vaddq_f32(e0, o0), vaddq_f32(e1, o1));
    return (vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 2)) +
           (vgetq_lane_f32(t, 1) + vgetq_lane_f32(t, 3));
}

// GEMV and GEMM: one token is a GEMM of T = 1 (the weights stream once either way).
TL_NEON_FN void q4_0_matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q40Acts x = q40_quantize_acts(a.x, a.T, a.K, 1);
    const int64_t nb = a.K / kQ4Block;
    for (int64_t ob = o0; ob < o1; ob += kQ40RowTile) {
        const int64_t oe = o1 - ob < kQ40RowTile ? o1 : ob + kQ40RowTile;
        for (int64_t t = 0; t < a.T; ++t)
            for (int64_t o = ob; o < oe; ++o)
                a.y[t * a.y_stride + o] =
                    x.finite[t]
                        ? row_dot(a.w + o * a.row_bytes, a.K, x.codes + t * a.K, x.r + t * nb)
                        : kInt8RefusedToken;
    }
}

}  // namespace
}  // namespace ternlab
