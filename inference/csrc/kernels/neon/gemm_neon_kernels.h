// The NEON ternary kernels (aarch64 only), compiled twice (see neon_kernels.h):
// by gemm_neon.cpp for baseline ARMv8-A and by neondot/gemm_neondot.cpp for the
// ARMv8.2 dot product. A 16-byte load of packed weights at byte i0 of a
// super-block gives, per j, 16 unsigned fields f = code + 1 lined up with
// activations 64*j + i0 .. +15; sum f*x - sum x = sum code*x. Baseline:
// vmull_s8/vmlal_s8 multiply into int16 (|f*x| <= 256, two products per lane
// <= 512) and vpadalq_s16 widens pairs into int32. Dot product: one vdotq_s32
// adds the 16 products into the 4 int32 lanes. Integer sums either way, so both
// are bit-identical with the scalar reference.
//
// Base-3 layout (common.h): a 16-byte vector v of five-digit bytes (v <= 242)
// is turned into the 2-bit kernels' form: the top digit f4 from two unsigned
// compares (v >= 81, v >= 162), b = v - 81 f4 < 81, and the other four digits
// packed as one byte f0 | f1 << 2 | f2 << 4 | f3 << 6 by an 81-entry table
// lookup (vqtbl4q_u8 over entries 0..63, then vqtbx2q_u8 over 64..95 with the
// index b - 64: an index past the table keeps the first lookup's byte). The
// four fields then come out with the same shift and mask as the 2-bit fields.
#pragma once

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/neon/neon_kernels.h"

namespace ternlab {

namespace {

constexpr int64_t kPanelK = 4096;

template <int J>
TL_NEON_FN inline int8x16_t fields(uint8x16_t p, uint8x16_t m3) {
    return vreinterpretq_s8_u8(vandq_u8(J ? vshrq_n_u8(p, 2 * J) : p, m3));
}

TL_NEON_FN inline int32x4_t mac16(int32x4_t acc, int8x16_t f, int8x16_t x) {
#if TL_NEON_DOT
    return vdotq_s32(acc, f, x);
#else
    int16x8_t prod = vmull_s8(vget_low_s8(f), vget_low_s8(x));
    prod = vmlal_s8(prod, vget_high_s8(f), vget_high_s8(x));
    return vpadalq_s16(acc, prod);
#endif
}

// sum f*x over one packed row (fields) and one activation row, len codes.
TL_NEON_FN inline int32_t dot_packed(const RowWalk& w, const int8_t* x, int64_t len) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc = vdupq_n_s32(0);
    for (int64_t sb = 0; sb < len / kQK; ++sb) {
        const int8_t* xb = x + sb * kQK;
        for (int i0 = 0; i0 < kBlockBytes; i0 += 16) {
            const uint8x16_t p = vld1q_u8(w.sb(sb) + i0);
            acc = mac16(acc, fields<0>(p, m3), vld1q_s8(xb + i0));
            acc = mac16(acc, fields<1>(p, m3), vld1q_s8(xb + 64 + i0));
            acc = mac16(acc, fields<2>(p, m3), vld1q_s8(xb + 128 + i0));
            acc = mac16(acc, fields<3>(p, m3), vld1q_s8(xb + 192 + i0));
        }
    }
    return vaddvq_s32(acc);
}

// ---- base-3 ------------------------------------------------------------------
constexpr int64_t kPanelK3 = 3840;  // 12 super-blocks of 320 codes
constexpr int kRows3 = 4;           // GEMV rows per step (one row group: share x loads)

struct Base3Table {
    uint8x16x4_t lo;  // packed digits of b = 0..63
    uint8x16x2_t hi;  // b = 64..95 (entries past 80 unused)
};

TL_NEON_FN inline Base3Table base3_table() {
    alignas(16) uint8_t t[96] = {};
    for (int b = 0; b < 81; ++b)
        t[b] = static_cast<uint8_t>(b % 3 | (b / 3 % 3) << 2 | (b / 9 % 3) << 4 | (b / 27) << 6);
    return {{{vld1q_u8(t), vld1q_u8(t + 16), vld1q_u8(t + 32), vld1q_u8(t + 48)}},
            {{vld1q_u8(t + 64), vld1q_u8(t + 80)}}};
}

// Sixteen bytes of a base-3 super-block: digits 0..3 as 2-bit fields (for
// fields<J>), digit 4 as bytes 0..2.
TL_NEON_FN inline uint8x16_t base3_digits(uint8x16_t v, const Base3Table& tab, uint8x16_t* f4) {
    const uint8x16_t c81 = vdupq_n_u8(81);
    const uint8x16_t ge81 = vcgeq_u8(v, c81);
    const uint8x16_t ge162 = vcgeq_u8(v, vdupq_n_u8(162));
    // The masks are 0xFF (= -1) where set: subtracting them adds one to f4.
    *f4 = vsubq_u8(vsubq_u8(vdupq_n_u8(0), ge81), ge162);
    const uint8x16_t b = vsubq_u8(vsubq_u8(v, vandq_u8(ge81, c81)), vandq_u8(ge162, c81));
    const uint8x16_t lo = vqtbl4q_u8(tab.lo, b);
    return vqtbx2q_u8(lo, tab.hi, vsubq_u8(b, vdupq_n_u8(64)));
}

// Rows [o, o + R) of the GEMV: the five activation vectors of each 16-byte
// step are loaded once for the R rows.
template <int R>
TL_NEON_FN inline void gemv3_rows(const GemmArgs& a, int64_t o, const Base3Table& tab) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    RowWalk rw[R];
    int32x4_t acc[R];
    for (int r = 0; r < R; ++r) rw[r] = row_walk(a, o + r), acc[r] = vdupq_n_s32(0);
    for (int64_t sb = 0; sb < a.Kp / kQK3; ++sb) {
        const int8_t* xb = a.x + sb * kQK3;
        for (int i0 = 0; i0 < kBlockBytes; i0 += 16) {
            int8x16_t xv[kBase3Digits];
            for (int j = 0; j < kBase3Digits; ++j) xv[j] = vld1q_s8(xb + 64 * j + i0);
            for (int r = 0; r < R; ++r) {
                uint8x16_t f4;
                const uint8x16_t p = base3_digits(vld1q_u8(rw[r].sb(sb) + i0), tab, &f4);
                acc[r] = mac16(acc[r], fields<0>(p, m3), xv[0]);
                acc[r] = mac16(acc[r], fields<1>(p, m3), xv[1]);
                acc[r] = mac16(acc[r], fields<2>(p, m3), xv[2]);
                acc[r] = mac16(acc[r], fields<3>(p, m3), xv[3]);
                acc[r] = mac16(acc[r], vreinterpretq_s8_u8(f4), xv[4]);
            }
        }
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = vaddvq_s32(acc[r]) - a.xsum[0];
}

TL_NEON_FN void gemv_bits2(const GemmArgs& a, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
        a.acc[o] = dot_packed(row_walk(a, o), a.x, a.Kp) - a.xsum[0];
}

TL_NEON_FN void gemm_bits2(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(16) uint8_t panel[kPanelK];
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t t = 0; t < a.T; ++t) a.acc[t * a.acc_stride + o] = -a.xsum[t];
        for (int64_t k0 = 0; k0 < a.Kp; k0 += kPanelK) {
            const int64_t len = a.Kp - k0 < kPanelK ? a.Kp - k0 : kPanelK;
            const RowWalk rw = row_walk(a, o);
            for (int64_t sb = 0; sb < len / kQK; ++sb) {  // decode the row panel once
                for (int i0 = 0; i0 < kBlockBytes; i0 += 16) {
                    const uint8x16_t p = vld1q_u8(rw.sb(k0 / kQK + sb) + i0);
                    uint8_t* d = panel + sb * kQK + i0;
                    vst1q_s8(reinterpret_cast<int8_t*>(d), fields<0>(p, m3));
                    vst1q_s8(reinterpret_cast<int8_t*>(d + 64), fields<1>(p, m3));
                    vst1q_s8(reinterpret_cast<int8_t*>(d + 128), fields<2>(p, m3));
                    vst1q_s8(reinterpret_cast<int8_t*>(d + 192), fields<3>(p, m3));
                }
            }
            for (int64_t t = 0; t < a.T; ++t) {  // ... and reuse it for every token
                const int8_t* x = a.x + t * a.x_stride + k0;
                int32x4_t acc = vdupq_n_s32(0);
                for (int64_t s = 0; s < len; s += 16)
                    acc = mac16(acc, vld1q_s8(reinterpret_cast<const int8_t*>(panel) + s),
                                vld1q_s8(x + s));
                a.acc[t * a.acc_stride + o] += vaddvq_s32(acc);
            }
        }
    }
}

TL_NEON_FN void gemv_base3(const GemmArgs& a, int64_t o0, int64_t o1) {
    const Base3Table tab = base3_table();
    int64_t o = o0;
    for (; o + kRows3 <= o1; o += kRows3) gemv3_rows<kRows3>(a, o, tab);
    for (; o < o1; ++o) gemv3_rows<1>(a, o, tab);
}

// As gemm_neon: each row panel is decoded once into unsigned fields, then
// every token reuses it.
TL_NEON_FN void gemm_base3(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(16) uint8_t panel[kPanelK3];
    const Base3Table tab = base3_table();
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t t = 0; t < a.T; ++t) a.acc[t * a.acc_stride + o] = -a.xsum[t];
        const RowWalk rw = row_walk(a, o);
        for (int64_t k0 = 0; k0 < a.Kp; k0 += kPanelK3) {
            const int64_t len = a.Kp - k0 < kPanelK3 ? a.Kp - k0 : kPanelK3;
            for (int64_t sb = 0; sb < len / kQK3; ++sb) {
                for (int i0 = 0; i0 < kBlockBytes; i0 += 16) {
                    uint8x16_t f4;
                    const uint8x16_t p =
                        base3_digits(vld1q_u8(rw.sb(k0 / kQK3 + sb) + i0), tab, &f4);
                    int8_t* d = reinterpret_cast<int8_t*>(panel + sb * kQK3 + i0);
                    vst1q_s8(d, fields<0>(p, m3));
                    vst1q_s8(d + 64, fields<1>(p, m3));
                    vst1q_s8(d + 128, fields<2>(p, m3));
                    vst1q_s8(d + 192, fields<3>(p, m3));
                    vst1q_s8(d + 256, vreinterpretq_s8_u8(f4));
                }
            }
            for (int64_t t = 0; t < a.T; ++t) {
                const int8_t* x = a.x + t * a.x_stride + k0;
                int32x4_t acc = vdupq_n_s32(0);
                for (int64_t s = 0; s < len; s += 16)
                    acc = mac16(acc, vld1q_s8(reinterpret_cast<const int8_t*>(panel) + s),
                                vld1q_s8(x + s));
                a.acc[t * a.acc_stride + o] += vaddvq_s32(acc);
            }
        }
    }
}

}  // namespace
}  // namespace ternlab
