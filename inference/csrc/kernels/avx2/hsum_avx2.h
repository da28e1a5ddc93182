// The sum of a vector's eight int32 lanes, for the 256-bit kernels (AVX2, AVX-VNNI and
// the AVX-512 files' 256-bit halves). Static and AVX2-targeted (isa.h's rules): it inlines
// into every function whose target includes AVX2.
#pragma once

#include "kernels/isa.h"

#if TERNLAB_X86

namespace ternlab {
namespace {

TL_AVX2 inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

}  // namespace
}  // namespace ternlab

#endif
