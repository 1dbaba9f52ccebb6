// Internal: the table of micro-kernels used by the drivers (csrc/ops/).
//
// The table is filled once, from active_isa(), on first use; drivers call through it and never
// name an ISA. Tests that want a specific ISA call the per-ISA functions declared in
// csrc/ukernels/ukernels.h directly.
#pragma once

#include <cstdint>

#include "fastlayers/runtime.h"

namespace fl {

struct KernelTable {
    Isa isa;

    // Row-wise numerically stable softmax: for each of `rows` rows of n contiguous floats,
    // y = exp(x - max(x)) / sum(exp(x - max(x))). Row r starts at x + r*ldx and y + r*ldy
    // (ldx, ldy >= n); nothing outside [0, n) of a row is read or written. x == y is allowed.
    void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                         int64_t ldy);

    // y[i] = exp(x[i]) for i in [0, n); x == y is allowed. Results below FLT_MIN flush to 0.
    void (*vexp)(const float* x, float* y, int64_t n);
};

const KernelTable& kernels();

}  // namespace fl
