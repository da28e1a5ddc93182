// Run-time selection of the kernels: one backend table per ISA holding every
// kernel family the engine runs, the scalar reference as the default of every
// slot; detect the CPU, and let tests force a specific ISA (set_isa).
#pragma once

#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/attention_kernels.h"
#include "kernels/common.h"
#include "kernels/float_matmul.h"

namespace ternlab {

struct Backend {
    const char* name;  // "scalar", "avx2", "avxvnni", "avx512", "avx512vbmi", "amx", "neon", "neondot"
    QuantRowKernel quant_row;                // per-token int8 activation codes
    MatmulKernel ternary_gemv[kNumLayouts];  // T == 1, per packed layout
    MatmulKernel ternary_gemm[kNumLayouts];  // T >= 2
    FloatKernel float_gemv[kNumFloatFormats];  // F32, F16, Q8_0, Q6_K, Q4_0 rows; T == 1
    FloatKernel float_gemm[kNumFloatFormats];  // any T
    const char* float_isa;  // whose F32/F16 kernels these are (avx512vbmi: avx512's)
    // Attention inner loops for head_dim % attention_lanes == 0 (the scalar ones otherwise).
    const AttentionKernels* attention;
    int attention_lanes;
    GatedActKernel silu_mul;  // g = silu(g) * u between the gate/up and down projections
    // The layout this ISA multiplies fastest: base-3 only where its SIMD decode keeps
    // up with the 2-bit kernels (elsewhere base-3 is correct, just slower).
    Layout preferred_layout;
};

// Each ISA's table (backend_<isa>.cpp): the slots it speeds up, the rest inherited.
const Backend& scalar_backend();
#if defined(__x86_64__) || defined(__i386__)
const Backend& avx2_backend();
const Backend& avxvnni_backend();
const Backend& avx512_backend();
const Backend& avx512vbmi_backend();
const Backend& amx_backend();
#endif
#if defined(__aarch64__)
const Backend& neon_backend();
const Backend& neondot_backend();
#endif

// ISAs this build has *and* this CPU can run, from the scalar reference to the best.
std::vector<std::string> available_isas();
// Every ISA name this build knows, whether or not the CPU supports it.
std::vector<std::string> known_isas();
// Selects the kernels; throws std::invalid_argument for an unknown name and
// std::runtime_error when the CPU (or the build) cannot run it. "auto" (or "")
// picks the best available, which is also the initial choice.
void set_isa(const std::string& name);
std::string current_isa();
const Backend& backend();
const Backend* backend_table(const std::string& name);  // nullptr if not available

// Packed layouts by name: "bits2", "base3", or "auto" (the current ISA's
// preferred_layout). Throws std::invalid_argument for another name.
Layout parse_layout(const std::string& name);
const char* layout_name(Layout layout);

}  // namespace ternlab
