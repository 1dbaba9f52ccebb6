// The thread pool behind fl::parallel_for.
//
// Design (docs/architecture.md §7): one pool of our own, no OpenMP. num_threads()-1 workers,
// created on the first region that needs them; the calling thread runs chunk 0 itself. Each
// worker waits on a slot of its own: a region of k chunks writes the tickets (generation << 16 |
// k) of workers 1..k-1 only, and wakes only those of them that sleep, so the rest of a big pool
// stays asleep. A worker spins on its ticket for a few tens of microseconds after its last job
// (a hand-off then costs ~100 ns instead of a futex wake-up), then sleeps on its condition
// variable, so an idle pool burns no CPU - on a 2-core machine a spinning worker would steal a
// whole core from NumPy or the interpreter. Chunk i belongs to thread i but runs on whichever
// thread claims it first (one compare-and-swap per chunk and region): every thread claims its
// own chunk, then any chunk nobody has started, so a worker that is not woken yet, or queued
// behind another process on a busy host, has its chunk run by a thread that is free instead of
// being waited for. Completion is an atomic count of chunks that the caller spins on, then
// sleeps on. A sleeping worker is woken with the caller's CPU out of its CPU mask (Linux
// queues a woken thread on the waker's CPU too often), and restores the mask once awake (or the
// caller does at the region's end, if it is not awake by then); a caller that knows its workers
// are late calls them onto its own CPU (call_late_workers_here; docs/architecture.md §7). If
// the OS refuses to start a worker, the pool keeps the ones it got, lowers num_threads() to
// match and leaves a one-time report for the Python bindings (a worker never calls into
// Python).
//
// Units-split backoff: in a recurrent units split the threads share every step (SharedPhases),
// and a partner descheduled in the middle of a step's item holds the caller until its CPU is
// back, step after step. The caller measures, per such region, how long it waited for the others
// (SharedPhases::wait - not wait_for, the units split's stall patience - and wait_done after its
// own work) against the region's length; when it waited for more than half of a region of at
// least kStallMin, the next units splits run on the caller alone (the recurrent drivers ask
// units_split_backoff() before each): 8 of them, doubling on each repeat up to 64, back to 8
// after a units split that ran cleanly. Other regions neither trigger it nor follow it: there,
// claiming lets the caller take over whatever a late thread has not started
// (docs/architecture.md §7 has the measurements). Results do not change: they are the same for
// any thread count.
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
#if defined(__linux__) && !defined(__ANDROID__)
#define FL_POOL_AFFINITY 1  // pthread_{get,set}affinity_np, sched_getcpu (keep_off, call_here)
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace fl {
namespace {

// True on pool workers always, and on a calling thread while it runs a parallel region: a
// parallel_for issued there runs serially instead of deadlocking on the region lock.
thread_local bool t_in_region = false;
// Set by fl::RunAloneScope: regions started on this thread run on it alone.
thread_local bool t_alone = false;
// The calling thread of the current multi-thread region; whether it waited in SharedPhases there
// (a units split) and for how long: the units-split backoff's measurement.
thread_local bool t_region_caller = false;
thread_local bool t_workers_awake = false;  // see fl::region_workers_were_awake
thread_local bool t_region_phases = false;
thread_local int64_t t_caller_wait_ns = 0;

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
bool spin_until(Pred pred, bool yield = false,
                std::chrono::nanoseconds budget = kSpinBudget) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 1;; ++i) {
        if (pred()) return true;
        cpu_relax();
        if ((i & 63) == 0) {
            if (std::chrono::steady_clock::now() - start > budget) return false;
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
// Counters (fl::pool_stats) and the report of a refused thread (fl::take_thread_start_warning)
// ---------------------------------------------------------------------------------------------

std::atomic<uint64_t> g_stat_regions{0};     // multi-thread regions run
std::atomic<uint64_t> g_stat_signalled{0};   // workers handed a region
std::atomic<uint64_t> g_stat_wakeups{0};     // times a worker left its wait with a new region
std::atomic<uint64_t> g_stat_taken_over{0};  // chunks run by a thread other than their owner

std::atomic<uint64_t> g_stat_called_here{0};  // late workers moved to the caller's CPU
std::atomic<uint64_t> g_stat_backoffs{0};     // contended units splits
std::atomic<uint64_t> g_stat_serial{0};       // units splits the backoff ran on the caller alone
std::atomic<uint64_t> g_stat_given_back{0};   // late workers' masks the caller restored
std::atomic<int64_t> g_wake_delay_us{0};      // pool_wake_delay_for_tests

// The units-split backoff (see the top of this file).
constexpr int64_t kStallMinNs = 200000;  // a wait shorter than this is never contention
constexpr int kBackoffFirst = 8, kBackoffMax = 64;
std::atomic<bool> g_backoff_enabled{true};
std::atomic<int> g_backoff_len{kBackoffFirst};  // units splits alone after the next contended one
std::atomic<int> g_serial_left{0};              // units splits still to run alone

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// After a units split of `total_ns` in which the caller waited `wait_ns` for the others.
void note_region(int64_t wait_ns, int64_t total_ns) {
    if (!g_backoff_enabled.load(std::memory_order_relaxed)) return;
    if (wait_ns >= kStallMinNs && 2 * wait_ns > total_ns) {
        const int len = g_backoff_len.load(std::memory_order_relaxed);
        g_serial_left.store(len, std::memory_order_relaxed);
        g_backoff_len.store(std::min(2 * len, kBackoffMax), std::memory_order_relaxed);
        g_stat_backoffs.fetch_add(1, std::memory_order_relaxed);
    } else if (total_ns >= 2 * kStallMinNs) {
        // Long enough to have shown contention, and clean: back to the first length (a short
        // region proves nothing, so it leaves the length alone).
        g_backoff_len.store(kBackoffFirst, std::memory_order_relaxed);
    }
}

std::atomic<bool> g_start_failed{false};        // the OS refused a worker at least once
std::atomic<bool> g_start_warning_pending{false};  // ... and nobody has taken the report yet
std::mutex g_start_warning_mu;
std::string g_start_warning;  // written once, before g_start_warning_pending is set

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

class ThreadPool {
  public:
    ThreadPool() : sync_(new Sync), workers_(new std::vector<std::thread>) {}

    // Runs fn over k >= 2 chunks of [0, n) on the caller plus up to k-1 workers (fewer if the
    // OS refused to create threads).
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

    // fn(ctx, tid, k) for tid in [0, k), k <= k_wanted (see fl::parallel_region).
    void run_region(int k_wanted, void (*fn)(void*, int, int), void* ctx) {
        std::unique_lock<std::mutex> region(sync_->region);
        const int k = shut_down_ ? 1 : std::min(k_wanted, usable_workers() + 1);
        if (k <= 1) {
            region.unlock();  // as in run(): never run work under the region lock
            fn(ctx, 0, 1);
            return;
        }
        // n = k chunks of one: chunk i is [i, i+1), i.e. tid i.
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
    //
    // Chunk i belongs to thread i (the caller is 0). Only workers 1..k-1 are signalled, each on
    // its own slot, so a region of k chunks on a pool of 32 threads wakes at most k-1 of them.
    // Every chunk is claimed once per region (claims_[i] = generation, by compare-and-swap):
    // each thread claims its own chunk first, then any chunk nobody has started, so a thread
    // that is late (not yet woken, or descheduled by a busy machine) has its chunk run by one
    // that is not. The split itself never changes, so neither do the results.
    void run_locked(int64_t n, int64_t k, void (*fn)(void*, int64_t, int64_t), void* ctx) {
        // Job fields are plain members: written here before the seq_cst stores of the slot
        // tickets, read by a worker after it loaded such a ticket and won a claim of this
        // generation (which proves the region is still running), never rewritten before
        // remaining_ reaches 0.
        fn_ = fn;
        ctx_ = ctx;
        n_ = n;
        region_k_ = k;
        remaining_.store(k, std::memory_order_relaxed);
        const uint64_t gen = ++gen_;
        claims_[0].store(gen, std::memory_order_relaxed);  // chunk 0 is the caller's, always
        const uint64_t ticket = (gen << 16) | static_cast<uint64_t>(k);
        const int here = current_cpu();
        bool awake = true;
        for (int64_t i = 1; i < k; ++i) {
            keep_off(static_cast<size_t>(i), here);
            awake &= signal(static_cast<size_t>(i), ticket);
        }
        t_workers_awake = awake;
        g_stat_regions.fetch_add(1, std::memory_order_relaxed);
        g_stat_signalled.fetch_add(static_cast<uint64_t>(k - 1), std::memory_order_relaxed);

        t_in_region = true;
        t_region_caller = true;
        t_region_phases = false;
        t_caller_wait_ns = 0;
        const int64_t start = now_ns();
        try {
            run_chunk(0, k, /*on_caller=*/true);
            take_over(0, gen, k, /*on_caller=*/true);
        } catch (...) {
            // The workers still use ctx: wait for them before unwinding past it. Every chunk
            // still unclaimed is claimed by a signalled worker (each scans them all).
            wait_done();
            give_back_masks();
            t_in_region = false;
            t_region_caller = false;
            throw;
        }
        // Only a units split (the caller waited in SharedPhases during its own part) is timed.
        const bool timed = t_region_phases;
        const int64_t waiting = timed ? now_ns() : 0;
        wait_done();
        give_back_masks();
        t_in_region = false;
        t_region_caller = false;
        if (timed) {
            const int64_t end = now_ns();
            note_region(t_caller_wait_ns + (end - waiting), end - start);
        }
    }

    // Runs claimed chunk i of the current region and counts it done.
    void run_chunk(int64_t i, int64_t k, bool on_caller) {
        struct Done {
            ThreadPool* pool;
            bool on_caller;
            ~Done() { pool->chunk_done(on_caller); }
        } done{this, on_caller};
        fn_(ctx_, chunk_begin(n_, k, i), chunk_begin(n_, k, i + 1));
    }

    // Claims and runs every chunk of generation `gen` that nobody has started, starting after
    // the thread's own chunk `own`.
    void take_over(int64_t own, uint64_t gen, int64_t k, bool on_caller) {
        for (int64_t j = 1; j < k; ++j) {
            const int64_t i = (own + j) % k;
            if (!claim(i, gen)) continue;
            g_stat_taken_over.fetch_add(1, std::memory_order_relaxed);
            run_chunk(i, k, on_caller);
        }
    }

    bool claim(int64_t i, uint64_t gen) {
        uint64_t c = claims_[i].load(std::memory_order_relaxed);
        return c < gen && claims_[i].compare_exchange_strong(c, gen, std::memory_order_acq_rel);
    }

    void chunk_done(bool on_caller) {
        if (remaining_.fetch_sub(1, std::memory_order_seq_cst) != 1 || on_caller) return;
        // Last chunk, finished by a worker: wake the caller if it went to sleep (seq_cst RMW
        // then load, against the caller's seq_cst store then load in wait_done).
        if (caller_sleeping_.load(std::memory_order_seq_cst)) {
            { std::lock_guard<std::mutex> lk(sync_->m); }
            sync_->done_cv.notify_one();
        }
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
        // waited on by threads that are gone) is unusable. Leak all of it and start clean.
        workers_ = new std::vector<std::thread>;
        sync_ = new Sync;
        slots_.release();
        slots_.reset(new Slot[1]);
        locked_for_fork_ = false;
        region_k_ = 0;  // a fork inside a region: no worker of it exists here (call_here)
#if defined(FL_POOL_AFFINITY)
        narrowed_any_ = false;
#endif
        stop_.store(false);
        remaining_.store(0);
        caller_sleeping_.store(false);
    }

  private:
    struct Sync {
        std::mutex region;  // one parallel region at a time
        std::mutex m;       // the caller's sleep/wake hand-shake (done_cv)
        std::condition_variable done_cv;
    };

    // One per worker: the latest region handed to it (generation << 16 | chunks; chunks = 0
    // with stop_ set means "exit"), and its own sleep/wake hand-shake, so that signalling one
    // worker wakes no other.
    struct alignas(64) Slot {
        std::atomic<uint64_t> ticket{0};
        std::atomic<bool> sleeping{false};
        std::atomic<bool> inside{false};  // the worker is inside a region (call_here)
#if defined(FL_POOL_AFFINITY)
        std::mutex affinity_m;  // guards the two below (keep_off, call_here, rejoin, give back)
        bool kept_off = false;  // the worker's mask is narrowed from `own`
        cpu_set_t own;          // its mask before that
#endif
        std::mutex m;
        std::condition_variable cv;
    };

    static int current_cpu() {
#if defined(FL_POOL_AFFINITY)
        return sched_getcpu();
#else
        return -1;
#endif
    }

    // A sleeping worker is woken off the CPU the caller runs on: Linux often wakes a thread on
    // the CPU of the thread that wakes it (or on its own last CPU, the same one after a region
    // it never joined), and there it waits until the caller stops computing. On the 2-vCPU
    // development VM, after a 5 ms pause, a woken worker sat queued behind the caller, the
    // other CPU idle, in 7 of 12 regions (docs/architecture.md §7). The worker's CPU mask
    // loses the caller's CPU until it wakes, when it gets its own mask back (or, not awake by
    // the region's end, from the caller then: give_back_masks; see worker_main:
    // pinned for longer, it could not be moved to the caller's CPU when the caller waits for
    // it, and under a busy core waited out the other process's time slice). Masks are only
    // ever narrowed from the worker's own (whatever the user set with taskset or
    // sched_setaffinity), never widened.
    void keep_off(size_t i, int cpu) {
#if defined(FL_POOL_AFFINITY)
        if (cpu < 0 || cpu >= CPU_SETSIZE) return;
        Slot& s = slots_[i];
        if (!s.sleeping.load(std::memory_order_relaxed)) return;
        std::lock_guard<std::mutex> lk(s.affinity_m);
        // (Never already narrowed: every region ends with every mask given back.)
        narrow(i, [cpu](const cpu_set_t& own, cpu_set_t* to) {
            *to = own;
            CPU_CLR(cpu, to);
        });
#else
        (void)i;
        (void)cpu;
#endif
    }

  public:
    // fl::call_late_workers_here: on the caller of the running region (region lock held).
    void call_here() {
#if defined(FL_POOL_AFFINITY)
        const int cpu = current_cpu();
        if (cpu < 0 || cpu >= CPU_SETSIZE) return;
        for (int64_t i = 1; i < region_k_; ++i) {
            Slot& s = slots_[static_cast<size_t>(i)];
            // Under the slot's lock: a worker clears `inside` before it takes the lock in
            // rejoin, so either it is seen gone here, or its rejoin (or give_back_masks at the
            // region's end) undoes what is done here.
            std::lock_guard<std::mutex> lk(s.affinity_m);
            if (!s.inside.load(std::memory_order_acquire)) continue;
            const bool moved = narrow(static_cast<size_t>(i), [cpu](const cpu_set_t& own,
                                                                    cpu_set_t* to) {
                CPU_ZERO(to);
                if (CPU_ISSET(cpu, &own)) CPU_SET(cpu, to);
            });
            if (moved) g_stat_called_here.fetch_add(1, std::memory_order_relaxed);
        }
#endif
    }

  private:
#if defined(FL_POOL_AFFINITY)
    // Sets worker i's mask to what `target(own, &to)` makes of its own mask (read from the
    // thread the first time, kept until rejoin or give_back_masks); an empty result or no
    // change does nothing. Returns whether the mask was changed. The slot's affinity lock is
    // held, and the region lock (the caller's side: narrowed_any_).
    template <class Target>
    bool narrow(size_t i, const Target& target) {
        Slot& s = slots_[i];
        const pthread_t h = (*workers_)[i - 1].native_handle();
        if (!s.kept_off && pthread_getaffinity_np(h, sizeof(s.own), &s.own) != 0) return false;
        cpu_set_t to;
        target(s.own, &to);
        if (CPU_COUNT(&to) == 0 || CPU_EQUAL(&to, &s.own)) return false;
        if (pthread_setaffinity_np(h, sizeof(to), &to) != 0) return false;
        s.kept_off = true;
        narrowed_any_ = true;
        return true;
    }

    // Worker i's own mask back, if it is narrowed (the slot's affinity lock held); from the
    // worker itself (rejoin) or from the caller (give_back_masks).
    static bool restore(Slot& s, pthread_t h) {
        if (!s.kept_off) return false;
        s.kept_off = false;
        return pthread_setaffinity_np(h, sizeof(s.own), &s.own) == 0;
    }
#endif

    // The caller's side, once the region is done: a worker that was signalled but not yet
    // awake (or is awake and not yet back in rejoin) still has the mask keep_off or call_here
    // gave it; it gets its own back now, before the call returns. Left to the worker, the
    // mask was restored whenever it next ran - on a busy machine after the caller had
    // returned and the user had pinned the thread, whose new mask the stale one then
    // replaced (a CI run: 18 of 200 trials under load). A region that narrowed no mask (the
    // usual one: no worker was asleep) costs nothing here; one that did takes each of its
    // workers' affinity locks, and a syscall for each worker still narrowed, whose own rejoin
    // then finds nothing to do. On the region lock, after wait_done; region_k_, not the
    // region's k: 0 in a child forked inside a region, which has no workers (such a child
    // cannot finish that region anyway: after_fork_child zeroes remaining_, which the caller's
    // own chunks then drive below 0; a chunk must not fork unless the child execs or exits).
    void give_back_masks() {
#if defined(FL_POOL_AFFINITY)
        if (!narrowed_any_) return;
        narrowed_any_ = false;
        for (int64_t i = 1; i < region_k_; ++i) {
            Slot& s = slots_[static_cast<size_t>(i)];
            std::lock_guard<std::mutex> lk(s.affinity_m);
            if (restore(s, (*workers_)[static_cast<size_t>(i) - 1].native_handle()))
                g_stat_given_back.fetch_add(1, std::memory_order_relaxed);
        }
#endif
    }

    // The worker's side of keep_off and call_here, once awake or done: its own mask back.
    void rejoin(Slot& s) {
#if defined(FL_POOL_AFFINITY)
        std::lock_guard<std::mutex> lk(s.affinity_m);
        restore(s, pthread_self());
#else
        (void)s;
#endif
    }

    // Hands worker i its ticket; returns whether it was awake (not woken here).
    bool signal(size_t i, uint64_t ticket) {
        Slot& s = slots_[i];
        // seq_cst store then load, against the worker's seq_cst store of `sleeping` then load
        // of `ticket`: one of the two sees the other's store, so no wake-up is lost.
        s.ticket.store(ticket, std::memory_order_seq_cst);
        if (s.sleeping.load(std::memory_order_seq_cst)) {
            { std::lock_guard<std::mutex> lk(s.m); }  // the worker is inside cv.wait now
            s.cv.notify_one();
            return false;
        }
        return true;
    }

    void wait_done() {
        auto done = [this] { return remaining_.load(std::memory_order_seq_cst) == 0; };
        if (spin_until(done, /*yield=*/true)) return;
        std::unique_lock<std::mutex> lk(sync_->m);
        caller_sleeping_.store(true, std::memory_order_seq_cst);
        sync_->done_cv.wait(lk, done);
        caller_sleeping_.store(false, std::memory_order_relaxed);
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
        slots_.reset(new Slot[static_cast<size_t>(wanted) + 1]);
        claims_.reset(new std::atomic<uint64_t>[static_cast<size_t>(wanted) + 1]);
        for (int i = 0; i <= wanted; ++i) claims_[i].store(0, std::memory_order_relaxed);
        std::string why;
        for (int i = 1; i <= wanted; ++i) {
            try {
                workers_->emplace_back(&ThreadPool::worker_main, this, i);
            } catch (const std::exception& e) {  // std::system_error, or bad_alloc
                why = e.what();
                break;  // out of threads: run with the ones we have
            }
        }
        const int got = static_cast<int>(workers_->size());
        if (got < wanted) capped(got + 1, wanted + 1, why);
    }

    // The OS refused a thread: the pool keeps the `got` threads it has (num_threads() says
    // so from now on, so that the drivers plan for them and no region retries), and the first
    // time in the process a report is left for the Python layer (fl::take_thread_start_warning:
    // a worker thread never calls into Python).
    static void capped(int got, int wanted, const std::string& why) {
        g_num_threads.store(got, std::memory_order_relaxed);
        if (g_start_failed.exchange(true)) return;
        {
            std::lock_guard<std::mutex> lk(g_start_warning_mu);
            g_start_warning = "fastlayers: the operating system refused to start a thread (" +
                              why + "); the C++ kernels run on " + std::to_string(got) +
                              " thread" + (got == 1 ? "" : "s") + " instead of " +
                              std::to_string(wanted) + " (get_num_threads() now says " +
                              std::to_string(got) + ")";
        }
        g_start_warning_pending.store(true, std::memory_order_release);
    }

    void join_all() {
        if (workers_->empty()) return;
        stop_.store(true, std::memory_order_relaxed);
        const uint64_t ticket = ++gen_ << 16;  // 0 chunks, new generation: differs from any seen
        for (size_t i = 1; i <= workers_->size(); ++i) signal(i, ticket);
        for (std::thread& t : *workers_) t.join();
        workers_->clear();
        stop_.store(false, std::memory_order_relaxed);
    }

    void worker_main(int index) {
        set_fp_mode(get_fp_mode() | kFtzDaz);
        t_in_region = true;
        Slot& slot = slots_[static_cast<size_t>(index)];
        uint64_t seen = 0;  // a fresh slot's ticket
        for (;;) {
            const uint64_t ticket = wait_ticket(slot, seen);
            if (const int64_t us = g_wake_delay_us.load(std::memory_order_relaxed); us > 0)
                std::this_thread::sleep_for(std::chrono::microseconds(us));
            rejoin(slot);
            seen = ticket;
            if (stop_.load(std::memory_order_relaxed)) return;  // ordered by the ticket load
            g_stat_wakeups.fetch_add(1, std::memory_order_relaxed);
            const int64_t k = static_cast<int64_t>(ticket & 0xFFFF);
            const uint64_t gen = ticket >> 16;
            if (index >= k) continue;  // never signalled so (kept as a guard)
            // Own chunk first. A claim that fails means the chunk was taken over (or, when this
            // thread is late, the region is over): then only unstarted chunks are looked for,
            // and of a finished region there are none.
            slot.inside.store(true, std::memory_order_release);
            if (claim(index, gen)) run_chunk(index, k, /*on_caller=*/false);
            take_over(index, gen, k, /*on_caller=*/false);
            slot.inside.store(false, std::memory_order_release);
            rejoin(slot);
        }
    }

    // Spins (offering the CPU now and then) for the spin budget, then sleeps on the slot.
    static uint64_t wait_ticket(Slot& slot, uint64_t seen) {
        uint64_t t = seen;
        auto changed = [&] {
            t = slot.ticket.load(std::memory_order_seq_cst);
            return t != seen;
        };
        if (spin_until(changed, /*yield=*/true)) return t;
        std::unique_lock<std::mutex> lk(slot.m);
        slot.sleeping.store(true, std::memory_order_seq_cst);
        slot.cv.wait(lk, changed);
        slot.sleeping.store(false, std::memory_order_relaxed);
        return t;
    }

    Sync* sync_;
    std::vector<std::thread>* workers_;
    std::unique_ptr<Slot[]> slots_{new Slot[1]};  // [1, workers] used
    uint64_t gen_ = 0;                            // last generation (region lock held)
    alignas(64) std::atomic<int64_t> remaining_{0};  // chunks of the current region not done
    std::atomic<bool> caller_sleeping_{false};
    // claims_[i]: the last generation whose chunk i was claimed (by any thread).
    std::unique_ptr<std::atomic<uint64_t>[]> claims_;
    std::atomic<bool> stop_{false};
    bool locked_for_fork_ = false;
    bool shut_down_ = false;

    // The current region (see run_locked()).
    void (*fn_)(void*, int64_t, int64_t) = nullptr;
    void* ctx_ = nullptr;
    int64_t n_ = 0;
    int64_t region_k_ = 0;  // chunks of the current region (call_here, give_back_masks)
#if defined(FL_POOL_AFFINITY)
    bool narrowed_any_ = false;  // a mask was narrowed in this region (caller, region lock)
#endif
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
    if (t_in_region || t_alone || k <= 1) {
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
    // Nested inside a chunk (the pool is busy with our parent region), or in a RunAloneScope.
    if (t_in_region || t_alone) {
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

bool region_workers_were_awake() { return t_region_caller && t_workers_awake; }

void call_late_workers_here() {
    if (t_region_caller) pool_instance()->call_here();
}

RunAloneScope::RunAloneScope(bool on) : prev_(t_alone) {
    if (on) t_alone = true;
}

RunAloneScope::~RunAloneScope() { t_alone = prev_; }

bool units_split_backoff() {
    if (g_serial_left.load(std::memory_order_relaxed) <= 0) return false;
    if (!g_backoff_enabled.load(std::memory_order_relaxed)) return false;
    if (g_serial_left.fetch_sub(1, std::memory_order_relaxed) <= 0) return false;  // raced
    g_stat_serial.fetch_add(1, std::memory_order_relaxed);
    return true;
}

PoolStats pool_stats() {
    PoolStats s;
    s.regions = g_stat_regions.load(std::memory_order_relaxed);
    s.backoffs = g_stat_backoffs.load(std::memory_order_relaxed);
    s.serial_by_backoff = g_stat_serial.load(std::memory_order_relaxed);
    s.late_workers_called = g_stat_called_here.load(std::memory_order_relaxed);
    s.workers_signalled = g_stat_signalled.load(std::memory_order_relaxed);
    s.worker_wakeups = g_stat_wakeups.load(std::memory_order_relaxed);
    s.chunks_taken_over = g_stat_taken_over.load(std::memory_order_relaxed);
    s.masks_given_back = g_stat_given_back.load(std::memory_order_relaxed);
    return s;
}

void pool_wake_delay_for_tests(int64_t us) {
    g_wake_delay_us.store(std::max<int64_t>(0, us), std::memory_order_relaxed);
}

std::string take_thread_start_warning() {
    if (!g_start_warning_pending.load(std::memory_order_acquire)) return std::string();
    if (!g_start_warning_pending.exchange(false, std::memory_order_acq_rel)) return std::string();
    std::lock_guard<std::mutex> lk(g_start_warning_mu);
    return g_start_warning;
}

// ---------------------------------------------------------------------------------------------
// Shared phases
// ---------------------------------------------------------------------------------------------

SharedPhases::SharedPhases(const std::vector<int64_t>& sizes)
    : nshares_(std::max<int>(1, static_cast<int>(sizes.size()))),
      shares_(new Share[static_cast<size_t>(std::max<size_t>(1, sizes.size()))]) {
    for (size_t s = 0; s < sizes.size(); ++s) {
        shares_[s].size = std::max<int64_t>(0, sizes[s]);
        total_ += shares_[s].size;
    }
}

bool SharedPhases::claim(int tid, int64_t phase, int* share, int64_t* item, bool backwards) {
    const int own = (tid % nshares_ + nshares_) % nshares_;
    for (int j = 0; j < nshares_; ++j) {
        const int s = backwards ? nshares_ - 1 - j : (own + j) % nshares_;
        Share& sh = shares_[s];
        // A share's counter runs on over the phases: phase p's items are [p*size, (p+1)*size).
        // When phase p opens every item of the earlier phases is claimed, so next >= p*size.
        const int64_t lo = phase * sh.size;
        const int64_t hi = lo + sh.size;
        int64_t c = sh.next.load(std::memory_order_relaxed);
        while (c < hi) {
            if (sh.next.compare_exchange_weak(c, c + 1, std::memory_order_relaxed)) {
                *share = s;
                *item = c - lo;
                return true;
            }
        }
    }
    return false;
}

void SharedPhases::done(int64_t phase, int64_t count) {
    if (count <= 0) return;
    // seq_cst RMW then load, against the seq_cst store then load of a thread going to sleep.
    const int64_t now = done_.fetch_add(count, std::memory_order_seq_cst) + count;
    if (now >= (phase + 1) * total_ && sleepers_.load(std::memory_order_seq_cst) > 0) {
        { std::lock_guard<std::mutex> lk(m_); }  // a sleeper is inside cv_.wait now
        cv_.notify_all();
    }
}

bool SharedPhases::wait_for(int64_t phase, std::chrono::nanoseconds patience) const {
    // Yielding: a partner queued on this CPU may run.
    return spin_until([&] { return finished(phase); }, /*yield=*/true, patience) ||
           finished(phase);
}

bool SharedPhases::finished(int64_t phase) const {
    return done_.load(std::memory_order_acquire) >= (phase + 1) * total_;
}

void SharedPhases::wait(int64_t phase) {
    if (t_region_caller) t_region_phases = true;  // a units split: the backoff judges it
    if (finished(phase)) return;
    struct Timed {  // the caller's wait counts for the units-split backoff
        int64_t start = t_region_caller ? now_ns() : 0;
        ~Timed() {
            if (start) t_caller_wait_ns += now_ns() - start;
        }
    } timed;
    auto passed = [&] { return finished(phase); };
    if (spin_until(passed, /*yield=*/true)) return;
    std::unique_lock<std::mutex> lk(m_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    cv_.wait(lk, [&] {
        return done_.load(std::memory_order_seq_cst) >= (phase + 1) * total_;
    });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
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

void set_contention_backoff(bool on) {
    g_backoff_enabled.store(on, std::memory_order_relaxed);
    if (!on) g_serial_left.store(0, std::memory_order_relaxed);
    g_backoff_len.store(kBackoffFirst, std::memory_order_relaxed);
}

bool contention_backoff() { return g_backoff_enabled.load(std::memory_order_relaxed); }

void note_region_for_tests(int64_t wait_ns, int64_t total_ns) { note_region(wait_ns, total_ns); }

int backoff_serial_left() { return std::max(0, g_serial_left.load(std::memory_order_relaxed)); }

}  // namespace fl
