// AVX2 + FMA attention kernels (attention_kernels.h), for head_dim % 8 == 0.
// Scores: G heads x P positions per step (G * P = 4 independent FMA chains),
// each cached K row loaded once for the G heads. Weighted sum over the
// transposed V: R rows of V^T x G heads (G * R <= 8 accumulators) per sweep over
// the positions, each V^T row loaded once for the G heads. Both are templates
// over the cache's element type: float, or IEEE half bits (uint16_t) widened with
// F16C's vcvtph2ps (exact) at the load, the rest of the arithmetic unchanged.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/attention_kernels.h"
#include "kernels/avx2/exp_avx2.h"
#include "kernels/isa.h"

#if TERNLAB_X86

// F16C too: every x86 SIMD backend has it (dispatch.cpp checks it with AVX2 and FMA).
#define TL_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

namespace ternlab {

namespace {

// Eight cached values as float32.
TL_AVX2_F16C inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
TL_AVX2_F16C inline __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// The first r < 8 of them (lanes set in `mask`), zeros after; nothing past p + r is read.
TL_AVX2_F16C inline __m256 load_first(const float* p, int64_t, __m256i mask) {
    return _mm256_maskload_ps(p, mask);
}
TL_AVX2_F16C inline __m256 load_first(const uint16_t* p, int64_t r, __m256i) {
    alignas(16) uint16_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < r; ++i) b[i] = p[i];
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(b)));
}

// {sum a, sum b, sum c, sum d} of four 8-lane vectors.
TL_AVX2_F16C inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 ab = _mm256_hadd_ps(a, b);
    const __m256 cd = _mm256_hadd_ps(c, d);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Scores of G heads at positions [j, j + P) (G * P <= 4).
template <int G, int P, class KV>
TL_AVX2_F16C inline void scores_step(const float* q, const KV* k, int64_t j, int64_t hd,
                                     float scale, float* s, int64_t s_stride, float* mx) {
    __m256 acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
        for (int p = 0; p < P; ++p) {
            const __m256 kv = load8(k + (j + p) * hd + d);
            for (int g = 0; g < G; ++g)
                acc[g * P + p] =
                    _mm256_fmadd_ps(_mm256_loadu_ps(q + g * hd + d), kv, acc[g * P + p]);
        }
    }
    alignas(16) float r[4];
    _mm_store_ps(r, hsum4(acc[0], acc[1], acc[2], acc[3]));
    for (int g = 0; g < G; ++g)
        for (int p = 0; p < P; ++p) {
            const float v = r[g * P + p] * scale;
            s[g * s_stride + j + p] = v;
            mx[g] = std::max(mx[g], v);
        }
}

template <int G, class KV>
TL_AVX2_F16C void scores_g(const float* q, const KV* k, int64_t n, int64_t hd, float scale,
                           float* s, int64_t s_stride, float* mx) {
    constexpr int P = 4 / G;
    for (int g = 0; g < G; ++g) mx[g] = -INFINITY;
    int64_t j = 0;
    for (; j + P <= n; j += P) scores_step<G, P>(q, k, j, hd, scale, s, s_stride, mx);
    for (; j < n; ++j) scores_step<G, 1>(q, k, j, hd, scale, s, s_stride, mx);
}

template <class KV>
TL_AVX2_F16C void scores_t(const float* q, int G, const KV* k, int64_t n, int64_t hd,
                           float scale, float* s, int64_t s_stride, float* mx) {
    switch (G) {
        case 1: scores_g<1>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 2: scores_g<2>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 3: scores_g<3>(q, k, n, hd, scale, s, s_stride, mx); break;
        default: scores_g<4>(q, k, n, hd, scale, s, s_stride, mx); break;
    }
}

// Lanes [0, r) set: loads of the last, partial 8 positions never touch
// memory past position n (unwritten scratch, the next head's cache).
TL_AVX2_F16C inline __m256i first_lanes(int64_t r) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), idx);
}

// One step: positions [j, j + 8) of R rows of V^T into the G x R accumulators.
// (kMasked: only the first r positions, lanes `mask`.)
template <int G, int R, bool kMasked, class KV>
TL_AVX2_F16C inline void wsum_step(const float* p, int64_t p_stride, const KV* vt,
                                   int64_t vt_stride, int64_t j, int64_t r_pos, __m256i mask,
                                   __m256* acc) {
    __m256 pv[G];
    for (int g = 0; g < G; ++g)
        pv[g] = kMasked ? _mm256_maskload_ps(p + g * p_stride + j, mask)
                        : _mm256_loadu_ps(p + g * p_stride + j);
    for (int r = 0; r < R; ++r) {
        const KV* row = vt + r * vt_stride + j;
        const __m256 vv = kMasked ? load_first(row, r_pos, mask) : load8(row);
        for (int g = 0; g < G; ++g) acc[g * R + r] = _mm256_fmadd_ps(pv[g], vv, acc[g * R + r]);
    }
}

TL_AVX2_F16C void softmax_avx2(float* s, int64_t n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256i tail = first_lanes(n - j);
    if (j < n) {
        const __m256 x = _mm256_sub_ps(_mm256_maskload_ps(s + j, tail), m);
        const __m256 e = _mm256_and_ps(exp_neg(x), _mm256_castsi256_ps(tail));
        _mm256_maskstore_ps(s + j, tail, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 total = _mm256_set1_ps(_mm_cvtss_f32(hsum4(sum, sum, sum, sum)));
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(s + j, _mm256_div_ps(_mm256_loadu_ps(s + j), total));
    if (j < n)
        _mm256_maskstore_ps(s + j, tail, _mm256_div_ps(_mm256_maskload_ps(s + j, tail), total));
}

// out[g * hd + d], d in [d0, d0 + R), for the G heads.
template <int G, int R, class KV>
TL_AVX2_F16C inline void wsum_rows(const float* p, int64_t p_stride, const KV* vt,
                                   int64_t vt_stride, int64_t n, int64_t hd, int64_t d0,
                                   float* out) {
    static_assert(G * R <= 8, "at most eight accumulators");
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    const KV* rows = vt + d0 * vt_stride;
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        wsum_step<G, R, false>(p, p_stride, rows, vt_stride, j, 8, all, acc);
    if (j < n)
        wsum_step<G, R, true>(p, p_stride, rows, vt_stride, j, n - j, first_lanes(n - j), acc);
    alignas(16) float r0[4], r1[4];
    _mm_store_ps(r0, hsum4(acc[0], acc[1], acc[2], acc[3]));
    _mm_store_ps(r1, hsum4(acc[4], acc[5], acc[6], acc[7]));
    for (int i = 0; i < G * R; ++i) out[(i / R) * hd + d0 + i % R] = i < 4 ? r0[i] : r1[i - 4];
}

// The V^T rows of a head lie n_ctx positions apart, and a sweep reads only the
// first n of each: short runs the hardware prefetchers do not follow. Each sweep
// asks for the rows kWsumAhead sweeps on (8-sequence decode step of the 2b shape at
// 96 positions, 2 threads: 118 -> 112 ms; one sequence 43 -> 41 ms).
constexpr int kWsumAhead = 2;

template <class KV>
TL_AVX2_F16C inline void prefetch_rows(const KV* vt, int64_t vt_stride, int64_t d, int rows,
                                       int64_t n) {
    const int64_t bytes = n * static_cast<int64_t>(sizeof(KV));
    for (int r = 0; r < rows; ++r) {
        const char* row = reinterpret_cast<const char*>(vt + (d + r) * vt_stride);
        for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(row + i, _MM_HINT_T0);
    }
}

template <int G, int R, class KV>
TL_AVX2_F16C void wsum_g(const float* p, int64_t p_stride, const KV* vt, int64_t vt_stride,
                         int64_t n, int64_t hd, float* out) {
    for (int64_t d0 = 0; d0 < hd; d0 += R) {
        if (d0 + (kWsumAhead + 1) * R <= hd)
            prefetch_rows(vt, vt_stride, d0 + kWsumAhead * R, R, n);
        wsum_rows<G, R>(p, p_stride, vt, vt_stride, n, hd, d0, out);
    }
}

template <class KV>
TL_AVX2_F16C void wsum_t(const float* p, int G, int64_t p_stride, const KV* vt,
                         int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    switch (G) {
        case 1: wsum_g<1, 8>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 2: wsum_g<2, 4>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 3: wsum_g<3, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
        default: wsum_g<4, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
    }
}

TL_AVX2_F16C void scores_avx2(const float* q, int G, const float* k, int64_t n, int64_t hd,
                              float scale, float* s, int64_t s_stride, float* mx) {
    scores_t(q, G, k, n, hd, scale, s, s_stride, mx);
}

TL_AVX2_F16C void scores_f16_avx2(const float* q, int G, const uint16_t* k, int64_t n,
                                  int64_t hd, float scale, float* s, int64_t s_stride,
                                  float* mx) {
    scores_t(q, G, k, n, hd, scale, s, s_stride, mx);
}

TL_AVX2_F16C void weighted_sum_avx2(const float* p, int G, int64_t p_stride, const float* vt,
                                    int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    wsum_t(p, G, p_stride, vt, vt_stride, n, hd, out);
}

TL_AVX2_F16C void weighted_sum_f16_avx2(const float* p, int G, int64_t p_stride,
                                        const uint16_t* vt, int64_t vt_stride, int64_t n,
                                        int64_t hd, float* out) {
    wsum_t(p, G, p_stride, vt, vt_stride, n, hd, out);
}

}  // namespace

const AttentionKernels kAttentionAvx2 = {scores_avx2, softmax_avx2, weighted_sum_avx2,
                                         scores_f16_avx2, weighted_sum_f16_avx2};

}  // namespace ternlab

#endif  // TERNLAB_X86
