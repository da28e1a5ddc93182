// A small persistent thread pool: parallel_for(n, fn) runs fn(0..n-1) on the
// calling thread plus n-1 workers and returns when all are done. Workers are
// created lazily, spin for a bounded 300 us after each call (decode makes a few
// hundred calls per token; a wake-up per call would cost more than the work),
// then sleep on a condition variable, so an idle engine uses no CPU. They are
// never destroyed (no shutdown-order issues in a Python extension). Calls from
// several threads are serialised.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace ternlab {

void parallel_for(int n, const std::function<void(int)>& fn);

// fn(i0, i1) over [0, n) in up to `threads` contiguous ranges, one task each, whose
// bounds are multiples of `align` (the last ends at n); empty ranges are skipped.
template <class F>
void parallel_ranges(int threads, int64_t n, int64_t align, const F& fn) {
    const int64_t chunks = (n + align - 1) / align;
    const int tasks = static_cast<int>(std::min<int64_t>(std::max(threads, 1), chunks));
    parallel_for(tasks, [&](int i) {
        const int64_t i0 = chunks * i / tasks * align;
        const int64_t i1 = std::min(n, chunks * (i + 1) / tasks * align);
        if (i0 < i1) fn(i0, i1);
    });
}

}  // namespace ternlab
