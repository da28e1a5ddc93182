// Standalone self-test of the kernels, without Python: every kernel family on
// every ISA this CPU runs, against the scalar reference, on odd shapes:
//
//   ternary  GEMV/GEMM, both packed layouts (bits2, base3), int32 products and
//            the whole float layer, 1-3 threads: bit-exact
//   quant    per-row activation quantization (codes, s_x, code sum, refusal of
//            non-finite rows): bit-exact
//   q6k      Q6_K x int8 GEMV and GEMM, several row splits, a refused token: bit-exact
//   q4_0     Q4_0 x int8 the same (odd and even pair counts): bit-exact
//   q8_0     Q8_0 x int8 the same (odd block counts, short last groups; codes
//            over all of -128..127): bit-exact
//   float    F32/F16 GEMV and GEMM: within the float32 summation bound
//            2 (K + 1) u sum_k |w_k x_k| (u = 2^-24; fused multiply-adds and
//            another order than the reference)
//   silu     gated SiLU within a few ulp of the scalar reference (test_activation)
//   attention the three kernels within their rounding bounds (below), and the
//            whole attention within 1e-5 of the reference for |q|, |k|, |v| <= 1;
//            bit-identical for 1 and 3 threads
//   attention-f16 the same over an f16 cache (scalar and SIMD f16 kernels against
//            the scalar f16 reference, same bounds), and each f16 kernel bit-identical
//            to its ISA's float32 kernel on the widened cache
//
// It prints the checks per ISA and family, and exits 1 on any failure. It is
// how the NEON path is tested from an x86 host (tests/test_engine_aarch64.py
// cross-compiles it and runs it under qemu-user); by hand:
//
//   aarch64-linux-gnu-g++ -O2 -std=c++17 -ffp-contract=off -static -pthread
//       -I inference/csrc inference/csrc/tools/selftest.cpp
//       $(find inference/csrc/{gguf,model,kernels} -name '*.cpp') -o /tmp/selftest
//   qemu-aarch64 /tmp/selftest
// (the compile is one command line; Debian: apt-get install g++-aarch64-linux-gnu qemu-user)
//
// (not part of the Python extension: setup.py compiles every inference/csrc source but tools/)
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/attention_kernels.h"
#include "kernels/common.h"
#include "kernels/dispatch.h"
#include "kernels/float_matmul.h"
#include "kernels/q4_0_int8.h"
#include "kernels/q8_0_int8.h"
#include "kernels/q6k.h"
#include "kernels/quant_act.h"
#include "kernels/ternary_pack.h"
#include "model/attention.h"
#include "model/engine.h"

using namespace ternlab;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // float32 unit roundoff

std::mt19937 rng(1234);
std::map<std::string, std::map<std::string, int>> checks;  // [isa][family]
int failures = 0;

float uniform(float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(rng);
}

// One check of `family` on `isa`; prints the case when it fails.
void check(bool ok, const std::string& isa, const char* family, const std::string& what) {
    ++checks[isa][family];
    if (!ok) {
        ++failures;
        std::printf("FAIL isa=%s %s: %s\n", isa.c_str(), family, what.c_str());
    }
}

std::string fmt(const char* f, long long a = 0, long long b = 0, long long c = 0,
                long long d = 0) {
    char buf[160];
    std::snprintf(buf, sizeof buf, f, a, b, c, d);
    return buf;
}

// ---- ternary GEMV/GEMM ---------------------------------------------------------
void test_ternary() {
    const int64_t ks[] = {1, 3, 31, 33, 127, 129, 255, 257, 319, 321, 1000, 4353};
    const int64_t ns[] = {1, 7, 37, 70};
    // 19 and 133: AMX's tiles of 16 tokens with a partial last one, and its groups of 128.
    const int64_t ts[] = {1, 2, 5, 19, 133};
    for (Layout layout : {kBits2, kBase3})
        for (int64_t k : ks)
            for (int64_t n : ns)
                for (int64_t t : ts) {
                    if (t * n * k > 5'000'000) continue;  // the plain sums below stay quick
                    std::vector<int8_t> w(n * k), x(t * k);
                    for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
                    for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
                    std::vector<uint8_t> packed(n * packed_row_bytes(k, layout));
                    pack_ternary(w.data(), n, k, packed.data(), layout);
                    std::vector<float> xf(t * k);
                    for (auto& v : xf) v = static_cast<float>(static_cast<int>(rng() % 20001) - 10000) / 777.0f;
                    std::vector<int32_t> expect(t * n);  // plain int64 sums
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
                            const bool ok = got == expect &&
                                            std::memcmp(y.data(), yref.data(), y.size() * 4) == 0;
                            check(ok, isa, layout == kBase3 ? "ternary-base3" : "ternary-bits2",
                                  fmt("k=%lld n=%lld t=%lld threads=%lld", k, n, t, threads));
                        }
                    }
                }
}

// ---- activation quantization ---------------------------------------------------
void test_quant() {
    std::vector<std::vector<float>> rows;
    const int64_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 4353};
    for (int64_t k : ks)
        for (float mag : {1e-7f, 1e-3f, 1.0f, 1e3f, 1.5e38f}) {
            std::vector<float> r(k);
            for (auto& v : r) v = uniform(-mag, mag);
            rows.push_back(r);
        }
    for (int64_t k : {7, 64, 100}) {
        rows.emplace_back(k, 0.0f);  // all zero
        std::vector<float> h(k);     // half-integers at a max of 127: codes at .5 boundaries
        for (int64_t i = 0; i < k; ++i) h[i] = static_cast<float>(i % 255 - 127) + (i ? 0.5f : 0.0f);
        h[0] = 127.0f;
        rows.push_back(h);
        std::vector<float> d(k, 1e-40f);  // denormals, below EPS
        rows.push_back(d);
    }
    const size_t finite_rows = rows.size();
    for (int64_t k : {1, 9, 40})  // non-finite values, first / middle / last (the SIMD tail)
        for (float bad : {NAN, INFINITY, -INFINITY})
            for (int64_t at : {int64_t{0}, k / 2, k - 1}) {
                std::vector<float> r(k);
                for (auto& v : r) v = uniform(-2, 2);
                r[at] = bad;
                rows.push_back(r);
            }
    for (const std::string& isa : available_isas()) {
        set_isa(isa);
        for (size_t i = 0; i < rows.size(); ++i) {
            const std::vector<float>& r = rows[i];
            const int64_t k = static_cast<int64_t>(r.size());
            std::vector<int8_t> c0(k), c1(k);
            float s0 = 0, s1 = 0;
            int32_t sum0 = 0, sum1 = 0;
            const bool ok0 = quant_row_scalar(r.data(), k, c0.data(), &s0, &sum0);
            const bool ok1 = backend().quant_row(r.data(), k, c1.data(), &s1, &sum1);
            bool ok = ok0 == ok1 && ok0 == (i < finite_rows);
            if (ok && ok0)
                ok = c0 == c1 && std::memcmp(&s0, &s1, 4) == 0 && sum0 == sum1;
            check(ok, isa, "quant", fmt("row %lld (k=%lld)", static_cast<long long>(i), k));
        }
    }
}

// ---- float kernels: F32, F16, and Q6_K, Q8_0, Q4_0 x int8 ------------------------
// A random finite fp16 with a biased exponent in [e0, e1].
uint16_t rand_half(int e0, int e1) {
    const uint32_t e = static_cast<uint32_t>(e0) + rng() % static_cast<uint32_t>(e1 - e0 + 1);
    return static_cast<uint16_t>((rng() & 1) << 15 | e << 10 | (rng() & 0x3ff));
}

std::vector<uint8_t> random_rows(FloatFormat f, int64_t n, int64_t k) {
    std::vector<uint8_t> w(static_cast<size_t>(n * float_row_bytes(f, k)));
    auto put16 = [&](size_t at, uint16_t h) { std::memcpy(&w[at], &h, 2); };
    if (f == kFmtF32) {
        for (size_t i = 0; i < w.size(); i += 4) {
            const float v = uniform(-2, 2);
            std::memcpy(&w[i], &v, 4);
        }
    } else if (f == kFmtF16) {
        for (size_t i = 0; i < w.size(); i += 2) put16(i, rand_half(10, 17));
    } else {
        for (auto& b : w) b = static_cast<uint8_t>(rng());
        const int64_t block = f == kFmtQ8_0   ? kQ8BlockBytes
                              : f == kFmtQ4_0 ? kQ4BlockBytes
                                              : kQ6KBlockBytes;
        const size_t d_at = f == kFmtQ6_K ? 208 : 0;
        for (size_t b = 0; b < w.size(); b += static_cast<size_t>(block))
            put16(b + d_at, rand_half(6, 14));
    }
    if (f == kFmtQ4_0 || f == kFmtQ8_0) {  // the kernels read rows repacked, as load_linear
        const std::vector<uint8_t> gguf = w;  // gives them
        const int64_t rb = float_row_bytes(f, k);
        const auto repack = f == kFmtQ4_0 ? q40_repack_row : q80_repack_row;
        for (int64_t o = 0; o < n; ++o) repack(&gguf[o * rb], k, &w[o * rb]);
    }
    return w;
}

void test_float() {
    const char* names[] = {"float-f32", "float-f16", "q8_0", "q6k", "q4_0"};
    for (FloatFormat f : {kFmtF32, kFmtF16, kFmtQ8_0, kFmtQ6_K, kFmtQ4_0}) {
        const bool int8 = f != kFmtF32 && f != kFmtF16;  // bit-exact with the reference
        std::vector<int64_t> ks = {256, 768};
        if (f == kFmtQ4_0) ks = {64, 192, 320, 384, 448};  // 1, 3, 5, 6, 7 pairs of blocks
        if (f == kFmtQ8_0) ks = {32, 96, 224, 288, 320};  // 1, 3, 7, 9, 10 blocks
        if (!int8) ks = {7, 32, 45, 96, 320};
        for (int64_t k : ks)
            for (int64_t n : {1, 5, 17, 33})
                for (int64_t t : {1, 2, 3, 6, 8, 9}) {  // 8, 9: both sides of kSmallT
                    const std::vector<uint8_t> w = random_rows(f, n, k);
                    std::vector<float> x(t * k);
                    for (auto& v : x) v = uniform(-3, 3);
                    if (t > 1 && int8) x[k + 5] = INFINITY;  // token 1: NaN outputs
                    std::vector<float> yref(t * n), y(t * n);
                    const FloatGemmArgs ref{w.data(), float_row_bytes(f, k), k, x.data(), t,
                                            yref.data(), n};
                    set_isa("scalar");
                    scalar_backend().float_gemm[f](ref, 0, n);
                    // The bound on |y - yref| (exact in the reference's decoded weights).
                    std::vector<double> bound(t * n);
                    std::vector<float> row(k);
                    for (int64_t o = 0; o < n; ++o) {
                        float_row_to_f32(f, w.data() + o * ref.row_bytes, k, row.data());
                        for (int64_t i = 0; i < t; ++i) {
                            double s = 0;
                            for (int64_t c = 0; c < k; ++c) s += std::fabs(double{row[c]} * x[i * k + c]);
                            bound[i * n + o] = 2.0 * (k + 1) * kU * s;
                        }
                    }
                    for (const std::string& isa : available_isas()) {
                        const Backend* ft = backend_table(isa);
                        if (isa == "scalar" || ft == nullptr) continue;
                        set_isa(isa);
                        for (bool gemv : {true, false}) {
                            if (gemv && t != 1) continue;
                            const FloatKernel kern = gemv ? ft->float_gemv[f] : ft->float_gemm[f];
                            for (int64_t split : {int64_t{0}, std::min<int64_t>(3, n)}) {
                                std::fill(y.begin(), y.end(), -1.0f);
                                const FloatGemmArgs a{w.data(), ref.row_bytes, k, x.data(), t,
                                                      y.data(), n};
                                if (split) kern(a, 0, split);
                                kern(a, split, n);
                                bool ok = true;
                                if (int8) {
                                    ok = std::memcmp(y.data(), yref.data(), y.size() * 4) == 0;
                                } else {
                                    for (size_t i = 0; i < y.size(); ++i)
                                        ok &= std::fabs(double{y[i]} - yref[i]) <= bound[i];
                                }
                                check(ok, isa, names[f],
                                      fmt(gemv ? "gemv k=%lld n=%lld t=%lld split=%lld"
                                               : "gemm k=%lld n=%lld t=%lld split=%lld",
                                          k, n, t, split));
                            }
                        }
                    }
                }
    }
}

// ---- gated activations ---------------------------------------------------------------
// Each ISA's silu_mul against the scalar reference: NaN where it gives NaN, the same
// infinities, else |y - y_ref| <= 8 u |y_ref| + 1e-30 |u| (exp within 2 ulp, one add,
// one division, one product; below g = -87 the SIMD exp gives 0 where the reference's
// product is under 1e-36 in magnitude). Lengths cover the masked tail.
void test_activation() {
    std::vector<float> specials = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f,
                                   87.5f, -87.5f, 88.0f, -88.0f, 100.0f, -100.0f, 1e30f, -1e30f};
    for (int64_t n : {1, 7, 8, 9, 33, 1000}) {
        std::vector<float> g(n), u(n);
        for (int64_t i = 0; i < n; ++i) {
            g[i] = i < static_cast<int64_t>(specials.size()) && n > 16 ? specials[i]
                                                                        : uniform(-20.0f, 20.0f);
            u[i] = uniform(-3.0f, 3.0f);
        }
        std::vector<float> ref = g;
        silu_mul_scalar(ref.data(), u.data(), n);
        for (const std::string& isa : available_isas()) {
            set_isa(isa);
            std::vector<float> got = g;
            backend().silu_mul(got.data(), u.data(), n);
            bool ok = true;
            for (int64_t i = 0; i < n; ++i) {
                if (std::isnan(ref[i]) || std::isinf(ref[i])) {
                    ok = ok && (std::isnan(ref[i]) ? std::isnan(got[i]) : got[i] == ref[i]);
                    continue;
                }
                const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
                ok = ok && err <= 8 * kU * std::fabs(ref[i]) + 1e-30 * std::fabs(u[i]);
            }
            check(ok, isa, "silu", fmt("n=%lld", n));
        }
    }
}

// ---- attention ---------------------------------------------------------------------
// An f16 copy of a float32 cache (as the model writes it) and that copy widened back.
std::vector<uint16_t> to_f16(const std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = fp32_to_fp16(x[i]);
    return h;
}
std::vector<float> widen(const std::vector<uint16_t>& h) {
    std::vector<float> x(h.size());
    for (size_t i = 0; i < h.size(); ++i) x[i] = fp16_to_fp32(h[i]);
    return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// The branch-free half -> float of the scalar f16 reference, for every half.
void test_half_conversion() {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float a = fp16_to_fp32(static_cast<uint16_t>(h));
        const float b = fp16_to_fp32_inline(static_cast<uint16_t>(h));
        bad += std::isnan(a) ? !std::isnan(b) : std::memcmp(&a, &b, 4) != 0;
        // Round trip: every non-NaN half is its own nearest half.
        bad += !std::isnan(a) && fp32_to_fp16(a) != h;
    }
    check(bad == 0, "scalar", "attention-f16", "fp16_to_fp32_inline, fp32_to_fp16 round trip");
}

// Scores s [G][ss] against ref within the bound below (k: [n][hd]).
bool scores_close(const std::vector<float>& s, const std::vector<float>& ref,
                  const std::vector<float>& q, const std::vector<float>& k, int G, int64_t n,
                  int64_t hd, int64_t ss, float scale) {
    bool ok = true;
    for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < n; ++j) {
            double a = 0;
            for (int64_t d = 0; d < hd; ++d)
                a += std::fabs(double{q[g * hd + d]} * k[j * hd + d]);
            ok &= std::fabs(double{s[g * ss + j]} - ref[g * ss + j]) <=
                  (2.0 * hd + 2) * kU * scale * a;
        }
    return ok;
}

// Weighted sums o [G][hd] against ref within the bound below (p: [G][ss], vt: [hd][n + 1]).
bool wsum_close(const std::vector<float>& o, const std::vector<float>& ref,
                const std::vector<float>& p, const std::vector<float>& vt, int G, int64_t n,
                int64_t hd, int64_t ss) {
    bool ok = true;
    for (int g = 0; g < G; ++g)
        for (int64_t d = 0; d < hd; ++d) {
            double a = 0;
            for (int64_t j = 0; j < n; ++j)
                a += std::fabs(double{p[g * ss + j]} * vt[d * (n + 1) + j]);
            ok &= std::fabs(double{o[g * hd + d]} - ref[g * hd + d]) <= (2.0 * n + 2) * kU * a;
        }
    return ok;
}

// Bounds (u = 2^-24, both sides within the classic summation bound of the exact value):
//   scores       |s - s_ref| <= (2 hd + 2) u scale sum_d |q_d k_d|
//   softmax      |p - p_ref| <= (2 n + 16) u p_ref + 2^-126 (exp within 2 ulp, n-term sum,
//                one division; inputs below -87 give 0 where std::exp is denormal)
//   weighted sum |o - o_ref| <= (2 n + 2) u sum_j |p_j v_j|
void test_attention_kernels() {
    for (int64_t hd : {4, 12, 16, 64})
        for (int64_t n : {1, 2, 3, 5, 8, 13, 33, 100})
            for (int G = 1; G <= kGroup; ++G) {
                const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
                std::vector<float> q(G * hd), k(n * hd), vt(hd * (n + 1));
                for (auto& v : q) v = uniform(-2, 2);
                for (auto& v : k) v = uniform(-2, 2);
                for (auto& v : vt) v = uniform(-1, 1);
                const int64_t ss = n + 3;
                std::vector<float> s_ref(G * ss, 0.0f), mx_ref(kGroup);
                kAttentionScalar.scores(q.data(), G, k.data(), n, hd, scale, s_ref.data(), ss,
                                        mx_ref.data());
                std::vector<float> logits(n);  // softmax input: includes values below -87
                for (int64_t j = 0; j < n; ++j) logits[j] = j % 7 == 6 ? -100.0f : uniform(-30, 0);
                const float lmax = *std::max_element(logits.begin(), logits.end());
                std::vector<float> p_ref = logits;
                kAttentionScalar.softmax(p_ref.data(), n, lmax);
                std::vector<float> p(G * ss, 0.0f);  // weights of G heads
                for (int g = 0; g < G; ++g) {
                    std::vector<float> l(n);
                    for (auto& v : l) v = uniform(-8, 0);
                    kAttentionScalar.softmax(l.data(), n, *std::max_element(l.begin(), l.end()));
                    std::copy(l.begin(), l.end(), p.begin() + g * ss);
                }
                std::vector<float> o_ref(G * hd);
                kAttentionScalar.weighted_sum(p.data(), G, ss, vt.data(), n + 1, n, hd,
                                              o_ref.data());
                // The f16 cache: the scalar f16 reference, checked against the float32
                // reference on the widened values (bit for bit: the conversion is exact),
                // then each ISA's f16 kernels against it (bounds) and against that ISA's
                // float32 kernels on the widened values (bit for bit).
                const std::vector<uint16_t> k16 = to_f16(k), vt16 = to_f16(vt);
                const std::vector<float> kw = widen(k16), vtw = widen(vt16);
                std::vector<float> s16_ref(G * ss, 0.0f), mx16_ref(kGroup), o16_ref(G * hd);
                kAttentionScalar.scores_f16(q.data(), G, k16.data(), n, hd, scale,
                                            s16_ref.data(), ss, mx16_ref.data());
                kAttentionScalar.weighted_sum_f16(p.data(), G, ss, vt16.data(), n + 1, n, hd,
                                                  o16_ref.data());
                {
                    std::vector<float> sw(G * ss, 0.0f), mxw(kGroup), ow(G * hd);
                    kAttentionScalar.scores(q.data(), G, kw.data(), n, hd, scale, sw.data(), ss,
                                            mxw.data());
                    kAttentionScalar.weighted_sum(p.data(), G, ss, vtw.data(), n + 1, n, hd,
                                                  ow.data());
                    const std::string what = fmt("hd=%lld n=%lld G=%lld", hd, n, G);
                    check(same_bits(sw, s16_ref) && same_bits(mxw, mx16_ref), "scalar",
                          "attention-f16", "scores_f16 = scores of the widened cache " + what);
                    check(same_bits(ow, o16_ref), "scalar", "attention-f16",
                          "weighted_sum_f16 = weighted_sum of the widened cache " + what);
                }
                for (const std::string& isa : available_isas()) {
                    if (isa == "scalar") continue;
                    set_isa(isa);
                    const AttentionKernels& ak = attention_kernels(hd);
                    if (&ak == &kAttentionScalar) continue;  // hd not a multiple of the SIMD width
                    const std::string what = fmt("hd=%lld n=%lld G=%lld", hd, n, G);
                    std::vector<float> s(G * ss, 0.0f), mx(kGroup), sw(G * ss, 0.0f), mxw(kGroup);
                    ak.scores_f16(q.data(), G, k16.data(), n, hd, scale, s.data(), ss, mx.data());
                    ak.scores(q.data(), G, kw.data(), n, hd, scale, sw.data(), ss, mxw.data());
                    bool ok = same_bits(s, sw) && std::memcmp(mx.data(), mxw.data(), G * 4) == 0;
                    check(ok, isa, "attention-f16", "scores_f16 = scores of the widened cache " + what);
                    check(scores_close(s, s16_ref, q, kw, G, n, hd, ss, scale), isa,
                          "attention-f16", "scores_f16 " + what);
                    std::vector<float> o(G * hd), ow(G * hd);
                    ak.weighted_sum_f16(p.data(), G, ss, vt16.data(), n + 1, n, hd, o.data());
                    ak.weighted_sum(p.data(), G, ss, vtw.data(), n + 1, n, hd, ow.data());
                    check(same_bits(o, ow), isa, "attention-f16",
                          "weighted_sum_f16 = weighted_sum of the widened cache " + what);
                    check(wsum_close(o, o16_ref, p, vtw, G, n, hd, ss), isa, "attention-f16",
                          "weighted_sum_f16 " + what);
                }
                for (const std::string& isa : available_isas()) {
                    if (isa == "scalar") continue;
                    set_isa(isa);
                    const AttentionKernels& ak = attention_kernels(hd);
                    if (&ak == &kAttentionScalar) continue;  // hd not a multiple of the SIMD width
                    const std::string what = fmt("hd=%lld n=%lld G=%lld", hd, n, G);
                    std::vector<float> s(G * ss, 0.0f), mx(kGroup);
                    ak.scores(q.data(), G, k.data(), n, hd, scale, s.data(), ss, mx.data());
                    bool ok = scores_close(s, s_ref, q, k, G, n, hd, ss, scale);
                    for (int g = 0; g < G; ++g) {
                        float m = -INFINITY;
                        for (int64_t j = 0; j < n; ++j) m = std::max(m, s[g * ss + j]);
                        ok &= mx[g] == m;
                    }
                    check(ok, isa, "attention", "scores " + what);
                    std::vector<float> pl = logits;
                    ak.softmax(pl.data(), n, lmax);
                    ok = true;
                    for (int64_t j = 0; j < n; ++j)
                        ok &= std::fabs(double{pl[j]} - p_ref[j]) <=
                              (2.0 * n + 16) * kU * p_ref[j] + std::ldexp(1.0, -126);
                    check(ok, isa, "attention", "softmax " + what);
                    std::vector<float> o(G * hd);
                    ak.weighted_sum(p.data(), G, ss, vt.data(), n + 1, n, hd, o.data());
                    check(wsum_close(o, o_ref, p, vt, G, n, hd, ss), isa, "attention",
                          "weighted_sum " + what);
                }
            }
}

// The whole causal grouped-query attention of T new tokens after pos0 cached ones.
std::vector<float> run_attention(const AttentionArgs& shape, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<float>& v,
                                 int threads) {
    std::vector<float> out(q.size()), scratch(attention_scratch_floats(threads, shape.n_ctx));
    AttentionArgs a = shape;
    a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = out.data();
    a.scratch = scratch.data();
    attention(a, threads);
    return out;
}

// The same over an f16 cache.
std::vector<float> run_attention_f16(const AttentionArgs& shape, const std::vector<float>& q,
                                     const std::vector<uint16_t>& k,
                                     const std::vector<uint16_t>& v, int threads) {
    std::vector<float> out(q.size()), scratch(attention_scratch_floats(threads, shape.n_ctx));
    AttentionArgs a = shape;
    a.q = q.data(), a.k16 = k.data(), a.v16 = v.data(), a.out = out.data();
    a.scratch = scratch.data();
    attention(a, threads);
    return out;
}

void test_attention_whole() {
    for (int64_t hd : {4, 64})
        for (int64_t nkv : {1, 2})
            for (int64_t T : {1, 5})
                for (int64_t pos0 : {0, 37}) {
                    AttentionArgs a;
                    a.T = T, a.pos0 = pos0, a.n_head = 4, a.n_head_kv = nkv, a.head_dim = hd;
                    a.n_ctx = pos0 + T + 3;
                    a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
                    std::vector<float> q(T * 4 * hd), k(nkv * a.n_ctx * hd), v(k.size());
                    for (auto& x : q) x = uniform(-1, 1);
                    for (auto& x : k) x = uniform(-1, 1);
                    for (auto& x : v) x = uniform(-1, 1);
                    const std::vector<uint16_t> k16 = to_f16(k), v16 = to_f16(v);
                    const std::vector<float> kw = widen(k16), vw = widen(v16);
                    set_isa("scalar");
                    const std::vector<float> ref = run_attention(a, q, k, v, 1);
                    const std::vector<float> ref16 = run_attention_f16(a, q, k16, v16, 1);
                    for (const std::string& isa : available_isas()) {
                        set_isa(isa);
                        const std::string what =
                            fmt("whole hd=%lld n_head_kv=%lld T=%lld pos0=%lld", hd, nkv, T, pos0);
                        const std::vector<float> o1 = run_attention(a, q, k, v, 1);
                        const std::vector<float> o3 = run_attention(a, q, k, v, 3);
                        bool ok = std::memcmp(o1.data(), o3.data(), o1.size() * 4) == 0;
                        for (size_t i = 0; i < o1.size(); ++i)
                            ok &= std::fabs(o1[i] - ref[i]) <= 1e-5f;
                        check(ok, isa, "attention", what);
                        const std::vector<float> h1 = run_attention_f16(a, q, k16, v16, 1);
                        const std::vector<float> h3 = run_attention_f16(a, q, k16, v16, 3);
                        ok = same_bits(h1, h3) && same_bits(h1, run_attention(a, q, kw, vw, 1));
                        for (size_t i = 0; i < h1.size(); ++i)
                            ok &= std::fabs(h1[i] - ref16[i]) <= 1e-5f;
                        check(ok, isa, "attention-f16", what);
                    }
                }
}

}  // namespace

int main() {
    test_ternary();
    test_quant();
    test_float();
    test_half_conversion();
    test_activation();
    test_attention_kernels();
    test_attention_whole();
    set_isa("auto");
    int total = 0;
    for (const std::string& isa : available_isas()) {
        std::string line;
        for (const auto& [family, count] : checks[isa]) {
            line += " " + family + "=" + std::to_string(count);
            total += count;
        }
        std::printf("isa %s:%s\n", isa.c_str(), line.c_str());
    }
    std::string isas;
    for (const std::string& s : available_isas()) isas += s + " ";
    std::printf("selftest: ISAs [ %s] %d checks, %d failures\n", isas.c_str(), total, failures);
    return failures == 0 ? 0 : 1;
}
