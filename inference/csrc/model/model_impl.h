// The state of a Model (model.h; its Impl is this), shared by model_load.cpp
// (building it from a GGUF file) and model.cpp (running it).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/weights.h"
#include "model/attention.h"
#include "model/model.h"
#include "model/ops.h"

namespace ternlab {

// Prefill runs in chunks of at most this many tokens, so the scratch memory is
// bounded whatever the prompt length.
constexpr int64_t kMaxBatch = 512;
constexpr int kMaxThreads = 1024;
// KV-cache slots a model may have (sequences decoded together).
constexpr int64_t kMaxSeq = 256;

struct Layer {
    std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;  // sub-norms: bitnet*
    Linear q, k, v, o, gate, up, down;
};

struct ModelState {
    std::unique_ptr<GgufFile> file;
    ModelConfig c;
    int64_t n_ctx = 0, n_seq = 1;
    std::vector<int64_t> n_past;  // per slot
    int threads = 1;
    Layout layout = kBits2;  // of the ternary weights
    KvType kv_type = kKvF32;  // of the KV cache

    const GgufTensor* embd = nullptr;  // token_embd.weight (F32, F16 or Q8_0 rows)
    std::vector<float> output_norm;
    Linear head;  // output.weight, or token_embd.weight when tied
    std::vector<Layer> layers;
    RopeTable rope;

    // KV cache, n_seq * n_layer * n_head_kv blocks of n_ctx * head_dim values
    // (K [position][head_dim], V transposed [head_dim][position]: attention.h):
    // float32 (kv_type f32) or IEEE half bits (f16), only that pair allocated;
    // left uninitialized so pages are only touched as positions fill.
    std::unique_ptr<float[]> k_cache, v_cache;
    std::unique_ptr<uint16_t[]> k_cache16, v_cache16;

    // Scratch for one chunk of up to `batch` tokens, allocated once; k, v hold
    // the new tokens' keys and values before they go into the cache.
    int64_t batch = 0;
    std::vector<float> x, h, q, k, v, att, g, u;
    std::vector<float> scores;  // attention_scratch_floats(threads, n_ctx)

    int64_t kv_dim() const { return c.n_head_kv * c.head_dim; }
    // The caches of one layer of one slot (AttentionArgs::k, AttentionArgs::v).
    int64_t cache_offset(int64_t seq, int64_t layer) const {
        return (seq * c.n_layer + layer) * n_ctx * kv_dim();
    }
    float* k_layer(int64_t seq, int64_t layer) const {
        return k_cache.get() + cache_offset(seq, layer);
    }
    float* v_layer(int64_t seq, int64_t layer) const {
        return v_cache.get() + cache_offset(seq, layer);
    }
    uint16_t* k_layer16(int64_t seq, int64_t layer) const {
        return k_cache16.get() + cache_offset(seq, layer);
    }
    uint16_t* v_layer16(int64_t seq, int64_t layer) const {
        return v_cache16.get() + cache_offset(seq, layer);
    }
    // Values in each of the K and V caches, and the bytes of both.
    int64_t cache_values() const { return n_seq * c.n_layer * n_ctx * kv_dim(); }
    int64_t cache_bytes() const { return 2 * cache_values() * kv_type_bytes(kv_type); }
};

// Loads and validates everything into a fresh `m` (model_load.cpp).
void load_model(ModelState& m, const std::string& path, int threads, int64_t n_ctx,
                Layout layout, int64_t n_seq, KvType kv_type);
// Throws std::invalid_argument unless 1 <= threads <= kMaxThreads.
void check_model_threads(int threads);

}  // namespace ternlab
