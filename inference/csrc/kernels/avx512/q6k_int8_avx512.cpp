// AVX-512 (BW + VNNI) Q6_K x int8 kernels (numerics: q6k_int8.h), the AVX2
// kernels' plan (q6k_int8_avx2.cpp) on 64 values at a time: maddubs of the
// unsigned levels and the codes, then vpdpwssd with each pair's sub-block
// scale accumulates int32 directly. Same structure: a one-row-at-a-time GEMV
// (one sequential weight stream) and a GEMM over a decoded panel.
#include <cstdint>
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/avx2/hsum_avx2.h"
#include "kernels/isa.h"
#include "kernels/q6k.h"
#include "kernels/q6k_int8.h"

#if TERNLAB_X86

#define TL_Q6K512 \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

namespace ternlab {

namespace {

constexpr int64_t kRowBlock = 16;  // panel: 16 rows x 2K bytes (80 KiB at K = 2560), in L2
constexpr int kTileTokens = 4;
constexpr int64_t kSmallT = 8;  // up to this many tokens skip the panel (gemm_tokens)
// The GEMV asks for the weights 4 KiB ahead (prefetch_ahead, isa.h): the 512-bit
// loop left the hardware prefetchers behind (2B-shape head, 2 threads, on a 2-core
// Zen 4 while another job ran: 15.6 -> 17.4 GB/s with 2-4 KiB).

// int16 lane m of a 64-value vector holds the pair 2m, 2m + 1: sub-block m / 8.
alignas(64) constexpr int16_t kPairSub[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                              2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};

TL_Q6K512 inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

TL_Q6K512 inline __m256i load256(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

TL_Q6K512 inline float half_to_float(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

// The block's 16 scales as int16.
TL_Q6K512 inline __m256i scales16(const uint8_t* blk) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
}

// Levels of values 128h + (0..63) into y[0], 128h + 64 + (0..63) into y[1]
// (layout: q6k.h): ql bytes 64h + (0..63) hold them in their low and high
// nibbles; qh bytes 32h + (0..31), broadcast to both 256-bit halves, give
// bytes 0-31 their top bits from bits 0-1 (y[0]) / 4-5 (y[1]) and bytes 32-63
// from bits 2-3 / 6-7. The shifts are 16-bit: the masks drop the bits that
// crossed over from the neighbouring byte.
TL_Q6K512 inline void levels_half(const uint8_t* blk, int h, __m512i* y) {
    const __m512i lo4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30);
    const __m512i up = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i down = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i l = load512(blk + 64 * h);
    const __m512i qh = _mm512_broadcast_i64x4(load256(blk + 128 + 32 * h));
    // 0xEA: (a & b) | c, one instruction for the low nibble's mask and the merge.
    y[0] = _mm512_ternarylogic_epi32(l, lo4, _mm512_and_si512(_mm512_sllv_epi16(qh, up), top2),
                                     0xEA);
    y[1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), lo4,
                                     _mm512_and_si512(_mm512_srlv_epi16(qh, down), top2), 0xEA);
}

// The scale of each maddubs pair of y[k] (levels_half): sub-block 8h + 4k + m / 8
// for int16 lane m.
TL_Q6K512 inline void scales_half(__m256i sc, int h, __m512i* sv) {
    const __m512i table = _mm512_zextsi256_si512(sc);
    const __m512i sub = _mm512_load_si512(kPairSub);
    for (int k = 0; k < 2; ++k)
        sv[k] = _mm512_permutexvar_epi16(
            _mm512_add_epi16(sub, _mm512_set1_epi16(static_cast<short>(8 * h + 4 * k))), table);
}

// acc += (pair scale) x (level x code pair sums) over 64 values, int32 lanes.
TL_Q6K512 inline __m512i dot64(__m512i acc, __m512i y, __m512i sv, const int8_t* code) {
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(y, load512(code)), sv);
}

// isum_b from dot64's lanes over the block: minus 32 * sum_i scale_i * xsum_i.
TL_Q6K512 inline int32_t block_isum(__m512i acc, __m256i sc, const int16_t* xsum) {
    const __m256i v =
        _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    const __m256i off = _mm256_madd_epi16(sc, load256(xsum));
    return hsum_epi32(_mm256_sub_epi32(v, _mm256_slli_epi32(off, 5)));
}

// ---- GEMV ------------------------------------------------------------------------
TL_Q6K512 inline float row_dot(const uint8_t* row, int64_t K, const int8_t* code, const float* s,
                               const int16_t* xsum) {
    float acc = 0.0f;
    for (int64_t b = 0; b < K / kQ6KBlock; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const int8_t* c = code + b * kQ6KBlock;
        prefetch_ahead(blk, kQ6KBlockBytes);
        const __m256i sc = scales16(blk);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            __m512i y[2], sv[2];
            levels_half(blk, h, y);
            scales_half(sc, h, sv);
            for (int k = 0; k < 2; ++k) isum = dot64(isum, y[k], sv[k], c + 128 * h + 64 * k);
        }
        acc = q6k_accumulate(acc, block_isum(isum, sc, xsum + 16 * b), half_to_float(blk + 208),
                             s[b]);
    }
    return acc;
}

TL_Q6K512 void gemv(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
        a.y[o] = x.finite[0] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes, x.s, x.xsum) : kQ6KNaN;
}

// ---- GEMM ------------------------------------------------------------------------
// A decoded row p: levels p[v] (K bytes, value order), then the pair scales of
// the 64 values from v as 32 int16 at p[K + v].
TL_Q6K512 inline void decode_row(const uint8_t* row, int64_t K, uint8_t* p) {
    for (int64_t b = 0; b < K / kQ6KBlock; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const __m256i sc = scales16(blk);
        for (int h = 0; h < 2; ++h) {
            __m512i y[2], sv[2];
            levels_half(blk, h, y);
            scales_half(sc, h, sv);
            for (int k = 0; k < 2; ++k) {
                const int64_t v = b * kQ6KBlock + 128 * h + 64 * k;
                _mm512_storeu_si512(p + v, y[k]);
                _mm512_storeu_si512(p + K + v, sv[k]);
            }
        }
    }
}

// y of decoded row p (raw row: scales, d) for tokens [t, t + TT) into out.
template <int TT>
TL_Q6K512 inline void tile_row(const uint8_t* p, const uint8_t* row, int64_t K, const Q6KActs& x,
                               int64_t t, float* out) {
    const int64_t nb = K / kQ6KBlock;
    float acc[TT];
    for (int i = 0; i < TT; ++i) acc[i] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        __m512i isum[TT];
        for (int i = 0; i < TT; ++i) isum[i] = _mm512_setzero_si512();
        for (int64_t v = b * kQ6KBlock; v < (b + 1) * kQ6KBlock; v += 64) {
            const __m512i y = load512(p + v), sv = load512(p + K + v);
            for (int i = 0; i < TT; ++i) isum[i] = dot64(isum[i], y, sv, x.codes + (t + i) * K + v);
        }
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const __m256i sc = scales16(blk);
        const float d = half_to_float(blk + 208);
        for (int i = 0; i < TT; ++i) {
            const int32_t total = block_isum(isum[i], sc, x.xsum + (t + i) * (K / 16) + 16 * b);
            acc[i] = q6k_accumulate(acc[i], total, d, x.s[(t + i) * nb + b]);
        }
    }
    for (int i = 0; i < TT; ++i) out[i] = acc[i];
}

TL_Q6K512 inline void tile_dispatch(int tt, const uint8_t* p, const uint8_t* row, int64_t K,
                                    const Q6KActs& x, int64_t t, float* out) {
    switch (tt) {
        case 4: tile_row<4>(p, row, K, x, t, out); break;
        case 3: tile_row<3>(p, row, K, x, t, out); break;
        case 2: tile_row<2>(p, row, K, x, t, out); break;
        default: tile_row<1>(p, row, K, x, t, out); break;
    }
}
static_assert(kTileTokens == 4, "tile_dispatch handles tiles of 1 to 4 tokens");

// A few tokens (batched decode): each block's levels and pair scales are decoded
// in registers, as in the GEMV, and used by every token; the same integer sums
// and float steps as tile_row. The panel GEMM's stores and reloads only pay for
// themselves over many tokens (2b-shape head, 8 tokens: 30% of a batched decode
// step with the panel).
template <int TT>
TL_Q6K512 inline void row_dot_tokens(const uint8_t* row, int64_t K, const Q6KActs& x,
                                     float* out) {
    static_assert(TT <= 8, "token u's float sum is lane u of one __m256");
    const int64_t nb = K / kQ6KBlock;
    // q6k_accumulate for all tokens at once, lane by lane the same IEEE steps: one
    // vdivps instead of TT divss a block (2b-shape head, 8 tokens, 1 thread, 3
    // interleaved rounds: 53.7/59.9/63.8 -> 48.6/54.3/46.8 ms).
    __m256 acc = _mm256_setzero_ps();
    alignas(32) int32_t tot[8] = {};
    alignas(32) float s[8] = {1, 1, 1, 1, 1, 1, 1, 1};  // lanes past TT: unused, finite
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        prefetch_ahead(blk, kQ6KBlockBytes);
        const __m256i sc = scales16(blk);
        __m512i y[4], sv[4];  // values 64q .. 64q + 63 of the block
        for (int h = 0; h < 2; ++h) {
            levels_half(blk, h, y + 2 * h);
            scales_half(sc, h, sv + 2 * h);
        }
        for (int u = 0; u < TT; ++u) {
            const int8_t* c = x.codes + u * K + b * kQ6KBlock;
            __m512i isum = _mm512_setzero_si512();
            for (int q = 0; q < 4; ++q) isum = dot64(isum, y[q], sv[q], c + 64 * q);
            tot[u] = block_isum(isum, sc, x.xsum + u * (K / 16) + 16 * b);
            s[u] = x.s[u * nb + b];
        }
        const __m256 d = _mm256_set1_ps(half_to_float(blk + 208));
        const __m256 isum =
            _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(tot)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(isum, _mm256_div_ps(d, _mm256_load_ps(s))));
    }
    alignas(32) float all[8];
    _mm256_store_ps(all, acc);
    for (int u = 0; u < TT; ++u) out[u] = all[u];
}

template <int TT>
TL_Q6K512 void gemm_tokens(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
        float out[TT];
        row_dot_tokens<TT>(a.w + o * a.row_bytes, a.K, x, out);
        for (int u = 0; u < TT; ++u) a.y[u * a.y_stride + o] = x.finite[u] ? out[u] : kQ6KNaN;
    }
}

// Up to kSmallT tokens through gemm_tokens; false for more.
TL_Q6K512 bool gemm_few_tokens(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    static_assert(kSmallT == 8, "the switch below covers T = 2 .. kSmallT");
    switch (a.T) {
        case 2: gemm_tokens<2>(a, x, o0, o1); return true;
        case 3: gemm_tokens<3>(a, x, o0, o1); return true;
        case 4: gemm_tokens<4>(a, x, o0, o1); return true;
        case 5: gemm_tokens<5>(a, x, o0, o1); return true;
        case 6: gemm_tokens<6>(a, x, o0, o1); return true;
        case 7: gemm_tokens<7>(a, x, o0, o1); return true;
        case 8: gemm_tokens<8>(a, x, o0, o1); return true;
        default: return false;
    }
}

TL_Q6K512 void gemm(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1,
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

void float_gemv_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemv(a, q6k_quantize_acts(a.x, 1, a.K), o0, o1);
}

void float_gemm_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q6KActs x = q6k_quantize_acts(a.x, a.T, a.K);
    if (!gemm_few_tokens(a, x, o0, o1)) gemm(a, x, o0, o1, panel_bytes(kRowBlock * 2 * a.K));
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemv_q6_k_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_q6_k_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
