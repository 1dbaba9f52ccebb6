// GRU driver (Keras GRU, SEMANTICS.md §7): gate blocks [z | r | h] of u columns each.
//
//   x    (B, T, F)  row-major contiguous, read as the (B*T, F) matrix of all steps
//   w_in           the kernel (F, 3u) packed by pack_b with the input bias folded in
//                  (bias[0] if reset_after, else the whole (3u,) bias)
//   reset_after = true:
//     w_rec        the recurrent kernel (u, 3u) packed with the recurrent bias bias[1] folded
//                  in; w_rec_h unused (nullptr)
//   reset_after = false:
//     w_rec        recurrent_kernel[:, :2u] (u, 2u), packed, no bias
//     w_rec_h      recurrent_kernel[:, 2u:] (u, u), packed, no bias
//   h0 (B, u)      initial state;  mask (B, T) uint8 (0 = masked) or nullptr
//   out  (B, T, u) if return_sequences (processing order), else (B, u);  h (B, u) final state
//
// Work: one GEMM for the input projection of all steps, xw (B*T, 3u) (row b*T + t); per step:
//   reset_after:  hr (B, 3u) = h · R + b_rec, kept apart from xw because the reset gate
//                 multiplies the recurrent candidate term with its bias: z, r = σ(xw + hr),
//                 ĥ = act(xw_h + r ⊙ hr_h)
//   reset_before: hr (B, 2u) = h · R_zr; z, r = σ(xw + hr); rh = r ⊙ h (B, u);
//                 hh (B, u) = rh · R_h (a second small GEMM); ĥ = act(xw_h + hh)
//   then h = z ⊙ h + (1 - z) ⊙ ĥ, per row. Scratch is allocated once per call; masked rows
//   keep h and repeat the last emitted output (zeros before the first unmasked step).
//
// Threads: GEMMs use the engine's split, the gate math is split over batch rows; every row's
// numbers depend only on that row, so results are bitwise identical for any thread count.
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

void gru_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                 const PackedB& w_in, const PackedB& w_rec, const PackedB* w_rec_h,
                 const float* h0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                 bool reset_after, Act act, Act recurrent_act, float* out, float* h) {
    const int64_t u = w_rec.k();
    const int64_t n = 3 * u;
    const bool ok = w_in.k() == features && w_in.n() == n &&
                    (reset_after ? w_rec.n() == n
                                 : (w_rec.n() == 2 * u && w_rec_h != nullptr &&
                                    w_rec_h->k() == u && w_rec_h->n() == u));
    if (!ok) {
        throw std::invalid_argument("gru_forward: packed kernels do not match: kernel (" +
                                    std::to_string(w_in.k()) + ", " + std::to_string(w_in.n()) +
                                    "), recurrent (" + std::to_string(w_rec.k()) + ", " +
                                    std::to_string(w_rec.n()) + "), features " +
                                    std::to_string(features));
    }
    if (batch <= 0 || u <= 0) return;
    const int64_t bu = batch * u;
    if (h != h0) std::memcpy(h, h0, sizeof(float) * bu);
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
    const int64_t nrec = reset_after ? n : 2 * u;
    AlignedFloats xw = alloc_aligned_floats(batch * steps * n);  // (B*T, 3u)
    AlignedFloats hr = alloc_aligned_floats(batch * nrec);       // (B, 3u) or (B, 2u)
    AlignedFloats rh, hh;                                        // (B, u) each, reset_before
    if (!reset_after) {
        rh = alloc_aligned_floats(bu);
        hh = alloc_aligned_floats(bu);
    }
    float* xwp = xw.get();
    float* hrp = hr.get();
    float* rhp = rh.get();
    float* hhp = hh.get();
    const int64_t grain = std::max<int64_t>(1, 8192 / n);

    auto keep = [&](int64_t b, int64_t t) { return mask == nullptr || mask[b * steps + t] != 0; };
    // h = z*h + (1-z)*cand for a row that is not masked; records the emitted output.
    auto finish_row = [&](int64_t b, const float* zg, const float* cand) {
        float* hrow = h + b * u;
        for (int64_t j = 0; j < u; ++j) hrow[j] = zg[j] * hrow[j] + (1.0f - zg[j]) * cand[j];
        std::memcpy(emitted + b * u, hrow, sizeof(float) * u);
    };
    auto store_output = [&](int64_t b, int64_t k) {
        if (return_sequences) {
            std::memcpy(out + (b * steps + k) * u, emitted + b * u, sizeof(float) * u);
        }
    };

    // One region on the calling thread: FTZ/DAZ for the gate math as for the GEMMs; the GEMMs
    // inside still use the pool.
    parallel_for(1, 1, [&](int64_t, int64_t) {
        gemm_packed(x, batch * steps, features, w_in, xwp, n);
        for (int64_t k = 0; k < steps; ++k) {
            const int64_t t = go_backwards ? steps - 1 - k : k;
            gemm_packed(h, batch, u, w_rec, hrp, nrec);
            if (reset_after) {
                parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) {
                        if (keep(b, t)) {
                            float* g = hrp + b * n;
                            const float* xr = xwp + (b * steps + t) * n;
                            for (int64_t j = 0; j < 2 * u; ++j) g[j] += xr[j];
                            fr(g, 2 * u);  // z, r
                            const float* r = g + u;
                            float* cand = g + 2 * u;
                            const float* xh = xr + 2 * u;
                            for (int64_t j = 0; j < u; ++j) cand[j] = xh[j] + r[j] * cand[j];
                            fa(cand, u);
                            finish_row(b, g, cand);
                        }
                        store_output(b, k);
                    }
                });
            } else {
                parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) {
                        float* g = hrp + b * 2 * u;
                        const float* xr = xwp + (b * steps + t) * n;
                        for (int64_t j = 0; j < 2 * u; ++j) g[j] += xr[j];
                        fr(g, 2 * u);  // z, r
                        // Every row feeds the GEMM below, masked or not (its result is unused).
                        const float* r = g + u;
                        const float* hrow = h + b * u;
                        float* rrow = rhp + b * u;
                        for (int64_t j = 0; j < u; ++j) rrow[j] = r[j] * hrow[j];
                    }
                });
                gemm_packed(rhp, batch, u, *w_rec_h, hhp, u);  // hh (B, u) = (r*h) · R_h
                parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
                    for (int64_t b = b0; b < b1; ++b) {
                        if (keep(b, t)) {
                            float* cand = hhp + b * u;
                            const float* xr = xwp + (b * steps + t) * n + 2 * u;
                            for (int64_t j = 0; j < u; ++j) cand[j] = xr[j] + cand[j];
                            fa(cand, u);
                            finish_row(b, hrp + b * 2 * u, cand);
                        }
                        store_output(b, k);
                    }
                });
            }
        }
    });
}

}  // namespace fl
