// fl::pack_gates: a recurrent layer's kernel packed with its gates interleaved per 16-unit
// block (layout in fastlayers/ops.h, PackedGates). Used for the kernel and the recurrent kernel
// of lstm_forward and gru_forward.
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "recurrent.h"

namespace fl {

PackedGates pack_gates(const float* kernel, int64_t k, int64_t units, int gates,
                       const float* bias_or_null) {
    if (k < 0 || units < 0 || gates < 1) {
        throw std::invalid_argument("pack_gates: bad sizes");
    }
    const int64_t nq = rnn_detail::unit_blocks(units);
    PackedGates p;
    p.units = units;
    p.gates = gates;
    p.w = PackedB(k, nq * gates * kGemmNR, bias_or_null != nullptr);  // zero-filled
    const int64_t ldk = gates * units;
    const int64_t ps = p.w.panel_stride();
    for (int64_t q = 0; q < nq; ++q) {
        const int64_t j0 = q * kGemmNR;
        const int64_t nc = std::min<int64_t>(kGemmNR, units - j0);
        for (int g = 0; g < gates; ++g) {
            const int64_t panel = q * gates + g;
            const int64_t col = g * units + j0;  // first kernel column of this panel
            if (k > 0) pack_b_panel(kernel + col, ldk, 1, k, nc, p.w.data() + panel * ps, ps);
            if (bias_or_null) {
                std::copy(bias_or_null + col, bias_or_null + col + nc,
                          p.w.bias() + panel * kGemmNR);
            }
        }
    }
    return p;
}

}  // namespace fl
