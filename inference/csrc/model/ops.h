// The small float32 steps of the transformer (model.cpp): RMSNorm, RoPE, the
// gated FFN activations, dot products. Row-wise, single-threaded, no
// allocation; loops are written so the compiler vectorizes them without
// reassociating (fixed lane-wise partial sums), which keeps results
// independent of the thread count.
#pragma once

#include <cstdint>
#include <vector>

namespace ternlab {

// out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w for T rows of n values, as
// transformers' LlamaRMSNorm/BitNetRMSNorm in float32 (the mean of squares is
// accumulated in double, then rounded: at most 1 ulp from PyTorch's float sum).
// `out` may equal `x`.
void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* out);

// Rotary position tables for positions [0, n_ctx): cos/sin of pos * inv_freq[i],
// i < head_dim / 2. The angles are those transformers computes: inv_freq and
// the product pos * inv_freq rounded to float32 (what the model saw in
// training); cos/sin are then evaluated in double and rounded once.
struct RopeTable {
    int64_t n_ctx = 0, half = 0;
    std::vector<float> cos, sin;  // [n_ctx][half]
    void build(int64_t n_ctx, int64_t head_dim, double base);
};

// Rotates `n_heads` heads of `head_dim` values at `x` (one token at `pos`).
// neox: pairs (i, i + head_dim/2), transformers' rotate_half; else the
// interleaved pairs (2i, 2i + 1) of ggml's normal mode (llama GGUFs, whose
// q/k rows the converter permuted for it).
void rope(float* x, int64_t n_heads, int64_t head_dim, const RopeTable& t, int64_t pos, bool neox);

// g[i] = act(g[i]) * u[i] for n values; act is SiLU (x / (1 + exp(-x)), the
// current ISA's kernel: kernels/activation.h) or ReLU² (relu(x)^2).
void silu_mul(float* g, const float* u, int64_t n);
void relu2_mul(float* g, const float* u, int64_t n);

// sum a[i] * b[i] in float32 with 8 fixed lane accumulators.
float dot(const float* a, const float* b, int64_t n);

// True if all n values are finite.
bool all_finite(const float* x, int64_t n);

}  // namespace ternlab
