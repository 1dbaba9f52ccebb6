// LayerNormalization, RMSNormalization and UnitNormalization over the last axis: threads over
// rows; each row's sums and passes are the rownorm kernels (fl::kernels().row_*, contract in
// csrc/ukernels/ukernels.h), which give the same bits on every ISA (docs/architecture.md §6).
// Rows are independent: the same bits for any thread count and for a row alone or inside a
// batch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../runtime/dispatch.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

// A task should carry at least this many elements (two or three passes of a few ns per
// element).
constexpr int64_t kMinElementsPerTask = 16384;

// The statistics are summed in double (the rownorm kernels' fixed lane order, no FMA). In
// float32 a long row lost digits, the squares of deviations below ~1e-19 flushed to zero
// (FTZ: epsilon = 0 gave +-inf) and those above ~1.8e19 overflowed (the output was beta).
//
// LayerNormalization of one row (docs/semantics.md, LayerNormalization). The mean is held as
// two floats, hi + lo (hi the float32 rounding of the double mean): x - hi is exact for the
// x within a factor 2 of hi (Sterbenz), so (x - hi) - lo is x - mean rounded once, however
// large the offset. With the mean rounded to float32 alone, an offset of 1e4 over a spread
// of 0.01 shifted every output by up to 5 %.
//
// gamma_min: the smallest |gamma[j]| that is not 0 (1 without gamma), so that a row whose
// float32 factor f * gamma[j] would be a denormal (flushed to zero under FTZ: the output was
// beta, for deviations near 1e36 with gamma 1e-4) multiplies in double too.
//
// The mean and the variance come from one pass in the usual case: the moments of d = x - s
// about the row's first element s (in double, exact but for exponents 29 apart), mean = s + c
// and var = S2 / n - c^2 with c = S1 / n. S2 / n is var + c^2, so the subtraction loses
// log2(1 + c^2 / var) bits of double's 53. For a finite row c^2 / var <= n - 1 (x[0] is one of
// the n values), so that is at most log2(n) bits, and the variance stays far more accurate
// than float32 at any length. The second pass over the deviations from the mean, as the
// formula reads, is kept for the rows where c^2 > kShiftedMax * var (x[0] more than 8
// standard deviations from the mean, possible from n = 66 on) and for rows with inf or NaN.
constexpr double kShiftedMax = 64.0;

void layer_norm_row(const KernelTable& kt, const float* x, const float* gamma,
                    const float* beta, float* y, int64_t n, double epsilon, double gamma_min) {
    const double count = static_cast<double>(n);
    const float s = x[0];
    double moments[2];
    kt.row_moments_f64(x, n, s, moments);
    const double c = moments[0] / count;
    const double mean = static_cast<double>(s) + c;
    const float hi = static_cast<float>(mean);
    const float lo = static_cast<float>(mean - static_cast<double>(hi));
    double var = moments[1] / count - c * c;
    if (!(c * c <= kShiftedMax * var)) var = kt.row_devsq_f64(x, n, hi, lo) / count;
    const double inv = 1.0 / std::sqrt(var + epsilon);
    const double smallest = static_cast<double>(std::numeric_limits<float>::min());
    if ((!(inv >= smallest) ||
         static_cast<double>(static_cast<float>(inv)) * gamma_min < smallest) && inv == inv) {
        // inv, or inv * gamma[j], below the smallest normal float (deviations near float32's
        // max): as a float32 denormal it would be flushed to zero (FTZ/DAZ), so this row
        // multiplies in double.
        for (int64_t j = 0; j < n; ++j) {
            const double s = gamma ? inv * static_cast<double>(gamma[j]) : inv;
            float v = static_cast<float>(static_cast<double>((x[j] - hi) - lo) * s);
            if (beta) v = v + beta[j];
            y[j] = v;
        }
        return;
    }
    kt.row_norm_f32(x, n, hi, lo, static_cast<float>(inv), gamma, beta, y);
}

// y = (x * inv) * scale[j] (scale may be null), two float32 products in Keras's order, inv
// rounded to float32 first. A row whose inv is below the smallest normal float (a root mean
// square, or for UnitNormalization a norm, above ~8.5e37) multiplies in double instead: as a
// float32 denormal, inv would be flushed to zero (the kernels run with FTZ/DAZ) and the row
// with it.
void scale_row(const KernelTable& kt, const float* x, double inv, const float* scale, float* y,
               int64_t n) {
    if (!(inv >= static_cast<double>(std::numeric_limits<float>::min()))) {
        for (int64_t j = 0; j < n; ++j) {
            const float v = static_cast<float>(static_cast<double>(x[j]) * inv);
            y[j] = scale ? v * scale[j] : v;
        }
        return;
    }
    kt.row_scale_f32(x, n, static_cast<float>(inv), scale, y);
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
    const KernelTable& kt = kernels();
    const double eps = static_cast<double>(epsilon), count = static_cast<double>(n);
    over_rows(rows, n, [=, &kt](int64_t r) {
        const float* xr = x + r * n;
        const double mean_sq = kt.row_sumsq_f64(xr, n) / count;
        scale_row(kt, xr, 1.0 / std::sqrt(mean_sq + eps), scale, y + r * n, n);
    });
}

void unit_norm_lastdim(const float* x, float* y, int64_t rows, int64_t n) {
    const KernelTable& kt = kernels();
    over_rows(rows, n, [=, &kt](int64_t r) {
        const float* xr = x + r * n;
        // A zero row: 1 / 0 = inf, bounded to 1e12; NaN stays NaN (std::min keeps its first
        // argument when the comparison is false).
        const double inv = std::min(1.0 / std::sqrt(kt.row_sumsq_f64(xr, n)), 1e12);
        scale_row(kt, xr, inv, nullptr, y + r * n, n);
    });
}

void channel_affine_lastdim(const float* x, const float* scale, const float* shift, float* y,
                            int64_t rows, int64_t n, ActFn act) {
    if (rows <= 0 || n <= 0) return;
    const KernelTable& kt = kernels();
    // The row pass of LayerNormalization with hi = lo = 0 and f = 1: ((x - 0) - 0) * (1 *
    // scale[j]) + shift[j] is x * scale[j] + shift[j], each operation rounded (x - 0 is x,
    // -0 included). One pass, the activation while a block of rows is in L1 (about 16 KiB).
    const int64_t block = std::max<int64_t>(1, 4096 / n);
    const int64_t min_rows = std::max<int64_t>(block, (4 * kMinElementsPerTask + n - 1) / n);
    parallel_for(rows, min_rows, [=, &kt](int64_t r0, int64_t r1) {
        for (int64_t b0 = r0; b0 < r1; b0 += block) {
            const int64_t b1 = std::min(r1, b0 + block);
            for (int64_t r = b0; r < b1; ++r) {
                kt.row_norm_f32(x + r * n, n, 0.0f, 0.0f, 1.0f, scale, shift, y + r * n);
            }
            if (act) act(y + b0 * n, (b1 - b0) * n);
        }
    });
}

void layer_norm_lastdim(const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t n, double epsilon) {
    const KernelTable& kt = kernels();
    // (one pass over gamma a call, on the kernels: as a scalar loop it was 85 % of the call
    // for one row of 50257, an audit)
    const double gamma_min = gamma ? static_cast<double>(kt.row_min_magnitude(gamma, n)) : 1.0;
    over_rows(rows, n, [=, &kt](int64_t r) {
        layer_norm_row(kt, x + r * n, gamma, beta, y + r * n, n, epsilon, gamma_min);
    });
}

}  // namespace fl
