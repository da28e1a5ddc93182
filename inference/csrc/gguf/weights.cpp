// load_linear: GGUF weight tensors into the engine's form; linear_forward:
// y = x @ W^T on it; dequantize_row: one float row (the token embedding).
//
// Ternary sources (one 2-bit or base-3 field per weight, see each decoder) are
// decoded a row at a time into int8 codes and packed into the engine layout. TQ1_0
// and TQ2_0 carry an fp16 d per 256 values; ternlab's exporter writes the same
// d = f16(scale) in every block that holds a non-zero code (d = 0 in all-zero
// blocks), so the tensor scale is that common d, and blocks with different
// non-zero scales cannot be represented by the per-tensor engine: refused.
#include "gguf/weights.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/common.h"
#include "kernels/dispatch.h"
#include "kernels/float_matmul.h"
#include "kernels/q4_0_int8.h"
#include "kernels/q8_0_int8.h"
#include "kernels/ternary_pack.h"
#include "model/engine.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

constexpr int64_t kMaxTernaryK = (int64_t{1} << 24) - 1;  // |acc| <= 128 K stays inside int32
constexpr int64_t kQK_TQ = 256;                          // values per TQ1_0 / TQ2_0 block
constexpr int64_t kTQ2Bytes = 66;                        // 64 code bytes, fp16 d
constexpr int64_t kTQ1Bytes = 54;                        // 48 + 4 base-3 bytes, fp16 d
constexpr int64_t kI2SBlock = 128;                       // values per I2_S block (32 bytes)
constexpr int64_t kRowAlign = 16;                        // thread ranges start on 64-byte lines

std::string describe(const GgufFile& f, const GgufTensor& t) {
    return f.path() + ": tensor '" + t.name + "' (" + type_name(t.type) + ")";
}

// ---- ternary decoders: one row of n_in values into codes, or an error -----------

// The TQ1_0 byte table: a base-3 byte q holds 5 trits, trit n being
// ((uint8)(q * 3^n) * 3) >> 8 (ggml's dequantize_row_tq1_0). A byte is valid only
// if it is the canonical encoding ceil(v * 256 / 243) of the value v its trits
// spell (most significant first), as ggml's and gguf-py's quantizers write it.
struct Tq1Table {
    int8_t trit[256][5];
    bool valid[256];
    Tq1Table() {
        static const int pow3[5] = {1, 3, 9, 27, 81};
        for (int q = 0; q < 256; ++q) {
            int v = 0;
            for (int n = 0; n < 5; ++n) {
                const int t = (static_cast<uint8_t>(q * pow3[n]) * 3) >> 8;
                trit[q][n] = static_cast<int8_t>(t);
                v = v * 3 + t;
            }
            valid[q] = (v * 256 + 242) / 243 == q;
        }
    }
};
const Tq1Table& tq1_table() {
    static const Tq1Table table;
    return table;
}

// True if some 2-bit field of bytes [0, n) is the invalid 0b11.
bool has_field_11(const uint8_t* p, int64_t n) {
    unsigned bad = 0;
    for (int64_t i = 0; i < n; ++i) bad |= p[i] & (p[i] >> 1) & 0x55u;  // both bits of a field
    return bad != 0;
}

// TQ2_0 block: byte 32c + m holds values 128c + 32j + m (j = 0..3) in bits 2j..2j+1.
bool decode_tq2_block(const uint8_t* blk, int8_t* codes) {
    if (has_field_11(blk, 64)) return false;
    for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 4; ++j)
            for (int m = 0; m < 32; ++m)
                codes[128 * c + 32 * j + m] =
                    static_cast<int8_t>(((blk[32 * c + m] >> (2 * j)) & 3) - 1);
    return true;
}

// TQ1_0 block: qs[0..32) holds values 32n + m (n = 0..4), qs[32..48) values
// 160 + 16n + m, qh[0..4) values 240 + 4n + m (n = 0..3), trit n of each byte.
bool decode_tq1_block(const uint8_t* blk, int8_t* codes) {
    const Tq1Table& tab = tq1_table();
    for (int i = 0; i < 52; ++i)
        if (!tab.valid[blk[i]]) return false;
    for (int m = 0; m < 32; ++m)
        for (int n = 0; n < 5; ++n)
            codes[32 * n + m] = static_cast<int8_t>(tab.trit[blk[m]][n] - 1);
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 5; ++n)
            codes[160 + 16 * n + m] = static_cast<int8_t>(tab.trit[blk[32 + m]][n] - 1);
    for (int m = 0; m < 4; ++m)
        for (int n = 0; n < 4; ++n)
            codes[240 + 4 * n + m] = static_cast<int8_t>(tab.trit[blk[48 + m]][n] - 1);
    return true;
}

// The per-tensor scale of a TQ tensor, checked block by block (see the file comment).
struct TqScale {
    uint16_t bits = 0;  // fp16 of the common non-zero d; 0 until one is seen
    float value = 0.0f;
};

// Decodes row o of a TQ1_0/TQ2_0 tensor; blocks with d = 0 become zeros.
void decode_tq_row(const GgufFile& f, const GgufTensor& t, int64_t o, int64_t n_in, int8_t* codes,
                   TqScale& scale) {
    const bool tq2 = t.type == kTQ2_0;
    const int64_t block_bytes = tq2 ? kTQ2Bytes : kTQ1Bytes;
    const int64_t nb = n_in / kQK_TQ;
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = t.data + (o * nb + b) * block_bytes;
        int8_t* c = codes + b * kQK_TQ;
        const auto where = [&] {  // only built for an error message
            return " block " + std::to_string(o * nb + b) + " (row " + std::to_string(o) +
                   ", columns " + std::to_string(b * kQK_TQ) + ".." +
                   std::to_string(b * kQK_TQ + kQK_TQ - 1) + ")";
        };
        if (!(tq2 ? decode_tq2_block(blk, c) : decode_tq1_block(blk, c)))
            throw GgufError(describe(f, t) + where() +
                            (tq2 ? " holds the invalid 2-bit field 0b11"
                                 : " holds a byte that is not a base-3 encoding of 5 trits") +
                            ": not a ternary tensor (corrupt file?); re-export it");
        const uint16_t dbits = load_u16(blk + block_bytes - 2);
        const float d = fp16_to_fp32(dbits);
        if (!std::isfinite(d))
            throw GgufError(describe(f, t) + where() + " has a non-finite scale d; re-export it");
        unsigned any = 0;  // an OR of the codes (integer, so the loop vectorizes)
        for (int64_t i = 0; i < kQK_TQ; ++i) any |= static_cast<uint8_t>(c[i]);
        const bool nonzero = any != 0;
        if (d == 0.0f) {
            std::memset(c, 0, kQK_TQ);  // a zero scale zeroes the block, whatever its codes
            continue;
        }
        if (!nonzero) continue;  // an all-zero block contributes nothing, whatever its d
        if (d < 0.0f)
            throw GgufError(describe(f, t) + where() + " has a negative scale d = " +
                            std::to_string(d) +
                            "; ternlab's engine needs one positive scale per tensor");
        if (scale.bits == 0) {
            scale.bits = dbits;
            scale.value = d;
        } else if (dbits != scale.bits) {
            throw GgufError(describe(f, t) + ": per-block scales: ternlab's engine needs one "
                            "scale per tensor, but" + where() + " has d = " + std::to_string(d) +
                            " and an earlier block d = " + std::to_string(scale.value) +
                            " (a file quantized per block, e.g. by llama.cpp's quantize, "
                            "not exported by ternlab); re-export it with ternlab export");
        }
    }
}

// I2_S: blocks of 128 values over the whole tensor (rows are whole blocks):
// byte p of block b holds values 128b + p + 32j in bits 7-6, 5-4, 3-2, 1-0 (j = 0..3).
void decode_i2s_row(const GgufFile& f, const GgufTensor& t, int64_t o, int64_t n_in,
                    int8_t* codes) {
    const uint8_t* row = t.data + o * (n_in / 4);
    if (has_field_11(row, n_in / 4)) {
        int64_t col = 0;  // the slow path finds the first bad field for the message
        for (; col < n_in; ++col) {
            const int64_t byte = col / kI2SBlock * 32 + col % 32;
            if (((row[byte] >> (6 - 2 * (col % kI2SBlock / 32))) & 3) == 3) break;
        }
        throw GgufError(describe(f, t) + " holds the invalid 2-bit field 0b11 at weight [" +
                        std::to_string(o) + ", " + std::to_string(col) +
                        "]: not a ternary tensor (corrupt file?); re-export it");
    }
    for (int64_t b = 0; b < n_in / kI2SBlock; ++b) {
        const uint8_t* blk = row + b * 32;
        int8_t* c = codes + b * kI2SBlock;
        for (int j = 0; j < 4; ++j)
            for (int p = 0; p < 32; ++p)
                c[32 * j + p] = static_cast<int8_t>(((blk[p] >> (6 - 2 * j)) & 3) - 1);
    }
}

// One row of valid codes, zero-padded to kp = padded_k(n_in, layout), into the
// engine layout: pack_ternary's (ternary_pack.h) without its per-code checks and
// bounds tests, so the compiler vectorizes it; load time is dominated by this
// repacking. tests/test_engine_weights.py checks the result against
// unpack_ternary. Row o of an n-row matrix (row groups: common.h).
void pack_row(const int8_t* codes, int64_t kp, uint8_t* packed, int64_t o, int64_t n,
              Layout layout) {
    const int64_t q = codes_per_block(layout);
    const int64_t row_bytes = packed_row_bytes(kp, layout);
    for (int64_t sb = 0; sb < kp / q; ++sb) {
        const int8_t* c = codes + sb * q;
        uint8_t* p = packed + sb_offset(o, sb, n, row_bytes);
        for (int i = 0; i < kBlockBytes; ++i) p[i] = pack_byte(c + i, layout);
    }
}

float i2s_scale(const GgufFile& f, const GgufTensor& t, int64_t n) {
    float s;
    std::memcpy(&s, t.data + n / 4, sizeof s);  // after the n / 4 code bytes
    if (!std::isfinite(s) || !(s > 0.0f))
        throw GgufError(describe(f, t) + " has the scale " + std::to_string(s) +
                        " (after its codes); the engine needs a positive finite float32 "
                        "(corrupt file?); re-export it");
    return s;
}

Linear load_ternary(const GgufFile& f, const GgufTensor& t, Linear w, Layout layout) {
    if (w.n_in > kMaxTernaryK)
        throw GgufError(describe(f, t) + " has rows of " + std::to_string(w.n_in) +
                        " values; exact int32 accumulation allows at most " +
                        std::to_string(kMaxTernaryK));
    const int64_t prb = packed_row_bytes(w.n_in, layout);
    w.ternary = true;
    w.layout = layout;
    w.packed = aligned_bytes(static_cast<size_t>(w.n_out * prb));
    if (t.type == kI2_S) w.scale = i2s_scale(f, t, w.n_out * w.n_in);
    const int64_t kp = padded_k(w.n_in, layout);
    std::vector<int8_t> codes(static_cast<size_t>(kp), 0);  // zero padding past n_in
    TqScale tq;
    for (int64_t o = 0; o < w.n_out; ++o) {
        if (t.type == kI2_S)
            decode_i2s_row(f, t, o, w.n_in, codes.data());
        else
            decode_tq_row(f, t, o, w.n_in, codes.data(), tq);
        pack_row(codes.data(), kp, w.packed.data(), o, w.n_out, layout);
    }
    if (t.type != kI2_S) w.scale = tq.value;  // 0 only for an all-zero tensor
    f.release(t);
    return w;
}

FloatFormat float_format(uint32_t type) {
    switch (type) {
        case kF32: return kFmtF32;
        case kF16: return kFmtF16;
        case kQ8_0: return kFmtQ8_0;
        case kQ4_0: return kFmtQ4_0;
        default: return kFmtQ6_K;
    }
}

// Columns per panel for F32/F16 rows of k values: as even as whole 32-column steps
// allow. The quantized formats keep whole rows: their kernels quantize the
// activations to int8 and never re-read them as float32.
int64_t float_panel_k(FloatFormat fmt, int64_t k) {
    if ((fmt != kFmtF32 && fmt != kFmtF16) || k <= kFloatPanelMaxK) return 0;
    const int64_t panels = (k + kFloatPanelMaxK - 1) / kFloatPanelMaxK;
    return ((k + panels - 1) / panels + kQ8Block - 1) / kQ8Block * kQ8Block;
}

// Copies the tensor's rows into column panels (Linear::panels) and frees its mapped pages.
void split_into_panels(const GgufFile& f, const GgufTensor& t, FloatFormat fmt, Linear& w) {
    const int64_t src_row = float_row_bytes(fmt, w.n_in);
    w.panels = aligned_bytes(static_cast<size_t>(src_row * w.n_out));
    uint8_t* dst = w.panels.data();
    for (int64_t k0 = 0; k0 < w.n_in; k0 += w.panel_k) {
        const int64_t cols = std::min(w.panel_k, w.n_in - k0);
        const int64_t off = float_row_bytes(fmt, k0), bytes = float_row_bytes(fmt, cols);
        for (int64_t o = 0; o < w.n_out; ++o, dst += bytes)
            std::memcpy(dst, t.data + o * src_row + off, static_cast<size_t>(bytes));
    }
    w.data = w.panels.data();
    w.row_bytes = float_row_bytes(fmt, w.panel_k);
    f.release(t);
}

// Copies a Q4_0 or Q8_0 tensor's rows into the kernels' order (q4_0_int8.h,
// q8_0_int8.h), `panels` holding them, and frees its mapped pages (the token
// embedding, when this is the tied head, still reads its rows from the file).
void repack_rows(const GgufFile& f, const GgufTensor& t, Linear& w) {
    w.panels = aligned_bytes(static_cast<size_t>(w.row_bytes * w.n_out));
    const auto repack = t.type == kQ4_0 ? q40_repack_row : q80_repack_row;
    for (int64_t o = 0; o < w.n_out; ++o)
        repack(t.data + o * w.row_bytes, w.n_in, w.panels.data() + o * w.row_bytes);
    w.data = w.panels.data();
    f.release(t);
}

}  // namespace

bool is_float_type(uint32_t type) {
    return type == kF32 || type == kF16 || type == kQ8_0 || type == kQ6_K || type == kQ4_0;
}

AlignedBytes aligned_bytes(size_t n) {
    const size_t size = (n + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
    void* p = std::aligned_alloc(64, size == 0 ? 64 : size);
    if (p == nullptr) throw std::bad_alloc();
    AlignedBytes b;
    b.ptr = std::unique_ptr<uint8_t, void (*)(void*)>(static_cast<uint8_t*>(p), std::free);
    b.size = n;
    return b;
}

Linear load_linear(const GgufFile& f, const GgufTensor& t, Layout layout) {
    if (t.ne.size() != 2) {
        std::string shape;
        for (size_t i = t.ne.size(); i-- > 0;) shape += std::to_string(t.ne[i]) + (i ? ", " : "");
        throw GgufError(describe(f, t) + " has " + std::to_string(t.ne.size()) +
                        " dimensions (" + shape + "); a linear layer needs a 2-D weight "
                        "[n_out, n_in]");
    }
    Linear w;
    w.name = t.name;
    w.n_in = t.ne[0];
    w.n_out = t.ne[1];
    w.type = t.type;
    switch (t.type) {
        case kI2_S:
        case kTQ1_0:
        case kTQ2_0:
            return load_ternary(f, t, std::move(w), layout);
        case kF32:
        case kF16:
        case kQ8_0:
        case kQ6_K:
        case kQ4_0: {
            const FloatFormat fmt = float_format(t.type);
            if (t.type == kQ4_0 && w.n_in % kQ40PairValues != 0)
                throw GgufError(describe(f, t) + " is Q4_0 with rows of " +
                                std::to_string(w.n_in) + " values; the engine's Q4_0 kernels "
                                "take pairs of blocks, rows of a multiple of 64 values "
                                "(re-export this tensor as Q8_0 or F16)");
            w.data = t.data;  // stays in the mapping, unless split into panels
            w.row_bytes = float_row_bytes(fmt, w.n_in);
            w.panel_k = float_panel_k(fmt, w.n_in);
            if (w.panel_k > 0) split_into_panels(f, t, fmt, w);
            if (t.type == kQ4_0 || t.type == kQ8_0) repack_rows(f, t, w);
            return w;
        }
        default:
            throw GgufError(f.path() + ": tensor '" + t.name + "' has type " +
                            type_name(t.type) + "; the engine multiplies I2_S, TQ1_0, TQ2_0, "
                            "F32, F16, Q8_0, Q6_K, Q4_0 (re-export the model with one of these)");
    }
}

namespace {

// Rows [o0, o1) of every token: the panels one after another, each panel's product
// added to y in panel order. `xp` holds x's columns panel by panel ([T, cols] each).
void float_panels_rows(const Linear& w, FloatKernel kernel, const float* xp, int64_t T, float* y,
                       float* part, int64_t o0, int64_t o1) {
    const FloatFormat fmt = float_format(w.type);
    const uint8_t* data = w.data;
    for (int64_t k0 = 0; k0 < w.n_in; k0 += w.panel_k) {
        const int64_t cols = std::min(w.panel_k, w.n_in - k0);
        const int64_t row_bytes = float_row_bytes(fmt, cols);
        const FloatGemmArgs a{data, row_bytes, cols, xp + T * k0, T, k0 == 0 ? y : part, w.n_out};
        kernel(a, o0, o1);
        if (k0 > 0)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t o = o0; o < o1; ++o) y[t * w.n_out + o] += part[t * w.n_out + o];
        data += row_bytes * w.n_out;
    }
}

// x [T, n_in] rearranged panel by panel: [T, cols] for each panel, in order.
std::vector<float> columns_by_panel(const Linear& w, const float* x, int64_t T) {
    std::vector<float> xp(static_cast<size_t>(T * w.n_in));
    for (int64_t k0 = 0; k0 < w.n_in; k0 += w.panel_k) {
        const int64_t cols = std::min(w.panel_k, w.n_in - k0);
        for (int64_t t = 0; t < T; ++t)
            std::memcpy(xp.data() + T * k0 + t * cols, x + t * w.n_in + k0,
                        static_cast<size_t>(cols) * sizeof(float));
    }
    return xp;
}

}  // namespace

int64_t linear_forward(const Linear& w, const float* x, int64_t T, float* y, int threads) {
    if (T <= 0 || w.n_out == 0) return -1;
    if (w.ternary)
        return matmul_f32(w.packed.data(), w.n_out, w.n_in, w.scale, x, T, y, threads, w.layout);
    const Backend& kt = backend();
    const FloatFormat fmt = float_format(w.type);
    const FloatKernel kernel = T == 1 ? kt.float_gemv[fmt] : kt.float_gemm[fmt];
    const FloatGemmArgs a{w.data, w.row_bytes, w.n_in, x, T, y, w.n_out};
    std::vector<float> xp, part;
    if (w.panel_k > 0) {
        if (T > 1) xp = columns_by_panel(w, x, T);  // one token: x already is
        part.resize(static_cast<size_t>(T * w.n_out));
    }
    const float* xs = T > 1 ? xp.data() : x;
    // Contiguous row ranges, one per thread; every element is computed the same
    // way whatever the split (float_matmul.h), so results do not depend on it.
    parallel_ranges(threads, w.n_out, kRowAlign, [&](int64_t o0, int64_t o1) {
        if (w.panel_k > 0)
            float_panels_rows(w, kernel, xs, T, y, part.data(), o0, o1);
        else
            kernel(a, o0, o1);
    });
    return -1;
}

int64_t linear_forward_group(const Linear* const* ws, int n, const float* x, int64_t T,
                             float* const* ys, int threads) {
    bool shared = T > 0;
    for (int i = 0; i < n; ++i)
        shared = shared && ws[i]->ternary && ws[i]->n_in == ws[0]->n_in &&
                 ws[i]->layout == ws[0]->layout;
    if (!shared) {
        for (int i = 0; i < n; ++i) {
            const int64_t bad = linear_forward(*ws[i], x, T, ys[i], threads);
            if (bad >= 0) return bad;
        }
        return -1;
    }
    TernaryMatmul mats[kMaxGroup];  // matmul_f32_group refuses more
    for (int i = 0; i < n && i < kMaxGroup; ++i)
        mats[i] = {ws[i]->packed.data(), ws[i]->n_out, ws[i]->scale, ys[i]};
    return matmul_f32_group(mats, n, ws[0]->n_in, x, T, threads, ws[0]->layout);
}

void dequantize_row(const GgufTensor& t, int64_t row, float* out) {
    if (!is_float_type(t.type))
        throw GgufError("tensor '" + t.name + "' has type " + type_name(t.type) +
                        "; only F32, F16, Q8_0, Q6_K and Q4_0 rows can be read as float32 "
                        "(the token embedding must be one of these)");
    const int64_t rows = t.rows();
    if (row < 0 || row >= rows)
        throw std::out_of_range("row " + std::to_string(row) + " of tensor '" + t.name +
                                "' is out of range [0, " + std::to_string(rows) + ")");
    const FloatFormat fmt = float_format(t.type);
    const int64_t n = t.ne[0];
    float_row_to_f32(fmt, t.data + row * float_row_bytes(fmt, n), n, out);
}

}  // namespace ternlab
