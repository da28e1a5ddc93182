// AVX-512 (BW + VNNI) Q4_0 x int8 kernels (numerics: q4_0_int8.h), on rows
// repacked at load. One 512-bit load holds two pairs of blocks, four blocks'
// nibbles in its 128-bit lanes;
// the codes come grouped by four blocks to match (q40_quantize_acts, group 4).
// vpdpbusd sums four unsigned level x code products into each int32 lane, low
// nibbles and high nibbles into the same lanes, then the lanes' 8 * code sums
// come off for the -8. The even pair sits in the low half, so the accumulator's
// halves are the definition's E and O. A lone last pair runs in 256-bit
// registers (its code group holds two blocks, as AVX2's).
#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/q4_0_int8.h"

#if TERNLAB_X86

#define TL_Q40X \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

namespace ternlab {

namespace {

// The int32 lanes of two pairs whose nibbles are at qs, codes at c, offsets at off.
TL_Q40X inline __m512i quad_lanes(const uint8_t* qs, const int8_t* c, const int32_t* off) {
    const __m512i v = _mm512_loadu_si512(qs);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(v, nib);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
    __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(c));
    acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(c + 64));
    return _mm512_sub_epi32(acc, _mm512_loadu_si512(off));
}

// acc + P * [F_i x 4 | F_i+1 x 4 | F_i+2 x 4 | F_i+3 x 4] for blocks i .. i+3 of a
// group (f: its 8 F's).
TL_Q40X inline __m512 quad_step(__m512 acc, __m256 f, int i, const uint8_t* qs, const int8_t* c,
                                const int32_t* off) {
    const __m512i idx = _mm512_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1, i + 2, i + 2,
                                          i + 2, i + 2, i + 3, i + 3, i + 3, i + 3);
    const __m512 lanes = _mm512_cvtepi32_ps(quad_lanes(qs + 16 * i, c + 32 * i, off + 4 * i));
    return _mm512_fmadd_ps(lanes, _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(f)), acc);
}

// One pair alone (the last of a group of 2 or 6), AVX2's step with VNNI.
TL_Q40X inline __m256 pair_step(__m256 acc, __m256 f, int i, const uint8_t* qs, const int8_t* c,
                                const int32_t* off) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * i));
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(v, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    const int8_t* cp = c + 32 * i;
    __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo,
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp)));
    s = _mm256_dpbusd_epi32(s, hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + 32)));
    s = _mm256_sub_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off + 4 * i)));
    const __m256i idx = _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(f, idx), acc);
}

// The 8 F's of the group of n blocks at `group` (lanes past n are never used).
TL_Q40X inline __m256 group_factors(const uint8_t* group, const float* r) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(group))),
                         _mm256_loadu_ps(r));
}

// One repacked row, one token. Groups start at even pairs: each quad's even pair
// goes to the low half (E). Only a short last group (2 or 6 blocks) ends with a
// lone pair, even, which is then E's last step.
TL_Q40X float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r,
                      const int32_t* off) {
    const int64_t nb = K / kQ4Block;
    __m512 acc = _mm512_setzero_ps();
    int64_t g0 = 0;
    for (; g0 + kQ40GroupBlocks <= nb; g0 += kQ40GroupBlocks) {
        const uint8_t* group = row + kQ4BlockBytes * g0;
        const __m256 f = group_factors(group, r + g0);
        const uint8_t* qs = group + 2 * kQ40GroupBlocks;
        acc = quad_step(acc, f, 0, qs, codes + kQ4Block * g0, off + 4 * g0);
        acc = quad_step(acc, f, 4, qs, codes + kQ4Block * g0, off + 4 * g0);
    }
    __m256 e = _mm512_castps512_ps256(acc), o = _mm512_extractf32x8_ps(acc, 1);
    if (g0 < nb) {
        const int n = static_cast<int>(nb - g0);
        const uint8_t* group = row + kQ4BlockBytes * g0;
        const __m256 f = group_factors(group, r + g0);
        const uint8_t* qs = group + 2 * n;
        const int8_t* c = codes + kQ4Block * g0;
        const int32_t* of = off + 4 * g0;
        if (n >= 4) {
            acc = quad_step(_mm512_insertf32x8(_mm512_castps256_ps512(e), o, 1), f, 0, qs, c, of);
            e = _mm512_castps512_ps256(acc);
            o = _mm512_extractf32x8_ps(acc, 1);
        }
        if (n % 4 != 0) e = pair_step(e, f, n - 2, qs, c, of);
    }
    const __m256 s = _mm256_add_ps(e, o);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(q) + _mm_cvtss_f32(_mm_shuffle_ps(q, q, 1));
}

TL_Q40X void matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q40Acts x = q40_quantize_acts(a.x, a.T, a.K, 4);
    const int64_t nb = a.K / kQ4Block;
    for (int64_t ob = o0; ob < o1; ob += kQ40RowTile) {
        const int64_t oe = o1 - ob < kQ40RowTile ? o1 : ob + kQ40RowTile;
        for (int64_t t = 0; t < a.T; ++t)
            for (int64_t o = ob; o < oe; ++o)
                a.y[t * a.y_stride + o] =
                    x.finite[t] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes + t * a.K,
                                          x.r + t * nb, x.off + t * nb * 4)
                                : kInt8RefusedToken;
    }
}

}  // namespace

// GEMV and GEMM: one token is a GEMM of T = 1 (the weights stream once either way).
void float_matmul_q4_0_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    matmul(a, o0, o1);
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_matmul_q4_0_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
