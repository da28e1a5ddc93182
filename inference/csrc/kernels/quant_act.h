// Per-token activation quantization (docs/quantization.md, "Activations"):
//   m    = max(max_k |x[k]|, EPS)                      float32
//   s_x  = (1 / m) * 127                               float32, two roundings
//   code = clamp(round_half_even(x[k] * s_x), -128, 127)
// s_x is computed as PyTorch evaluates `127 / tensor` (which is
// `tensor.reciprocal() * 127`), so the codes and s_x are bit-exact with
// ternlab.bitlinear.act_quant; a single float32 division 127/m differs from it
// in the last bit for about a quarter of the inputs.
#pragma once

#include "kernels/common.h"

namespace ternlab {

constexpr float kActEps = 1e-5f;  // EPS as float32 (9.99999974738e-06)

// s_x from the row's max |x| (shared by every ISA so they cannot disagree).
inline float act_multiplier(float amax) {
    const float m = amax > kActEps ? amax : kActEps;
    const float inv = 1.0f / m;
    return inv * 127.0f;
}

bool quant_row_scalar(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum);
bool quant_row_avx2(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum);
bool quant_row_avx512(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum);
bool quant_row_neon(const float* x, int64_t k, int8_t* codes, float* s_x, int32_t* code_sum);

}  // namespace ternlab
