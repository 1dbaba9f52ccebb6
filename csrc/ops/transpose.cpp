// Batched transpose: dst (batch, cols, rows) = src (batch, rows, cols), each item on its own.
// It moves a converted model's tensors between PyTorch's layout and fastlayers' at the
// model's edges (NCHW <-> NHWC: an image's (H*W, C) matrix transposed), which NumPy's strided
// copy does at 2-4 GB/s (docs/performance.md §14).
//
// Tiles of 8 x 8 values: a tile's 8 source rows and 8 destination rows are each a run of 8
// floats, so both sides move whole cache lines and a tile stays in registers or L1. Data
// movement only, plain C++ compiled once: the same bytes on every ISA and any thread count
// (threads take disjoint bands of source rows).
#include <algorithm>
#include <cstdint>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

constexpr int64_t kTile = 8;
// Rows of a band a task takes (a multiple of kTile): a task moves at least this many rows
// times the columns, so a small transpose stays on one thread.
constexpr int64_t kBandRows = 64;
constexpr int64_t kMinValuesPerTask = 1 << 16;

// The band of source rows [r0, r1) of one item: full 8 x 8 tiles, then the ragged edges.
void transpose_band(const float* s, float* d, int64_t rows, int64_t cols, int64_t r0,
                    int64_t r1) {
    for (int64_t rt = r0; rt < r1; rt += kTile) {
        const int64_t rn = std::min(kTile, r1 - rt);
        int64_t ct = 0;
        if (rn == kTile) {
            for (; ct + kTile <= cols; ct += kTile) {
                float tile[kTile][kTile];
                for (int64_t r = 0; r < kTile; ++r)
                    for (int64_t c = 0; c < kTile; ++c) tile[c][r] = s[(rt + r) * cols + ct + c];
                for (int64_t c = 0; c < kTile; ++c)
                    for (int64_t r = 0; r < kTile; ++r) d[(ct + c) * rows + rt + r] = tile[c][r];
            }
        }
        for (int64_t c = ct; c < cols; ++c)
            for (int64_t r = rt; r < rt + rn; ++r) d[c * rows + r] = s[r * cols + c];
    }
}

}  // namespace

void transpose_batched(const float* src, float* dst, int64_t batch, int64_t rows,
                       int64_t cols) {
    if (batch <= 0 || rows <= 0 || cols <= 0) return;
    const int64_t bands = (rows + kBandRows - 1) / kBandRows;
    const int64_t per_band = std::min(rows, kBandRows) * cols;
    const int64_t min_items = std::max<int64_t>(1, kMinValuesPerTask / per_band);
    parallel_for(batch * bands, min_items, [=](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / bands, band = i % bands;
            const int64_t r0 = band * kBandRows, r1 = std::min(rows, r0 + kBandRows);
            transpose_band(src + b * rows * cols, dst + b * rows * cols, rows, cols, r0, r1);
        }
    });
}

}  // namespace fl
