// Running a Model: the forward pass over a chunk of tokens (embedding, layers,
// head) and the KV-cache bookkeeping. Loading lives in model_load.cpp.
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/float_matmul.h"
#include "model/attention.h"
#include "model/model_impl.h"
#include "model/ops.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

// An elementwise op over [0, n) in one contiguous range per thread (64-byte aligned
// bounds), the same values as one pass. Below kMinSplit values (decode) the pool's
// hand-off would cost more than it saves.
constexpr int64_t kMinSplit = int64_t{1} << 16;

template <class F>
void split_range(int threads, int64_t n, const F& f) {
    if (n < kMinSplit) return f(0, n);
    parallel_ranges(threads, n, 16, f);
}

// rms_norm of T rows, split by rows over the threads when there is enough work
// (a prompt chunk); each row is one pass either way, so the values do not change.
void norm_rows(const ModelState& m, const float* x, const float* w, int64_t T, int64_t n,
               float* out) {
    const float eps = static_cast<float>(m.c.rms_eps);
    if (T < 2 || T * n < kMinSplit) return rms_norm(x, w, T, n, eps, out);
    parallel_ranges(m.threads, T, 1, [&](int64_t t0, int64_t t1) {
        rms_norm(x + t0 * n, w, t1 - t0, n, eps, out + t0 * n);
    });
}

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

// Rows [t0, t0 + n) of a forward chunk: tokens of slot `seq` at positions pos0..
struct Segment {
    int64_t seq, pos0, t0, n;
};

// A value as the cache holds it: float32 as is, f16 rounded to nearest even.
inline void put(float* dst, float x) { *dst = x; }
inline void put(uint16_t* dst, float x) { *dst = fp32_to_fp16(x); }

// Keys and values of a segment's rows into its slot's caches kc, vc of one layer
// (layout: attention.h).
template <class KV>
void store_kv(const ModelState& m, const Segment& sg, KV* kc, KV* vc) {
    const int64_t hd = m.c.head_dim, kv = m.kv_dim();
    for (int64_t h = 0; h < m.c.n_head_kv; ++h) {
        KV* kh = kc + h * m.n_ctx * hd;
        KV* vt = vc + h * hd * m.n_ctx;
        for (int64_t t = 0; t < sg.n; ++t) {
            const float* kr = m.k.data() + (sg.t0 + t) * kv + h * hd;
            const float* vr = m.v.data() + (sg.t0 + t) * kv + h * hd;
            const int64_t pos = sg.pos0 + t;
            for (int64_t d = 0; d < hd; ++d) put(kh + pos * hd + d, kr[d]);
            for (int64_t d = 0; d < hd; ++d) put(vt + d * m.n_ctx + pos, vr[d]);
        }
    }
}

void attention_block(ModelState& m, int64_t l, const std::vector<Segment>& segs, int64_t T) {
    const ModelConfig& c = m.c;
    const Layer& L = m.layers[l];
    const int64_t nq = c.n_head * c.head_dim;
    norm_rows(m, m.x.data(), L.attn_norm.data(), T, c.n_embd, m.h.data());
    matmul<3>(m, {&L.q, &L.k, &L.v}, m.h.data(), T, {m.q.data(), m.k.data(), m.v.data()});
    thread_local std::vector<AttentionArgs> args;
    args.clear();
    for (const Segment& sg : segs) {
        for (int64_t t = sg.t0; t < sg.t0 + sg.n; ++t) {
            const int64_t pos = sg.pos0 + (t - sg.t0);
            rope(m.q.data() + t * nq, c.n_head, c.head_dim, m.rope, pos, c.neox_rope);
            rope(m.k.data() + t * m.kv_dim(), c.n_head_kv, c.head_dim, m.rope, pos, c.neox_rope);
        }
        AttentionArgs a;
        if (m.kv_type == kKvF16) {
            store_kv(m, sg, m.k_layer16(sg.seq, l), m.v_layer16(sg.seq, l));
            a.k16 = m.k_layer16(sg.seq, l);
            a.v16 = m.v_layer16(sg.seq, l);
        } else {
            store_kv(m, sg, m.k_layer(sg.seq, l), m.v_layer(sg.seq, l));
            a.k = m.k_layer(sg.seq, l);
            a.v = m.v_layer(sg.seq, l);
        }
        a.q = m.q.data() + sg.t0 * nq;
        a.out = m.att.data() + sg.t0 * nq;
        a.scratch = m.scores.data();
        a.T = sg.n, a.pos0 = sg.pos0;
        a.n_head = c.n_head, a.n_head_kv = c.n_head_kv, a.head_dim = c.head_dim;
        a.n_ctx = m.n_ctx;
        a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
        args.push_back(a);
    }
    attention_batch(args.data(), static_cast<int64_t>(args.size()), m.threads);
    if (c.sub_norm)
        norm_rows(m, m.att.data(), L.attn_sub_norm.data(), T, nq, m.att.data());
    matmul(m, L.o, m.att.data(), T, m.h.data());
    add(m.x.data(), m.h.data(), T * c.n_embd);
}

void ffn_block(ModelState& m, int64_t l, int64_t T) {
    const ModelConfig& c = m.c;
    const Layer& L = m.layers[l];
    norm_rows(m, m.x.data(), L.ffn_norm.data(), T, c.n_embd, m.h.data());
    matmul<2>(m, {&L.gate, &L.up}, m.h.data(), T, {m.g.data(), m.u.data()});
    float* g = m.g.data();
    const float* u = m.u.data();
    split_range(m.threads, T * c.n_ff, [&](int64_t i0, int64_t i1) {
        if (c.relu2)
            relu2_mul(g + i0, u + i0, i1 - i0);
        else
            silu_mul(g + i0, u + i0, i1 - i0);
    });
    if (c.sub_norm) norm_rows(m, m.g.data(), L.ffn_sub_norm.data(), T, c.n_ff, m.g.data());
    matmul(m, L.down, m.g.data(), T, m.h.data());
    add(m.x.data(), m.h.data(), T * c.n_embd);
}

// Logits of the chunk rows `rows` (increasing) into out [rows.size(), n_vocab];
// each row is normalized on its own, so gathering changes nothing.
void head(ModelState& m, const std::vector<int64_t>& rows, float* out) {
    const int64_t e = m.c.n_embd;
    const auto n = static_cast<int64_t>(rows.size());
    for (int64_t j = 0; j < n; ++j)
        rms_norm(m.x.data() + rows[j] * e, m.output_norm.data(), 1, e,
                 static_cast<float>(m.c.rms_eps), m.h.data() + j * e);
    try {
        matmul(m, m.head, m.h.data(), n, out);
    } catch (NonFinite& nf) {
        nf.token = rows[nf.token];
        throw;
    }
}

// One chunk of T <= batch tokens made of `segs`; writes the logits of chunk
// rows `rows` to `logits` (none if rows is empty).
void forward(ModelState& m, const int32_t* tokens, int64_t T, const std::vector<Segment>& segs,
             const std::vector<int64_t>& rows, float* logits) {
    const int64_t e = m.c.n_embd;
    for (int64_t t = 0; t < T; ++t) dequantize_row(*m.embd, tokens[t], m.x.data() + t * e);
    for (int64_t l = 0; l < m.c.n_layer; ++l) {
        try {
            attention_block(m, l, segs, T);
            ffn_block(m, l, T);
        } catch (NonFinite& nf) {
            nf.where += " in layer " + std::to_string(l);
            throw;
        }
    }
    if (!rows.empty()) head(m, rows, logits);
}

// Which segment holds flattened token `t` (segment ends in `ends`).
int64_t segment_of(const std::vector<int64_t>& ends, int64_t t) {
    return std::upper_bound(ends.begin(), ends.end(), t) - ends.begin();
}

// The first n positions of every layer and KV head of slot src into slot dst.
template <class KV>
void copy_cache(const ModelState& m, KV* (ModelState::*k_layer)(int64_t, int64_t) const,
                KV* (ModelState::*v_layer)(int64_t, int64_t) const, int64_t src, int64_t dst,
                int64_t n) {
    const int64_t hd = m.c.head_dim;
    for (int64_t l = 0; l < m.c.n_layer; ++l)
        for (int64_t h = 0; h < m.c.n_head_kv; ++h) {
            const KV* ks = (m.*k_layer)(src, l) + h * m.n_ctx * hd;
            std::copy(ks, ks + n * hd, (m.*k_layer)(dst, l) + h * m.n_ctx * hd);
            const KV* vs = (m.*v_layer)(src, l) + h * hd * m.n_ctx;
            KV* vd = (m.*v_layer)(dst, l) + h * hd * m.n_ctx;
            for (int64_t d = 0; d < hd; ++d)
                std::copy(vs + d * m.n_ctx, vs + d * m.n_ctx + n, vd + d * m.n_ctx);
        }
}

}  // namespace

struct Model::Impl : ModelState {};

Model::Model(const std::string& path, int threads, int64_t n_ctx, const std::string& layout,
             int64_t n_seq, const std::string& kv_type)
    : impl_(std::make_unique<Impl>()) {
    const KvType kv = parse_kv_type(kv_type);  // before the (slow) load
    load_model(*impl_, path, threads, n_ctx, parse_layout(layout), n_seq, kv);
}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->c; }
const GgufFile& Model::file() const { return *impl_->file; }
int64_t Model::n_ctx() const { return impl_->n_ctx; }
int64_t Model::n_seq() const { return impl_->n_seq; }
int Model::threads() const { return impl_->threads; }
const char* Model::layout() const { return layout_name(impl_->layout); }
const char* Model::kv_type() const { return kv_type_name(impl_->kv_type); }
int64_t Model::kv_cache_bytes() const { return impl_->cache_bytes(); }

namespace {
void check_seq(const ModelState& m, int64_t seq, const char* what) {
    if (seq < 0 || seq >= m.n_seq)
        throw std::invalid_argument(std::string(what) + ": sequence slot " + std::to_string(seq) +
                                    " is outside [0, n_seq = " + std::to_string(m.n_seq) + ")");
}
}  // namespace

int64_t Model::n_past(int64_t seq) const {
    check_seq(*impl_, seq, "n_past");
    return impl_->n_past[static_cast<size_t>(seq)];
}

void Model::set_threads(int threads) {
    check_model_threads(threads);
    impl_->scores.assign(static_cast<size_t>(attention_scratch_floats(threads, impl_->n_ctx)),
                         0.0f);
    impl_->threads = threads;
}

void Model::truncate(int64_t n, int64_t seq) {
    check_seq(*impl_, seq, "truncate");
    int64_t& past = impl_->n_past[static_cast<size_t>(seq)];
    if (n < 0 || n > past)
        throw std::invalid_argument("truncate(n): n must be in [0, n_past = " +
                                    std::to_string(past) + "], got " + std::to_string(n));
    past = n;
}

void Model::copy_seq(int64_t src, int64_t dst, int64_t n) {
    ModelState& m = *impl_;
    check_seq(m, src, "copy_seq");
    check_seq(m, dst, "copy_seq");
    const int64_t have = m.n_past[static_cast<size_t>(src)];
    if (n < 0) n = have;
    if (n > have)
        throw std::invalid_argument("copy_seq: slot " + std::to_string(src) + " holds " +
                                    std::to_string(have) + " positions, not " +
                                    std::to_string(n));
    if (src == dst) {
        m.n_past[static_cast<size_t>(dst)] = n;
        return;
    }
    if (m.kv_type == kKvF16)
        copy_cache(m, &ModelState::k_layer16, &ModelState::v_layer16, src, dst, n);
    else
        copy_cache(m, &ModelState::k_layer, &ModelState::v_layer, src, dst, n);
    m.n_past[static_cast<size_t>(dst)] = n;
}

void Model::eval(const int32_t* tokens, int64_t T, bool all_logits, float* logits, int64_t seq) {
    if (T < 1) throw std::invalid_argument("eval: no tokens (T = " + std::to_string(T) + ")");
    const uint8_t all = all_logits ? 1 : 0;
    eval_batch(tokens, &seq, &T, &all, 1, logits);
}

void Model::eval_batch(const int32_t* tokens, const int64_t* seqs, const int64_t* lens,
                       const uint8_t* all_rows, int64_t n_seg, float* logits) {
    ModelState& m = *impl_;
    if (n_seg < 1) throw std::invalid_argument("eval: no sequences");
    std::vector<int64_t> ends(static_cast<size_t>(n_seg));
    std::vector<uint8_t> seen(static_cast<size_t>(m.n_seq), 0);
    int64_t T = 0;
    for (int64_t i = 0; i < n_seg; ++i) {
        check_seq(m, seqs[i], "eval");
        if (seen[static_cast<size_t>(seqs[i])]++)
            throw std::invalid_argument("eval: sequence slot " + std::to_string(seqs[i]) +
                                        " appears twice in one batch");
        if (lens[i] < 1)
            throw std::invalid_argument("eval: no tokens (T = " + std::to_string(lens[i]) +
                                        ") for sequence slot " + std::to_string(seqs[i]));
        const int64_t past = m.n_past[static_cast<size_t>(seqs[i])];
        if (lens[i] > m.n_ctx - past)
            throw std::invalid_argument(
                "eval: context overflow: n_past = " + std::to_string(past) + " + " +
                std::to_string(lens[i]) + " new tokens > n_ctx = " + std::to_string(m.n_ctx) +
                (m.n_seq > 1 ? " in sequence slot " + std::to_string(seqs[i]) : "") +
                "; call truncate() or load the model with a larger n_ctx");
        ends[static_cast<size_t>(i)] = T += lens[i];
    }
    for (int64_t t = 0; t < T; ++t)
        if (tokens[t] < 0 || tokens[t] >= m.c.n_vocab)
            throw std::invalid_argument("eval: token id " + std::to_string(tokens[t]) +
                                        " at index " + std::to_string(t) +
                                        " is outside the vocabulary [0, " +
                                        std::to_string(m.c.n_vocab) + ")");
    std::vector<Segment> segs;
    std::vector<int64_t> rows;
    float* out = logits;
    int64_t t0 = 0;
    try {
        for (; t0 < T; t0 += m.batch) {
            const int64_t n = std::min(m.batch, T - t0);
            segs.clear();
            rows.clear();
            for (int64_t i = segment_of(ends, t0); i < n_seg; ++i) {
                const int64_t s0 = i ? ends[static_cast<size_t>(i - 1)] : 0;
                const int64_t lo = std::max(s0, t0), hi = std::min(ends[i], t0 + n);
                if (lo >= hi) break;
                const int64_t past = m.n_past[static_cast<size_t>(seqs[i])];
                segs.push_back({seqs[i], past + (lo - s0), lo - t0, hi - lo});
                if (all_rows[i])
                    for (int64_t r = lo; r < hi; ++r) rows.push_back(r - t0);
                else if (hi == ends[i])
                    rows.push_back(hi - 1 - t0);
            }
            forward(m, tokens + t0, n, segs, rows, out);
            out += static_cast<int64_t>(rows.size()) * m.c.n_vocab;
        }
    } catch (NonFinite& nf) {
        // Nothing was committed: every slot keeps its n_past.
        const int64_t t = t0 + nf.token, i = segment_of(ends, t);
        const int64_t s0 = i ? ends[static_cast<size_t>(i - 1)] : 0;
        const int64_t past = m.n_past[static_cast<size_t>(seqs[i])];
        throw std::runtime_error(
            "eval: non-finite activation at " + nf.where + " (token " + std::to_string(t) +
            " of this call, position " + std::to_string(past + t - s0) +
            (m.n_seq > 1 ? " of sequence slot " + std::to_string(seqs[i]) : "") +
            "); the cache was rolled back to n_past = " + std::to_string(past));
    }
    for (int64_t i = 0; i < n_seg; ++i) m.n_past[static_cast<size_t>(seqs[i])] += lens[i];
}

}  // namespace ternlab
