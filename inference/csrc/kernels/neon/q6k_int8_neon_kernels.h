// NEON Q6_K x int8 kernels (numerics: q6k_int8.h; aarch64 only), compiled twice
// (see neon_kernels.h). The levels are decoded 16 at a time (one sub-block, one
// scale) and taken as signed q - 32 in [-32, 31], so no offset term is needed.
// Baseline: vmull_s8/vmlal_s8 give int16 pair sums (|.| <= 2 * 32 * 128 = 8192)
// and vmlal_n_s16 multiplies them by the sub-block's scale into int32 lanes
// (|lane| <= 16 * 2 * 8192 * 128 < 2^25 per block). Dot product: vdotq_s32 sums
// four products a lane (|.| <= 4 * 32 * 128) and vmlaq_n_s32 scales them in.
// isum_b is the lanes' exact sum either way, so every result is bit-identical
// with the scalar reference.
//   GEMV (T == 1, decode): one row at a time, levels decoded in registers.
//   GEMM (T > 1): kRowBlock rows are decoded once into a panel of levels,
//     which kTileTokens tokens at a time then share.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/neon/neon_kernels.h"
#include "kernels/q6k.h"
#include "kernels/q6k_int8.h"

namespace ternlab {

namespace {

constexpr int64_t kRowBlock = 16;  // panel: 16 rows x K bytes (40 KiB at K = 2560)
constexpr int kTileTokens = 4;

TL_NEON_FN inline float block_d(const uint8_t* blk) {
    uint16_t h;
    std::memcpy(&h, blk + 208, sizeof h);  // little-endian, as GGUF
    return fp16_to_fp32(h);
}

// q - 32 of values 128h + 16i .. +15 into y[i] (i = 0..7, sub-block 8h + i;
// layout: q6k.h). ql bytes 64h + (0..31) hold 32k + (0..31) for k = 0 and 2 in
// their low and high nibble, ql bytes 64h + 32 + (0..31) k = 1 and 3, qh bytes
// 32h + (0..31) the top two bits of k in bits 2k, 2k + 1.
TL_NEON_FN inline void levels_half(const uint8_t* blk, int h, int8x16_t* y) {
    const uint8x16_t lo4 = vdupq_n_u8(0x0F), top2 = vdupq_n_u8(0x30);
    const int8x16_t c32 = vdupq_n_s8(32);
    for (int part = 0; part < 2; ++part) {
        const uint8x16_t l0 = vld1q_u8(blk + 64 * h + 16 * part);
        const uint8x16_t l1 = vld1q_u8(blk + 64 * h + 32 + 16 * part);
        const uint8x16_t qh = vld1q_u8(blk + 128 + 32 * h + 16 * part);
        const uint8x16_t q[4] = {
            vorrq_u8(vandq_u8(l0, lo4), vandq_u8(vshlq_n_u8(qh, 4), top2)),
            vorrq_u8(vandq_u8(l1, lo4), vandq_u8(vshlq_n_u8(qh, 2), top2)),
            vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(qh, top2)),
            vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(qh, 2), top2)),
        };
        for (int k = 0; k < 4; ++k) y[2 * k + part] = vsubq_s8(vreinterpretq_s8_u8(q[k]), c32);
    }
}

// acc += scale * sum (q - 32) * code over one sub-block of 16 values.
TL_NEON_FN inline int32x4_t dot16(int32x4_t acc, int8x16_t y, const int8_t* code,
                                  int16_t scale) {
    const int8x16_t c = vld1q_s8(code);
#if TL_NEON_DOT
    return vmlaq_n_s32(acc, vdotq_s32(vdupq_n_s32(0), y, c), scale);
#else
    int16x8_t prod = vmull_s8(vget_low_s8(y), vget_low_s8(c));
    prod = vmlal_s8(prod, vget_high_s8(y), vget_high_s8(c));
    acc = vmlal_n_s16(acc, vget_low_s16(prod), scale);
    return vmlal_high_n_s16(acc, prod, scale);
#endif
}

TL_NEON_FN inline int16_t sub_scale(const uint8_t* blk, int i) {
    return static_cast<int16_t>(static_cast<int8_t>(blk[192 + i]));
}

// ---- GEMV ------------------------------------------------------------------------
TL_NEON_FN inline float row_dot(const uint8_t* row, int64_t K, const int8_t* code, const float* s) {
    float acc = 0.0f;
    for (int64_t b = 0; b < K / kQ6KBlock; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const int8_t* c = code + b * kQ6KBlock;
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            int8x16_t y[8];
            levels_half(blk, h, y);
            for (int i = 0; i < 8; ++i)
                isum = dot16(isum, y[i], c + 128 * h + 16 * i, sub_scale(blk, 8 * h + i));
        }
        acc = q6k_accumulate(acc, vaddvq_s32(isum), block_d(blk), s[b]);
    }
    return acc;
}

TL_NEON_FN inline void gemv(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
        a.y[o] = x.finite[0] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes, x.s) : kQ6KNaN;
}

// ---- GEMM ------------------------------------------------------------------------
// A decoded row: q - 32 of every value, K bytes in value order.
TL_NEON_FN inline void decode_row(const uint8_t* row, int64_t K, int8_t* p) {
    for (int64_t b = 0; b < K / kQ6KBlock; ++b)
        for (int h = 0; h < 2; ++h) {
            int8x16_t y[8];
            levels_half(row + b * kQ6KBlockBytes, h, y);
            for (int i = 0; i < 8; ++i) vst1q_s8(p + b * kQ6KBlock + 128 * h + 16 * i, y[i]);
        }
}

// y of decoded row p (raw row: scales, d) for tokens [t, t + TT) into out.
template <int TT>
TL_NEON_FN inline void tile_row(const int8_t* p, const uint8_t* row, int64_t K, const Q6KActs& x,
                     int64_t t, float* out) {
    const int64_t nb = K / kQ6KBlock;
    float acc[TT];
    for (int u = 0; u < TT; ++u) acc[u] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        int32x4_t isum[TT];
        for (int u = 0; u < TT; ++u) isum[u] = vdupq_n_s32(0);
        for (int i = 0; i < 16; ++i) {
            const int64_t v = b * kQ6KBlock + 16 * i;
            const int8x16_t y = vld1q_s8(p + v);
            const int16_t sc = sub_scale(blk, i);
            for (int u = 0; u < TT; ++u)
                isum[u] = dot16(isum[u], y, x.codes + (t + u) * K + v, sc);
        }
        const float d = block_d(blk);
        for (int u = 0; u < TT; ++u)
            acc[u] = q6k_accumulate(acc[u], vaddvq_s32(isum[u]), d, x.s[(t + u) * nb + b]);
    }
    for (int u = 0; u < TT; ++u) out[u] = acc[u];
}

TL_NEON_FN inline void tile_dispatch(int tt, const int8_t* p, const uint8_t* row, int64_t K,
                          const Q6KActs& x, int64_t t, float* out) {
    switch (tt) {
        case 4: tile_row<4>(p, row, K, x, t, out); break;
        case 3: tile_row<3>(p, row, K, x, t, out); break;
        case 2: tile_row<2>(p, row, K, x, t, out); break;
        default: tile_row<1>(p, row, K, x, t, out); break;
    }
}
static_assert(kTileTokens == 4, "tile_dispatch handles tiles of 1 to 4 tokens");

TL_NEON_FN inline void gemm(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1,
                            int8_t* panel) {
    for (int64_t ob = o0; ob < o1; ob += kRowBlock) {
        const int64_t rows = o1 - ob < kRowBlock ? o1 - ob : kRowBlock;
        for (int64_t r = 0; r < rows; ++r)
            decode_row(a.w + (ob + r) * a.row_bytes, a.K, panel + r * a.K);
        for (int64_t t = 0; t < a.T; t += kTileTokens) {
            const int tt = static_cast<int>(a.T - t < kTileTokens ? a.T - t : kTileTokens);
            for (int64_t r = 0; r < rows; ++r) {
                float out[kTileTokens];
                tile_dispatch(tt, panel + r * a.K, a.w + (ob + r) * a.row_bytes, a.K, x, t, out);
                for (int u = 0; u < tt; ++u)
                    a.y[(t + u) * a.y_stride + ob + r] = x.finite[t + u] ? out[u] : kQ6KNaN;
            }
        }
    }
}

TL_NEON_FN void q6k_gemv(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemv(a, q6k_quantize_acts(a.x, 1, a.K), o0, o1);
}

TL_NEON_FN void q6k_gemm(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(a, q6k_quantize_acts(a.x, a.T, a.K), o0, o1,
         reinterpret_cast<int8_t*>(panel_bytes(kRowBlock * a.K)));
}

}  // namespace
}  // namespace ternlab
