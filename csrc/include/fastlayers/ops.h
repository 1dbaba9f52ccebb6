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

// LSTM over a sequence (Keras LSTM, gate blocks [i | f | c | o]; csrc/ops/lstm.cpp).
// x (B, T, F) contiguous; w_in = pack_b(kernel (F, 4u), bias (4u,) or none); w_rec =
// pack_b(recurrent_kernel (u, 4u), no bias); h0, c0 (B, u); mask (B, T) (0 = masked step) or
// nullptr. Writes out (B, T, u) in processing order if return_sequences, else (B, u), and the
// final h, c (B, u) (h == h0 / c == c0 allowed). Masked steps keep the state and repeat the
// last emitted output (zeros before the first unmasked step). Mismatched packed shapes:
// std::invalid_argument. B == 0 does nothing. Bitwise identical for any thread count.
void lstm_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                  const PackedB& w_in, const PackedB& w_rec, const float* h0, const float* c0,
                  const uint8_t* mask, bool return_sequences, bool go_backwards, Act act,
                  Act recurrent_act, float* out, float* h, float* c);

// GRU over a sequence (Keras GRU, gate blocks [z | r | h]; csrc/ops/gru.cpp). w_in =
// pack_b(kernel (F, 3u), input bias). reset_after: w_rec = pack_b(recurrent_kernel (u, 3u),
// recurrent bias), w_rec_h = nullptr; else w_rec = pack_b(recurrent_kernel[:, :2u]) and
// *w_rec_h = pack_b(recurrent_kernel[:, 2u:]), both without bias. Other arguments as for
// lstm_forward (a single state h).
void gru_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                 const PackedB& w_in, const PackedB& w_rec, const PackedB* w_rec_h,
                 const float* h0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                 bool reset_after, Act act, Act recurrent_act, float* out, float* h);

}  // namespace fl
