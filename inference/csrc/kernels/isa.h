// Function-level target attributes: the package is built for baseline x86-64
// (no -march=native, the wheel must run anywhere), and each SIMD kernel opts
// into its instruction set per function. dispatch.cpp only calls one after
// checking the CPU at run time.
//
// Rules for files that use these (an ODR trap otherwise): include every
// standard header *before* any target code, keep all helpers `static` (or in
// an anonymous namespace) and marked with the same attribute, and never
// instantiate std templates inside target-specific functions.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define TERNLAB_X86 1
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 headers use *_undefined_*() values that trip
// -W(maybe-)uninitialized once inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define TL_AVX2 __attribute__((target("avx2,fma")))
// AVX-VNNI: the VEX (256-bit) vpdpbusd of Alder Lake and later cores without AVX-512.
#define TL_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))
#define TL_AVX512 \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define TL_AVX512VBMI                                                                     \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni," \
                          "avx512vbmi")))
// AMX-INT8 (Sapphire Rapids and later): tile registers and tile multiply-adds, on top of
// the AVX-512 VBMI decoders. The OS must grant the tile state first (dispatch.cpp).
#define TL_AMX                                                                            \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni," \
                          "avx512vbmi,amx-tile,amx-int8")))
namespace ternlab {
// The decode GEMVs read their weights as one sequential stream; on Zen 3 the
// hardware prefetchers alone kept it at about 60% of the read bandwidth at one
// thread. Each GEMV step asks for the n bytes kStreamPrefetch ahead of what it
// reads (n: the bytes that step consumes). A prefetch never faults, so running
// past the end of a matrix is harmless (the address is formed as an integer:
// no out-of-bounds pointer arithmetic).
constexpr int64_t kStreamPrefetch = 4096;
inline void prefetch_ahead(const void* p, int64_t n) {
    const uintptr_t q = reinterpret_cast<uintptr_t>(p) + kStreamPrefetch;
    for (int64_t i = 0; i < n; i += 64)
        _mm_prefetch(reinterpret_cast<const char*>(q + static_cast<uintptr_t>(i)), _MM_HINT_T0);
}
}  // namespace ternlab
#else
#define TERNLAB_X86 0
#endif

#if defined(__aarch64__)
#define TERNLAB_NEON 1
#include <arm_neon.h>
// ARMv8.2 dot product (sdot: 16 int8 products into 4 int32 lanes in one instruction),
// for the neondot kernels only; GCC 12 takes the feature with an architecture.
#if defined(__clang__)
#define TL_NEONDOT __attribute__((target("dotprod")))
#else
#define TL_NEONDOT __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#else
#define TERNLAB_NEON 0
#endif
