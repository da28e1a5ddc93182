// AVX2 kernels. Decoding: one 32-byte load of packed weights yields, with a
// 16-bit shift by 2j and a 0x03 byte mask (j = 0..3), four vectors of 32
// unsigned fields f = code + 1 in {0, 1, 2}, each lined up with 32 contiguous
// activations. _mm256_maddubs_epi16(f, x) multiplies unsigned f by signed x
// and adds pairs into int16 (|pair| <= 2*2*128 = 512, never saturates);
// sum f*x - sum x = sum code*x, and sum x per token comes with the activations.
// int16 partial sums are widened to int32 (madd with ones) often enough that
// they cannot overflow.
//
// Base-3 layout (common.h): a byte v = f0 + 3 f1 + 9 f2 + 27 f3 + 81 f4 (v <= 242)
// is split without division as v = 27 h + b: h = v / 27 (0..8) from one 16-bit
// multiply-high per byte (v * 2428 >> 16, exact for v <= 242), which is odd and
// even bytes done apart. pshufb lookups by h give f4 = h / 3, f3 << 6 and 27 h;
// the rest b < 27 indexes one 27-entry table of f0 | f1 << 2 | f2 << 4 (two
// pshufb: entries 0..15 and 16..26). The byte of four 2-bit fields that results
// is taken apart by the 2-bit layout's shift and mask. 23 instructions per 32
// bytes (160 codes).
#include <vector>

#include "kernels/gemm.h"
#include "kernels/avx2/hsum_avx2.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

// This thread's buffer of at least n bytes, 32-byte aligned, reused between calls
// (plain code: std::vector must not be instantiated inside target functions, isa.h).
// The GEMM's interleaved activations.
int8_t* interleaved_scratch(int64_t n) {
    thread_local std::vector<int8_t> buf;
    if (static_cast<int64_t>(buf.size()) < n + 32) buf.resize(static_cast<size_t>(n + 32));
    const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<int8_t*>((p + 31) & ~uintptr_t{31});
}

constexpr int64_t kRows = 4;             // rows per GEMV/GEMM step: one row group (kRowGroup)
constexpr int64_t kSbPerWiden = 4;       // super-blocks per int16 run: 4*8 maddubs*512 = 16384
constexpr int64_t kStepsPerWiden = 32;   // GEMM: 32-byte steps per int16 run: 32*512 = 16384
constexpr int64_t kSb3PerWiden = 3;      // base-3 GEMV: 3 super-blocks * 10 maddubs * 512 = 15360
constexpr int64_t kPanelK3 = 3840;       // base-3 GEMM: 12 super-blocks of 320, the same L1 budget

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
            for (int r = 0; r < R; ++r) prefetch_ahead(rw[r].sb(sb), kBlockBytes);  // isa.h
            // Row by row: the activations come again from L1 (cheap loads) instead of
            // being held for all R rows, which spilled the accumulators (16 ymm).
            for (int r = 0; r < R; ++r)
                for (int h = 0; h < 2; ++h) {  // the two 32-byte halves of the super-block
                    const __m256i p =
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rw[r].sb(sb) + 32 * h));
                    for (int j = 0; j < 4; ++j) {
                        const __m256i xv = _mm256_loadu_si256(
                            reinterpret_cast<const __m256i*>(xb + 64 * j + 32 * h));
                        acc16[r] = _mm256_add_epi16(acc16[r],
                                                    _mm256_maddubs_epi16(fields(p, j, m3), xv));
                    }
                }
        }
        for (int r = 0; r < R; ++r)
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(acc16[r], ones));
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = hsum_epi32(acc[r]) - a.xsum[0];
}

// dst[0..8) += the int16 pairs of c summed into int32.
TL_AVX2 inline void widen_into(int32_t* dst, __m256i c) {
    __m256i* d = reinterpret_cast<__m256i*>(dst);
    *d = _mm256_add_epi32(*d, _mm256_madd_epi16(c, _mm256_set1_epi16(1)));
}

// a.acc of rows [o, o + R) and tokens [t, t + TT) += the lane sums of a tile's totals.
template <int R, int TT>
TL_AVX2 inline void add_totals(const GemmArgs& a, const int32_t (*total)[TT][8], int64_t o,
                               int64_t t) {
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u)
            a.acc[(t + u) * a.acc_stride + o + r] +=
                hsum_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(total[r][u])));
}

// Micro-kernel: R decoded rows x TT tokens over one panel; adds into a.acc.
// The int32 totals live in memory (touched once per kStepsPerWiden steps): in
// registers beside the R x TT int16 sums they spilled in the inner loop (16 ymm).
template <int R, int TT>
TL_AVX2 inline void gemm_tile(const GemmArgs& a, const uint8_t* panel, int64_t len, int64_t o,
                              int64_t k0, int64_t t) {
    alignas(32) int32_t total[R][TT][8] = {};
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
            for (int u = 0; u < TT; ++u) widen_into(total[r][u], acc16[r][u]);
    }
    add_totals<R, TT>(a, total, o, t);
}

// c0 += maddubs(f, v0), c1 += maddubs(f, v1) for the 32 fields f at p, in place.
// In C, GCC 12 puts each sum in a temporary's register and copies it back, or keeps
// an accumulator on the stack (38 instructions a step of the 4 x 2 tile; with this,
// 25): the asm ties every sum to its accumulator.
TL_AVX2 inline void row_step(__m256i& c0, __m256i& c1, const uint8_t* p, __m256i v0, __m256i v1) {
    __m256i f, t;
    asm("vmovdqa %[p], %[f]\n\t"
        "vpmaddubsw %[v0], %[f], %[t]\n\t"
        "vpaddw %[t], %[c0], %[c0]\n\t"
        "vpmaddubsw %[v1], %[f], %[t]\n\t"
        "vpaddw %[t], %[c1], %[c1]"
        : [c0] "+x"(c0), [c1] "+x"(c1), [f] "=&x"(f), [t] "=&x"(t)
        : [p] "m"(*reinterpret_cast<const __m256i*>(p)), [v0] "x"(v0), [v1] "x"(v1));
}

// Steps [s0, s1) of the 4 x 2 tile (at most kStepsPerWiden), added into total[r][u]:
// eight named accumulators, each step in row_step's asm (a function of its own, so
// that nothing of the caller competes for the 16 registers).
TL_AVX2 __attribute__((noinline)) void tile4x2_run(const int8_t* x0, const int8_t* x1,
                                                   const uint8_t* p0, int64_t len, int64_t s0,
                                                   int64_t s1, int32_t (*total)[2][8]) {
    const uint8_t *p1 = p0 + len, *p2 = p1 + len, *p3 = p2 + len;
    __m256i c00 = _mm256_setzero_si256(), c01 = _mm256_setzero_si256();
    __m256i c10 = _mm256_setzero_si256(), c11 = _mm256_setzero_si256();
    __m256i c20 = _mm256_setzero_si256(), c21 = _mm256_setzero_si256();
    __m256i c30 = _mm256_setzero_si256(), c31 = _mm256_setzero_si256();
    for (int64_t s = s0; s < s1; s += 32) {
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x0 + s));
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x1 + s));
        row_step(c00, c01, p0 + s, v0, v1);
        row_step(c10, c11, p1 + s, v0, v1);
        row_step(c20, c21, p2 + s, v0, v1);
        row_step(c30, c31, p3 + s, v0, v1);
    }
    widen_into(total[0][0], c00), widen_into(total[0][1], c01);
    widen_into(total[1][0], c10), widen_into(total[1][1], c11);
    widen_into(total[2][0], c20), widen_into(total[2][1], c21);
    widen_into(total[3][0], c30), widen_into(total[3][1], c31);
}

template <>
TL_AVX2 inline void gemm_tile<4, 2>(const GemmArgs& a, const uint8_t* panel, int64_t len,
                                    int64_t o, int64_t k0, int64_t t) {
    // Zeroed with vector stores: `= {}` became a rep stos, 2% of a prefill.
    alignas(32) int32_t total[4][2][8];
    for (auto& row : total)
        for (auto& lanes : row)
            _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_setzero_si256());
    const int8_t* x0 = a.x + t * a.x_stride + k0;
    for (int64_t s0 = 0; s0 < len; s0 += 32 * kStepsPerWiden) {
        const int64_t s1 = s0 + 32 * kStepsPerWiden < len ? s0 + 32 * kStepsPerWiden : len;
        tile4x2_run(x0, x0 + a.x_stride, panel, len, s0, s1, total);
    }
    add_totals<4, 2>(a, total, o, t);
}

// Rows [o, o + R) for every token: each panel of `panel_k` columns is decoded
// once by `decode(a, o, k0, len, panel)` and reused by every token (base-3: its
// decode is three times the 2-bit one's, worth storing).
template <int R, class Decode>
TL_AVX2 inline void gemm_rows(const GemmArgs& a, int64_t o, uint8_t* panel, int64_t panel_k,
                              Decode decode) {
    for (int64_t t = 0; t < a.T; ++t)
        for (int r = 0; r < R; ++r) a.acc[t * a.acc_stride + o + r] = -a.xsum[t];
    for (int64_t k0 = 0; k0 < a.Kp; k0 += panel_k) {
        const int64_t len = a.Kp - k0 < panel_k ? a.Kp - k0 : panel_k;
        decode(a, o, k0, len, panel);  // once per panel, reused by every token
        int64_t t = 0;
        for (; t + 2 <= a.T; t += 2) gemm_tile<R, 2>(a, panel, len, o, k0, t);
        if (t < a.T) gemm_tile<R, 1>(a, panel, len, o, k0, t);
    }
}

// ---- 2-bit GEMM: the tokens eight at a time -----------------------------------
// As the GEMV: each 32-byte load of packed weights is taken apart in registers, and
// every field vector goes straight to the group's (up to) 8 tokens, one int16
// accumulator each. A panel GEMM that stored the fields of 4 rows and loaded them
// again for every pair of tokens was slower at every T on Zen 3 (one 2560 x 2560
// matrix, one core: 105 against 130 G multiply-adds/s at T = 8, 117 against 128 at
// T = 128). The activations are interleaved first, per 32 columns the group's 32
// bytes a token one after another, so one pointer and constant offsets reach them
// all (with a pointer per token GCC ran out of registers), and the columns are
// walked in chunks of at most kGroupChunkBytes of activations, which stay in L1
// while every row of the range reads them (16 KiB chunks: 111 G/s at T = 8, the
// whole 55 KiB of K = 6912: 85). Rows are read one after another, so a row of a
// group takes a 64-byte line every 256 bytes (common.h): the line row o + 8 will
// read is asked for at each step (without it an 8-token decode step of the 2b
// model took 170 ms instead of 120).
constexpr int64_t kGroupChunkBytes = 24576;
constexpr int64_t kGroupPrefetchRows = 8;

// acc += maddubs(f, the 32 activations at x), in place. In C, GCC 12 sums the four
// field vectors' products first and keeps most of the T accumulators on the stack;
// the asm ties each sum to its accumulator.
TL_AVX2 inline void token_step(__m256i& acc, __m256i f, const int8_t* x) {
    __m256i t;
    asm("vpmaddubsw %[x], %[f], %[t]\n\t"
        "vpaddw %[t], %[acc], %[acc]"
        : [acc] "+x"(acc), [t] "=&x"(t)
        : [f] "x"(f), [x] "m"(*reinterpret_cast<const __m256i*>(x)));
}

// a.acc[u, o] += sum over columns [k0, k0 + len) of x[u] * field, u < T; xs: the
// interleaved activations of column k0.
template <int T>
TL_AVX2 inline void group_row(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                              const int8_t* xs) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const RowWalk rw = row_walk(a, o);
    alignas(32) int32_t total[T][8];
    for (auto& lanes : total)
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_setzero_si256());
    const int64_t nsb = len / kQK;
    for (int64_t sb0 = 0; sb0 < nsb; sb0 += kSbPerWiden) {
        const int64_t sb1 = sb0 + kSbPerWiden < nsb ? sb0 + kSbPerWiden : nsb;
        __m256i acc16[T];
        for (int u = 0; u < T; ++u) acc16[u] = _mm256_setzero_si256();
        for (int64_t sb = sb0; sb < sb1; ++sb) {
            const uint8_t* w = rw.sb(k0 / kQK + sb);
            // The line row o + kGroupPrefetchRows will read here (same place in its group).
            _mm_prefetch(reinterpret_cast<const char*>(
                             reinterpret_cast<uintptr_t>(w) +
                             static_cast<uintptr_t>(kGroupPrefetchRows * a.w_stride)),
                         _MM_HINT_T0);
            const int8_t* xb = xs + sb * kQK * T;
            for (int h = 0; h < 2; ++h) {
                const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * h));
                for (int j = 0; j < 4; ++j) {  // columns 64 j + 32 h .. + 31: piece 2 j + h
                    const __m256i f = fields(p, j, m3);
                    const int8_t* xp = xb + (2 * j + h) * 32 * T;
                    for (int u = 0; u < T; ++u) token_step(acc16[u], f, xp + 32 * u);
                }
            }
        }
        for (int u = 0; u < T; ++u) widen_into(total[u], acc16[u]);
    }
    for (int u = 0; u < T; ++u)
        a.acc[u * a.acc_stride + o] +=
            hsum_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(total[u])));
}

// Tokens [t0, t0 + T) of rows [o0, o1).
template <int T>
TL_AVX2 void token_group(const GemmArgs& a, int64_t o0, int64_t o1, int64_t t0, int8_t* xs) {
    const int8_t* x = a.x + t0 * a.x_stride;
    for (int64_t q = 0; q < a.Kp / 32; ++q)  // interleave: piece q of every token
        for (int u = 0; u < T; ++u)
            _mm256_store_si256(
                reinterpret_cast<__m256i*>(xs + (q * T + u) * 32),
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + u * a.x_stride + 32 * q)));
    int32_t* acc = a.acc + t0 * a.acc_stride;
    for (int u = 0; u < T; ++u)
        for (int64_t o = o0; o < o1; ++o) acc[u * a.acc_stride + o] = -a.xsum[t0 + u];
    GemmArgs g = a;
    g.acc = acc;
    const int64_t chunk = kGroupChunkBytes / T / kQK * kQK;
    for (int64_t k0 = 0; k0 < a.Kp; k0 += chunk) {
        const int64_t len = a.Kp - k0 < chunk ? a.Kp - k0 : chunk;
        for (int64_t o = o0; o < o1; ++o) group_row<T>(g, o, k0, len, xs + k0 * T);
    }
}

// ---- base-3 layout ------------------------------------------------------------
struct Base3Table {
    __m256i lo, hi;      // f0 | f1 << 2 | f2 << 4 of b = 0..15 and of b = 16..31 (27.. unused)
    __m256i times27;     // 27 h, for h = 0..8
    __m256i div3;        // f4 = h / 3
    __m256i mod3_shl6;   // f3 << 6 = (h % 3) << 6
};

TL_AVX2 inline __m256i broadcast16(const uint8_t* t) {
    return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}

TL_AVX2 inline Base3Table base3_table() {
    alignas(16) uint8_t t[5][16] = {};
    for (int b = 0; b < 27; ++b)
        t[b / 16][b % 16] = static_cast<uint8_t>(b % 3 | b / 3 % 3 << 2 | b / 9 % 3 << 4);
    for (int h = 0; h < 9; ++h) {
        t[2][h] = static_cast<uint8_t>(27 * h);
        t[3][h] = static_cast<uint8_t>(h / 3);
        t[4][h] = static_cast<uint8_t>(h % 3 << 6);
    }
    return {broadcast16(t[0]), broadcast16(t[1]), broadcast16(t[2]), broadcast16(t[3]),
            broadcast16(t[4])};
}

// The five unsigned field vectors (f = code + 1) of 32 base-3 bytes.
TL_AVX2 inline void base3_fields(__m256i v, const Base3Table& tab, __m256i f[5]) {
    const __m256i m27 = _mm256_set1_epi16(2428);
    const __m256i h_even = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi16(0xff)), m27);
    const __m256i h_odd = _mm256_mulhi_epu16(_mm256_srli_epi16(v, 8), m27);
    const __m256i h = _mm256_or_si256(h_even, _mm256_slli_epi16(h_odd, 8));
    const __m256i b = _mm256_sub_epi8(v, _mm256_shuffle_epi8(tab.times27, h));  // < 27
    f[4] = _mm256_shuffle_epi8(tab.div3, h);
    // pshufb gives 0 where the index has bit 7 set: b + 0x70 (saturating) sets it for
    // b >= 16, b - 16 for b < 16, so exactly one lookup contributes.
    __m256i p = _mm256_or_si256(
        _mm256_shuffle_epi8(tab.lo, _mm256_adds_epu8(b, _mm256_set1_epi8(0x70))),
        _mm256_shuffle_epi8(tab.hi, _mm256_sub_epi8(b, _mm256_set1_epi8(16))));
    p = _mm256_or_si256(p, _mm256_shuffle_epi8(tab.mod3_shl6, h));
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int j = 0; j < 4; ++j) f[j] = fields(p, j, m3);
}

template <int R>
TL_AVX2 inline void gemv3_rows(const GemmArgs& a, int64_t o, const Base3Table& tab) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nsb = a.Kp / kQK3;
    RowWalk rw[R];
    for (int r = 0; r < R; ++r) rw[r] = row_walk(a, o + r);
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    for (int64_t sb0 = 0; sb0 < nsb; sb0 += kSb3PerWiden) {
        const int64_t sb1 = sb0 + kSb3PerWiden < nsb ? sb0 + kSb3PerWiden : nsb;
        __m256i acc16[R];
        for (int r = 0; r < R; ++r) acc16[r] = _mm256_setzero_si256();
        for (int64_t sb = sb0; sb < sb1; ++sb) {
            const int8_t* xb = a.x + sb * kQK3;
            for (int r = 0; r < R; ++r) prefetch_ahead(rw[r].sb(sb), kBlockBytes);  // isa.h
            for (int h = 0; h < 2; ++h) {
                __m256i xv[5];
                for (int j = 0; j < 5; ++j)
                    xv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 64 * j + 32 * h));
                for (int r = 0; r < R; ++r) {
                    __m256i f[5];
                    base3_fields(_mm256_loadu_si256(
                                     reinterpret_cast<const __m256i*>(rw[r].sb(sb) + 32 * h)),
                                 tab, f);
                    for (int j = 0; j < 5; ++j)
                        acc16[r] = _mm256_add_epi16(acc16[r], _mm256_maddubs_epi16(f[j], xv[j]));
                }
            }
        }
        for (int r = 0; r < R; ++r)
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(acc16[r], ones));
    }
    for (int r = 0; r < R; ++r) a.acc[o + r] = hsum_epi32(acc[r]) - a.xsum[0];
}

template <int R>
TL_AVX2 inline void decode_panel3(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                  uint8_t* panel, const Base3Table& tab) {
    for (int r = 0; r < R; ++r) {
        const RowWalk rw = row_walk(a, o + r);
        uint8_t* dst = panel + r * len;
        for (int64_t sb = 0; sb < len / kQK3; ++sb)
            for (int h = 0; h < 2; ++h) {
                __m256i f[5];
                base3_fields(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                 rw.sb(k0 / kQK3 + sb) + 32 * h)),
                             tab, f);
                for (int j = 0; j < 5; ++j)
                    _mm256_store_si256(
                        reinterpret_cast<__m256i*>(dst + sb * kQK3 + 64 * j + 32 * h), f[j]);
            }
    }
}

// The base-3 panel decoder for gemm_rows (a functor: a lambda would not carry the
// target attribute).
template <int R>
struct Decode3 {
    const Base3Table* tab;
    TL_AVX2 void operator()(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                            uint8_t* panel) const {
        decode_panel3<R>(a, o, k0, len, panel, *tab);
    }
};

}  // namespace

TL_AVX2 void gemv_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv_rows<kRows>(a, o);
    for (; o < o1; ++o) gemv_rows<1>(a, o);
}

// Every token, 8 at a time (the last group takes the rest).
TL_AVX2 void gemm_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    int8_t* xs = interleaved_scratch(8 * a.Kp);
    for (int64_t t0 = 0; t0 < a.T; t0 += 8) {
        switch (a.T - t0 < 8 ? a.T - t0 : 8) {
            case 1: token_group<1>(a, o0, o1, t0, xs); break;
            case 2: token_group<2>(a, o0, o1, t0, xs); break;
            case 3: token_group<3>(a, o0, o1, t0, xs); break;
            case 4: token_group<4>(a, o0, o1, t0, xs); break;
            case 5: token_group<5>(a, o0, o1, t0, xs); break;
            case 6: token_group<6>(a, o0, o1, t0, xs); break;
            case 7: token_group<7>(a, o0, o1, t0, xs); break;
            default: token_group<8>(a, o0, o1, t0, xs); break;
        }
    }
}

TL_AVX2 void gemv3_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    const Base3Table tab = base3_table();
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv3_rows<kRows>(a, o, tab);
    for (; o < o1; ++o) gemv3_rows<1>(a, o, tab);
}

TL_AVX2 void gemm3_avx2(const GemmArgs& a, int64_t o0, int64_t o1) {
    alignas(64) uint8_t panel[kRows * kPanelK3];
    const Base3Table tab = base3_table();
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows)
        gemm_rows<kRows>(a, o, panel, kPanelK3, Decode3<kRows>{&tab});
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel, kPanelK3, Decode3<1>{&tab});
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemv_avx2(const GemmArgs&, int64_t, int64_t) {}
void gemm_avx2(const GemmArgs&, int64_t, int64_t) {}
void gemv3_avx2(const GemmArgs&, int64_t, int64_t) {}
void gemm3_avx2(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
