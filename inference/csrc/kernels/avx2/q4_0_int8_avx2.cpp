// AVX2 Q4_0 x int8 kernels (numerics: q4_0_int8.h), on rows repacked at load.
// One 256-bit load holds a pair of blocks' nibbles: [qs of 2p | qs of 2p+1].
// Its low nibbles (values 0..15 of each block) and high nibbles (16..31) meet
// the activation codes, grouped to match (q40_quantize_acts, group 2), in two
// maddubs (unsigned levels 0..15: pair sums |.| <= 2 * 15 * 128, and the two
// added < 2^15); madd with ones gives the int32 lane sums of q * code, and the
// lanes' 8 * code sums come off for the -8. The rows are read in order, one
// sequential stream.
#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/q4_0_int8.h"

#if TERNLAB_X86

#define TL_Q40 __attribute__((target("avx2,fma,f16c")))

namespace ternlab {

namespace {

TL_Q40 inline __m256i load(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// P_p (q4_0_int8.h) of the pair whose nibbles are at qs, codes at c, offsets at off.
TL_Q40 inline __m256i pair_lanes(const uint8_t* qs, const int8_t* c, const int32_t* off) {
    const __m256i v = load(qs);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(v, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load(c)),
                                         _mm256_maddubs_epi16(hi, load(c + 32)));
    return _mm256_sub_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), load(off));
}

// acc + P * [F_b x 4 | F_b+1 x 4] for the pair of blocks i, i+1 of a group (f: its 8 F's).
TL_Q40 inline __m256 pair_step(__m256 acc, __m256 f, int i, const uint8_t* qs, const int8_t* c,
                               const int32_t* off) {
    const __m256i idx = _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1);
    const __m256 lanes = _mm256_cvtepi32_ps(pair_lanes(qs + 16 * i, c + 32 * i, off + 4 * i));
    return _mm256_fmadd_ps(lanes, _mm256_permutevar8x32_ps(f, idx), acc);
}

// ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7)) with S = e + o.
TL_Q40 inline float reduce(__m256 e, __m256 o) {
    const __m256 s = _mm256_add_ps(e, o);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(q) + _mm_cvtss_f32(_mm_shuffle_ps(q, q, 1));
}

// One repacked row, one token. A group starts at an even pair, so its pairs
// alternate e, o, e, o; the 8 F's of a group are one conversion and one multiply
// (lanes past a short last group are never used).
TL_Q40 float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r,
                     const int32_t* off) {
    const int64_t nb = K / kQ4Block;
    __m256 e = _mm256_setzero_ps(), o = _mm256_setzero_ps();
    for (int64_t g0 = 0; g0 < nb; g0 += kQ40GroupBlocks) {
        const int64_t n = nb - g0 < kQ40GroupBlocks ? nb - g0 : kQ40GroupBlocks;
        const uint8_t* group = row + kQ4BlockBytes * g0;
        prefetch_ahead(group, kQ4BlockBytes * kQ40GroupBlocks);  // isa.h
        const __m256 f = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(group))),
            _mm256_loadu_ps(r + g0));
        const uint8_t* qs = group + 2 * n;
        const int8_t* c = codes + kQ4Block * g0;
        const int32_t* of = off + 4 * g0;
        if (n == kQ40GroupBlocks) {
            e = pair_step(e, f, 0, qs, c, of);
            o = pair_step(o, f, 2, qs, c, of);
            e = pair_step(e, f, 4, qs, c, of);
            o = pair_step(o, f, 6, qs, c, of);
        } else {
            for (int i = 0; i < n; i += 2) {
                if (i % 4 == 0)
                    e = pair_step(e, f, i, qs, c, of);
                else
                    o = pair_step(o, f, i, qs, c, of);
            }
        }
    }
    return reduce(e, o);
}

// Rows [o0, o1) for every token, kQ40RowTile rows at a time.
TL_Q40 void matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q40Acts x = q40_quantize_acts(a.x, a.T, a.K, 2);
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
void float_matmul_q4_0_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) { matmul(a, o0, o1); }

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_matmul_q4_0_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
