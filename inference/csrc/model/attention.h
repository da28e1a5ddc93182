// Causal grouped-query attention of a batch of new tokens over the KV cache of
// one layer (model.cpp), split over threads by (token, KV head). The cache holds
// float32 values or IEEE halves (KvType).
#pragma once

#include <cstdint>
#include <string>

namespace ternlab {

// The element type of the KV cache: float32, or IEEE half (uint16 bits, written
// with round-to-nearest-even: half the memory, read back exactly as float32).
enum KvType : int { kKvF32 = 0, kKvF16 = 1 };
// "f32" or "f16"; throws std::invalid_argument naming kv_type and the allowed values.
KvType parse_kv_type(const std::string& name);
const char* kv_type_name(KvType t);
int64_t kv_type_bytes(KvType t);  // bytes a cached value

// Cache layout of one layer, per KV head h (n_ctx positions of head_dim values):
//   K at k + h * n_ctx * head_dim, [position][head_dim]
//   V at v + h * head_dim * n_ctx, transposed: [head_dim][position]
struct AttentionArgs {
    const float* q = nullptr;  // [T, n_head * head_dim], RoPE applied
    const float* k = nullptr;  // K cache of the layer, positions [0, pos0 + T) valid
    const float* v = nullptr;  // V cache of the layer (transposed)
    // Or an f16 cache (the same layout of IEEE half bits), used when k16 is set.
    const uint16_t* k16 = nullptr;
    const uint16_t* v16 = nullptr;
    float* out = nullptr;      // [T, n_head * head_dim]
    float* scratch = nullptr;  // attention_scratch_floats(threads, n_ctx) floats
    int64_t T = 0, pos0 = 0;   // token t sits at position pos0 + t and sees [0, pos0 + t]
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t n_ctx = 0;
    float scale = 1.0f;  // 1 / sqrt(head_dim)
};

// out = softmax(q k^T * scale + causal mask) v for every token and head; query
// head h reads KV head h / (n_head / n_head_kv). Results do not depend on `threads`
// or on how the tokens are split into calls.
void attention(const AttentionArgs& a, int threads);

// attention() of n independent calls (each its own q, k, v, out, T, pos0; the
// same heads, n_ctx and scratch) with one thread hand-off: the (token, KV head)
// items of all of them are shared out together. Results equal n attention() calls.
void attention_batch(const AttentionArgs* a, int64_t n, int threads);

// Scratch floats attention() needs for `threads` threads.
int64_t attention_scratch_floats(int threads, int64_t n_ctx);

// Which attention kernels the current ISA (dispatch.h) uses: "avx2", "neon" or "scalar".
const char* attention_kernel_isa(int64_t head_dim);

}  // namespace ternlab
