// Packing is offline work (done once at load time), so plain scalar code.
#include "kernels/ternary_pack.h"

#include <vector>

namespace ternlab {

int64_t pack_ternary(const int8_t* codes, int64_t n, int64_t k, uint8_t* packed, Layout layout) {
    for (int64_t idx = 0; idx < n * k; ++idx) {
        if (codes[idx] < -1 || codes[idx] > 1) return idx;
    }
    const int64_t kp = padded_k(k, layout);
    const int64_t q = codes_per_block(layout);
    const int64_t row_bytes = packed_row_bytes(k, layout);
    std::vector<int8_t> row(static_cast<size_t>(kp), 0);  // padded with the zero code
    for (int64_t o = 0; o < n; ++o) {
        for (int64_t col = 0; col < k; ++col) row[col] = codes[o * k + col];
        for (int64_t sb = 0; sb < kp / q; ++sb) {
            uint8_t* p = packed + sb_offset(o, sb, n, row_bytes);
            for (int64_t i = 0; i < kBlockBytes; ++i) p[i] = pack_byte(&row[sb * q + i], layout);
        }
    }
    return -1;
}

int64_t unpack_ternary(const uint8_t* packed, int64_t n, int64_t k, int8_t* codes,
                       Layout layout) {
    const int64_t q = codes_per_block(layout);
    const int64_t row_bytes = packed_row_bytes(k, layout);
    for (int64_t o = 0; o < n; ++o) {
        for (int64_t col = 0; col < k; ++col) {
            const uint8_t* p = packed + sb_offset(o, col / q, n, row_bytes);
            const int code = unpack_field(p[col % kBlockBytes], static_cast<int>(col % q / kBlockBytes),
                                          layout);
            if (code == 2) return o * k + col;
            codes[o * k + col] = static_cast<int8_t>(code);
        }
    }
    return -1;
}

}  // namespace ternlab
