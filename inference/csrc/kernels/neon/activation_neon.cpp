// NEON gated activations (activation.h): SiLU as activation_avx2.cpp computes it,
// g * sigmoid(g) from e = exp(-|g|) <= 1, four values a step; the last partial
// step goes through a zero-padded copy, so every value is computed the same way
// wherever a thread's range starts or ends.
#include <cstdint>

#include "kernels/activation.h"
#include "kernels/isa.h"
#include "kernels/neon/exp_neon.h"

#if TERNLAB_NEON

namespace ternlab {

namespace {

inline float32x4_t silu_times(float32x4_t g, float32x4_t u) {
    const float32x4_t e = exp_neg(vnegq_f32(vabsq_f32(g)));  // exp(-|g|)
    // g's sign bit set (-0.0 and -NaN too): g * e; else g.
    const uint32x4_t neg = vcltzq_s32(vreinterpretq_s32_f32(g));
    const float32x4_t num = vbslq_f32(neg, vmulq_f32(g, e), g);
    return vmulq_f32(vdivq_f32(num, vaddq_f32(vdupq_n_f32(1.0f), e)), u);
}

}  // namespace

void silu_mul_neon(float* g, const float* u, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(g + i, silu_times(vld1q_f32(g + i), vld1q_f32(u + i)));
    if (i < n) {
        float gt[4] = {}, ut[4] = {};
        for (int64_t j = 0; j < n - i; ++j) gt[j] = g[i + j], ut[j] = u[i + j];
        vst1q_f32(gt, silu_times(vld1q_f32(gt), vld1q_f32(ut)));
        for (int64_t j = 0; j < n - i; ++j) g[i + j] = gt[j];
    }
}

}  // namespace ternlab

#else  // not aarch64: never selected by dispatch.cpp

namespace ternlab {
void silu_mul_neon(float*, const float*, int64_t) {}
}  // namespace ternlab

#endif
