// AVX-VNNI ternary GEMM (the 2-bit layout; from 16 tokens, fewer take AVX2's). Intel
// cores from Alder Lake on have the VEX-encoded 256-bit vpdpbusd without AVX-512: one
// instruction multiplies 32 unsigned fields f = code + 1 by 32 signed activation codes
// and adds groups of four into int32 lanes, where AVX2 needs maddubs, an int16 add and
// a widening every few super-blocks. sum f*x - sum x = sum code*x, as in the other
// kernels.
//
// The AVX-512 GEMM's plan on 256 bits: a panel of 4 rows x 4096 columns is decoded
// once into unsigned fields (16 KiB, L1) and reused by every token; the tile is 4 rows
// x 2 tokens, since VEX code has 16 vector registers (8 accumulators, 2 activation
// vectors and a field vector).
#include "kernels/gemm.h"
#include "kernels/avx2/hsum_avx2.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

constexpr int64_t kRows = 4;       // rows per panel: one row group
constexpr int64_t kPanelK = 4096;  // columns per panel (16 super-blocks)
// Below this many tokens AVX2's GEMM (weights decoded in registers, 8 tokens at a
// time) is as fast or faster: one 6912 x 2560 matrix, one core of the AMX Xeon, G
// multiply-adds/s AVX2 -> this kernel: T = 2 66 -> 60, 4 84 -> 80, 8 95 -> 95,
// 16 94 -> 107, 32 95 -> 109, 128 94 -> 114 (lowest time of 25 runs).
constexpr int64_t kMinTokens = 16;

TL_AVXVNNI inline __m256i load(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// acc += vpdpbusd(f, x), in place. With the intrinsic GCC 12 copied each accumulator
// into a scratch register and back and spilled one (as with the AVX-512 kernels); the
// asm ties the sum to the accumulator. {vex}: the assembler would pick the EVEX form
// (AVX-512 VNNI), which faults on the CPUs this kernel is for.
TL_AVXVNNI inline void dpbusd_to(__m256i& acc, __m256i f, __m256i x) {
    asm("%{vex%} vpdpbusd %[x], %[f], %[acc]" : [acc] "+x"(acc) : [f] "x"(f), [x] "x"(x));
}

// Rows [o, o + R), columns [k0, k0 + len) as fields, row r at panel + r * len. A
// super-block's 32-byte half h holds bytes 32h.. of the four 64-column runs (common.h).
template <int R>
TL_AVXVNNI inline void decode_panel(const GemmArgs& a, int64_t o, int64_t k0, int64_t len,
                                    uint8_t* panel) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int r = 0; r < R; ++r) {
        const RowWalk rw = row_walk(a, o + r);
        uint8_t* dst = panel + r * len;
        for (int64_t sb = 0; sb < len / kQK; ++sb)
            for (int h = 0; h < 2; ++h) {
                const __m256i p = load(rw.sb(k0 / kQK + sb) + 32 * h);
                for (int j = 0; j < 4; ++j)
                    _mm256_store_si256(reinterpret_cast<__m256i*>(dst + sb * kQK + 64 * j + 32 * h),
                                       _mm256_and_si256(_mm256_srli_epi16(p, 2 * j), m3));
            }
    }
}

// Rows [o, o + R) x tokens [t, t + TT) over the panel; the sums are added to acc.
template <int R, int TT>
TL_AVXVNNI inline void gemm_tile(const GemmArgs& a, const uint8_t* panel, int64_t len, int64_t o,
                                 int64_t k0, int64_t t) {
    static_assert(R * TT + TT + 1 <= 16, "accumulators, activations and a field: 16 ymm");
    __m256i acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) acc[r][u] = _mm256_setzero_si256();
    const int8_t* x = a.x + t * a.x_stride + k0;
    for (int64_t s = 0; s < len; s += 32) {
        __m256i xv[TT];
        for (int u = 0; u < TT; ++u) xv[u] = load(x + u * a.x_stride + s);
        for (int r = 0; r < R; ++r) {
            const __m256i f =
                _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + r * len + s));
            for (int u = 0; u < TT; ++u) dpbusd_to(acc[r][u], f, xv[u]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < TT; ++u) a.acc[(t + u) * a.acc_stride + o + r] += hsum_epi32(acc[r][u]);
}

template <int R>
TL_AVXVNNI inline void gemm_rows(const GemmArgs& a, int64_t o, uint8_t* panel) {
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

TL_AVXVNNI void gemm_avxvnni(const GemmArgs& a, int64_t o0, int64_t o1) {
    if (a.T < kMinTokens) return gemm_avx2(a, o0, o1);
    alignas(32) uint8_t panel[kRows * kPanelK];
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemm_rows<kRows>(a, o, panel);
    for (; o < o1; ++o) gemm_rows<1>(a, o, panel);
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemm_avxvnni(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
