// The reference gated activations (activation.h).
#include <cmath>

#include "kernels/activation.h"

namespace ternlab {

void silu_mul_scalar(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace ternlab
