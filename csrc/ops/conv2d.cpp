// Conv2D driver (NHWC): an indirect GEMM reading the patches in place, or patch tiles expanded
// per thread and multiplied by the packed GEMM engine.
//
// Shapes (fastlayers/conv2d.h): x (N, H, W, C), kernel (kh, kw, cg, F) with cg = C/groups,
// fg = F/groups, y (N, OH, OW, F); P = N*OH*OW output pixels, K = kh*kw*cg.
//
// Per group g the conv is the GEMM  Y_g (P, fg) = A_g (P, K) · W_g (K, fg) + bias_g, where row p
// of A_g is the patch of output pixel p: A_g[p][(a*kw + b)*cg + c] =
// xp[n, i*sh + a*dh, j*sw + b*dw, g*cg + c] (zero in the padding). The full A_g (the im2col
// matrix, kh*kw times the input) is never built:
//   * depthwise (cg == 1; multiplier fg == 1, or any fg with C >= 8): a direct kernel
//     (kernels().dwconv) reads the patch rows through per-tile pointers, no GEMM (see
//     depthwise_forward).
//   * K <= kIgemmMaxK (4096), where the ISA has an indirect kernel (not NEON yet): the indirect
//     GEMM kernel (kernels().igemm) reads each patch row as a few chunks of x through per-tile
//     pointers - kernel rows of kw*cg floats for few-channel convs, else single taps of cg
//     floats - so nothing is copied but the few kernel rows that the left/right padding clips
//     (see igemm_forward). At one thread it measured 1.08x (64 channels, 3x3) to 1.9-2.3x
//     (3 channels) faster than the expanded tiles below, 1.6-7x on grouped convs. 1x1 convs
//     take it too (one chunk per pixel).
//   * 1x1, stride 1 (pads are then always zero) without the indirect path: A_g IS x, rows of
//     lda = C starting at channel g*cg, so the GEMM reads x directly (no copy) and threads
//     itself.
//   * otherwise the pixels are cut into tiles of T = conv2d_tile_pixels(K) rows (48..240, about
//     256 KiB of patches); each parallel_for chunk (one per thread) owns one tile buffer
//     (T x K floats, allocated once per call), and for each of its tiles and each group expands
//     the patches into it (row-major, rs_a = K) and runs the GEMM on it while it is hot in L2,
//     writing Y_g straight into y (ldc = F, column offset g*fg). Extra memory:
//     threads x T x K x 4 bytes; a problem of <= 240 pixels and <= 4 MiB of patches is a
//     single tile instead (one buffer), whose GEMM then threads itself. (The GEMM engine
//     blocks K, which the indirect kernel does not.)
// The fused activation is applied to each finished row segment (tile) while it is hot.
//
// Reproducibility: each output element is one FMA chain over K in patch order, started from
// the bias, whatever the path, the tile size, the K blocking or the thread split
// (fastlayers/gemm.h; the igemm contract in csrc/ukernels/ukernels.h is the same chain), so
// results are bitwise identical for any thread count; tile sizes may therefore depend on the
// thread count.
#include "fastlayers/conv2d.h"

#include <algorithm>
#include <atomic>
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
        // Plane j of the kernel / bias: output channels c*fg + j, c < groups (= C).
        const int64_t taps = kh * kw;
        dw_.resize(static_cast<size_t>(taps * f + (bias_or_null ? f : 0)));
        float* planes = dw_.data();
        for (int64_t j = 0; j < fg; ++j)
            for (int64_t t = 0; t < taps; ++t)
                for (int64_t c = 0; c < groups; ++c)
                    planes[(j * taps + t) * groups + c] = kernel[t * f + c * fg + j];
        if (bias_or_null) {
            float* bias_planes = planes + taps * f;
            for (int64_t j = 0; j < fg; ++j)
                for (int64_t c = 0; c < groups; ++c)
                    bias_planes[j * groups + c] = bias_or_null[c * fg + j];
        }
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

// Depthwise (C == groups, multiplier m = F / C): y[p, c*m + j] = bias[c*m + j] + sum over taps
// of xp[tap(p), c] * K[tap, c*m + j], by the direct kernel (kernels().dwconv) over tiles of
// kDwTile pixels; each chunk builds the tile's kDwTile x taps row pointers (into x, or at a
// zero row for padding taps, which then add fma(0, K, acc) as the GEMM path would), runs the
// kernel and applies the activation to each finished pixel row. For m > 1 the kernel runs once
// per plane j (the filters of channels c*m + j) into a kDwTile x C scratch tile, which is then
// spread into y with stride m: the same FMA chain per output as the GEMM path, 6-9x faster
// than it (1x56x56x64, m = 2 and 4; the grouped GEMM had N = m columns per group).
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
    const int64_t tiles = (pixels + kDwTile - 1) / kDwTile;
    const int64_t macs_per_tile = kDwTile * taps * ch * mult;
    const int64_t min_tiles =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_tile - 1) / macs_per_tile);
    const int64_t per_image = s.oh * s.ow;
    parallel_for(tiles, min_tiles, [&](int64_t begin, int64_t end) {
        std::vector<const float*> rows(static_cast<size_t>(kDwTile * taps));
        std::vector<float> plane_tile(mult > 1 ? static_cast<size_t>(kDwTile * ch) : 0);
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
            float* yt = y + p0 * ch * mult;
            if (mult == 1) {
                kernel(m, ch, taps, rows.data(), w.dw_kernel(), w.dw_bias(), yt, ch);
                if (act) {
                    for (int64_t r = 0; r < m; ++r) act(yt + r * ch, ch);
                }
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

// Largest patch length K served by the indirect path: its B column block (K x 16 at least) must
// stay in L2 while the rows of a tile stream past it, since the kernel has no K blocking.
constexpr int64_t kIgemmMaxK = 4096;

// Where the chunks of the indirect path's A rows are (see igemm_forward).
struct ChunkGeometry {
    Conv2dShape s;
    int64_t cg;
    bool row_chunks;  // chunk = kernel row (kw*cg floats), else one tap (cg floats)
    int64_t ks, kc;   // chunks per patch, floats per chunk
    const float* zero_row;
};

// The chunk pointers of output pixels [p0, p0 + m) of group g (xg = x + g*cg): chunk t of pixel
// r at ptrs[r*ks + t]. A run of pixels on one output row shares its kernel rows, so each chunk
// is handled for the whole run: in-bounds pixels (an interval of columns) get a pointer into x,
// the others the zero row (taps) or their chunk expanded into scratch at (r*kh + a)*kc (row
// chunks clipped by the left/right padding).
void build_chunk_pointers(const ChunkGeometry& q, const float* xg, int64_t p0, int64_t m,
                          const float** ptrs, float* scratch) {
    const Conv2dShape& s = q.s;
    const int64_t ks = q.ks, kc = q.kc, cg = q.cg, ch = s.c, wd = s.w;
    const int64_t per_row = ks / s.kh;             // chunks per kernel row: 1 or kw
    const int64_t span = q.row_chunks ? s.kw : 1;  // input columns covered by one chunk
    const int64_t per_image = s.oh * s.ow;
    int64_t nb = p0 / per_image;
    int64_t i = (p0 % per_image) / s.ow;
    int64_t j = p0 % s.ow;
    for (int64_t r = 0; r < m;) {
        const int64_t seg = std::min(m - r, s.ow - j);  // pixels r.. on output row i, columns j..
        const float* image = xg + nb * s.h * wd * ch;
        for (int64_t a = 0; a < s.kh; ++a) {
            const int64_t row = i * s.sh + a * s.dh - s.pad_top;
            const bool row_in = row >= 0 && row < s.h;
            const float* xrow = row_in ? image + row * wd * ch : nullptr;
            for (int64_t b = 0; b < per_row; ++b) {
                const float** dst = ptrs + r * ks + a * per_row + b;
                if (!row_in) {
                    for (int64_t u = 0; u < seg; ++u) dst[u * ks] = q.zero_row;
                    continue;
                }
                // Pixel j + u reads columns col + u*sw .. + span - 1, col = first column at u = 0;
                // they are all inside x for u in [lo, hi).
                const int64_t col = j * s.sw - s.pad_left + b * s.dw;
                int64_t lo = col >= 0 ? 0 : (-col + s.sw - 1) / s.sw;
                int64_t hi = wd - span - col >= 0 ? (wd - span - col) / s.sw + 1 : 0;
                lo = std::min(lo, seg);
                hi = std::max(lo, std::min(hi, seg));
                // Outside [lo, hi): the zero row (a padding tap), or the kernel row expanded
                // with zeros where the padding clips it (ch == cg for row chunks).
                const auto edge = [&](int64_t u) {
                    if (!q.row_chunks) {
                        dst[u * ks] = q.zero_row;
                        return;
                    }
                    const int64_t c0 = col + u * s.sw;
                    float* d = scratch + ((r + u) * s.kh + a) * kc;
                    const int64_t l = std::min<int64_t>(s.kw, std::max<int64_t>(0, -c0));
                    const int64_t e = std::max<int64_t>(l, std::min<int64_t>(s.kw, wd - c0));
                    zero_floats(d, l * cg);
                    copy_floats(d + l * cg, xrow + (c0 + l) * ch, (e - l) * cg);
                    zero_floats(d + e * cg, (s.kw - e) * cg);
                    dst[u * ks] = d;
                };
                for (int64_t u = 0; u < lo; ++u) edge(u);
                for (int64_t u = lo; u < hi; ++u) dst[u * ks] = xrow + (col + u * s.sw) * ch;
                for (int64_t u = hi; u < seg; ++u) edge(u);
            }
        }
        r += seg;
        j += seg;
        if (j == s.ow) {
            j = 0;
            if (++i == s.oh) {
                i = 0;
                ++nb;
            }
        }
    }
}

// The indirect path (kernels().igemm): no patch copy. Row i of A_g is read in place as ks
// chunks of kc floats of x, in the patch order (a, b, c):
//   * row chunks (groups == 1, dw == 1, cg < 16): chunk a = the kw*cg contiguous floats of x
//     under kernel row a (ks = kh, kc = kw*cg), so few-channel convs (RGB stems) run long
//     chunks; a chunk clipped by the left/right padding is expanded into the tile's scratch
//     buffer at its patch position (zeros where it is clipped);
//   * tap chunks otherwise: chunk (a, b) = the cg floats of tap (a, b) (ks = kh*kw, kc = cg).
// A chunk of a padding row or tap points at a row of zeros (adding fma(0, w, acc) exactly as
// the expanded patch would). Threads take tiles of at most `tile` pixels from a shared counter
// (guided: smaller tiles near the end); for each tile a thread builds the pointers per group and
// runs the kernel per column block of at most `nc` filters (K x nc of the packed weights,
// <= 256 KiB, stays in L2 while the tile's rows stream past), then applies the activation to
// the finished rows. Which thread computes a tile does not change its bits. Extra memory per
// thread: tile x ks pointers, plus tile x K floats of scratch for row chunks (touched only at
// the edges).
void igemm_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y, ActFn act) {
    const int64_t pixels = s.n * s.oh * s.ow;
    const int64_t cg = w.cg();
    const int64_t fg = s.f / s.groups;
    const int64_t k = s.kh * s.kw * cg;
    const bool row_chunks = s.groups == 1 && s.dw == 1 && cg < 16;
    const int64_t ks = row_chunks ? s.kh : s.kh * s.kw;
    const int64_t kc = row_chunks ? s.kw * cg : cg;
    const int64_t nc = std::max<int64_t>(
        kGemmNR, std::min<int64_t>((65536 / std::max<int64_t>(k, 1)) / kGemmNR * kGemmNR,
                                   (fg + kGemmNR - 1) / kGemmNR * kGemmNR));
    // Pixel runs are multiples of the kernel's row block (kernels().igemm_mr: 6, or 12 for the
    // AVX-512 tiles), so only the last run of the problem ends in a short register tile.
    const int64_t mr = kernels().igemm_mr;
    const int64_t tile = std::max(mr, conv2d_tile_pixels(k) / mr * mr);
    const int64_t blocks = (pixels + mr - 1) / mr;
    const int64_t macs_per_block = mr * k * s.f;
    const int64_t min_blocks =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_block - 1) / macs_per_block);
    const int64_t workers =
        std::max<int64_t>(1, std::min<int64_t>(num_threads(), blocks / min_blocks));
    std::vector<float> zeros(static_cast<size_t>(std::max<int64_t>(kc, 1)), 0.0f);
    const float* zero_row = zeros.data();
    const auto kernel = kernels().igemm;
    const ChunkGeometry geo{s, cg, row_chunks, ks, kc, zero_row};

    // Guided self-scheduling: each worker takes the next run of pixels, `tile` long while much
    // remains, then shrinking to remaining / (2 x workers) but at least one row block, so the
    // workers finish within a few blocks of each other even when one of them started late or
    // was descheduled (a static split waits for the slowest core of a busy machine).
    std::atomic<int64_t> next{0};
    const auto grab = [&](int64_t& p0, int64_t& m) {
        int64_t p = next.load(std::memory_order_relaxed);
        do {
            if (p >= pixels) return false;
            const int64_t guided =
                workers > 1 ? (pixels - p) / (2 * workers) / mr * mr : tile;
            m = std::min(pixels - p, std::min(tile, std::max(mr, guided)));
        } while (!next.compare_exchange_weak(p, p + m, std::memory_order_relaxed));
        p0 = p;
        return true;
    };

    parallel_for(workers, 1, [&](int64_t, int64_t) {
        std::vector<const float*> ptrs(static_cast<size_t>(tile * ks));
        AlignedFloats scratch = row_chunks ? alloc_aligned_floats(tile * k) : AlignedFloats();
        const int64_t f = s.f;
        int64_t p0 = 0, m = 0;
        while (grab(p0, m)) {
            for (int64_t g = 0; g < s.groups; ++g) {
                build_chunk_pointers(geo, x + g * cg, p0, m, ptrs.data(), scratch.get());
                const PackedB& b = w.group(g);
                for (int64_t j0 = 0; j0 < fg; j0 += nc) {
                    const int64_t n = std::min(nc, fg - j0);
                    float* yt = y + p0 * f + g * fg + j0;
                    kernel(m, n, ks, kc, ptrs.data(), b.data() + (j0 / kGemmNR) * b.panel_stride(),
                           b.panel_stride(), b.bias() ? b.bias() + j0 : nullptr, yt, f);
                    if (act && n == f) {
                        act(yt, m * f);  // whole rows: one contiguous run (few filters)
                    } else if (act) {
                        for (int64_t r = 0; r < m; ++r) act(yt + r * f, n);
                    }
                }
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

    // 1x1 stride 1: x is the A operand of every group (pads are zero for a 1x1 kernel). The
    // indirect kernel reads it in place as well (one chunk per pixel) and is taken first where
    // it exists: on AVX-512, 1x28x28x256 -> 256 and 1x14x14x512 -> 512 measured 0.44 ms on it
    // against 0.89-0.92 ms on the GEMM path (1 thread, the AVX2 GEMM kernel); on AVX2 both
    // paths measured the same (0.88-0.97 ms).
    const bool igemm_ok = k <= kIgemmMaxK && kernels().igemm;
    if (!igemm_ok && s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pad_top == 0 &&
        s.pad_left == 0) {
        for (int64_t g = 0; g < s.groups; ++g) {
            const PackedB& b = w.group(g);
            gemm_packed_raw(x + g * cg, pixels, s.c, k, fg, b.data(), b.panel_stride(), b.bias(),
                            y + g * fg, s.f, ep);
        }
        return;
    }

    if (igemm_ok) {
        igemm_forward(x, s, w, y, act);
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
