#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/dispatch.h"

namespace ternlab {

void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* out) {
    for (int64_t t = 0; t < T; ++t) {
        const float* xr = x + t * n;
        float* yr = out + t * n;
        double ss[4] = {0.0, 0.0, 0.0, 0.0};  // four chains: not bound by add latency
        int64_t i = 0;
        for (; i + 4 <= n; i += 4)
            for (int j = 0; j < 4; ++j) ss[j] += static_cast<double>(xr[i + j]) * xr[i + j];
        for (; i < n; ++i) ss[0] += static_cast<double>(xr[i]) * xr[i];
        const double sum = (ss[0] + ss[1]) + (ss[2] + ss[3]);
        const float var = static_cast<float>(sum / static_cast<double>(n));
        const float r = 1.0f / std::sqrt(var + eps);  // torch.rsqrt in float32
        for (int64_t k = 0; k < n; ++k) yr[k] = (xr[k] * r) * w[k];
    }
}

void RopeTable::build(int64_t n_ctx_, int64_t head_dim, double base) {
    n_ctx = n_ctx_;
    half = head_dim / 2;
    cos.assign(static_cast<size_t>(n_ctx * half), 0.0f);
    sin.assign(static_cast<size_t>(n_ctx * half), 0.0f);
    // transformers: inv_freq = 1 / base ** (arange(0, dim, 2).float() / dim), all float32.
    const float base_f = static_cast<float>(base);
    std::vector<float> inv(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv[i] = 1.0f / std::pow(base_f, e);
    }
    for (int64_t p = 0; p < n_ctx; ++p) {
        for (int64_t i = 0; i < half; ++i) {
            const float angle = static_cast<float>(p) * inv[i];  // float32 product, as in training
            cos[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            sin[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
    }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const RopeTable& t, int64_t pos,
          bool neox) {
    const int64_t half = head_dim / 2;
    const float* c = t.cos.data() + pos * t.half;
    const float* s = t.sin.data() + pos * t.half;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        if (neox) {
            // q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1)
            for (int64_t i = 0; i < half; ++i) {
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c[i] - x1 * s[i];
                v[i + half] = x1 * c[i] + x0 * s[i];
            }
        } else {
            // ggml's normal mode: consecutive pairs
            for (int64_t i = 0; i < half; ++i) {
                const float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * c[i] - x1 * s[i];
                v[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

void silu_mul(float* g, const float* u, int64_t n) { backend().silu_mul(g, u, n); }

void relu2_mul(float* __restrict g, const float* __restrict u, int64_t n) {
    // relu on the bits: branch-free (a branch on the sign mispredicts half the
    // time) and vectorizable (float compares are not, under -ftrapping-math).
    // Negative values (not NaN: NaN stays NaN, as in torch.relu) become +0.
    for (int64_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, &g[i], sizeof b);
        const int32_t negative = static_cast<int32_t>(b) < 0 && (b & 0x7fffffffu) <= 0x7f800000u;
        b &= static_cast<uint32_t>(negative) - 1u;
        float r;
        std::memcpy(&r, &b, sizeof r);
        g[i] = r * r * u[i];
    }
}

float dot(const float* a, const float* b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

bool all_finite(const float* x, int64_t n) {
    // x * 0 is 0 for finite x and NaN otherwise; lane-wise sums keep the loop
    // branch-free and vectorizable.
    float z[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) z[j] += x[i + j] * 0.0f;
    float s = 0.0f;
    for (int j = 0; j < 8; ++j) s += z[j];
    for (; i < n; ++i) s += x[i] * 0.0f;
    return s == 0.0f;
}

}  // namespace ternlab
