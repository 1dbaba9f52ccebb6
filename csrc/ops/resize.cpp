// Resampling along one axis: the taps of Keras's Resizing and UpSampling2D's bilinear mode
// (the NumPy path is fastlayers/_numpy/resize.py, which also computes the taps).
//
// x (outer, n_in, inner) -> y (outer, n_out, inner): each output position j of the axis is a
// weighted sum of `count[j]` input positions idx[j][k] with weights w[j][k], added in tap order
// in float32 without FMA:
//   y = x[idx[j][0]] * w[j][0];  then y = y + x[idx[j][k]] * w[j][k] for k < count[j],
//   and y = y + 0 for the padding taps count[j] <= k < taps (as the NumPy path adds a zero term
//   for them, which turns a -0 sum into +0).
// Every tap below count[j] counts, weight 0 included (inf * 0 = NaN, as in PyTorch). This is
// the NumPy path's order, so for lists of up to 32 taps the two paths give the same bits (but
// for denormals, which count as zero here: FTZ/DAZ in parallel_for); longer lists (large
// antialiased shrinks) NumPy sums with BLAS dot products, in its own order.
// Plain C++ compiled once with the baseline flags (docs/architecture.md §6): every ISA runs
// the same instructions. Outputs are independent: the same bits for any thread count.
#include <algorithm>
#include <cstdint>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

// A task should carry at least this many multiply-adds.
constexpr int64_t kMinMacsPerTask = 16384;

// Output item (o, j): inner values. kInner > 0 fixes the count at compile time (images have
// 1, 3 or 4 channels: unrolled loops instead of a loop per tap of a few iterations). kPair:
// every output has exactly two taps (bilinear without antialias), the same operations in a
// loop the compiler can see whole.
template <int kInner, bool kPair>
void resample_one(const float* x, float* y, int64_t inner_arg, int64_t taps, const int64_t* idx,
                  const float* w, int64_t count) {
    const int64_t inner = kInner > 0 ? kInner : inner_arg;
    const float* x0 = x + idx[0] * inner;
    const float w0 = w[0];
    if (kPair) {
        const float* x1 = x + idx[1] * inner;
        const float w1 = w[1];
        for (int64_t c = 0; c < inner; ++c) y[c] = x0[c] * w0 + x1[c] * w1;
        return;
    }
    for (int64_t c = 0; c < inner; ++c) y[c] = x0[c] * w0;
    for (int64_t k = 1; k < count; ++k) {
        const float* xk = x + idx[k] * inner;
        const float wk = w[k];
        for (int64_t c = 0; c < inner; ++c) y[c] = y[c] + xk[c] * wk;
    }
    if (count < taps) {
        for (int64_t c = 0; c < inner; ++c) y[c] = y[c] + 0.0f;
    }
}

template <int kInner, bool kPair>
void resample_items(const float* x, float* y, int64_t n_in, int64_t inner, int64_t n_out,
                    int64_t taps, const int64_t* idx, const float* w, const int64_t* count,
                    int64_t i0, int64_t i1) {
    int64_t o = i0 / n_out, j = i0 % n_out;  // item i = (o, j), stepped without dividing
    for (int64_t i = i0; i < i1; ++i) {
        resample_one<kInner, kPair>(x + o * n_in * inner, y + i * inner, inner, taps,
                                    idx + j * taps, w + j * taps, count[j]);
        if (++j == n_out) j = 0, ++o;
    }
}

// run(resample_items<kInner, kPair>) for kInner = inner when it is 1-4, else the generic 0.
template <bool kPair, class Run>
void by_inner(int64_t inner, Run run) {
    switch (inner) {
        case 1: return run(resample_items<1, kPair>);
        case 2: return run(resample_items<2, kPair>);
        case 3: return run(resample_items<3, kPair>);
        case 4: return run(resample_items<4, kPair>);
        default: return run(resample_items<0, kPair>);
    }
}

}  // namespace

void resample_axis(const float* x, float* y, int64_t outer, int64_t n_in, int64_t inner,
                   int64_t n_out, int64_t taps, const int64_t* idx, const float* w,
                   const int64_t* count) {
    if (outer <= 0 || n_out <= 0 || inner <= 0 || n_in <= 0) return;
    const int64_t macs = inner * taps;
    const int64_t min_items = (kMinMacsPerTask + macs - 1) / macs;
    const bool pair = taps == 2 && std::all_of(count, count + n_out, [](int64_t c) {
        return c == 2;
    });
    parallel_for(outer * n_out, min_items < 1 ? 1 : min_items, [=](int64_t i0, int64_t i1) {
        auto run = [&](auto items) {
            items(x, y, n_in, inner, n_out, taps, idx, w, count, i0, i1);
        };
        if (pair)
            by_inner<true>(inner, run);
        else
            by_inner<false>(inner, run);
    });
}

}  // namespace fl
