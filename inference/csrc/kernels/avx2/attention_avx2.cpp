// AVX2 + FMA attention kernels (attention_kernels.h), for head_dim % 8 == 0.
// Scores: G heads x P positions per step (G * P = 4 independent FMA chains),
// each cached K row loaded once for the G heads. Weighted sum over the
// transposed V: R rows of V^T x G heads (G * R <= 8 accumulators) per sweep over
// the positions, each V^T row loaded once for the G heads.
#include <algorithm>
#include <cmath>

#include "kernels/attention_kernels.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

// {sum a, sum b, sum c, sum d} of four 8-lane vectors.
TL_AVX2 inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 ab = _mm256_hadd_ps(a, b);
    const __m256 cd = _mm256_hadd_ps(c, d);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Scores of G heads at positions [j, j + P) (G * P <= 4).
template <int G, int P>
TL_AVX2 inline void scores_step(const float* q, const float* k, int64_t j, int64_t hd,
                                float scale, float* s, int64_t s_stride, float* mx) {
    __m256 acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) {
        for (int p = 0; p < P; ++p) {
            const __m256 kv = _mm256_loadu_ps(k + (j + p) * hd + d);
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

template <int G>
TL_AVX2 void scores_g(const float* q, const float* k, int64_t n, int64_t hd, float scale,
                      float* s, int64_t s_stride, float* mx) {
    constexpr int P = 4 / G;
    for (int g = 0; g < G; ++g) mx[g] = -INFINITY;
    int64_t j = 0;
    for (; j + P <= n; j += P) scores_step<G, P>(q, k, j, hd, scale, s, s_stride, mx);
    for (; j < n; ++j) scores_step<G, 1>(q, k, j, hd, scale, s, s_stride, mx);
}

TL_AVX2 void scores_avx2(const float* q, int G, const float* k, int64_t n, int64_t hd,
                         float scale, float* s, int64_t s_stride, float* mx) {
    switch (G) {
        case 1: scores_g<1>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 2: scores_g<2>(q, k, n, hd, scale, s, s_stride, mx); break;
        case 3: scores_g<3>(q, k, n, hd, scale, s, s_stride, mx); break;
        default: scores_g<4>(q, k, n, hd, scale, s, s_stride, mx); break;
    }
}

// exp(x) for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-5
// polynomial for exp(r), then the exponent n put into the float's bits); within
// 2 ulp of std::exp, and 0 below -87 where expf itself is denormal.
TL_AVX2 inline __m256 exp_neg(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// Lanes [0, r) set: loads of the last, partial 8 positions never touch
// memory past position n (unwritten scratch, the next head's cache).
TL_AVX2 inline __m256i first_lanes(int64_t r) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), idx);
}

// One step: positions [j, j + 8) of R rows of V^T into the G x R accumulators.
template <int G, int R, bool kMasked>
TL_AVX2 inline void wsum_step(const float* p, int64_t p_stride, const float* vt,
                              int64_t vt_stride, int64_t j, __m256i mask, __m256* acc) {
    __m256 pv[G];
    for (int g = 0; g < G; ++g)
        pv[g] = kMasked ? _mm256_maskload_ps(p + g * p_stride + j, mask)
                        : _mm256_loadu_ps(p + g * p_stride + j);
    for (int r = 0; r < R; ++r) {
        const float* row = vt + r * vt_stride + j;
        const __m256 vv = kMasked ? _mm256_maskload_ps(row, mask) : _mm256_loadu_ps(row);
        for (int g = 0; g < G; ++g) acc[g * R + r] = _mm256_fmadd_ps(pv[g], vv, acc[g * R + r]);
    }
}

TL_AVX2 void softmax_avx2(float* s, int64_t n, float mx) {
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
template <int G, int R>
TL_AVX2 inline void wsum_rows(const float* p, int64_t p_stride, const float* vt,
                              int64_t vt_stride, int64_t n, int64_t hd, int64_t d0, float* out) {
    static_assert(G * R <= 8, "at most eight accumulators");
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    const float* rows = vt + d0 * vt_stride;
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) wsum_step<G, R, false>(p, p_stride, rows, vt_stride, j, all, acc);
    if (j < n) wsum_step<G, R, true>(p, p_stride, rows, vt_stride, j, first_lanes(n - j), acc);
    alignas(16) float r0[4], r1[4];
    _mm_store_ps(r0, hsum4(acc[0], acc[1], acc[2], acc[3]));
    _mm_store_ps(r1, hsum4(acc[4], acc[5], acc[6], acc[7]));
    for (int i = 0; i < G * R; ++i) out[(i / R) * hd + d0 + i % R] = i < 4 ? r0[i] : r1[i - 4];
}

template <int G, int R>
TL_AVX2 void wsum_g(const float* p, int64_t p_stride, const float* vt, int64_t vt_stride,
                    int64_t n, int64_t hd, float* out) {
    for (int64_t d0 = 0; d0 < hd; d0 += R)
        wsum_rows<G, R>(p, p_stride, vt, vt_stride, n, hd, d0, out);
}

TL_AVX2 void weighted_sum_avx2(const float* p, int G, int64_t p_stride, const float* vt,
                               int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    switch (G) {
        case 1: wsum_g<1, 8>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 2: wsum_g<2, 4>(p, p_stride, vt, vt_stride, n, hd, out); break;
        case 3: wsum_g<3, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
        default: wsum_g<4, 2>(p, p_stride, vt, vt_stride, n, hd, out); break;
    }
}

}  // namespace

const AttentionKernels kAttentionAvx2 = {scores_avx2, softmax_avx2, weighted_sum_avx2};

}  // namespace ternlab

#endif  // TERNLAB_X86
