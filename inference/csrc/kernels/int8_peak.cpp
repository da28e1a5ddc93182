// The int8 multiply-add peak of the CPU: the ceiling of the ternary GEMM (prefill,
// batched decode), which on AVX2 is one vpmaddubsw (32 int8 products summed in
// pairs) plus one vpaddw into an int16 sum per 32 multiply-adds. The loop below
// runs nothing else (eight independent pairs on registers, no memory), so it is
// what no kernel built from these two instructions can beat.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

constexpr int64_t kBlock = 1 << 14;  // loop iterations between clock reads
constexpr double kMacsPerIteration = 8 * 32;

#if TERNLAB_X86
// Runs kBlock iterations of eight (vpmaddubsw, vpaddw) pairs; asm volatile, so the
// compiler keeps every one although the sums are never read.
TL_AVX2 __attribute__((noinline)) void madd_block() {
    __m256i c0 = _mm256_set1_epi16(1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
            c7 = c0;
    const __m256i w = _mm256_set1_epi8(1), x = _mm256_set1_epi8(0);
    for (int64_t i = 0; i < kBlock; ++i) {
        __m256i t0, t1, t2, t3;
        asm volatile(
            "vpmaddubsw %[x], %[w], %[t0]\n\tvpaddw %[t0], %[c0], %[c0]\n\t"
            "vpmaddubsw %[x], %[w], %[t1]\n\tvpaddw %[t1], %[c1], %[c1]\n\t"
            "vpmaddubsw %[x], %[w], %[t2]\n\tvpaddw %[t2], %[c2], %[c2]\n\t"
            "vpmaddubsw %[x], %[w], %[t3]\n\tvpaddw %[t3], %[c3], %[c3]\n\t"
            "vpmaddubsw %[x], %[w], %[t0]\n\tvpaddw %[t0], %[c4], %[c4]\n\t"
            "vpmaddubsw %[x], %[w], %[t1]\n\tvpaddw %[t1], %[c5], %[c5]\n\t"
            "vpmaddubsw %[x], %[w], %[t2]\n\tvpaddw %[t2], %[c6], %[c6]\n\t"
            "vpmaddubsw %[x], %[w], %[t3]\n\tvpaddw %[t3], %[c7], %[c7]"
            : [c0] "+x"(c0), [c1] "+x"(c1), [c2] "+x"(c2), [c3] "+x"(c3), [c4] "+x"(c4),
              [c5] "+x"(c5), [c6] "+x"(c6), [c7] "+x"(c7), [t0] "=&x"(t0), [t1] "=&x"(t1),
              [t2] "=&x"(t2), [t3] "=&x"(t3)
            : [w] "x"(w), [x] "x"(x));
    }
}

bool has_avx2() { return __builtin_cpu_supports("avx2"); }
#else
void madd_block() {}
bool has_avx2() { return false; }
#endif

}  // namespace

// G multiply-adds a second of `threads` threads together, each running the
// register-only loop for about `seconds`.
double int8_mac_peak_gmacs(int threads, double seconds) {
    if (threads < 1 || threads > 1024)
        throw std::invalid_argument("`threads` must be in [1, 1024], got " +
                                    std::to_string(threads));
    if (!(seconds > 0.0 && seconds <= 60.0))
        throw std::invalid_argument("`seconds` must be in (0, 60], got " + std::to_string(seconds));
    if (!has_avx2())
        throw std::runtime_error("int8_mac_peak measures the AVX2 vpmaddubsw + vpaddw pair; this "
                                 "CPU has no AVX2");
    std::vector<double> rate(static_cast<size_t>(threads));
    parallel_for(threads, [&](int t) {
        using clock = std::chrono::steady_clock;
        madd_block();  // warm-up: the core clocks up
        const auto t0 = clock::now();
        int64_t blocks = 0;
        std::chrono::duration<double> dt{};
        do {
            madd_block();
            ++blocks;
            dt = clock::now() - t0;
        } while (dt.count() < seconds);
        rate[t] = static_cast<double>(blocks) * kBlock * kMacsPerIteration / dt.count() / 1e9;
    });
    double total = 0.0;
    for (double r : rate) total += r;
    return total;
}

}  // namespace ternlab
