// fl::pack_gates: a recurrent layer's kernel packed with its gates interleaved per 16-unit
// block (layout in fastlayers/ops.h, PackedGates). Used for the kernel and the recurrent kernel
// of lstm_forward, gru_forward and simple_rnn_forward.
#include <algorithm>
#include <cstdint>
#include <cstring>
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
    // Row by row: each kernel row is read once, front to back, and its 16-column pieces go to
    // their panels. Walking the kernel panel by panel instead read a 64-byte piece from rows a
    // page apart at every step: packing the 8 MiB of a 512-unit LSTM's two kernels took about
    // twice as long (1.9-3.4 ms against 1.0-1.4 ms, alternating runs).
    for (int64_t r = 0; r < k; ++r) {
        const float* row = kernel + r * ldk;
        for (int64_t q = 0; q < nq; ++q) {
            const int64_t j0 = q * kGemmNR;
            const int64_t nc = std::min<int64_t>(kGemmNR, units - j0);
            for (int g = 0; g < gates; ++g) {
                float* dst = p.w.data() + (q * gates + g) * ps + r * kGemmNR;
                const float* src = row + g * units + j0;
                if (nc == kGemmNR) {
                    std::memcpy(dst, src, sizeof(float) * kGemmNR);  // constant size: inlined
                } else {
                    std::copy(src, src + nc, dst);  // columns nc..15 keep PackedB's zeros
                }
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

namespace rnn_detail {
std::atomic<int64_t>& close_at_for_tests() {
    static std::atomic<int64_t> step{-1};
    return step;
}
std::atomic<int64_t>& leave_at_for_tests() {
    static std::atomic<int64_t> step{-1};
    return step;
}
std::atomic<int64_t>& leave_delay_us_for_tests() {
    static std::atomic<int64_t> us{0};
    return us;
}
std::atomic<int64_t>& closes_for_tests() {
    static std::atomic<int64_t> closes{0};
    return closes;
}
std::atomic<int64_t>& projection_fail_at_for_tests() {
    static std::atomic<int64_t> step{-1};
    return step;
}
std::atomic<int64_t>& sliced_projections_for_tests() {
    static std::atomic<int64_t> n{0};
    return n;
}
}  // namespace rnn_detail

int64_t units_split_closes_for_tests() {
    return rnn_detail::closes_for_tests().load(std::memory_order_relaxed);
}

void units_split_close_at_for_tests(int64_t step) {
    rnn_detail::close_at_for_tests().store(step < 0 ? -1 : step, std::memory_order_relaxed);
}

int64_t recurrent_sliced_projections_for_tests() {
    return rnn_detail::sliced_projections_for_tests().load(std::memory_order_relaxed);
}

void recurrent_projection_fail_at_for_tests(int64_t step) {
    rnn_detail::projection_fail_at_for_tests().store(step < 0 ? -1 : step,
                                                     std::memory_order_relaxed);
}

void units_split_leave_at_for_tests(int64_t step, int64_t delay_us) {
    rnn_detail::leave_delay_us_for_tests().store(delay_us < 0 ? 0 : delay_us,
                                                 std::memory_order_relaxed);
    rnn_detail::leave_at_for_tests().store(step < 0 ? -1 : step, std::memory_order_relaxed);
}

}  // namespace fl
