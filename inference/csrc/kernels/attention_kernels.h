// The inner loops of attention (attention.cpp): G <= kGroup query heads that
// share one KV head, over n cached positions. The cache is laid out for
// streaming: K as [position][head_dim] and V transposed, [head_dim][position],
// per KV head, so both products read contiguous memory, and each cached value
// is read once for the whole group (long-context decoding is bound by reading
// the cache, not by arithmetic). A scalar reference, AVX2 + FMA versions
// (attention_avx2.cpp) and NEON ones (attention_neon.cpp), chosen at run time
// with the ternary kernels' ISA; they
// agree to float32 rounding (different summation order), and each is
// deterministic.
//
// The *_f16 kernels read an f16 cache (IEEE half, the uint16 bits; kv_type
// "f16", half the memory): each value is converted to float32 exactly (scalar:
// fp16_to_fp32_inline, a row at a time; AVX2: F16C vcvtph2ps; NEON:
// vcvt_f32_f16), then the float32 kernel's arithmetic follows in the same
// order. So an f16 kernel gives, bit for bit, what its ISA's float32 kernel
// gives on the widened cache, and the f16 SIMD kernels agree with the scalar
// f16 reference as the float32 ones do.
#pragma once

#include <cstdint>

namespace ternlab {

constexpr int kGroup = 4;  // query heads per kernel call

struct AttentionKernels {
    // For g < G, j < n: s[g * s_stride + j] = dot(q + g * hd, k + j * hd) * scale;
    // mx[g] = max over j.
    void (*scores)(const float* q, int G, const float* k, int64_t n, int64_t hd, float scale,
                   float* s, int64_t s_stride, float* mx);
    // s[j] = exp(s[j] - mx) / sum_j exp(s[j] - mx) for j < n, as torch's float32
    // softmax (the AVX2 exp is a polynomial within 2 ulp of std::exp).
    void (*softmax)(float* s, int64_t n, float mx);
    // For g < G, d < hd: out[g * hd + d] = sum_{j < n} p[g * p_stride + j] * vt[d * vt_stride + j].
    void (*weighted_sum)(const float* p, int G, int64_t p_stride, const float* vt,
                         int64_t vt_stride, int64_t n, int64_t hd, float* out);
    // scores and weighted_sum over an f16 cache (k, vt: IEEE half bits).
    void (*scores_f16)(const float* q, int G, const uint16_t* k, int64_t n, int64_t hd,
                       float scale, float* s, int64_t s_stride, float* mx);
    void (*weighted_sum_f16)(const float* p, int G, int64_t p_stride, const uint16_t* vt,
                             int64_t vt_stride, int64_t n, int64_t hd, float* out);
};

extern const AttentionKernels kAttentionScalar;
#if defined(__x86_64__) || defined(__i386__)
extern const AttentionKernels kAttentionAvx2;  // needs hd % 8 == 0 and AVX2 + FMA
#endif
#if defined(__aarch64__)
extern const AttentionKernels kAttentionNeon;  // needs hd % 4 == 0 (attention_neon.cpp)
#endif
// The kernels for head_dim under the current ISA (attention.cpp).
const AttentionKernels& attention_kernels(int64_t head_dim);

}  // namespace ternlab
