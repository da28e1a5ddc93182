#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ternlab {

namespace {

// Bounds far beyond any real model, but tight enough that sizes computed from
// them (n_layer * n_ctx * kv_dim, ...) cannot overflow int64.
constexpr int64_t kMaxEmbd = int64_t{1} << 16;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxFF = int64_t{1} << 20;
constexpr int64_t kMaxCtx = int64_t{1} << 24;
constexpr int64_t kMaxVocab = int64_t{1} << 24;

struct Reader {
    const GgufFile& f;
    std::string arch;

    std::string key(const char* suffix) const { return arch + "." + suffix; }

    [[noreturn]] void fail(const std::string& what) const {
        throw GgufError(f.path() + ": " + what);
    }

    // An integer key within [lo, hi].
    int64_t in_range(const char* suffix, int64_t lo, int64_t hi) const {
        const int64_t v = f.get_int(key(suffix));
        check(suffix, v, lo, hi);
        return v;
    }
    int64_t in_range(const char* suffix, int64_t lo, int64_t hi, int64_t fallback) const {
        const int64_t v = f.get_int(key(suffix), fallback);
        check(suffix, v, lo, hi);
        return v;
    }
    void check(const char* suffix, int64_t v, int64_t lo, int64_t hi) const {
        if (v < lo || v > hi)
            fail(key(suffix) + " = " + std::to_string(v) + " is outside [" + std::to_string(lo) +
                 ", " + std::to_string(hi) + "]; the file's hyperparameters are corrupt");
    }
};

void set_architecture(ModelConfig& c, const GgufFile& f) {
    c.arch = f.get_string("general.architecture");
    if (c.arch == "bitnet") {
        c.relu2 = false, c.sub_norm = true, c.neox_rope = true;
    } else if (c.arch == "bitnet-b1.58") {
        c.relu2 = true, c.sub_norm = true, c.neox_rope = true;
    } else if (c.arch == "llama") {
        c.relu2 = false, c.sub_norm = false, c.neox_rope = false;
    } else {
        throw GgufError(f.path() + ": general.architecture = '" + c.arch +
                        "' is not supported; the engine runs 'bitnet', 'bitnet-b1.58' and "
                        "'llama' models");
    }
}

void read_attention(ModelConfig& c, const Reader& r) {
    c.n_head = r.in_range("attention.head_count", 1, kMaxHeads);
    c.n_head_kv = r.in_range("attention.head_count_kv", 1, c.n_head, c.n_head);
    if (c.n_embd % c.n_head != 0)
        r.fail(r.key("embedding_length") + " = " + std::to_string(c.n_embd) +
               " is not a multiple of " + r.key("attention.head_count") + " = " +
               std::to_string(c.n_head));
    if (c.n_head % c.n_head_kv != 0)
        r.fail(r.key("attention.head_count") + " = " + std::to_string(c.n_head) +
               " is not a multiple of " + r.key("attention.head_count_kv") + " = " +
               std::to_string(c.n_head_kv));
    c.head_dim = c.n_embd / c.n_head;
    if (c.head_dim % 2 != 0)
        r.fail("head_dim = " + std::to_string(c.head_dim) + " (embedding_length / head_count) " +
               "is odd; RoPE rotates pairs of values");
    // Other head sizes (partial RoPE, key_length != n_embd / n_head) are not supported.
    for (const char* k : {"rope.dimension_count", "attention.key_length",
                          "attention.value_length"}) {
        const int64_t v = r.f.get_int(r.key(k), c.head_dim);
        if (v != c.head_dim)
            r.fail(r.key(k) + " = " + std::to_string(v) + ", but the engine needs it equal to " +
                   "head_dim = embedding_length / head_count = " + std::to_string(c.head_dim));
    }
}

// Variants of the architectures this engine does not compute: refused, never
// run with wrong results.
void refuse_variants(const Reader& r) {
    const std::string scaling = r.f.get_string(r.key("rope.scaling.type"), "none");
    if (scaling != "none")
        r.fail(r.key("rope.scaling.type") + " = '" + scaling +
               "': scaled RoPE is not supported; the engine computes plain RoPE");
    if (r.f.get_int(r.key("expert_count"), 0) != 0)
        r.fail(r.key("expert_count") + " is set: mixture-of-experts models are not supported");
    if (r.f.find_tensor("rope_freqs.weight"))
        r.fail("tensor rope_freqs.weight (RoPE frequency factors, Llama 3.1 scaling) is not "
               "supported; the engine computes plain RoPE");
}

void read_floats(ModelConfig& c, const Reader& r) {
    c.rms_eps = r.f.get_float(r.key("attention.layer_norm_rms_epsilon"));
    if (!(std::isfinite(c.rms_eps) && c.rms_eps > 0.0 && c.rms_eps < 1.0))
        r.fail(r.key("attention.layer_norm_rms_epsilon") + " = " + std::to_string(c.rms_eps) +
               " must be in (0, 1)");
    c.rope_base = r.f.get_float(r.key("rope.freq_base"), 10000.0);
    if (!(std::isfinite(c.rope_base) && c.rope_base > 1.0 && c.rope_base < 1e12))
        r.fail(r.key("rope.freq_base") + " = " + std::to_string(c.rope_base) +
               " must be in (1, 1e12)");
}

int64_t read_vocab(const ModelConfig& c, const Reader& r) {
    const GgufTensor& emb = r.f.tensor("token_embd.weight");
    if (emb.ne.size() != 2 || emb.ne[0] != c.n_embd)
        r.fail("tensor token_embd.weight must be 2-D with rows of embedding_length = " +
               std::to_string(c.n_embd) + " values");
    const int64_t n_vocab = emb.ne[1];
    if (n_vocab < 1 || n_vocab > kMaxVocab)
        r.fail("token_embd.weight has " + std::to_string(n_vocab) + " rows (vocabulary size); " +
               "expected 1 to " + std::to_string(kMaxVocab));
    const int64_t declared = r.f.get_int(r.key("vocab_size"), n_vocab);
    if (declared != n_vocab)
        r.fail(r.key("vocab_size") + " = " + std::to_string(declared) +
               " disagrees with token_embd.weight's " + std::to_string(n_vocab) + " rows");
    return n_vocab;
}

int64_t special_id(const GgufFile& f, const char* key, int64_t n_vocab) {
    const int64_t id = f.get_int(key, -1);
    if (id < -1 || id >= n_vocab)
        throw GgufError(f.path() + ": " + key + " = " + std::to_string(id) +
                        " is not a token id of the " + std::to_string(n_vocab) +
                        "-token vocabulary");
    return id;
}

}  // namespace

ModelConfig read_model_config(const GgufFile& f) {
    ModelConfig c;
    set_architecture(c, f);
    const Reader r{f, c.arch};
    c.n_embd = r.in_range("embedding_length", 1, kMaxEmbd);
    c.n_layer = r.in_range("block_count", 1, kMaxLayers);
    c.n_ff = r.in_range("feed_forward_length", 1, kMaxFF);
    c.n_ctx_train = r.in_range("context_length", 1, kMaxCtx);
    read_attention(c, r);
    refuse_variants(r);
    read_floats(c, r);
    c.n_vocab = read_vocab(c, r);
    c.bos = special_id(f, "tokenizer.ggml.bos_token_id", c.n_vocab);
    c.eos = special_id(f, "tokenizer.ggml.eos_token_id", c.n_vocab);
    return c;
}

int64_t resolve_n_ctx(const GgufFile& f, const ModelConfig& c, int64_t requested) {
    if (requested <= 0) return std::min(c.n_ctx_train, kDefaultMaxCtx);
    if (requested > c.n_ctx_train)
        throw std::invalid_argument(
            "n_ctx = " + std::to_string(requested) + " exceeds the training context of " +
            f.path() + " (" + c.arch + ".context_length = " + std::to_string(c.n_ctx_train) +
            "); pass n_ctx <= " + std::to_string(c.n_ctx_train) + ", or 0 for the default");
    return requested;
}

}  // namespace ternlab
