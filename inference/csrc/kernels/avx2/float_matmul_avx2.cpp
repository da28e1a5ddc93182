// AVX2 + FMA + F16C float kernels (see float_matmul.h).
//
// Per output element: kAcc = 4 accumulators of 8 lanes; step s (the 8 columns
// k = 8s .. 8s+7, the last one masked) is added with FMA into accumulator
// s % 4, and the accumulators are summed in a fixed tree. GEMV and GEMM run
// exactly this, so a token's result does not depend on T, the row tiling or
// the thread split.
//   GEMV (T == 1, decode): one row at a time. The four independent chains hide
//     the FMA latency while the weights are read as a single sequential stream,
//     which this hardware's prefetchers sustain far better than several
//     interleaved row streams (measured on the Zen 4 machine here: plain reads
//     26 vs 18 GB/s for 1 vs 4 streams; the F16 GEMV from a file mapping about
//     1.6x faster than a 4-row kernel).
//   GEMM (T > 1, prefill): rows are converted once into a float32 panel and
//     reused by every token; see the GEMM section for the blocking.
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"

#if TERNLAB_X86

#define TL_F16C __attribute__((target("avx2,fma,f16c")))

namespace ternlab {

namespace {

constexpr int kW = 8;     // lanes
constexpr int kAcc = 4;   // accumulators per output element
constexpr int kTileTokens = 3;

TL_F16C inline float hsum(const __m256* acc) {
    const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Lanes [0, n) set, n in [1, 7].
TL_F16C inline __m256i tail_mask(int64_t n) {
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + kW - n));
}

TL_F16C inline float half_to_float(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

// ---- row formats: the 8 weights of step s as exact float32 --------------------
struct F32 {
    TL_F16C static __m256 load(const uint8_t* row, int64_t s) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + kW * s);
    }
    TL_F16C static __m256 tail(const uint8_t* row, int64_t s, int64_t n) {
        return _mm256_maskload_ps(reinterpret_cast<const float*>(row) + kW * s, tail_mask(n));
    }
};

struct F16 {
    TL_F16C static __m256 load(const uint8_t* row, int64_t s) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * kW * s)));
    }
    TL_F16C static __m256 tail(const uint8_t* row, int64_t s, int64_t n) {
        uint16_t h[kW] = {};
        std::memcpy(h, row + 2 * kW * s, static_cast<size_t>(n) * 2);
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
    }
};

// ---- GEMV ------------------------------------------------------------------------
template <class Fmt>
TL_F16C inline void gemv_row(const FloatGemmArgs& a, int64_t o) {
    const uint8_t* w = a.w + o * a.row_bytes;
    const float* x = a.x;
    __m256 acc[kAcc];
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t full = a.K / kW;  // unmasked steps
    int64_t s = 0;
    for (; s + kAcc <= full; s += kAcc)
        for (int j = 0; j < kAcc; ++j)
            acc[j] = _mm256_fmadd_ps(Fmt::load(w, s + j), _mm256_loadu_ps(x + kW * (s + j)),
                                     acc[j]);
    // Fewer than kAcc steps left, then the masked one: accumulator (step % kAcc).
    for (int j = 0; j < kAcc; ++j) {
        if (s + j < full) {
            acc[j] = _mm256_fmadd_ps(Fmt::load(w, s + j), _mm256_loadu_ps(x + kW * (s + j)),
                                     acc[j]);
        } else if (s + j == full && a.K > kW * full) {
            const int64_t n = a.K - kW * full;
            const __m256 xv = _mm256_maskload_ps(x + kW * full, tail_mask(n));
            acc[j] = _mm256_fmadd_ps(Fmt::tail(w, full, n), xv, acc[j]);
        }
    }
    a.y[o] = hsum(acc);
}

template <class Fmt>
TL_F16C void gemv(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) gemv_row<Fmt>(a, o);
}

// ---- GEMM ------------------------------------------------------------------------
// The register tile is one row x kTileTokens tokens x kAcc accumulators. To
// reuse what is loaded, rows are taken kRowBlock at a time (converted once
// into a float32 panel in L2) and K in chunks of kChunkSteps steps: a chunk of
// the tile's activations stays in L1 while every row of the block passes over
// it; the accumulators wait in memory between chunks (chunks start at a
// multiple of kAcc steps, so step s still goes to accumulator s % kAcc).
constexpr int64_t kRowBlock = 32;
constexpr int64_t kChunkSteps = 128;  // 1024 columns: 3 tokens x 4 KiB of activations

// One step s for TT tokens: acc[t][j] += w[s] * x[t][s].
template <int TT>
TL_F16C inline void tile_step(__m256 (*acc)[kAcc], int j, __m256 wv, const float* x, int64_t K,
                              int64_t k) {
    for (int t = 0; t < TT; ++t)
        acc[t][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * K + k), acc[t][j]);
}

// Steps [s0, s1) (s0 a multiple of kAcc) of row w for TT tokens of x, plus the
// masked step s1 if `tail`; the accumulators come from and go back to mem.
template <int TT>
TL_F16C inline void tile_chunk(const float* w, const float* x, int64_t K, int64_t s0, int64_t s1,
                               bool tail, __m256* mem) {
    __m256 acc[TT][kAcc];
    for (int t = 0; t < TT; ++t)
        for (int j = 0; j < kAcc; ++j) acc[t][j] = mem[t * kAcc + j];
    int64_t s = s0;
    for (; s + kAcc <= s1; s += kAcc)
        for (int j = 0; j < kAcc; ++j)
            tile_step<TT>(acc, j, _mm256_loadu_ps(w + kW * (s + j)), x, K, kW * (s + j));
    for (int j = 0; j < kAcc; ++j) {
        if (s + j < s1) {
            tile_step<TT>(acc, j, _mm256_loadu_ps(w + kW * (s + j)), x, K, kW * (s + j));
        } else if (s + j == s1 && tail) {
            const __m256i m = tail_mask(K - kW * s1);
            const __m256 wv = _mm256_maskload_ps(w + kW * s1, m);
            for (int t = 0; t < TT; ++t)
                acc[t][j] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(x + t * K + kW * s1, m),
                                            acc[t][j]);
        }
    }
    for (int t = 0; t < TT; ++t)
        for (int j = 0; j < kAcc; ++j) mem[t * kAcc + j] = acc[t][j];
}

TL_F16C inline void chunk_dispatch(int tt, const float* w, const float* x, int64_t K, int64_t s0,
                                   int64_t s1, bool tail, __m256* mem) {
    switch (tt) {
        case 3: tile_chunk<3>(w, x, K, s0, s1, tail, mem); break;
        case 2: tile_chunk<2>(w, x, K, s0, s1, tail, mem); break;
        default: tile_chunk<1>(w, x, K, s0, s1, tail, mem); break;
    }
}
static_assert(kTileTokens == 3, "chunk_dispatch handles tiles of 1 to 3 tokens");

// F16 row o as float32 into dst (K values).
TL_F16C inline void convert_row(const FloatGemmArgs& a, int64_t o, float* dst) {
    const uint8_t* row = a.w + o * a.row_bytes;
    int64_t s = 0;
    for (; kW * (s + 1) <= a.K; ++s) _mm256_storeu_ps(dst + kW * s, F16::load(row, s));
    for (int64_t k = kW * s; k < a.K; ++k) dst[k] = half_to_float(row + 2 * k);
}

// Rows [ob, ob + rows) (float32 rows w[r]) for tokens [t, t + tt).
TL_F16C inline void row_block_tokens(const FloatGemmArgs& a, const float* const* w, int64_t rows,
                                     int64_t ob, int64_t t, int tt) {
    __m256 mem[kRowBlock * kTileTokens * kAcc];
    for (int64_t i = 0; i < rows * kTileTokens * kAcc; ++i) mem[i] = _mm256_setzero_ps();
    const int64_t full = a.K / kW;
    const bool tail = a.K > kW * full;
    const float* x = a.x + t * a.K;
    for (int64_t s0 = 0; s0 < full || (s0 == full && tail); s0 += kChunkSteps) {
        const int64_t s1 = s0 + kChunkSteps < full ? s0 + kChunkSteps : full;
        const bool last = s0 + kChunkSteps > full;
        for (int64_t r = 0; r < rows; ++r)
            chunk_dispatch(tt, w[r], x, a.K, s0, s1, tail && last, mem + r * kTileTokens * kAcc);
    }
    for (int64_t r = 0; r < rows; ++r)
        for (int i = 0; i < tt; ++i)
            a.y[(t + i) * a.y_stride + ob + r] = hsum(mem + (r * kTileTokens + i) * kAcc);
}

// panel: kRowBlock * K floats of scratch (unused for F32, whose rows are read in place).
TL_F16C void gemm(FloatFormat fmt, const FloatGemmArgs& a, int64_t o0, int64_t o1, float* panel) {
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
            row_block_tokens(a, w, rows, ob,  t,
                             static_cast<int>(a.T - t < kTileTokens ? a.T - t : kTileTokens));
    }
}

}  // namespace

void float_gemv_f32_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) { gemv<F32>(a, o0, o1); }
void float_gemv_f16_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) { gemv<F16>(a, o0, o1); }

void float_gemm_f32_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(kFmtF32, a, o0, o1, nullptr);
}
void float_gemm_f16_avx2(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    gemm(kFmtF16, a, o0, o1, float_scratch(kRowBlock * a.K));
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemv_f32_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemv_f16_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_f32_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
void float_gemm_f16_avx2(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
