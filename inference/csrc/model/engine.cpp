#include "model/engine.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "model/threadpool.h"

namespace ternlab {

namespace {

constexpr int64_t kRowAlign = 16;  // thread ranges start on 64-byte boundaries of the output

// Per-calling-thread scratch, reused between calls (no allocation per token).
struct Workspace {
    std::vector<int8_t> codes;
    std::vector<int32_t> sums;
    std::vector<float> s_x;
    std::vector<int32_t> acc;
    std::vector<float> mult;
};
Workspace& workspace() {
    thread_local Workspace ws;
    return ws;
}

// Runs the kernel over rows [0, N) split into `threads` ranges; `epilogue`
// (if any) finishes each range on the thread that computed it.
template <class Epilogue>
void run_rows(const Backend& kt, Layout layout, const GemmArgs& a, int64_t N, int threads,
              const Epilogue& epilogue) {
    const MatmulKernel kernel = a.T == 1 ? kt.ternary_gemv[layout] : kt.ternary_gemm[layout];
    parallel_ranges(threads, N, kRowAlign, [&](int64_t o0, int64_t o1) {
        kernel(a, o0, o1);
        epilogue(o0, o1);
    });
}

}  // namespace

int64_t quantize_rows(const float* x, int64_t T, int64_t K, int8_t* codes, int64_t stride,
                      float* s_x, int32_t* sums, int threads) {
    const Backend& kt = backend();
    std::atomic<int64_t> bad{T};
    parallel_ranges(threads, T, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            int8_t* row = codes + t * stride;
            if (!kt.quant_row(x + t * K, K, row, s_x + t, sums + t)) {
                int64_t cur = bad.load();
                while (t < cur && !bad.compare_exchange_weak(cur, t)) {
                }
                continue;
            }
            std::memset(row + K, 0, static_cast<size_t>(stride - K));
        }
    });
    return bad.load() == T ? -1 : bad.load();
}

void matmul_int(const uint8_t* w, int64_t N, int64_t K, const int8_t* xcodes, int64_t T,
                int32_t* out, int threads, Layout layout) {
    if (T == 0 || N == 0) return;
    const Backend& kt = backend();
    const int64_t Kp = padded_k(K, layout);
    Workspace& ws = workspace();
    ws.codes.assign(static_cast<size_t>(T * Kp), 0);
    ws.sums.resize(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
        const int8_t* src = xcodes + t * K;
        std::memcpy(ws.codes.data() + t * Kp, src, static_cast<size_t>(K));
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += src[k];
        ws.sums[t] = s;
    }
    const GemmArgs a{w,     packed_row_bytes(K, layout), N, ws.codes.data(), Kp, ws.sums.data(),
                     T,     Kp,                          out, N};
    run_rows(kt, layout, a, N, threads, [](int64_t, int64_t) {});
}

int64_t matmul_f32(const uint8_t* w, int64_t N, int64_t K, float scale, const float* x,
                   int64_t T, float* y, int threads, Layout layout) {
    const TernaryMatmul one{w, N, scale, y};
    return matmul_f32_group(&one, 1, K, x, T, threads, layout);
}

int64_t matmul_f32_group(const TernaryMatmul* mats, int n, int64_t K, const float* x,
                         int64_t T, int threads, Layout layout) {
    if (n < 1 || n > kMaxGroup)
        throw std::invalid_argument("matmul_f32_group takes 1 to " + std::to_string(kMaxGroup) +
                                    " matrices, got " + std::to_string(n));
    if (T == 0) return -1;
    const Backend& kt = backend();
    const int64_t Kp = padded_k(K, layout);
    Workspace& ws = workspace();
    ws.codes.resize(static_cast<size_t>(T * Kp));
    ws.sums.resize(static_cast<size_t>(T));
    ws.s_x.resize(static_cast<size_t>(T));
    const int64_t bad =
        quantize_rows(x, T, K, ws.codes.data(), Kp, ws.s_x.data(), ws.sums.data(), threads);
    if (bad >= 0) return bad;
    // Per matrix: its accumulators, its 16-row chunks and, per token, one float32
    // division scale / s_x (then one multiply per output, as the spec).
    int64_t acc_at[kMaxGroup], chunks[kMaxGroup];
    int64_t rows = 0, all_chunks = 0;
    for (int i = 0; i < n; ++i) {
        acc_at[i] = T * rows;
        rows += mats[i].N;
        chunks[i] = (mats[i].N + kRowAlign - 1) / kRowAlign;
        all_chunks += chunks[i];
    }
    if (all_chunks == 0) return -1;
    ws.acc.resize(static_cast<size_t>(T * rows));
    ws.mult.resize(static_cast<size_t>(T * n));
    for (int i = 0; i < n; ++i)
        for (int64_t t = 0; t < T; ++t) ws.mult[i * T + t] = mats[i].scale / ws.s_x[t];
    const MatmulKernel kernel = T == 1 ? kt.ternary_gemv[layout] : kt.ternary_gemm[layout];
    const int tasks = static_cast<int>(std::min<int64_t>(std::max(threads, 1), all_chunks));
    // One pass over the rows of every matrix, split into contiguous ranges of chunks
    // (whatever the split, each output is computed the same way).
    parallel_for(tasks, [&](int task) {
        const int64_t c0 = all_chunks * task / tasks, c1 = all_chunks * (task + 1) / tasks;
        int64_t base = 0;
        for (int i = 0; i < n; base += chunks[i++]) {
            const TernaryMatmul& m = mats[i];
            const int64_t o0 = (std::max(c0, base) - base) * kRowAlign;
            const int64_t o1 = std::min(m.N, (std::min(c1, base + chunks[i]) - base) * kRowAlign);
            if (o0 >= o1) continue;
            int32_t* acc = ws.acc.data() + acc_at[i];
            const GemmArgs a{m.w, packed_row_bytes(K, layout), m.N, ws.codes.data(), Kp,
                             ws.sums.data(), T, Kp, acc, m.N};
            kernel(a, o0, o1);
            for (int64_t t = 0; t < T; ++t) {
                const float mul = ws.mult[i * T + t];
                for (int64_t o = o0; o < o1; ++o)
                    m.y[t * m.N + o] = static_cast<float>(acc[t * m.N + o]) * mul;
            }
        }
    });
    return -1;
}

}  // namespace ternlab
