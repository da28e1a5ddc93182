// Q8_0 x int8 (q8_0_int8.h): the per-call activation quantization, scratch, and
// the scalar reference kernel every SIMD kernel is tested bit-exact against.
#include "kernels/q8_0_int8.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dispatch.h"

namespace ternlab {

namespace {

// One token's blocks: codes, r_j and (if off) the lanes' offsets; false if
// quant_row refused a block.
bool quantize_token(const float* x, int64_t K, int8_t* codes, float* r, int32_t* off) {
    if (!int8_quantize_blocks(backend().quant_row, x, K, kQ8Block, codes, r)) return false;
    if (off == nullptr) return true;
    for (int64_t j = 0; j < K / kQ8Block; ++j) {
        const int8_t* c = codes + kQ8Block * j;
        for (int l = 0; l < 8; ++l)
            off[8 * j + l] = -128 * (c[4 * l] + c[4 * l + 1] + c[4 * l + 2] + c[4 * l + 3]);
    }
    return true;
}

// y of one repacked row and one token, straight from the definition.
float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r) {
    const int64_t nb = K / kQ8Block;
    float acc[2][8] = {};
    for (int64_t g0 = 0; g0 < nb; g0 += kQ80GroupBlocks) {
        const int64_t n = nb - g0 < kQ80GroupBlocks ? nb - g0 : kQ80GroupBlocks;
        const uint8_t* group = row + kQ8BlockBytes * g0;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t b = g0 + i;
            const int8_t* q = reinterpret_cast<const int8_t*>(group + 2 * n + kQ8Block * i);
            const int8_t* c = codes + kQ8Block * b;
            const float f = fp16_to_fp32(load_u16(group + 2 * i)) * r[b];
            for (int l = 0; l < 8; ++l) {
                int32_t p = 0;
                for (int v = 4 * l; v < 4 * l + 4; ++v) p += q[v] * c[v];
                acc[b & 1][l] = std::fmaf(static_cast<float>(p), f, acc[b & 1][l]);
            }
        }
    }
    return int8_lanes_reduce(acc[0], acc[1]);
}

}  // namespace

void q80_repack_row(const uint8_t* src, int64_t K, uint8_t* dst) {
    int8_repack_groups(src, K / kQ8Block, kQ80GroupBlocks, kQ8BlockBytes, dst);
}

Q80Acts q80_quantize_acts(const float* x, int64_t T, int64_t K, bool offsets) {
    // Reused between calls on the same thread: no allocation per token.
    thread_local std::vector<int8_t> codes;
    thread_local std::vector<float> r;
    thread_local std::vector<int32_t> off;
    thread_local std::vector<uint8_t> finite;
    const int64_t nb = K / kQ8Block;
    codes.resize(static_cast<size_t>(T * K));
    r.assign(static_cast<size_t>(T * nb + kQ80GroupBlocks), 0.0f);
    off.resize(offsets ? static_cast<size_t>(T * nb * 8) : 0);
    finite.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t)
        finite[t] = quantize_token(x + t * K, K, codes.data() + t * K, r.data() + t * nb,
                                   offsets ? off.data() + t * nb * 8 : nullptr);
    return {codes.data(), r.data(), offsets ? off.data() : nullptr, finite.data()};
}

void float_matmul_q8_0_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q80Acts x = q80_quantize_acts(a.x, a.T, a.K, false);
    const int64_t nb = a.K / kQ8Block;
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t t = 0; t < a.T; ++t)
            a.y[t * a.y_stride + o] =
                x.finite[t] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes + t * a.K, x.r + t * nb)
                            : kInt8RefusedToken;
}

}  // namespace ternlab
