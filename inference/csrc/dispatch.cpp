#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "gemm.h"
#include "isa.h"
#include "quant_act.h"

#if TERNLAB_NEON && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace ternlab {

namespace {

// The scalar reference handles any T, so it serves as GEMV too, and as the
// base-3 kernel of the ISAs without a SIMD one.
const KernelTable kScalar{"scalar", quant_row_scalar, {gemm_scalar, gemm3_scalar},
                          {gemm_scalar, gemm3_scalar}, kBits2, false};
const KernelTable kAvx2{"avx2", quant_row_avx2, {gemv_avx2, gemv3_avx2},
                        {gemm_avx2, gemm3_avx2}, kBits2, true};
const KernelTable kAvx512{"avx512", quant_row_avx512, {gemv_avx512, gemv3_avx2},
                          {gemm_avx512, gemm3_avx2}, kBits2, true};
const KernelTable kAvx512Vbmi{"avx512vbmi", quant_row_avx512,
                              {gemv_avx512, gemv3_avx512vbmi},
                              {gemm_avx512, gemm3_avx512vbmi}, kBase3, true};
// NEON keeps the 2-bit layout preferred: its base-3 kernels are bit-exact (qemu
// self-test) but have not been timed on an aarch64 CPU yet.
const KernelTable kNeon{"neon", quant_row_neon, {gemv_neon, gemv3_neon},
                        {gemm_neon, gemm3_neon}, kBits2, false};
const KernelTable* const kAll[] = {&kScalar, &kAvx2, &kAvx512, &kAvx512Vbmi, &kNeon};

bool cpu_supports(const KernelTable* t) {
    if (t == &kScalar) return true;
#if TERNLAB_X86
    __builtin_cpu_init();
    // libgcc/compiler-rt also check that the OS saves the YMM/ZMM state (XCR0).
    if (t == &kAvx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma");
    if (t == &kAvx512) return avx512;
    if (t == &kAvx512Vbmi) return avx512 && __builtin_cpu_supports("avx512vbmi");
#endif
#if TERNLAB_NEON
    if (t == &kNeon) return true;  // AdvSIMD is mandatory on AArch64
#endif
    return false;
}

const KernelTable* best() {
    const KernelTable* b = &kScalar;
    for (const KernelTable* t : kAll)
        if (cpu_supports(t)) b = t;  // kAll is ordered from worst to best
    return b;
}

std::atomic<const KernelTable*>& active() {
    // No environment override: the choice is made in code (set_isa), never hidden.
    static std::atomic<const KernelTable*> a{best()};
    return a;
}

}  // namespace

std::vector<std::string> known_isas() {
    std::vector<std::string> out;
    for (const KernelTable* t : kAll) out.emplace_back(t->name);
    return out;
}

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (const KernelTable* t : kAll)
        if (cpu_supports(t)) out.emplace_back(t->name);
    return out;
}

const KernelTable* kernel_table(const std::string& name) {
    for (const KernelTable* t : kAll)
        if (name == t->name) return cpu_supports(t) ? t : nullptr;
    return nullptr;
}

void set_isa(const std::string& name) {
    if (name.empty() || name == "auto") {
        active().store(best());
        return;
    }
    bool known = false;
    for (const KernelTable* t : kAll) known |= (name == t->name);
    std::string avail;
    for (const std::string& s : available_isas()) avail += (avail.empty() ? "" : ", ") + s;
    if (!known) {
        std::string all;
        for (const std::string& s : known_isas()) all += s + ", ";
        throw std::invalid_argument("unknown ISA '" + name + "'; expected one of " + all +
                                    "or 'auto'");
    }
    const KernelTable* t = kernel_table(name);
    if (t == nullptr)
        throw std::runtime_error("ISA '" + name + "' is not supported on this CPU (available: " +
                                 avail + ")");
    active().store(t);
}

std::string current_isa() { return kernels().name; }

Layout parse_layout(const std::string& name) {
    if (name == "auto" || name.empty()) return kernels().preferred_layout;
    if (name == "bits2") return kBits2;
    if (name == "base3") return kBase3;
    throw std::invalid_argument("unknown ternary layout '" + name +
                                "'; expected 'bits2', 'base3' or 'auto'");
}

const char* layout_name(Layout layout) { return layout == kBase3 ? "base3" : "bits2"; }

const KernelTable& kernels() { return *active().load(); }

}  // namespace ternlab
