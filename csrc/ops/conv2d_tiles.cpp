// Conv2D, ConvAlgo::tiles: patch tiles expanded per thread (im2col by tiles) and multiplied by
// the packed GEMM engine. Notation: conv2d.cpp.
#include <algorithm>
#include <cstdint>

#include "conv2d_internal.h"
#include "fastlayers/gemm.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace conv_detail {
namespace {

// Patches of output pixels [p0, p0 + m) for group g into buf (m x K, row-major, K = kh*kw*cg).
void expand_patches(const float* x, const Conv2dShape& s, int64_t cg, int64_t g, int64_t p0,
                    int64_t m, float* buf) {
    const int64_t k = s.kh * s.kw * cg;
    const int64_t per_image = s.oh * s.ow;
    // Walk (n, i, j) incrementally from p0.
    int64_t nb = p0 / per_image;
    int64_t i = (p0 % per_image) / s.ow;
    int64_t j = p0 % s.ow;
    // With one group and no horizontal dilation, the kw taps of a kernel row are one
    // contiguous run of kw*C floats of x (clipped at the left/right edges).
    const bool contiguous_row = s.groups == 1 && s.dw == 1;
    for (int64_t r = 0; r < m; ++r) {
        float* dst = buf + r * k;
        const int64_t col0 = j * s.sw - s.pad_left;
        for (int64_t a = 0; a < s.kh; ++a) {
            float* d = dst + a * s.kw * cg;
            const int64_t row = i * s.sh + a * s.dh - s.pad_top;
            if (row < 0 || row >= s.h) {
                zero_floats(d, s.kw * cg);
                continue;
            }
            const float* xrow = x + ((nb * s.h + row) * s.w) * s.c + g * cg;
            if (contiguous_row) {
                const int64_t lo = std::min<int64_t>(s.kw, std::max<int64_t>(0, -col0));
                const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(s.kw, s.w - col0));
                zero_floats(d, lo * cg);
                copy_floats(d + lo * cg, xrow + (col0 + lo) * s.c, (hi - lo) * cg);
                zero_floats(d + hi * cg, (s.kw - hi) * cg);
            } else {
                for (int64_t b = 0; b < s.kw; ++b) {
                    const int64_t col = col0 + b * s.dw;
                    if (col < 0 || col >= s.w) {
                        zero_floats(d + b * cg, cg);
                    } else {
                        copy_floats(d + b * cg, xrow + col * s.c, cg);
                    }
                }
            }
        }
        if (++j == s.ow) {
            j = 0;
            if (++i == s.oh) {
                i = 0;
                ++nb;
            }
        }
    }
}

}  // namespace

// Tiles of at most T = conv2d_tile_pixels(K) pixels (see conv2d.cpp); each parallel_for chunk
// owns one tile buffer and, for each of its tiles and each group, expands the patches into it
// and runs the GEMM on it while it is hot in L2.
void tiles_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                   ActFn act) {
    const int64_t pixels = s.n * s.oh * s.ow;
    const int64_t cg = w.cg();
    const int64_t fg = s.f / s.groups;
    const int64_t k = s.kh * s.kw * cg;
    const Epilogue ep{act};

    // Tiles: from K (an L2 budget of patches), at least 2 * kGemmMR pixels each (a tile streams
    // all of the weights), balanced over the threads to the pixel (PixelTiles; in units of the
    // 6-row register blocks, (8, 7, 7, 512) -> 512 ran at 205 GFLOP/s on two Zen 4 threads, as
    // 210 + 182 pixels, against 214-221 as 196 + 196: a partial register block costs less). A
    // problem that fits one tile of at most 240 pixels and 4 MiB is one tile: a single chunk
    // lets the GEMM inside thread itself (over the filters when they outnumber the pixels, so
    // each core streams half of the weights).
    const bool one_tile = pixels <= 240 && pixels * k <= (int64_t(1) << 20);
    const PixelTiles pt = one_tile ? PixelTiles(pixels, pixels, 1, 1, 1)
                                   : PixelTiles(pixels, conv2d_tile_pixels(k),
                                                std::max<int64_t>(1, num_threads()), 2 * kGemmMR,
                                                1);
    const int64_t tiles = pt.count;
    const int64_t tile = pt.largest();
    const int64_t macs_per_tile = tile * k * s.f;
    const int64_t min_tiles =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
    const int64_t buf_floats = tile * k;

    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        AlignedFloats buf = alloc_aligned_floats(buf_floats);
        for (int64_t t = begin; t < end; ++t) {
            const int64_t p0 = pt.start(t);
            const int64_t m = pt.start(t + 1) - p0;
            for (int64_t g = 0; g < s.groups; ++g) {
                const PackedB& b = w.group(g);
                expand_patches(x, s, cg, g, p0, m, buf.get());
                gemm_packed_raw(buf.get(), m, k, k, fg, b.data(), b.panel_stride(), b.bias(),
                                y + p0 * s.f + g * fg, s.f, ep);
            }
        }
    });
}

}  // namespace conv_detail
}  // namespace fl
