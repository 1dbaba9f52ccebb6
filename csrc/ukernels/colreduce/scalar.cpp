// colreduce/scalar.cpp: column sums in double and column maxima over rows read in place
// (fl_col_sum_f64_<isa>, fl_col_max_f32_<isa>; contract in csrc/ukernels/ukernels.h), for the
// global poolings (csrc/ops/pooling.cpp).
//
// ISA: baseline (no extra flags). Selected by fl::kernels() (KernelTable::col_sum_f64,
// col_max_f32) when no SIMD kernel can run (FASTLAYERS_ISA=scalar, and on NEON); also the
// readable reference of what the SIMD files compute: every column is its own chain, the rows in
// order, so a column's result does not depend on how the columns are cut into vectors.
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
