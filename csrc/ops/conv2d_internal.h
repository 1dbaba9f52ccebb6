// Internal to csrc/ops: the algorithms of the conv2d driver (fastlayers/conv2d.h, ConvAlgo),
// one source file each; conv2d.cpp packs the kernel, chooses the algorithm and calls them.
// Shapes and notation: see conv2d.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "fastlayers/conv2d.h"

namespace fl {
namespace conv_detail {

// Largest patch length K served by the indirect path: its B column block (K x 16 at least) must
// stay in L2 while the rows of a tile stream past it, since the kernel has no K blocking.
constexpr int64_t kIgemmMaxK = 4096;

inline void copy_floats(float* dst, const float* src, int64_t n) {
    if (n == 1) {
        *dst = *src;
    } else if (n > 0) {
        std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
    }
}

inline void zero_floats(float* dst, int64_t n) {
    if (n > 0) std::memset(dst, 0, static_cast<size_t>(n) * sizeof(float));
}

// Pixel tiles for a parallel_for over tiles, which hands each thread one contiguous run of
// them: `count` tiles of at most `target` pixels where possible, the count a multiple of the
// thread count (when more than one tile), and the tiles' sizes in whole units of `unit`
// pixels (depthwise: the per-pixel kernel's groups of 4, or whole output rows for the row
// kernel) differing by at most one unit (only the last tile may end in a partial unit). The
// units are dealt to the threads' runs first, so that the runs too differ by at most one unit:
// dealing them tile by tile gave the first tiles all the extra units, 16 rows against 12 for
// 28 rows in 8 tiles on two threads. Tiles have at least `min_pixels` pixels where there are
// that many, and never more than `target` (rounded down to whole units, at least one).
// The tiles path's (8, 7, 7, 512) -> 512, 3x3 ran 9 tiles of 48 pixels as 240 + 152 pixels on
// two threads; the depthwise (8, 7, 7, 1024) 7 tiles of 64 as 256 + 136.
struct PixelTiles {
    int64_t count = 0;  // no tile for no pixel
    PixelTiles(int64_t pixels, int64_t target, int64_t threads, int64_t min_pixels,
               int64_t unit)
        : pixels_(pixels), unit_(std::max<int64_t>(1, unit)) {
        if (pixels <= 0) return;
        const int64_t units = (pixels + unit_ - 1) / unit_;
        const int64_t target_units = std::max<int64_t>(1, target / unit_);
        const int64_t min_units = std::max<int64_t>(1, (min_pixels + unit_ - 1) / unit_);
        const int64_t fewest = (units + target_units - 1) / target_units;  // none too large
        count = fewest;
        if (count > 1 || threads > 1) count = (count + threads - 1) / threads * threads;
        count = std::max(fewest, std::min(count, units / min_units));
        units_ = units;
        // Runs of count / threads tiles, one per thread, when the count allows; else one run.
        runs_ = count % threads == 0 ? threads : 1;
        per_run_ = count / runs_;
    }
    int64_t start(int64_t t) const {
        const int64_t r = t / per_run_, i = t % per_run_;
        const int64_t run_start = r * (units_ / runs_) + std::min(r, units_ % runs_);
        const int64_t run_units = units_ / runs_ + (r < units_ % runs_ ? 1 : 0);
        const int64_t in_run = i * (run_units / per_run_) + std::min(i, run_units % per_run_);
        return std::min(pixels_, (run_start + in_run) * unit_);
    }
    // The size of the largest tile, in pixels.
    int64_t largest() const {
        const int64_t run_units = units_ / runs_ + (units_ % runs_ > 0 ? 1 : 0);
        return (run_units / per_run_ + (run_units % per_run_ > 0 ? 1 : 0)) * unit_;
    }

  private:
    int64_t pixels_ = 0, unit_ = 1, units_ = 0, runs_ = 1, per_run_ = 1;
};

// ConvAlgo::depthwise (conv2d_depthwise.cpp).
void depthwise_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                       ActFn act);

// ConvAlgo::indirect (conv2d_indirect.cpp).
// Output pixels at `out` (dense_output(s) for conv2d_forward).
void indirect_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                      OutputPlacement out, ActFn act);
// Conv3D (conv3d_forward) on the same driver, chunk pointers into the 3D input.
void indirect_forward_3d(const float* x, const Conv3dShape& s, const PackedConv& w, float* y,
                         ActFn act);

// ConvAlgo::tiles (conv2d_tiles.cpp).
void tiles_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                   ActFn act);

}  // namespace conv_detail
}  // namespace fl
