// GRU driver (Keras GRU, docs/semantics.md §7): gate blocks [z | r | h] of u columns each.
//
//   x    (B, T, F)  row-major contiguous (rows b*T + t of a (B*T, F) matrix)
//   w_in           the kernel (F, 3u) packed by pack_gates (3 gates) with the input bias folded
//                  in (bias[0] if reset_after, else the whole (3u,) bias)
//   reset_after = true:
//     w_rec        the recurrent kernel (u, 3u) packed by pack_gates (3 gates) with the
//                  recurrent bias bias[1] folded in; w_rec_h unused (nullptr)
//   reset_after = false:
//     w_rec        recurrent_kernel[:, :2u] (u, 2u), pack_gates with 2 gates [z r], no bias
//     w_rec_h      recurrent_kernel[:, 2u:] (u, u), pack_b (panel q = unit block q), no bias
//   h0 (B, u)      initial state;  mask (B, T) uint8 (0 = masked) or nullptr
//   out  (B, T, u) if return_sequences (processing order), else (B, u);  h (B, u) final state
//
// Gate-interleaved packing (fastlayers/ops.h, PackedGates): unit block q (16 units) of xw is
// the 48-column group [z r h], of h · R the group [z r h] (reset_after) or [z r] (reset_before).
//
// Work: the input projection xw, GEMMs over the whole sequence (B*T, N') or over time chunks of
// tc steps (B, tc, N') projected just before their steps (recurrent.h, StepChunks); per step,
// per register block of rows (<= 6, <= 12 with the AVX-512 kernel: recurrent.h block_rows)
// and group of <= 4 unit blocks, one micro-kernel call into a small per-thread tile, and the
// gate math of those rows and units right after it:
//   reset_after:  hr = h · R + b_rec (kept apart from xw because the reset gate multiplies the
//                 recurrent candidate term with its bias): z, r = σ(xw + hr),
//                 ĥ = act(xw_h + r ⊙ hr_h)
//   reset_before: phase 1: hr = h · R_zr; z, r = σ(xw + hr) (z stored back into xw);
//                 rh = r ⊙ h (B, u); phase 2 (rh complete): hh = rh · R_h; ĥ = act(xw_h + hh)
//   then h' = z ⊙ h + (1 - z) ⊙ ĥ (reset_after with tanh / sigmoid: one fused kernel,
//   KernelTable::gru_gates, else the act kernels gate by gate - the same bits). h is
//   double-buffered (h' must not overwrite the h that other unit blocks still read). Masked
//   rows keep h and repeat the last emitted output (zeros before the first unmasked step).
//
// Threads: recurrent.h (rows / units / one); reset_before in the units split has two phases per
// step (phase 2 reads all of rh). Scratch is allocated once per call.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "../runtime/dispatch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "recurrent.h"

namespace fl {

namespace {

using rnn_detail::kUnitBlock;

using rnn_detail::kBlocksPerCall;
constexpr int64_t kTileLd = 3 * kUnitBlock * kBlocksPerCall;  // tiles of up to 12 x 192: 9 KiB

}  // namespace

void gru_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                 const PackedGates& w_in, const PackedGates& w_rec, const PackedB* w_rec_h,
                 const float* h0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                 bool reset_after, Act act, Act recurrent_act, float* out, float* h) {
    const int64_t u = w_rec.units;
    const bool ok = w_in.gates == 3 && w_in.units == u && w_in.w.k() == features &&
                    w_rec.w.k() == u &&
                    (reset_after ? w_rec.gates == 3
                                 : (w_rec.gates == 2 && w_rec_h != nullptr &&
                                    w_rec_h->k() == u && w_rec_h->n() == u));
    if (!ok) {
        throw rnn_detail::packed_mismatch("gru_forward", w_in, w_rec, features);
    }
    if (batch <= 0 || u <= 0) return;
    const int64_t bu = batch * u;
    if (h != h0) std::memcpy(h, h0, sizeof(float) * bu);
    AlignedFloats emitted_buf;
    float* const emitted = rnn_detail::emitted_outputs(out, bu, return_sequences, &emitted_buf);
    if (steps <= 0) return;

    const KernelTable& kt = kernels();
    const ActFn fa = kt.act[static_cast<int>(act)];
    const ActFn fr = kt.act[static_cast<int>(recurrent_act)];
    // Keras's default activations, reset_after: one fused kernel per row and call (same bits).
    auto* const fused =
        act == Act::tanh && recurrent_act == Act::sigmoid ? kt.gru_gates : nullptr;
    const int64_t np = w_in.w.n();      // N' = 48 * unit blocks
    const int64_t gw = 3 * kUnitBlock;  // xw columns of one unit block
    const int64_t rw = reset_after ? 3 * kUnitBlock : 2 * kUnitBlock;  // h · R columns of one
    const rnn_detail::Split plan = rnn_detail::plan_split(batch, u, 3 * u * u);
    // xw holds the projection of tc steps (a time chunk, or the whole sequence): (B, tc, N').
    const rnn_detail::StepChunks chunks{
        steps, rnn_detail::chunk_steps(plan, batch, steps, w_in), go_backwards};
    AlignedFloats xw = alloc_aligned_floats(batch * chunks.tc * np);
    AlignedFloats h2 = alloc_aligned_floats(bu);  // the other h buffer
    AlignedFloats rh;                             // (B, u), reset_before
    if (!reset_after) rh = alloc_aligned_floats(bu);
    float* xwp = xw.get();
    float* rhp = rh.get();
    const rnn_detail::InputProjection project{x, features, &w_in, chunks, xwp, np};
    const float* rec = w_rec.w.data();
    const float* rec_bias = w_rec.w.bias();
    const int64_t ps = w_rec.w.panel_stride();

    auto keep = [&](int64_t b, int64_t t) { return mask == nullptr || mask[b * steps + t] != 0; };
    // Row b's xw, unit block 0, for the time index tx = t - chunks.t_lo(k) in its chunk.
    auto xw_row = [&](int64_t b, int64_t tx) { return xwp + (b * chunks.tc + tx) * np; };
    auto store_output = [&](int64_t b, int64_t k, int64_t j0, int64_t nv) {
        if (return_sequences) {
            std::memcpy(out + (b * steps + k) * u + (j0 - b * u), emitted + j0,
                        sizeof(float) * nv);
        }
    };

    // Phase A of step k for rows [r0, r1) and unit blocks [qc, qc + nqc) (tile: the calling
    // thread's scratch): reset_after, the whole step; reset_before, z (kept in xw) and rh.
    auto phase_a = [&](int64_t k, int64_t qc, int64_t nqc, int64_t r0, int64_t r1,
                       const float* hc, float* hn, float* tile) {
        const int64_t t = go_backwards ? steps - 1 - k : k;
        const int64_t tx = t - chunks.t_lo(k);  // t's row in the chunk
        // h' = z*h + (1-z)*cand for nv units at j0 of a kept row; records the emitted output.
        auto finish = [&](int64_t j0, int64_t nv, const float* zg, const float* cand) {
            for (int64_t j = 0; j < nv; ++j) {
                hn[j0 + j] = zg[j] * hc[j0 + j] + (1.0f - zg[j]) * cand[j];
            }
            std::memcpy(emitted + j0, hn + j0, sizeof(float) * nv);
        };
        for (int64_t rb = r0, mr = 0; rb < r1; rb += mr) {
            mr = rnn_detail::block_rows(r1 - rb, kt.gemm_mr);
            // tile (mr, rw*nqc) = h[rb : rb+mr] · R[:, unit blocks qc ...] (+ b_rec)
            kt.gemm(mr, nqc * rw, u, hc + rb * u, u, 1, rec + (rw / kUnitBlock) * qc * ps, ps,
                    rec_bias ? rec_bias + qc * rw : nullptr, 0, tile, kTileLd);
            const int64_t nu = std::min(nqc * kUnitBlock, u - qc * kUnitBlock);
            for (int64_t b = rb; b < rb + mr; ++b) {
                const bool kept = keep(b, t);
                if (reset_after && kept && fused) {
                    const int64_t j0 = b * u + qc * kUnitBlock;
                    const float* xr = xw_row(b, tx) + qc * gw;
                    fused(nu, tile + (b - rb) * kTileLd, xr, hc + j0, hn + j0);
                    std::memcpy(emitted + j0, hn + j0, sizeof(float) * nu);
                    store_output(b, k, j0, nu);
                    continue;
                }
                for (int64_t q = qc; q < qc + nqc; ++q) {
                    const int64_t j0 = b * u + q * kUnitBlock;
                    const int64_t nv = std::min(kUnitBlock, u - q * kUnitBlock);
                    float* g = tile + (b - rb) * kTileLd + (q - qc) * rw;
                    float* xr = xw_row(b, tx) + q * gw;
                    if (reset_after) {
                        if (kept) {
                            for (int64_t j = 0; j < 2 * kUnitBlock; ++j) g[j] += xr[j];
                            fr(g, 2 * kUnitBlock);  // z, r
                            const float* r = g + kUnitBlock;
                            float* cand = g + 2 * kUnitBlock;
                            const float* xh = xr + 2 * kUnitBlock;
                            for (int64_t j = 0; j < kUnitBlock; ++j) {
                                cand[j] = xh[j] + r[j] * cand[j];
                            }
                            fa(cand, kUnitBlock);
                            finish(j0, nv, g, cand);
                        } else {
                            std::memcpy(hn + j0, hc + j0, sizeof(float) * nv);
                        }
                        store_output(b, k, j0, nv);
                    } else {
                        // Every row feeds phase B's GEMM, masked or not (its result is then
                        // unused).
                        for (int64_t j = 0; j < 2 * kUnitBlock; ++j) g[j] += xr[j];
                        fr(g, 2 * kUnitBlock);  // z, r
                        std::memcpy(xr, g, sizeof(float) * kUnitBlock);  // z for phase B
                        const float* r = g + kUnitBlock;
                        for (int64_t j = 0; j < nv; ++j) rhp[j0 + j] = r[j] * hc[j0 + j];
                    }
                }
            }
        }
    };

    // Phase B of step k (reset_before only; reads every unit of rh): the candidate and h'.
    auto phase_b = [&](int64_t k, int64_t qc, int64_t nqc, int64_t r0, int64_t r1,
                       const float* hc, float* hn, float* tile) {
        const int64_t t = go_backwards ? steps - 1 - k : k;
        const int64_t tx = t - chunks.t_lo(k);  // t's row in the chunk
        const float* rec_h = w_rec_h->data();
        const int64_t ps_h = w_rec_h->panel_stride();
        for (int64_t rb = r0, mr = 0; rb < r1; rb += mr) {
            mr = rnn_detail::block_rows(r1 - rb, kt.gemm_mr);
            // tile (mr, 16*nqc) = rh[rb : rb+mr] · R_h[:, unit blocks qc ...]
            kt.gemm(mr, nqc * kUnitBlock, u, rhp + rb * u, u, 1, rec_h + qc * ps_h, ps_h,
                    nullptr, 0, tile, kTileLd);
            for (int64_t b = rb; b < rb + mr; ++b) {
                const bool kept = keep(b, t);
                for (int64_t q = qc; q < qc + nqc; ++q) {
                    const int64_t j0 = b * u + q * kUnitBlock;
                    const int64_t nv = std::min(kUnitBlock, u - q * kUnitBlock);
                    if (kept) {
                        float* cand = tile + (b - rb) * kTileLd + (q - qc) * kUnitBlock;
                        const float* xr = xw_row(b, tx) + q * gw;
                        const float* xh = xr + 2 * kUnitBlock;
                        for (int64_t j = 0; j < kUnitBlock; ++j) cand[j] = xh[j] + cand[j];
                        fa(cand, kUnitBlock);
                        // xr[0, 16) holds z now.
                        for (int64_t j = 0; j < nv; ++j) {
                            hn[j0 + j] = xr[j] * hc[j0 + j] + (1.0f - xr[j]) * cand[j];
                        }
                        std::memcpy(emitted + j0, hn + j0, sizeof(float) * nv);
                    } else {
                        std::memcpy(hn + j0, hc + j0, sizeof(float) * nv);
                    }
                    store_output(b, k, j0, nv);
                }
            }
        }
    };

    // Units split: fixed shares of unit blocks, their chunks claimed phase by phase through
    // fl::SharedPhases (phase 0: the first time chunk's input projection; then per step phase
    // A, and phase B for reset_before), own share first (recurrent.h).
    const rnn_detail::UnitShares shares(u, plan.mode == rnn_detail::SplitMode::units
                                               ? plan.threads
                                               : 1);
    SharedPhases work(shares.items());
    const int64_t per_step = reset_after ? 1 : 2;  // phases per step
    rnn_detail::Attendance attendance;
    rnn_detail::RegionError error;
    // The steps of rows [b0, b1), every unit block, on this thread alone (the one-thread walk).
    // From step k0 on, with h of the previous step in hc. Each time chunk's projection of these
    // rows first, but the first chunk's if a units split's phase 0 projected it (projected0);
    // stops after a failed projection (the error is in `error`).
    auto steps_alone = [&](int64_t b0, int64_t b1, int64_t k0, float* hc, float* hn,
                           bool projected0, float* tile) {
        const rnn_detail::ChunkWalk walk(0, rnn_detail::unit_blocks(u));
        for (int64_t k = k0; k < steps; ++k) {
            if (error.failed()) return;  // this thread's projection or a partner's
            if (chunks.starts(k) && !(k == 0 && projected0)) {
                error.run([&] { project(k, b0, b1, 0, rnn_detail::unit_blocks(u)); });
                if (error.failed()) return;
            }
            for (int64_t ci = 0; ci < walk.chunks; ++ci) {
                const int64_t qc = walk.start(ci, k);
                phase_a(k, qc, walk.size(qc), b0, b1, hc, hn, tile);
            }
            if (!reset_after) {
                for (int64_t ci = 0; ci < walk.chunks; ++ci) {
                    const int64_t qc = walk.start(ci, k);
                    phase_b(k, qc, walk.size(qc), b0, b1, hc, hn, tile);
                }
            }
            std::swap(hc, hn);
        }
    };
    const RunAloneScope alone(rnn_detail::units_split_alone(plan));  // the backoff: recurrent.h
    parallel_region(plan.threads, [&](int tid, int nth) {
        float tile[rnn_detail::kMaxBlockRows * kTileLd];
        // nth == 1: the region runs on the caller alone from the start (the backoff, started
        // inside a region, or the thread count lowered meanwhile): the one-thread path below.
        // The same bits either way.
        if (plan.mode == rnn_detail::SplitMode::units && nth > 1) {
            rnn_detail::run_units_split(
                tid, shares, work, attendance, error, chunks, per_step, h, h2.get(),
                [&](int64_t k, int64_t qc, int64_t nqc) { project(k, 0, batch, qc, qc + nqc); },
                [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc, float* hc, float* hn) {
                    if (ph == 0) {
                        phase_a(k, qc, nqc, 0, batch, hc, hn, tile);
                    } else {
                        phase_b(k, qc, nqc, 0, batch, hc, hn, tile);
                    }
                },
                [&](int64_t k, float* hc, float* hn) {
                    steps_alone(0, batch, k, hc, hn, true, tile);
                });
            return;
        }
        // Rows split (or one thread): this tid's rows, all units, no waiting for anyone.
        rnn_detail::Split s = plan;
        s.threads = nth;
        int64_t b0, b1;
        rnn_detail::thread_rows(s, tid, batch, &b0, &b1);
        steps_alone(b0, b1, 0, h, h2.get(), false, tile);  // projects them too
    });
    error.rethrow_if_failed();
    if (steps % 2 == 1) std::memcpy(h, h2.get(), sizeof(float) * bu);  // the last h' went there
}

}  // namespace fl
