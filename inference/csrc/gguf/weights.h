// Weight matrices of a GGUF model, ready for the engine's kernels.
//
// Ternary tensors (I2_S, TQ1_0, TQ2_0) are repacked once, at load, into one of
// the engine's 64-byte super-block layouts (common.h) with one float32 scale per
// tensor, and multiplied as the frozen BitLinear of docs/quantization.md
// (per-token int8 activations, exact int32 accumulation). Float tensors (F32,
// F16, Q8_0, Q6_K, Q4_0) stay in the mapping (the FP16 baseline and the output
// head): F32 and F16 are multiplied in float32 with fp32 activations, Q6_K,
// Q8_0 and Q4_0 with int8 activations per 256- and 32-value block (q6k_int8.h,
// q8_0_int8.h, q4_0_int8.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "kernels/common.h"

namespace ternlab {

// 64-byte aligned heap bytes.
struct AlignedBytes {
    std::unique_ptr<uint8_t, void (*)(void*)> ptr{nullptr, nullptr};
    size_t size = 0;
    uint8_t* data() const { return ptr.get(); }
};
AlignedBytes aligned_bytes(size_t n);

struct Linear {
    std::string name;
    int64_t n_out = 0;        // rows (ne[1])
    int64_t n_in = 0;         // row length (ne[0])
    uint32_t type = 0;        // the GGUF type it came from
    bool ternary = false;
    Layout layout = kBits2;   // ternary: the packed layout
    AlignedBytes packed;      // ternary: n_out rows of packed_row_bytes(n_in, layout)
    float scale = 0.0f;       // ternary: the per-tensor weight scale
    // Float types: rows inside the mapping, or in `panels` (F32/F16 column panels;
    // Q4_0's and Q8_0's rows repacked for their kernels, q4_0_int8.h, q8_0_int8.h).
    const uint8_t* data = nullptr;
    int64_t row_bytes = 0;          // float types: bytes per row (of a whole panel)
    // F32/F16 with n_in > kFloatPanelMaxK: the columns in panels of
    // panel_k (the last may be narrower), panel p the n_out rows of its columns,
    // stored one after another in `panels`; `data` points at panel 0. 0: one panel.
    int64_t panel_k = 0;
    AlignedBytes panels;
};

// Float rows longer than this are split into column panels at load (Linear). A
// GEMV walks one row at a time so the weights are one sequential stream; with
// longer rows the float32 activations it reads again for every row no longer
// stay in L1 beside that stream (measured on Zen 4: F16 rows of 6912 columns
// streamed at 10-12 GB/s, rows of 2560 and 2304 at 19-23).
constexpr int64_t kFloatPanelMaxK = 2560;

// Whether tensors of this GGUF type are float rows to the engine (F32, F16, Q8_0,
// Q6_K, Q4_0): multiplied by float_matmul.h's kernels and readable by dequantize_row.
bool is_float_type(uint32_t type);

// Builds the engine's form of a 2-D weight tensor (any of I2_S, TQ1_0, TQ2_0,
// F32, F16, Q8_0, Q6_K, Q4_0). Throws GgufError naming the file and tensor for another
// type, a shape that is not 2-D, or ternary data the engine cannot represent
// exactly (blocks with different non-zero scales, an invalid 2-bit/base-3 field).
// Ternary source pages are released from RSS after the copy; ternary weights
// are packed in `layout` (float tensors ignore it).
Linear load_linear(const GgufFile& f, const GgufTensor& t, Layout layout = kBits2);

// y[T, n_out] = x[T, n_in] @ W^T. Ternary: the frozen BitLinear (bit-exact with
// ternlab.bitlinear). Float types: float_matmul.h's kernels, and with column
// panels y = y_0 + y_1 + ... (each panel's product, added in panel order).
// Returns -1, or the first row of x with a non-finite value.
int64_t linear_forward(const Linear& w, const float* x, int64_t T, float* y, int threads);

// linear_forward of n weights on the same x into ys[i]: ternary weights with the
// same n_in and layout share one activation quantization and one parallel pass
// (engine.h matmul_f32_group); others run one by one. Same results either way.
int64_t linear_forward_group(const Linear* const* ws, int n, const float* x, int64_t T,
                             float* const* ys, int threads);

// Row `row` of a float tensor (F32, F16, Q8_0, Q6_K, Q4_0) as float32 (the token embedding).
void dequantize_row(const GgufTensor& t, int64_t row, float* out);

}  // namespace ternlab
