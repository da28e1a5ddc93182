// The AVX-VNNI backend: avx2's table with the 2-bit ternary GEMM (T >= 2) on the
// 256-bit vpdpbusd. The GEMVs stay AVX2's (decode streams memory), and so do the
// base-3 kernels (AVX2 CPUs keep the 2-bit layout).
#include "kernels/dispatch.h"
#include "kernels/gemm.h"

#if defined(__x86_64__) || defined(__i386__)

namespace ternlab {

const Backend& avxvnni_backend() {
    static const Backend b = [] {
        Backend t = avx2_backend();
        t.name = "avxvnni";
        t.ternary_gemm[kBits2] = gemm_avxvnni;
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
