// Internal to csrc/ops: what lstm.cpp, gru.cpp and simple_rnn.cpp share - the gate-interleaved
// packing layout (fl::PackedGates, fastlayers/ops.h) and how a sequence's work is split over
// threads (run_steps, at the end: each driver gives it only its step's arithmetic).
//
// Split (docs/performance.md §6): the whole sequence runs in one fl::parallel_region.
//   rows   batches of at least 12 rows, each thread at least 6 rows (row_grain): each thread
//          owns a range of batch rows for the whole sequence - its rows' input projection and
//          every step - and never waits for the others (a row's recurrence depends on that row
//          only).
//   units  smaller batches with enough work per step (B = 1): the 16-unit blocks are cut into
//          one fixed share per planned thread (a contiguous slice of the packed recurrent kernel
//          that stays in its core's L2) and each share into chunks of kBlocksPerCall blocks.
//          Phase by phase (the input projection of the first time chunk, then each step: h of
//          step t feeds every unit at t+1; a later time chunk's projection is done by each item
//          in the chunk's first step, before the step), the threads claim chunks through
//          fl::SharedPhases - own share first, then any chunk a late or descheduled partner has
//          not started - and wait for the phase to be done. Which thread computes a chunk never
//          changes its bits.
//   one    everything else (tiny layers, one thread).
// Every element is computed the same way in each mode (one FMA chain per GEMM output, the
// same elementwise gate math), so results are bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace rnn_detail {

constexpr int64_t kUnitBlock = 16;  // units per block = kGemmNR

// Unit blocks per micro-kernel call: 4 x 16 units x (3 or 4) gates keep a tile of up to 12 rows
// (block_rows) in L1.
constexpr int64_t kBlocksPerCall = 4;

inline int64_t unit_blocks(int64_t u) { return (u + kUnitBlock - 1) / kUnitBlock; }

// The "packed kernels do not match" error of lstm_forward / gru_forward / simple_rnn_forward.
inline std::invalid_argument packed_mismatch(const char* op, const PackedGates& w_in,
                                             const PackedGates& w_rec, int64_t features) {
    return std::invalid_argument(
        std::string(op) + ": packed kernels do not match: kernel (" +
        std::to_string(w_in.w.k()) + ", " + std::to_string(w_in.gates) + " x " +
        std::to_string(w_in.units) + "), recurrent (" + std::to_string(w_rec.w.k()) + ", " +
        std::to_string(w_rec.gates) + " x " + std::to_string(w_rec.units) + "), features " +
        std::to_string(features));
}

// Where each row's previously emitted output (B, u) is kept, zeroed (Keras: zeros before the
// first unmasked step): the result itself when only the last output is returned, else `buf`.
inline float* emitted_outputs(float* out, int64_t bu, bool return_sequences, AlignedFloats* buf) {
    float* emitted = out;
    if (return_sequences) {
        *buf = alloc_aligned_floats(bu);
        emitted = buf->get();
    }
    std::fill(emitted, emitted + bu, 0.0f);
    return emitted;
}

// How a thread walks its unit blocks [q0, q1) in a step: in chunks of kBlocksPerCall (outer
// loop: a chunk's slice of the recurrent kernel, <= 512 KiB for u <= 512, is read from L3 once
// per step and stays in L2 for all row blocks), backwards on odd steps: the slice used last is
// still cached when the next step starts with it (a kernel slightly larger than L2, e.g. B = 1,
// u = 256 on one core, then mostly hits instead of an LRU-cyclic stream of misses). Each call's
// outputs are independent of the order.
struct ChunkWalk {
    int64_t q0, q1, chunks;
    ChunkWalk(int64_t first, int64_t end)
        : q0(first), q1(end), chunks((end - first + kBlocksPerCall - 1) / kBlocksPerCall) {}
    // First unit block of chunk ci at step `step`.
    int64_t start(int64_t ci, int64_t step) const {
        return q0 + ((step & 1) ? chunks - 1 - ci : ci) * kBlocksPerCall;
    }
    // Unit blocks in the chunk that starts at qc.
    int64_t size(int64_t qc) const { return std::min(kBlocksPerCall, q1 - qc); }
};

// The input projection of batch rows [b0, b1), unit blocks [q0, q1) and time steps [t0, t0 + nt),
// bias folded in, into xw laid out (B, tc, np): row b*tc + (t - t0), columns of those unit
// blocks (gates * 16 per block). x (B, T, F). tc is the steps xw holds: the whole sequence
// (tc = nt = T, one GEMM over the (B*T, F) matrix of all steps) or one time chunk (StepChunks).
// A chunk is projected step by step (rows x[b0:b1, t], a strided matrix) when it has at least
// as many rows as steps, else row by row (the steps x[b, t0 : t0+nt]): the GEMMs get the more
// rows of the two.
// Each element is the same FMA chain whichever way it is cut (bias, then x[.., f] · W[f, ..] for
// f = 0, 1, ...), so the bits do not depend on tc. Only these xw elements are written, so
// threads may split rows or unit blocks.
inline void project_inputs(const float* x, int64_t steps, int64_t features,
                           const PackedGates& w_in, int64_t b0, int64_t b1, int64_t q0,
                           int64_t q1, int64_t t0, int64_t nt, int64_t tc, float* xw,
                           int64_t np) {
    const int64_t gw = w_in.gates * kUnitBlock;
    const int64_t ps = w_in.w.panel_stride();
    const float* bias = w_in.w.bias();
    auto project = [&](const float* a, int64_t m, int64_t lda, float* c, int64_t ldc) {
        gemm_packed_raw(a, m, lda, features, (q1 - q0) * gw,
                        w_in.w.data() + w_in.gates * q0 * ps, ps,
                        bias ? bias + q0 * gw : nullptr, c + q0 * gw, ldc);
    };
    if (tc == steps) {  // t0 == 0, nt == steps: rows b*T + t of x and of xw, one matrix
        project(x + b0 * steps * features, (b1 - b0) * steps, features, xw + b0 * steps * np,
                np);
    } else if (b1 - b0 >= nt) {
        for (int64_t t = t0; t < t0 + nt; ++t) {
            project(x + (b0 * steps + t) * features, b1 - b0, steps * features,
                    xw + (b0 * tc + t - t0) * np, tc * np);
        }
    } else {
        for (int64_t b = b0; b < b1; ++b) {
            project(x + (b * steps + t0) * features, nt, features, xw + b * tc * np, np);
        }
    }
}

// Bytes of xw (the input projection) a thread keeps for a time chunk of its rows, unless
// kMinChunkRows asks for more steps or one step's rows take more (a chunk has at least one
// step: 256 rows at u 1024 are 4 MiB). With a small W it stays in L2 between the projection and
// the steps that read it; with W or the chunk near the limits (2 MiB of W, or 16 steps of a
// thread's 15 rows at u 1024: 3.75 MiB of xw) it is in L3. The whole sequence's xw went to
// memory and back once it outgrew L3 (B 64, T 1000, u 128: 131 MB; docs/performance.md §6).
constexpr int64_t kXwChunkBytes = 256 << 10;

// The largest input kernel W a chunk's GEMM reads (F x N' floats, or in the units split the
// F x (kBlocksPerCall unit blocks) slice of an item) for which the projection is cut into time
// chunks: each chunk's GEMMs read it again. Measured on Zen 4 (1 MiB of L2), chunked against one
// GEMM over the whole sequence, alternating processes (docs/performance.md §6): all of W up
// to 2 MiB 0.99-1.36x (B 1 to 64, T 50 to 300, u 128 to 512); units-split slices of at most
// 1 MiB of a 2-16 MiB W 0.97-1.36x; 4-8 MiB on one thread 0.83-0.98x at B 2 to 16; 16 MiB with
// 4-row GEMMs 0.73x. Gains under about 1.15x are within the noise of those runs.
constexpr int64_t kChunkedMaxWBytes = 2 << 20;

// Bytes of the input kernel W that one projection GEMM over `blocks` unit blocks reads.
inline int64_t w_in_bytes(const PackedGates& w_in, int64_t blocks) {
    return w_in.w.k() * blocks * w_in.gates * kUnitBlock * static_cast<int64_t>(sizeof(float));
}

// A chunk's GEMMs have at least this many rows (a thread's rows, or steps per chunk when it has
// fewer rows) when the sequence has as many steps: with fewer rows each re-read of W does little
// work (B 4, u 1024 on two threads: 4-step chunks, 4-row GEMMs, ran 0.94x the whole sequence).
constexpr int64_t kMinChunkRows = 16;

// Which steps' projection xw holds, in processing order (go_backwards: t = T-1-k): chunks of
// tc steps, chunk c = processing steps [c*tc, c*tc + tc). The whole sequence when tc == steps.
struct StepChunks {
    int64_t steps, tc;
    bool backwards;
    // Whether processing step k is the first of its chunk.
    bool starts(int64_t k) const { return k % tc == 0; }
    // The first processing step of the chunk of processing step k.
    int64_t first(int64_t k) const { return k / tc * tc; }
    // Steps in that chunk.
    int64_t count(int64_t k) const { return std::min(tc, steps - first(k)); }
    // Its lowest time index: step k's xw rows are b*tc + (t - t_lo(k)).
    int64_t t_lo(int64_t k) const { return backwards ? steps - first(k) - count(k) : first(k); }
};

// Start of part i when n items are cut into k parts whose sizes differ by at most one.
inline int64_t part_begin(int64_t n, int64_t k, int64_t i) {
    return i * (n / k) + std::min(i, n % k);
}

enum class SplitMode { one, rows, units };

struct Split {
    SplitMode mode = SplitMode::one;
    int threads = 1;
};

// macs_per_row_step: multiply-adds of one batch row's recurrent GEMM in one step.
inline Split plan_split(int64_t batch, int64_t u, int64_t macs_per_row_step) {
    Split s;
    const int nt = num_threads();
    if (nt <= 1) return s;
    // Rows: at least 2 x row_grain (>= 12) rows in all, at least row_grain (>= 6) rows and 64K
    // multiply-adds per thread and step.
    const int64_t row_grain =
        std::max<int64_t>(6, (int64_t(1) << 16) / std::max<int64_t>(macs_per_row_step, 1) + 1);
    if (batch >= 2 * row_grain) {
        s.mode = SplitMode::rows;
        s.threads = static_cast<int>(std::min<int64_t>(nt, batch / row_grain));
        return s;
    }
    // Units: a phase hand-off per step (~0.1-0.3 us) pays off from ~8K multiply-adds per thread and
    // step. Measured (2 cores, B = 1, T = 1000): u = 64 (16K per step) 1.06 -> 0.65 us/step;
    // B = 2, u = 32 (8K per step) was slower on two threads than on one.
    const int64_t per_step = batch * macs_per_row_step;
    const int64_t by_work = per_step / 8192;
    const int64_t p = std::min<int64_t>({nt, unit_blocks(u), by_work});
    if (p >= 2) {
        s.mode = SplitMode::units;
        s.threads = static_cast<int>(p);
    }
    return s;
}

// Whether this region runs on the caller alone because of the units-split backoff (a partner kept
// the caller waiting in recent units splits: fl::units_split_backoff, docs/architecture.md §7).
// Asked once per region, only for a units split (the backoff counts what it sends alone); the
// drivers hold a RunAloneScope with the answer, so the input projection runs on the caller too.
inline bool units_split_alone(const Split& s) {
    return s.mode == SplitMode::units && units_split_backoff();
}

// Rows [b0, b1) of thread tid in rows mode (balanced: 32 rows on 2 threads are 16 + 16, not
// 18 + 14 in whole 6-row groups - the slower thread sets the time), else all rows.
inline void thread_rows(const Split& s, int tid, int64_t batch, int64_t* b0, int64_t* b1) {
    if (s.mode != SplitMode::rows) {
        *b0 = 0;
        *b1 = batch;
        return;
    }
    *b0 = part_begin(batch, s.threads, tid);
    *b1 = part_begin(batch, s.threads, tid + 1);
}

// Steps per time chunk of xw (StepChunks::tc) under a split: kXwChunkBytes of a thread's rows
// (the rows split, one thread) or of all rows (the units split: each thread projects the unit
// blocks of its chunks, in the first step of each time chunk), and at least kMinChunkRows steps
// when there are fewer rows than that. The whole sequence when the W a chunk's GEMM reads is
// larger than kChunkedMaxWBytes, and for a one-thread plan on a multi-thread pool: its
// projection is one GEMM, which may use the pool (the layer is too small to split its steps,
// the projection may not be).
inline int64_t chunk_steps(const Split& s, int64_t batch, int64_t steps,
                           const PackedGates& w_in) {
    if (s.mode == SplitMode::one && num_threads() > 1) return steps;
    const int64_t nq = unit_blocks(w_in.units);
    const int64_t blocks = s.mode == SplitMode::units ? std::min(nq, kBlocksPerCall) : nq;
    if (w_in_bytes(w_in, blocks) > kChunkedMaxWBytes) return steps;
    const int64_t rows =
        s.mode == SplitMode::units ? batch : (batch + s.threads - 1) / s.threads;
    const int64_t per_step = rows * w_in.w.n() * static_cast<int64_t>(sizeof(float));
    int64_t tc = kXwChunkBytes / std::max<int64_t>(per_step, 1);
    if (rows < kMinChunkRows) tc = std::max(tc, kMinChunkRows);
    return std::clamp<int64_t>(tc, 1, steps);
}

// Test hook (fastlayers/ops.h, recurrent_projection_fail_at_for_tests): >= 0 makes the input
// projection of the time chunk holding that processing step throw std::bad_alloc, every call.
std::atomic<int64_t>& projection_fail_at_for_tests();
// How many chunk projections were cut into slices (fastlayers/ops.h, the test hook
// recurrent_sliced_projections_for_tests).
std::atomic<int64_t>& sliced_projections_for_tests();

// A driver's input projection (x, W and xw bound), time chunk by time chunk.
struct InputProjection {
    const float* x;
    int64_t features;
    const PackedGates* w_in;
    StepChunks chunks;
    float* xw;
    int64_t np;
    // Rows [b0, b1) and unit blocks [q0, q1) of the time chunk of processing step k. A units
    // split sizes its time chunks for its items' slices of W (chunk_steps); when it runs on one
    // thread (the backoff, a closed split) all unit blocks come at once, and are projected
    // slice by slice as the items would be, so that no GEMM of a chunk reads more W than
    // kChunkedMaxWBytes (all of W at once, 16 MiB per batch row at B 4, F = u = 1024, was
    // 0.92-0.94x the whole sequence's one GEMM). The same bits either way.
    void operator()(int64_t k, int64_t b0, int64_t b1, int64_t q0, int64_t q1) const {
        const int64_t fail = projection_fail_at_for_tests().load(std::memory_order_relaxed);
        const int64_t k0 = chunks.first(k);
        if (fail >= k0 && fail < k0 + chunks.count(k)) throw std::bad_alloc();
        const bool sliced =
            chunks.tc < chunks.steps && w_in_bytes(*w_in, q1 - q0) > kChunkedMaxWBytes;
        if (sliced) sliced_projections_for_tests().fetch_add(1, std::memory_order_relaxed);
        const int64_t step = sliced ? kBlocksPerCall : q1 - q0;
        for (int64_t q = q0; q < q1; q += step) {
            project_inputs(x, chunks.steps, features, *w_in, b0, b1, q, std::min(q + step, q1),
                           chunks.t_lo(k), chunks.count(k), chunks.tc, xw, np);
        }
    }
};

// Rows of the next register block when `rem` rows remain, for a kernel whose row block is `mr`
// (KernelTable::gemm_mr): the GEMM driver's rule (gemm_block_rows) with blocks of 6 rows, or of
// 12 with the AVX-512 kernel (14), so that each pass over the recurrent kernel's panels
// (streamed from L2) serves up to twice the rows of a 6-row block. Zen 4, alternating
// processes, 3 rounds, 1 and 2 threads: B 8 (one 8-row block instead of 6 + 2) 5-6 % faster on
// one core (LSTM 5.41 -> 5.13 ms, GRU 4.04 -> 3.81 at T 100, F 64, U 256; two cores
// 1.03-1.07x), B 16 to 64 with U 128 to 512 0.99-1.06x (medians; the noise of this host).
// Every element is the same FMA chain in any block: the bits do not change.
constexpr int64_t kMaxBlockRows = 12;
inline int64_t block_rows(int64_t rem, int64_t mr) {
    return gemm_block_rows(rem, mr < kMaxBlockRows ? 6 : kMaxBlockRows);
}

// The units split's fixed shares: `shares` contiguous runs of unit blocks whose sizes differ by
// at most one (share s is the one thread s takes first), each walked in ChunkWalk's chunks. A
// chunk is one item of fl::SharedPhases: whoever claims it computes it the same way.
class UnitShares {
  public:
    UnitShares(int64_t u, int shares) {
        const int64_t nq = unit_blocks(u);
        for (int s = 0; s < shares; ++s) {
            walks_.emplace_back(part_begin(nq, shares, s), part_begin(nq, shares, s + 1));
        }
    }
    const ChunkWalk& walk(int s) const { return walks_[static_cast<size_t>(s)]; }
    // Chunks per share: the item counts of fl::SharedPhases.
    std::vector<int64_t> items() const {
        std::vector<int64_t> n;
        for (const ChunkWalk& w : walks_) n.push_back(w.chunks);
        return n;
    }

  private:
    std::vector<ChunkWalk> walks_;
};

// Whether the other threads of a units split take part, and when the caller should run the
// rest of the sequence alone (docs/architecture.md §7). Each thread but the caller checks in
// when it starts (arrive) and out when it returns (depart). The caller closes the split at a
// step boundary, when no worker is inside, in two cases:
//   absent   the region's workers were all awake (spinning, fl::region_workers_were_awake) as
//            it began, and none has started kAbsentAfterNs into it: that worker is runnable but
//            has no CPU (a busy host: it waits for a scheduler slice). A worker that had to be
//            woken is given its time: woken after a pause it may start late and still make the
//            call faster (B 1, U 192: 1.15 ms at 2 threads, 1.34 at 1).
//   stalled  the caller waited its patience (kStall, or 4 of its own chunks) for a step's
//            phase: a worker was descheduled in the middle of a chunk (a step's chunk is a few
//            microseconds of work; a scheduler slice is milliseconds). The worker is called
//            onto the caller's CPU to finish it and asked to leave; it returns before its next
//            step, and the caller claims every chunk until it has.
// Closed, the caller runs the remaining steps alone in the one-thread walk - the same bits,
// without the shares' smaller chunks and per-step hand-offs (2 threads were 4-15 % slower
// than 1 at B 1, U 192-256 under a busy core before these rules) - and a worker arriving
// later returns at once.
// Test hooks (fastlayers/ops.h): close_at_for_tests() >= 0 makes every units split close at that
// step, its workers never checking in; leave_at_for_tests() >= 0 makes the caller act at that
// step as after a stall (call the workers over, ask them to leave; they check in as usual),
// after sleeping leave_delay_us_for_tests() microseconds (its workers meanwhile run on).
std::atomic<int64_t>& close_at_for_tests();
std::atomic<int64_t>& leave_at_for_tests();
std::atomic<int64_t>& leave_delay_us_for_tests();  // the caller sleeps this long first
// How many units splits were closed (test hook: units_split_closes_for_tests).
std::atomic<int64_t>& closes_for_tests();

class Attendance {
  public:
    static constexpr int64_t kAbsentAfterNs = 200000;
    static constexpr std::chrono::microseconds kStall{100};
    static constexpr std::chrono::microseconds kLeaveTime{10};  // see run_units_split

    // How long the caller waits for a step's phase before it calls the phase stalled: kStall,
    // or 4 of its own chunks of this phase (`spent` on `chunks`) if longer - a chunk streams
    // 64 units' slice of the recurrent kernel, about 0.1 ms from memory at B 1, U 1024, and a
    // partner in the middle of one is not late.
    static std::chrono::nanoseconds patience(std::chrono::steady_clock::duration spent,
                                             int64_t chunks) {
        const std::chrono::nanoseconds per_chunk =
            chunks > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(spent) / chunks
                       : std::chrono::nanoseconds(0);
        return std::max<std::chrono::nanoseconds>(kStall, 4 * per_chunk);
    }

    // The caller, as it enters the region: the time from which absence is counted (not the
    // object's creation: the region may have waited for another thread's region first).
    void start() { start_ = std::chrono::steady_clock::now(); }
    // The caller, at the boundary before step k: whether to run the rest alone from here.
    bool close_at(int64_t k, bool workers_awake) {
        if (leave_at_for_tests().load(std::memory_order_relaxed) == k) {
            const int64_t delay = leave_delay_us_for_tests().load(std::memory_order_relaxed);
            if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay));
            stalled();
        }
        const int64_t forced = close_at_for_tests().load(std::memory_order_relaxed);
        const bool closed =
            forced >= 0 ? k == forced && close_now()
                        : (leaving() || (workers_awake && absent_too_long())) && close_now();
        if (closed) closes_for_tests().fetch_add(1, std::memory_order_relaxed);
        return closed;
    }
    // The caller, having waited its patience for the others to finish a step's phase: a worker is
    // descheduled in the middle of a chunk. It is called onto the caller's CPU to finish it
    // (fl::call_late_workers_here) and asked to leave.
    void stalled() {
        ask_to_leave();
        call_late_workers_here();
    }
    // The caller: spins for at most `patience` until no worker is inside; returns whether none is.
    bool departed_within(std::chrono::nanoseconds patience) const {
        const auto start = std::chrono::steady_clock::now();
        for (unsigned i = 1; state_.load(std::memory_order_acquire) > 0; ++i) {
            if (std::chrono::steady_clock::now() - start > patience) return false;
            if ((i & 63) == 0) std::this_thread::yield();  // it may be queued on this CPU
        }
        return true;
    }

    // A worker starting: false if the caller already runs alone (then it must return).
    bool arrive() {
        if (close_at_for_tests().load(std::memory_order_relaxed) >= 0) return false;
        int c = state_.load(std::memory_order_acquire);
        while (c >= 0) {
            if (state_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) return true;
        }
        return false;
    }
    // A worker that arrived, returning (after its last chunk is counted done).
    void depart() { state_.fetch_sub(1, std::memory_order_acq_rel); }
    // Whether the caller asked the workers to leave (a worker checks before each step).
    bool leaving() const { return leave_.load(std::memory_order_relaxed); }

  private:
    void ask_to_leave() { leave_.store(true, std::memory_order_relaxed); }
    // True if no worker has arrived within kAbsentAfterNs of start().
    bool absent_too_long() const {
        return state_.load(std::memory_order_relaxed) == 0 &&
               std::chrono::steady_clock::now() - start_ >=
                   std::chrono::nanoseconds(kAbsentAfterNs);
    }
    // Closes the split if no worker is inside; none can arrive afterwards.
    bool close_now() {
        int expected = 0;
        return state_.compare_exchange_strong(expected, -1, std::memory_order_acq_rel);
    }

    std::atomic<int> state_{0};  // workers inside the split, or -1: the caller runs alone
    std::atomic<bool> leave_{false};
    std::chrono::steady_clock::time_point start_{};  // set by start()
};

// The first exception thrown by a thread of a recurrent region (the input projection's GEMM may
// fail to allocate its packing buffer), kept so that it never escapes a pool thread and is
// rethrown on the caller after the region; the threads check failed() once the projection is
// done (units split: after its phase, and before each step item, as a later time chunk is
// projected inside its first step's items) so that none is left waiting for a partner that gave
// up and no step runs on a chunk that was not projected.
class RegionError {
  public:
    template <class F>
    void run(F&& f) {
        try {
            f();
        } catch (...) {
            if (!failed_.exchange(true)) error_ = std::current_exception();
        }
    }
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    void rethrow_if_failed() const {
        if (error_) std::rethrow_exception(error_);
    }

  private:
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
};

// One thread's part of a units split (see the top of this file): phase 0 is the input
// projection of the first time chunk, then each step has `per_step` phases; a phase's items
// are the shares' chunks, claimed own share first, and every thread waits for a phase to be
// done before the next. The first phase of a step that starts a later time chunk projects it,
// each item its unit blocks before its step work; after a failed projection the items do
// nothing (the error is rethrown on the caller after the region).
//   project(k, qc, nqc)              the input projection of unit blocks [qc, qc + nqc), the
//                                    time chunk of step k (chunks)
//   phase(k, ph, qc, nqc, hc, hn)    phase ph of step k for those unit blocks
//   alone(k, hc, hn)                 steps k.. on the caller alone (the one-thread walk)
// h and h2 hold h of alternate steps; after an odd number of steps the last one is in h2.
template <class Project, class Phase, class Alone>
void run_units_split(int tid, const UnitShares& shares, SharedPhases& work,
                     Attendance& attendance, RegionError& error, const StepChunks& chunks,
                     int64_t per_step, float* h, float* h2, const Project& project,
                     const Phase& phase, const Alone& alone) {
    const int64_t steps = chunks.steps;
    const bool caller = tid == 0;
    if (!caller && !attendance.arrive()) return;  // the caller went on alone
    struct Depart {
        Attendance* a;
        ~Depart() {
            if (a) a->depart();
        }
    } depart{caller ? nullptr : &attendance};
    const bool awake = caller && region_workers_were_awake();
    if (caller) attendance.start();
    if (work.finished(steps * per_step)) return;  // this tid came late: all done already
    // Whether the caller ran every item of the last step's phases itself (its partners had no
    // CPU). Then it claims in the one-thread walk's order: shares backwards on odd steps, where
    // ChunkWalk reverses each share's chunks, so that the chunks used last in a step, still
    // cached, come first in the next (in the shares' order a recurrent kernel larger than L2,
    // B 1 U 256, would stream through it in LRU-cyclic order; not measured on its own).
    bool ran_alone = false, ran_all = true;
    // Claims and runs the items of phase p, then waits for the others' (timed on the caller
    // for the steps' phases: see Attendance).
    auto run_phase = [&](int64_t p, bool timed, bool backwards, auto&& body) {
        timed = timed && caller;
        const auto t0 = timed ? std::chrono::steady_clock::now()
                              : std::chrono::steady_clock::time_point();
        int sh;
        int64_t item, mine = 0;
        while (work.claim(tid, p, &sh, &item, backwards)) {
            body(sh, item);
            ++mine;
        }
        ran_all = ran_all && mine == work.items_per_phase();
        work.done(p, mine);
        if (timed && !work.wait_for(p, Attendance::patience(
                                           std::chrono::steady_clock::now() - t0, mine))) {
            attendance.stalled();
        }
        work.wait(p);
    };
    run_phase(0, false, false, [&](int sh, int64_t item) {
        const int64_t qc = shares.walk(sh).start(item, 0);
        const int64_t nqc = shares.walk(sh).size(qc);
        error.run([&] { project(0, qc, nqc); });
    });
    if (error.failed()) return;
    // The region ends when its workers have returned. After the last phase a worker that spins
    // has only to see it finished and return (a microsecond); one still inside kLeaveTime
    // later has no CPU, and is called onto the caller's (see Attendance::stalled) - waiting
    // 0.1 ms made B 1, T 100, U 192 calls up to 6 % slower at 2 threads under a busy core. A
    // worker asleep in the phase wait is given kStall: its wake-up takes tens of microseconds.
    struct CallLate {
        Attendance* a;
        SharedPhases* w;
        ~CallLate() {
            if (!a) return;
            const auto patience = w->has_sleepers() ? Attendance::kStall : Attendance::kLeaveTime;
            if (!a->departed_within(patience)) call_late_workers_here();
        }
    } call_late{caller ? &attendance : nullptr, &work};
    float* hc = h;   // h of the previous step
    float* hn = h2;  // h of this step
    for (int64_t k = 0; k < steps; ++k) {
        if (caller && attendance.close_at(k, awake)) {
            // Nobody else is inside now, and nobody can come in. A worker asked to leave
            // returns at the top of a step, so the steps it ran while this thread was held up
            // before the close (called onto this CPU, it may preempt this thread) are whole:
            // resume at the first step not done. Running one twice would add its recurrent
            // products to the gate sums twice.
            while (k < steps && work.finished((k + 1) * per_step)) {
                std::swap(hc, hn);
                ++k;
            }
            alone(k, hc, hn);
            return;
        }
        if (!caller && attendance.leaving()) return;  // the caller claims the rest
        const bool backwards = ran_alone && (k & 1);
        ran_all = true;
        for (int64_t ph = 0; ph < per_step; ++ph) {
            run_phase(1 + k * per_step + ph, true, backwards, [&](int sh, int64_t item) {
                const int64_t qc = shares.walk(sh).start(item, k);
                const int64_t nqc = shares.walk(sh).size(qc);
                if (error.failed()) return;
                if (ph == 0 && k > 0 && chunks.starts(k)) {
                    error.run([&] { project(k, qc, nqc); });
                    if (error.failed()) return;
                }
                phase(k, ph, qc, nqc, hc, hn);
            });
        }
        ran_alone = ran_all;
        std::swap(hc, hn);
    }
}

// Floats per row of the per-thread tile run_steps hands each step: the h · R products of
// kBlocksPerCall unit blocks of 3 gates (gru.cpp; 12 rows x 192: 9 KiB on the stack). The LSTM
// and SimpleRNN steps continue xw's chains in place and leave it unused.
constexpr int64_t kStepTileLd = 3 * kUnitBlock * kBlocksPerCall;

// A driver's steps over the whole sequence, in one fl::parallel_region split as `plan` says
// (rows / units / one, the top of this file). Each processing step k has `per_step` phases
// (the GRU's reset_before: 2; every other: 1), each done for every unit block before the next:
//   step(k, ph, qc, nqc, r0, r1, hc, hn, tile)
//       phase ph of step k for batch rows [r0, r1) and unit blocks [qc, qc + nqc): reads h of
//       the previous step in hc (any unit of those rows), writes those rows' units of hn (and
//       of the driver's other outputs) only; tile: the calling thread's scratch,
//       kMaxBlockRows * kStepTileLd floats.
// The input projection of each time chunk of `chunks`, project(k, b0, b1, q0, q1) (an
// InputProjection), runs before the chunk's first step k: by rows in the one-thread walk and the
// rows split, by unit blocks in the units split. h holds h0 on entry and the last step's h on
// return (h2 is the other buffer, batch * u floats). An error of a projection (its GEMM's
// std::bad_alloc) stops every thread and is rethrown here.
template <class Project, class Step>
void run_steps(const Split& plan, const StepChunks& chunks, const Project& project,
               int64_t batch, int64_t u, int64_t per_step, float* h, float* h2,
               const Step& step) {
    const int64_t steps = chunks.steps;
    const int64_t nq = unit_blocks(u);
    // Units split: fixed shares of unit blocks (one per planned thread), cut into chunks that
    // are claimed phase by phase (phase 0: the first time chunk's input projection, then the
    // phases of each step), own share first, so a thread that is descheduled holds up the others
    // by one chunk at most.
    const UnitShares shares(u, plan.mode == SplitMode::units ? plan.threads : 1);
    SharedPhases work(shares.items());
    Attendance attendance;
    RegionError error;
    // The steps of rows [b0, b1), every unit block, on this thread alone (the one-thread walk).
    // From step k0 on, with h of the previous step in hc. Each time chunk's projection of these
    // rows first, but the first chunk's if a units split's phase 0 projected it (projected0);
    // stops after a failed projection (the error is in `error`).
    auto steps_alone = [&](int64_t b0, int64_t b1, int64_t k0, float* hc, float* hn,
                           bool projected0, float* tile) {
        const ChunkWalk walk(0, nq);
        for (int64_t k = k0; k < steps; ++k) {
            if (error.failed()) return;  // this thread's projection or a partner's
            if (chunks.starts(k) && !(k == 0 && projected0)) {
                error.run([&] { project(k, b0, b1, 0, nq); });
                if (error.failed()) return;
            }
            for (int64_t ph = 0; ph < per_step; ++ph) {
                for (int64_t ci = 0; ci < walk.chunks; ++ci) {
                    const int64_t qc = walk.start(ci, k);
                    step(k, ph, qc, walk.size(qc), b0, b1, hc, hn, tile);
                }
            }
            std::swap(hc, hn);
        }
    };
    const RunAloneScope alone(units_split_alone(plan));  // the backoff (units_split_alone)
    parallel_region(plan.threads, [&](int tid, int nth) {
        float tile[kMaxBlockRows * kStepTileLd];
        // nth == 1: the region runs on the caller alone from the start (the backoff, started
        // inside a region, or the thread count lowered meanwhile): the one-thread path below.
        // The same bits either way.
        if (plan.mode == SplitMode::units && nth > 1) {
            run_units_split(
                tid, shares, work, attendance, error, chunks, per_step, h, h2,
                [&](int64_t k, int64_t qc, int64_t nqc) { project(k, 0, batch, qc, qc + nqc); },
                [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc, float* hc, float* hn) {
                    step(k, ph, qc, nqc, 0, batch, hc, hn, tile);
                },
                [&](int64_t k, float* hc, float* hn) {
                    steps_alone(0, batch, k, hc, hn, true, tile);
                });
            return;
        }
        // Rows split (or one thread): this tid's rows, all units, no waiting for anyone (a tid
        // whose thread is late is run by a thread that finished its own, see parallel_region).
        // steps_alone projects them: serial inside a multi-thread region; with one thread the
        // GEMM engine may still use the pool.
        Split s = plan;
        s.threads = nth;
        int64_t b0, b1;
        thread_rows(s, tid, batch, &b0, &b1);
        steps_alone(b0, b1, 0, h, h2, false, tile);
    });
    error.rethrow_if_failed();
    if (steps % 2 == 1) std::memcpy(h, h2, sizeof(float) * batch * u);  // the last h' went there
}

// What a driver sets up for a sequence before its steps: the thread split (plan_split, with the
// multiply-adds of one row's recurrent step), the time chunks of the input projection, xw's
// buffer (B, tc, N' of w_in) and the projection into it, and the second h buffer. run() walks
// the steps (run_steps); the driver keeps its own buffers and step arithmetic.
struct Sequence {
    Split plan;
    StepChunks chunks;
    AlignedFloats xw;  // the projection of tc steps (a time chunk, or all of them): (B, tc, N')
    AlignedFloats h2;  // the other h buffer (B, u)
    InputProjection project;

    Sequence(const float* x, int64_t batch, int64_t steps, int64_t features,
             const PackedGates& w_in, int64_t macs_per_row_step, bool go_backwards)
        : plan(plan_split(batch, w_in.units, macs_per_row_step)),
          chunks{steps, chunk_steps(plan, batch, steps, w_in), go_backwards},
          xw(alloc_aligned_floats(batch * chunks.tc * w_in.w.n())),
          h2(alloc_aligned_floats(batch * w_in.units)),
          project{x, features, &w_in, chunks, xw.get(), w_in.w.n()} {}

    // run_steps over the sequence, `per_step` phases a step: h holds h0 on entry and the last
    // step's h on return.
    template <class Step>
    void run(int64_t batch, int64_t per_step, float* h, const Step& step) const {
        run_steps(plan, chunks, project, batch, project.w_in->units, per_step, h, h2.get(),
                  step);
    }
};

}  // namespace rnn_detail
}  // namespace fl
