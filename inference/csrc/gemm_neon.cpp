// NEON kernels (baseline ARMv8-A AdvSIMD; aarch64 only). A 16-byte load of
// packed weights at byte i0 of a super-block gives, per j, 16 unsigned fields
// f = code + 1 lined up with activations 64*j + i0 .. +15. vmull_s8/vmlal_s8
// multiply into int16 (|f*x| <= 256, two products per lane <= 512) and
// vpadalq_s16 widens pairs into int32. sum f*x - sum x = sum code*x.
// (An ARMv8.2 dot-product path, vdotq_s32, is future work.)
#include "gemm.h"
#include "isa.h"

#if TERNLAB_NEON

namespace ternlab {

namespace {

constexpr int64_t kPanelK = 4096;

template <int J>
inline int8x16_t fields(uint8x16_t p, uint8x16_t m3) {
    return vreinterpretq_s8_u8(vandq_u8(J ? vshrq_n_u8(p, 2 * J) : p, m3));
}

inline int32x4_t mac16(int32x4_t acc, int8x16_t f, int8x16_t x) {
    int16x8_t prod = vmull_s8(vget_low_s8(f), vget_low_s8(x));
    prod = vmlal_s8(prod, vget_high_s8(f), vget_high_s8(x));
    return vpadalq_s16(acc, prod);
}

// sum f*x over one packed row (fields) and one activation row, len codes.
inline int32_t dot_packed(const RowWalk& w, const int8_t* x, int64_t len) {
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

}  // namespace

void gemv_neon(const GemmArgs& a, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
        a.acc[o] = dot_packed(row_walk(a, o), a.x, a.Kp) - a.xsum[0];
}

void gemm_neon(const GemmArgs& a, int64_t o0, int64_t o1) {
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

}  // namespace ternlab

#else  // not aarch64: never selected by dispatch.cpp

namespace ternlab {
void gemv_neon(const GemmArgs&, int64_t, int64_t) {}
void gemm_neon(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
