// A small persistent thread pool: parallel_for(n, fn) runs fn(0..n-1) on the
// calling thread plus n-1 workers and returns when all are done. Workers are
// created lazily, spin for a bounded 300 us after each call (decode makes a few
// hundred calls per token; a wake-up per call would cost more than the work),
// then sleep on a condition variable, so an idle engine uses no CPU. They are
// never destroyed (no shutdown-order issues in a Python extension). Calls from
// several threads are serialised.
#pragma once

#include <functional>

namespace ternlab {

void parallel_for(int n, const std::function<void(int)>& fn);

}  // namespace ternlab
