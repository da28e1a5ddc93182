// Run-time selection of the kernels: detect the CPU, keep one function table
// per ISA, and let tests force a specific one (set_isa).
#pragma once

#include <string>
#include <vector>

#include "common.h"

namespace ternlab {

struct KernelTable {
    const char* name;        // "scalar", "avx2", "avx512", "avx512vbmi", "neon"
    QuantRowKernel quant_row;
    MatmulKernel gemv[kNumLayouts];  // T == 1, per packed layout
    MatmulKernel gemm[kNumLayouts];  // T >= 2
    // The layout this ISA multiplies fastest: base-3 only where a SIMD kernel
    // decodes it (elsewhere its kernels are the scalar reference: correct, slow).
    Layout preferred_layout;
    // The CPU has AVX2 + FMA: the attention kernels may use them too.
    bool avx2;
};

// ISAs this build has *and* this CPU can run, from the scalar reference to the best.
std::vector<std::string> available_isas();
// Every ISA name this build knows, whether or not the CPU supports it.
std::vector<std::string> known_isas();
// Selects the kernels; throws std::invalid_argument for an unknown name and
// std::runtime_error when the CPU (or the build) cannot run it. "auto" (or "")
// picks the best available, which is also the initial choice.
void set_isa(const std::string& name);
std::string current_isa();
const KernelTable& kernels();
const KernelTable* kernel_table(const std::string& name);  // nullptr if not available

// Packed layouts by name: "bits2", "base3", or "auto" (the current ISA's
// preferred_layout). Throws std::invalid_argument for another name.
Layout parse_layout(const std::string& name);
const char* layout_name(Layout layout);

}  // namespace ternlab
