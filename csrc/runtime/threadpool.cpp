// The thread pool behind fl::parallel_for.
//
// Design (docs/architecture.md §7): one pool of our own, no OpenMP. num_threads()-1 workers,
// created on the first region that needs them; the calling thread runs chunk 0 itself. A region
// is published by bumping a ticket (generation << 16 | chunk count); workers spin on it for a
// few tens of microseconds after their last job (a hand-off then costs ~100 ns instead of a
// futex wake-up) and then sleep on a condition variable, so an idle pool burns no CPU - on a
// 2-core machine a spinning worker would steal a whole core from NumPy or the interpreter.
// Completion is an atomic counter that the caller spins on, then sleeps on. A worker chunk not
// yet started when the caller has finished its own is run by the caller (each chunk is claimed
// once per region, by its worker or the caller): on a busy host a woken worker may sit queued
// behind the caller on the same CPU, and waiting for it cost a 2-thread call the caller's whole
// spin budget plus a wake-up (conv-stem on 2 threads: ~190 us against 135 us on 1).
//
// Determinism: the split of [0, n) is a pure function of (n, min_per_task, threads), every chunk
// runs with FTZ/DAZ on, and callers give chunks disjoint outputs, so results are bitwise
// identical for any thread count.
//
// Lifetime: the pool object is never destroyed (no static-destruction-order hazards); an atexit
// handler joins the workers (not on Windows, where joining from a DLL's exit path deadlocks on
// the loader lock), and a fork child abandons the parent's workers, which do not exist there,
// and starts afresh.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fastlayers/runtime.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define FL_FP_X86 1
#include <immintrin.h>  // _mm_getcsr / _mm_setcsr, _mm_pause (baseline SSE)
#elif defined(__aarch64__) && !defined(_MSC_VER)
#define FL_FP_AARCH64 1
#endif

#if defined(__linux__)
#include <sched.h>
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace fl {
namespace {

// True on pool workers always, and on a calling thread while it runs a parallel region: a
// parallel_for issued there runs serially instead of deadlocking on the region lock.
thread_local bool t_in_region = false;

// ---------------------------------------------------------------------------------------------
// Denormal control. FTZ/DAZ is per thread (MXCSR on x86, FPCR on AArch64): workers set it once,
// the calling thread for the duration of a region. Without it, a denormal reaching an FMA costs
// 10-100x (docs/performance.md §9), and chunks on different threads would round differently.
// ---------------------------------------------------------------------------------------------

#if defined(FL_FP_X86)
using FpMode = unsigned int;
constexpr FpMode kFtzDaz = 0x8040;  // MXCSR bit 15 = FTZ, bit 6 = DAZ
FpMode get_fp_mode() { return _mm_getcsr(); }
void set_fp_mode(FpMode m) { _mm_setcsr(m); }
#elif defined(FL_FP_AARCH64)
using FpMode = uint64_t;
constexpr FpMode kFtzDaz = uint64_t(1) << 24;  // FPCR.FZ flushes denormal inputs and outputs
FpMode get_fp_mode() {
    uint64_t v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}
void set_fp_mode(FpMode m) { __asm__ __volatile__("msr fpcr, %0" : : "r"(m)); }
#else
using FpMode = unsigned int;
constexpr FpMode kFtzDaz = 0;
FpMode get_fp_mode() { return 0; }
void set_fp_mode(FpMode) {}
#endif

class FlushDenormalsScope {
  public:
    FlushDenormalsScope() : saved_(get_fp_mode()) {
        // Writing MXCSR/FPCR is much slower than reading it: skip it when already set.
        if ((saved_ & kFtzDaz) != kFtzDaz) set_fp_mode(saved_ | kFtzDaz);
    }
    ~FlushDenormalsScope() {
        if ((saved_ & kFtzDaz) != kFtzDaz) set_fp_mode(saved_);
    }
    FlushDenormalsScope(const FlushDenormalsScope&) = delete;
    FlushDenormalsScope& operator=(const FlushDenormalsScope&) = delete;

  private:
    FpMode saved_;
};

inline void cpu_relax() {
#if defined(FL_FP_X86)
    _mm_pause();
#elif defined(FL_FP_AARCH64)
    __asm__ __volatile__("yield");
#endif
}

// How long a thread busy-waits before sleeping. Long enough to cover back-to-back regions of a
// layer sequence, short enough that an idle pool stops competing for the cores almost at once.
constexpr std::chrono::microseconds kSpinBudget(50);

// Spins until pred() or the budget runs out; the clock is read only every 64 rounds. With
// `yield`, each of those rounds also offers the CPU to another runnable thread (an idle worker
// waiting for work: on a busy host the caller may be queued on this very CPU, and spinning
// would keep it off until the budget ran out).
template <class Pred>
bool spin_until(Pred pred, bool yield = false) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 1;; ++i) {
        if (pred()) return true;
        cpu_relax();
        if ((i & 63) == 0) {
            if (std::chrono::steady_clock::now() - start > kSpinBudget) return false;
            if (yield) std::this_thread::yield();
        }
    }
}

// Start of chunk i when [0, n) is cut into k contiguous chunks whose lengths differ by at most
// one (the first n % k chunks are one longer). Avoids i*n, which can overflow.
inline int64_t chunk_begin(int64_t n, int64_t k, int64_t i) {
    return i * (n / k) + std::min(i, n % k);
}

std::atomic<int> g_num_threads{0};  // 0 = not yet initialised from default_num_threads()

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

class ThreadPool {
  public:
    ThreadPool() : sync_(new Sync), workers_(new std::vector<std::thread>) {}

    // Runs fn over k >= 2 chunks of [0, n) on the caller plus k-1 workers (fewer if the OS
    // refused to create threads).
    //
    // Work that ends up on the caller alone (no workers: process exit under way, the OS refused
    // to create threads, or another thread just shrank the pool) runs AFTER the region lock is
    // released: a parallel_for nested in it (the GEMM inside a conv2d tile, say) takes the lock
    // again and would otherwise wait for itself forever.
    void run(int64_t n, int64_t k, void (*fn)(void*, int64_t, int64_t), void* ctx) {
        std::unique_lock<std::mutex> region(sync_->region);
        k = shut_down_ ? 1 : std::min<int64_t>(k, usable_workers() + 1);
        if (k <= 1) {
            region.unlock();
            fn(ctx, 0, n);
            return;
        }
        run_locked(n, k, fn, ctx);
    }

    // fn(ctx, tid, k) on k concurrent threads, k <= k_wanted (see fl::parallel_region).
    void run_region(int k_wanted, void (*fn)(void*, int, int), void* ctx) {
        std::unique_lock<std::mutex> region(sync_->region);
        const int k = shut_down_ ? 1 : std::min(k_wanted, usable_workers() + 1);
        if (k <= 1) {
            region.unlock();  // as in run(): never run work under the region lock
            fn(ctx, 0, 1);
            return;
        }
        // n = k chunks of one: chunk i is [i, i+1), i.e. tid i, each on its own thread.
        struct Region {
            void (*fn)(void*, int, int);
            void* ctx;
            int k;
        } r{fn, ctx, k};
        run_locked(
            k, k,
            [](void* p, int64_t begin, int64_t) {
                const Region& g = *static_cast<const Region*>(p);
                g.fn(g.ctx, static_cast<int>(begin), g.k);
            },
            &r);
    }

  private:
    // The body of run() once the region lock is held and k >= 2 threads exist.
    void run_locked(int64_t n, int64_t k, void (*fn)(void*, int64_t, int64_t), void* ctx) {

        // Job fields are plain members: written here before the release-store of the ticket,
        // read by participating workers after its acquire-load, and not rewritten before every
        // participant has decremented pending_. Non-participants read only the ticket.
        fn_ = fn;
        ctx_ = ctx;
        n_ = n;
        pending_.store(static_cast<int>(k - 1), std::memory_order_relaxed);
        const uint64_t gen = publish(static_cast<uint64_t>(k));

        t_in_region = true;
        try {
            fn(ctx, 0, chunk_begin(n, k, 1));
            // A worker chunk that has not started yet (its thread not woken, or queued behind
            // this one on the same CPU of a busy host) is run here instead of waited for: the
            // chunk's thread does not change its results, and the caller would otherwise idle
            // until that worker gets a CPU. A chunk goes to whoever claims it first for this
            // generation; the loser never touches the region.
            for (int64_t i = 1; i < k; ++i) {
                uint64_t c = claims_[i].load(std::memory_order_relaxed);
                if (c >= gen || !claims_[i].compare_exchange_strong(c, gen, std::memory_order_acq_rel))
                    continue;
                struct Done {
                    std::atomic<int>& pending;
                    ~Done() { pending.fetch_sub(1, std::memory_order_acq_rel); }
                } done{pending_};
                fn(ctx, chunk_begin(n, k, i), chunk_begin(n, k, i + 1));
            }
        } catch (...) {
            // The workers still use ctx: wait for them before unwinding past it.
            wait_done();
            t_in_region = false;
            throw;
        }
        wait_done();
        t_in_region = false;
    }

  public:
    // Joins the workers if their number no longer matches num_threads(); the next region
    // creates num_threads()-1 new ones. Waits for a running region to end.
    void resize() {
        if (t_in_region) return;  // called from inside a chunk: the next region resizes
        std::lock_guard<std::mutex> region(sync_->region);
        if (static_cast<int>(workers_->size()) != num_threads() - 1) join_all();
    }

    // At process exit: joins the workers for good; later regions run on the calling thread.
    void shut_down() {
        if (t_in_region) return;
        std::lock_guard<std::mutex> region(sync_->region);
        join_all();
        shut_down_ = true;
    }

    // fork(): hold the region lock across the fork so that no region is half-way through in the
    // parent's memory image, then give the child a fresh, worker-less pool.
    void before_fork() {
        locked_for_fork_ = !t_in_region;
        if (locked_for_fork_) sync_->region.lock();
    }
    void after_fork_parent() {
        if (locked_for_fork_) sync_->region.unlock();
    }
    void after_fork_child() {
        // The parent's workers do not exist in the child: joining or destroying their
        // std::thread objects would abort, and their mutex/condvar state (possibly held or
        // waited on by threads that are gone) is unusable. Leak both and start clean.
        workers_ = new std::vector<std::thread>;
        sync_ = new Sync;
        locked_for_fork_ = false;
        stop_.store(false);
        pending_.store(0);
    }

  private:
    struct Sync {
        std::mutex region;  // one parallel region at a time
        std::mutex m;       // protects the sleep/wake hand-shakes below
        std::condition_variable work_cv;
        std::condition_variable done_cv;
    };

    // Returns the new generation.
    uint64_t publish(uint64_t nchunks) {
        const uint64_t gen = (ticket_.load(std::memory_order_relaxed) >> 16) + 1;
        {
            // Under the mutex so that a worker between its predicate check and its wait cannot
            // miss the notification.
            std::lock_guard<std::mutex> lk(sync_->m);
            ticket_.store((gen << 16) | nchunks, std::memory_order_release);
        }
        sync_->work_cv.notify_all();
        return gen;
    }

    void wait_done() {
        auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
        if (spin_until(done)) return;
        std::unique_lock<std::mutex> lk(sync_->m);
        sync_->done_cv.wait(lk, done);
    }

    // Makes num_threads()-1 workers (as many as the OS allows) and returns how many there are.
    // Called with the region lock held.
    int usable_workers() {
        ensure_workers(num_threads() - 1);
        return static_cast<int>(workers_->size());
    }

    void ensure_workers(int wanted) {
        wanted = std::max(0, wanted);
        if (static_cast<int>(workers_->size()) == wanted) return;
        join_all();
        const uint64_t ticket = ticket_.load(std::memory_order_relaxed);
        claims_.reset(new std::atomic<uint64_t>[static_cast<size_t>(wanted) + 1]);
        for (int i = 0; i <= wanted; ++i) claims_[i].store(0, std::memory_order_relaxed);
        for (int i = 1; i <= wanted; ++i) {
            try {
                workers_->emplace_back(&ThreadPool::worker_main, this, i, ticket);
            } catch (const std::system_error&) {
                break;  // out of threads: run with the ones we have
            }
        }
    }

    void join_all() {
        if (workers_->empty()) return;
        stop_.store(true, std::memory_order_relaxed);
        publish(0);
        for (std::thread& t : *workers_) t.join();
        workers_->clear();
        stop_.store(false, std::memory_order_relaxed);
    }

    void worker_main(int index, uint64_t seen) {
        set_fp_mode(get_fp_mode() | kFtzDaz);
        t_in_region = true;
        for (;;) {
            const uint64_t ticket = wait_ticket(seen);
            seen = ticket;
            if (stop_.load(std::memory_order_relaxed)) return;  // ordered by the ticket acquire
            const int64_t k = static_cast<int64_t>(ticket & 0xFFFF);
            if (index >= k) continue;  // not needed in this region
            // Claim the chunk; if the caller already ran it (for this region or, when this
            // thread is late, for a later one), the region may be over: skip it.
            const uint64_t gen = ticket >> 16;
            uint64_t c = claims_[index].load(std::memory_order_relaxed);
            if (c >= gen ||
                !claims_[index].compare_exchange_strong(c, gen, std::memory_order_acq_rel))
                continue;
            fn_(ctx_, chunk_begin(n_, k, index), chunk_begin(n_, k, index + 1));
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                // Last one out wakes the caller if it went to sleep. Taking the mutex orders
                // this notify after the caller's predicate check.
                sync_->m.lock();
                sync_->m.unlock();
                sync_->done_cv.notify_one();
            }
        }
    }

    uint64_t wait_ticket(uint64_t seen) {
        uint64_t t = seen;
        auto changed = [&] {
            t = ticket_.load(std::memory_order_acquire);
            return t != seen;
        };
        if (spin_until(changed, /*yield=*/true)) return t;
        std::unique_lock<std::mutex> lk(sync_->m);
        sync_->work_cv.wait(lk, changed);
        return t;
    }

    Sync* sync_;
    std::vector<std::thread>* workers_;
    std::atomic<uint64_t> ticket_{0};  // generation << 16 | chunks in this region (0 = stop)
    std::atomic<int> pending_{0};      // worker chunks of the current region not yet finished
    // claims_[i]: the last generation whose chunk i was claimed (by worker i or the caller).
    std::unique_ptr<std::atomic<uint64_t>[]> claims_;
    std::atomic<bool> stop_{false};
    bool locked_for_fork_ = false;
    bool shut_down_ = false;

    // The current region (see run()).
    void (*fn_)(void*, int64_t, int64_t) = nullptr;
    void* ctx_ = nullptr;
    int64_t n_ = 0;
};

ThreadPool* pool_instance();

ThreadPool* create_pool() {
    ThreadPool* p = new ThreadPool;  // never deleted, see the file comment
#if !defined(_WIN32)
    std::atexit([] { pool_instance()->shut_down(); });
    pthread_atfork([] { pool_instance()->before_fork(); },
                   [] { pool_instance()->after_fork_parent(); },
                   [] { pool_instance()->after_fork_child(); });
#endif
    return p;
}

// Created on first use; creating it starts no thread.
ThreadPool* pool_instance() {
    static ThreadPool* const pool = create_pool();
    return pool;
}

}  // namespace

int default_num_threads() {
    int n = 0;
#if defined(__linux__)
    // The CPUs we may run on (taskset, cgroup cpusets, container limits), not the machine's.
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n < 1) n = static_cast<int>(std::thread::hardware_concurrency());
    return std::min(std::max(n, 1), kMaxThreads);
}

int num_threads() {
    int n = g_num_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
    int expected = 0;
    g_num_threads.compare_exchange_strong(expected, default_num_threads());
    return g_num_threads.load(std::memory_order_relaxed);
}

void set_num_threads(int n) {
    if (n < 1 || n > kMaxThreads) {
        throw std::invalid_argument("set_num_threads: n must be in [1, " +
                                    std::to_string(kMaxThreads) + "], got " + std::to_string(n));
    }
    g_num_threads.store(n, std::memory_order_relaxed);
    // Join the old workers now rather than leaving them asleep until the next region.
    pool_instance()->resize();
}

void parallel_region(int max_threads, void (*fn)(void*, int, int), void* ctx) {
    FlushDenormalsScope ftz;
    const int k = std::min(max_threads, num_threads());
    if (t_in_region || k <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool_instance()->run_region(k, fn, ctx);
}

void SpinBarrier::wait(int nthreads) {
    if (nthreads <= 1) return;
    const unsigned gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == nthreads - 1) {
        // Last one in: reset the count before releasing the others, who may re-enter at once.
        arrived_.store(0, std::memory_order_relaxed);
        generation_.store(gen + 1, std::memory_order_seq_cst);
        // seq_cst store, then load: a sleeper that registered before this load is seen here;
        // one that registers after it sees the new generation and does not sleep.
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> lk(m_); }  // the sleeper is inside wait() now
            cv_.notify_all();
        }
        return;
    }
    auto passed = [&] { return generation_.load(std::memory_order_acquire) != gen; };
    if (spin_until(passed)) return;
    std::unique_lock<std::mutex> lk(m_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    // seq_cst (not just acquire) so that this check and the last arriver's load of sleepers_
    // cannot both miss the other's store.
    cv_.wait(lk, [&] { return generation_.load(std::memory_order_seq_cst) != gen; });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

void parallel_for(int64_t n, int64_t min_per_task, void (*fn)(void*, int64_t, int64_t), void* ctx) {
    if (n <= 0) return;
    min_per_task = std::max<int64_t>(min_per_task, 1);
    FlushDenormalsScope ftz;
    if (t_in_region) {  // nested inside a chunk: the pool is busy with our parent region
        fn(ctx, 0, n);
        return;
    }
    const int64_t k = std::min<int64_t>(num_threads(), n / min_per_task);
    if (k <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pool_instance()->run(n, k, fn, ctx);
}

// ---------------------------------------------------------------------------------------------
// Guided self-scheduling
// ---------------------------------------------------------------------------------------------

GuidedRuns::GuidedRuns(int64_t n, int64_t workers, int64_t granule, int64_t max_run)
    : n_(n),
      workers_(std::max<int64_t>(1, workers)),
      granule_(std::max<int64_t>(1, granule)),
      max_run_(std::max<int64_t>(1, max_run)) {}

bool GuidedRuns::claim(int64_t* begin, int64_t* end) {
    int64_t p = next_.load(std::memory_order_relaxed);
    int64_t len = 0;
    do {
        if (p >= n_) return false;
        const int64_t rest = n_ - p;
        const int64_t guided =
            workers_ > 1 ? std::max(granule_, rest / (2 * workers_) / granule_ * granule_)
                         : max_run_;
        len = std::min(rest, std::min(max_run_, guided));
    } while (!next_.compare_exchange_weak(p, p + len, std::memory_order_relaxed));
    *begin = p;
    *end = p + len;
    return true;
}

}  // namespace fl
