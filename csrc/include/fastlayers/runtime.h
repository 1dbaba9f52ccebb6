// fastlayers runtime: CPU feature detection, ISA selection and the thread pool.
//
// This header is part of the C++ API of the core. It must never include pybind11 or Python
// headers (the core builds and tests without Python) and it is never included by an ISA file
// (csrc/ukernels/*/<isa>.cpp), so the templates below are only ever compiled for the baseline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fl {

// ---------------------------------------------------------------------------------------------
// ISA selection
// ---------------------------------------------------------------------------------------------

// Instruction sets we have micro-kernels for. The numeric values are stable (they may be logged).
enum class Isa { scalar = 0, avx2 = 1, neon = 2, avx512 = 3 };

// "scalar", "avx2", "avx512" or "neon".
const char* isa_name(Isa isa);

// What the CPU *and* the operating system let us use. On x86-64 the AVX-family flags (avx, avx2,
// fma, f16c) are only true when the OS saves ymm state (XCR0 bits 1|2, checked with XGETBV after
// OSXSAVE), and avx512f only when it also saves zmm/opmask state, so a flag that is true is safe
// to act on. On aarch64 only `neon` is set (Advanced SIMD is baseline there).
struct CpuFeatures {
    bool sse2 = false;
    bool sse41 = false;
    bool avx = false;
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512dq = false;
    bool avx512vl = false;
    bool os_ymm = false;  // OS saves ymm state (XCR0 & 0x6 == 0x6)
    bool os_zmm = false;  // OS saves zmm + opmask state (XCR0 & 0xE6 == 0xE6)
    bool neon = false;
};

// Detected once, on first call; thread-safe.
const CpuFeatures& cpu_features();

// ISAs compiled into this build (scalar always first), and the subset this CPU can run.
std::vector<Isa> isas_built();
std::vector<Isa> isas_supported();

// The ISA whose kernels are used: the best supported one, unless the environment variable
// FASTLAYERS_ISA (scalar | avx2 | avx512 | neon, case-insensitive, surrounding blanks ignored) names another supported ISA. Read once,
// at first use. An unknown or unsupported value falls back to the best supported ISA and leaves
// an explanation in isa_cap_message().
Isa active_isa();

// The one-core float32 FMA peak of `isa` in GFLOP/s, measured on the calling thread for about
// `seconds`: independent FMA chains in registers, as many as fill the FMA pipes of current x86
// and Arm cores. 0 if `isa` is not supported here. Used by the benchmark to state the fraction of
// the machine's peak a kernel reaches (docs/benchmarks.md).
double fma_peak_gflops(Isa isa, double seconds);

// The raw FASTLAYERS_ISA value that was read, or nullptr if it was unset or empty.
const char* isa_cap_env();

// Why FASTLAYERS_ISA was not honoured; empty if it was (or if it was not set).
const std::string& isa_cap_message();

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

// The largest value set_num_threads accepts (a guard against typos like 1000000).
constexpr int kMaxThreads = 4096;

// CPUs this process may run on (sched_getaffinity on Linux, else hardware_concurrency), >= 1.
int default_num_threads();

// Threads used by parallel_for, the calling thread included. Starts at default_num_threads().
int num_threads();

// If the OS refuses to start a worker, the pool keeps the threads it got and num_threads() is
// lowered to match (the calling thread included), so nothing waits for a thread that does not
// exist; the first such event in the process leaves a report, see take_thread_start_warning().
//
// n < 1 or n > kMaxThreads: std::invalid_argument. Waits for a running parallel region to end,
// then joins surplus workers; new workers are created lazily by the next parallel region.
void set_num_threads(int n);

// Runs fn(ctx, begin, end) over contiguous chunks covering [0, n), at most num_threads() chunks,
// each at least min_per_task long (a range shorter than 2*min_per_task is one chunk, run on the
// calling thread with no synchronization at all). The calling thread runs chunk 0.
//
// Chunk i belongs to thread i; only the k-1 workers a region of k chunks needs are woken. Each
// thread runs its own chunk first, then claims any chunk that nobody has started (a worker not
// yet woken, or descheduled by a busy machine): every chunk runs exactly once, on whichever
// thread claims it.
//
// The split depends only on (n, min_per_task, num_threads()) (fewer chunks only if the OS refuses
// to create threads), so a kernel whose chunks compute disjoint outputs gives bitwise identical
// results for every thread count and every schedule. FTZ/DAZ is on in every
// chunk (including on the calling thread, restored afterwards), again so that results do not
// depend on which thread computed them. A parallel_for issued from inside a chunk of a
// multi-threaded region runs serially on that thread (one that ran as a single chunk holds no
// pool resources, so a parallel_for inside it may still use the pool, unless a RunAloneScope
// is in force on that thread: then every region it issues runs on it alone). Regions issued
// concurrently from several threads are serialized.
// fn must not throw (use the template overload below for callables that may).
void parallel_for(int64_t n, int64_t min_per_task,
                  void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx);

// Convenience overload for any callable f(int64_t begin, int64_t end). An exception thrown by a
// chunk is rethrown on the calling thread after all chunks have finished (the first one wins).
template <class F>
void parallel_for(int64_t n, int64_t min_per_task, F&& f) {
    using Fn = std::remove_reference_t<F>;
    struct Ctx {
        Fn* f;
        std::atomic<bool> failed{false};
        std::exception_ptr error;
    };
    Ctx ctx;
    ctx.f = &f;
    parallel_for(
        n, min_per_task,
        [](void* p, int64_t begin, int64_t end) {
            Ctx* c = static_cast<Ctx*>(p);
            try {
                (*c->f)(begin, end);
            } catch (...) {
                if (!c->failed.exchange(true)) c->error = std::current_exception();
            }
        },
        &ctx);
    if (ctx.error) std::rethrow_exception(ctx.error);
}

// Guided self-scheduling of [0, n) over `workers` threads: each worker claims the next run of
// items from a shared counter until none is left. A run is remaining / (2 x workers) items,
// rounded down to a multiple of `granule`, but at least `granule` and at most `max_run` (and
// never past n); with one worker it is max_run. Runs shrink towards the end, so the workers
// finish within a few granules of each other even when one of them started late or was
// descheduled (a static split waits for the slowest core of a busy machine). Which worker
// claims which run varies from call to call: runs must write disjoint outputs, computed the
// same way whoever computes them. Typical use, one call of f per worker:
//     GuidedRuns runs(n, workers, granule, max_run);
//     parallel_for(workers, 1, [&](int64_t, int64_t) {
//         /* per-worker scratch */
//         int64_t begin, end;
//         while (runs.claim(&begin, &end)) { /* items [begin, end) */ }
//     });
class GuidedRuns {
  public:
    GuidedRuns(int64_t n, int64_t workers, int64_t granule = 1, int64_t max_run = INT64_MAX);
    GuidedRuns(const GuidedRuns&) = delete;
    GuidedRuns& operator=(const GuidedRuns&) = delete;
    // The next run [*begin, *end); false once [0, n) is used up. Thread-safe.
    bool claim(int64_t* begin, int64_t* end);

  private:
    alignas(64) std::atomic<int64_t> next_{0};
    int64_t n_, workers_, granule_, max_run_;
};

// The report left by the pool the first time in the process the OS refused to start a worker
// thread (what was refused, and how many threads the pool runs on instead); empty otherwise, and
// empty on every later call - the report is taken once. The Python bindings turn it into one
// RuntimeWarning on the calling thread (no pool thread ever calls into Python).
std::string take_thread_start_warning();

// Counters of the pool since the process started (relaxed: for tests and diagnostics).
struct PoolStats {
    uint64_t regions = 0;            // regions run on more than one thread
    uint64_t workers_signalled = 0;  // workers handed a region (k-1 for a region of k chunks)
    uint64_t worker_wakeups = 0;     // times a worker left its wait with a new region
    uint64_t chunks_taken_over = 0;  // chunks (or tids) run by a thread other than their own
    uint64_t late_workers_called = 0;  // workers call_late_workers_here moved (see there)
    uint64_t backoffs = 0;           // contended units splits that sent later ones to the caller
    uint64_t serial_by_backoff = 0;  // units splits the backoff ran on the caller alone
    uint64_t masks_given_back = 0;   // late workers' masks restored by the caller (see there)
};
PoolStats pool_stats();
// Test hook: a worker that wakes with a region sleeps `us` microseconds before it does anything
// (a late worker, deterministically); 0 turns it off.
void pool_wake_delay_for_tests(int64_t us);

// The units-split backoff (csrc/runtime/threadpool.cpp, docs/architecture.md §7): when the
// caller of a recurrent units split (a region whose threads share its steps through
// SharedPhases) waited for the others for more than half of it, and at least 0.2 ms (a worker
// descheduled by a busy host), the next units splits run on the caller alone (8, doubling on
// repeats up to 64). units_split_backoff() is asked by the drivers before each units split:
// true means run this one alone (and counts it). Other regions neither trigger it nor follow
// it. On by default; results are the same either way (they do not depend on the thread count).
bool units_split_backoff();
// While an object built with on = true lives, parallel_for and parallel_region called on this
// thread run on it alone, as if nested in a region. The recurrent drivers hold one around a units
// split the backoff sends to the caller alone, so that the input projection's GEMM inside it
// stays on the caller too (on the pool, its worker met the same busy core).
class RunAloneScope {
  public:
    explicit RunAloneScope(bool on);
    ~RunAloneScope();
    RunAloneScope(const RunAloneScope&) = delete;
    RunAloneScope& operator=(const RunAloneScope&) = delete;

  private:
    bool prev_;
};
void set_contention_backoff(bool on);
bool contention_backoff();
// Test hooks: feed the backoff one units split's measurement (the caller waited wait_ns of a
// region of total_ns), and read how many units splits it will still run alone.
void note_region_for_tests(int64_t wait_ns, int64_t total_ns);
int backoff_serial_left();

// Runs fn(ctx, tid, nthreads) once on each of nthreads threads *at the same time*: the caller is
// tid 0, pool workers are 1..nthreads-1, nthreads = min(max_threads, num_threads()) (fewer if the
// OS refused to create threads; 1 when called from inside a parallel region or a RunAloneScope,
// then on the calling thread alone). Because every tid has a thread of its own, the threads may
// wait for each other (SpinBarrier). Tids are claimed like parallel_for chunks: a thread whose own
// tid has returned runs any tid whose worker has not started it yet (never tid 0, which the caller
// holds), so a body that does not wait for the others is never held up by a late worker. Bodies
// that meet at a barrier are never taken over: no tid returns before every tid has reached the
// barrier. Work that must not wait for a descheduled partner claims its pieces through SharedPhases
// instead of meeting at a barrier (the recurrent unit split). FTZ/DAZ as in parallel_for. fn must
// not throw.
void parallel_region(int max_threads, void (*fn)(void* ctx, int tid, int nthreads), void* ctx);

// On the caller of a multi-thread region, inside it: whether every worker the region signalled
// was awake (spinning for work) rather than asleep. An awake worker starts within
// microseconds unless it has no CPU; waking a sleeping one can take much longer (a halted
// vCPU). The recurrent units split uses it to tell a descheduled partner from a slow wake-up.
bool region_workers_were_awake();

// On the caller of a multi-thread region, inside it, once it knows its workers have nothing
// left but to finish what they started (or to return): moves every worker of the region that is
// still inside it onto the caller's CPU until it leaves the region (Linux; elsewhere nothing).
// A worker that has no CPU of its own - descheduled by another process on a busy host - then
// runs as soon as the caller waits, instead of after the other process's time slice. Call it
// only when a worker is known to be late: one that is running loses its core's caches.
void call_late_workers_here();

// Convenience overload for any callable f(int tid, int nthreads) that does not throw.
template <class F>
void parallel_region(int max_threads, F&& f) {
    using Fn = std::remove_reference_t<F>;
    parallel_region(
        max_threads, [](void* p, int tid, int n) { (*static_cast<Fn*>(p))(tid, n); },
        const_cast<void*>(static_cast<const void*>(&f)));
}

// A reusable barrier for the nthreads threads of a parallel_region: wait(nthreads) returns once
// all of them have called it (the k-th call of every thread pairs with the k-th call of the
// others; all pass the same count, so a region that got fewer threads than asked needs no
// re-initialisation). Waiters spin (a 2-core hand-off costs ~0.1 us, docs/performance.md §9) for up
// to the pool's spin budget, then sleep until the last thread arrives, so a partner that the OS
// descheduled (a loaded machine) is not kept from its core by a spinning or yielding waiter.
// Memory written before wait() by any thread is visible to all after it.
class SpinBarrier {
  public:
    SpinBarrier() = default;
    SpinBarrier(const SpinBarrier&) = delete;
    SpinBarrier& operator=(const SpinBarrier&) = delete;
    void wait(int nthreads);

  private:
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<unsigned> generation_{0};
    std::atomic<int> sleepers_{0};
    std::mutex m_;
    std::condition_variable cv_;
};

// Items of a fixed split, claimed dynamically, phase after phase - the step blocks of an LSTM or
// GRU whose units are split over threads. The items are cut into `sizes.size()` shares (share s
// holds sizes[s] items in every phase). In each phase a thread claims the items of its own share
// (tid % shares) first, in order, then any unclaimed item of the other shares, so a thread that
// is late or descheduled holds up the others only by the item it is running, never by its
// unstarted share. An item must compute the same bits whoever claims it. Typical use, on every
// thread of a parallel_region (threads that arrive late find claimed items and finished phases):
//     for (int64_t p = 0; p < phases; ++p) {
//         int s; int64_t item, mine = 0;
//         while (work.claim(tid, p, &s, &item)) { /* item `item` of share s */ ++mine; }
//         work.done(p, mine);
//         work.wait(p);   // every item of phase p done; its writes are visible
//     }
// A thread must not claim in phase p+1 before wait(p) returned. A thread that runs a phase alone
// may ask for the shares in reverse order (backwards): the last share's items first.
class SharedPhases {
  public:
    explicit SharedPhases(const std::vector<int64_t>& sizes);
    SharedPhases(const SharedPhases&) = delete;
    SharedPhases& operator=(const SharedPhases&) = delete;
    // The next unclaimed item of `phase`: own share first, then the shares after it; with
    // `backwards`, from the last share to the first instead. False when all are claimed.
    bool claim(int tid, int64_t phase, int* share, int64_t* item, bool backwards = false);
    // Items per phase (over all shares).
    int64_t items_per_phase() const { return total_; }
    // Whether a thread sleeps in wait() (or is being woken from it).
    bool has_sleepers() const { return sleepers_.load(std::memory_order_seq_cst) > 0; }
    // `count` items of `phase` that this thread claimed are done (call once per phase).
    void done(int64_t phase, int64_t count);
    // Returns once every item of `phase` is done: spins (offering the CPU now and then) for the
    // pool's spin budget, then sleeps.
    void wait(int64_t phase);
    // Spins for at most `patience` until every item of `phase` is done; returns whether it is.
    bool wait_for(int64_t phase, std::chrono::nanoseconds patience) const;
    // Every item of `phase` (and so of every earlier phase) is done.
    bool finished(int64_t phase) const;

  private:
    struct alignas(64) Share {
        std::atomic<int64_t> next{0};  // items claimed so far, over all phases
        int64_t size = 0;
    };
    int nshares_;
    std::unique_ptr<Share[]> shares_;
    int64_t total_ = 0;
    alignas(64) std::atomic<int64_t> done_{0};  // items done so far, over all phases
    std::atomic<int> sleepers_{0};
    std::mutex m_;
    std::condition_variable cv_;
};

}  // namespace fl
