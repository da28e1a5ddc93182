// The scalar reference of the float kernels (any T), the fp16 conversion and
// the row decoding shared with dequantize_row. Also the fallback on CPUs
// without AVX2: 8 independent lanes so the compiler can vectorize it with SSE2.
#include <cstring>
#include <vector>

#include "kernels/float_matmul.h"
#include "kernels/q6k.h"

namespace ternlab {

namespace {

constexpr int kLanes = 8;

// Lane l sums the columns k = l (mod 8) in increasing k (separate multiply and
// add: -ffp-contract=off), then a fixed tree adds the lanes.
float dot(const float* w, const float* x, int64_t k) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= k; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += w[i + l] * x[i + l];
    for (int l = 0; i + l < k; ++l) acc[l] += w[i + l] * x[i + l];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

// Every row is decoded once into float32 and reused by all tokens.
void matmul(FloatFormat fmt, const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    float* row = float_scratch(a.K);
    for (int64_t o = o0; o < o1; ++o) {
        float_row_to_f32(fmt, a.w + o * a.row_bytes, a.K, row);
        for (int64_t t = 0; t < a.T; ++t) a.y[t * a.y_stride + o] = dot(row, a.x + t * a.K, a.K);
    }
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    float f;
    if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float32
        f = static_cast<float>(mant) * 5.9604644775390625e-8f;
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        bits |= sign;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    }
    const uint32_t bits = exp == 0x1f ? sign | 0x7f800000u | (mant << 13)  // inf, NaN
                                      : sign | ((exp + 112) << 23) | (mant << 13);
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u)  // NaN: quiet, the payload's top bits kept
        return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
    if (a >= 0x38800000u) {  // a normal half (>= 2^-14): drop 13 bits, ties to even;
        // a carry out of the mantissa moves into the exponent, as it should
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return static_cast<uint16_t>(sign | ((r - (112u << 23)) >> 13));
    }
    // A subnormal half m * 2^-24: m = round(|f| * 2^24) = mant >> (126 - e), ties to
    // even (m = 1024 is the smallest normal half, which that encoding also is).
    const uint32_t e = a >> 23;
    if (e < 102) return sign;  // |f| < 2^-25: rounds to zero
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;  // 14..24
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
}

void float_row_to_f32(FloatFormat fmt, const uint8_t* src, int64_t k, float* out) {
    if (fmt == kFmtF32) {
        std::memcpy(out, src, static_cast<size_t>(k) * sizeof(float));
    } else if (fmt == kFmtF16) {
        for (int64_t i = 0; i < k; ++i) out[i] = fp16_to_fp32(load_u16(src + 2 * i));
    } else if (fmt == kFmtQ4_0) {
        for (int64_t b = 0; b < k / kQ4Block; ++b) {
            const uint8_t* blk = src + b * kQ4BlockBytes;
            const float d = fp16_to_fp32(load_u16(blk));
            for (int64_t i = 0; i < 16; ++i) {  // as ggml's dequantize_row_q4_0
                out[b * kQ4Block + i] = static_cast<float>((blk[2 + i] & 0xF) - 8) * d;
                out[b * kQ4Block + 16 + i] = static_cast<float>((blk[2 + i] >> 4) - 8) * d;
            }
        }
    } else if (fmt == kFmtQ6_K) {
        for (int64_t b = 0; b < k / kQ6KBlock; ++b) {
            const uint8_t* blk = src + b * kQ6KBlockBytes;
            q6k_decode_block(blk, fp16_to_fp32(load_u16(blk + 208)), out + b * kQ6KBlock);
        }
    } else {
        for (int64_t b = 0; b < k / kQ8Block; ++b) {
            const uint8_t* blk = src + b * kQ8BlockBytes;
            const float d = fp16_to_fp32(load_u16(blk));
            for (int64_t i = 0; i < kQ8Block; ++i)
                out[b * kQ8Block + i] = static_cast<float>(static_cast<int8_t>(blk[2 + i])) * d;
        }
    }
}

float* float_scratch(int64_t n) {
    // Reused between calls on the same thread: no allocation per token.
    thread_local std::vector<float> buf;
    const size_t need = static_cast<size_t>(n) + 16;
    if (buf.size() < need) buf.resize(need);
    // 64-byte align inside the buffer (vector storage is only 16-byte aligned).
    const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
}

void float_matmul_f32_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    matmul(kFmtF32, a, o0, o1);
}
void float_matmul_f16_scalar(const FloatGemmArgs& a, int64_t o0, int64_t o1) {
    matmul(kFmtF16, a, o0, o1);
}

}  // namespace ternlab
