// Conv2D, ConvAlgo::depthwise: the direct kernel (csrc/ukernels/dwconv/) over per-tile row
// pointers. Notation: conv2d.cpp.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../runtime/dispatch.h"
#include "conv2d_internal.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace conv_detail {

// Depthwise (C == groups, multiplier m = F / C): y[p, c*m + j] = bias[c*m + j] + sum over taps
// of xp[tap(p), c] * K[tap, c*m + j], by the direct kernel (kernels().dwconv) over tiles of
// at most kDwTile pixels, balanced over the threads (PixelTiles); each chunk builds a tile's
// pixels x taps row pointers (into x, or at a zero row for padding taps, which then add
// fma(0, K, acc) as the GEMM path would), runs the kernel and applies the activation to each
// finished pixel row. For m > 1 the kernel runs once per plane j (the filters of channels
// c*m + j) into a kDwTile x C scratch tile, which is then spread into y with stride m: the
// same FMA chain per output as the GEMM path, 6-9x faster than it (1x56x56x64, m = 2 and 4;
// the grouped GEMM had N = m columns per group).
void depthwise_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                       ActFn act) {
    constexpr int64_t kDwTile = 64;
    const int64_t pixels = s.n * s.oh * s.ow;
    const int64_t taps = s.kh * s.kw;
    const int64_t ch = s.c;
    const int64_t mult = w.multiplier();
    std::vector<float> zeros(static_cast<size_t>(ch), 0.0f);
    const float* zero_row = zeros.data();
    const auto kernel = kernels().dwconv;
    // At least 8 pixels per tile (the kernel runs pixels in groups of 4), in units of 4.
    const PixelTiles tiling(pixels, kDwTile, std::max<int64_t>(1, num_threads()), 8, 4);
    const int64_t tiles = tiling.count;
    const int64_t macs_per_tile = tiling.largest() * taps * ch * mult;
    const int64_t min_tiles =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
    const int64_t per_image = s.oh * s.ow;
    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        std::vector<const float*> rows(static_cast<size_t>(kDwTile * taps));
        std::vector<float> plane_tile(mult > 1 ? static_cast<size_t>(kDwTile * ch) : 0);
        for (int64_t t = begin; t < end; ++t) {
            const int64_t p0 = tiling.start(t);
            const int64_t m = tiling.start(t + 1) - p0;
            // Shape fields in locals: the pointer stores below could alias `s` otherwise.
            const int64_t kh = s.kh, kw = s.kw, sh = s.sh, sw = s.sw, dh = s.dh, dw = s.dw;
            const int64_t h = s.h, wd = s.w, oh = s.oh, ow = s.ow;
            const int64_t pt = s.pad_top, pl = s.pad_left;
            int64_t nb = p0 / per_image;
            int64_t i = (p0 % per_image) / ow;
            int64_t j = p0 % ow;
            const float** rp = rows.data();
            bool prev_interior = false;  // the previous pixel of this tile, same output row
            for (int64_t r = 0; r < m; ++r) {
                const float* image = x + nb * h * wd * ch;
                const int64_t col0 = j * sw - pl;
                const bool interior = i * sh - pt >= 0 && i * sh + (kh - 1) * dh - pt < h &&
                                      col0 >= 0 && col0 + (kw - 1) * dw < wd;
                if (interior && prev_interior && j > 0) {
                    // Every tap in bounds here and at the previous pixel: shift its pointers.
                    for (int64_t t = 0; t < taps; ++t, ++rp) *rp = rp[-taps] + sw * ch;
                    prev_interior = true;
                    if (++j == ow) {
                        j = 0;
                        if (++i == oh) {
                            i = 0;
                            ++nb;
                        }
                    }
                    continue;
                }
                prev_interior = interior;
                for (int64_t a = 0; a < kh; ++a) {
                    const int64_t row = i * sh + a * dh - pt;
                    if (row < 0 || row >= h) {
                        for (int64_t b = 0; b < kw; ++b) *rp++ = zero_row;
                        continue;
                    }
                    const float* xrow = image + row * wd * ch;
                    for (int64_t b = 0, col = col0; b < kw; ++b, col += dw) {
                        *rp++ = (col >= 0 && col < wd) ? xrow + col * ch : zero_row;
                    }
                }
                if (++j == ow) {
                    j = 0;
                    if (++i == oh) {
                        i = 0;
                        ++nb;
                    }
                }
            }
            float* yt = y + p0 * ch * mult;
            if (mult == 1) {
                kernel(m, ch, taps, rows.data(), w.dw_kernel(), w.dw_bias(), yt, ch);
                if (act) act(yt, m * ch);  // the m pixels' rows are contiguous
                continue;
            }
            float* tile = plane_tile.data();
            for (int64_t jp = 0; jp < mult; ++jp) {
                kernel(m, ch, taps, rows.data(), w.dw_kernel(jp), w.dw_bias(jp), tile, ch);
                for (int64_t r = 0; r < m; ++r) {
                    if (act) act(tile + r * ch, ch);
                    float* yr = yt + r * ch * mult + jp;
                    const float* tr = tile + r * ch;
                    for (int64_t c = 0; c < ch; ++c) yr[c * mult] = tr[c];
                }
            }
        }
    });
}

}  // namespace conv_detail
}  // namespace fl
