// The C++ API of the fastlayers ops (drivers in csrc/ops/).
//
// Drivers take raw pointers to float32 data plus sizes, validate nothing the Python layer
// already validated, thread over independent outputs with parallel_for and call the
// micro-kernels of the active ISA through kernels().
#pragma once

#include <cstdint>

namespace fl {

// Softmax over the last axis.
// x (rows, n) row-major, contiguous; y (rows, n) row-major, contiguous; x == y is allowed.
// Same semantics as NumPy float32 `e = exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, ...)`
// for inf/NaN inputs (a row containing NaN or +inf, or made only of -inf, becomes all NaN).
// rows * n == 0 is a no-op.
void softmax_lastdim(const float* x, float* y, int64_t rows, int64_t n);

}  // namespace fl
