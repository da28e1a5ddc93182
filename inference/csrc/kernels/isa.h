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
#define TL_AVX512 \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define TL_AVX512VBMI                                                                     \
    __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni," \
                          "avx512vbmi")))
#else
#define TERNLAB_X86 0
#endif

#if defined(__aarch64__)
#define TERNLAB_NEON 1
#include <arm_neon.h>
#else
#define TERNLAB_NEON 0
#endif
