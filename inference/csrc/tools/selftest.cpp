// Standalone self-test of the kernels, without Python: every available ISA
// against the scalar reference (integer products and activation codes), on
// odd shapes. Used to check the NEON path under qemu-user from an x86 host:
//
//   aarch64-linux-gnu-g++ -O2 -std=c++17 -static -pthread -I inference/csrc
//       inference/csrc/tools/selftest.cpp $(ls inference/csrc/*.cpp | grep -v bindings)
//       -o /tmp/selftest && qemu-aarch64 /tmp/selftest
// (one command line; Debian: apt-get install g++-aarch64-linux-gnu qemu-user)
//
// (not part of the Python extension: setup.py compiles inference/csrc/*.cpp only)
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.h"
#include "dispatch.h"
#include "engine.h"
#include "ternary_pack.h"

using namespace ternlab;

int main() {
    std::mt19937 rng(1234);
    int failures = 0, checks = 0;
    const int64_t ks[] = {1, 3, 31, 33, 127, 129, 255, 257, 319, 321, 1000, 4353};
    const int64_t ns[] = {1, 7, 37};
    const int64_t ts[] = {1, 2, 5};
    for (Layout layout : {kBits2, kBase3})
    for (int64_t k : ks)
        for (int64_t n : ns)
            for (int64_t t : ts) {
                std::vector<int8_t> w(n * k), x(t * k);
                for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
                for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
                std::vector<uint8_t> packed(n * packed_row_bytes(k, layout));
                pack_ternary(w.data(), n, k, packed.data(), layout);
                std::vector<float> xf(t * k);
                for (auto& v : xf) v = static_cast<float>(static_cast<int>(rng() % 20001) - 10000) / 777.0f;
                // Expected: plain int64 sums and the scalar kernels.
                std::vector<int32_t> expect(t * n);
                for (int64_t i = 0; i < t; ++i)
                    for (int64_t o = 0; o < n; ++o) {
                        int64_t s = 0;
                        for (int64_t c = 0; c < k; ++c) s += int64_t{x[i * k + c]} * w[o * k + c];
                        expect[i * n + o] = static_cast<int32_t>(s);
                    }
                set_isa("scalar");
                std::vector<float> yref(t * n);
                matmul_f32(packed.data(), n, k, 0.5f, xf.data(), t, yref.data(), 1, layout);
                for (const std::string& isa : available_isas()) {
                    set_isa(isa);
                    for (int threads = 1; threads <= 3; ++threads) {
                        std::vector<int32_t> got(t * n);
                        matmul_int(packed.data(), n, k, x.data(), t, got.data(), threads, layout);
                        std::vector<float> y(t * n);
                        matmul_f32(packed.data(), n, k, 0.5f, xf.data(), t, y.data(), threads,
                                   layout);
                        ++checks;
                        if (got != expect || std::memcmp(y.data(), yref.data(), y.size() * 4) != 0) {
                            ++failures;
                            std::printf("FAIL isa=%s layout=%s k=%lld n=%lld t=%lld threads=%d\n",
                                        isa.c_str(), layout_name(layout), (long long)k,
                                        (long long)n, (long long)t, threads);
                        }
                    }
                }
            }
    std::string isas;
    for (const std::string& s : available_isas()) isas += s + " ";
    std::printf("selftest: ISAs [ %s] %d checks, %d failures\n", isas.c_str(), checks, failures);
    return failures == 0 ? 0 : 1;
}
