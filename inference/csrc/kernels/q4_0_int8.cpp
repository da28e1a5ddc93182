// Q4_0 x int8 (q4_0_int8.h): the per-call activation quantization, scratch, and
// the scalar reference kernel every SIMD kernel is tested bit-exact against.
#include "kernels/q4_0_int8.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dispatch.h"

namespace ternlab {

namespace {

// One token's blocks in value order: codes, r_j and the lanes' offsets; false if
// quant_row refused a block.
bool quantize_token(const float* x, int64_t K, int8_t* codes, float* r, int32_t* off) {
    if (!int8_quantize_blocks(backend().quant_row, x, K, kQ4Block, codes, r)) return false;
    for (int64_t j = 0; j < K / kQ4Block; ++j) {
        const int8_t* c = codes + kQ4Block * j;
        for (int m = 0; m < 4; ++m) {
            int32_t lane = 0;
            for (int i = 0; i < 4; ++i) lane += c[4 * m + i] + c[16 + 4 * m + i];
            off[4 * j + m] = 8 * lane;
        }
    }
    return true;
}

// Value order -> groups of `group` blocks (q4_0_int8.h), in place through `tmp`.
void group_codes(int8_t* codes, int64_t K, int group, std::vector<int8_t>& tmp) {
    if (group == 1) return;
    tmp.assign(codes, codes + K);
    const int64_t nb = K / kQ4Block;
    for (int64_t g = 0; g < nb; g += group) {
        const int64_t n = nb - g < group ? nb - g : group;
        int8_t* dst = codes + kQ4Block * g;
        for (int64_t i = 0; i < n; ++i) {
            const int8_t* src = tmp.data() + kQ4Block * (g + i);
            std::memcpy(dst + 16 * i, src, 16);
            std::memcpy(dst + 16 * (n + i), src + 16, 16);
        }
    }
}

// P_p[l] of q4_0_int8.h for one pair: nibbles of its blocks at qs (16 bytes each),
// codes in value order.
void pair_lanes(const uint8_t* qs, const int8_t* code0, int32_t* lanes) {
    for (int l = 0; l < 8; ++l) {
        const uint8_t* q = qs + 16 * (l / 4);
        const int8_t* c = code0 + kQ4Block * (l / 4);
        const int m = l % 4;
        int32_t p = 0;
        for (int i = 4 * m; i < 4 * m + 4; ++i)
            p += ((q[i] & 0xF) - 8) * c[i] + ((q[i] >> 4) - 8) * c[16 + i];
        lanes[l] = p;
    }
}

// y of one repacked row and one token, straight from the definition.
float row_dot(const uint8_t* row, int64_t K, const int8_t* codes, const float* r) {
    const int64_t nb = K / kQ4Block;
    float acc[2][8] = {};
    for (int64_t g0 = 0; g0 < nb; g0 += kQ40GroupBlocks) {
        const int64_t n = nb - g0 < kQ40GroupBlocks ? nb - g0 : kQ40GroupBlocks;
        const uint8_t* group = row + kQ4BlockBytes * g0;
        for (int64_t i = 0; i < n; i += 2) {
            const int64_t p = (g0 + i) / 2, b = g0 + i;
            int32_t lanes[8];
            pair_lanes(group + 2 * n + 16 * i, codes + kQ4Block * b, lanes);
            const float f[2] = {fp16_to_fp32(load_u16(group + 2 * i)) * r[b],
                                fp16_to_fp32(load_u16(group + 2 * i + 2)) * r[b + 1]};
            for (int l = 0; l < 8; ++l)
                acc[p & 1][l] = std::fmaf(static_cast<float>(lanes[l]), f[l / 4], acc[p & 1][l]);
        }
    }
    return int8_lanes_reduce(acc[0], acc[1]);
}

}  // namespace

void q40_repack_row(const uint8_t* src, int64_t K, uint8_t* dst) {
    int8_repack_groups(src, K / kQ4Block, kQ40GroupBlocks, kQ4BlockBytes, dst);
}

Q40Acts q40_quantize_acts(const float* x, int64_t T, int64_t K, int group) {
    // Reused between calls on the same thread: no allocation per token.
    thread_local std::vector<int8_t> codes, tmp;
    thread_local std::vector<float> r;
    thread_local std::vector<int32_t> off;
    thread_local std::vector<uint8_t> finite;
    codes.resize(static_cast<size_t>(T * K));
    r.assign(static_cast<size_t>(T * K / kQ4Block + kQ40GroupBlocks), 0.0f);
    off.resize(static_cast<size_t>(T * K / kQ4Block * 4));
    finite.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
        int8_t* c = codes.data() + t * K;
        finite[t] = quantize_token(x + t * K, K, c, r.data() + t * (K / kQ4Block),
                                   off.data() + t * (K / kQ4Block * 4));
        group_codes(c, K, group, tmp);
    }
    return {codes.data(), r.data(), off.data(), finite.data()};
}

void float_matmul_q4_0_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    const Q40Acts x = q40_quantize_acts(a.x, a.T, a.K, 1);
    const int64_t nb = a.K / kQ4Block;
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t t = 0; t < a.T; ++t)
            a.y[t * a.y_stride + o] =
                x.finite[t] ? row_dot(a.w + o * a.row_bytes, a.K, x.codes + t * a.K, x.r + t * nb)
                            : kInt8RefusedToken;
}

}  // namespace ternlab
