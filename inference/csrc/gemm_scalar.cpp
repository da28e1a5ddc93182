// The scalar reference: the plainest code that computes the product from the
// packed layout. Every SIMD kernel is tested bit-exact against it.
#include <vector>

#include "gemm.h"

namespace ternlab {

namespace {

// Code (-1, 0, +1) at column `col` of row `o` (layout in common.h).
inline int decode(const GemmArgs& a, int64_t o, int64_t col) {
    const uint8_t* sb = a.w + sb_offset(o, col / kQK, a.N, a.w_stride);
    const int shift = 2 * static_cast<int>(col % kQK / kBlockBytes);
    return ((sb[col % kBlockBytes] >> shift) & 3) - 1;
}

}  // namespace

void gemm_scalar(const GemmArgs& a, int64_t o0, int64_t o1) {
    std::vector<int8_t> codes(static_cast<size_t>(a.Kp));
    for (int64_t o = o0; o < o1; ++o) {
        // Decode the row once, then reuse it for every token.
        for (int64_t k = 0; k < a.Kp; ++k) codes[k] = static_cast<int8_t>(decode(a, o, k));
        for (int64_t t = 0; t < a.T; ++t) {
            const int8_t* x = a.x + t * a.x_stride;
            int32_t acc = 0;
            for (int64_t k = 0; k < a.Kp; ++k) acc += static_cast<int32_t>(codes[k]) * x[k];
            a.acc[t * a.acc_stride + o] = acc;
        }
    }
}

}  // namespace ternlab
