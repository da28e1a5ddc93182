// AMX-INT8 ternary GEMM (prefill and batched decode). One TDPBUSD multiplies a tile
// of 16 weight rows x 64 codes (unsigned fields f = code + 1, decoded once into an
// L2-resident panel) by the same 64 codes of up to 16 tokens (signed activations in
// the tile's VNNI order: row kk holds codes 4kk..4kk+3 of each token) into a 16 x 16
// tile of int32 sums: 16384 exact multiply-adds an instruction, against 64 for one
// vpdpbusd. sum f*x - sum x = sum code*x, as in the VNNI kernels.
//
// Tiles: 0-3 accumulate (row block r, token tile u) as tile 2r + u; 4 and 5 hold the
// two row blocks' fields, 6 and 7 the two token tiles' activations. Each pass over K
// loads 4 tiles for 4 multiplies. Rows past the last whole block of 16 (a matrix
// whose N is not a multiple of 16) take the VNNI kernel.
#include <cstring>
#include <vector>

#include "kernels/avx512/decode_avx512.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {

namespace {

constexpr int64_t kBlockRows = 16;     // weight rows per A tile
constexpr int64_t kTileTokens = 16;    // tokens per B tile at most
constexpr int64_t kGroupTokens = 128;  // tokens laid out at once (their codes stay in L2)
constexpr int64_t kChunk = 64;         // codes per tile multiply (K of one TDPBUSD)

// Per-thread scratch, allocated outside the target code (isa.h): 64-byte aligned.
uint8_t* amx_scratch(int64_t n) {
    thread_local std::vector<uint8_t> buf;
    if (static_cast<int64_t>(buf.size()) < n + 64) buf.resize(static_cast<size_t>(n + 64));
    const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t{63});
}

// The LDTILECFG block (palette 1): rows and bytes per row of each of the 8 tiles.
struct alignas(64) TileConfig {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

// Token tiles `width` tokens wide (T < 16 takes a narrower tile, not zero padding).
TL_AMX inline void configure_tiles(int64_t width) {
    TileConfig c{};
    c.palette = 1;
    for (int i = 0; i < 8; ++i) {
        c.rows[i] = kBlockRows;
        c.colsb[i] = static_cast<uint16_t>(i == 4 || i == 5 ? kChunk : 4 * width);
    }
    // GCC 12 does not see ldtilecfg read its operand and may drop the stores that fill
    // it (llama.cpp's AMX code, built by that GCC, loads an all-zero configuration and
    // dies of SIGILL at its first tile instruction): the empty asm reads the block first.
    asm volatile("" : : "m"(c));
    _tile_loadconfig(&c);
}

// Tokens [g0, g0 + gn) in tile order: tile u, chunk c at xv + (u * nch + c) * 64 * width,
// its row kk the 4 codes 4kk.. of each token (one 32-bit gather a row). Tokens past
// the end of the last tile are zeros.
TL_AMX inline void layout_tokens(const GemmArgs& a, int64_t g0, int64_t gn, int64_t width,
                                 int8_t* xv) {
    const int64_t nch = a.Kp / kChunk;
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(a.x_stride)));
    const __mmask16 keep = static_cast<__mmask16>((1u << width) - 1);
    for (int64_t u = 0; u * width < gn; ++u) {
        const int64_t t0 = g0 + u * width;
        const int64_t n = gn - u * width < width ? gn - u * width : width;
        const __mmask16 live = static_cast<__mmask16>((1u << n) - 1);
        const int8_t* x = a.x + t0 * a.x_stride;
        int8_t* dst = xv + u * nch * kChunk * width;
        for (int64_t c = 0; c < nch; ++c)
            for (int kk = 0; kk < 16; ++kk, dst += 4 * width) {
                const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx,
                                                              x + c * kChunk + 4 * kk, 1);
                _mm512_mask_storeu_epi32(dst, keep, v);
            }
    }
}

// The sum tiles of MB row blocks x NB token tiles: tile 2r + v holds (block r, tile v).
template <int MB, int NB>
TL_AMX inline void zero_sums() {
    _tile_zero(0);
    if constexpr (NB == 2) _tile_zero(1);
    if constexpr (MB == 2) _tile_zero(2);
    if constexpr (MB == 2 && NB == 2) _tile_zero(3);
}

// One chunk of 64 codes: the fields of the MB row blocks (at f and f + 16 fstride, row
// stride fstride) times the NB token tiles' codes (at b and b + tile_bytes).
template <int MB, int NB>
TL_AMX inline void multiply_chunk(const uint8_t* f, int64_t fstride, const int8_t* b,
                                  int64_t bstride, int64_t tile_bytes) {
    _tile_loadd(4, f, fstride);
    _tile_loadd(6, b, bstride);
    if constexpr (NB == 2) _tile_loadd(7, b + tile_bytes, bstride);
    if constexpr (MB == 2) _tile_loadd(5, f + kBlockRows * fstride, fstride);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NB == 2) _tile_dpbusd(1, 4, 7);
    if constexpr (MB == 2) _tile_dpbusd(2, 5, 6);
    if constexpr (MB == 2 && NB == 2) _tile_dpbusd(3, 5, 7);
}

// The sum tiles to out (16 rows x width int32 each, tile 2r + v at out + (2r + v) * 16 *
// width).
template <int MB, int NB>
TL_AMX inline void save_sums(int32_t* out, int64_t width) {
    const int64_t bstride = 4 * width, step = kBlockRows * width;
    _tile_stored(0, out, bstride);
    if constexpr (NB == 2) _tile_stored(1, out + step, bstride);
    if constexpr (MB == 2) _tile_stored(2, out + 2 * step, bstride);
    if constexpr (MB == 2 && NB == 2) _tile_stored(3, out + 3 * step, bstride);
}

// One pass over K for MB row blocks x NB token tiles; the sums go to out (save_sums).
template <int MB, int NB>
TL_AMX inline void tile_pass(const uint8_t* panel, int64_t Kp, const int8_t* xv, int64_t width,
                             int32_t* out) {
    const int64_t nch = Kp / kChunk, tile_bytes = nch * kChunk * width;
    zero_sums<MB, NB>();
    for (int64_t c = 0; c < nch; ++c)
        multiply_chunk<MB, NB>(panel + c * kChunk, Kp, xv + c * kChunk * width, 4 * width,
                               tile_bytes);
    save_sums<MB, NB>(out, width);
}

// A tile of sums (16 rows x width, row-major) into acc[t, o..o+15] less xsum[t]: one
// 16-lane gather per token turns the tile's rows into the output's.
TL_AMX inline void store_tile(const GemmArgs& a, const int32_t* tile, int64_t width, int64_t o,
                              int64_t t0, int64_t n) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(width)));
    for (int64_t t = 0; t < n; ++t) {
        const __m512i v = _mm512_i32gather_epi32(idx, tile + t, 4);
        const __m512i d = _mm512_sub_epi32(v, _mm512_set1_epi32(a.xsum[t0 + t]));
        _mm512_storeu_si512(a.acc + (t0 + t) * a.acc_stride + o, d);
    }
}

// The saved sums (save_sums) of MB row blocks from o x nb token tiles from token t0,
// the tokens ending at t_end, into acc.
template <int MB>
TL_AMX inline void store_sums(const GemmArgs& a, const int32_t* out, int64_t width, int64_t o,
                              int64_t t0, int nb, int64_t t_end) {
    for (int r = 0; r < MB; ++r)
        for (int v = 0; v < nb; ++v) {
            const int64_t t = t0 + v * width;
            const int64_t n = t_end - t < width ? t_end - t : width;
            store_tile(a, out + (2 * r + v) * kBlockRows * width, width, o + r * kBlockRows, t, n);
        }
}

// The fields of one super-block of a row group (kRowGroup rows, one 64-byte block each,
// contiguous at src) into kRowGroup rows at dst, dst + stride, ... Functors: a lambda
// would not carry the target attribute.
struct Fields2 {
    static constexpr int64_t kCodes = kQK;
    TL_AMX void operator()(const uint8_t* src, uint8_t* dst, int64_t stride) const {
        const __m512i m3 = _mm512_set1_epi8(3);
        for (int64_t r = 0; r < kRowGroup; ++r, src += kBlockBytes, dst += stride) {
            prefetch_ahead(src, kBlockBytes);
            const __m512i p = _mm512_loadu_si512(src);
            for (int j = 0; j < 4; ++j) _mm512_store_si512(dst + 64 * j, fields(p, j, m3));
        }
    }
};
struct Fields3 {
    static constexpr int64_t kCodes = kQK3;
    const Base3Tables* tab;
    TL_AMX void operator()(const uint8_t* src, uint8_t* dst, int64_t stride) const {
        for (int64_t r = 0; r < kRowGroup; ++r, src += kBlockBytes, dst += stride) {
            prefetch_ahead(src, kBlockBytes);
            __m512i f[5];
            base3_fields(_mm512_loadu_si512(src), *tab, f);
            for (int j = 0; j < 5; ++j) _mm512_store_si512(dst + 64 * j, f[j]);
        }
    }
};

// Rows [o, o + 16) are kRowGroup whole row groups (o is a multiple of 16 and the block
// lies inside the matrix), each one sequential stream of 64-byte super-blocks, the
// group's rows in turn (common.h). Walking the streams in order, with a prefetch
// ahead, keeps the loads from waiting on memory.
inline const uint8_t* group_stream(const GemmArgs& a, int64_t o) {
    return a.w + sb_offset(o, 0, a.N, a.w_stride);
}

// Rows [o, o + 16 MB) for every token of tokens [g0, g0 + gn), decoded into a panel
// (row stride Kp) once and reused by each pair of token tiles.
template <int MB, class Dec>
TL_AMX inline void panel_blocks(const GemmArgs& a, int64_t o, const int8_t* xv, int64_t width,
                                int64_t g0, int64_t gn, uint8_t* panel, int32_t* out, Dec dec) {
    constexpr int64_t kCodes = Dec::kCodes;
    for (int64_t g = 0; g < MB * kBlockRows; g += kRowGroup) {
        const uint8_t* src = group_stream(a, o + g);
        for (int64_t sb = 0; sb < a.Kp / kCodes; ++sb)
            dec(src + sb * kRowGroup * kBlockBytes, panel + g * a.Kp + sb * kCodes, a.Kp);
    }
    const int64_t tiles = (gn + width - 1) / width, tile_bytes = a.Kp * width;
    for (int64_t u = 0; u < tiles; u += 2) {
        const int nb = tiles - u >= 2 ? 2 : 1;
        if (nb == 2)
            tile_pass<MB, 2>(panel, a.Kp, xv + u * tile_bytes, width, out);
        else
            tile_pass<MB, 1>(panel, a.Kp, xv + u * tile_bytes, width, out);
        store_sums<MB>(a, out, width, o, g0 + u * width, nb, g0 + gn);
    }
}

// Few tokens (NB <= 2 tiles: batched decode): each super-block of rows [o, o + 16 MB)
// is decoded into an L1 buffer and multiplied at once, the accumulators held in their
// tiles across all of K. Two buffers in turn, so one super-block's decode need not
// wait for the tile loads of the one before.
template <int MB, int NB, class Dec>
TL_AMX inline void stream_blocks(const GemmArgs& a, int64_t o, const int8_t* xv, int64_t width,
                                 int64_t g0, int64_t gn, uint8_t* buf, int32_t* out, Dec dec) {
    constexpr int64_t kCodes = Dec::kCodes, kChunks = kCodes / kChunk;
    constexpr int64_t kGroups = MB * kBlockRows / kRowGroup;
    const int64_t tile_bytes = a.Kp * width;
    const uint8_t* src[kGroups];
    for (int64_t g = 0; g < kGroups; ++g) src[g] = group_stream(a, o + g * kRowGroup);
    zero_sums<MB, NB>();
    for (int64_t sb = 0; sb < a.Kp / kCodes; ++sb) {
        uint8_t* f = buf + (sb & 1) * MB * kBlockRows * kCodes;
        for (int64_t g = 0; g < kGroups; ++g)
            dec(src[g] + sb * kRowGroup * kBlockBytes, f + g * kRowGroup * kCodes, kCodes);
        for (int64_t c = 0; c < kChunks; ++c)
            multiply_chunk<MB, NB>(f + c * kChunk, kCodes,
                                   xv + (sb * kChunks + c) * kChunk * width, 4 * width,
                                   tile_bytes);
    }
    save_sums<MB, NB>(out, width);
    store_sums<MB>(a, out, width, o, g0, NB, g0 + gn);
}

// Row blocks [o, o + 16 MB) for tokens [g0, g0 + gn).
template <int MB, class Dec>
TL_AMX inline void row_blocks(const GemmArgs& a, int64_t o, const int8_t* xv, int64_t width,
                              int64_t g0, int64_t gn, uint8_t* panel, int32_t* out, Dec dec) {
    const int64_t tiles = (gn + width - 1) / width;
    if (tiles == 1) return stream_blocks<MB, 1>(a, o, xv, width, g0, gn, panel, out, dec);
    if (tiles == 2) return stream_blocks<MB, 2>(a, o, xv, width, g0, gn, panel, out, dec);
    panel_blocks<MB>(a, o, xv, width, g0, gn, panel, out, dec);
}

// Rows [o0, o1) (whole blocks of 16) for every token.
template <class Dec>
TL_AMX inline void gemm_blocks(const GemmArgs& a, int64_t o0, int64_t o1, uint8_t* scratch,
                               Dec dec) {
    const int64_t width = a.T < kTileTokens ? a.T : kTileTokens;
    uint8_t* panel = scratch;
    int8_t* xv = reinterpret_cast<int8_t*>(panel + 2 * kBlockRows * a.Kp);
    int32_t* out = reinterpret_cast<int32_t*>(xv + (kGroupTokens + kTileTokens) * a.Kp);
    configure_tiles(width);
    for (int64_t g0 = 0; g0 < a.T; g0 += kGroupTokens) {
        const int64_t gn = a.T - g0 < kGroupTokens ? a.T - g0 : kGroupTokens;
        layout_tokens(a, g0, gn, width, xv);
        int64_t o = o0;
        for (; o + 2 * kBlockRows <= o1; o += 2 * kBlockRows)
            row_blocks<2>(a, o, xv, width, g0, gn, panel, out, dec);
        if (o < o1) row_blocks<1>(a, o, xv, width, g0, gn, panel, out, dec);
    }
    _tile_release();
}

int64_t scratch_bytes(const GemmArgs& a) {
    return 2 * kBlockRows * a.Kp + (kGroupTokens + kTileTokens) * a.Kp +
           4 * kBlockRows * kTileTokens * 4;
}

int64_t whole_blocks_end(int64_t o0, int64_t o1) {
    return o0 + (o1 - o0) / kBlockRows * kBlockRows;
}

}  // namespace

TL_AMX void gemm_amx(const GemmArgs& a, int64_t o0, int64_t o1) {
    const int64_t end = whole_blocks_end(o0, o1);
    if (end > o0) gemm_blocks(a, o0, end, amx_scratch(scratch_bytes(a)), Fields2{});
    if (end < o1) gemm_avx512(a, end, o1);
}

TL_AMX void gemm3_amx(const GemmArgs& a, int64_t o0, int64_t o1) {
    const int64_t end = whole_blocks_end(o0, o1);
    const Base3Tables tab = base3_tables();
    if (end > o0) gemm_blocks(a, o0, end, amx_scratch(scratch_bytes(a)), Fields3{&tab});
    if (end < o1) gemm3_avx512vbmi(a, end, o1);
}

}  // namespace ternlab

#else  // not x86: never selected by dispatch.cpp

namespace ternlab {
void gemm_amx(const GemmArgs&, int64_t, int64_t) {}
void gemm3_amx(const GemmArgs&, int64_t, int64_t) {}
}  // namespace ternlab

#endif
