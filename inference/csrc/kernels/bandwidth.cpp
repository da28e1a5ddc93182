// Memory read bandwidth: the ceiling for decode, which streams every weight once
// per token. Each thread reads its own contiguous slice of one large buffer
// (larger than the caches), summing it so the loads cannot be optimised away.
// AVX2 loads where the CPU has them (chosen at run time), a scalar loop otherwise.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

constexpr int64_t kAlign = 64;
constexpr int64_t kChunk = 256;  // bytes per unrolled step; slices are multiples of it

// Scalar fallback: four independent 64-bit sums keep several loads in flight.
uint64_t read_scalar(const uint8_t* p, int64_t n) {
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i < n / 8; i += 4) {
        s0 += q[i];
        s1 += q[i + 1];
        s2 += q[i + 2];
        s3 += q[i + 3];
    }
    return s0 ^ s1 ^ s2 ^ s3;
}

#if TERNLAB_X86
// Eight aligned 32-byte loads per step into four accumulators: the adds are far
// cheaper than the loads, so the loop is bound by memory, not by the ALUs.
TL_AVX2 uint64_t read_avx2(const uint8_t* p, int64_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n; i += kChunk) {
        const __m256i* v = reinterpret_cast<const __m256i*>(p + i);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 0));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 4));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 5));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 6));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 7));
    }
    const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

bool has_avx2() { return __builtin_cpu_supports("avx2"); }
#endif

using ReadFn = uint64_t (*)(const uint8_t*, int64_t);

ReadFn pick_reader(bool simd) {
#if TERNLAB_X86
    if (simd && has_avx2()) return read_avx2;
#endif
    (void)simd;
    return read_scalar;
}

struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

// Best (highest) read bandwidth in GB/s (1e9 bytes/s) over `repetitions` passes of
// `threads` threads over an `nbytes` buffer, after one untimed pass that faults
// the pages in. The best pass is the ceiling a kernel can hope to reach.
// `simd` = false forces the scalar loop (to compare it with the AVX2 one).
double read_bandwidth_gbs(int64_t nbytes, int threads, int repetitions, bool simd) {
    if (threads < 1 || threads > 1024)
        throw std::invalid_argument("`threads` must be in [1, 1024], got " +
                                    std::to_string(threads));
    if (repetitions < 1)
        throw std::invalid_argument("`repetitions` must be >= 1, got " +
                                    std::to_string(repetitions));
    const int64_t slice = nbytes / threads / kChunk * kChunk;  // whole steps per thread
    if (slice <= 0)
        throw std::invalid_argument("`nbytes` = " + std::to_string(nbytes) + " is too small: " +
                                    "each of the " + std::to_string(threads) +
                                    " threads needs at least " + std::to_string(kChunk) +
                                    " bytes (use a buffer larger than the caches, e.g. 1 GiB)");
    const int64_t total = slice * threads;
    std::unique_ptr<uint8_t, FreeDeleter> buf(
        static_cast<uint8_t*>(std::aligned_alloc(kAlign, static_cast<size_t>(total))));
    if (!buf)
        throw std::runtime_error("read_bandwidth: cannot allocate " + std::to_string(total) +
                                 " bytes; pass a smaller `nbytes`");
    uint8_t* base = buf.get();
    // Each thread writes its own slice first (non-zero bytes: real pages, not the
    // shared zero page), so pages land near the thread that reads them.
    parallel_for(threads, [&](int t) {
        std::memset(base + t * slice, 0x5a + t, static_cast<size_t>(slice));
    });
    const ReadFn read = pick_reader(simd);
    std::vector<uint64_t> sink(static_cast<size_t>(threads));
    auto pass = [&] {
        parallel_for(threads, [&](int t) { sink[t] ^= read(base + t * slice, slice); });
    };
    pass();  // warm-up
    double best = 0.0;
    for (int r = 0; r < repetitions; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pass();
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        best = std::max(best, static_cast<double>(total) / dt.count() / 1e9);
    }
    // Make the sums observable so the reads cannot be removed.
    volatile uint64_t keep = 0;
    for (uint64_t s : sink) keep = keep ^ s;
    (void)keep;
    return best;
}

}  // namespace ternlab
