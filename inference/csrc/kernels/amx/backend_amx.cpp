// The AMX backend: avx512vbmi's table with the ternary GEMMs (T >= 2: prefill and
// batched decode) on the tile unit. The GEMVs stay: one token is a memory-bound
// stream that the VNNI kernels already keep up with.
#include "kernels/dispatch.h"
#include "kernels/gemm.h"

#if defined(__x86_64__) || defined(__i386__)

namespace ternlab {

const Backend& amx_backend() {
    static const Backend b = [] {
        Backend t = avx512vbmi_backend();
        t.name = "amx";
        t.ternary_gemm[kBits2] = gemm_amx;
        t.ternary_gemm[kBase3] = gemm3_amx;
        return t;
    }();
    return b;
}

}  // namespace ternlab

#endif
