// Attention over the KV cache: the work split (token, KV head) over threads,
// the scalar reference kernels, and the choice of kernels.
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/attention_kernels.h"
#include "kernels/dispatch.h"
#include "kernels/float_matmul.h"
#include "model/ops.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

void scores_scalar(const float* q, int G, const float* k, int64_t n, int64_t hd, float scale,
                   float* s, int64_t s_stride, float* mx) {
    for (int g = 0; g < G; ++g) {
        float m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
            const float v = dot(q + g * hd, k + j * hd, hd) * scale;
            s[g * s_stride + j] = v;
            m = std::max(m, v);
        }
        mx[g] = m;
    }
}

void weighted_sum_scalar(const float* p, int G, int64_t p_stride, const float* vt,
                         int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    for (int g = 0; g < G; ++g)
        for (int64_t d = 0; d < hd; ++d)
            out[g * hd + d] = dot(p + g * p_stride, vt + d * vt_stride, n);
}

// The f16 reference: each cached row (a K row, a V^T row) widened exactly into a
// per-thread buffer once, then the float32 reference's dot() for the G heads; so
// equal, bit for bit, to the float32 reference on the widened cache.
float* widen_row(const uint16_t* h, int64_t n) {
    thread_local std::vector<float> row;
    if (static_cast<int64_t>(row.size()) < n) row.resize(static_cast<size_t>(n));
    float* out = row.data();
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32_inline(h[i]);
    return out;
}

void scores_f16_scalar(const float* q, int G, const uint16_t* k, int64_t n, int64_t hd,
                       float scale, float* s, int64_t s_stride, float* mx) {
    for (int g = 0; g < G; ++g) mx[g] = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
        const float* kj = widen_row(k + j * hd, hd);
        for (int g = 0; g < G; ++g) {
            const float v = dot(q + g * hd, kj, hd) * scale;
            s[g * s_stride + j] = v;
            mx[g] = std::max(mx[g], v);
        }
    }
}

void weighted_sum_f16_scalar(const float* p, int G, int64_t p_stride, const uint16_t* vt,
                             int64_t vt_stride, int64_t n, int64_t hd, float* out) {
    for (int64_t d = 0; d < hd; ++d) {
        const float* vd = widen_row(vt + d * vt_stride, n);
        for (int g = 0; g < G; ++g) out[g * hd + d] = dot(p + g * p_stride, vd, n);
    }
}

// softmax as torch computes it in float32: exp(s - max), then divide by the sum.
void softmax_scalar(float* s, int64_t n, float mx) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
    }
    for (int64_t j = 0; j < n; ++j) s[j] /= sum;
}

// The query heads of token t that share KV head `kvh`, in groups of kGroup.
void attend(const AttentionArgs& a, const AttentionKernels& kern, int64_t t, int64_t kvh,
            float* s) {
    const int64_t hd = a.head_dim, rep = a.n_head / a.n_head_kv;
    const int64_t n = a.pos0 + t + 1;
    const int64_t k0 = kvh * a.n_ctx * hd, v0 = kvh * hd * a.n_ctx;  // this head's cache
    for (int64_t r0 = 0; r0 < rep; r0 += kGroup) {
        const int G = static_cast<int>(std::min<int64_t>(kGroup, rep - r0));
        const int64_t head = t * a.n_head + kvh * rep + r0;
        const float* q = a.q + head * hd;
        float* out = a.out + head * hd;
        float mx[kGroup];
        if (a.k16) {
            kern.scores_f16(q, G, a.k16 + k0, n, hd, a.scale, s, a.n_ctx, mx);
            for (int g = 0; g < G; ++g) kern.softmax(s + g * a.n_ctx, n, mx[g]);
            kern.weighted_sum_f16(s, G, a.n_ctx, a.v16 + v0, a.n_ctx, n, hd, out);
        } else {
            kern.scores(q, G, a.k + k0, n, hd, a.scale, s, a.n_ctx, mx);
            for (int g = 0; g < G; ++g) kern.softmax(s + g * a.n_ctx, n, mx[g]);
            kern.weighted_sum(s, G, a.n_ctx, a.v + v0, a.n_ctx, n, hd, out);
        }
    }
}

}  // namespace

const AttentionKernels kAttentionScalar = {scores_scalar, softmax_scalar, weighted_sum_scalar,
                                           scores_f16_scalar, weighted_sum_f16_scalar};

KvType parse_kv_type(const std::string& name) {
    if (name == "f32") return kKvF32;
    if (name == "f16") return kKvF16;
    throw std::invalid_argument("kv_type must be 'f32' or 'f16', got '" + name + "'");
}

const char* kv_type_name(KvType t) { return t == kKvF16 ? "f16" : "f32"; }

int64_t kv_type_bytes(KvType t) { return t == kKvF16 ? 2 : 4; }

int64_t attention_scratch_floats(int threads, int64_t n_ctx) {
    return static_cast<int64_t>(threads) * kGroup * n_ctx;
}

void attention(const AttentionArgs& a, int threads) { attention_batch(&a, 1, threads); }

void attention_batch(const AttentionArgs* a, int64_t n, int threads) {
    if (n < 1) return;
    const AttentionKernels& kern = attention_kernels(a[0].head_dim);
    const int64_t nkv = a[0].n_head_kv;
    // end[i]: items of calls [0, i]; a call has T * n_head_kv items.
    thread_local std::vector<int64_t> end;
    end.resize(static_cast<size_t>(n));
    int64_t items = 0;
    for (int64_t i = 0; i < n; ++i) end[static_cast<size_t>(i)] = items += a[i].T * nkv;
    if (items == 0) return;
    const int64_t* ends = end.data();
    const int tasks = static_cast<int>(std::min<int64_t>(std::max(threads, 1), items));
    // Striped items: in a prefill later tokens see more positions, so striping
    // balances the causal triangle across threads.
    parallel_for(tasks, [&](int w) {
        float* s = a[0].scratch + static_cast<int64_t>(w) * kGroup * a[0].n_ctx;
        int64_t c = 0;
        for (int64_t i = w; i < items; i += tasks) {
            while (i >= ends[c]) ++c;
            const int64_t j = i - (c ? ends[c - 1] : 0);
            attend(a[c], kern, j / nkv, j % nkv, s);
        }
    });
}

// The SIMD kernels go with the current backend (set_isa("scalar") in tests
// selects the reference here too); a head size they do not take gets the reference.
const AttentionKernels& attention_kernels(int64_t head_dim) {
    const Backend& b = backend();
    return head_dim % b.attention_lanes == 0 ? *b.attention : kAttentionScalar;
}

const char* attention_kernel_isa(int64_t head_dim) {
    const AttentionKernels* k = &attention_kernels(head_dim);
#if defined(__x86_64__) || defined(__i386__)
    if (k == &kAttentionAvx2) return "avx2";
#endif
#if defined(__aarch64__)
    if (k == &kAttentionNeon) return "neon";
#endif
    return "scalar";
}

}  // namespace ternlab
