// AVX-512 float GEMV (decode) for Q8_0 rows, bit-identical with the AVX2 GEMV
// (float_matmul_avx2.cpp): per output element the same 8-column steps go into
// the same four accumulators with the same IEEE operations (code * d, then FMA
// with x), summed by the same tree. A 512-bit register holds two of those
// accumulators side by side, as in the AVX-512 GEMM: pair-step u (columns
// 16u .. 16u+15) is steps 2u and 2u+1, which belong to register u % 2. Half the
// instructions of the AVX2 loop, which left a Q8_0 head compute-bound.
//
// F16 rows keep the AVX2 GEMV: the 512-bit F16 loop (the same scheme) decoded
// the 2b-shape F16 model more slowly on Zen 4 (1 thread 3.8-4.1 against 4.8-4.9
// tokens/s, 2 threads 4.9-5.5 against 5.8), since one row's stream is bound by
// memory, not by instructions.
//
// One row at a time: the weights are then one sequential stream. Walking two
// rows together (four FMA chains instead of two) was 1.6x slower on the Zen 4
// machine here: two streams defeat the prefetchers (measured: 2b-shape Q8_0
// head, 2 threads, 24 against 39 tokens/s for the whole decode step).
#include <cstring>

#include "kernels/float_matmul.h"
#include "kernels/isa.h"

#if TERNLAB_X86

#define TL_G512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")))

namespace ternlab {

namespace {

constexpr int kW = 16;  // lanes of a pair-step
constexpr int kRows = 1;  // see above

// The AVX2 kernel's tree over acc0..acc3 = lo/hi of p[0] and p[1].
TL_G512 inline float hsum(const __m512* p) {
    const __m256 a01 = _mm256_add_ps(_mm512_castps512_ps256(p[0]), _mm512_extractf32x8_ps(p[0], 1));
    const __m256 a23 = _mm256_add_ps(_mm512_castps512_ps256(p[1]), _mm512_extractf32x8_ps(p[1], 1));
    const __m256 v = _mm256_add_ps(a01, a23);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TL_G512 inline float half_to_float(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

// Q8_0 rows [o, o + R): a 32-value block is pair-steps 2b and 2b + 1.
template <int R>
TL_G512 inline void gemv_q8_rows(const FloatGemmArgs& a, int64_t o) {
    const uint8_t* w[R];
    for (int r = 0; r < R; ++r) w[r] = a.w + (o + r) * a.row_bytes;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < a.K / kQ8Block; ++b) {
        __m512 d[R];
        for (int r = 0; r < R; ++r) d[r] = _mm512_set1_ps(half_to_float(w[r] + b * kQ8BlockBytes));
        for (int p = 0; p < 2; ++p) {
            const __m512 xv = _mm512_loadu_ps(a.x + b * kQ8Block + kW * p);
            for (int r = 0; r < R; ++r) {
                const __m128i q = _mm_loadu_si128(
                    reinterpret_cast<const __m128i*>(w[r] + b * kQ8BlockBytes + 2 + kW * p));
                const __m512 wv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d[r]);
                acc[r][p] = _mm512_fmadd_ps(wv, xv, acc[r][p]);
            }
        }
    }
    for (int r = 0; r < R; ++r) a.y[o + r] = hsum(acc[r]);
}

}  // namespace

TL_G512 void float_gemv_q8_0_avx512(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + kRows <= o1; o += kRows) gemv_q8_rows<kRows>(a, o);
    for (; o < o1; ++o) gemv_q8_rows<1>(a, o);
}

}  // namespace ternlab

#else  // not x86: never selected (no backend table holds it)

namespace ternlab {
void float_gemv_q8_0_avx512(const FloatGemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
