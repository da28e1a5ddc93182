// AVX-512 (BW + VNNI) Q6_K x int8 kernels (numerics: q6k_int8.h), the AVX2
// kernels' plan (q6k_int8_avx2.cpp) on 64 values at a time: maddubs of the
// unsigned levels and the codes, then vpdpwssd with each pair's sub-block
// scale accumulates int32 directly. A one-row-at-a-time GEMV (one sequential
// weight stream) and a GEMM that decodes each block in registers once for up to
// kSmallT tokens (unlike the AVX2 file, no panel of decoded rows).
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

constexpr int kSmallT = 32;  // tokens per pass over the weights (gemm_tokens)
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
// Lane u of the result: the sum of the 16 int32 lanes of v[u], for 8 vectors at
// once (a shuffle tree: 23 instructions where 8 separate sums take about 40).
TL_Q6K512 inline __m256i sum_lanes8(const __m512i* v) {
    __m512i p[4];
    for (int i = 0; i < 4; ++i)  // 256-bit halves added: v[2i] in quarters 0-1, v[2i+1] in 2-3
        p[i] = _mm512_add_epi32(_mm512_shuffle_i64x2(v[2 * i], v[2 * i + 1], 0x44),
                                _mm512_shuffle_i64x2(v[2 * i], v[2 * i + 1], 0xEE));
    // Quarters added in pairs: quarter k of a / b holds 4 partial sums of v[k] / v[4 + k].
    const __m512i a = _mm512_add_epi32(_mm512_shuffle_i64x2(p[0], p[1], 0x88),
                                       _mm512_shuffle_i64x2(p[0], p[1], 0xDD));
    const __m512i b = _mm512_add_epi32(_mm512_shuffle_i64x2(p[2], p[3], 0x88),
                                       _mm512_shuffle_i64x2(p[2], p[3], 0xDD));
    // Within each quarter: lanes 0 and 1 end as the sums of v[k] and v[4 + k].
    const __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i u = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
    const __m512i order = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, u));
}

// TT tokens of one row: each block's levels and pair scales are decoded in
// registers, as in the GEMV, and used by every token; the same integer sums and
// float steps as the GEMV. The -32 offsets join each token's lanes through one
// vpdpwssd (the scales times -32 fit int16), and 8 tokens' lane sums come out of
// one shuffle tree (sum_lanes8) instead of a sum per token (2b-shape head, 8
// tokens, 2 threads: 32-33 -> 27-28 ms).
template <int TT>
TL_Q6K512 inline void row_dot_tokens(const uint8_t* row, int64_t K, const Q6KActs& x,
                                     float* out) {
    constexpr int kGroups = (TT + 7) / 8;  // token u's float sum: lane u % 8 of acc[u / 8]
    const int64_t nb = K / kQ6KBlock;
    // q6k_accumulate for 8 tokens at once, lane by lane the same IEEE steps: one
    // vdivps instead of 8 divss a block (2b-shape head, 8 tokens, 1 thread, 3
    // interleaved rounds: 53.7/59.9/63.8 -> 48.6/54.3/46.8 ms).
    __m256 acc[kGroups];
    for (int g = 0; g < kGroups; ++g) acc[g] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        prefetch_ahead(blk, kQ6KBlockBytes);
        const __m256i sc = scales16(blk);
        const __m512i off = _mm512_zextsi256_si512(
            _mm256_slli_epi16(_mm256_sub_epi16(_mm256_setzero_si256(), sc), 5));
        __m512i y[4], sv[4];  // values 64q .. 64q + 63 of the block
        for (int h = 0; h < 2; ++h) {
            levels_half(blk, h, y + 2 * h);
            scales_half(sc, h, sv + 2 * h);
        }
        const __m256 d = _mm256_set1_ps(half_to_float(blk + 208));
        for (int g = 0; g < kGroups; ++g) {
            __m512i isum[8];
            alignas(32) float s[8] = {1, 1, 1, 1, 1, 1, 1, 1};  // lanes past TT: unused, finite
            for (int i = 0; i < 8; ++i) {
                const int u = 8 * g + i;
                isum[i] = _mm512_setzero_si512();
                if (u >= TT) continue;
                const int8_t* c = x.codes + u * K + b * kQ6KBlock;
                const __m512i xs = _mm512_zextsi256_si512(load256(x.xsum + u * (K / 16) + 16 * b));
                isum[i] = _mm512_dpwssd_epi32(isum[i], off, xs);
                for (int q = 0; q < 4; ++q) isum[i] = dot64(isum[i], y[q], sv[q], c + 64 * q);
                s[i] = x.s[u * nb + b];
            }
            const __m256 tot = _mm256_cvtepi32_ps(sum_lanes8(isum));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(tot, _mm256_div_ps(d, _mm256_load_ps(s))));
        }
    }
    for (int g = 0; g < kGroups; ++g) {
        alignas(32) float all[8];
        _mm256_store_ps(all, acc[g]);
        for (int i = 0; i < 8 && 8 * g + i < TT; ++i) out[8 * g + i] = all[i];
    }
}

template <int TT>
TL_Q6K512 void gemm_tokens(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
        float out[TT];
        row_dot_tokens<TT>(a.w + o * a.row_bytes, a.K, x, out);
        for (int u = 0; u < TT; ++u) a.y[u * a.y_stride + o] = x.finite[u] ? out[u] : kQ6KNaN;
    }
}

// 2 to kSmallT tokens through gemm_tokens<T> (one instance per count: the token
// loops fully unrolled, which a run-time count lost, 28 -> 40 ms at 8 tokens);
// false for more.
template <int TT = 2>
TL_Q6K512 bool gemm_few_tokens(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    if constexpr (TT > kSmallT) {
        return false;
    } else {
        if (a.T != TT) return gemm_few_tokens<TT + 1>(a, x, o0, o1);
        gemm_tokens<TT>(a, x, o0, o1);
        return true;
    }
}

// Tokens [t0, t0 + n) of x and of a's outputs.
inline FloatGemmArgs token_slice(const FloatGemmArgs& a, int64_t t0, int64_t n) {
    FloatGemmArgs s = a;
    s.T = n;
    s.y = a.y + t0 * a.y_stride;
    return s;
}
inline Q6KActs token_slice(const Q6KActs& x, int64_t t0, int64_t K) {
    return {x.codes + t0 * K, x.s + t0 * (K / kQ6KBlock), x.xsum + t0 * (K / 16), x.finite + t0};
}

// Any number of tokens, kSmallT at a time. Each slice reads the weights again; the
// multiply-adds still outweigh the reads (2b-shape head at 32 tokens: 105-117 ms
// against 13 ms for one read), and this beat a panel of decoded rows reused by
// every token (2 threads: 16 tokens 99 -> 49-56 ms, 32 tokens 179-184 -> 106-117).
TL_Q6K512 void gemm(const FloatGemmArgs& a, const Q6KActs& x, int64_t o0, int64_t o1) {
    for (int64_t t0 = 0; t0 < a.T; t0 += kSmallT) {
        const int64_t n = a.T - t0 < kSmallT ? a.T - t0 : kSmallT;
        const FloatGemmArgs sa = token_slice(a, t0, n);
        const Q6KActs sx = token_slice(x, t0, a.K);
        if (n == 1)
            gemv(sa, sx, o0, o1);
        else
            gemm_few_tokens(sa, sx, o0, o1);
    }
}

}  // namespace

void float_gemv_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemv(a, q6k_quantize_acts(a.x, 1, a.K), o0, o1);
}

void float_gemm_q6_k_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(a, q6k_quantize_acts(a.x, a.T, a.K), o0, o1);
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemv_q6_k_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_q6_k_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
