// Running a Model: the forward pass over a chunk of tokens (embedding, layers,
// head) and the KV-cache bookkeeping. Loading lives in model_load.cpp.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attention.h"
#include "dispatch.h"
#include "model_impl.h"
#include "ops.h"

namespace ternlab {

namespace {

// A non-finite input to a matmul, reported with where it happened.
struct NonFinite {
    std::string where;
    int64_t token;
};

// ys[i] = x @ Ws[i]^T for T rows, the weights sharing the input x (one thread
// hand-off for q/k/v, gate/up); throws NonFinite naming the first weight's input.
template <int N>
void matmul(const ModelState& m, const Linear* const (&ws)[N], const float* x, int64_t T,
            float* const (&ys)[N]) {
    int64_t bad = linear_forward_group(ws, N, x, T, ys, m.threads);  // checks ternary inputs
    // Float weights multiply whatever they get: check their input here.
    for (int64_t t = 0; t < T && bad < 0 && !ws[0]->ternary; ++t)
        if (!all_finite(x + t * ws[0]->n_in, ws[0]->n_in)) bad = t;
    if (bad >= 0) throw NonFinite{"the input of " + ws[0]->name, bad};
}

void matmul(const ModelState& m, const Linear& w, const float* x, int64_t T, float* y) {
    matmul<1>(m, {&w}, x, T, {y});
}

void add(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// Keys and values of tokens [0, T) at positions pos0.. into the layer's cache
// (layout: attention.h).
void store_kv(ModelState& m, int64_t l, int64_t pos0, int64_t T) {
    const int64_t hd = m.c.head_dim, kv = m.kv_dim();
    for (int64_t h = 0; h < m.c.n_head_kv; ++h) {
        float* kc = m.k_layer(l) + h * m.n_ctx * hd;
        float* vt = m.v_layer(l) + h * hd * m.n_ctx;
        for (int64_t t = 0; t < T; ++t) {
            const float* kr = m.k.data() + t * kv + h * hd;
            const float* vr = m.v.data() + t * kv + h * hd;
            std::copy(kr, kr + hd, kc + (pos0 + t) * hd);
            for (int64_t d = 0; d < hd; ++d) vt[d * m.n_ctx + pos0 + t] = vr[d];
        }
    }
}

void attention_block(ModelState& m, int64_t l, int64_t pos0, int64_t T) {
    const ModelConfig& c = m.c;
    const Layer& L = m.layers[l];
    const int64_t nq = c.n_head * c.head_dim;
    rms_norm(m.x.data(), L.attn_norm.data(), T, c.n_embd, static_cast<float>(c.rms_eps),
             m.h.data());
    matmul<3>(m, {&L.q, &L.k, &L.v}, m.h.data(), T, {m.q.data(), m.k.data(), m.v.data()});
    for (int64_t t = 0; t < T; ++t) {
        rope(m.q.data() + t * nq, c.n_head, c.head_dim, m.rope, pos0 + t, c.neox_rope);
        rope(m.k.data() + t * m.kv_dim(), c.n_head_kv, c.head_dim, m.rope, pos0 + t,
             c.neox_rope);
    }
    store_kv(m, l, pos0, T);
    AttentionArgs a;
    a.q = m.q.data();
    a.k = m.k_layer(l);
    a.v = m.v_layer(l);
    a.out = m.att.data();
    a.scratch = m.scores.data();
    a.T = T, a.pos0 = pos0;
    a.n_head = c.n_head, a.n_head_kv = c.n_head_kv, a.head_dim = c.head_dim;
    a.n_ctx = m.n_ctx;
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
    attention(a, m.threads);
    if (c.sub_norm)
        rms_norm(m.att.data(), L.attn_sub_norm.data(), T, nq, static_cast<float>(c.rms_eps),
                 m.att.data());
    matmul(m, L.o, m.att.data(), T, m.h.data());
    add(m.x.data(), m.h.data(), T * c.n_embd);
}

void ffn_block(ModelState& m, int64_t l, int64_t T) {
    const ModelConfig& c = m.c;
    const Layer& L = m.layers[l];
    const float eps = static_cast<float>(c.rms_eps);
    rms_norm(m.x.data(), L.ffn_norm.data(), T, c.n_embd, eps, m.h.data());
    matmul<2>(m, {&L.gate, &L.up}, m.h.data(), T, {m.g.data(), m.u.data()});
    if (c.relu2)
        relu2_mul(m.g.data(), m.u.data(), T * c.n_ff);
    else
        silu_mul(m.g.data(), m.u.data(), T * c.n_ff);
    if (c.sub_norm) rms_norm(m.g.data(), L.ffn_sub_norm.data(), T, c.n_ff, eps, m.g.data());
    matmul(m, L.down, m.g.data(), T, m.h.data());
    add(m.x.data(), m.h.data(), T * c.n_embd);
}

// Logits of rows [r0, r0 + n) of the chunk's hidden states into `out`.
void head(ModelState& m, int64_t r0, int64_t n, float* out) {
    const int64_t e = m.c.n_embd;
    rms_norm(m.x.data() + r0 * e, m.output_norm.data(), n, e, static_cast<float>(m.c.rms_eps),
             m.h.data());
    matmul(m, m.head, m.h.data(), n, out);
}

// One chunk of T <= batch tokens at positions pos0..; writes the logits of all
// rows (all_logits) or of the last row, or none for logits == nullptr.
void forward(ModelState& m, const int32_t* tokens, int64_t T, int64_t pos0, bool all_logits,
             float* logits) {
    const int64_t e = m.c.n_embd;
    for (int64_t t = 0; t < T; ++t) dequantize_row(*m.embd, tokens[t], m.x.data() + t * e);
    for (int64_t l = 0; l < m.c.n_layer; ++l) {
        try {
            attention_block(m, l, pos0, T);
            ffn_block(m, l, T);
        } catch (NonFinite& nf) {
            nf.where += " in layer " + std::to_string(l);
            throw;
        }
    }
    if (!logits) return;
    try {
        if (all_logits)
            head(m, 0, T, logits);
        else
            head(m, T - 1, 1, logits);
    } catch (NonFinite& nf) {
        if (!all_logits) nf.token = T - 1;
        throw;
    }
}

}  // namespace

struct Model::Impl : ModelState {};

Model::Model(const std::string& path, int threads, int64_t n_ctx, const std::string& layout)
    : impl_(std::make_unique<Impl>()) {
    load_model(*impl_, path, threads, n_ctx, parse_layout(layout));
}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->c; }
const GgufFile& Model::file() const { return *impl_->file; }
int64_t Model::n_ctx() const { return impl_->n_ctx; }
int64_t Model::n_past() const { return impl_->n_past; }
int Model::threads() const { return impl_->threads; }
const char* Model::layout() const { return layout_name(impl_->layout); }

void Model::set_threads(int threads) {
    check_model_threads(threads);
    impl_->scores.assign(static_cast<size_t>(attention_scratch_floats(threads, impl_->n_ctx)),
                         0.0f);
    impl_->threads = threads;
}

void Model::truncate(int64_t n) {
    if (n < 0 || n > impl_->n_past)
        throw std::invalid_argument("truncate(n): n must be in [0, n_past = " +
                                    std::to_string(impl_->n_past) + "], got " + std::to_string(n));
    impl_->n_past = n;
}

void Model::eval(const int32_t* tokens, int64_t T, bool all_logits, float* logits) {
    ModelState& m = *impl_;
    if (T < 1) throw std::invalid_argument("eval: no tokens (T = " + std::to_string(T) + ")");
    for (int64_t t = 0; t < T; ++t)
        if (tokens[t] < 0 || tokens[t] >= m.c.n_vocab)
            throw std::invalid_argument("eval: token id " + std::to_string(tokens[t]) +
                                        " at index " + std::to_string(t) +
                                        " is outside the vocabulary [0, " +
                                        std::to_string(m.c.n_vocab) + ")");
    if (T > m.n_ctx - m.n_past)
        throw std::invalid_argument(
            "eval: context overflow: n_past = " + std::to_string(m.n_past) + " + " +
            std::to_string(T) + " new tokens > n_ctx = " + std::to_string(m.n_ctx) +
            "; call truncate() or load the model with a larger n_ctx");
    const int64_t start = m.n_past;
    try {
        for (int64_t t0 = 0; t0 < T; t0 += m.batch) {
            const int64_t n = std::min(m.batch, T - t0);
            float* out = all_logits ? logits + t0 * m.c.n_vocab : t0 + n == T ? logits : nullptr;
            try {
                forward(m, tokens + t0, n, start + t0, all_logits, out);
            } catch (NonFinite& nf) {
                nf.token += t0;
                throw;
            }
            m.n_past = start + t0 + n;
        }
    } catch (const NonFinite& nf) {
        m.n_past = start;
        throw std::runtime_error("eval: non-finite activation at " + nf.where + " (token " +
                                 std::to_string(nf.token) + " of this call, position " +
                                 std::to_string(start + nf.token) +
                                 "); the cache was rolled back to n_past = " +
                                 std::to_string(start));
    }
}

}  // namespace ternlab
