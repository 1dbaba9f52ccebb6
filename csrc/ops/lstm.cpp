// LSTM driver (Keras LSTM, SEMANTICS.md §6): gate blocks [i | f | c | o] of u columns each.
//
//   x    (B, T, F)  row-major contiguous, read as the (B*T, F) matrix of all steps
//   w_in           the kernel (F, 4u) packed by pack_b, with the bias (4u,) folded in
//   w_rec          the recurrent kernel (u, 4u) packed by pack_b, no bias
//   h0, c0 (B, u)  initial state;  mask (B, T) uint8 (0 = masked) or nullptr
//   out  (B, T, u) if return_sequences (processing order), else (B, u)
//   h, c (B, u)    final state
//
// Work: one GEMM for the input projection of every step, xw (B*T, 4u) = x · W + b (row b*T + t);
// then per step one GEMM hr (B, 4u) = h · R with the pre-packed recurrent kernel, and the gate
// math fused per row: z = xw[b, t] + hr[b], the activations on the row's gate segments (vector
// kernels of the active ISA), c = f*c + i*g, h = o*act(c). All scratch is allocated once per
// call. Masked rows skip the gate math: state kept, output repeats the last emitted one (zeros
// before the first unmasked step, the Keras torch/TF-backend rule).
//
// Threads: the GEMMs use the engine's own split; the gate math is split over batch rows. Each
// row's numbers depend only on that row, so results are bitwise identical for any thread
// count. (Batch-parallel step loops and the hidden-unit split of PERFORMANCE.md §9.3 for B = 1
// on two cores are later optimizations.)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "fastlayers/dispatch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {

namespace {

// Rows of gate math per task: about 8k elements, so that a wake-up (a few us) pays off.
int64_t rows_per_task(int64_t row_floats) {
    return std::max<int64_t>(1, 8192 / std::max<int64_t>(row_floats, 1));
}

// Rows per task when a step's GEMM and gate math are split over batch rows: at least one
// register block (6 rows) and 64K multiply-adds, as the GEMM engine's own minimum.
int64_t row_grain(int64_t u, int64_t n) {
    return std::max<int64_t>(6, (int64_t(1) << 16) / std::max<int64_t>(u * n, 1) + 1);
}

// Batches with two such tasks or more split each step over rows (one synchronization per step,
// every thread keeps all of R hot); smaller ones let the GEMM split columns (B = 1: each core
// streams its share of R) and the gate math runs after it.
bool use_row_split(int64_t batch, int64_t u, int64_t n) {
    return num_threads() > 1 && batch >= 2 * row_grain(u, n);
}

}  // namespace

void lstm_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                  const PackedB& w_in, const PackedB& w_rec, const float* h0, const float* c0,
                  const uint8_t* mask, bool return_sequences, bool go_backwards, Act act,
                  Act recurrent_act, float* out, float* h, float* c) {
    const int64_t u = w_rec.k();
    const int64_t n = 4 * u;
    if (w_rec.n() != n || w_in.k() != features || w_in.n() != n) {
        throw std::invalid_argument(
            "lstm_forward: packed kernels do not match: kernel (" + std::to_string(w_in.k()) +
            ", " + std::to_string(w_in.n()) + "), recurrent (" + std::to_string(w_rec.k()) + ", " +
            std::to_string(w_rec.n()) + "), features " + std::to_string(features));
    }
    if (batch <= 0 || u <= 0) return;
    const int64_t bu = batch * u;
    if (h != h0) std::memcpy(h, h0, sizeof(float) * bu);
    if (c != c0) std::memcpy(c, c0, sizeof(float) * bu);
    // The previously emitted output of each row: the result itself when only the last output
    // is returned.
    AlignedFloats emitted_buf;
    float* emitted = out;
    if (return_sequences) {
        emitted_buf = alloc_aligned_floats(bu);
        emitted = emitted_buf.get();
    }
    std::fill(emitted, emitted + bu, 0.0f);
    if (steps <= 0) return;

    const KernelTable& kt = kernels();
    const ActFn fa = kt.act[static_cast<int>(act)];
    const ActFn fr = kt.act[static_cast<int>(recurrent_act)];
    AlignedFloats xw = alloc_aligned_floats(batch * steps * n);  // (B*T, 4u)
    AlignedFloats hr = alloc_aligned_floats(batch * n);          // (B, 4u)
    float* xwp = xw.get();
    float* hrp = hr.get();

    // One region on the calling thread: FTZ/DAZ for the gate math as for the GEMMs (so no
    // result depends on which thread produced it); the GEMMs inside still use the pool.
    // Gate math of row b at step k (input time t), after hr[b] = h[b] · R.
    auto gate_row = [&](int64_t b, int64_t t, int64_t k) {
        float* em = emitted + b * u;
        if (mask == nullptr || mask[b * steps + t] != 0) {
            float* z = hrp + b * n;
            const float* xr = xwp + (b * steps + t) * n;
            for (int64_t j = 0; j < n; ++j) z[j] += xr[j];
            fr(z, 2 * u);      // i, f
            fa(z + 2 * u, u);  // g
            fr(z + 3 * u, u);  // o
            const float* gi = z;
            const float* gf = z + u;
            float* gg = z + 2 * u;
            const float* go = z + 3 * u;
            float* cr = c + b * u;
            for (int64_t j = 0; j < u; ++j) {
                cr[j] = gf[j] * cr[j] + gi[j] * gg[j];
                gg[j] = cr[j];  // g is used up: act(c) goes in its place
            }
            fa(gg, u);
            float* hrow = h + b * u;
            for (int64_t j = 0; j < u; ++j) hrow[j] = go[j] * gg[j];
            std::memcpy(em, hrow, sizeof(float) * u);
        }
        if (return_sequences) std::memcpy(out + (b * steps + k) * u, em, sizeof(float) * u);
    };
    const bool split_rows = use_row_split(batch, u, n);

    // One region on the calling thread: FTZ/DAZ for the gate math as for the GEMMs (so no
    // result depends on which thread produced it); the GEMMs inside still use the pool.
    parallel_for(1, 1, [&](int64_t, int64_t) {
        gemm_packed(x, batch * steps, features, w_in, xwp, n);
        for (int64_t k = 0; k < steps; ++k) {
            const int64_t t = go_backwards ? steps - 1 - k : k;
            if (split_rows) {
                // Each thread: its rows' GEMM (serial inside the region) and gate math, one
                // synchronization per step. A row of h is read and written by its owner only.
                parallel_for(batch, row_grain(u, n), [&](int64_t b0, int64_t b1) {
                    gemm_packed(h + b0 * u, b1 - b0, u, w_rec, hrp + b0 * n, n);
                    for (int64_t b = b0; b < b1; ++b) gate_row(b, t, k);
                });
            } else {
                gemm_packed(h, batch, u, w_rec, hrp, n);  // hr (B, 4u) = h (B, u) · R
                parallel_for(batch, rows_per_task(n), [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) gate_row(b, t, k);
                });
            }
        }
    });
}

}  // namespace fl
