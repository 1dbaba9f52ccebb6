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
    // Blocks of 16 kernel rows, every panel of a block before the next block: the rows are
    // read once, sequentially. (Panel by panel, each panel walked all k rows at a stride of
    // gates*units floats - a new 4 KiB page per row at 256 units - and packing the 1 MiB
    // recurrent kernel of an LSTM with 256 units took 3x longer.)
    constexpr int64_t kRows = 16;
    for (int64_t p0 = 0; p0 < k; p0 += kRows) {
        const int64_t rows = std::min(kRows, k - p0);
        for (int64_t q = 0; q < nq; ++q) {
            const int64_t j0 = q * kGemmNR;
            const int64_t nc = std::min<int64_t>(kGemmNR, units - j0);
            for (int g = 0; g < gates; ++g) {
                const int64_t panel = q * gates + g;
                const int64_t col = g * units + j0;  // first kernel column of this panel
                pack_b_panel(kernel + p0 * ldk + col, ldk, 1, rows, nc,
                             p.w.data() + panel * ps + p0 * kGemmNR, ps);
            }
        }
    }
    if (bias_or_null) {
        for (int64_t q = 0; q < nq; ++q) {
            const int64_t j0 = q * kGemmNR;
            const int64_t nc = std::min<int64_t>(kGemmNR, units - j0);
            for (int g = 0; g < gates; ++g) {
                const int64_t col = g * units + j0;
                std::copy(bias_or_null + col, bias_or_null + col + nc,
                          p.w.bias() + (q * gates + g) * kGemmNR);
            }
        }
    }
    return p;
}

}  // namespace fl
