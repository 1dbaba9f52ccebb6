// Tests of the fused LSTM / GRU gate kernels (fl_lstm_gates_<isa>, fl_gru_gates_<isa>,
// ukernels/vmath/vmath.h): bit for bit the same ISA's act kernels applied gate by gate (the
// drivers' generic path), and close to a float64 reference. Unit counts around the 8-lane
// vector and the 16-unit block: 1, 7, 8, 9, 16, 17, 33, 64.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../ops/recurrent.h"
#include "fastlayers/runtime.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"

namespace {

struct GateKernels {
    std::string isa;
    fl::Isa id;
    void (*lstm)(int64_t, const float*, float*, float*);
    void (*gru)(int64_t, const float*, const float*, const float*, float*);
    void (*sigmoid)(float*, int64_t);
    void (*tanh)(float*, int64_t);
};

std::vector<GateKernels> gate_kernels() {
    std::vector<GateKernels> v;
    v.push_back({"scalar", fl::Isa::scalar, fl_lstm_gates_scalar, fl_gru_gates_scalar,
                 fl_act_sigmoid_scalar, fl_act_tanh_scalar});
#if defined(FL_HAVE_AVX2)
    v.push_back({"avx2", fl::Isa::avx2, fl_lstm_gates_avx2, fl_gru_gates_avx2,
                 fl_act_sigmoid_avx2, fl_act_tanh_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({"avx512", fl::Isa::avx512, fl_lstm_gates_avx512, fl_gru_gates_avx512,
                 fl_act_sigmoid_avx512, fl_act_tanh_avx512});
#endif
    return v;
}

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Pre-activations: mostly moderate, some large (saturated gates) and exact zeros.
std::vector<float> random_values(std::mt19937& rng, size_t n) {
    std::normal_distribution<float> nd(0.0f, 2.0f);
    std::uniform_int_distribution<int> pick(0, 19);
    std::vector<float> v(n);
    for (float& x : v) {
        const int p = pick(rng);
        x = p == 0 ? 0.0f : (p == 1 ? 30.0f * nd(rng) : nd(rng));
    }
    return v;
}

void test_lstm_gates(const GateKernels& k) {
    std::mt19937 rng(7);
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64}) {
        const int64_t blocks = (n + 15) / 16;
        const std::vector<float> z = random_values(rng, static_cast<size_t>(64 * blocks));
        const std::vector<float> c0 = random_values(rng, static_cast<size_t>(n) + 1);
        // Fused, with a sentinel after the n outputs.
        std::vector<float> c = c0, h(static_cast<size_t>(n) + 1, -7.0f);
        k.lstm(n, z.data(), c.data(), h.data());
        FLT_CHECK(c[n] == c0[n] && h[n] == -7.0f);
        // Generic: the act kernels gate by gate on a copy of z (lstm.cpp lstm_unit_block).
        std::vector<float> zz = z, cg = c0, hg(static_cast<size_t>(n));
        int bad_bits = 0, bad_ref = 0;
        for (int64_t q = 0; q < blocks; ++q) {
            float* zb = zz.data() + 64 * q;
            k.sigmoid(zb, 32);
            k.tanh(zb + 32, 16);
            k.sigmoid(zb + 48, 16);
            const int64_t nv = std::min<int64_t>(16, n - 16 * q);
            float ac[16];
            for (int64_t j = 0; j < nv; ++j) {
                float& cj = cg[static_cast<size_t>(16 * q + j)];
                cj = zb[16 + j] * cj + zb[j] * zb[32 + j];
                ac[j] = cj;
            }
            k.tanh(ac, nv);
            for (int64_t j = 0; j < nv; ++j) {
                hg[static_cast<size_t>(16 * q + j)] = zb[48 + j] * ac[j];
            }
        }
        for (int64_t j = 0; j < n; ++j) {
            if (fltest::float_bits(c[j]) != fltest::float_bits(cg[j]) ||
                fltest::float_bits(h[j]) != fltest::float_bits(hg[j]))
                ++bad_bits;
            // float64 reference from the same inputs.
            const float* zb = z.data() + 64 * (j / 16) + j % 16;
            const double cr = sigmoid_ref(zb[16]) * double(c0[j]) +
                              sigmoid_ref(zb[0]) * std::tanh(double(zb[32]));
            const double hr = sigmoid_ref(zb[48]) * std::tanh(cr);
            if (std::fabs(c[j] - cr) > 1e-5 * (1.0 + std::fabs(cr)) ||
                std::fabs(h[j] - hr) > 1e-5 * (1.0 + std::fabs(hr)))
                ++bad_ref;
        }
        FLT_CHECK_MSG(bad_bits == 0, "%s n=%d: %d units differ from the generic path",
                      k.isa.c_str(), int(n), bad_bits);
        FLT_CHECK_MSG(bad_ref == 0, "%s n=%d: %d units off the float64 reference",
                      k.isa.c_str(), int(n), bad_ref);
    }
}

void test_gru_gates(const GateKernels& k) {
    std::mt19937 rng(11);
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64}) {
        const int64_t blocks = (n + 15) / 16;
        const std::vector<float> g = random_values(rng, static_cast<size_t>(48 * blocks));
        const std::vector<float> x = random_values(rng, static_cast<size_t>(48 * blocks));
        const std::vector<float> hp = random_values(rng, static_cast<size_t>(n));
        std::vector<float> h(static_cast<size_t>(n) + 1, -7.0f);
        k.gru(n, g.data(), x.data(), hp.data(), h.data());
        FLT_CHECK(h[n] == -7.0f);
        // Generic (gru.cpp, reset_after).
        std::vector<float> gg = g, hg(static_cast<size_t>(n));
        int bad_bits = 0, bad_ref = 0;
        for (int64_t q = 0; q < blocks; ++q) {
            float* gb = gg.data() + 48 * q;
            const float* xb = x.data() + 48 * q;
            for (int j = 0; j < 32; ++j) gb[j] += xb[j];
            k.sigmoid(gb, 32);
            float* cand = gb + 32;
            for (int j = 0; j < 16; ++j) cand[j] = xb[32 + j] + gb[16 + j] * cand[j];
            k.tanh(cand, 16);
            const int64_t nv = std::min<int64_t>(16, n - 16 * q);
            for (int64_t j = 0; j < nv; ++j) {
                const size_t i = static_cast<size_t>(16 * q + j);
                hg[i] = gb[j] * hp[i] + (1.0f - gb[j]) * cand[j];
            }
        }
        for (int64_t j = 0; j < n; ++j) {
            if (fltest::float_bits(h[j]) != fltest::float_bits(hg[j])) ++bad_bits;
            const int64_t o = 48 * (j / 16) + j % 16;
            const double zr = sigmoid_ref(double(g[o]) + x[o]);
            const double rr = sigmoid_ref(double(g[o + 16]) + x[o + 16]);
            const double er = std::tanh(double(x[o + 32]) + rr * g[o + 32]);
            const double hr = zr * hp[j] + (1.0 - zr) * er;
            if (std::fabs(h[j] - hr) > 1e-5 * (1.0 + std::fabs(hr))) ++bad_ref;
        }
        FLT_CHECK_MSG(bad_bits == 0, "%s n=%d: %d units differ from the generic path",
                      k.isa.c_str(), int(n), bad_bits);
        FLT_CHECK_MSG(bad_ref == 0, "%s n=%d: %d units off the float64 reference",
                      k.isa.c_str(), int(n), bad_ref);
    }
}

// The units-split driver (recurrent.h, run_units_split) on 2 threads, with bodies that only
// count: whatever the schedule - a worker asked to leave at step `leave_at` (test hook), the
// caller sleeping `delay_us` first while the worker runs on (it may finish whole steps before
// the close: the caller must not run them again), one or two phases per step, an odd or even
// number of steps - every input-projection block (time chunks of 4 steps: the first in phase
// 0, the later ones in their first step) and every (step, phase, unit block) runs exactly
// once, each step after the projection of its chunk's block, and each step sees the h buffers
// of its parity.
void test_units_split_runs_each_block_once() {
    using namespace fl::rnn_detail;
    const int saved = fl::num_threads();
    fl::set_num_threads(2);
    const int64_t u = 192, nq = unit_blocks(u);
    float h[1], h2[1];
    int64_t delayed_runs = 0;
    const int64_t closes_before = fl::units_split_closes_for_tests();
    for (int64_t per_step : {1, 2})
        for (int64_t steps : {9, 10})
            for (int64_t leave_at : {-1, 0, 1, 4, 7})
                for (int64_t delay_us : {0, 3000}) {
                    if (leave_at < 0 && delay_us > 0) continue;
                    fl::units_split_leave_at_for_tests(leave_at, delay_us);
                    delayed_runs += delay_us > 0;
                    const UnitShares shares(u, 2);
                    fl::SharedPhases work(shares.items());
                    Attendance attendance;
                    RegionError error;
                    const StepChunks chunks{steps, 4, false};
                    const int64_t nchunks = (steps + 3) / 4;
                    std::vector<std::atomic<int>> proj(static_cast<size_t>(nchunks * nq));
                    auto project = [&](int64_t k, int64_t qc, int64_t nqc) {
                        for (int64_t q = qc; q < qc + nqc; ++q)
                            ++proj[static_cast<size_t>(k / 4 * nq + q)];
                    };
                    std::atomic<int> unprojected{0};
                    std::vector<std::atomic<int>> runs(static_cast<size_t>(steps * per_step * nq));
                    std::atomic<int> wrong_h{0};
                    auto count = [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc,
                                     const float* hc, const float* hn) {
                        if (hc != ((k & 1) ? h2 : h) || hn != ((k & 1) ? h : h2)) ++wrong_h;
                        for (int64_t q = qc; q < qc + nqc; ++q) {
                            ++runs[static_cast<size_t>((k * per_step + ph) * nq + q)];
                            if (proj[static_cast<size_t>(k / 4 * nq + q)].load() != 1)
                                ++unprojected;
                        }
                    };
                    fl::parallel_region(2, [&](int tid, int) {
                        run_units_split(
                            tid, shares, work, attendance, error,
                            chunks, per_step, h, h2, project,
                            [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc, float* hc,
                                float* hn) { count(k, ph, qc, nqc, hc, hn); },
                            [&](int64_t k0, float* hc, float* hn) {
                                for (int64_t k = k0; k < steps; ++k) {
                                    // as the drivers' steps_alone: phase 0 did chunk 0
                                    if (k > 0 && chunks.starts(k)) project(k, 0, nq);
                                    for (int64_t ph = 0; ph < per_step; ++ph)
                                        count(k, ph, 0, nq, hc, hn);
                                    std::swap(hc, hn);
                                }
                            });
                    });
                    int bad = 0;
                    for (auto& c : proj) bad += c.load() != 1;
                    for (auto& c : runs) bad += c.load() != 1;
                    FLT_CHECK_MSG(bad == 0 && wrong_h.load() == 0 && unprojected.load() == 0,
                                  "per_step %d steps %d leave_at %d delay %d: %d blocks not run "
                                  "once, %d with the wrong h buffers, %d before their projection",
                                  int(per_step), int(steps), int(leave_at), int(delay_us), bad,
                                  wrong_h.load(), unprojected.load());
                }
    fl::units_split_leave_at_for_tests(-1, 0);
    // The hook did act: a caller held up 3 ms closes the split (the worker has finished and
    // left, or never came) in (nearly) every delayed run, and most undelayed runs close too;
    // fewer closes than half the delayed runs would mean it hardly ever fired.
    FLT_CHECK_MSG(fl::units_split_closes_for_tests() - closes_before >= delayed_runs / 2,
                  "%d closes in %d delayed runs",
                  int(fl::units_split_closes_for_tests() - closes_before), int(delayed_runs));
    fl::set_num_threads(saved);
}

// run_steps (recurrent.h), the walk every driver's steps go through, in each split (one thread,
// rows on 2 threads, units on 2 threads, each also with the split closed by the test hook at
// step 3) with 1 and 2 phases per step, an odd and an even number of steps, time chunks of 4
// steps: every (step, phase, unit block, row) runs exactly once, after the projection of its
// chunk's rows and blocks (each projected exactly once), with the h buffers of its step's
// parity, and a step's phase only once the phase before it is done for every unit block; the
// last step's h ends in h. The contention backoff (which would send units splits to the caller
// alone after a busy moment) is off meanwhile; a split may still close by itself when its
// worker is descheduled (Attendance), so only the closes the hook forces are counted.
void test_run_steps_runs_each_row_block_once() {
    using namespace fl::rnn_detail;
    const int saved = fl::num_threads();
    const bool backoff = fl::contention_backoff();
    fl::set_contention_backoff(false);
    fl::set_num_threads(2);
    const int64_t u = 192, nq = unit_blocks(u), batch = 13;
    const Split plans[] = {{SplitMode::one, 1}, {SplitMode::rows, 2}, {SplitMode::units, 2}};
    for (const Split& plan : plans)
        for (int64_t close_at : {int64_t(-1), int64_t(3)})
            for (int64_t per_step : {1, 2})
                for (int64_t steps : {9, 10}) {
                    if (close_at >= 0 && plan.mode != SplitMode::units) continue;
                    fl::units_split_close_at_for_tests(close_at);
                    const int64_t closes = fl::units_split_closes_for_tests();
                    const StepChunks chunks{steps, 4, false};
                    const int64_t nchunks = (steps + 3) / 4;
                    auto at = [&](int64_t i, int64_t q, int64_t b) {
                        return static_cast<size_t>((i * nq + q) * batch + b);
                    };
                    std::vector<std::atomic<int>> proj(at(nchunks, 0, 0));
                    std::vector<std::atomic<int>> runs(at(steps * per_step, 0, 0));
                    std::atomic<int> early{0}, wrong_h{0};
                    std::vector<float> h(static_cast<size_t>(batch * u), 0.0f), h2 = h;
                    auto project = [&](int64_t k, int64_t b0, int64_t b1, int64_t q0,
                                       int64_t q1) {
                        for (int64_t q = q0; q < q1; ++q)
                            for (int64_t b = b0; b < b1; ++b) ++proj[at(k / 4, q, b)];
                    };
                    auto step = [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc, int64_t r0,
                                    int64_t r1, const float* hc, float* hn, float* tile) {
                        const bool odd = k & 1;
                        if (hc != (odd ? h2.data() : h.data()) ||
                            hn != (odd ? h.data() : h2.data()) || tile == nullptr)
                            ++wrong_h;
                        for (int64_t q = qc; q < qc + nqc; ++q)
                            for (int64_t b = r0; b < r1; ++b) {
                                ++runs[at(k * per_step + ph, q, b)];
                                if (proj[at(k / 4, q, b)].load() != 1) ++early;
                                // the phase before: done for every unit block of this row
                                const int64_t prev = k * per_step + ph - 1;
                                for (int64_t p = 0; prev >= 0 && p < nq; ++p)
                                    if (runs[at(prev, p, b)].load() != 1) ++early;
                            }
                        // this step's h, for the rows and units written
                        for (int64_t b = r0; b < r1; ++b)
                            for (int64_t j = qc * 16; j < std::min(u, (qc + nqc) * 16); ++j)
                                hn[b * u + j] = static_cast<float>(k + 1);
                    };
                    run_steps(plan, chunks, project, batch, u, per_step, h.data(), h2.data(),
                              step);
                    int bad = 0;
                    for (auto& c : proj) bad += c.load() != 1;
                    for (auto& c : runs) bad += c.load() != 1;
                    int stale = 0;
                    for (float v : h) stale += v != static_cast<float>(steps);
                    const int64_t closed = fl::units_split_closes_for_tests() - closes;
                    FLT_CHECK_MSG(close_at < 0 || closed == 1,
                                  "mode %d close_at %d per_step %d steps %d: %d closes",
                                  int(plan.mode), int(close_at), int(per_step), int(steps),
                                  int(closed));
                    FLT_CHECK_MSG(bad == 0 && early.load() == 0 && wrong_h.load() == 0 &&
                                      stale == 0,
                                  "mode %d close_at %d per_step %d steps %d: %d not run once, "
                                  "%d early, %d with the wrong buffers, %d of h not the last "
                                  "step's",
                                  int(plan.mode), int(close_at), int(per_step), int(steps), bad,
                                  early.load(), wrong_h.load(), stale);
                }
    fl::units_split_close_at_for_tests(-1);
    fl::set_contention_backoff(backoff);
    fl::set_num_threads(saved);
}

// chunk_steps (recurrent.h): time chunks of kXwChunkBytes of a thread's rows, at least
// kMinChunkRows steps when it has fewer rows, the whole sequence when the W a chunk's GEMM reads
// (all of it, or a units-split item's slice) exceeds kChunkedMaxWBytes or for a one-thread plan
// on a larger pool; the boundaries on both sides.
void test_chunk_steps_rule() {
    using namespace fl::rnn_detail;
    const int saved = fl::num_threads();
    // An LSTM input kernel of f features and u units, packed (zeros: only the shape counts).
    auto packed = [](int64_t f, int64_t u) {
        const std::vector<float> w(static_cast<size_t>(f * 4 * u), 0.0f);
        return fl::pack_gates(w.data(), f, u, 4, nullptr);
    };
    const Split one{SplitMode::one, 1};
    const Split rows2{SplitMode::rows, 2};
    const Split units2{SplitMode::units, 2};
    fl::set_num_threads(1);
    // u 128: N' 512 columns, 2 KiB of W per feature; 1024 features are exactly 2 MiB.
    const fl::PackedGates w2m = packed(1024, 128), w2m1 = packed(1025, 128);
    FLT_CHECK(chunk_steps(one, 32, 100, w2m) == kXwChunkBytes / (32 * 512 * 4));  // 4 steps
    FLT_CHECK(chunk_steps(one, 32, 100, w2m1) == 100);  // W over the limit: one GEMM
    FLT_CHECK(chunk_steps(one, 1, 100, w2m) == 100);    // 128 steps a chunk, clamped
    // u 512: N' 2048 columns, 8 KiB of xw per row and step.
    const fl::PackedGates w512 = packed(8, 512);  // N' 2048
    FLT_CHECK(chunk_steps(one, 4, 100, w512) == 16);  // 8 steps by bytes, raised to 16
    FLT_CHECK(chunk_steps(one, 16, 100, w512) == 2);  // 16 rows: by bytes only
    FLT_CHECK(chunk_steps(one, 4, 10, w512) == 10);
    fl::set_num_threads(2);
    FLT_CHECK(chunk_steps(one, 4, 100, w512) == 100);  // one-thread plan, two-thread pool
    FLT_CHECK(chunk_steps(rows2, 32, 100, w512) == 2);  // 16 rows per thread
    FLT_CHECK(chunk_steps(rows2, 64, 100, w2m1) == 100);
    FLT_CHECK(chunk_steps(rows2, 20, 100, w512) == 16);  // 10 rows: 3 steps raised to 16
    // Units split: an item reads the slice of 4 unit blocks, 256 columns, 1 KiB per feature.
    const fl::PackedGates s2m = packed(2048, 512), s2m1 = packed(2049, 512);
    FLT_CHECK(chunk_steps(units2, 4, 100, s2m) == 16);  // W 16 MiB, slice 2 MiB: chunked
    FLT_CHECK(chunk_steps(units2, 4, 100, s2m1) == 100);
    // u 128: the slice is 4 of 8 unit blocks, 1 MiB of a W just over 2 MiB: chunked.
    FLT_CHECK(chunk_steps(units2, 4, 100, w2m1) == 32);
    // u 32: 2 unit blocks, 128 columns, fewer than a slice of 4: all of W counts, 512 bytes a
    // feature (4096 features are 2 MiB); 2 KiB of xw per step, 128 steps a chunk.
    const fl::PackedGates n2m = packed(4096, 32), n2m1 = packed(4097, 32);
    FLT_CHECK(chunk_steps(units2, 4, 1000, n2m) == 128);
    FLT_CHECK(chunk_steps(units2, 4, 1000, n2m1) == 1000);
    fl::set_num_threads(saved);
}

}  // namespace

namespace fltest {

void register_recurrent_tests() {
    add_case("units_split_runs_each_block_once", test_units_split_runs_each_block_once);
    add_case("chunk_steps_rule", test_chunk_steps_rule);
    add_case("run_steps_runs_each_row_block_once", test_run_steps_runs_each_row_block_once);
    for (const GateKernels& k : gate_kernels()) {
        if (!fltest::isa_supported(k.id)) continue;
        add_case("lstm_gates_" + k.isa, [k] { test_lstm_gates(k); });
        add_case("gru_gates_" + k.isa, [k] { test_gru_gates(k); });
    }
}

}  // namespace fltest
