// ggml's Q6_K block (type 14, the optional quantized output head of ternlab's
// exports, export/q6k.py): 256 values in 210 bytes, ql[128] (low 4 bits),
// qh[64] (high 2 bits), int8 scales[16] (one per 16 values), fp16 d. Value
// = d * scale * (q - 32), evaluated as (d * scale) * (q - 32) like ggml's
// dequantize_row_q6_K; both products are exact in float32 (11 + 8 + 6
// significant bits), so a decoded row is exact and the float kernels treat it
// as an F32 row. q6k_int8.h multiplies the integer levels directly instead.
//
// Plain loops over bytes: the compiler vectorizes them for the ISA of the
// function they are inlined into (AVX2/AVX-512 GEMV, scalar reference).
#pragma once

#include <cstdint>
#include <cstring>

namespace ternlab {

constexpr int64_t kQ6KBlock = 256;
constexpr int64_t kQ6KBlockBytes = 210;

// Values of one block into out[0..255]; d is the block's fp16 scale as float.
inline void q6k_decode_block(const uint8_t* blk, float d, float* out) {
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int half = 0; half < 2; ++half) {
        float ds[8];
        for (int i = 0; i < 8; ++i) ds[i] = d * static_cast<float>(sc[8 * half + i]);
        const uint8_t* l = ql + 64 * half;
        const uint8_t* h = qh + 32 * half;
        float* y = out + 128 * half;
        for (int j = 0; j < 32; ++j) {
            const int q0 = ((l[j] & 0xF) | ((h[j] & 3) << 4)) - 32;
            const int q1 = ((l[j + 32] & 0xF) | (((h[j] >> 2) & 3) << 4)) - 32;
            const int q2 = ((l[j] >> 4) | (((h[j] >> 4) & 3) << 4)) - 32;
            const int q3 = ((l[j + 32] >> 4) | (((h[j] >> 6) & 3) << 4)) - 32;
            const int is = j / 16;
            y[j] = ds[is] * static_cast<float>(q0);
            y[j + 32] = ds[is + 2] * static_cast<float>(q1);
            y[j + 64] = ds[is + 4] * static_cast<float>(q2);
            y[j + 96] = ds[is + 6] * static_cast<float>(q3);
        }
    }
}

// The levels q (0..63, value = d * scale * (q - 32)) of one block into
// q[0..255], in value order: the same bit fields q6k_decode_block reads.
inline void q6k_levels(const uint8_t* blk, uint8_t* q) {
    for (int half = 0; half < 2; ++half) {
        const uint8_t* l = blk + 64 * half;
        const uint8_t* h = blk + 128 + 32 * half;
        uint8_t* y = q + 128 * half;
        for (int j = 0; j < 32; ++j) {
            y[j] = static_cast<uint8_t>((l[j] & 0xF) | ((h[j] & 3) << 4));
            y[j + 32] = static_cast<uint8_t>((l[j + 32] & 0xF) | (((h[j] >> 2) & 3) << 4));
            y[j + 64] = static_cast<uint8_t>((l[j] >> 4) | (((h[j] >> 4) & 3) << 4));
            y[j + 96] = static_cast<uint8_t>((l[j + 32] >> 4) | (((h[j] >> 6) & 3) << 4));
        }
    }
}

}  // namespace ternlab
