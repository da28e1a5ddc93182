// AVX2 Q6_K x int8 kernels (numerics: q6k_int8.h). 32 levels (0..63, unsigned)
// meet 32 activation codes in maddubs (int16 pair sums, |.| <= 2 * 63 * 128 <
// 2^15), and madd with each pair's sub-block scale widens them to int32. The
// -32 of every level comes off once per block as 32 * sum_i scale_i * xsum_i.
//   GEMV (T == 1, decode): one row at a time, levels decoded in registers: the
//     weights are one sequential stream, which the prefetchers sustain best
//     (float_matmul_avx2.cpp).
//   GEMM (T > 1): kRowBlock rows are decoded once into a panel of levels and
//     pair scales, which kTileTokens tokens at a time then share.
#include <cstdint>
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/avx2/hsum_avx2.h"
#include "kernels/isa.h"
#include "kernels/q6k.h"
#include "kernels/q6k_int8.h"

#if TERNLAB_X86

#define TL_Q6K2 __attribute__((target("avx2,fma,f16c")))

namespace ternlab {

namespace {

constexpr int64_t kRowBlock = 16;  // panel: 16 rows x 2K bytes (80 KiB at K = 2560), in L2
constexpr int kTileTokens = 4;

TL_Q6K2 inline __m256i load(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

TL_Q6K2 inline float half_to_float(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

// Levels of values 128h + 32k + (0..31) into y[k] (layout: q6k.h). ql bytes
// 64h + (0..31) hold k = 0 and 2 in their low and high nibble, ql bytes
// 64h + 32 + (0..31) k = 1 and 3, qh bytes 32h + (0..31) the top two bits of
// k in bits 2k, 2k + 1. The shifts are 16-bit: the masks drop the bits that
// crossed over from the neighbouring byte.
TL_Q6K2 inline void levels_half(const uint8_t* blk, int h, __m256i* y) {
    const __m256i lo4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
    const __m256i l0 = load(blk + 64 * h), l1 = load(blk + 64 * h + 32);
    const __m256i qh = load(blk + 128 + 32 * h);
    y[0] = _mm256_or_si256(_mm256_and_si256(l0, lo4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2));
    y[1] = _mm256_or_si256(_mm256_and_si256(l1, lo4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2));
    y[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4),
                           _mm256_and_si256(qh, top2));
    y[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2));
}

// The scale of each maddubs pair of y[k] (levels_half): sub-block 8h + 2k in
// int16 lanes 0-7, 8h + 2k + 1 in lanes 8-15.
TL_Q6K2 inline void scales_half(const uint8_t* blk, int h, __m256i* sv) {
    const __m128i s8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 192 + 8 * h));
    const __m256i s = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(s8));  // 8 int16 per lane
    for (int k = 0; k < 4; ++k) {
        // pshufb indices: the bytes 4k, 4k + 1 of int16 lane 2k in the low half,
        // 4k + 2, 4k + 3 of lane 2k + 1 in the high half.
        const short lo = static_cast<short>(((4 * k + 1) << 8) | (4 * k));
        const short hi = static_cast<short>(((4 * k + 3) << 8) | (4 * k + 2));
        sv[k] = _mm256_shuffle_epi8(s, _mm256_setr_m128i(_mm_set1_epi16(lo), _mm_set1_epi16(hi)));
    }
}

// acc += (pair scale) x (level x code pair sums) over 32 values, int32 lanes
// (|lane| <= 8 x 2 x 128 x 16128 over a block: no overflow).
TL_Q6K2 inline __m256i dot32(__m256i acc, __m256i y, __m256i sv, const int8_t* code) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(y, load(code)), sv));
}

// isum_b from dot32's lanes over the block: minus 32 * sum_i scale_i * xsum_i.
TL_Q6K2 inline int32_t block_isum(__m256i acc, const uint8_t* blk, const int16_t* xsum) {
    const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    const __m256i sc = _mm256_cvtepi8_epi16(s8);
    const __m256i off = _mm256_madd_epi16(sc, load(xsum));
    return hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(off, 5)));
}

// ---- GEMV ------------------------------------------------------------------------
TL_Q6K2 inline float row_dot(const uint8_t* row, int64_t K, const int8_t* code, const float* s,
                             const int16_t* xsum) {
    float acc = 0.0f;
    for (int64_t b = 0; b < K / kQ6KBlock; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const int8_t* c = code + b * kQ6KBlock;
        prefetch_ahead(blk, kQ6KBlockBytes);  // isa.h
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            __m256i y[4], sv[4];
            levels_half(blk, h, y);
            scales_half(blk, h, sv);
            for (int k = 0; k < 4; ++k) isum = dot32(isum, y[k], sv[k], c + 128 * h + 32 * k);
        }
        acc = q6k_accumulate(acc, block_isum(isum, blk, xsum + 16 * b), half_to_float(blk + 208),
                             s[b]);
    }
    return acc;
}

TL_Q6K2 void gemv(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
        a.y[o] = x.finite[0] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes, x.s, x.xsum) : kQ6KNaN;
}

// ---- GEMM ------------------------------------------------------------------------
// A decoded row p: levels p[v] (K bytes, value order), then the pair scales of
// the 32 values from v as 16 int16 at p[K + v].
TL_Q6K2 inline void decode_row(const uint8_t* row, int64_t K, uint8_t* p) {
    for (int64_t b = 0; b < K / kQ6KBlock; ++b)
        for (int h = 0; h < 2; ++h) {
            __m256i y[4], sv[4];
            levels_half(row + b * kQ6KBlockBytes, h, y);
            scales_half(row + b * kQ6KBlockBytes, h, sv);
            for (int k = 0; k < 4; ++k) {
                const int64_t v = b * kQ6KBlock + 128 * h + 32 * k;
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + v), y[k]);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + K + v), sv[k]);
            }
        }
}

// The 4 lanes' totals of v[0..4) (8 int32 each): integer sums, exact in any order.
TL_Q6K2 inline __m128i hsum4_epi32(const __m256i* v) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]),
                                        _mm256_hadd_epi32(v[2], v[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// y of decoded row p (raw row: scales, d) for tokens [t, t + TT) into out. The
// block's epilogue (block_isum, then q6k_accumulate: acc + float(isum) * (d / s))
// runs for the tile's tokens in the 4 lanes of one vector: the same float steps per
// token, a quarter of the instructions (one at a time it was a third of the tile's).
template <int TT>
TL_Q6K2 inline void tile_row(const uint8_t* p, const uint8_t* row, int64_t K, const Q6KActs& x,
                             int64_t t, float* out) {
    const int64_t nb = K / kQ6KBlock;
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        __m256i isum[4];
        for (int i = 0; i < 4; ++i) isum[i] = _mm256_setzero_si256();
        for (int64_t v = b * kQ6KBlock; v < (b + 1) * kQ6KBlock; v += 32) {
            const __m256i y = load(p + v), sv = load(p + K + v);
            for (int i = 0; i < TT; ++i) isum[i] = dot32(isum[i], y, sv, x.codes + (t + i) * K + v);
        }
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const __m256i sc =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
        alignas(16) float s[4] = {1.0f, 1.0f, 1.0f, 1.0f};  // lanes past TT: unused
        for (int i = 0; i < TT; ++i) {
            const __m256i off = _mm256_madd_epi16(sc, load(x.xsum + (t + i) * (K / 16) + 16 * b));
            isum[i] = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(off, 5));
            s[i] = x.s[(t + i) * nb + b];
        }
        const __m128 ratio = _mm_div_ps(_mm_set1_ps(half_to_float(blk + 208)), _mm_load_ps(s));
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(hsum4_epi32(isum)), ratio));
    }
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, acc);
    for (int i = 0; i < TT; ++i) out[i] = lanes[i];
}

TL_Q6K2 inline void tile_dispatch(int tt, const uint8_t* p, const uint8_t* row, int64_t K,
                                  const Q6KActs& x, int64_t t, float* out) {
    switch (tt) {
        case 4: tile_row<4>(p, row, K, x, t, out); break;
        case 3: tile_row<3>(p, row, K, x, t, out); break;
        case 2: tile_row<2>(p, row, K, x, t, out); break;
        default: tile_row<1>(p, row, K, x, t, out); break;
    }
}
static_assert(kTileTokens == 4, "tile_dispatch handles tiles of 1 to 4 tokens");

TL_Q6K2 void gemm(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1,
                  uint8_t* panel) {
    for (int64_t ob = o0; ob < o1; ob += kRowBlock) {
        const int64_t rows = o1 - ob < kRowBlock ? o1 - ob : kRowBlock;
        for (int64_t r = 0; r < rows; ++r)
            decode_row(a.w + (ob + r) * a.row_bytes, a.K, panel + r * 2 * a.K);
        for (int64_t t = 0; t < a.T; t += kTileTokens) {
            const int tt = static_cast<int>(a.T - t < kTileTokens ? a.T - t : kTileTokens);
            for (int64_t r = 0; r < rows; ++r) {
                const uint8_t* row = a.w + (ob + r) * a.row_bytes;
                float out[kTileTokens];
                tile_dispatch(tt, panel + r * 2 * a.K, row, a.K, x, t, out);
                for (int i = 0; i < tt; ++i)
                    a.y[(t + i) * a.y_stride + ob + r] = x.finite[t + i] ? out[i] : kQ6KNaN;
            }
        }
    }
}

}  // namespace

void float_gemv_q6_k_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemv(a, q6k_quantize_acts(a.x, 1, a.K), o0, o1);
}

void float_gemm_q6_k_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(a, q6k_quantize_acts(a.x, a.T, a.K), o0, o1, panel_bytes(kRowBlock * 2 * a.K));
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemv_q6_k_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_q6_k_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
