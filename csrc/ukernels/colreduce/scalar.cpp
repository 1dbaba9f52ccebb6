// colreduce/scalar.cpp: column sums in double and column maxima over rows read in place
// (fl_col_sum_f64_<isa>, fl_col_max_f32_<isa>; contract in csrc/ukernels/ukernels.h), for the
// global poolings and the adaptive max, and the window means of the adaptive average
// poolings (fl_window_mean_f32_<isa>), and the window maxima and float32 means of the plain
// Max/AveragePooling layers (fl_window_max_f32_<isa>, fl_window_avg_f32_<isa>; both drivers in
// csrc/ops/pooling.cpp).
//
// ISA: baseline (no extra flags). Selected by fl::kernels() (KernelTable::col_sum_f64,
// col_max_f32, window_mean_f32, window_max_f32, window_avg_f32) when no SIMD kernel can run (FASTLAYERS_ISA=scalar, and on
// NEON); also the readable reference of what the SIMD files compute: every column is its own
// chain, the rows in order, so a column's result does not depend on how the columns are cut
// into vectors.
#include "../ukernels.h"

void fl_col_sum_f64_scalar(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int64_t j = 0; j < n; ++j) acc[j] += (double)xr[j];
    }
}

void fl_col_max_f32_scalar(const float* x, int64_t rows, int64_t n, int64_t ld, float* m) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int64_t j = 0; j < n; ++j) {
            const float a = m[j], t = xr[j];
            m[j] = (a > t || a != a) ? a : t; /* NaN stays; a tie takes the row's value */
        }
    }
}

// Blocks of kMeanBlock channels: their column and window sums in locals, the taps in order.
static const int64_t kMeanBlock = 8;

static void window_mean_block_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                                     int64_t col_ld, int64_t n, double size, float* out) {
    double acc[kMeanBlock] = {0.0};
    for (int64_t q = 0; q < cols; ++q) {
        double col[kMeanBlock] = {0.0};
        for (int64_t r = 0; r < rows; ++r) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int64_t j = 0; j < n; ++j) col[j] += (double)t[j];
        }
        for (int64_t j = 0; j < n; ++j) acc[j] += col[j];
    }
    for (int64_t j = 0; j < n; ++j) out[j] = (float)(acc[j] / size);
}

void fl_window_mean_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                               int64_t col_ld, int64_t n, double size, float* out) {
    for (int64_t j = 0; j < n; j += kMeanBlock) {
        const int64_t nb = n - j < kMeanBlock ? n - j : kMeanBlock;
        window_mean_block_scalar(x + j, rows, cols, row_ld, col_ld, nb, size, out + j);
    }
}

// The window poolings (fl_window_max_f32_<isa>, fl_window_avg_f32_<isa>): each channel its own
// chain over the taps in row-major order, kept in out (the taps outside, the channels inside:
// contiguous loops that the compiler vectorizes at the baseline, and the NEON path's kernel).
void fl_window_max_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                              int64_t col_ld, int64_t n, float* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = x[j];
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = r == 0 ? 1 : 0; q < cols; ++q) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int64_t j = 0; j < n; ++j) {
                const float m = out[j];
                out[j] = (m > t[j] || m != m) ? m : t[j];
            }
        }
}

void fl_window_avg_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                              int64_t col_ld, int64_t n, float count, int padded, float* out) {
    for (int64_t j = 0; j < n; ++j) out[j] = x[j];
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = r == 0 ? 1 : 0; q < cols; ++q) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int64_t j = 0; j < n; ++j) out[j] = out[j] + t[j];
        }
    if (padded)
        for (int64_t j = 0; j < n; ++j) out[j] = out[j] + 0.0f;
    for (int64_t j = 0; j < n; ++j) out[j] = out[j] / count;
}
