// Q6_K x int8 (q6k_int8.h): the per-call activation quantization, scratch, and
// the scalar reference kernel every SIMD kernel is tested bit-exact against.
#include "kernels/q6k_int8.h"

#include <cstring>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/q6k.h"

namespace ternlab {

namespace {

// One token: codes, s[] and the 16-value code sums; false if quant_row refused a block.
bool quantize_token(const float* x, int64_t K, int8_t* codes, float* s, int16_t* xsum) {
    const QuantRowKernel quant_row = backend().quant_row;
    for (int64_t b = 0; b < K / kQ6KBlock; ++b) {
        int32_t sum;
        if (!quant_row(x + kQ6KBlock * b, kQ6KBlock, codes + kQ6KBlock * b, &s[b], &sum)) {
            std::memset(codes, 0, static_cast<size_t>(K));  // defined data for the SIMD loops
            return false;
        }
    }
    for (int64_t g = 0; g < K / 16; ++g) {
        int32_t sum = 0;
        for (int j = 0; j < 16; ++j) sum += codes[16 * g + j];
        xsum[g] = static_cast<int16_t>(sum);
    }
    return true;
}

// isum of one block, straight from the definition.
int32_t block_isum(const uint8_t* blk, const int8_t* code) {
    uint8_t q[kQ6KBlock];
    q6k_levels(blk, q);
    const int8_t* scale = reinterpret_cast<const int8_t*>(blk + 192);
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) {
        int32_t sub = 0;
        for (int j = 16 * i; j < 16 * i + 16; ++j) sub += (q[j] - 32) * code[j];
        isum += scale[i] * sub;
    }
    return isum;
}

}  // namespace

Q6KActs q6k_quantize_acts(const float* x, int64_t T, int64_t K) {
    // Reused between calls on the same thread: no allocation per token.
    thread_local std::vector<int8_t> codes;
    thread_local std::vector<float> s;
    thread_local std::vector<int16_t> xsum;
    thread_local std::vector<uint8_t> finite;
    codes.resize(static_cast<size_t>(T * K));
    s.resize(static_cast<size_t>(T * K / kQ6KBlock));
    xsum.resize(static_cast<size_t>(T * K / 16));
    finite.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t)
        finite[t] = quantize_token(x + t * K, K, codes.data() + t * K,
                                   s.data() + t * (K / kQ6KBlock), xsum.data() + t * (K / 16));
    return {codes.data(), s.data(), xsum.data(), finite.data()};
}

void float_matmul_q6_k_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q6KActs x = q6k_quantize_acts(a.x, a.T, a.K);
    const int64_t nb = a.K / kQ6KBlock;
    for (int64_t o = o0; o < o1; ++o) {
        const uint8_t* row = a.w + o * a.row_bytes;
        for (int64_t t = 0; t < a.T; ++t) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = row + b * kQ6KBlockBytes;
                acc = q6k_accumulate(acc, block_isum(blk, x.codes + t * a.K + b * kQ6KBlock),
                                     fp16_to_fp32(load_u16(blk + 208)), x.s[t * nb + b]);
            }
            a.y[t * a.y_stride + o] = x.finite[t] ? acc : kQ6KNaN;
        }
    }
}

}  // namespace ternlab
