#include "model/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ternlab {

namespace {

// How long a thread spins on a shared word before it sleeps. A decode step
// calls parallel_for a few hundred times per token, tens of microseconds apart:
// a futex wake-up per call costs more than the work of a small matmul. After
// this long without work the threads block, so an idle engine uses no CPU.
constexpr auto kSpin = std::chrono::microseconds(300);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spins until pred() holds or kSpin has passed; returns pred().
template <class Pred>
bool spin_until(const Pred& pred) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (pred()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() > deadline) return pred();
    }
}

// Task i of a call runs on worker i (task 0 on the caller): no shared task
// counter that a late worker could take from the next call. A call is
// published as one word, generation << 16 | n_tasks, so a worker reads the
// task count of exactly the call it woke for.
class Pool {
   public:
    void run(int n, const std::function<void(int)>& fn) {
        std::lock_guard<std::mutex> one_at_a_time(run_mu_);
        while (static_cast<int>(workers_.size()) < n - 1) {
            // The worker waits for the generation after the current one: it may
            // start only after this call has been published.
            const int id = static_cast<int>(workers_.size()) + 1;
            const uint64_t gen = state_.load(std::memory_order_relaxed) >> 16;
            workers_.emplace_back([this, id, gen] { work(id, gen); });
        }
        job_ = &fn;
        pending_.store(n - 1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lk(mu_);  // a worker about to sleep sees it
            const uint64_t gen = (state_.load(std::memory_order_relaxed) >> 16) + 1;
            state_.store(gen << 16 | static_cast<uint64_t>(n), std::memory_order_release);
        }
        cv_.notify_all();
        fn(0);
        const auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
        if (!spin_until(done)) {
            std::unique_lock<std::mutex> lk(mu_);
            done_cv_.wait(lk, done);
        }
        job_ = nullptr;
    }

   private:
    void work(int id, uint64_t seen) {
        for (;;) {
            uint64_t s = 0;
            const auto posted = [&] {
                s = state_.load(std::memory_order_acquire);
                return (s >> 16) != seen;
            };
            if (!spin_until(posted)) {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, posted);
            }
            seen = s >> 16;
            if (id >= static_cast<int>(s & 0xffff)) continue;  // not needed this call
            (*job_)(id);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lk(mu_);  // the caller may be going to sleep
                done_cv_.notify_one();
            }
        }
    }

    std::mutex run_mu_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int)>* job_ = nullptr;
    std::atomic<uint64_t> state_{0};
    std::atomic<int> pending_{0};
};

Pool* g_pool = nullptr;
std::once_flag g_once;

// After fork() the child has none of the parent's workers: give it a fresh
// pool (the old one is leaked on purpose; its mutexes may be held).
void reset_after_fork() { g_pool = new Pool(); }

Pool& pool() {
    std::call_once(g_once, [] {
        g_pool = new Pool();  // never deleted: workers may outlive static destructors
#if defined(__unix__) || defined(__APPLE__)
        pthread_atfork(nullptr, nullptr, reset_after_fork);
#endif
    });
    return *g_pool;
}

}  // namespace

void parallel_for(int n, const std::function<void(int)>& fn) {
    if (n <= 1) {
        if (n == 1) fn(0);
        return;
    }
    pool().run(n, fn);
}

}  // namespace ternlab
