// AVX2 kernels. Decoding: one 32-byte load of packed weights yields, with a
// 16-bit shift by 2j and a 0x03 byte mask (j = 0..3), four vectors of 32
// unsigned fields f = code + 1 in {0, 1, 2}, each lined up with 32 contiguous
// activations. _mm256_maddubs_epi16(f, x) multiplies unsigned f by signed x
// and adds pairs into int16 (|pair| <= 2*2*128 = 512, never saturates);
// sum f*x - sum x = sum code*x, and sum x per token comes with the activations.
// int16 partial sums are widened to int32 (madd with ones) often enough that
// they cannot overflow.
#include "gemm.h"
#include "isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

constexpr int64_t kRows = 4;             // rows per GEMV step (share activation loads)
constexpr int64_t kSbPerWiden = 4;       // super-blocks per int16 run: 4*8 maddubs*512 = 16384
constexpr int64_t kPanelK = 4096;        // GEMM: K per decoded panel (4 rows x 4 KiB in L1)
constexpr int64_t kStepsPerWiden = 32;   // GEMM: 32-byte steps per int16 run: 32*512 = 16384

TL_AVX2 inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// Fields j of a 32-byte packed vector: (p >> 2j) & 3 per byte. The 16-bit shift
// moves bits of the neighbouring byte into bits 2..7, which the mask drops.
TL_AVX2 inline __m256i fields(__m256i p, int j, __m256i m3) {
    return _mm256_and_si256(_mm256_srli_epi16(p, 2 * j), m3);
}

// GEMV for R consecutive rows starting at o (token 0 only).
template <int R>
TL_AVX2 inline void gemv_rows(const GemmArgs& a, int64_t o) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nsb = a.Kp / kQK;
    RowWalk rw[R];
    for (int r = 0; r < R; ++r) rw[r] = row_walk(a, o + r);
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    for (int64_t sb0 = 0; sb0 < nsb; sb0 += kSbPerWiden) {
        const int64_t sb1 = sb0 + kSbPerWiden < nsb ? sb0 + kSbPerWiden : nsb;
        __m256i acc16[R];
        for (int r = 0; r < R; ++r) acc16[r] = _mm256_setzero_si256();
        for (int64_t sb = sb0; sb < sb1; ++sb) {
            const int8_t* xb = a.x + sb * kQK;
            for (int h = 0; h < 2; ++h) {  // the two 32-byte halves of the super-block
                __m256i p[R];
                for (int r = 0; r < R; ++r)
                    p[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rw[r].sb(sb) + 32 * h));
                for (int j = 0; j < 4; ++j) {
                    const __m256i xv =
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 64 * j + 32 * h));
                    for (int r = 0; r < R; ++r)
                        acc16[r] = _mm256_add_epi16(
                            acc16[r], _mm256_maddubs_epi16(fields(p[r], j, m3), xv));
                }
            }
        }
        for (int r = 0; r < R; ++r)
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(acc16[r], ones));
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = hsum_epi32(acc[r]) - a.xsum[0];
}

// Decode rows [o, o+R) x columns [k0, k0+len) into panel[r * len + (k - k0)]
// as unsigned fields in natural column order (len is a multiple of kQK).
template <int R>
TL_AVX2 inline void decode_panel(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                 uint8_t* panel) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int r = 0; r < R; ++r) {
        const RowWalk rw = row_walk(a, o + r);
        uint8_t* dst = panel + r * len;
        for (int64_t sb = 0; sb < len / kQK; ++sb) {
            for (int h = 0; h < 2; ++h) {
                const __m256i p = _mm256_loadu_si256(
                    reinterpret_cast<const __m256i*>(rw.sb(k0 / kQK + sb) + 32 * h));
                for (int j = 0; j < 4; ++j)
                    _mm256_store_si256(
                        reinterpret_cast<__m256i*>(dst + sb * kQK + 64 * j + 32 * h),
                        fields(p, j, m3));
            }
        }
    }
}

// Micro-kernel: R decoded rows x TT tokens over one panel; adds into a.acc.
template <int R, int TT>
TL_AVX2 inline void gemm_tile(const GemmArgs& a, const uint8_t* panel, int64_t len, int64_t o,
                              int64_t k0, int64_t t) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) acc[r][u] = _mm256_setzero_si256();
    const int8_t* x = a.x + t * a.x_stride + k0;
    for (int64_t s0 = 0; s0 < len; s0 += 32 * kStepsPerWiden) {
        const int64_t s1 = s0 + 32 * kStepsPerWiden < len ? s0 + 32 * kStepsPerWiden : len;
        __m256i acc16[R][TT];
        for (int r = 0; r < R; ++r)
            for (int u = 0; u < TT; ++u) acc16[r][u] = _mm256_setzero_si256();
        for (int64_t s = s0; s < s1; s += 32) {
            __m256i xv[TT];
            for (int u = 0; u < TT; ++u)
                xv[u] = _mm256_loadu_si256(
                    reinterpret_cast<const __m256i*>(x + u * a.x_stride + s));
            for (int r = 0; r < R; ++r) {
                const __m256i f =
                    _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + r * len + s));
                for (int u = 0; u < TT; ++u)
                    acc16[r][u] = _mm256_add_epi16(acc16[r][u], _mm256_maddubs_epi16(f, xv[u]));
            }
        }
        for (int r = 0; r < R; ++r)
            for (int u = 0; u < TT; ++u)
                acc[r][u] = _mm256_add_epi32(acc[r][u], _mm256_madd_epi16(acc16[r][u], ones));
    }
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) a.acc[(t + u) * a.acc_stride + o + r] += hsum_epi32(acc[r][u]);
}

template <int R>
TL_AVX2 inline void gemm_rows(const GemmArgs& a, int64_t o, uint8_t* panel) {
    for (int64_t t = 0; t < a.T; ++t)
        for (int r = 0; r < R; ++r) a.acc[t * a.acc_stride + o + r] = -a.xsum[t];
    for (int64_t k0 = 0; k0 < a.Kp; k0 += kPanelK) {
        const int64_t len = a.Kp - k0 < kPanelK ? a.Kp - k0 : kPanelK;
        decode_panel<R>(a, o, k0, len, panel);  // once per panel, reused by every token
        int64_t t = 0;
        for (; t + 2 <= a.T; t += 2) gemm_tile<R, 2>(a, panel, len, o, k0, t);
        if (t < a.T) gemm_tile<R, 1>(a, panel, len, o, k0, t);
    }
}

}  // namespace

TL_AVX2 void gemv_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv_rows<kRows>(a, o);
    for (; o < o1; ++o) gemv_rows<1>(a, o);
}

TL_AVX2 void gemm_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(64) uint8_t panel[kRows * kPanelK];
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemm_rows<kRows>(a, o, panel);
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel);
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemv_avx2(const GemmArgs&, int64_t, int64_t) {}
void gemm_avx2(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
