// Conv2D, ConvAlgo::depthwise: two direct kernels, no GEMM. Notation: conv2d.cpp.
//
// Depthwise (C == groups, multiplier m = F / C): y[p, c*m + j] = bias[c*m + j] + sum over taps
// of xp[tap(p), c] * K[tap, c*m + j], one FMA chain per output in tap order - the GEMM path's
// chain, so both kernels below give the same bits. Images of up to kernels().dwconv_row_max_ch
// channels (64 when strided) run the row kernel (kernels().dwconv_row) over segments of output
// rows, read straight from the input rows; the others run the per-pixel kernel
// (kernels().dwconv) over a table of tap pointers per tile of pixels. Both cut the pixels into
// tiles balanced over the threads (PixelTiles). For m > 1 either kernel runs once per plane j
// (the filters of channels c*m + j) into a scratch tile of pixels x C, which is then spread
// into y with stride m: the same FMA chain per output as the GEMM path, 6-9x faster than it
// (1x56x56x64, m = 2 and 4; the grouped GEMM had N = m columns per group). Measurements:
// docs/performance.md §5.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../runtime/dispatch.h"
#include "../ukernels/ukernels.h"  // FlDwRow, the row kernel's arguments (no kernel named here)
#include "conv2d_internal.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace conv_detail {
namespace {

// Tiles per task of parallel_for: at least 64 K multiply-adds.
int64_t min_tiles_per_task(const PixelTiles& tiling, const Conv2dShape& s, int64_t mult) {
    const int64_t macs_per_tile = tiling.largest() * s.kh * s.kw * s.c * mult;
    return std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
}

// Plane jp of a multiplier-m conv: the m pixels' rows of C in `tile` into y (pixel rows of
// C * m) with stride m, at channels c * m + jp.
void spread_plane(const float* tile, int64_t m, int64_t ch, int64_t mult, int64_t jp, float* y) {
    for (int64_t r = 0; r < m; ++r) {
        float* yr = y + r * ch * mult + jp;
        const float* tr = tile + r * ch;
        for (int64_t c = 0; c < ch; ++c) yr[c * mult] = tr[c];
    }
}

// The per-pixel kernel over tiles of at most kDwTile pixels: each chunk builds a tile's
// pixels x taps row pointers (into x, or at a zero row for padding taps, which then add
// fma(0, K, acc) as the GEMM path would), runs the kernel and applies the activation to each
// finished pixel row.
void pixel_tiles_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
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
    const int64_t min_tiles = min_tiles_per_task(tiling, s, mult);
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
                if (act) act(tile, m * ch);
                spread_plane(tile, m, ch, mult, jp, yt);
            }
        }
    });
}

// The row kernel over tiles of at most kDwTile pixels, each cut where its output rows end:
// each such segment is one kernel call, given the kh input rows its taps read (a row of zeros
// for a padding row; the kernel itself reads padding columns as zeros), then the activation
// runs over the segment's finished pixels.
void row_segments_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                          ActFn act) {
    constexpr int64_t kDwTile = 128;
    const int64_t pixels = s.n * s.oh * s.ow;
    const int64_t ch = s.c;
    const int64_t mult = w.multiplier();
    // Stands for an input row in the padding (the kernel reads up to s.w pixels of it); only
    // made when some output row reaches one.
    const bool padding_rows =
        s.pad_top > 0 || (s.oh - 1) * s.sh + (s.kh - 1) * s.dh - s.pad_top >= s.h;
    std::vector<float> zeros(padding_rows ? static_cast<size_t>(s.w * ch) : 0, 0.0f);
    const float* zero_row = zeros.data();
    const auto kernel = kernels().dwconv_row;
    // Tiles of whole output rows when a row holds 8 to kDwTile outputs (a row cut in two runs
    // one shifted-back group more); rows shorter or longer (a 1-D conv's single row) are cut
    // anywhere, the tiles balanced to the pixel.
    const int64_t unit = s.ow >= 8 && s.ow <= kDwTile ? s.ow : 1;
    const PixelTiles tiling(pixels, kDwTile, std::max<int64_t>(1, num_threads()), 8, unit);
    const int64_t tiles = tiling.count;
    const int64_t min_tiles = min_tiles_per_task(tiling, s, mult);
    const int64_t per_image = s.oh * s.ow;
    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        std::vector<const float*> rows(static_cast<size_t>(s.kh));
        std::vector<float> plane_tile(mult > 1 ? static_cast<size_t>(tiling.largest() * ch) : 0);
        FlDwRow args;
        args.width = s.w;
        args.ch = ch;
        args.kh = s.kh;
        args.kw = s.kw;
        args.sw = s.sw;
        args.dw = s.dw;
        args.rows = rows.data();
        args.ldx = ch;
        args.ldk = ch;
        for (int64_t t = begin; t < end; ++t) {
            const int64_t tile_end = tiling.start(t + 1);
            for (int64_t p = tiling.start(t); p < tile_end;) {
                const int64_t nb = p / per_image;
                const int64_t i = (p % per_image) / s.ow;
                const int64_t j = p % s.ow;
                const int64_t seg = std::min(tile_end - p, s.ow - j);  // to the row's end
                const float* image = x + nb * s.h * s.w * ch;
                for (int64_t a = 0; a < s.kh; ++a) {
                    const int64_t row = i * s.sh + a * s.dh - s.pad_top;
                    rows[static_cast<size_t>(a)] =
                        row >= 0 && row < s.h ? image + row * s.w * ch : zero_row;
                }
                args.w = seg;
                args.col0 = j * s.sw - s.pad_left;
                float* yseg = y + p * ch * mult;
                if (mult == 1) {
                    args.k = w.dw_kernel();
                    args.bias = w.dw_bias();
                    args.y = yseg;
                    args.ldy = ch;
                    kernel(&args);
                    if (act) act(yseg, seg * ch);  // the segment's pixel rows are contiguous
                } else {
                    float* tile = plane_tile.data();
                    args.y = tile;
                    args.ldy = ch;
                    for (int64_t jp = 0; jp < mult; ++jp) {
                        args.k = w.dw_kernel(jp);
                        args.bias = w.dw_bias(jp);
                        kernel(&args);
                        if (act) act(tile, seg * ch);
                        spread_plane(tile, seg, ch, mult, jp, yseg);
                    }
                }
                p += seg;
            }
        }
    });
}

}  // namespace

void depthwise_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                       ActFn act) {
    // Strided rows reuse fewer input vectors per load (ceil(kw / sw) outputs each); there the
    // per-pixel kernel measured faster from 96 channels (docs/performance.md §5).
    const int64_t row_max_ch = s.sw == 1 ? kernels().dwconv_row_max_ch
                                         : std::min<int64_t>(64, kernels().dwconv_row_max_ch);
    if (s.c <= row_max_ch)
        row_segments_forward(x, s, w, y, act);
    else
        pixel_tiles_forward(x, s, w, y, act);
}

}  // namespace conv_detail
}  // namespace fl
