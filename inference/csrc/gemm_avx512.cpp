// AVX-512 kernels (F + BW + VNNI). One 64-byte load is a whole super-block;
// the four 64-byte field vectors (shift by 2j, mask 0x03) each line up with 64
// contiguous activations. vpdpbusd multiplies unsigned fields f = code + 1 by
// signed int8 activations and adds groups of four straight into int32 lanes,
// so there is no int16 stage to widen. sum f*x - sum x = sum code*x.
#include "gemm.h"
#include "isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

constexpr int64_t kRows = 4;        // GEMV rows per step (share activation loads)
constexpr int64_t kTileT = 4;       // GEMM tokens per micro-tile (4x4 zmm accumulators)
constexpr int64_t kPanelK = 4096;   // GEMM: K per decoded panel

// Sum of the 16 int32 lanes (GCC 12's _mm512_reduce_add_epi32 trips -Wuninitialized).
TL_AVX512 inline int32_t hsum_epi32(__m512i v) {
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

TL_AVX512 inline __m512i fields(__m512i p, int j, __m512i m3) {
    return _mm512_and_si512(_mm512_srli_epi16(p, 2 * j), m3);
}

template <int R>
TL_AVX512 inline void gemv_rows(const GemmArgs& a, int64_t o) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const int64_t nsb = a.Kp / kQK;
    RowWalk rw[R];
    for (int r = 0; r < R; ++r) rw[r] = row_walk(a, o + r);
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    for (int64_t sb = 0; sb < nsb; ++sb) {
        const int8_t* xb = a.x + sb * kQK;
        __m512i p[R];
        for (int r = 0; r < R; ++r) p[r] = _mm512_loadu_si512(rw[r].sb(sb));
        for (int j = 0; j < 4; ++j) {
            const __m512i xv = _mm512_loadu_si512(xb + 64 * j);
            for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], fields(p[r], j, m3), xv);
        }
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = hsum_epi32(acc[r]) - a.xsum[0];
}

template <int R>
TL_AVX512 inline void decode_panel(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                   uint8_t* panel) {
    const __m512i m3 = _mm512_set1_epi8(3);
    for (int r = 0; r < R; ++r) {
        const RowWalk rw = row_walk(a, o + r);
        uint8_t* dst = panel + r * len;
        for (int64_t sb = 0; sb < len / kQK; ++sb) {
            const __m512i p = _mm512_loadu_si512(rw.sb(k0 / kQK + sb));
            for (int j = 0; j < 4; ++j) _mm512_store_si512(dst + sb * kQK + 64 * j, fields(p, j, m3));
        }
    }
}

template <int R, int TT>
TL_AVX512 inline void gemm_tile(const GemmArgs& a, const uint8_t* panel, int64_t len, int64_t o,
                                int64_t k0, int64_t t) {
    __m512i acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) acc[r][u] = _mm512_setzero_si512();
    const int8_t* x = a.x + t * a.x_stride + k0;
    for (int64_t s = 0; s < len; s += 64) {
        __m512i xv[TT];
        for (int u = 0; u < TT; ++u) xv[u] = _mm512_loadu_si512(x + u * a.x_stride + s);
        for (int r = 0; r < R; ++r) {
            const __m512i f = _mm512_load_si512(panel + r * len + s);
            for (int u = 0; u < TT; ++u) acc[r][u] = _mm512_dpbusd_epi32(acc[r][u], f, xv[u]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u)
            a.acc[(t + u) * a.acc_stride + o + r] += hsum_epi32(acc[r][u]);
}

template <int R>
TL_AVX512 inline void gemm_rows(const GemmArgs& a, int64_t o, uint8_t* panel) {
    for (int64_t t = 0; t < a.T; ++t)
        for (int r = 0; r < R; ++r) a.acc[t * a.acc_stride + o + r] = -a.xsum[t];
    for (int64_t k0 = 0; k0 < a.Kp; k0 += kPanelK) {
        const int64_t len = a.Kp - k0 < kPanelK ? a.Kp - k0 : kPanelK;
        decode_panel<R>(a, o, k0, len, panel);  // once per panel, reused by every token
        int64_t t = 0;
        for (; t + kTileT <= a.T; t += kTileT) gemm_tile<R, kTileT>(a, panel, len, o, k0, t);
        for (; t < a.T; ++t) gemm_tile<R, 1>(a, panel, len, o, k0, t);
    }
}

}  // namespace

TL_AVX512 void gemv_avx512(const GemmArgs& a, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv_rows<kRows>(a, o);
    for (; o < o1; ++o) gemv_rows<1>(a, o);
}

TL_AVX512 void gemm_avx512(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(64) uint8_t panel[kRows * kPanelK];
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemm_rows<kRows>(a, o, panel);
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel);
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemv_avx512(const GemmArgs&, int64_t, int64_t) {}
void gemm_avx512(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
