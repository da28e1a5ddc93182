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

// The codes and lane offsets of two pairs (or of one, in the low halves),
// shared by the rows that meet them.
struct QuadActs {
    __m512i lo, hi, off;
};

TL_Q40X inline QuadActs quad_acts(int i, const int8_t* c, const int32_t* off) {
    return {_mm512_loadu_si512(c + 32 * i), _mm512_loadu_si512(c + 32 * i + 64),
            _mm512_loadu_si512(off + 4 * i)};
}

// acc + P * [F_i x 4 | F_i+1 x 4 | F_i+2 x 4 | F_i+3 x 4] for blocks i .. i+3 of a
// group (f: its 8 F's), nibbles of block i at qs + 16 i.
TL_Q40X inline __m512 quad_step(__m512 acc, __m256 f, int i, const uint8_t* qs,
                                const QuadActs& x) {
    const __m512i v = _mm512_loadu_si512(qs + 16 * i);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(v, nib);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x.lo);
    p = _mm512_sub_epi32(_mm512_dpbusd_epi32(p, hi, x.hi), x.off);
    const __m512i idx = _mm512_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1, i + 2, i + 2,
                                          i + 2, i + 2, i + 3, i + 3, i + 3, i + 3);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
                           _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(f)), acc);
}

// One pair alone (the last of a group of 2 or 6), AVX2's step with VNNI; its
// codes come grouped by two (the last code group), its offsets as usual.
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

// The 8 F's of a group (lanes past a short last group are never used).
TL_Q40X inline __m256 group_factors(const uint8_t* group, __m256 r) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(group))),
                         r);
}

TL_Q40X inline float reduce(__m512 acc) {
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(q) + _mm_cvtss_f32(_mm_shuffle_ps(q, q, 1));
}

// acc with its low half (E) advanced by one lone pair.
TL_Q40X inline __m512 with_lone_pair(__m512 acc, __m256 f, int i, const uint8_t* qs,
                                     const int8_t* c, const int32_t* off) {
    const __m256 e = pair_step(_mm512_castps512_ps256(acc), f, i, qs, c, off);
    return _mm512_insertf32x8(acc, e, 0);
}

// Two repacked rows (w0, w1: the same row when one is left), one token. Groups
// start at even pairs: each quad's even pair goes to the low half (E). Only a
// short last group (2 or 6 blocks) ends with a lone pair, even, which is then
// E's last step. Two rows at once: the second row's fma chain fills the first's
// latency, and the codes are loaded once for both.
TL_Q40X void rows_dot(const uint8_t* w0, const uint8_t* w1, int64_t K, const int8_t* codes,
                      const float* r, const int32_t* off, float* y0, float* y1) {
    const int64_t nb = K / kQ4Block;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int64_t g0 = 0; g0 < nb; g0 += kQ40GroupBlocks) {
        const int n = static_cast<int>(nb - g0 < kQ40GroupBlocks ? nb - g0 : kQ40GroupBlocks);
        const __m256 rv = _mm256_loadu_ps(r + g0);
        const __m256 f0 = group_factors(w0 + kQ4BlockBytes * g0, rv);
        const __m256 f1 = group_factors(w1 + kQ4BlockBytes * g0, rv);
        const uint8_t* q0 = w0 + kQ4BlockBytes * g0 + 2 * n;
        const uint8_t* q1 = w1 + kQ4BlockBytes * g0 + 2 * n;
        const int8_t* c = codes + kQ4Block * g0;
        const int32_t* of = off + 4 * g0;
        if (n == kQ40GroupBlocks) {
            QuadActs x = quad_acts(0, c, of);
            a0 = quad_step(a0, f0, 0, q0, x);
            a1 = quad_step(a1, f1, 0, q1, x);
            x = quad_acts(4, c, of);
            a0 = quad_step(a0, f0, 4, q0, x);
            a1 = quad_step(a1, f1, 4, q1, x);
            continue;
        }
        if (n >= 4) {
            const QuadActs x = quad_acts(0, c, of);
            a0 = quad_step(a0, f0, 0, q0, x);
            a1 = quad_step(a1, f1, 0, q1, x);
        }
        if (n % 4 != 0) {
            a0 = with_lone_pair(a0, f0, n - 2, q0, c, of);
            a1 = with_lone_pair(a1, f1, n - 2, q1, c, of);
        }
    }
    *y0 = reduce(a0);
    *y1 = reduce(a1);
}

TL_Q40X void matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q40Acts x = q40_quantize_acts(a.x, a.T, a.K, 4);
    const int64_t nb = a.K / kQ4Block;
    for (int64_t ob = o0; ob < o1; ob += kQ40RowTile) {
        const int64_t oe = o1 - ob < kQ40RowTile ? o1 : ob + kQ40RowTile;
        for (int64_t t = 0; t < a.T; ++t) {
            float* y = a.y + t * a.y_stride;
            for (int64_t o = ob; o < oe; o += 2) {
                const int64_t o2 = o + 1 < oe ? o + 1 : o;  // a lone last row: twice
                if (!x.finite[t]) {
                    y[o] = y[o2] = kQ40NaN;
                    continue;
                }
                rows_dot(a.w + o * a.row_bytes, a.w + o2 * a.row_bytes, a.K, x.codes + t * a.K,
                         x.r + t * nb, x.off + t * nb * 4, &y[o], &y[o2]);
            }
        }
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
