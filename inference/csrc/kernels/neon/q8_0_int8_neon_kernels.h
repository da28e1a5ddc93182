// NEON Q8_0 x int8 kernels (numerics: q8_0_int8.h; aarch64 only), on rows
// repacked at load, compiled twice (see neon_kernels.h). The int32 lanes hold 4
// values each: a block's lanes 0-3 from its first 16 values, 4-7 from the rest.
// Baseline: vmull_s8 gives int16 products (|.| <= 128 * 128), and two pairwise
// widening adds make the lanes. Dot product: one vdotq_s32 makes them. E and O are kept as halves
// (e0 = E lanes 0-3, e1 = E lanes 4-7, o0, o1 the same of O).
#pragma once

#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/neon/neon_kernels.h"
#include "kernels/q8_0_int8.h"

namespace ternlab {

namespace {

// The four int32 lanes of 16 values: codes q and c.
TL_NEON_FN inline int32x4_t lanes16(const int8_t* q, const int8_t* c) {
    const int8x16_t w = vld1q_s8(q), x = vld1q_s8(c);
#if TL_NEON_DOT
    return vdotq_s32(vdupq_n_s32(0), w, x);
#else
    const int32x4_t a = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));
    const int32x4_t b = vpaddlq_s16(vmull_high_s8(w, x));
    return vpaddq_s32(a, b);
#endif
}

// One repacked row, one token.
TL_NEON_FN inline float row_dot(const uint8_t* row, int64_t K, const int8_t* codes,
                                const float* r) {
    const int64_t nb = K / kQ8Block;
    float32x4_t e0 = vdupq_n_f32(0.0f), e1 = e0, o0 = e0, o1 = e0;
    for (int64_t g0 = 0; g0 < nb; g0 += kQ80GroupBlocks) {
        const int64_t n = nb - g0 < kQ80GroupBlocks ? nb - g0 : kQ80GroupBlocks;
        const uint8_t* group = row + kQ8BlockBytes * g0;
        const int8_t* q = reinterpret_cast<const int8_t*>(group + 2 * n);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t b = g0 + i;
            const float f = fp16_to_fp32(load_u16(group + 2 * i)) * r[b];
            const int8_t* qb = q + kQ8Block * i;
            const int8_t* c = codes + kQ8Block * b;
            const float32x4_t p0 = vcvtq_f32_s32(lanes16(qb, c));
            const float32x4_t p1 = vcvtq_f32_s32(lanes16(qb + 16, c + 16));
            if (i % 2 == 0) {  // a group starts at an even block
                e0 = vfmaq_n_f32(e0, p0, f);
                e1 = vfmaq_n_f32(e1, p1, f);
            } else {
                o0 = vfmaq_n_f32(o0, p0, f);
                o1 = vfmaq_n_f32(o1, p1, f);
            }
        }
    }
    // T = (S0 + S4, S1 + S5, S2 + S6, S3 + S7); y = (T0 + T2) + (T1 + T3).
    const float32x4_t t = vaddq_f32(vaddq_f32(e0, o0), vaddq_f32(e1, o1));
    return (vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 2)) +
           (vgetq_lane_f32(t, 1) + vgetq_lane_f32(t, 3));
}

// GEMV and GEMM: one token is a GEMM of T = 1 (the weights stream once either way).
TL_NEON_FN void q8_0_matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q80Acts x = q80_quantize_acts(a.x, a.T, a.K, false);
    const int64_t nb = a.K / kQ8Block;
    for (int64_t ob = o0; ob < o1; ob += kQ80RowTile) {
        const int64_t oe = o1 - ob < kQ80RowTile ? o1 : ob + kQ80RowTile;
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
