// LayerNormalization, RMSNormalization and UnitNormalization over the last axis: threads over
// rows; the row math is plain C++ compiled once with the baseline flags, not a
// per-ISA kernel, so scalar, avx2 and avx512 runs execute the very same instructions and give
// the same bits (docs/architecture.md §6). Rows are independent: the same bits for any
// thread count and for a row alone or inside a batch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

// A task should carry at least this many elements (three passes of a few ns per element).
constexpr int64_t kMinElementsPerTask = 16384;

// The statistics are summed in double (element j into lane j % 8 in increasing j, then the
// lanes as a fixed tree; -ffp-contract=off, no FMA). In float32 a long row lost digits, the
// squares of deviations below ~1e-19 flushed to zero (FTZ: epsilon = 0 gave +-inf) and those
// above ~1.8e19 overflowed (the output was beta).
constexpr int kDoubleLanes = 8;

template <class Term>
double lane_sum_d(const float* v, int64_t n, Term term) {
    double acc[kDoubleLanes] = {0.0};
    int64_t j = 0;
    for (; j + kDoubleLanes <= n; j += kDoubleLanes)
        for (int l = 0; l < kDoubleLanes; ++l) acc[l] += term(v[j + l]);
    for (int l = 0; j < n; ++j, ++l) acc[l] += term(v[j]);
    for (int width = kDoubleLanes / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
    return acc[0];
}

// LayerNormalization of one row (docs/semantics.md, LayerNormalization). The mean is held as
// two floats, hi + lo (hi the float32 rounding of the double mean): x - hi is exact for the
// x within a factor 2 of hi (Sterbenz), so (x - hi) - lo is x - mean rounded once, however
// large the offset. With the mean rounded to float32 alone, an offset of 1e4 over a spread
// of 0.01 shifted every output by up to 5 %.
void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                    float epsilon) {
    const double count = static_cast<double>(n);
    const double mean = lane_sum_d(x, n, [](float v) { return static_cast<double>(v); }) / count;
    const float hi = static_cast<float>(mean);
    const float lo = static_cast<float>(mean - static_cast<double>(hi));
    const double var = lane_sum_d(x, n, [hi, lo](float v) {
                           const double d = (v - hi) - lo;
                           return d * d;
                       }) / count;
    const double inv = 1.0 / std::sqrt(var + static_cast<double>(epsilon));
    if (!(inv >= static_cast<double>(std::numeric_limits<float>::min())) && inv == inv) {
        // inv below the smallest normal float (deviations near float32's max): as a float32
        // denormal it would be flushed to zero (FTZ/DAZ), so this row multiplies in double.
        for (int64_t j = 0; j < n; ++j) {
            const double s = gamma ? inv * static_cast<double>(gamma[j]) : inv;
            float v = static_cast<float>(static_cast<double>((x[j] - hi) - lo) * s);
            if (beta) v = v + beta[j];
            y[j] = v;
        }
        return;
    }
    const float f = static_cast<float>(inv);
    if (gamma && beta) {
        for (int64_t j = 0; j < n; ++j) y[j] = ((x[j] - hi) - lo) * (f * gamma[j]) + beta[j];
    } else {
        for (int64_t j = 0; j < n; ++j) {
            float v = ((x[j] - hi) - lo) * (gamma ? f * gamma[j] : f);
            if (beta) v = v + beta[j];
            y[j] = v;
        }
    }
}

// The sum of v[j]^2 in double (a float32 square overflows above ~1.8e19, and long rows lose
// digits).
double lane_sum_squares(const float* v, int64_t n) {
    return lane_sum_d(v, n, [](float x) {
        const double d = x;
        return d * d;
    });
}

// y = (x * inv) * scale[j] (scale may be null), two float32 products in Keras's order, inv
// rounded to float32 first. A row whose inv is below the smallest normal float (a root mean
// square, or for UnitNormalization a norm, above ~8.5e37) multiplies in double instead: as a
// float32 denormal, inv would be flushed to zero (the kernels run with FTZ/DAZ) and the row
// with it.
void scale_row(const float* x, double inv, const float* scale, float* y, int64_t n) {
    if (!(inv >= static_cast<double>(std::numeric_limits<float>::min()))) {
        for (int64_t j = 0; j < n; ++j) {
            const float v = static_cast<float>(static_cast<double>(x[j]) * inv);
            y[j] = scale ? v * scale[j] : v;
        }
        return;
    }
    const float f = static_cast<float>(inv);
    if (scale) {
        for (int64_t j = 0; j < n; ++j) y[j] = (x[j] * f) * scale[j];
    } else {
        for (int64_t j = 0; j < n; ++j) y[j] = x[j] * f;
    }
}

// Rows of n elements, a few passes each: threads over rows with tasks of at least
// kMinElementsPerTask elements.
template <class RowFn>
void over_rows(int64_t rows, int64_t n, RowFn row) {
    if (rows <= 0 || n <= 0) return;
    const int64_t min_rows = (kMinElementsPerTask + n - 1) / n;
    parallel_for(rows, min_rows < 1 ? 1 : min_rows, [=](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) row(r);
    });
}

}  // namespace

void rms_norm_lastdim(const float* x, const float* scale, float* y, int64_t rows, int64_t n,
                      float epsilon) {
    const double eps = static_cast<double>(epsilon), count = static_cast<double>(n);
    over_rows(rows, n, [=](int64_t r) {
        const float* xr = x + r * n;
        const double mean_sq = lane_sum_squares(xr, n) / count;
        scale_row(xr, 1.0 / std::sqrt(mean_sq + eps), scale, y + r * n, n);
    });
}

void unit_norm_lastdim(const float* x, float* y, int64_t rows, int64_t n) {
    over_rows(rows, n, [=](int64_t r) {
        const float* xr = x + r * n;
        // A zero row: 1 / 0 = inf, bounded to 1e12; NaN stays NaN (std::min keeps its first
        // argument when the comparison is false).
        const double inv = std::min(1.0 / std::sqrt(lane_sum_squares(xr, n)), 1e12);
        scale_row(xr, inv, nullptr, y + r * n, n);
    });
}

void layer_norm_lastdim(const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t n, float epsilon) {
    over_rows(rows, n, [=](int64_t r) {
        layer_norm_row(x + r * n, gamma, beta, y + r * n, n, epsilon);
    });
}

}  // namespace fl
