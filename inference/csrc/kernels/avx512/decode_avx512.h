// AVX-512 decoders of the packed ternary layouts (common.h) into unsigned fields
// f = code + 1, shared by the VNNI kernels (gemm_avx512.cpp) and the AMX ones
// (amx/gemm_amx.cpp). Header-only and static (isa.h's rules): each file that includes
// it gets its own copies, compiled for the same target.
#pragma once

#include "kernels/common.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {
namespace {

TL_AVX512 inline __m512i fields(__m512i p, int j, __m512i m3) {
    return _mm512_and_si512(_mm512_srli_epi16(p, 2 * j), m3);
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

// ---- base-3 layout (common.h): five digits a byte ----------------------------
// v = f0 + 3 f1 + 9 f2 + 27 f3 + 81 f4 (v <= 242). The top digit f4 comes from
// two unsigned compares (v >= 81, v >= 162); the rest b = v - 81 f4 < 81 indexes
// one 128-byte table per digit (vpermi2b: 7-bit indices over two registers).
// 10 instructions decode 320 codes, so the GEMV stays memory-bound.
struct Base3Tables {
    __m512i lo[4], hi[4];  // digit j of b in 0..127 (entries past 80 unused)
};

TL_AVX512VBMI inline Base3Tables base3_tables() {
    alignas(64) uint8_t t[4][128];
    for (int j = 0, p = 1; j < 4; ++j, p *= 3)
        for (int b = 0; b < 128; ++b) t[j][b] = static_cast<uint8_t>(b / p % 3);
    Base3Tables tab;
    for (int j = 0; j < 4; ++j) {
        tab.lo[j] = _mm512_load_si512(t[j]);
        tab.hi[j] = _mm512_load_si512(t[j] + 64);
    }
    return tab;
}

// A super-block's bytes v split for the digit lookups: b = v - 81 f4 < 81 and the
// masks v >= 81, v >= 162 (f4 = their count).
struct Base3Split {
    __m512i b;
    __mmask64 ge81, ge162;
};

TL_AVX512VBMI inline Base3Split base3_split(__m512i v) {
    const __m512i c81 = _mm512_set1_epi8(81);
    const __mmask64 ge81 = _mm512_cmpge_epu8_mask(v, c81);
    const __mmask64 ge162 = _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(static_cast<char>(162)));
    __m512i b = _mm512_mask_sub_epi8(v, ge81, v, c81);
    b = _mm512_mask_sub_epi8(b, ge162, b, c81);
    return {b, ge81, ge162};
}

// The unsigned field vector (f = code + 1) of digit j.
TL_AVX512VBMI inline __m512i base3_digit(const Base3Split& s, int j, const Base3Tables& tab) {
    if (j < 4) return _mm512_permutex2var_epi8(tab.lo[j], s.b, tab.hi[j]);
    const __m512i one = _mm512_set1_epi8(1);
    const __m512i f = _mm512_maskz_mov_epi8(s.ge81, one);
    return _mm512_mask_add_epi8(f, s.ge162, f, one);
}

// The five unsigned field vectors (f = code + 1) of one 64-byte super-block.
TL_AVX512VBMI inline void base3_fields(__m512i v, const Base3Tables& tab, __m512i f[5]) {
    const Base3Split s = base3_split(v);
    for (int j = 0; j < 5; ++j) f[j] = base3_digit(s, j, tab);
}

template <int R>
TL_AVX512VBMI inline void decode_panel3(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                        uint8_t* panel, const Base3Tables& tab) {
    for (int r = 0; r < R; ++r) {
        const RowWalk rw = row_walk(a, o + r);
        uint8_t* dst = panel + r * len;
        for (int64_t sb = 0; sb < len / kQK3; ++sb) {
            __m512i f[5];
            base3_fields(_mm512_loadu_si512(rw.sb(k0 / kQK3 + sb)), tab, f);
            for (int j = 0; j < 5; ++j) _mm512_store_si512(dst + sb * kQK3 + 64 * j, f[j]);
        }
    }
}

}  // namespace
}  // namespace ternlab

#endif
