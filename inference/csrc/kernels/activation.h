// Gated FFN activations: g[i] = act(g[i]) * u[i] for n values. SiLU's exp is the
// cost of the step between the gate/up and down projections (one std::exp per
// value, serial at decode: several per cent of a SiLU model's token on 2 AVX2
// cores, docs/engine-kernels.md), so it is a kernel family of its own. The
// scalar kernel is the reference: x / (1 + exp(-x)) with std::exp; the AVX2 and
// NEON ones agree within a few float32 ulp (their exp is a polynomial within 2
// ulp of std::exp; below g = -87 it gives 0, where the reference's result is
// under 1e-36) and give the same infinities and NaNs.
#pragma once

#include <cstdint>

namespace ternlab {

using GatedActKernel = void (*)(float* g, const float* u, int64_t n);

void silu_mul_scalar(float* g, const float* u, int64_t n);
void silu_mul_avx2(float* g, const float* u, int64_t n);  // AVX2 + FMA
void silu_mul_neon(float* g, const float* u, int64_t n);  // aarch64 AdvSIMD

}  // namespace ternlab
