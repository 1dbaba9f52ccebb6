// Internal to the core: the table of micro-kernels used by the drivers (csrc/ops/, csrc/gemm/).
//
// The table is filled once, from active_isa(), on first use; drivers call through it and never
// name an ISA. Not part of the C++ API (csrc/include/fastlayers/) and never included by the
// Python bindings: what they need from it has a function of its own there (e.g. act_kernel in
// fastlayers/activations.h). Tests that want a specific ISA call the per-ISA functions declared
// in csrc/ukernels/ukernels.h directly.
#pragma once

#include <cstdint>

#include "fastlayers/activations.h"
#include "fastlayers/runtime.h"

struct FlDwRow;  // csrc/ukernels/ukernels.h: a depthwise row segment's arguments

namespace fl {

struct KernelTable {
    Isa isa;

    // Row-wise numerically stable softmax: for each of `rows` rows of n contiguous floats,
    // y = exp(x - max(x)) / sum(exp(x - max(x))). Row r starts at x + r*ldx and y + r*ldy
    // (ldx, ldy >= n); nothing outside [0, n) of a row is read or written. x == y is allowed.
    void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                         int64_t ldy);

    // Attention / masked-softmax row steps (fl_score_prep_<isa>, fl_row_max_<isa>,
    // fl_exp_shift_sum_<isa> in ukernels.h): scale and mask a score row and return its max;
    // the max of a row; exp(x * scale - m) in place, returning the sum.
    float (*score_prep)(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                        float masked, int subtract);
    float (*row_max)(const float* x, int64_t n);
    float (*exp_shift_sum)(float* x, int64_t n, float scale, float m);

    // y[i] = exp(x[i]) for i in [0, n); x == y is allowed. Results below FLT_MIN flush to 0.
    void (*vexp)(const float* x, float* y, int64_t n);

    // GEMM micro-kernel: C (m x n) = init + A (m x k) * B (k x n), B in packed 16-wide panels,
    // one FMA chain per element (contract: fl_gemm_f32_<isa> in csrc/ukernels/ukernels.h).
    // Drivers use it through csrc/gemm/ (fastlayers/gemm.h).
    void (*gemm)(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                 const float* b, int64_t b_panel_stride, const float* bias, int load_c, float* c,
                 int64_t ldc);
    // Rows per register block of gemm: the GEMM driver (csrc/gemm/gemm.cpp) hands the kernel
    // blocks of up to this many rows (and packs A in micro-panels of that height). 6 for the
    // scalar, AVX2 and NEON kernels, 14 for AVX-512 (14 x 32 tiles). The kernel accepts any m;
    // this only decides the tile heights the driver's blocks map to.
    int64_t gemm_mr;

    // GEMM with a row-major B read in place (no packing), for a few rows and a B used once:
    // the chains of gemm (fl_gemm_rowb_f32_<isa>, ukernels.h). Used by fl::gemm for few rows
    // (functional dense, matmul, multi-head attention projections) and lstm_cell_forward.
    void (*gemm_rowb)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                      const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                      int64_t ldc);

    // Transposing pack of one 16-wide B panel: dst[p*16 + i] = src[i*ld + p] for i < w (0
    // for w <= i < 16), p < kc (fl_pack_t16_<isa>, ukernels.h). Used by pack_b_panel for
    // transposed operands (K^T in attention).
    void (*pack_t16)(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst);

    // Depthwise conv (multiplier 1): y[p*ldy + c] = bias[c] + sum over t of rows[p*taps + t][c]
    // * k[t*ch + c], one FMA chain per element in tap order (fl_dwconv_f32_<isa>, ukernels.h).
    void (*dwconv)(int64_t m, int64_t ch, int64_t taps, const float* const* rows, const float* k,
                   const float* bias, float* y, int64_t ldy);

    // Depthwise conv (multiplier 1) along a segment of an output row, read straight from the
    // input rows: y[o*ldy + c] = bias[c] + sum over the taps (a, b) of x(a, col0 + o*sw +
    // b*dw)[c] * k[(a*kw + b)*ldk + c], one FMA chain per element in tap order, columns outside
    // the input reading as 0 (fl_dwconv_row_f32_<isa>, FlDwRow, ukernels.h).
    void (*dwconv_row)(const FlDwRow* p);
    // The depthwise driver runs dwconv_row for images of at most this many channels (at most
    // 64 when the column stride is above 1), dwconv above (docs/performance.md §5: a pixel's
    // channels past a few cache lines make the row kernel's passes over them slower than the
    // per-pixel kernel's).
    int64_t dwconv_row_max_ch;

    // Indirect GEMM (conv): C (m x n) = init + A · B with row i of A given as ks chunks of kc
    // floats at a[i*ks + t], one FMA chain per element in (t, p) order - the chain of gemm on
    // the expanded patches (fl_igemm_f32_<isa>, ukernels.h). Used by csrc/ops/conv2d.cpp;
    // nullptr on NEON (no kernel there yet), where conv2d expands patches for gemm instead.
    void (*igemm)(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                  const float* b, int64_t b_panel_stride, const float* bias, float* c, int64_t ldc);
    // Row block of igemm's register tiles: the conv driver hands it pixel runs that are
    // multiples of this (6 on scalar and AVX2, 12 on AVX-512), so no run ends in a short tile.
    int64_t igemm_mr;
    // Columns of igemm's main register tile (16 on scalar and AVX2, 32 on AVX-512): the conv
    // driver's column blocks are multiples of it, so the kernel runs its main tile on them.
    int64_t igemm_nr;

    // Elementwise activations in place: act[id](y, n) sets y[i] = act(y[i]) for i in [0, n),
    // id = static_cast<int>(fl::Act) (activations.h); act[Act::linear] does nothing.
    void (*act[kNumActs])(float* y, int64_t n);
    // The same out of place: act_to[id](x, y, n) sets y[i] = act(x[i]) (the same bits);
    // nullptr where the ISA has none (NEON): copy, then act[id].
    void (*act_to[kNumActs])(const float* x, float* y, int64_t n) = {};

    // y[i] = sigmoid(x[i]) / tanh(x[i]) for i in [0, n) (LSTM/GRU gates); x == y is allowed.
    void (*vsigmoid)(const float* x, float* y, int64_t n);
    void (*vtanh)(const float* x, float* y, int64_t n);

    // Fused LSTM / GRU (reset_after) gate math for tanh / sigmoid on gate-interleaved blocks
    // (fl_lstm_gates_<isa>, fl_gru_gates_<isa>, contract in ukernels/vmath/vmath.h); bit for bit
    // the act kernels above applied gate by gate. nullptr where an ISA has none (NEON): the
    // drivers then use the act kernels.
    void (*lstm_gates)(int64_t n, const float* z, float* c, float* h);
    void (*gru_gates)(int64_t n, const float* g, const float* x, const float* hp, float* h);

    // Dot products of rows read in place: c[i*ldc + j] = (row i of a) . (row j of b) over k
    // elements, rows at a + i*lda and b + j*ldb, one fixed chain per result, the same on every
    // ISA (fl_dot_rows_f32_<isa>, ukernels.h). Used by the decode attention driver
    // (csrc/ops/attention_decode.cpp) for q . k over the keys in place.
    void (*dot_rows)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float* c, int64_t ldc);

    // Column sums in double and column maxima over rows read in place, the rows in order
    // (fl_col_sum_f64_<isa>, fl_col_max_f32_<isa>, ukernels.h): the global poolings, and
    // the adaptive max's fold.
    void (*col_sum_f64)(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc);
    void (*col_max_f32)(const float* x, int64_t rows, int64_t n, int64_t ld, float* m);
    // The mean of a window of rows x cols taps, each tap's channels summed in double, the rows
    // of a column, then the columns (fl_window_mean_f32_<isa>, ukernels.h): the adaptive average
    // poolings.
    void (*window_mean_f32)(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                            int64_t col_ld, int64_t n, double size, float* out);
    // The max and the float32 mean of a window of rows x cols taps, the taps in row-major
    // order (fl_window_max_f32_<isa>, fl_window_avg_f32_<isa>, ukernels.h): MaxPooling and
    // AveragePooling (csrc/ops/pooling.cpp). The avx512 table keeps the avx2 kernels.
    void (*window_max_f32)(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                           int64_t col_ld, int64_t n, float* out);
    void (*window_avg_f32)(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                           int64_t col_ld, int64_t n, float count, int padded, float* out);

    // A row's sums in double in one lane order, and the float32 passes of the normalizations
    // (fl_row_*_<isa>, ukernels.h): LayerNormalization, RMSNormalization, UnitNormalization
    // (csrc/ops/layer_norm.cpp).
    double (*row_sumsq_f64)(const float* x, int64_t n);
    double (*row_devsq_f64)(const float* x, int64_t n, float hi, float lo);
    void (*row_moments_f64)(const float* x, int64_t n, float s, double* out);
    void (*row_norm_f32)(const float* x, int64_t n, float hi, float lo, float f,
                         const float* gamma, const float* beta, float* y);
    void (*row_scale_f32)(const float* x, int64_t n, float f, const float* scale, float* y);
    // The smallest |x[j]| that is neither 0 nor NaN, +inf if none (LayerNormalization's
    // gamma_min).
    float (*row_min_magnitude)(const float* x, int64_t n);
};

const KernelTable& kernels();

}  // namespace fl
