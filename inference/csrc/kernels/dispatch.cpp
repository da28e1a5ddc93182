#include "kernels/dispatch.h"

#include <atomic>
#include <stdexcept>

#include "kernels/isa.h"

#if TERNLAB_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if TERNLAB_NEON && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif TERNLAB_NEON && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace ternlab {

namespace {

// Each ISA by name, with its backend when this build has it and this CPU can run it.
struct Isa {
    const char* name;
    const Backend* (*get)();  // nullptr: not available
};

const Backend* none() { return nullptr; }
const Backend* scalar() { return &scalar_backend(); }

#if TERNLAB_X86
// libgcc/compiler-rt also check that the OS saves the YMM/ZMM state (XCR0). The float
// kernels convert fp16 with F16C, so it is part of every x86 SIMD backend.
bool cpu_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
bool cpu_avx512() {
    return cpu_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}
const Backend* avx2() { return cpu_avx2() ? &avx2_backend() : nullptr; }
const Backend* avxvnni() {
    return cpu_avx2() && __builtin_cpu_supports("avxvnni") ? &avxvnni_backend() : nullptr;
}
const Backend* avx512() { return cpu_avx512() ? &avx512_backend() : nullptr; }
const Backend* avx512vbmi() {
    return cpu_avx512() && __builtin_cpu_supports("avx512vbmi") ? &avx512vbmi_backend() : nullptr;
}
// AMX: the CPU has the tiles and INT8 multiplies, and the OS saves the tile state. Linux
// hands that state out per process on request (arch_prctl); without the grant the
// first tile instruction faults, so the request's answer decides.
bool cpu_amx() {
#if defined(__linux__)
    constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
    static const bool granted = __builtin_cpu_supports("amx-tile") &&
                                __builtin_cpu_supports("amx-int8") &&
                                syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) == 0;
    return granted;
#else
    return false;
#endif
}
const Backend* amx() {
    return avx512vbmi() != nullptr && cpu_amx() ? &amx_backend() : nullptr;
}
#else
const Backend* (*const amx)() = none;
const Backend* (*const avx2)() = none;
const Backend* (*const avxvnni)() = none;
const Backend* (*const avx512)() = none;
const Backend* (*const avx512vbmi)() = none;
#endif
#if TERNLAB_NEON
const Backend* neon() { return &neon_backend(); }  // AdvSIMD is mandatory on AArch64
// The dot product is optional before ARMv8.4: ask the OS (Linux: the auxiliary
// vector; macOS: sysctl).
bool cpu_dotprod() {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, nullptr, 0) == 0 && v != 0;
#else
    return false;
#endif
}
const Backend* neondot() { return cpu_dotprod() ? &neondot_backend() : nullptr; }
#else
const Backend* (*const neon)() = none;
const Backend* (*const neondot)() = none;
#endif

// From the scalar reference to the best: the last available one is the default.
const Isa kAll[] = {{"scalar", scalar},
                    {"avx2", avx2},
                    {"avxvnni", avxvnni},
                    {"avx512", avx512},
                    {"avx512vbmi", avx512vbmi},
                    {"amx", amx},
                    {"neon", neon},
                    {"neondot", neondot}};

const Backend* best() {
    const Backend* b = &scalar_backend();
    for (const Isa& i : kAll)
        if (const Backend* t = i.get()) b = t;
    return b;
}

std::atomic<const Backend*>& active() {
    // No environment override: the choice is made in code (set_isa), never hidden.
    static std::atomic<const Backend*> a{best()};
    return a;
}

}  // namespace

std::vector<std::string> known_isas() {
    std::vector<std::string> out;
    for (const Isa& i : kAll) out.emplace_back(i.name);
    return out;
}

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (const Isa& i : kAll)
        if (i.get()) out.emplace_back(i.name);
    return out;
}

const Backend* backend_table(const std::string& name) {
    for (const Isa& i : kAll)
        if (name == i.name) return i.get();
    return nullptr;
}

void set_isa(const std::string& name) {
    if (name.empty() || name == "auto") {
        active().store(best());
        return;
    }
    bool known = false;
    for (const Isa& i : kAll) known |= (name == i.name);
    if (!known) {
        std::string all;
        for (const std::string& s : known_isas()) all += s + ", ";
        throw std::invalid_argument("unknown ISA '" + name + "'; expected one of " + all +
                                    "or 'auto'");
    }
    const Backend* t = backend_table(name);
    if (t == nullptr) {
        std::string avail;
        for (const std::string& s : available_isas()) avail += (avail.empty() ? "" : ", ") + s;
        throw std::runtime_error("ISA '" + name + "' is not supported on this CPU (available: " +
                                 avail + ")");
    }
    active().store(t);
}

std::string current_isa() { return backend().name; }

Layout parse_layout(const std::string& name) {
    if (name == "auto" || name.empty()) return backend().preferred_layout;
    if (name == "bits2") return kBits2;
    if (name == "base3") return kBase3;
    throw std::invalid_argument("unknown ternary layout '" + name +
                                "'; expected 'bits2', 'base3' or 'auto'");
}

const char* layout_name(Layout layout) { return layout == kBase3 ? "base3" : "bits2"; }

const Backend& backend() { return *active().load(); }

}  // namespace ternlab
