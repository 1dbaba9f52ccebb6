// rownorm/scalar.cpp: the row statistics and the row passes of LayerNormalization,
// RMSNormalization and UnitNormalization (csrc/ops/layer_norm.cpp; contract in
// csrc/ukernels/ukernels.h): fl_row_sumsq_f64_<isa>,
// fl_row_devsq_f64_<isa>, fl_row_moments_f64_<isa>, fl_row_norm_f32_<isa>, fl_row_scale_f32_<isa>,
// fl_row_min_magnitude_<isa>.
//
// ISA: baseline (no extra flags). Selected by fl::kernels() when no SIMD kernel can run
// (FASTLAYERS_ISA=scalar, and on NEON); also the readable reference of what the SIMD files
// compute, lane for lane.
#include "../ukernels.h"
#include "lanes.h"

using fl_rownorm::kLanes;

template <class Term>
static double row_sum(const float* x, int64_t n, Term term) {
    double acc[kLanes] = {0.0};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += term(x[j + l]);
    return fl_rownorm::finish_lanes(acc, x, j, n, term);
}

double fl_row_sumsq_f64_scalar(const float* x, int64_t n) {
    return row_sum(x, n, fl_rownorm::term_sq);
}

double fl_row_devsq_f64_scalar(const float* x, int64_t n, float hi, float lo) {
    return row_sum(x, n, [hi, lo](float v) { return fl_rownorm::term_dev_sq(v, hi, lo); });
}

void fl_row_moments_f64_scalar(const float* x, int64_t n, float s, double* out) {
    double acc1[kLanes] = {0.0}, acc2[kLanes] = {0.0};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int l = 0; l < kLanes; ++l) {
            const double d = fl_rownorm::term_shift(x[j + l], s);
            acc1[l] += d;
            acc2[l] += d * d;
        }
    fl_rownorm::finish_moments(acc1, acc2, x, j, n, s, out);
}

void fl_row_norm_f32_scalar(const float* x, int64_t n, float hi, float lo, float f,
                            const float* gamma, const float* beta, float* y) {
    for (int64_t j = 0; j < n; ++j) {
        float v = ((x[j] - hi) - lo) * (gamma ? f * gamma[j] : f);
        if (beta) v = v + beta[j];
        y[j] = v;
    }
}

void fl_row_scale_f32_scalar(const float* x, int64_t n, float f, const float* scale, float* y) {
    for (int64_t j = 0; j < n; ++j) y[j] = scale ? (x[j] * f) * scale[j] : x[j] * f;
}

float fl_row_min_magnitude_scalar(const float* x, int64_t n) {
    int32_t least = 0x7FFFFFFF;
    for (int64_t j = 0; j < n; ++j) {
        const int32_t k = fl_rownorm::magnitude_key(x[j]);
        least = k < least ? k : least;
    }
    return fl_rownorm::magnitude_from_key(least);
}
