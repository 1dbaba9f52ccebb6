// The C++ API of the fastlayers ops (drivers in csrc/ops/).
//
// Drivers take raw pointers to float32 data plus sizes, validate nothing the Python layer
// already validated, thread over independent outputs with parallel_for and call the
// micro-kernels of the active ISA through the runtime's kernel table (csrc/runtime/dispatch.h).
#pragma once

#include <cstdint>

#include "fastlayers/activations.h"
#include "fastlayers/gemm.h"

namespace fl {

// Softmax over the last axis.
// x (rows, n) row-major, contiguous; y (rows, n) row-major, contiguous; x == y is allowed.
// Special values follow docs/semantics.md §15: a row holding a NaN is all NaN; otherwise, when
// its largest value m is +inf (or every value is -inf), the entries equal to m share the weight
// equally and the others get 0 (the limit), where NumPy's exp(x - max) would give NaN.
// limits = false: such rows are NaN, as PyTorch's softmax gives them (from_torch's models).
// rows * n == 0 is a no-op.
void softmax_lastdim(const float* x, float* y, int64_t rows, int64_t n, bool limits = true);

// Keras Softmax layer with a mask: keep (rows, n) contiguous bytes, nonzero = keep. Masked
// logits are -1e9 during the softmax and 0 in y, so a fully masked row is all zeros; special
// values among the kept entries as in softmax_lastdim. x == y is allowed. Bitwise identical for
// any thread count.
void softmax_masked_lastdim(const float* x, const uint8_t* keep, float* y, int64_t rows,
                            int64_t n);

// LayerNormalization over the last axis (Keras LayerNormalization, rms_scaling=False;
// csrc/ops/layer_norm.cpp). x (rows, n) and y (rows, n) row-major contiguous (x == y allowed);
// gamma, beta (n,) or nullptr. Per row, without FMA:
//   e[j] = x[j] - x[0] in double; c = S(e) / n; mean = x[0] + c, held as two floats hi + lo;
//   var = S(e^2) / n - c^2, or, when not c^2 <= 64 var (x[0] an outlier, inf or NaN), S(d^2) / n
//   with d[j] = (x[j] - hi) - lo (float32);  inv = 1 / sqrt(var + epsilon) in double (epsilon
//   a double), rounded to float32;  y[j] = ((x[j] - hi) - lo) * (inv * gamma[j]) + beta[j]
// in float32, where S is the rownorm kernels' row sum in double: element j into lane j % 32 in
// increasing j, then the lanes as a fixed tree (l += l + 16, + 8, + 4, + 2, + 1). A row whose
// inv, or inv * gamma[j], is below FLT_MIN multiplies in double instead (FTZ would flush the
// factor). Identical bits on every ISA and for any thread count. rows * n == 0 is a no-op.
void layer_norm_lastdim(const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t n, double epsilon);

// RMSNormalization over the last axis (Keras RMSNormalization, PyTorch RMSNorm;
// csrc/ops/layer_norm.cpp): x, y (rows, n) row-major contiguous (x == y allowed), scale (n,) or
// nullptr. Per row: S = the sum of x[j]^2 in double (the rownorm kernels: element j into lane
// j % 32 in increasing j, the lanes as a fixed tree), inv = (float)(1 / sqrt(S / n +
// (double)epsilon)), y[j] = (x[j] * inv) * scale[j] in float32; a row whose inv is below
// FLT_MIN multiplies x by the double inv instead (FTZ would flush the denormal factor).
// Identical bits on every ISA and for any thread count. rows * n == 0 is a no-op.
void rms_norm_lastdim(const float* x, const float* scale, float* y, int64_t rows, int64_t n,
                      float epsilon);

// A per-channel affine map over the last axis, then an activation (an inference
// BatchNormalization as x * scale + shift, csrc/ops/layer_norm.cpp): x, y (rows, n) row-major
// contiguous (x == y allowed), scale and shift (n,). y[j] = act(x[j] * scale[j] + shift[j]), the
// product rounded to float32, then the sum (no FMA: NumPy's x * scale + shift, bit for bit, but
// for subnormal inputs and results, which the pool's FTZ/DAZ flush to zero); act
// nullptr for none (applied to each finished block of rows). Identical bits on every ISA and for
// any thread count. rows * n == 0 is a no-op.
void channel_affine_lastdim(const float* x, const float* scale, const float* shift, float* y,
                            int64_t rows, int64_t n, ActFn act);

// UnitNormalization over the last axis (Keras UnitNormalization): as rms_norm_lastdim with
// inv = (float)min(1 / sqrt(S), 1e12) and no scale, so a zero row stays zero.
void unit_norm_lastdim(const float* x, float* y, int64_t rows, int64_t n);

// GroupNormalization of NHWC data (csrc/ops/group_norm.cpp): x and y (n, pixels, c) row-major
// contiguous (not the same memory); groups divides c; gamma, beta (c,) or nullptr. Per sample
// and group g of the c / groups consecutive channels: mean and biased variance over its pixels
// and channels (two passes; double sums per chunk of 256 pixels, merged in a fixed order),
// then y = (x - mean) * (inv * gamma[ch]) + beta[ch], inv = 1 / sqrt(var + epsilon),
// in float32 without FMA. Plain C++ compiled once: identical bits on every ISA and for any
// thread count. n * pixels * c == 0 is a no-op.
void group_norm_nhwc(const float* x, const float* gamma, const float* beta, float* y,
                     int64_t n, int64_t pixels, int64_t c, int64_t groups, double epsilon);

// Adaptive max or average pooling of NHWC x (n, h, w, c) to y (n, oh, ow, c), row-major
// contiguous (csrc/ops/pooling.cpp): output (i, j) pools rows [floor(i h / oh),
// ceil((i + 1) h / oh)) and columns [floor(j w / ow), ceil((j + 1) w / ow)). Average: the
// sum of each column's rows, then of those, in double, divided by the window's size and
// rounded once (the per-ISA window kernel, KernelTable::window_mean_f32); max: NaN
// propagates (the column kernel, KernelTable::col_max_f32). Identical bits on every ISA and
// thread count, and the NumPy path's bits, denormals aside (FTZ/DAZ here) and a NaN's sign
// bit where NaNs of both signs meet in a sum. oh, ow >= 1 when h, w >= 1; an empty x or y
// is a no-op.
void adaptive_pool2d_nhwc(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                          int64_t oh, int64_t ow, bool average, float* y);

// Global max or average pooling of channels-last x (n, pixels, c) to y (n, c), row-major
// contiguous (csrc/ops/pooling.cpp; Keras GlobalMax/AveragePooling1D/2D/3D): per channel, the
// pixels in order. Average: 0 + x[0] + x[1] + ... in double, divided by `pixels` and rounded
// once; max: y = x[0], then y = (y > t || y is NaN) ? y : t (NumPy's maximum). NumPy's float64
// sum and maximum.reduce over that axis do the same (one channel: accumulate): the NumPy
// path's bits, denormals aside (FTZ/DAZ here) and a NaN's sign bit where NaNs of both signs
// meet in a sum, on every ISA (KernelTable::col_sum_f64, col_max_f32) and thread count.
// pixels >= 1; n * c == 0 is a no-op.
void global_pool_nhwc(const float* x, int64_t n, int64_t pixels, int64_t c, bool average,
                      float* y);

// Resampling along one axis (csrc/ops/resize.cpp; Keras Resizing, bilinear UpSampling2D):
// x (outer, n_in, inner) -> y (outer, n_out, inner), row-major contiguous, not overlapping.
// Output position j takes count[j] (1 <= count[j] <= taps) taps idx[j * taps + k] in
// [0, n_in) with weights w[j * taps + k]:
//   y = x[idx0] * w0; y = y + x[idxk] * wk for 0 < k < count[j]; y = y + 0 if count[j] < taps
// in float32 without FMA, every counted tap included (weight 0 too: inf * 0 = NaN). Plain C++
// compiled once: identical bits on every ISA and for any thread count. The caller checks the
// indices and counts (the binding does). An empty x or y is a no-op.
void resample_axis(const float* x, float* y, int64_t outer, int64_t n_in, int64_t inner,
                   int64_t n_out, int64_t taps, const int64_t* idx, const float* w,
                   const int64_t* count);

// dst (batch, cols, rows) = src (batch, rows, cols) transposed item by item (csrc/ops/
// transpose.cpp): the NCHW <-> NHWC copies at a converted model's edges. Row-major contiguous,
// not overlapping; the same bytes on every ISA and thread count. Empty: a no-op.
void transpose_batched(const float* src, float* dst, int64_t batch, int64_t rows, int64_t cols);

// Pooling windows over an NHWC input (csrc/ops/pooling.cpp): input (n, h, w, c), window
// (ph, pw), strides (sh, sw), padding before the first row / column (top, left), output
// (n, oh, ow, c). Window (i, j) covers input rows i * sh - top + [0, ph) and columns
// j * sw - left + [0, pw); positions outside the input are padding.
struct PoolGeometry {
    int64_t n, h, w, c;
    int64_t ph, pw, sh, sw, top, left;
    int64_t oh, ow;
};

// Max pooling (average = false): padding is -inf, NaN propagates. Average pooling: the mean of
// the input pixels a window covers (padding not counted). x (n, h, w, c) and y (n, oh, ow, c)
// row-major contiguous, not overlapping. Taps are folded in row-major window order exactly as
// fastlayers/_numpy/pooling.py does, so both paths give the same bits (denormal inputs aside:
// FTZ/DAZ; and a NaN's sign where NaNs of both signs meet in an average); the per-ISA window
// kernels (KernelTable::window_max_f32 / window_avg_f32), the same bits on every ISA and for
// any thread count.
void pool2d_nhwc(const float* x, const PoolGeometry& g, bool average, float* y);

// Dense: y = act(x · W + b), W and b pre-packed by fl::pack_b from a Keras kernel (K, N).
// x (M, K) row-major contiguous; y (M, N) row-major contiguous, not overlapping x. act is an
// in-place elementwise activation (nullptr = linear). K != w.k(): std::invalid_argument.
// Bitwise identical results for any thread count and any M (fastlayers/gemm.h).
void dense_forward(const float* x, int64_t m, int64_t k, const PackedB& w, float* y,
                   void (*act)(float* y, int64_t n));

// Elementwise activation (activations.h): y (n) = act(x (n)); x == y is allowed. Threaded in
// chunks of >= 16k elements; the result does not depend on the thread count.
void activate(const float* x, float* y, int64_t n, Act act);

// A recurrent kernel packed for lstm_forward / gru_forward / simple_rnn_forward with its gates
// interleaved.
// The Keras kernel (K, G*u) holds G gate blocks of u columns each; packed, unit block q
// (units 16q .. 16q+15) is G consecutive 16-wide panels, gate 0 first, so that one G*16-column
// tile of a step's GEMM carries every gate of 16 units and the gate math runs on it while it
// is hot, and a thread that owns some unit blocks reads a contiguous slice of the weights.
// Column (g, j) of the kernel is packed column (j/16)*16*G + 16*g + j%16 of w; the columns of
// units >= u are zero (weights and bias), w.n() = G*16*ceil(u/16).
struct PackedGates {
    PackedB w;
    int64_t units = 0;
    int gates = 0;
};

// kernel (k, gates*units) row-major, contiguous; bias (gates*units,) or nullptr.
PackedGates pack_gates(const float* kernel, int64_t k, int64_t units, int gates,
                       const float* bias_or_null);

// LSTM over a sequence (Keras LSTM, gate blocks [i | f | c | o]; csrc/ops/lstm.cpp).
// x (B, T, F) contiguous; w_in = pack_gates(kernel (F, 4u), u, 4, bias (4u,) or none); w_rec =
// pack_gates(recurrent_kernel (u, 4u), u, 4, no bias); h0, c0 (B, u); mask (B, T) (0 = masked
// step) or nullptr. Writes out (B, T, u) in processing order if return_sequences, else (B, u),
// and the final h, c (B, u) (h == h0 / c == c0 allowed). Masked steps keep the state and
// repeat the last emitted output (zeros before the first unmasked step). Mismatched packed
// shapes: std::invalid_argument. B == 0 does nothing. Bitwise identical for any thread count.
// The input projection may run in time chunks between steps, so its std::bad_alloc (the GEMM's
// packing buffer) may come after some steps: then out, h and c hold partial results (h0 / c0
// too where they alias h / c).
void lstm_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                  const PackedGates& w_in, const PackedGates& w_rec, const float* h0,
                  const float* c0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                  Act act, Act recurrent_act, float* out, float* h, float* c);

// Test hook: step >= 0 makes every LSTM/GRU/SimpleRNN units split (batch too small to split by
// rows) run as if its workers never came: they return at once, and the caller computes the
// shares itself until step `step`, then the rest in the one-thread walk (csrc/ops/recurrent.h,
// Attendance). -1 (the default) turns it off. Bits are the same either way.
void units_split_close_at_for_tests(int64_t step);
// Test hook: step >= 0 makes the caller of every units split act at step `step` as after a
// stalled phase, after sleeping delay_us microseconds (its workers run on meanwhile, and may
// finish steps): it calls its workers onto its CPU and asks them to leave; they return before
// their next step, and the caller closes the split at the first step boundary where none is
// left. -1 (the default) turns it off.
void units_split_leave_at_for_tests(int64_t step, int64_t delay_us = 0);
// Test hook: step >= 0 makes the input projection of lstm_forward / gru_forward /
// simple_rnn_forward for the time chunk that holds processing step `step` (k = T-1-t for
// go_backwards) throw std::bad_alloc (as its GEMM would when it cannot allocate its packing
// buffer), in every split and on whichever thread projects it. lstm_cell_forward reaches it
// above 32 rows only (below, it reads its weights in place, without a projection). -1 (the
// default) turns it off.
void recurrent_projection_fail_at_for_tests(int64_t step);
// Test hook: how many LSTM/GRU/SimpleRNN time-chunk projections so far were cut into slices of
// unit blocks because a units split runs on one thread (csrc/ops/recurrent.h, InputProjection).
int64_t recurrent_sliced_projections_for_tests();
// How many units splits have been closed so far (by the hooks, an absent worker or a stall).
int64_t units_split_closes_for_tests();

// One LSTM step with the kernels as given (Keras LSTMCell; csrc/ops/lstm.cpp): x (B, F),
// kernel (F, 4u) and recurrent_kernel (u, 4u) row-major contiguous, bias (4u,) or nullptr,
// h0, c0 (B, u). Writes h, c (B, u) (h == h0 / c == c0 allowed). Up to 32 rows the kernels are
// read in place (KernelTable::gemm_rowb, one thread): a single step uses them once; more rows
// pack them and run lstm_forward. Either way bitwise the result of lstm_forward with T = 1 on
// the packed kernels. B == 0 or u == 0 does nothing.
void lstm_cell_forward(const float* x, int64_t batch, int64_t features, int64_t u,
                       const float* kernel, const float* recurrent_kernel, const float* bias,
                       const float* h0, const float* c0, Act act, Act recurrent_act, float* h,
                       float* c);

// GRU over a sequence (Keras GRU, gate blocks [z | r | h]; csrc/ops/gru.cpp). w_in =
// pack_gates(kernel (F, 3u), u, 3, input bias). reset_after: w_rec = pack_gates(
// recurrent_kernel (u, 3u), u, 3, recurrent bias), w_rec_h = nullptr; else w_rec =
// pack_gates(recurrent_kernel[:, :2u], u, 2, none) and *w_rec_h = pack_b(recurrent_kernel[:,
// 2u:]) (plain panels: panel q is unit block q), without bias. Other arguments as for
// lstm_forward (a single state h).
void gru_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                 const PackedGates& w_in, const PackedGates& w_rec, const PackedB* w_rec_h,
                 const float* h0, const uint8_t* mask, bool return_sequences, bool go_backwards,
                 bool reset_after, Act act, Act recurrent_act, float* out, float* h);

// SimpleRNN over a sequence (Keras SimpleRNN, PyTorch nn.RNN; csrc/ops/simple_rnn.cpp):
// h_t = act(x_t · kernel + bias + h_{t-1} · recurrent_kernel). x (B, T, F) contiguous; w_in =
// pack_gates(kernel (F, u), u, 1, bias (u,) or none); w_rec = pack_gates(recurrent_kernel
// (u, u), u, 1, no bias); h0 (B, u); mask as for lstm_forward. Writes out (B, T, u) in
// processing order if return_sequences, else (B, u), and the final h (B, u) (h == h0 allowed).
// Masked steps, errors, threads and bits as for lstm_forward.
void simple_rnn_forward(const float* x, int64_t batch, int64_t steps, int64_t features,
                        const PackedGates& w_in, const PackedGates& w_rec, const float* h0,
                        const uint8_t* mask, bool return_sequences, bool go_backwards, Act act,
                        float* out, float* h);

// ---------------------------------------------------------------------------- attention

// A rank-4 view (batch, head, row, column) of float32 data whose last dim is contiguous:
// element (b, h, t, j) is at data[b*sb + (h / group)*sh + t*st + j]. Strides are in elements
// and may be 0 (broadcast) for b and h. `group` > 1 shares one stored head among `group`
// consecutive heads: grouped-query attention's k and v, G stored heads for H = G * group query
// heads (docs/semantics.md §11), read in place instead of repeated.
template <class T>
struct Rows4 {
    T* data = nullptr;
    int64_t sb = 0, sh = 0, st = 0;
    int64_t group = 1;
    T* at(int64_t b, int64_t h) const {
        return data + b * sb + (group == 1 ? h : h / group) * sh;
    }
};

// How masked scores are treated (docs/semantics.md §9-§12, §14).
enum class MaskRule {
    // keras.ops.dot_product_attention (sdpa, MHA without scores): masked logits are
    // -0.7 * FLT_MAX, so they get weight 0 and a fully masked row is uniform over all S keys.
    fused = 0,
    // Keras Attention / AdditiveAttention: 1e9 is subtracted (in float32) from masked scores.
    subtract = 1,
    // Keras Softmax layer (MHA with scores): masked logits are -1e9 and masked weights are
    // then set to 0, so a fully masked row has all-zero weights and output.
    softmax_layer = 2,
};

// The float32 value of -0.7 * FLT_MAX (the fused rule's masked logit).
constexpr float kFusedMaskValue = static_cast<float>(-0.7 * 3.4028234663852886e38);

struct AttentionArgs {
    int64_t batch = 0, heads = 0;  // the output has batch x heads independent problems
    int64_t t = 0, s = 0;          // query rows, key rows (s >= 1)
    int64_t d = 0, dv = 0;         // query/key width, value width
    // (b, h, t, d), (b, h, s, d), (b, h, s, dv); k and v may share heads (Rows4::group, the
    // same for both)
    Rows4<const float> q, k, v;
    Rows4<float> out;              // (b, h, t, dv); must not overlap the inputs
    // Optional: weights (batch*heads, t, s) contiguous, written if given (the output does not
    // change).
    float* weights = nullptr;
    // Optional keep-mask (b, h, t, s), nonzero = may attend; mask.data == nullptr: none.
    Rows4<const uint8_t> mask;
    bool causal = false;  // row t attends to keys s <= t (top-left aligned)
    MaskRule rule = MaskRule::fused;
    // Dot scores: scale * (q . k). Additive scores (additive = true):
    // post * sum_e w[e] * tanh(pre * (q[e] + k[e])), w = add_w or all ones; the logits are
    // then those scores times scale (the Python layer passes 1).
    bool additive = false;
    float scale = 1.0f, pre = 1.0f, post = 1.0f;
    const float* add_w = nullptr;
};

// out = softmax(scores masked per `rule`) · v per (batch, head); writes weights if requested.
// Bitwise identical for any thread count, and with or without weights. Extra memory per
// thread: one head's k and v packed (S x (D + Dv) floats, padded) and a score tile of at most
// 96 x 256 floats. Dot scores with T <= 8 (csrc/ops/attention_decode.cpp) read k and v in place
// instead: a T x 256 tile per thread and, for S > 256, batch*heads*ceil(S/256) partial rows of
// T x (Dv + 2) floats. Throws std::invalid_argument for a bad head group (k.group and v.group
// must be equal and divide heads; q, out and mask must have group 1).
void attention_forward(const AttentionArgs& args);

}  // namespace fl
