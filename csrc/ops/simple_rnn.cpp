// SimpleRNN driver (Keras SimpleRNN, PyTorch nn.RNN; docs/semantics.md §26): one gate of u
// columns, h' = act(x_t · W + b + h · R).
//
//   x    (B, T, F)  row-major contiguous (rows b*T + t of a (B*T, F) matrix)
//   w_in           the kernel (F, u) packed by pack_gates (1 gate), with the bias (u,) folded in
//   w_rec          the recurrent kernel (u, u) packed by pack_gates (1 gate), no bias
//   h0 (B, u)      initial state;  mask (B, T) uint8 (0 = masked) or nullptr
//   out  (B, T, u) if return_sequences (processing order), else (B, u);  h (B, u) final state
//
// The LSTM's design with one gate (lstm.cpp): the input projection xw = x · W + b over the
// whole sequence or time chunks (recurrent.h, StepChunks); per step, per register block of rows
// and group of <= 4 unit blocks (16 units each), one micro-kernel call continues the FMA chains
// of xw[b, t] in place with h · R, and the activation runs on that tile while it is in L1.
// Each output is the FMA chain b, x[0] W[0], ..., x[F-1] W[F-1], h[0] R[0], ..., h[u-1] R[u-1]
// (the bias first; Keras adds it after x · W), then act: the same bits for any thread count
// and on every ISA (the act kernels are one algorithm everywhere). h is double-buffered.
// Masked rows keep h and repeat the last emitted output (zeros before the first unmasked
// step), as Keras does.
//
// Threads: recurrent.h (rows / units / one, run by rnn_detail::run_steps). Scratch is
// allocated once per call.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../runtime/dispatch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "recurrent.h"

namespace fl {

void simple_rnn_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                        const PackedGates& w_in, const PackedGates& w_rec, const float* h0,
                        const uint8_t* mask, bool return_sequences, bool go_backwards, Act act,
                        float* out, float* h) {
    const int64_t u = w_rec.units;
    if (w_rec.gates != 1 || w_in.gates != 1 || w_in.units != u || w_rec.w.k() != u ||
        w_in.w.k() != features) {
        throw rnn_detail::packed_mismatch("simple_rnn_forward", w_in, w_rec, features);
    }
    if (batch <= 0 || u <= 0) return;
    const int64_t bu = batch * u;
    if (h != h0) std::memcpy(h, h0, sizeof(float) * bu);
    AlignedFloats emitted_buf;
    float* const emitted = rnn_detail::emitted_outputs(out, bu, return_sequences, &emitted_buf);
    if (steps <= 0) return;

    using rnn_detail::kUnitBlock;
    const KernelTable& kt = kernels();
    const ActFn fa = kt.act[static_cast<int>(act)];
    const int64_t np = w_rec.w.n();  // N' = 16 * unit blocks
    const rnn_detail::Sequence seq(x, batch, steps, features, w_in, u * u, go_backwards);
    const rnn_detail::StepChunks& chunks = seq.chunks;
    float* xwp = seq.xw.get();
    const float* rec = w_rec.w.data();
    const int64_t ps = w_rec.w.panel_stride();
    const int64_t ldz = chunks.tc * np;  // between batch rows of xw at a fixed t

    // Step k of rows [r0, r1) and unit blocks [qc, qc + nqc) (rnn_detail::run_steps): reads hc
    // (every unit of those rows), writes those units of hn, emitted and out only.
    auto step_block = [&](int64_t k, int64_t, int64_t qc, int64_t nqc, int64_t r0, int64_t r1,
                          const float* hc, float* hn, float*) {
        const int64_t t = go_backwards ? steps - 1 - k : k;
        const int64_t tx = t - chunks.t_lo(k);  // t's row in the chunk
        // This call's units [qc*16, qc*16 + nu) of each row.
        const int64_t nu = std::min(nqc * kUnitBlock, u - qc * kUnitBlock);
        for (int64_t rb = r0, mr = 0; rb < r1; rb += mr) {
            mr = rnn_detail::block_rows(r1 - rb, kt.gemm_mr);
            float* z = xwp + (rb * chunks.tc + tx) * np + qc * kUnitBlock;
            // z (mr, 16*nqc) += h[rb : rb+mr] · R[:, unit blocks qc ...]
            kt.gemm(mr, nqc * kUnitBlock, u, hc + rb * u, u, 1, rec + qc * ps, ps, nullptr, 1,
                    z, ldz);
            for (int64_t b = rb; b < rb + mr; ++b) {
                const int64_t j0 = b * u + qc * kUnitBlock;
                float* zr = z + (b - rb) * ldz;
                if (mask == nullptr || mask[b * steps + t] != 0) {
                    fa(zr, nu);
                    std::memcpy(hn + j0, zr, sizeof(float) * nu);
                    std::memcpy(emitted + j0, zr, sizeof(float) * nu);
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

}  // namespace fl
