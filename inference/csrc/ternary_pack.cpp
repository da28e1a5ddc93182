// Packing is offline work (done once at load time), so plain scalar code.
#include "ternary_pack.h"

namespace ternlab {

int64_t pack_ternary(const int8_t* codes, int64_t n, int64_t k, uint8_t* packed) {
    const int64_t row_bytes = packed_row_bytes(k);
    for (int64_t idx = 0; idx < n * k; ++idx) {
        if (codes[idx] < -1 || codes[idx] > 1) return idx;
    }
    for (int64_t o = 0; o < n; ++o) {
        const int8_t* c = codes + o * k;
        for (int64_t sb = 0; sb < row_bytes / kBlockBytes; ++sb) {
            uint8_t* p = packed + sb_offset(o, sb, n, row_bytes);
            for (int64_t i = 0; i < kBlockBytes; ++i) {
                unsigned v = 0;
                for (int j = 0; j < 4; ++j) {
                    const int64_t col = sb * kQK + 64 * j + i;
                    const int code = col < k ? c[col] : 0;  // pad with the zero code
                    v |= static_cast<unsigned>(code + 1) << (2 * j);
                }
                p[i] = static_cast<uint8_t>(v);
            }
        }
    }
    return -1;
}

int64_t unpack_ternary(const uint8_t* packed, int64_t n, int64_t k, int8_t* codes) {
    const int64_t row_bytes = packed_row_bytes(k);
    for (int64_t o = 0; o < n; ++o) {
        for (int64_t col = 0; col < k; ++col) {
            const uint8_t* p = packed + sb_offset(o, col / kQK, n, row_bytes);
            const int64_t byte = col % kBlockBytes;
            const int shift = 2 * static_cast<int>(col % kQK / kBlockBytes);
            const int field = (p[byte] >> shift) & 3;
            if (field == 3) return o * k + col;
            codes[o * k + col] = static_cast<int8_t>(field - 1);
        }
    }
    return -1;
}

}  // namespace ternlab
