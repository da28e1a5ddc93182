// A small persistent thread pool: parallel_for(n, fn) runs fn(0..n-1) on the
// calling thread plus n-1 workers and returns when all are done. Workers are
// created lazily, sleep on a condition variable between calls (the machine may
// be shared: no spinning) and are never destroyed (no shutdown-order issues in
// a Python extension). Calls from several threads are serialised.
#pragma once

#include <functional>

namespace ternlab {

void parallel_for(int n, const std::function<void(int)>& fn);

}  // namespace ternlab
