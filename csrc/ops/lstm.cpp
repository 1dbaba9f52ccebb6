// LSTM driver (Keras LSTM, docs/semantics.md §6): gate blocks [i | f | c | o] of u columns each.
//
//   x    (B, T, F)  row-major contiguous (rows b*T + t of a (B*T, F) matrix)
//   w_in           the kernel (F, 4u) packed by pack_gates, with the bias (4u,) folded in
//   w_rec          the recurrent kernel (u, 4u) packed by pack_gates, no bias
//   h0, c0 (B, u)  initial state;  mask (B, T) uint8 (0 = masked) or nullptr
//   out  (B, T, u) if return_sequences (processing order), else (B, u)
//   h, c (B, u)    final state
//
// Both kernels are gate-interleaved (fastlayers/ops.h, PackedGates): unit block q (16 units)
// is one 64-column group [i f g o], N' = 64*ceil(u/16) columns in all.
//
// Work: the input projection xw = x · W + b, GEMMs over many steps at a time: the whole sequence
// (B*T, N'), or time chunks of tc steps (B, tc, N') that a thread projects for its rows just
// before their steps, so that xw stays in L2 (recurrent.h, StepChunks; the same bits either way).
// Per step, for each register block of rows (<= 6, <= 12 with the AVX-512 kernel:
// recurrent.h block_rows) and group of <= 4 unit blocks, one micro-kernel call continues the
// FMA chains of xw[b, t] in place: z = xw[b, t] + h · R (chains start from the stored xw, so
// no separate h · R buffer and no add pass); the gate math of
// those rows and units follows at once, on the tile still in L1: i, f, o = σ(z), g = act(z),
// c = f*c + i*g, h' = o*act(c) (for tanh / sigmoid one fused kernel, KernelTable::lstm_gates,
// else the act kernels gate by gate - the same bits). h is double-buffered (h' of step t must
// not overwrite the h that other unit blocks still read). Masked rows skip the gate math: state
// kept, output repeats the last emitted one (zeros before the first unmasked step, the Keras
// torch/TF-backend rule).
//
// Threads: recurrent.h (rows / units / one, run by rnn_detail::run_steps; the units split claims
// its step blocks through fl::SharedPhases). All scratch is allocated once per call.
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

// lstm_cell_forward reads the kernels in place up to this batch, and packs them above it.
constexpr int64_t kCellInPlaceMaxBatch = 32;

// Gate math of one row's unit block: z (64) = pre-activations [i f g o] of 16 units (used as
// scratch); c and h_new hold the nv <= 16 valid units.
inline void lstm_unit_block(float* z, float* c, float* h_new, int64_t nv, ActFn fa, ActFn fr) {
    fr(z, 2 * kUnitBlock);              // i, f
    fa(z + 2 * kUnitBlock, kUnitBlock);  // g
    fr(z + 3 * kUnitBlock, kUnitBlock);  // o
    const float* gi = z;
    const float* gf = z + kUnitBlock;
    const float* gg = z + 2 * kUnitBlock;
    const float* go = z + 3 * kUnitBlock;
    float ac[kUnitBlock];
    for (int64_t j = 0; j < nv; ++j) {
        c[j] = gf[j] * c[j] + gi[j] * gg[j];
        ac[j] = c[j];
    }
    fa(ac, nv);
    for (int64_t j = 0; j < nv; ++j) h_new[j] = go[j] * ac[j];
}

// One step of lstm_cell_forward (see there), on the calling thread.
void lstm_cell_step(const float* x, int64_t batch, int64_t features, int64_t u,
                    const float* kernel, const float* recurrent_kernel, const float* bias,
                    const float* h0, const float* c0, Act act, Act recurrent_act, float* h,
                    float* c) {
    const KernelTable& kt = kernels();
    const ActFn fa = kt.act[static_cast<int>(act)];
    const ActFn fr = kt.act[static_cast<int>(recurrent_act)];
    auto* const fused =
        act == Act::tanh && recurrent_act == Act::sigmoid ? kt.lstm_gates : nullptr;
    const int64_t n = 4 * u;
    const int64_t nq = rnn_detail::unit_blocks(u);
    const int64_t gw = 4 * kUnitBlock;
    // z (B, 4u) in Keras order: the chains bias + x · W, continued by h · R, exactly as
    // lstm_forward's projection then recurrent step.
    AlignedFloats z = alloc_aligned_floats(batch * n + nq * gw);
    float* zk = z.get();
    float* zi = zk + batch * n;  // one row regrouped per 16-unit block [i f g o] (its gate code)
    kt.gemm_rowb(batch, n, features, x, features, kernel, n, bias, 0, zk, n);
    kt.gemm_rowb(batch, n, u, h0, u, recurrent_kernel, n, nullptr, 1, zk, n);
    if (c != c0) std::memcpy(c, c0, sizeof(float) * batch * u);
    for (int64_t b = 0; b < batch; ++b) {
        const float* zr = zk + b * n;
        for (int64_t q = 0; q < nq; ++q) {
            const int64_t nv = std::min(kUnitBlock, u - q * kUnitBlock);
            for (int g = 0; g < 4; ++g) {
                float* dst = zi + q * gw + g * kUnitBlock;
                std::memcpy(dst, zr + g * u + q * kUnitBlock, sizeof(float) * nv);
                std::fill(dst + nv, dst + kUnitBlock, 0.0f);
            }
        }
        // h may alias h0, whose row b was read by the second GEMM above already.
        if (fused) {
            fused(u, zi, c + b * u, h + b * u);
        } else {
            for (int64_t q = 0; q < nq; ++q) {
                const int64_t o = q * kUnitBlock;
                lstm_unit_block(zi + q * gw, c + b * u + o, h + b * u + o,
                                std::min(kUnitBlock, u - o), fa, fr);
            }
        }
    }
}

}  // namespace

void lstm_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                  const PackedGates& w_in, const PackedGates& w_rec, const float* h0,
                  const float* c0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                  Act act, Act recurrent_act, float* out, float* h, float* c) {
    const int64_t u = w_rec.units;
    if (w_rec.gates != 4 || w_in.gates != 4 || w_in.units != u || w_rec.w.k() != u ||
        w_in.w.k() != features) {
        throw rnn_detail::packed_mismatch("lstm_forward", w_in, w_rec, features);
    }
    if (batch <= 0 || u <= 0) return;
    const int64_t bu = batch * u;
    if (h != h0) std::memcpy(h, h0, sizeof(float) * bu);
    if (c != c0) std::memcpy(c, c0, sizeof(float) * bu);
    AlignedFloats emitted_buf;
    float* const emitted = rnn_detail::emitted_outputs(out, bu, return_sequences, &emitted_buf);
    if (steps <= 0) return;

    const KernelTable& kt = kernels();
    const ActFn fa = kt.act[static_cast<int>(act)];
    const ActFn fr = kt.act[static_cast<int>(recurrent_act)];
    // Keras's default activations: one fused kernel per row and call (same bits).
    auto* const fused =
        act == Act::tanh && recurrent_act == Act::sigmoid ? kt.lstm_gates : nullptr;
    const int64_t np = w_rec.w.n();  // N' = 64 * unit blocks
    const int64_t gw = 4 * kUnitBlock;  // columns of one unit block
    const rnn_detail::Sequence seq(x, batch, steps, features, w_in, 4 * u * u, go_backwards);
    const rnn_detail::StepChunks& chunks = seq.chunks;
    float* xwp = seq.xw.get();
    const float* rec = w_rec.w.data();
    const int64_t ps = w_rec.w.panel_stride();
    const int64_t ldz = chunks.tc * np;  // between batch rows of xw at a fixed t

    // Step k of rows [r0, r1) and unit blocks [qc, qc + nqc) (rnn_detail::run_steps): reads hc
    // (every unit of those rows), writes those units of c, hn, emitted and out only.
    auto step_block = [&](int64_t k, int64_t, int64_t qc, int64_t nqc, int64_t r0, int64_t r1,
                          const float* hc, float* hn, float*) {
        const int64_t t = go_backwards ? steps - 1 - k : k;
        const int64_t tx = t - chunks.t_lo(k);  // t's row in the chunk
        for (int64_t rb = r0, mr = 0; rb < r1; rb += mr) {
            mr = rnn_detail::block_rows(r1 - rb, kt.gemm_mr);
            float* z = xwp + (rb * chunks.tc + tx) * np + qc * gw;
            // z (mr, 64*nqc) += h[rb : rb+mr] · R[:, unit blocks qc ...]
            kt.gemm(mr, nqc * gw, u, hc + rb * u, u, 1, rec + 4 * qc * ps, ps, nullptr, 1, z,
                    ldz);
            // This call's units [qc*16, qc*16 + nu) of each row.
            const int64_t nu = std::min(nqc * kUnitBlock, u - qc * kUnitBlock);
            for (int64_t b = rb; b < rb + mr; ++b) {
                const int64_t j0 = b * u + qc * kUnitBlock;
                float* zr = z + (b - rb) * ldz;
                if (mask == nullptr || mask[b * steps + t] != 0) {
                    if (fused) {
                        fused(nu, zr, c + j0, hn + j0);
                    } else {
                        for (int64_t q = qc; q < qc + nqc; ++q) {
                            const int64_t o = (q - qc) * kUnitBlock;
                            lstm_unit_block(zr + (q - qc) * gw, c + j0 + o, hn + j0 + o,
                                            std::min(kUnitBlock, nu - o), fa, fr);
                        }
                    }
                    std::memcpy(emitted + j0, hn + j0, sizeof(float) * nu);
                } else {
                    std::memcpy(hn + j0, hc + j0, sizeof(float) * nu);
                }
                if (return_sequences) {
                    std::memcpy(out + (b * steps + k) * u + qc * kUnitBlock, emitted + j0,
                                sizeof(float) * nu);
                }
            }
        }
    };

    seq.run(batch, 1, h, step_block);
}

void lstm_cell_forward(const float* x, int64_t batch, int64_t features, int64_t u,
                       const float* kernel, const float* recurrent_kernel, const float* bias,
                       const float* h0, const float* c0, Act act, Act recurrent_act, float* h,
                       float* c) {
    if (batch <= 0 || u <= 0) return;
    if (batch > kCellInPlaceMaxBatch) {
        // Many rows: packing the kernels pays for itself (the in-place kernel re-reads its C
        // block per band of 8 kernel rows: B64 F256 U256 took 1.9 ms against 1.0 ms packed).
        const PackedGates w_in = pack_gates(kernel, features, u, 4, bias);
        const PackedGates w_rec = pack_gates(recurrent_kernel, u, u, 4, nullptr);
        AlignedFloats out = alloc_aligned_floats(batch * u);
        lstm_forward(x, batch, 1, features, w_in, w_rec, h0, c0, nullptr, false, false, act,
                     recurrent_act, out.get(), h, c);
        return;
    }
    // One task of parallel_for, on the calling thread: it runs with flush-to-zero like every
    // other kernel call (subnormals would otherwise give other bits than lstm_forward).
    parallel_for(1, 1, [&](int64_t, int64_t) {
        lstm_cell_step(x, batch, features, u, kernel, recurrent_kernel, bias, h0, c0, act,
                       recurrent_act, h, c);
    });
}

}  // namespace fl
