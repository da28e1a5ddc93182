// The scalar reference: the plainest code that computes the product from the
// packed layout. Every SIMD kernel is tested bit-exact against it.
#include <vector>

#include "kernels/gemm.h"
#include "kernels/ternary_pack.h"

namespace ternlab {

namespace {

template <Layout L>
void gemm_ref(const GemmArgs& a, int64_t o0, int64_t o1) {
    const int64_t q = codes_per_block(L);
    std::vector<int8_t> codes(static_cast<size_t>(a.Kp));
    for (int64_t o = o0; o < o1; ++o) {
        // Decode the row once, then reuse it for every token.
        for (int64_t k = 0; k < a.Kp; ++k) {
            const uint8_t* sb = a.w + sb_offset(o, k / q, a.N, a.w_stride);
            codes[k] = static_cast<int8_t>(
                unpack_field(sb[k % kBlockBytes], static_cast<int>(k % q / kBlockBytes), L));
        }
        for (int64_t t = 0; t < a.T; ++t) {
            const int8_t* x = a.x + t * a.x_stride;
            int32_t acc = 0;
            for (int64_t k = 0; k < a.Kp; ++k) acc += static_cast<int32_t>(codes[k]) * x[k];
            a.acc[t * a.acc_stride + o] = acc;
        }
    }
}

}  // namespace

void gemm_scalar(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_ref<kBits2>(a, o0, o1); }
void gemm3_scalar(const GemmArgs& a, int64_t o0, int64_t o1) { gemm_ref<kBase3>(a, o0, o1); }

}  // namespace ternlab
