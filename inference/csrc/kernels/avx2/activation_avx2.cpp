// AVX2 + FMA gated activations (activation.h). SiLU as g * sigmoid(g) with
// e = exp(-|g|) <= 1, so the polynomial exp never overflows: g / (1 + e) for
// g >= 0 and g * e / (1 + e) below (the same value as g / (1 + exp(-g))); the
// last partial 8 values go through masked loads and stores, so every value is
// computed the same way wherever a thread's range starts or ends.
#include <cstdint>

#include "kernels/activation.h"
#include "kernels/avx2/exp_avx2.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

TL_AVX2 inline __m256 silu_times(__m256 g, __m256 u) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 e = exp_neg(_mm256_or_ps(g, sign));  // exp(-|g|)
    // blendv picks its second operand where g's sign bit is set (-0.0 and -NaN too).
    const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), g);
    return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

}  // namespace

TL_AVX2 void silu_mul_avx2(float* g, const float* u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, silu_times(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 v =
            silu_times(_mm256_maskload_ps(g + i, mask), _mm256_maskload_ps(u + i, mask));
        _mm256_maskstore_ps(g + i, mask, v);
    }
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void silu_mul_avx2(float*, const float*, int64_t) {}
}  // namespace ternlab

#endif
