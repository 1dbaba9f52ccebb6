// Conv2D driver (NHWC): patch tiles expanded per thread, multiplied by the packed GEMM engine.
//
// Shapes (fastlayers/conv2d.h): x (N, H, W, C), kernel (kh, kw, cg, F) with cg = C/groups,
// fg = F/groups, y (N, OH, OW, F); P = N*OH*OW output pixels, K = kh*kw*cg.
//
// Per group g the conv is the GEMM  Y_g (P, fg) = A_g (P, K) · W_g (K, fg) + bias_g, where row p
// of A_g is the patch of output pixel p: A_g[p][(a*kw + b)*cg + c] =
// xp[n, i*sh + a*dh, j*sw + b*dw, g*cg + c] (zero in the padding). The full A_g (the im2col
// matrix, kh*kw times the input) is never built:
//   * 1x1, stride 1 (pads are then always zero): A_g IS x, rows of lda = C starting at channel
//     g*cg, so the GEMM reads x directly (no copy) and threads itself.
//   * otherwise the pixels are cut into tiles of T = conv2d_tile_pixels(K) rows (48..240, about
//     256 KiB of patches); each parallel_for chunk (one per thread) owns one tile buffer
//     (T x K floats, allocated once per call), and for each of its tiles and each group expands
//     the patches into it (row-major, rs_a = K) and runs the GEMM on it while it is hot in L2,
//     writing Y_g straight into y (ldc = F, column offset g*fg). Extra memory:
//     threads x T x K x 4 bytes; a problem of <= 240 pixels and <= 4 MiB of patches is a
//     single tile instead (one buffer), whose GEMM then threads itself.
//   * depthwise with multiplier 1 (cg == fg == 1): a direct kernel (kernels().dwconv) reads the
//     patch rows through per-tile pointers, no GEMM (see depthwise_forward).
// The GEMM applies the fused activation on each finished row segment.
//
// Reproducibility: each output element is one FMA chain over K in patch order, started from
// the bias, whatever the tile size, the K blocking or the thread split (fastlayers/gemm.h), so
// results are bitwise identical for any thread count; tile sizes may therefore depend on the
// thread count.
#include "fastlayers/conv2d.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastlayers/dispatch.h"
#include "fastlayers/runtime.h"

namespace fl {

PackedConv::PackedConv(const float* kernel, int64_t kh, int64_t kw, int64_t cg, int64_t f,
                       int64_t groups, const float* bias_or_null)
    : kh_(kh), kw_(kw), cg_(cg), f_(f), groups_(groups), has_bias_(bias_or_null != nullptr) {
    if (kh < 1 || kw < 1 || cg < 1 || f < 1 || groups < 1 || f % groups != 0) {
        throw std::invalid_argument("PackedConv: bad kernel shape (" + std::to_string(kh) + ", " +
                                    std::to_string(kw) + ", " + std::to_string(cg) + ", " +
                                    std::to_string(f) + ") for groups " + std::to_string(groups));
    }
    const int64_t fg = f / groups;
    const int64_t k = kh * kw * cg;
    if (depthwise()) {
        dw_.assign(kernel, kernel + kh * kw * f);
        if (bias_or_null) dw_.insert(dw_.end(), bias_or_null, bias_or_null + f);
        return;
    }
    packed_.reserve(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) {
        // Group g: rows (a, b, c) of the kernel, columns g*fg .. g*fg + fg - 1, row stride F.
        packed_.push_back(
            pack_b(kernel + g * fg, k, fg, f, bias_or_null ? bias_or_null + g * fg : nullptr));
    }
}

size_t PackedConv::nbytes() const {
    size_t s = dw_.size() * sizeof(float);
    for (const PackedB& p : packed_) s += p.nbytes();
    return s;
}

int64_t conv2d_tile_pixels(int64_t k) {
    constexpr int64_t kTargetFloats = 65536;  // 256 KiB of patches per tile
    int64_t t = kTargetFloats / std::max<int64_t>(k, 1);
    t = t / kGemmMR * kGemmMR;
    return std::min<int64_t>(240, std::max<int64_t>(48, t));
}

namespace {

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

// Depthwise, multiplier 1 (C == F == groups): y[p, c] = bias[c] + sum over taps of
// xp[tap(p), c] * K[tap, c], by the direct kernel (kernels().dwconv) over tiles of kDwTile
// pixels; each chunk builds the tile's kDwTile x taps row pointers (into x, or at a zero row for
// padding taps, which then add fma(0, K, acc) as the GEMM path would), runs the kernel and
// applies the activation to each finished pixel row.
void depthwise_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                       ActFn act) {
    constexpr int64_t kDwTile = 64;
    const int64_t pixels = s.n * s.oh * s.ow;
    const int64_t taps = s.kh * s.kw;
    const int64_t ch = s.c;
    std::vector<float> zeros(static_cast<size_t>(ch), 0.0f);
    const float* zero_row = zeros.data();
    const float* kern = w.dw_kernel();
    const float* bias = w.dw_bias();
    const auto kernel = kernels().dwconv;
    const int64_t tiles = (pixels + kDwTile - 1) / kDwTile;
    const int64_t macs_per_tile = kDwTile * taps * ch;
    const int64_t min_tiles =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
    const int64_t per_image = s.oh * s.ow;
    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        std::vector<const float*> rows(static_cast<size_t>(kDwTile * taps));
        for (int64_t t = begin; t < end; ++t) {
            const int64_t p0 = t * kDwTile;
            const int64_t m = std::min(kDwTile, pixels - p0);
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
            float* yt = y + p0 * ch;
            kernel(m, ch, taps, rows.data(), kern, bias, yt, ch);
            if (act) {
                for (int64_t r = 0; r < m; ++r) act(yt + r * ch, ch);
            }
        }
    });
}

}  // namespace

void conv2d_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                    ActFn act) {
    if (s.groups != w.groups() || s.kh != w.kh() || s.kw != w.kw() || s.f != w.f() ||
        s.c != w.cg() * s.groups) {
        throw std::invalid_argument("conv2d_forward: the packed kernel (" +
                                    std::to_string(w.kh()) + ", " + std::to_string(w.kw()) + ", " +
                                    std::to_string(w.cg()) + ", " + std::to_string(w.f()) +
                                    ", groups " + std::to_string(w.groups()) +
                                    ") does not match the shape");
    }
    const int64_t pixels = s.n * s.oh * s.ow;
    if (pixels <= 0 || s.f <= 0) return;
    const int64_t cg = w.cg();
    const int64_t fg = s.f / s.groups;
    const int64_t k = s.kh * s.kw * cg;
    const Epilogue ep{act};

    if (w.depthwise()) {
        depthwise_forward(x, s, w, y, act);
        return;
    }

    // 1x1 stride 1: x is the A operand of every group (pads are zero for a 1x1 kernel).
    if (s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pad_top == 0 && s.pad_left == 0) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const PackedB& b = w.group(g);
            gemm_packed_raw(x + g * cg, pixels, s.c, k, fg, b.data(), b.panel_stride(), b.bias(),
                            y + g * fg, s.f, ep);
        }
        return;
    }

    // Tile size: from K (L2 budget), but a problem that fits one tile of at most 240 pixels and
    // 4 MiB is one tile: a single chunk lets the GEMM inside thread itself (over the filters
    // when they outnumber the pixels, so each core streams half of the weights).
    int64_t tile = conv2d_tile_pixels(k);
    if (pixels <= 240 && pixels * k <= (int64_t(1) << 20)) {
        tile = pixels;
    } else {
        // Enough tiles for every thread.
        const int64_t threads = num_threads();
        const int64_t per_thread = (pixels + threads - 1) / threads;
        const int64_t balanced = (per_thread + kGemmMR - 1) / kGemmMR * kGemmMR;
        tile = std::max<int64_t>(std::min(tile, balanced), 2 * kGemmMR);
    }
    const int64_t tiles = (pixels + tile - 1) / tile;
    const int64_t macs_per_tile = tile * k * s.f;
    const int64_t min_tiles =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
    const int64_t buf_floats = std::min(tile, pixels) * k;

    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        AlignedFloats buf = alloc_aligned_floats(buf_floats);
        for (int64_t t = begin; t < end; ++t) {
            const int64_t p0 = t * tile;
            const int64_t m = std::min(tile, pixels - p0);
            for (int64_t g = 0; g < s.groups; ++g) {
                const PackedB& b = w.group(g);
                expand_patches(x, s, cg, g, p0, m, buf.get());
                gemm_packed_raw(buf.get(), m, k, k, fg, b.data(), b.panel_stride(), b.bias(),
                                y + p0 * s.f + g * fg, s.f, ep);
            }
        }
    });
}

}  // namespace fl
