#include "threadpool.h"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace ternlab {

namespace {

class Pool {
   public:
    void run(int n, const std::function<void(int)>& fn) {
        std::lock_guard<std::mutex> one_at_a_time(run_mu_);
        {
            std::lock_guard<std::mutex> lk(mu_);
            while (static_cast<int>(workers_.size()) < n - 1)
                workers_.emplace_back([this] { work(); });
            job_ = &fn;
            n_tasks_ = n;
            next_ = 1;  // task 0 is the caller's
            pending_ = n - 1;
            ++generation_;
        }
        cv_.notify_all();
        fn(0);
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [this] { return pending_ == 0; });
        job_ = nullptr;
    }

   private:
    void work() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            cv_.wait(lk, [&] { return generation_ != seen; });
            seen = generation_;
            while (next_ < n_tasks_) {
                const int i = next_++;
                const std::function<void(int)>* job = job_;
                lk.unlock();
                (*job)(i);
                lk.lock();
                if (--pending_ == 0) done_cv_.notify_one();
            }
        }
    }

    std::mutex run_mu_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int)>* job_ = nullptr;
    int n_tasks_ = 0, next_ = 0, pending_ = 0;
    uint64_t generation_ = 0;
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
