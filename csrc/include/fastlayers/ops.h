// The C++ API of the fastlayers ops (drivers in csrc/ops/).
//
// Drivers take raw pointers to float32 data plus sizes, validate nothing the Python layer
// already validated, thread over independent outputs with parallel_for and call the
// micro-kernels of the active ISA through kernels().
#pragma once

#include <cstdint>

#include "fastlayers/activations.h"

namespace fl {

// Softmax over the last axis.
// x (rows, n) row-major, contiguous; y (rows, n) row-major, contiguous; x == y is allowed.
// Same semantics as NumPy float32 `e = exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, ...)`
// for inf/NaN inputs (a row containing NaN or +inf, or made only of -inf, becomes all NaN).
// rows * n == 0 is a no-op.
void softmax_lastdim(const float* x, float* y, int64_t rows, int64_t n);

class PackedB;  // fastlayers/gemm.h

// Dense: y = act(x · W + b), W and b pre-packed by fl::pack_b from a Keras kernel (K, N).
// x (M, K) row-major contiguous; y (M, N) row-major contiguous, not overlapping x. act is an
// in-place elementwise activation (nullptr = linear). K != w.k(): std::invalid_argument.
// Bitwise identical results for any thread count and any M (fastlayers/gemm.h).
void dense_forward(const float* x, int64_t m, int64_t k, const PackedB& w, float* y,
                   void (*act)(float* y, int64_t n));

// Elementwise activation (activations.h): y (n) = act(x (n)); x == y is allowed. Threaded in
// chunks of >= 16k elements; the result does not depend on the thread count.
void activate(const float* x, float* y, int64_t n, Act act);

}  // namespace fl
