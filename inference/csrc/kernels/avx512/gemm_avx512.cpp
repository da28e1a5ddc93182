// AVX-512 kernels (F + BW + VNNI). One 64-byte load is a whole super-block;
// the four 64-byte field vectors (shift by 2j, mask 0x03) each line up with 64
// contiguous activations. vpdpbusd multiplies unsigned fields f = code + 1 by
// signed int8 activations and adds groups of four straight into int32 lanes,
// so there is no int16 stage to widen. sum f*x - sum x = sum code*x.
#include "kernels/avx512/decode_avx512.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

constexpr int64_t kRows = 4;        // GEMV rows per step (share activation loads)
constexpr int64_t kTileT = 4;       // GEMM tokens per micro-tile (4x4 zmm accumulators)
constexpr int64_t kPanelK = 4096;   // GEMM: K per decoded panel (2-bit: 16 super-blocks)
constexpr int64_t kPanelK3 = 3840;  // base-3: 12 super-blocks of 320, the same L1 budget
constexpr int64_t kSmallT = 8;  // base-3: up to this many tokens skip the panel (gemv3_tokens)
constexpr int kFewRows = 2, kFewTokens = 4;  // gemv3_tokens' tile: rows x tokens (<= 12)

// Sum of the 16 int32 lanes (GCC 12's _mm512_reduce_add_epi32 trips -Wuninitialized).
TL_AVX512 inline int32_t hsum_epi32(__m512i v) {
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
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

// The 4 x 4 tile written out with named accumulators: GCC 12 turns the arrays of
// the generic tile into a copy of every accumulator per step plus stack spills
// (the GEMM ran at a sixth of the VNNI peak); named, they stay in registers.
template <>
TL_AVX512 inline void gemm_tile<4, 4>(const GemmArgs& a, const uint8_t* panel, int64_t len,
                                      int64_t o, int64_t k0, int64_t t) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
    __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const int8_t* x0 = a.x + t * a.x_stride + k0;
    const int8_t* x1 = x0 + a.x_stride;
    const int8_t* x2 = x1 + a.x_stride;
    const int8_t* x3 = x2 + a.x_stride;
    const uint8_t *p0 = panel, *p1 = panel + len, *p2 = panel + 2 * len, *p3 = panel + 3 * len;
    for (int64_t s = 0; s < len; s += 64) {
        const __m512i v0 = _mm512_loadu_si512(x0 + s), v1 = _mm512_loadu_si512(x1 + s);
        const __m512i v2 = _mm512_loadu_si512(x2 + s), v3 = _mm512_loadu_si512(x3 + s);
        __m512i f = _mm512_load_si512(p0 + s);
        c00 = _mm512_dpbusd_epi32(c00, f, v0), c01 = _mm512_dpbusd_epi32(c01, f, v1);
        c02 = _mm512_dpbusd_epi32(c02, f, v2), c03 = _mm512_dpbusd_epi32(c03, f, v3);
        f = _mm512_load_si512(p1 + s);
        c10 = _mm512_dpbusd_epi32(c10, f, v0), c11 = _mm512_dpbusd_epi32(c11, f, v1);
        c12 = _mm512_dpbusd_epi32(c12, f, v2), c13 = _mm512_dpbusd_epi32(c13, f, v3);
        f = _mm512_load_si512(p2 + s);
        c20 = _mm512_dpbusd_epi32(c20, f, v0), c21 = _mm512_dpbusd_epi32(c21, f, v1);
        c22 = _mm512_dpbusd_epi32(c22, f, v2), c23 = _mm512_dpbusd_epi32(c23, f, v3);
        f = _mm512_load_si512(p3 + s);
        c30 = _mm512_dpbusd_epi32(c30, f, v0), c31 = _mm512_dpbusd_epi32(c31, f, v1);
        c32 = _mm512_dpbusd_epi32(c32, f, v2), c33 = _mm512_dpbusd_epi32(c33, f, v3);
    }
    const __m512i c[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13},
                             {c20, c21, c22, c23}, {c30, c31, c32, c33}};
    for (int r = 0; r < 4; ++r)
        for (int u = 0; u < 4; ++u) a.acc[(t + u) * a.acc_stride + o + r] += hsum_epi32(c[r][u]);
}

// Rows [o, o + R) for every token: each panel of `panel_k` columns is decoded
// once by `decode(a, o, k0, len, panel)` and reused by every token.
template <int R, class Decode>
TL_AVX512 inline void gemm_rows(const GemmArgs& a, int64_t o, uint8_t* panel, int64_t panel_k,
                                Decode decode) {
    for (int64_t t = 0; t < a.T; ++t)
        for (int r = 0; r < R; ++r) a.acc[t * a.acc_stride + o + r] = -a.xsum[t];
    for (int64_t k0 = 0; k0 < a.Kp; k0 += panel_k) {
        const int64_t len = a.Kp - k0 < panel_k ? a.Kp - k0 : panel_k;
        decode(a, o, k0, len, panel);  // once per panel, reused by every token
        int64_t t = 0;
        for (; t + kTileT <= a.T; t += kTileT) gemm_tile<R, kTileT>(a, panel, len, o, k0, t);
        for (; t < a.T; ++t) gemm_tile<R, 1>(a, panel, len, o, k0, t);
    }
}

template <int R>
TL_AVX512VBMI inline void gemv3_rows(const GemmArgs& a, int64_t o, const Base3Tables& tab) {
    const int64_t nsb = a.Kp / kQK3;
    RowWalk rw[R];
    for (int r = 0; r < R; ++r) rw[r] = row_walk(a, o + r);
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    for (int64_t sb = 0; sb < nsb; ++sb) {
        const int8_t* xb = a.x + sb * kQK3;
        __m512i xv[5];
        for (int j = 0; j < 5; ++j) xv[j] = _mm512_loadu_si512(xb + 64 * j);
        for (int r = 0; r < R; ++r) {
            // 4 KiB ahead in the group's stream (isa.h): +10% at 2 threads on Zen 4, where
            // the hardware prefetchers alone left the GEMV at ~85% of the read bandwidth.
            prefetch_ahead(rw[r].sb(sb), kBlockBytes);
            __m512i f[5];
            base3_fields(_mm512_loadu_si512(rw[r].sb(sb)), tab, f);
            for (int j = 0; j < 5; ++j) acc[r] = _mm512_dpbusd_epi32(acc[r], f[j], xv[j]);
        }
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = hsum_epi32(acc[r]) - a.xsum[0];
}

// acc += vpdpbusd(f, x), in place. With the intrinsic, GCC 12 copied every token's
// accumulator into a scratch register and back (three copies a token a super-block);
// the asm ties the sum to the accumulator.
TL_AVX512 inline void dpbusd_to(__m512i& acc, __m512i f, __m512i x) {
    asm("vpdpbusd %[x], %[f], %[acc]" : [acc] "+v"(acc) : [f] "v"(f), [x] "v"(x));
}

// A few tokens (batched decode: one token of each of up to kSmallT sequences):
// each row's super-blocks are decoded in registers, as in the GEMV, and used by
// every token. The panel GEMM stores the fields and reads them back per pair of
// tokens, which only pays for itself over many tokens (2b shape, T = 8: 111 G
// MAC/s a core against 172 at T = 128). Rows [o, o + R) for tokens [t0, t0 + TT),
// digit by digit: each activation load (in a register) serves the R rows. One row
// at a time, every vpdpbusd had taken its own 64-byte load, and loads bound the
// loop as much as the multiply-adds. R x TT accumulators, R field vectors and the
// 8 tables must fit the 32 registers (3 x 4 is the largest tile that does). 2b
// shape, 8 sequences, 2 threads, the decode step: 140-146 ms with one row at a
// time, 106-125 ms with 2 x 4; 3 x 4 and 4 x 3 measured the same as 2 x 4.
template <int R, int TT>
TL_AVX512VBMI inline void gemv3_tokens(const GemmArgs& a, int64_t o, int64_t t0,
                                        const Base3Tables& tab) {
    static_assert(R * TT <= 12, "R x TT accumulators, the fields and tables: 32 registers");
    const int64_t nsb = a.Kp / kQK3;
    RowWalk w[R];
    for (int r = 0; r < R; ++r) w[r] = row_walk(a, o + r);
    const int8_t* x0 = a.x + t0 * a.x_stride;
    __m512i acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) acc[r][u] = _mm512_setzero_si512();
    for (int64_t sb = 0; sb < nsb; ++sb) {
        Base3Split s[R];
        for (int r = 0; r < R; ++r) {
            prefetch_ahead(w[r].sb(sb), kBlockBytes);  // isa.h
            s[r] = base3_split(_mm512_loadu_si512(w[r].sb(sb)));
        }
        for (int j = 0; j < 5; ++j) {
            __m512i f[R];
            for (int r = 0; r < R; ++r) f[r] = base3_digit(s[r], j, tab);
            for (int u = 0; u < TT; ++u) {
                const __m512i x = _mm512_loadu_si512(x0 + u * a.x_stride + sb * kQK3 + 64 * j);
                for (int r = 0; r < R; ++r) dpbusd_to(acc[r][u], f[r], x);
            }
        }
    }
    for (int u = 0; u < TT; ++u)
        for (int r = 0; r < R; ++r)
            a.acc[(t0 + u) * a.acc_stride + o + r] = hsum_epi32(acc[r][u]) - a.xsum[t0 + u];
}

static_assert(kSmallT <= 2 * kFewTokens, "gemv3_tokens_all makes at most two calls");

// All TT tokens of rows [o, o + R).
template <int R, int TT>
TL_AVX512VBMI inline void gemv3_tokens_all(const GemmArgs& a, int64_t o, const Base3Tables& tab) {
    constexpr int kLo = TT > kFewTokens ? kFewTokens : TT;
    gemv3_tokens<R, kLo>(a, o, 0, tab);
    if constexpr (TT > kLo) gemv3_tokens<R, TT - kLo>(a, o, kLo, tab);
}

// Rows [o0, o1) for T = TT tokens (2..kSmallT).
template <int TT>
TL_AVX512VBMI void gemv3_tokens_rows(const GemmArgs& a, int64_t o0, int64_t o1,
                                     const Base3Tables& tab) {
    int64_t o = o0;
    for (; o + kFewRows <= o1; o += kFewRows) gemv3_tokens_all<kFewRows, TT>(a, o, tab);
    static_assert(kFewRows == 2, "one row at most is left over");
    if (o < o1) gemv3_tokens_all<1, TT>(a, o, tab);
}

// Panel decoders for gemm_rows (functors: a lambda would not carry the target attribute).
template <int R>
struct Decode2 {
    TL_AVX512 void operator()(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                              uint8_t* panel) const {
        decode_panel<R>(a, o, k0, len, panel);
    }
};
template <int R>
struct Decode3 {
    const Base3Tables* tab;
    TL_AVX512VBMI void operator()(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                  uint8_t* panel) const {
        decode_panel3<R>(a, o, k0, len, panel, *tab);
    }
};

}  // namespace

TL_AVX512 void gemv_avx512(const GemmArgs& a, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv_rows<kRows>(a, o);
    for (; o < o1; ++o) gemv_rows<1>(a, o);
}

TL_AVX512 void gemm_avx512(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(64) uint8_t panel[kRows * kPanelK];
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemm_rows<kRows>(a, o, panel, kPanelK, Decode2<kRows>{});
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel, kPanelK, Decode2<1>{});
}

TL_AVX512VBMI void gemv3_avx512vbmi(const GemmArgs& a, int64_t o0, int64_t o1) {
    const Base3Tables tab = base3_tables();
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv3_rows<kRows>(a, o, tab);
    for (; o < o1; ++o) gemv3_rows<1>(a, o, tab);
}

TL_AVX512VBMI void gemm3_avx512vbmi(const GemmArgs& a, int64_t o0, int64_t o1) {
    static_assert(kSmallT == 8, "the switch below covers T = 2 .. kSmallT");
    const Base3Tables tab = base3_tables();
    switch (a.T) {  // up to kSmallT tokens: fields decoded in registers, no panel
        case 2: return gemv3_tokens_rows<2>(a, o0, o1, tab);
        case 3: return gemv3_tokens_rows<3>(a, o0, o1, tab);
        case 4: return gemv3_tokens_rows<4>(a, o0, o1, tab);
        case 5: return gemv3_tokens_rows<5>(a, o0, o1, tab);
        case 6: return gemv3_tokens_rows<6>(a, o0, o1, tab);
        case 7: return gemv3_tokens_rows<7>(a, o0, o1, tab);
        case 8: return gemv3_tokens_rows<8>(a, o0, o1, tab);
        default: break;
    }
    alignas(64) uint8_t panel[kRows * kPanelK3];
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows)
        gemm_rows<kRows>(a, o, panel, kPanelK3, Decode3<kRows>{&tab});
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel, kPanelK3, Decode3<1>{&tab});
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemv_avx512(const GemmArgs&, int64_t, int64_t) {}
void gemm_avx512(const GemmArgs&, int64_t, int64_t) {}
void gemv3_avx512vbmi(const GemmArgs&, int64_t, int64_t) {}
void gemm3_avx512vbmi(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
