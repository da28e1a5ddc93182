// Ternary-weight x int8-activation matrix products, one pair per ISA:
//   gemv_*: one token (decode). Weights are decoded in registers and used once;
//           each step walks one row group (one sequential stream; on AVX-512 its
//           rows also share each activation load). Memory-bound: the packed
//           weights (2 bits a weight) are the only large stream.
//   gemm_*: several tokens (prefill, batched decode). A panel of rows is decoded
//           once into an L1-resident buffer of unsigned fields and reused by
//           every token; the micro-kernel is register-blocked over rows x tokens.
//           (AVX2's 2-bit GEMM instead decodes in registers for 8 tokens at a
//           time: faster there at every T, gemm_avx2.cpp.)
// All compute acc[t, o] = sum_k x[t, k] * code[o, k] exactly (int32) for rows
// [o0, o1) and every token; see common.h for GemmArgs. The gemv3_/gemm3_
// kernels read the base-3 layout (kBase3), the others the 2-bit one.
#pragma once

#include "kernels/common.h"

namespace ternlab {

void gemm_scalar(const GemmArgs& a, int64_t o0, int64_t o1);  // the reference, any T
void gemv_avx2(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm_avx2(const GemmArgs& a, int64_t o0, int64_t o1);
// AVX-VNNI (2-bit layout): the AVX-512 panel GEMM on 256-bit vpdpbusd (avxvnni/).
void gemm_avxvnni(const GemmArgs& a, int64_t o0, int64_t o1);
void gemv_avx512(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm_avx512(const GemmArgs& a, int64_t o0, int64_t o1);
void gemv_neon(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm_neon(const GemmArgs& a, int64_t o0, int64_t o1);
void gemv_neondot(const GemmArgs& a, int64_t o0, int64_t o1);  // the same, sdot products
void gemm_neondot(const GemmArgs& a, int64_t o0, int64_t o1);

void gemm3_scalar(const GemmArgs& a, int64_t o0, int64_t o1);  // the base-3 reference, any T
// AVX2: the digits from compares and a pshufb lookup, see gemm_avx2.cpp.
void gemv3_avx2(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm3_avx2(const GemmArgs& a, int64_t o0, int64_t o1);
// AVX-512 VBMI: the digits come from byte lookups (vpermi2b), see gemm_avx512.cpp.
void gemv3_avx512vbmi(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm3_avx512vbmi(const GemmArgs& a, int64_t o0, int64_t o1);
// AMX-INT8: fields decoded into a panel, 16 rows x 64 codes x 16 tokens a tile multiply
// (amx/gemm_amx.cpp); T >= 2 only (the GEMV stays the AVX-512 one).
void gemm_amx(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm3_amx(const GemmArgs& a, int64_t o0, int64_t o1);
// NEON: the digits from compares and a vqtbl4q/vqtbx2q lookup, see gemm_neon.cpp.
void gemv3_neon(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm3_neon(const GemmArgs& a, int64_t o0, int64_t o1);
void gemv3_neondot(const GemmArgs& a, int64_t o0, int64_t o1);
void gemm3_neondot(const GemmArgs& a, int64_t o0, int64_t o1);

}  // namespace ternlab
