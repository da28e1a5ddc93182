// A decoder-only transformer read from a GGUF file: the BitNet b1.58
// architectures (`bitnet`: SiLU-gated FFN; `bitnet-b1.58`: ReLU² FFN; both with
// the attention/FFN sub-norms) and `llama` (no sub-norms) for FP16 baselines.
// RMSNorm, RoPE (NEOX rotate-half for bitnet*, interleaved for llama),
// grouped-query causal attention over a float32 (or f16) KV cache, batched prefill.
// Everything is float32 except the ternary matmuls (weights.h).
//
// The cache has n_seq slots ("sequences"), each with its own positions: one
// eval_batch() call runs tokens of several sequences in one forward pass (the
// matmuls see one batch of rows), each token at its own position in its own
// slot. A token's logits do not depend on what else is in the batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/weights.h"

namespace ternlab {

struct ModelConfig {
    std::string arch;   // general.architecture
    int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t n_ff = 0, n_ctx_train = 0;
    double rms_eps = 1e-6, rope_base = 10000.0;
    bool relu2 = false;     // FFN: relu(gate)^2 * up, else silu(gate) * up
    bool sub_norm = false;  // attn_sub_norm before o, ffn_sub_norm before down
    bool neox_rope = true;
    int64_t bos = -1, eos = -1;  // -1: none in the file
};

class Model {
   public:
    // Maps and validates `path`, checks every tensor the architecture needs
    // (presence, type, shape), repacks ternary weights into `layout` ("bits2",
    // "base3", or "auto": the kernels' preferred one). n_ctx <= 0: the training
    // context. Throws GgufError (bad file) or std::invalid_argument.
    // n_seq: KV-cache slots, each of n_ctx positions (>= 1). kv_type: the cache's
    // values, "f32" or "f16" (IEEE half, rounded to nearest even when written: half
    // the memory; attention.h).
    Model(const std::string& path, int threads, int64_t n_ctx,
          const std::string& layout = "auto", int64_t n_seq = 1,
          const std::string& kv_type = "f32");
    ~Model();

    const ModelConfig& config() const;
    const GgufFile& file() const;
    int64_t n_ctx() const;
    int64_t n_seq() const;
    int64_t n_past(int64_t seq = 0) const;
    int threads() const;
    const char* layout() const;  // of the ternary weights: "bits2" or "base3"
    const char* kv_type() const;  // "f32" or "f16"
    int64_t kv_cache_bytes() const;  // K and V of every slot, allocated at load
    void set_threads(int threads);
    // Forget cached positions >= n of slot `seq` (0 clears it).
    void truncate(int64_t n, int64_t seq = 0);
    // Slot dst := the first n cached positions of slot src (n < 0: all of them).
    void copy_seq(int64_t src, int64_t dst, int64_t n = -1);
    // Runs tokens[0..T) at positions n_past().., appends them to the KV cache
    // and writes logits: [T, n_vocab] if all_logits, else [n_vocab] for the
    // last token. Throws std::invalid_argument for a token id out of range or
    // a context overflow, std::runtime_error for a non-finite activation
    // (the cache is then rolled back to where it was).
    void eval(const int32_t* tokens, int64_t T, bool all_logits, float* logits,
              int64_t seq = 0);
    // Several sequences in one pass: segment i is lens[i] tokens (taken in
    // order from `tokens`) for the distinct slot seqs[i], at positions
    // n_past(seqs[i]).. . Logits rows are written in order: every row of a
    // segment with all_rows[i] != 0, else its last row only. Errors as eval();
    // on any error no slot changes.
    void eval_batch(const int32_t* tokens, const int64_t* seqs, const int64_t* lens,
                    const uint8_t* all_rows, int64_t n_seg, float* logits);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ternlab
