// Shared definitions of the ternary kernels: the packed layout constants and
// the argument block every GEMV/GEMM kernel takes. No Python, no PyTorch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ternlab {

// ---- packed layout (docs/engine-kernels.md) ----------------------------------
// A weight row of K ternary codes is stored in super-blocks of kQK = 256 codes,
// 64 bytes each (one cache line). Byte i (0..63) of a super-block holds the
// codes at positions 64*j + i (j = 0..3) in bits 2j..2j+1, as the field
// code + 1 (0b00 = -1, 0b01 = 0, 0b10 = +1). A vector load of W bytes at byte
// offset i0 therefore expands, with one shift and one mask per j, into four
// vectors of W codes that each line up with a *contiguous* run of activations
// (positions 64*j + i0 ...): the same layout serves 16-, 32- and 64-byte SIMD.
constexpr int kQK = 256;             // codes per super-block
constexpr int kBlockBytes = kQK / 4; // 64 bytes per super-block

// The base-3 layout (docs/engine-kernels.md): a super-block of kQK3 = 320
// codes in 64 bytes (1.6 bits a code). Byte i holds the codes at positions
// 64*j + i (j = 0..4) as the number v = sum_j f_j * 3^j, f = code + 1, so
// v <= 242; each digit vector again lines up with 64 contiguous activations.
// It reads 20% fewer bytes than the 2-bit layout, and decode is memory-bound.
constexpr int kQK3 = 320;
constexpr int kBase3Digits = 5;

// Which packed layout a matrix is in (index into the kernel table's pairs).
enum Layout : int { kBits2 = 0, kBase3 = 1, kNumLayouts = 2 };

inline int64_t codes_per_block(Layout l) { return l == kBase3 ? kQK3 : kQK; }
// K padded to whole super-blocks (activations are zero-padded to match, so
// the padding codes never contribute).
inline int64_t padded_k(int64_t k, Layout l = kBits2) {
    const int64_t q = codes_per_block(l);
    return (k + q - 1) / q * q;
}
inline int64_t packed_row_bytes(int64_t k, Layout l = kBits2) {
    return padded_k(k, l) / codes_per_block(l) * kBlockBytes;
}

// Rows are stored in groups of kRowGroup: super-block sb of the group's rows
// lie next to each other (row 0's 64 bytes, row 1's, ...), so a GEMV that
// works on a group reads one sequential stream, which the hardware prefetchers
// sustain far better than one stream per row (measured on Zen 4: 3-4x). A last
// group of fewer rows (N not a multiple of kRowGroup) interleaves just those.
// The matrix still takes exactly N * packed_row_bytes(K) bytes.
constexpr int64_t kRowGroup = 4;

// Byte offset of super-block sb of row o in a matrix of n rows.
inline int64_t sb_offset(int64_t o, int64_t sb, int64_t n, int64_t row_bytes) {
    const int64_t g0 = o / kRowGroup * kRowGroup;
    const int64_t rows = n - g0 < kRowGroup ? n - g0 : kRowGroup;
    return g0 * row_bytes + (sb * rows + (o - g0)) * kBlockBytes;
}

// Row o's super-blocks as a walk: the first at `first`, then every `step` bytes.
struct RowWalk {
    const uint8_t* first;
    int64_t step;
    const uint8_t* sb(int64_t i) const { return first + i * step; }
};

// ---- kernel arguments ---------------------------------------------------------
// The integer product acc[t, o] = sum_k x[t, k] * w[o, k] for rows o in [o0, o1).
// The kernels compute sum_k x * (w + 1) with unsigned fields (what
// maddubs/vpdpbusd want) and subtract xsum[t] = sum_k x[t, k].
struct GemmArgs {
    const uint8_t* w;        // packed weights, super-block sb of row o at w + sb_offset(...)
    int64_t w_stride;        // bytes per packed row (packed_row_bytes(K, layout))
    int64_t N;               // rows of the whole matrix (fixes the last row group)
    const int8_t* x;         // activation codes, token t at x + t * x_stride, zero-padded to Kp
    int64_t x_stride;        // >= Kp
    const int32_t* xsum;     // [T] sum of the codes of each token
    int64_t T;               // tokens
    int64_t Kp;              // padded K (multiple of the layout's codes per block)
    int32_t* acc;            // output, acc[t * acc_stride + o]
    int64_t acc_stride;      // >= N
};

inline RowWalk row_walk(const GemmArgs& a, int64_t o) {
    const int64_t g0 = o / kRowGroup * kRowGroup;
    const int64_t rows = a.N - g0 < kRowGroup ? a.N - g0 : kRowGroup;
    return {a.w + sb_offset(o, 0, a.N, a.w_stride), rows * kBlockBytes};
}

// One kernel computes rows [o0, o1) for every token.
using MatmulKernel = void (*)(const GemmArgs& a, int64_t o0, int64_t o1);

// Per-token activation quantization of one row of K floats (spec:
// docs/quantization.md): writes K codes, s_x and the sum of the codes.
// Returns false (and leaves the outputs unspecified) if the row holds a
// non-finite value.
using QuantRowKernel = bool (*)(const float* x, int64_t k, int8_t* codes, float* s_x,
                                int32_t* code_sum);

}  // namespace ternlab
