// What the Q4_0 and Q8_0 x int8 kernels (q4_0_int8.h, q8_0_int8.h) share after
// their integer lanes: the final reduction of the even and odd accumulators,
// and the output of a token the activation quantizer refused.
#pragma once

#include <limits>

namespace ternlab {

inline constexpr float kInt8RefusedToken = std::numeric_limits<float>::quiet_NaN();

// S = e + o lane by lane, then ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7)):
// the order both headers define (the SIMD kernels reduce their registers the same way).
inline float int8_lanes_reduce(const float* e, const float* o) {
    float s[8];
    for (int l = 0; l < 8; ++l) s[l] = e[l] + o[l];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

}  // namespace ternlab
