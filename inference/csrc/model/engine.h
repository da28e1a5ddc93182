// The ternary linear layer of the engine, on raw pointers (no Python): the
// entry points the bindings and, later, the model runner call.
//
//   y[t, o] = float(acc[t, o]) * (scale / s_x[t]),  acc = codes_x . codes_w (int32)
//
// Rows are split over `threads` (contiguous ranges aligned to 16 rows, one per
// thread); every output element is computed by the same code whatever the
// split, so results do not depend on the thread count.
#pragma once

#include "kernels/common.h"

namespace ternlab {

// Quantizes T rows of K floats (spec: docs/quantization.md) into codes with
// row stride `stride` (>= K; columns K..stride-1 are zeroed), s_x[T] and the
// per-row code sums. Returns -1, or the first row holding a non-finite value.
int64_t quantize_rows(const float* x, int64_t T, int64_t K, int8_t* codes, int64_t stride,
                      float* s_x, int32_t* sums, int threads);

// Exact int32 products of int8 activation codes [T, K] with packed weights
// [N, packed_row_bytes(K, layout)]: out [T, N].
void matmul_int(const uint8_t* w, int64_t N, int64_t K, const int8_t* xcodes, int64_t T,
                int32_t* out, int threads, Layout layout = kBits2);

// The whole frozen BitLinear: quantize x [T, K], multiply, rescale into y [T, N].
// Returns -1, or the first row of x holding a non-finite value (y is then unspecified).
int64_t matmul_f32(const uint8_t* w, int64_t N, int64_t K, float scale, const float* x,
                   int64_t T, float* y, int threads, Layout layout = kBits2);

// One ternary matrix of a group: packed weights [N, packed_row_bytes(K, layout)],
// its scale, and its output y [T, N].
constexpr int kMaxGroup = 4;
struct TernaryMatmul {
    const uint8_t* w;
    int64_t N;
    float scale;
    float* y;
};
// matmul_f32 of 1..kMaxGroup matrices (same K and layout) on the same x: one
// quantization and one parallel pass over all their rows (q/k/v, gate/up), so a
// decode step pays one thread hand-off instead of one per matrix. Each output is
// bit-identical to matmul_f32's.
int64_t matmul_f32_group(const TernaryMatmul* mats, int n, int64_t K, const float* x,
                         int64_t T, int threads, Layout layout);

}  // namespace ternlab
