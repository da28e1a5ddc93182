// The engine's packed ternary weight layouts (see common.h and
// docs/engine-kernels.md): rows of 64-byte super-blocks, either 256 codes in
// 2-bit fields (kBits2) or 320 codes as base-3 digits, five to a byte (kBase3).
#pragma once

#include "kernels/common.h"

namespace ternlab {

// Pack int8 codes [n, k] (row-major) into n rows of packed_row_bytes(k, layout)
// bytes. Returns -1 on success, or the flat index of the first code outside
// {-1, 0, 1} (nothing useful is written then).
int64_t pack_ternary(const int8_t* codes, int64_t n, int64_t k, uint8_t* packed,
                     Layout layout = kBits2);

// The inverse. Returns -1 on success, or the flat index (row * k + col) of the
// first code whose field is invalid (the 2-bit 0b11, or a base-3 byte > 242).
int64_t unpack_ternary(const uint8_t* packed, int64_t n, int64_t k, int8_t* codes,
                       Layout layout = kBits2);

// One packed byte of the layout from the codes c[0], c[64], c[128], ... of a
// super-block (a stride of 64 codes); the loaders' fast path and the packer share it.
inline uint8_t pack_byte(const int8_t* c, Layout layout) {
    if (layout == kBase3)
        return static_cast<uint8_t>((c[0] + 1) + 3 * (c[64] + 1) + 9 * (c[128] + 1) +
                                    27 * (c[192] + 1) + 81 * (c[256] + 1));
    return static_cast<uint8_t>((c[0] + 1) | ((c[64] + 1) << 2) | ((c[128] + 1) << 4) |
                                ((c[192] + 1) << 6));
}

// The code (-1, 0, +1) of digit/field j of a packed byte, or 2 if the field is invalid.
inline int unpack_field(uint8_t byte, int j, Layout layout) {
    if (layout == kBase3) {
        static const int kPow3[kBase3Digits] = {1, 3, 9, 27, 81};
        return byte > 242 ? 2 : byte / kPow3[j] % 3 - 1;
    }
    const int f = (byte >> (2 * j)) & 3;
    return f == 3 ? 2 : f - 1;
}

}  // namespace ternlab
