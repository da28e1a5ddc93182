// The engine's packed ternary weight layout (see common.h and
// docs/engine-kernels.md): rows of super-blocks of 256 codes in 64 bytes,
// byte i holding the codes 64*j + i (j = 0..3) in bits 2j..2j+1 as code + 1.
#pragma once

#include "common.h"

namespace ternlab {

// Pack int8 codes [n, k] (row-major) into n rows of packed_row_bytes(k) bytes.
// Returns -1 on success, or the flat index of the first code outside {-1, 0, 1}
// (nothing useful is written then).
int64_t pack_ternary(const int8_t* codes, int64_t n, int64_t k, uint8_t* packed);

// The inverse. Returns -1 on success, or the flat index (row * k + col) of the
// first code whose 2-bit field is the invalid 0b11.
int64_t unpack_ternary(const uint8_t* packed, int64_t n, int64_t k, int8_t* codes);

}  // namespace ternlab
