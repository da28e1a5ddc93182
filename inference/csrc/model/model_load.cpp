// Building a ModelState from a GGUF file: configuration, every tensor the
// architecture needs checked for presence, type and shape *before* anything
// expensive happens, then weights repacked, tables and buffers allocated.
#include <new>
#include <stdexcept>
#include <string>

#include "model/attention.h"
#include "model/model_config.h"
#include "model/model_impl.h"

namespace ternlab {

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

class TensorChecker {
   public:
    TensorChecker(const GgufFile& f, const std::string& arch) : f_(f), arch_(arch) {}

    // The tensor `name`, which must have ggml dimensions `ne` (ne[0] = row length);
    // `dims` spells them in hyperparameter names for the message.
    const GgufTensor& need(const std::string& name, const std::vector<int64_t>& ne,
                           const char* dims) const {
        const GgufTensor* t = f_.find_tensor(name);
        if (!t)
            throw GgufError(f_.path() + ": tensor " + name + " is missing; the '" + arch_ +
                            "' architecture needs it (shape " + shape_str(ne) + " = " + dims + ")");
        if (t->ne != ne)
            throw GgufError(f_.path() + ": tensor " + name + " has shape " + shape_str(t->ne) +
                            ", expected " + shape_str(ne) + " = " + dims +
                            " (ggml order: row length first)");
        return *t;
    }

    // A norm weight as float32 (F32 as is, F16 converted).
    std::vector<float> norm(const std::string& name, int64_t n, const char* dims) const {
        const GgufTensor& t = need(name, {n}, dims);
        if (t.type != kF32 && t.type != kF16)
            throw GgufError(f_.path() + ": tensor " + name + " has type " + type_name(t.type) +
                            "; norm weights must be F32 or F16");
        std::vector<float> w(static_cast<size_t>(n));
        dequantize_row(t, 0, w.data());
        return w;
    }

   private:
    const GgufFile& f_;
    const std::string& arch_;
};

void check_float_rows(const GgufFile& f, const GgufTensor& t, const char* role) {
    if (!is_float_type(t.type))
        throw GgufError(f.path() + ": tensor " + t.name + " (" + role + ") has type " +
                        type_name(t.type) + "; the engine reads it as F32, F16, Q8_0, Q6_K or " +
                        "Q4_0 (re-export with --embed-type f16, q8_0, q6_k or q4_0)");
}

// All tensors of all layers are checked before any is loaded: a bad file
// fails in milliseconds, whatever its size.
void check_layer_shapes(const TensorChecker& tc, const ModelConfig& c) {
    const int64_t e = c.n_embd, nq = c.n_head * c.head_dim, nkv = c.n_head_kv * c.head_dim;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        tc.need(p + "attn_norm.weight", {e}, "[n_embd]");
        tc.need(p + "attn_q.weight", {e, nq}, "[n_embd, n_head * head_dim]");
        tc.need(p + "attn_k.weight", {e, nkv}, "[n_embd, n_head_kv * head_dim]");
        tc.need(p + "attn_v.weight", {e, nkv}, "[n_embd, n_head_kv * head_dim]");
        tc.need(p + "attn_output.weight", {nq, e}, "[n_head * head_dim, n_embd]");
        tc.need(p + "ffn_norm.weight", {e}, "[n_embd]");
        tc.need(p + "ffn_gate.weight", {e, c.n_ff}, "[n_embd, n_ff]");
        tc.need(p + "ffn_up.weight", {e, c.n_ff}, "[n_embd, n_ff]");
        tc.need(p + "ffn_down.weight", {c.n_ff, e}, "[n_ff, n_embd]");
        if (c.sub_norm) {
            tc.need(p + "attn_sub_norm.weight", {nq}, "[n_head * head_dim]");
            tc.need(p + "ffn_sub_norm.weight", {c.n_ff}, "[n_ff]");
        }
    }
}

Layer load_layer(const GgufFile& f, const TensorChecker& tc, const ModelConfig& c, int64_t l,
                 Layout layout) {
    const int64_t nq = c.n_head * c.head_dim;
    const std::string p = "blk." + std::to_string(l) + ".";
    auto lin = [&](const char* name) { return load_linear(f, f.tensor(p + name), layout); };
    Layer L;
    L.attn_norm = tc.norm(p + "attn_norm.weight", c.n_embd, "[n_embd]");
    L.ffn_norm = tc.norm(p + "ffn_norm.weight", c.n_embd, "[n_embd]");
    if (c.sub_norm) {
        L.attn_sub_norm = tc.norm(p + "attn_sub_norm.weight", nq, "[n_head * head_dim]");
        L.ffn_sub_norm = tc.norm(p + "ffn_sub_norm.weight", c.n_ff, "[n_ff]");
    }
    L.q = lin("attn_q.weight");
    L.k = lin("attn_k.weight");
    L.v = lin("attn_v.weight");
    L.o = lin("attn_output.weight");
    L.gate = lin("ffn_gate.weight");
    L.up = lin("ffn_up.weight");
    L.down = lin("ffn_down.weight");
    return L;
}

// One of the KV caches (values of type T), refused with a clear message rather
// than an abort when it cannot be had.
template <class T>
std::unique_ptr<T[]> cache_buffer(const ModelState& m) {
    const int64_t n = m.cache_values();
    const double gib = static_cast<double>(m.cache_bytes()) / (1 << 30);
    auto refuse = [&](const char* why) {
        return std::invalid_argument(
            "the KV cache (" + std::string(kv_type_name(m.kv_type)) + ") for n_ctx = " +
            std::to_string(m.n_ctx) + " x " + std::to_string(m.n_seq) + " slot(s) needs " +
            std::to_string(gib) + " GiB (" + why + "); pass a smaller n_ctx or fewer slots" +
            (m.kv_type == kKvF32 ? ", or kv_type 'f16' (half the memory)" : ""));
    };
    if (gib > 256.0) throw refuse("more than the 256 GiB limit");
    try {
        return std::unique_ptr<T[]>(new T[static_cast<size_t>(n)]);
    } catch (const std::bad_alloc&) {
        throw refuse("out of memory");
    }
}

void allocate_buffers(ModelState& m) {
    const ModelConfig& c = m.c;
    if (m.kv_type == kKvF16) {
        m.k_cache16 = cache_buffer<uint16_t>(m);
        m.v_cache16 = cache_buffer<uint16_t>(m);
    } else {
        m.k_cache = cache_buffer<float>(m);
        m.v_cache = cache_buffer<float>(m);
    }
    m.batch = std::min(kMaxBatch, m.n_ctx);
    const auto B = static_cast<size_t>(m.batch);
    m.x.assign(B * c.n_embd, 0.0f);
    m.h.assign(B * c.n_embd, 0.0f);
    m.q.assign(B * c.n_head * c.head_dim, 0.0f);
    m.k.assign(B * m.kv_dim(), 0.0f);
    m.v.assign(B * m.kv_dim(), 0.0f);
    m.att.assign(B * c.n_head * c.head_dim, 0.0f);
    m.g.assign(B * c.n_ff, 0.0f);
    m.u.assign(B * c.n_ff, 0.0f);
    m.scores.assign(static_cast<size_t>(attention_scratch_floats(m.threads, m.n_ctx)), 0.0f);
}

}  // namespace

void check_model_threads(int threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw std::invalid_argument("threads must be in [1, " + std::to_string(kMaxThreads) +
                                    "], got " + std::to_string(threads));
}

void load_model(ModelState& m, const std::string& path, int threads, int64_t n_ctx,
                Layout layout, int64_t n_seq, KvType kv_type) {
    check_model_threads(threads);
    if (n_seq < 1 || n_seq > kMaxSeq)
        throw std::invalid_argument("n_seq (KV-cache slots) must be in [1, " +
                                    std::to_string(kMaxSeq) + "], got " + std::to_string(n_seq));
    m.file = std::make_unique<GgufFile>(path);
    const GgufFile& f = *m.file;
    m.c = read_model_config(f);
    const ModelConfig& c = m.c;
    m.n_ctx = resolve_n_ctx(f, c, n_ctx);
    m.threads = threads;
    m.layout = layout;
    m.kv_type = kv_type;
    m.n_seq = n_seq;
    m.n_past.assign(static_cast<size_t>(n_seq), 0);

    const TensorChecker tc(f, c.arch);
    m.embd = &tc.need("token_embd.weight", {c.n_embd, c.n_vocab}, "[n_embd, n_vocab]");
    check_float_rows(f, *m.embd, "the token embedding");
    tc.need("output_norm.weight", {c.n_embd}, "[n_embd]");
    const bool untied = f.find_tensor("output.weight") != nullptr;
    const GgufTensor& head =
        untied ? tc.need("output.weight", {c.n_embd, c.n_vocab}, "[n_embd, n_vocab]") : *m.embd;
    check_layer_shapes(tc, c);

    m.output_norm = tc.norm("output_norm.weight", c.n_embd, "[n_embd]");
    m.head = load_linear(f, head, layout);
    m.layers.reserve(static_cast<size_t>(c.n_layer));
    for (int64_t l = 0; l < c.n_layer; ++l) m.layers.push_back(load_layer(f, tc, c, l, layout));
    m.rope.build(m.n_ctx, c.head_dim, c.rope_base);
    allocate_buffers(m);
}

}  // namespace ternlab
