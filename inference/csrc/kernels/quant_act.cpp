// Activation quantization: a scalar reference and SIMD versions per ISA.
// Each element goes through exactly the same IEEE float32 operations in every
// version (one multiply, round-half-even, clamp), so they agree bit for bit;
// only the max is computed in a different order, and max is order-free.
#include "kernels/quant_act.h"

#include <cfloat>
#include <cmath>

#include "kernels/isa.h"

namespace ternlab {

namespace {

// The per-element step, shared by the scalar reference and the SIMD tails.
inline int8_t quantize_one(float v, float s) {
    float r = std::nearbyint(v * s);  // round half to even in the default rounding mode
    r = r < -128.0f ? -128.0f : (r > 127.0f ? 127.0f : r);
    return static_cast<int8_t>(r);
}

inline bool finite_abs_max(const float* x, int64_t lo, int64_t hi, float* amax) {
    float m = *amax;
    bool ok = true;
    for (int64_t i = lo; i < hi; ++i) {
        const float a = std::fabs(x[i]);
        ok &= (a <= FLT_MAX);  // false for inf and NaN
        m = a > m ? a : m;
    }
    *amax = m;
    return ok;
}

inline int32_t quantize_tail(const float* x, int64_t lo, int64_t hi, float s, int8_t* codes) {
    int32_t sum = 0;
    for (int64_t i = lo; i < hi; ++i) {
        codes[i] = quantize_one(x[i], s);
        sum += codes[i];
    }
    return sum;
}

}  // namespace

bool quant_row_scalar(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum) {
    float amax = 0.0f;
    if (!finite_abs_max(x, 0, k, &amax)) return false;
    const float s = act_multiplier(amax);
    *s_x = s;
    *code_sum = quantize_tail(x, 0, k, s, codes);
    return true;
}

#if TERNLAB_X86

TL_AVX2 static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

TL_AVX2 static inline int32_t hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// 8 floats -> 8 int32 codes: multiply, round half to even, clamp, convert (exact).
TL_AVX2 static inline __m256i quant8_avx2(const float* p, __m256 s) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p), s);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
}

TL_AVX2 bool quant_row_avx2(const float* x, int64_t k, int8_t* codes, float* s_x,
                            int32_t* code_sum) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 fltmax = _mm256_set1_ps(FLT_MAX);
    __m256 vmax = _mm256_setzero_ps();
    __m256 bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, fltmax, _CMP_NLE_UQ));  // inf or NaN
        vmax = _mm256_max_ps(vmax, a);
    }
    float amax = hmax256(vmax);
    if (_mm256_movemask_ps(bad) != 0 || !finite_abs_max(x, i, k, &amax)) return false;

    const float s = act_multiplier(amax);
    const __m256 vs = _mm256_set1_ps(s);
    // packs_epi32/epi16 interleave the two 128-bit lanes; this restores order.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i vsum = _mm256_setzero_si256();
    i = 0;
    for (; i + 32 <= k; i += 32) {
        const __m256i a = quant8_avx2(x + i, vs), b = quant8_avx2(x + i + 8, vs);
        const __m256i c = quant8_avx2(x + i + 16, vs), d = quant8_avx2(x + i + 24, vs);
        vsum = _mm256_add_epi32(vsum, _mm256_add_epi32(_mm256_add_epi32(a, b),
                                                       _mm256_add_epi32(c, d)));
        const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
        const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), q);
    }
    *s_x = s;
    *code_sum = hsum256_epi32(vsum) + quantize_tail(x, i, k, s, codes);
    return true;
}

TL_AVX512 bool quant_row_avx512(const float* x, int64_t k, int8_t* codes, float* s_x,
                                int32_t* code_sum) {
    const __m512 fltmax = _mm512_set1_ps(FLT_MAX);
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + i));
        bad |= _mm512_cmp_ps_mask(a, fltmax, _CMP_NLE_UQ);
        vmax = _mm512_max_ps(vmax, a);
    }
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(vmax),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(vmax), 1)));
    float amax = hmax256(h);
    if (bad != 0 || !finite_abs_max(x, i, k, &amax)) return false;

    const float s = act_multiplier(amax);
    const __m512 vs = _mm512_set1_ps(s);
    const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    __m512i vsum = _mm512_setzero_si512();
    i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_cvtps_epi32(v);
        vsum = _mm512_add_epi32(vsum, q);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtsepi32_epi8(q));
    }
    *s_x = s;
    const __m256i hs = _mm256_add_epi32(_mm512_castsi512_si256(vsum),
                                        _mm512_extracti64x4_epi64(vsum, 1));
    *code_sum = hsum256_epi32(hs) + quantize_tail(x, i, k, s, codes);
    return true;
}

#else  // not x86: never selected by dispatch.cpp

bool quant_row_avx2(const float*, int64_t, int8_t*, float*, int32_t*) { return false; }
bool quant_row_avx512(const float*, int64_t, int8_t*, float*, int32_t*) { return false; }

#endif

#if TERNLAB_NEON

bool quant_row_neon(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum) {
    float32x4_t vmax = vdupq_n_f32(0.0f);
    uint32x4_t bad = vdupq_n_u32(0);
    const float32x4_t fltmax = vdupq_n_f32(FLT_MAX);
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
        const float32x4_t a = vabsq_f32(vld1q_f32(x + i));
        bad = vorrq_u32(bad, vmvnq_u32(vcleq_f32(a, fltmax)));  // !(a <= FLT_MAX)
        vmax = vmaxq_f32(vmax, a);
    }
    float amax = vmaxvq_f32(vmax);
    if (vmaxvq_u32(bad) != 0 || !finite_abs_max(x, i, k, &amax)) return false;
    const float s = act_multiplier(amax);
    const float32x4_t vs = vdupq_n_f32(s);
    int32x4_t vsum = vdupq_n_s32(0);
    i = 0;
    for (; i + 8 <= k; i += 8) {
        // vcvtnq: round to nearest, ties to even; saturating narrows do the clamp.
        const int32x4_t a = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + i), vs));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + i + 4), vs));
        const int16x8_t h = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
        const int8x8_t q = vqmovn_s16(h);
        vsum = vaddq_s32(vsum, vmovl_s16(vget_low_s16(vmovl_s8(q))));
        vsum = vaddq_s32(vsum, vmovl_s16(vget_high_s16(vmovl_s8(q))));
        vst1_s8(codes + i, q);
    }
    *s_x = s;
    *code_sum = vaddvq_s32(vsum) + quantize_tail(x, i, k, s, codes);
    return true;
}

#else

bool quant_row_neon(const float*, int64_t, int8_t*, float*, int32_t*) { return false; }

#endif

}  // namespace ternlab
