// AVX-512 (BW + VNNI) Q4_0 x int8 kernels (numerics: q4_0_int8.h). One 512-bit
// vector holds two pairs of blocks, four blocks' nibbles in its 128-bit lanes;
// the codes come grouped by four blocks to match (q40_quantize_acts, group 4).
// vpdpbusd sums four unsigned level x code products into each int32 lane, low
// nibbles and high nibbles into the same lanes, then the lanes' 8 * code sums
// come off for the -8. The even pair sits in the low half, so the accumulator's
// halves are the definition's E and O. An odd pair count ends with one pair in
// 256-bit registers (the last code group holds two blocks, as AVX2's).
#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/q4_0_int8.h"

#if TERNLAB_X86

#define TL_Q40X \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

namespace ternlab {

namespace {

TL_Q40X inline __m128i load128(const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// The int32 lanes of pairs p, p+1 (blocks from blk), codes at c, offsets at off.
TL_Q40X inline __m512i quad_lanes(const uint8_t* blk, const int8_t* c, const int32_t* off) {
    __m512i v = _mm512_castsi128_si512(load128(blk + 2));
    v = _mm512_inserti32x4(v, load128(blk + 2 + kQ4BlockBytes), 1);
    v = _mm512_inserti32x4(v, load128(blk + 2 + 2 * kQ4BlockBytes), 2);
    v = _mm512_inserti32x4(v, load128(blk + 2 + 3 * kQ4BlockBytes), 3);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(v, nib);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
    __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(c));
    acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(c + 64));
    return _mm512_sub_epi32(acc, _mm512_loadu_si512(off));
}

// [F_b x 4 for the 4 blocks from blk]: their d times the activations' r.
TL_Q40X inline __m512 quad_factors(const uint8_t* blk, const float* r) {
    __m128i h = _mm_cvtsi32_si128(load_u16(blk));
    h = _mm_insert_epi16(h, load_u16(blk + kQ4BlockBytes), 1);
    h = _mm_insert_epi16(h, load_u16(blk + 2 * kQ4BlockBytes), 2);
    h = _mm_insert_epi16(h, load_u16(blk + 3 * kQ4BlockBytes), 3);
    const __m128 f = _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(r));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

// One pair alone (the last of an odd count), AVX2's step with VNNI.
TL_Q40X inline __m256 pair_step(__m256 acc, const uint8_t* blk, const int8_t* c,
                                const int32_t* off, const float* r) {
    const __m256i v = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(blk + 20),
                                          reinterpret_cast<const __m128i*>(blk + 2));
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(v, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo,
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
    s = _mm256_dpbusd_epi32(s, hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 32)));
    s = _mm256_sub_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off)));
    __m128i h = _mm_cvtsi32_si128(load_u16(blk));
    h = _mm_insert_epi16(h, load_u16(blk + kQ4BlockBytes), 1);
    const __m128 rr = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(r)));
    const __m128 f = _mm_mul_ps(_mm_cvtph_ps(h), rr);
    const __m256 fv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f),
                                               _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), fv, acc);
}

TL_Q40X float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r,
                      const int32_t* off) {
    const int64_t np = K / kQ40PairValues;
    __m512 acc = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 1 < np; p += 2) {
        const uint8_t* blk = row + 2 * kQ4BlockBytes * p;
        const __m512 lanes = _mm512_cvtepi32_ps(
            quad_lanes(blk, codes + kQ40PairValues * p, off + 8 * p));
        acc = _mm512_fmadd_ps(lanes, quad_factors(blk, r + 2 * p), acc);
    }
    __m256 e = _mm512_castps512_ps256(acc);
    const __m256 o = _mm512_extractf32x8_ps(acc, 1);
    if (p < np)
        e = pair_step(e, row + 2 * kQ4BlockBytes * p, codes + kQ40PairValues * p, off + 8 * p,
                      r + 2 * p);
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
                                : kQ40NaN;
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
