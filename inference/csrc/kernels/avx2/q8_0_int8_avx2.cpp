// AVX2 Q8_0 x int8 kernels (numerics: q8_0_int8.h), on rows repacked at load.
// A block's 32 codes are one 256-bit load. maddubs takes unsigned x signed
// bytes, so it gets |q| and the activation codes with q's sign moved onto them
// (|q| <= 128, |code| <= 127: pair sums |.| <= 2 * 128 * 127 < 2^15, no
// saturation); madd with ones gives the int32 lanes of 4 values each. The rows
// are read in order, one sequential stream.
#include <cstdint>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"
#include "kernels/q8_0_int8.h"

#if TERNLAB_X86

#define TL_Q80 __attribute__((target("avx2,fma,f16c")))

namespace ternlab {

namespace {

TL_Q80 inline __m256i load(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// acc + P_b * F_i for block i of a group (q: its codes, c: the token's, f: the group's F's).
TL_Q80 inline __m256 block_step(__m256 acc, __m256 f, int i, const uint8_t* q, const int8_t* c) {
    const __m256i w = load(q), x = load(c);
    const __m256i s16 = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    const __m256i lanes = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    const __m256 fi = _mm256_permutevar8x32_ps(f, _mm256_set1_epi32(i));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), fi, acc);
}

// One repacked row, one token. A group starts at an even block, so its blocks
// alternate e, o, e, o; the 8 F's of a group are one conversion and one multiply
// (lanes past a short last group are never used).
TL_Q80 float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r) {
    const int64_t nb = K / kQ8Block;
    __m256 e = _mm256_setzero_ps(), o = _mm256_setzero_ps();
    for (int64_t g0 = 0; g0 < nb; g0 += kQ80GroupBlocks) {
        const int64_t n = nb - g0 < kQ80GroupBlocks ? nb - g0 : kQ80GroupBlocks;
        const uint8_t* group = row + kQ8BlockBytes * g0;
        prefetch_ahead(group, kQ8BlockBytes * kQ80GroupBlocks);  // isa.h
        const __m256 f = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(group))),
            _mm256_loadu_ps(r + g0));
        const uint8_t* q = group + 2 * n;
        const int8_t* c = codes + kQ8Block * g0;
        if (n == kQ80GroupBlocks) {
            for (int i = 0; i < kQ80GroupBlocks; i += 2) {
                e = block_step(e, f, i, q + kQ8Block * i, c + kQ8Block * i);
                o = block_step(o, f, i + 1, q + kQ8Block * (i + 1), c + kQ8Block * (i + 1));
            }
        } else {
            for (int i = 0; i < n; ++i) {
                if (i % 2 == 0)
                    e = block_step(e, f, i, q + kQ8Block * i, c + kQ8Block * i);
                else
                    o = block_step(o, f, i, q + kQ8Block * i, c + kQ8Block * i);
            }
        }
    }
    const __m256 s = _mm256_add_ps(e, o);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(t) + _mm_cvtss_f32(_mm_shuffle_ps(t, t, 1));
}

// Rows [o0, o1) for every token, kQ80RowTile rows at a time.
TL_Q80 void matmul(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q80Acts x = q80_quantize_acts(a.x, a.T, a.K, false);
    const int64_t nb = a.K / kQ8Block;
    for (int64_t ob = o0; ob < o1; ob += kQ80RowTile) {
        const int64_t oe = o1 - ob < kQ80RowTile ? o1 : ob + kQ80RowTile;
        for (int64_t t = 0; t < a.T; ++t)
            for (int64_t o = ob; o < oe; ++o)
                a.y[t * a.y_stride + o] =
                    x.finite[t]
                        ? row_dot(a.w + o * a.row_bytes, a.K, x.codes + t * a.K, x.r + t * nb)
                        : kInt8RefusedToken;
    }
}

}  // namespace

// GEMV and GEMM: one token is a GEMM of T = 1 (the weights stream once either way).
void float_matmul_q8_0_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) { matmul(a, o0, o1); }

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_matmul_q8_0_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
