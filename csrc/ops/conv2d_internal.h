// Internal to csrc/ops: the algorithms of the conv2d driver (fastlayers/conv2d.h, ConvAlgo),
// one source file each; conv2d.cpp packs the kernel, chooses the algorithm and calls them.
// Shapes and notation: see conv2d.cpp.
#pragma once

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

// ConvAlgo::depthwise (conv2d_depthwise.cpp).
void depthwise_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                       ActFn act);

// ConvAlgo::indirect (conv2d_indirect.cpp).
// Output pixels at `out` (dense_output(s) for conv2d_forward).
void indirect_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                      OutputPlacement out, ActFn act);

// ConvAlgo::tiles (conv2d_tiles.cpp).
void tiles_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                   ActFn act);

}  // namespace conv_detail
}  // namespace fl
