// Max and average pooling over NHWC windows (Keras MaxPooling1D/2D, AveragePooling1D/2D).
//
// The NumPy path (fastlayers/_numpy/pooling.py) folds the window's taps into the result one
// after the other in row-major window order, over an input padded with -inf (max) or 0
// (average). This does the same per output pixel, so the two paths give the same bits:
//   max:      y = tap(0, 0); then y = (y > t || y is NaN) ? y : t for the other taps
//             (NumPy's maximum: NaN propagates, a tie takes the tap; padding, -inf, never
//             wins);
//   average:  y = tap(0, 0) + tap(0, 1) + ... in float32, padding taps adding 0, then
//             y / (rows covered * columns covered), padding not counted.
// Each output pixel is one call of a per-ISA window kernel (KernelTable::window_max_f32 /
// window_avg_f32, ukernels/colreduce/<isa>.cpp: the AVX2 one holds 32 channels in registers
// over the window, where a plain C++ loop compiled at the baseline read and wrote the output
// once per tap), over the window's taps inside the input (pool_row); every ISA computes the
// chain above, so the same bits. Output rows are independent: the same bits for any thread
// count. Like every kernel it runs with FTZ/DAZ (parallel_for): denormal inputs count as zero,
// where NumPy keeps them; that, and a NaN's sign where NaNs of both signs meet in an average
// (NumPy's vector loop and its scalar tail order the operands differently), are the ways the
// two paths differ.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../runtime/dispatch.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

constexpr int64_t kMinElementsPerTask = 16384;

// One output row (image b, output row i): each of its ow pixels pools the taps of its window
// that lie inside the input, in row-major order, with the window kernels
// (KernelTable::window_max_f32 / window_avg_f32, ukernels/colreduce/). A padding tap changes
// nothing there (max: -inf never wins, and a NaN or -inf already there stays; average: adding
// 0 is the identity but for -0 + 0 = +0, hence one "+ 0" for a window that covers padding,
// which gives the same bits wherever it comes in the chain), so the cost does not grow with a
// window larger than the input. A window with no input pixel (never with the layers' pads) is
// padding alone: -inf, or for the average 0 divided by its count of covered pixels, 0 or
// negative (NaN or -0, as the tap loop before these kernels and the NumPy path give).
void pool_row(const KernelTable& kt, const PoolGeometry& g, const float* x, int64_t b,
              int64_t i, bool average, float* y) {
    const int64_t r0 = i * g.sh - g.top;
    const int64_t r_lo = std::max<int64_t>(r0, 0), r_hi = std::min(r0 + g.ph, g.h);
    for (int64_t j = 0; j < g.ow; ++j) {
        const int64_t q0 = j * g.sw - g.left;
        const int64_t q_lo = std::max<int64_t>(q0, 0), q_hi = std::min(q0 + g.pw, g.w);
        float* out = y + j * g.c;
        if (r_lo >= r_hi || q_lo >= q_hi) {  // padding alone: -inf, or 0 / the (empty) count
            const float pad = average ? 0.0f / (static_cast<float>(r_hi - r_lo) *
                                                static_cast<float>(q_hi - q_lo))
                                      : -std::numeric_limits<float>::infinity();
            std::fill(out, out + g.c, pad);
            continue;
        }
        const float* t = x + ((b * g.h + r_lo) * g.w + q_lo) * g.c;
        const int64_t rows_in = r_hi - r_lo, cols_in = q_hi - q_lo;
        if (average) {
            const bool padded = rows_in < g.ph || cols_in < g.pw;
            const float count = static_cast<float>(rows_in) * static_cast<float>(cols_in);
            kt.window_avg_f32(t, rows_in, cols_in, g.w * g.c, g.c, g.c, count, padded ? 1 : 0,
                              out);
        } else {
            kt.window_max_f32(t, rows_in, cols_in, g.w * g.c, g.c, g.c, out);
        }
    }
}

}  // namespace

void pool2d_nhwc(const float* x, const PoolGeometry& g, bool average, float* y) {
    const int64_t rows = g.n * g.oh;
    if (rows <= 0 || g.ow <= 0 || g.c <= 0) return;
    // Taps per output row: a window visits at most the input's h x w pixels.
    const double row_taps = static_cast<double>(g.ow) * static_cast<double>(g.c) *
                            static_cast<double>(std::min(g.ph, g.h)) *
                            static_cast<double>(std::min(g.pw, g.w));
    const int64_t min_rows =
        row_taps >= kMinElementsPerTask ? 1 : static_cast<int64_t>(kMinElementsPerTask / row_taps);
    const KernelTable& kt = kernels();
    parallel_for(rows, min_rows, [=, &g, &kt](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            pool_row(kt, g, x, t / g.oh, t % g.oh, average, y + t * g.ow * g.c);
    });
}

// Adaptive pooling (Keras AdaptiveMax/AveragePooling1D/2D, PyTorch's AdaptiveAvgPool2d ...):
// output (i, j) pools input rows [floor(i h / oh), ceil((i + 1) h / oh)) and columns
// [floor(j w / ow), ceil((j + 1) w / ow)). The NumPy path (fastlayers/_numpy/pooling.py) pools
// the rows first, then the columns, and this does the same per output pixel, so the two give
// the same bits (denormals aside, FTZ/DAZ):
//   average: per column q of the window, s_q = 0 + x[r0, q] + x[r0 + 1, q] + ... in double
//            (NumPy's float64 sum along an axis adds the rows in order, from 0), then
//            y = (float)((0 + s_q0 + s_q1 + ...) / (rows * columns)), the per-ISA window
//            kernel (KernelTable::window_mean_f32, ukernels/colreduce/), which holds up to 64
//            channels' sums in registers over the window;
//   max:     the fold of pool2d (NaN propagates) over each column's rows, then over the
//            columns (NumPy's order, which decides between -0 and +0), on the global
//            poolings' per-ISA column kernel (KernelTable::col_max_f32).
void adaptive_pool2d_nhwc(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                          int64_t oh, int64_t ow, bool average, float* y) {
    const int64_t rows = n * oh;
    if (rows <= 0 || ow <= 0 || c <= 0 || h <= 0 || w <= 0) return;
    // Taps per output row: ow windows of at most ceil(h / oh) + 1 rows, ceil(w / ow) + 1 cols.
    const double row_taps = static_cast<double>(ow) * static_cast<double>(c) *
                            static_cast<double>(h / oh + 2) * static_cast<double>(w / ow + 2);
    const int64_t min_rows =
        row_taps >= kMinElementsPerTask ? 1 : static_cast<int64_t>(kMinElementsPerTask / row_taps);
    const KernelTable& kt = kernels();
    parallel_for(rows, min_rows, [=, &kt](int64_t t0, int64_t t1) {
        std::vector<float> colmax(average ? 0 : c);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / oh, i = t % oh;
            const int64_t r0 = i * h / oh, r1 = ((i + 1) * h + oh - 1) / oh;
            for (int64_t j = 0; j < ow; ++j) {
                const int64_t q0 = j * w / ow, q1 = ((j + 1) * w + ow - 1) / ow;
                float* out = y + (t * ow + j) * c;
                if (!average) {  // each column's rows, then the columns (ties: -0 vs +0)
                    // The global poolings' column kernel folds as pool2d does, rows in order.
                    for (int64_t q = q0; q < q1; ++q) {
                        const float* xq = x + ((b * h + r0) * w + q) * c;
                        float* m = q == q0 ? out : colmax.data();
                        std::copy(xq, xq + c, m);
                        if (r1 - r0 > 1) kt.col_max_f32(xq + w * c, r1 - r0 - 1, c, w * c, m);
                        if (q != q0) kt.col_max_f32(m, 1, c, c, out);
                    }
                    continue;
                }
                const double size = static_cast<double>(r1 - r0) * static_cast<double>(q1 - q0);
                const float* xw = x + ((b * h + r0) * w + q0) * c;  // the window's first tap
                kt.window_mean_f32(xw, r1 - r0, q1 - q0, w * c, c, c, size, out);
            }
        }
    });
}

// Global pooling: tasks of (image, block of kGlobalBlock channels), each handing its block of
// every pixel to the column kernels (sums or maxima held in registers over all the pixels).
constexpr int64_t kGlobalBlock = 256;

void global_pool_nhwc(const float* x, int64_t n, int64_t pixels, int64_t c, bool average,
                      float* y) {
    if (n <= 0 || c <= 0 || pixels <= 0) return;
    const KernelTable& kt = kernels();
    const int64_t blocks = (c + kGlobalBlock - 1) / kGlobalBlock;
    const double task =
        static_cast<double>(pixels) * static_cast<double>(std::min(c, kGlobalBlock));
    const int64_t min_tasks =
        task >= kMinElementsPerTask ? 1 : static_cast<int64_t>(kMinElementsPerTask / task);
    parallel_for(n * blocks, min_tasks, [=, &kt](int64_t t0, int64_t t1) {
        double acc[kGlobalBlock];
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / blocks, k0 = t % blocks * kGlobalBlock;
            const int64_t nk = std::min(kGlobalBlock, c - k0);
            const float* xb = x + b * pixels * c + k0;
            float* out = y + b * c + k0;
            if (!average) {
                std::copy(xb, xb + nk, out);
                if (pixels > 1) kt.col_max_f32(xb + c, pixels - 1, nk, c, out);
                continue;
            }
            std::fill(acc, acc + nk, 0.0);
            kt.col_sum_f64(xb, pixels, nk, c, acc);
            const double count = static_cast<double>(pixels);
            for (int64_t k = 0; k < nk; ++k) out[k] = static_cast<float>(acc[k] / count);
        }
    });
}

}  // namespace fl
