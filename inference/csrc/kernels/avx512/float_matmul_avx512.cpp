// AVX-512 float GEMM (see float_matmul.h). The avx512 table pairs it with the
// AVX2 GEMV (float_matmul_avx2.cpp), so it reproduces that kernel's sequence
// per output element exactly: 8-column steps, step s into accumulator s % 4.
// A 512-bit register holds two of those accumulators side by side: pair-step u
// (columns 16u .. 16u+15) is steps 2u and 2u+1, which go to accumulators
// (0, 1) when u is even and (2, 3) when u is odd, i.e. register u % 2. The
// accumulators are summed with the AVX2 kernel's tree, so avx2 and avx512
// give identical results. (A 512-bit GEMV streamed ~40% slower than the 256-bit
// one on the Zen 4 machine this was tuned on, while the GEMM gains from twice
// the registers: a 4-row x 3-token tile.)
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"

#if TERNLAB_X86

#define TL_F512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")))

namespace ternlab {

namespace {

constexpr int kW = 16;            // lanes of a pair-step
constexpr int kPairs = 2;         // registers per output element: (acc0|acc1), (acc2|acc3)
constexpr int kTileRows = 4;
constexpr int kTileTokens = 3;
constexpr int64_t kRowBlock = 32;
constexpr int64_t kChunkPairs = 64;  // 1024 columns (128 AVX2 steps): 3 tokens x 4 KiB
constexpr int64_t kMemPerRow = kTileTokens * kPairs;

// The AVX2 kernel's sum of its four accumulators acc0..acc3 = lo/hi of p[0], p[1].
TL_F512 inline float hsum(const __m512* p) {
    const __m256 a01 = _mm256_add_ps(_mm512_castps512_ps256(p[0]), _mm512_extractf32x8_ps(p[0], 1));
    const __m256 a23 = _mm256_add_ps(_mm512_castps512_ps256(p[1]), _mm512_extractf32x8_ps(p[1], 1));
    const __m256 v = _mm256_add_ps(a01, a23);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TL_F512 inline float half_to_float(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

// Pair-steps [u0, u1) (u0 even) of R rows w[r] for TT tokens of x, plus the
// masked pair-step u1 (its first `tail` columns) if tail > 0. Lanes past K are
// zero in w and x, so they add +0: no change. Row r's registers live at
// mem + r * kMemPerRow, [token][pair].
template <int R, int TT>
TL_F512 inline void tile_chunk(const float* const* w, const float* x, int64_t K, int64_t u0,
                               int64_t u1, int64_t tail, __m512* mem) {
    __m512 acc[R][TT][kPairs];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t)
            for (int p = 0; p < kPairs; ++p) acc[r][t][p] = mem[r * kMemPerRow + t * kPairs + p];
    int64_t u = u0;
    for (; u + kPairs <= u1; u += kPairs) {
        for (int p = 0; p < kPairs; ++p) {
            const int64_t k = kW * (u + p);
            __m512 wv[R];
            for (int r = 0; r < R; ++r) wv[r] = _mm512_loadu_ps(w[r] + k);
            for (int t = 0; t < TT; ++t) {
                const __m512 xv = _mm512_loadu_ps(x + t * K + k);
                for (int r = 0; r < R; ++r) acc[r][t][p] = _mm512_fmadd_ps(wv[r], xv, acc[r][t][p]);
            }
        }
    }
    for (int p = 0; p < kPairs; ++p) {  // u is even: pair-step u + p goes to register p
        __mmask16 m = 0;
        if (u + p < u1) m = 0xffff;
        else if (u + p == u1 && tail > 0) m = static_cast<__mmask16>((1u << tail) - 1u);
        if (m == 0) continue;
        const int64_t k = kW * (u + p);
        __m512 wv[R];
        for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(m, w[r] + k);
        for (int t = 0; t < TT; ++t) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * K + k);
            for (int r = 0; r < R; ++r) acc[r][t][p] = _mm512_fmadd_ps(wv[r], xv, acc[r][t][p]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t)
            for (int p = 0; p < kPairs; ++p) mem[r * kMemPerRow + t * kPairs + p] = acc[r][t][p];
}

template <int R>
TL_F512 inline void chunk_tokens(int tt, const float* const* w, const float* x, int64_t K,
                                 int64_t u0, int64_t u1, int64_t tail, __m512* mem) {
    switch (tt) {
        case 3: tile_chunk<R, 3>(w, x, K, u0, u1, tail, mem); break;
        case 2: tile_chunk<R, 2>(w, x, K, u0, u1, tail, mem); break;
        default: tile_chunk<R, 1>(w, x, K, u0, u1, tail, mem); break;
    }
}

TL_F512 inline void chunk_rows(int64_t rows, int tt, const float* const* w, const float* x,
                               int64_t K, int64_t u0, int64_t u1, int64_t tail, __m512* mem) {
    switch (rows) {
        case 3: chunk_tokens<3>(tt, w, x, K, u0, u1, tail, mem); break;
        case 2: chunk_tokens<2>(tt, w, x, K, u0, u1, tail, mem); break;
        default: chunk_tokens<1>(tt, w, x, K, u0, u1, tail, mem); break;
    }
}
static_assert(kTileRows == 4 && kTileTokens == 3, "chunk_rows / chunk_tokens dispatch");

// F16 row o as float32 into dst (K values).
TL_F512 inline void convert_row(const FloatGemmArgs& a, int64_t o, float* dst) {
    const uint8_t* row = a.w + o * a.row_bytes;
    int64_t k = 0;
    for (; k + kW <= a.K; k += kW)
        _mm512_storeu_ps(dst + k, _mm512_cvtph_ps(_mm256_loadu_si256(
                                      reinterpret_cast<const __m256i*>(row + 2 * k))));
    for (; k < a.K; ++k) dst[k] = half_to_float(row + 2 * k);
}

// Rows [ob, ob + rows) (float32 rows w[r]) for tokens [t, t + tt).
TL_F512 inline void row_block_tokens(const FloatGemmArgs& a, const float* const* w, int64_t rows,
                                     int64_t ob, int64_t t, int tt) {
    __m512 mem[kRowBlock * kMemPerRow];
    for (int64_t i = 0; i < rows * kMemPerRow; ++i) mem[i] = _mm512_setzero_ps();
    const int64_t full = a.K / kW;      // unmasked pair-steps
    const int64_t tail = a.K - kW * full;  // columns of the masked one
    const float* x = a.x + t * a.K;
    for (int64_t u0 = 0; u0 < full || (u0 == full && tail > 0); u0 += kChunkPairs) {
        const int64_t u1 = u0 + kChunkPairs < full ? u0 + kChunkPairs : full;
        const int64_t chunk_tail = u0 + kChunkPairs > full ? tail : 0;
        int64_t r = 0;
        for (; r + kTileRows <= rows; r += kTileRows)
            chunk_tokens<kTileRows>(tt, w + r, x, a.K, u0, u1, chunk_tail, mem + r * kMemPerRow);
        if (r < rows)
            chunk_rows(rows - r, tt, w + r, x, a.K, u0, u1, chunk_tail, mem + r * kMemPerRow);
    }
    for (int64_t r = 0; r < rows; ++r)
        for (int i = 0; i < tt; ++i)
            a.y[(t + i) * a.y_stride + ob + r] = hsum(mem + r * kMemPerRow + i * kPairs);
}

// panel: kRowBlock * K floats of scratch (unused for F32, whose rows are read in place).
TL_F512 void gemm(FloatFormat fmt, const FloatGemmArgs& a, int64_t o0, int64_t o1, float* panel) {
    for (int64_t ob = o0; ob < o1; ob += kRowBlock) {
        const int64_t rows = o1 - ob < kRowBlock ? o1 - ob : kRowBlock;
        const float* w[kRowBlock];
        for (int64_t r = 0; r < rows; ++r) {
            w[r] = reinterpret_cast<const float*>(a.w + (ob + r) * a.row_bytes);
            if (fmt != kFmtF32) {
                convert_row(a, ob + r, panel + r * a.K);
                w[r] = panel + r * a.K;
            }
        }
        for (int64_t t = 0; t < a.T; t += kTileTokens)
            row_block_tokens(a, w, rows, ob, t,
                             static_cast<int>(a.T - t < kTileTokens ? a.T - t : kTileTokens));
    }
}

}  // namespace

void float_gemm_f32_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(kFmtF32, a, o0, o1, nullptr);
}
void float_gemm_f16_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(kFmtF16, a, o0, o1, float_scratch(kRowBlock * a.K));
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemm_f32_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_f16_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
