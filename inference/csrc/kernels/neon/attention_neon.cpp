// NEON attention kernels (attention_kernels.h), for head_dim % 4 == 0; the
// AVX2 kernels' structure at 4 lanes. Scores: G heads x P positions per step
// (G * P = 4 independent FMA chains), each cached K row loaded once for the G
// heads. Weighted sum over the transposed V: R rows of V^T x G heads (G * R <= 8
// accumulators) per sweep over the positions. They agree with the scalar
// reference to float32 rounding (fused multiply-adds and another summation
// order; the self-test states the bounds) and are deterministic. Scores and the
// weighted sum are templates over the cache's element type: float, or IEEE half
// bits (uint16_t) widened exactly with vcvt_f32_f16 at the load.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/attention_kernels.h"
#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/neon/exp_neon.h"

#if TERNLAB_NEON

namespace ternlab {

namespace {

// Four cached values as float32; one (the tails), converted the same exact way.
inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
inline float widen(float v) { return v; }
inline float widen(uint16_t h) { return fp16_to_fp32(h); }

// Scores of G heads at positions [j, j + P) (G * P <= 4).
template <int G, int P, class KV>
inline void scores_step(const float* q, const KV* k, int64_t j, int64_t hd, float scale,
                        float* s, int64_t s_stride, float* mx) {
    float32x4_t acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; d += 4) {
        for (int p = 0; p < P; ++p) {
            const float32x4_t kv = load4(k + (j + p) * hd + d);
            for (int g = 0; g < G; ++g)
                acc[g * P + p] = vfmaq_f32(acc[g * P + p], vld1q_f32(q + g * hd + d), kv);
        }
    }
    for (int g = 0; g < G; ++g)
        for (int p = 0; p < P; ++p) {
            const float v = vaddvq_f32(acc[g * P + p]) * scale;
            s[g * s_stride + j + p] = v;
            mx[g] = std::max(mx[g], v);
        }
}

template <int G, class KV>
void scores_g(const float* q, const KV* k, int64_t n, int64_t hd, float scale, float* s,
              int64_t s_stride, float* mx) {
    constexpr int P = 4 / G;
    for (int g = 0; g < G; ++g) mx[g] = -INFINITY;
    int64_t j = 0;
    for (; j + P <= n; j += P) scores_step<G, P>(q, k, j, hd, scale, s, s_stride, mx);
    for (; j < n; ++j) scores_step<G, 1>(q, k, j, hd, scale, s, s_stride, mx);
}

template <class KV>
void scores_t(const float* q, int G, const KV* k, int64_t n, int64_t hd, float scale, float* s,
              int64_t s_stride, float* mx) {
    switch (G) {
        case 1: scores_g<1>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 2: scores_g<2>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 3: scores_g<3>(q, k, n, hd, scale, s, s_stride, mx); break;
        default: scores_g<4>(q, k, n, hd, scale, s, s_stride, mx); break;
    }
}

void softmax_neon(float* s, int64_t n, float mx) {
    const float32x4_t m = vdupq_n_f32(mx);
    float32x4_t sum = vdupq_n_f32(0.0f);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float32x4_t e = exp_neg(vsubq_f32(vld1q_f32(s + j), m));
        vst1q_f32(s + j, e);
        sum = vaddq_f32(sum, e);
    }
    if (j < n) {  // the last 1-3 positions through a zero-padded copy: no access past n
        float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        std::copy(s + j, s + n, tail);
        static const uint32_t kLane[4] = {0, 1, 2, 3};
        const uint32x4_t keep =
            vcltq_u32(vld1q_u32(kLane), vdupq_n_u32(static_cast<uint32_t>(n - j)));
        const float32x4_t e = vreinterpretq_f32_u32(vandq_u32(
            vreinterpretq_u32_f32(exp_neg(vsubq_f32(vld1q_f32(tail), m))), keep));
        vst1q_f32(tail, e);
        std::copy(tail, tail + (n - j), s + j);
        sum = vaddq_f32(sum, e);
    }
    const float32x4_t total = vdupq_n_f32(vaddvq_f32(sum));
    for (j = 0; j + 4 <= n; j += 4) vst1q_f32(s + j, vdivq_f32(vld1q_f32(s + j), total));
    const float t = vgetq_lane_f32(total, 0);
    for (; j < n; ++j) s[j] /= t;
}

// out[g * hd + d], d in [d0, d0 + R), for the G heads.
template <int G, int R, class KV>
inline void wsum_rows(const float* p, int64_t p_stride, const KV* vt, int64_t vt_stride,
                      int64_t n, int64_t hd, int64_t d0, float* out) {
    static_assert(G * R <= 8, "at most eight accumulators");
    float32x4_t acc[G * R];
    for (int i = 0; i < G * R; ++i) acc[i] = vdupq_n_f32(0.0f);
    const KV* rows = vt + d0 * vt_stride;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        float32x4_t pv[G];
        for (int g = 0; g < G; ++g) pv[g] = vld1q_f32(p + g * p_stride + j);
        for (int r = 0; r < R; ++r) {
            const float32x4_t vv = load4(rows + r * vt_stride + j);
            for (int g = 0; g < G; ++g) acc[g * R + r] = vfmaq_f32(acc[g * R + r], pv[g], vv);
        }
    }
    for (int g = 0; g < G; ++g)
        for (int r = 0; r < R; ++r) {
            float v = vaddvq_f32(acc[g * R + r]);
            for (int64_t i = j; i < n; ++i)
                v += p[g * p_stride + i] * widen(rows[r * vt_stride + i]);
            out[g * hd + d0 + r] = v;
        }
}

template <int G, int R, class KV>
void wsum_g(const float* p, int64_t p_stride, const KV* vt, int64_t vt_stride, int64_t n,
            int64_t hd, float* out) {
    for (int64_t d0 = 0; d0 < hd; d0 += R)
        wsum_rows<G, R>(p, p_stride, vt, vt_stride, n, hd, d0, out);
}

template <class KV>
void wsum_t(const float* p, int G, int64_t p_stride, const KV* vt, int64_t vt_stride, int64_t n,
            int64_t hd, float* out) {
    switch (G) {  // R divides hd (a multiple of 4)
        case 1: wsum_g<1, 4>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 2: wsum_g<2, 4>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 3: wsum_g<3, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
        default: wsum_g<4, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
    }
}

void scores_neon(const float* q, int G, const float* k, int64_t n, int64_t hd, float scale,
                 float* s, int64_t s_stride, float* mx) {
    scores_t(q, G, k, n, hd, scale, s, s_stride, mx);
}

void scores_f16_neon(const float* q, int G, const uint16_t* k, int64_t n, int64_t hd,
                     float scale, float* s, int64_t s_stride, float* mx) {
    scores_t(q, G, k, n, hd, scale, s, s_stride, mx);
}

void weighted_sum_neon(const float* p, int G, int64_t p_stride, const float* vt,
                       int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    wsum_t(p, G, p_stride, vt, vt_stride, n, hd, out);
}

void weighted_sum_f16_neon(const float* p, int G, int64_t p_stride, const uint16_t* vt,
                           int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    wsum_t(p, G, p_stride, vt, vt_stride, n, hd, out);
}

}  // namespace

const AttentionKernels kAttentionNeon = {scores_neon, softmax_neon, weighted_sum_neon,
                                         scores_f16_neon, weighted_sum_f16_neon};

}  // namespace ternlab

#endif  // TERNLAB_NEON
