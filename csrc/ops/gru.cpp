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
// Threads: recurrent.h (rows / units / one, run by rnn_detail::run_steps); reset_before has two
// phases per step (phase 2 reads all of rh). Scratch is allocated once per call.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../runtime/dispatch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "recurrent.h"

namespace fl {

namespace {

using rnn_detail::kUnitBlock;

// Row stride of the h · R tile of a register block of rows (run_steps's per-thread scratch).
constexpr int64_t kTileLd = rnn_detail::kStepTileLd;

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
    const rnn_detail::Sequence seq(x, batch, steps, features, w_in, 3 * u * u, go_backwards);
    const rnn_detail::StepChunks& chunks = seq.chunks;
    AlignedFloats rh;  // (B, u), reset_before
    if (!reset_after) rh = alloc_aligned_floats(bu);
    float* xwp = seq.xw.get();
    float* rhp = rh.get();
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

    // reset_after: one phase per step; reset_before: phase 1 (phase_a) for every unit block,
    // then phase 2 (phase_b: it reads all of rh).
    seq.run(batch, reset_after ? 1 : 2, h,
            [&](int64_t k, int64_t ph, int64_t qc, int64_t nqc, int64_t r0, int64_t r1,
                const float* hc, float* hn, float* tile) {
                if (ph == 0) {
                    phase_a(k, qc, nqc, r0, r1, hc, hn, tile);
                } else {
                    phase_b(k, qc, nqc, r0, r1, hc, hn, tile);
                }
            });
}

}  // namespace fl
