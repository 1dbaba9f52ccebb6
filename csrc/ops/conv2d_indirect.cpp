// Conv2D, ConvAlgo::indirect: the indirect GEMM kernel (csrc/ukernels/igemm/) reading the
// patches in place through per-tile chunk pointers. Notation: conv2d.cpp.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../runtime/dispatch.h"
#include "conv2d_internal.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace conv_detail {
namespace {

// Where the chunks of the indirect path's A rows are (see indirect_forward).
struct ChunkGeometry {
    Conv2dShape s;
    int64_t cg;
    bool row_chunks;  // chunk = kernel row (kw*cg floats), else one tap (cg floats)
    int64_t ks, kc;   // chunks per patch, floats per chunk
    const float* zero_row;
};

// The pixels u in [0, seg) of an output row segment whose chunk reads input columns
// col + u*sw .. col + u*sw + span - 1 of a row of w: those u for which all of them are inside x
// are [*lo, *hi) (written so that no step overflows, whatever the pad in col).
void inside_columns(int64_t col, int64_t sw, int64_t span, int64_t w, int64_t seg, int64_t* lo,
                    int64_t* hi) {
    const int64_t first = col >= 0 ? 0 : (-col - 1) / sw + 1;   // first u with col + u*sw >= 0
    const int64_t end = w - span - col >= 0 ? (w - span - col) / sw + 1 : 0;  // past the last
    *lo = std::min(first, seg);
    *hi = std::max(*lo, std::min(end, seg));
}

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
                int64_t lo = 0, hi = 0;
                inside_columns(col, s.sw, span, wd, seg, &lo, &hi);
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
                    // (nothing to copy when the padding covers the whole chunk: c0 + l may
                    // then be far outside x, even beyond int64 once multiplied by ch)
                    if (e > l) copy_floats(d + l * cg, xrow + (c0 + l) * ch, (e - l) * cg);
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

// Copies the m rows of n floats at src (pixels p0..p0+m-1, consecutive) to their places:
// pixel (nb, i, j) at dst + nb*out.image + i*out.row + j*out.pixel.
void place_rows(const Conv2dShape& s, const OutputPlacement& out, int64_t p0, int64_t m,
                const float* src, int64_t n, float* dst) {
    const int64_t per_image = s.oh * s.ow;
    int64_t nb = p0 / per_image;
    int64_t i = (p0 % per_image) / s.ow;
    int64_t j = p0 % s.ow;
    for (int64_t r = 0; r < m; ++r) {
        copy_floats(dst + nb * out.image + i * out.row + j * out.pixel, src + r * n, n);
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
// about 256 KiB and at least one register tile wide, stays in L2 while the tile's rows stream
// past), then applies the activation to the finished rows. Which thread computes a tile does
// not change its bits. Extra memory per thread: tile x ks pointers, plus tile x K floats of
// scratch for row chunks (touched only at the edges).
//
// With an output placement other than dense (conv2d_forward_into), the kernel writes each column
// block of a tile into a per-thread buffer (tile x nc floats, ldc = the block's width), the
// activation runs on it, and each pixel's row is copied to its place while it is in L1.
namespace {

// What the driver needs of a convolution besides where its chunks are: the GEMM is, per group,
// (pixels x ks*kc) . (ks*kc x fg), rows of A given as ks chunk pointers of kc floats.
struct IndirectPlan {
    int64_t pixels;      // output pixels (rows of A), all images
    int64_t groups, fg;  // groups, filters per group
    int64_t ks, kc;      // chunks per patch, floats per chunk
    uint64_t row_floats;  // floats of x between the inputs of consecutive output pixels
                          // (modulo 2^64: only its remainders by 512 and 1024 are used)
    bool row_chunks;     // chunks may be expanded into scratch (tile x K floats per thread)
};

// The driver of every indirect convolution (see indirect_forward). pointers(g, p0, m, ptrs,
// scratch) fills the chunk pointers of pixels [p0, p0 + m) of group g; with `placed`,
// place(p0, m, src, n, col) copies the m finished rows of n floats at src to output column col
// of those pixels; otherwise row p of the output is y + p*f.
template <class Pointers, class Place>
void run_indirect(const IndirectPlan& p, const PackedConv& w, float* y, ActFn act, bool placed,
                  const Pointers& pointers, const Place& place) {
    const int64_t fg = p.fg, f = p.fg * p.groups, ks = p.ks;
    const int64_t k = p.ks * p.kc;
    // Column block: the K x nc packed weights of a block (about 256 KiB) stay in L2 while the
    // tile's rows stream past. nc is a multiple of the kernel's main tile width (igemm_nr: 16,
    // or 32 on AVX-512), at least one tile, so K > 2048 no longer gives blocks of 16 filters
    // (nor 1024 < K < 1366 blocks of 48), which ran the AVX-512 kernel's 24 x 16 or 12 x 16
    // tiles: one B load per 24 or 12 broadcasts. On a Xeon core 3x3 convs with 128-448
    // channels ran 140-170 GFLOP/s with those blocks, 180-200 with blocks of 32 or 64
    // (docs/performance.md §5). A block of 32 at K = 4096 is 512 KiB.
    const int64_t nr = kernels().igemm_nr;
    const int64_t fit = (65536 / std::max<int64_t>(k, 1)) / nr * nr;
    const int64_t nc = std::min(std::max(nr, fit), (fg + kGemmNR - 1) / kGemmNR * kGemmNR);
    // Pixel runs are multiples of the kernel's row block (kernels().igemm_mr: 6, or 12 for the
    // AVX-512 tiles), so only the last run of the problem ends in a short register tile.
    const int64_t mr = kernels().igemm_mr;
    const int64_t tile = std::max(mr, conv2d_tile_pixels(k) / mr * mr);
    const int64_t blocks = (p.pixels + mr - 1) / mr;
    const int64_t macs_per_block = mr * k * f;
    const int64_t min_blocks =
        std::max<int64_t>(1, ((int64_t(1) << 16) + macs_per_block - 1) / macs_per_block);
    const int64_t workers =
        std::max<int64_t>(1, std::min<int64_t>(num_threads(), blocks / min_blocks));
    const auto kernel = kernels().igemm;
    // Consecutive pixels of an output row read input pixels sw*C floats apart. When that is a
    // multiple of 1024 floats (4 KiB: stride-2 convs with 512 channels, stride 1 or 2 with 1024)
    // all rows of a register tile share one L1 set, and AVX-512's 12- and 24-row tiles evicted
    // their own lines every step (0.84-0.91x the AVX2 kernel on a Zen 4 core); the kernel is
    // then called on 6 rows at a time (6 x 64 tiles above 16 filters, 6 x 16 or 6 x 8 below).
    // 512 floats apart (2 KiB: stride 2 with 256 channels, stride 1 with 512) the rows share
    // two sets, and the 24 x 16 tile of <= 16 filters (column blocks of 16 filters, which K >
    // 2048 gave before the blocks above were rounded to 32) put 12 lines in each: calls of 12
    // rows (12 x 16 tiles) keep 6 per set. At most 6 rows per set in general. On every ISA:
    // AVX2's 12 x 8 tile for 8 filters or fewer has 12 such rows too (that case was not
    // measured). Same chains, same bits.
    const int64_t call_rows =
        p.row_floats % 1024 == 0 ? 6 : p.row_floats % 512 == 0 ? 12 : tile;

    // Guided self-scheduling (fl::GuidedRuns): each worker takes the next run of pixels, `tile`
    // long while much remains, then shrinking to whole row blocks, so the workers finish within
    // a few blocks of each other even when one of them started late or was descheduled.
    GuidedRuns runs(p.pixels, workers, mr, tile);

    parallel_for(workers, 1, [&](int64_t, int64_t) {
        std::vector<const float*> ptrs(static_cast<size_t>(tile * ks));
        AlignedFloats scratch = p.row_chunks ? alloc_aligned_floats(tile * k) : AlignedFloats();
        AlignedFloats block = placed ? alloc_aligned_floats(tile * nc) : AlignedFloats();
        int64_t p0 = 0, p1 = 0;
        while (runs.claim(&p0, &p1)) {
            const int64_t m = p1 - p0;
            for (int64_t g = 0; g < p.groups; ++g) {
                pointers(g, p0, m, ptrs.data(), scratch.get());
                const PackedB& b = w.group(g);
                for (int64_t j0 = 0; j0 < fg; j0 += nc) {
                    const int64_t n = std::min(nc, fg - j0);
                    // Rows of ldy floats at yt: y itself, or the block buffer when placed.
                    float* yt = placed ? block.get() : y + p0 * f + g * fg + j0;
                    const int64_t ldy = placed ? n : f;
                    for (int64_t r = 0; r < m; r += call_rows) {
                        kernel(std::min(call_rows, m - r), n, ks, p.kc, ptrs.data() + r * ks,
                               b.data() + (j0 / kGemmNR) * b.panel_stride(), b.panel_stride(),
                               b.bias() ? b.bias() + j0 : nullptr, yt + r * ldy, ldy);
                    }
                    if (act && n == ldy) {
                        act(yt, m * n);  // whole rows: one contiguous run
                    } else if (act) {
                        for (int64_t r = 0; r < m; ++r) act(yt + r * ldy, n);
                    }
                    if (placed) place(p0, m, yt, n, g * fg + j0);
                }
            }
        }
    });
}

// The chunk pointers of output pixels [p0, p0 + m) of group g (xg = x + g*cg) of a Conv3D
// (conv3d_forward): chunk (a, b, e) of a pixel, at ptrs[r*ks + (a*kw + b)*kd + e], is the
// C/groups floats of x at depth oz*sd + e*dd - front, row oy*sh + a*dh - top and column
// ox*sw + b*dw - left, or the zero row where that is padding. A run of pixels on one output
// row shares its depths and rows, so each (a, b, e) is handled for the whole run.
void build_chunk_pointers_3d(const Conv3dShape& s, const float* xg, int64_t p0, int64_t m,
                             const float** ptrs, const float* zero_row) {
    const int64_t ks = s.kd * s.kh * s.kw;
    const int64_t plane = s.oh * s.ow, per_image = s.od * plane;
    const int64_t pixel = s.c, row_len = s.w * s.c, depth_len = s.h * row_len;
    int64_t nb = p0 / per_image;
    int64_t oz = (p0 % per_image) / plane;
    int64_t oy = (p0 % plane) / s.ow;
    int64_t ox = p0 % s.ow;
    for (int64_t r = 0; r < m;) {
        const int64_t seg = std::min(m - r, s.ow - ox);  // pixels r.. on this output row
        const float* image = xg + nb * s.d * depth_len;
        for (int64_t a = 0; a < s.kh; ++a) {
            const int64_t row = oy * s.sh + a * s.dh - s.pad_top;
            for (int64_t b = 0; b < s.kw; ++b) {
                // Pixel ox + u reads column col + u*sw: inside x for u in [lo, hi).
                const int64_t col = ox * s.sw + b * s.dw - s.pad_left;
                int64_t lo = 0, hi = 0;
                inside_columns(col, s.sw, 1, s.w, seg, &lo, &hi);
                for (int64_t e = 0; e < s.kd; ++e) {
                    const int64_t z = oz * s.sd + e * s.dd - s.pad_front;
                    const float** dst = ptrs + r * ks + (a * s.kw + b) * s.kd + e;
                    if (row < 0 || row >= s.h || z < 0 || z >= s.d) {
                        for (int64_t u = 0; u < seg; ++u) dst[u * ks] = zero_row;
                        continue;
                    }
                    const float* base = image + z * depth_len + row * row_len;
                    for (int64_t u = 0; u < lo; ++u) dst[u * ks] = zero_row;
                    for (int64_t u = lo; u < hi; ++u) dst[u * ks] = base + (col + u * s.sw) * pixel;
                    for (int64_t u = hi; u < seg; ++u) dst[u * ks] = zero_row;
                }
            }
        }
        r += seg;
        ox += seg;
        if (ox == s.ow) {
            ox = 0;
            if (++oy == s.oh) {
                oy = 0;
                if (++oz == s.od) {
                    oz = 0;
                    ++nb;
                }
            }
        }
    }
}

}  // namespace

void indirect_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                      OutputPlacement out, ActFn act) {
    const int64_t cg = w.cg();
    const bool row_chunks = s.groups == 1 && s.dw == 1 && cg < 16;
    const int64_t ks = row_chunks ? s.kh : s.kh * s.kw;
    const int64_t kc = row_chunks ? s.kw * cg : cg;
    std::vector<float> zeros(static_cast<size_t>(std::max<int64_t>(kc, 1)), 0.0f);
    const ChunkGeometry geo{s, cg, row_chunks, ks, kc, zeros.data()};
    const IndirectPlan plan{s.n * s.oh * s.ow, s.groups, s.f / s.groups, ks, kc,
                            uint64_t(s.sw) * uint64_t(s.c), row_chunks};
    const OutputPlacement dense = dense_output(s);
    const bool placed =
        out.pixel != dense.pixel || out.row != dense.row || out.image != dense.image;
    run_indirect(
        plan, w, y, act, placed,
        [&](int64_t g, int64_t p0, int64_t m, const float** ptrs, float* scratch) {
            build_chunk_pointers(geo, x + g * cg, p0, m, ptrs, scratch);
        },
        [&](int64_t p0, int64_t m, const float* src, int64_t n, int64_t col) {
            place_rows(s, out, p0, m, src, n, y + col);
        });
}

// Conv3D as the conv2d of its depth-stacked input (conv3d_forward), without the stack: the
// packed kernel is the stacked conv2d's, (kh, kw, kd*cg, F), whose patch order (a, b, then the
// kd*cg stacked channels: depth tap e, then channel) is the chunk order above, so the chains
// are the stacked conv2d's on the tap-chunk path (kc = cg). cg here is per depth tap.
void indirect_forward_3d(const float* x, const Conv3dShape& s, const PackedConv& w, float* y,
                         ActFn act) {
    const int64_t cg = s.c / s.groups;
    std::vector<float> zeros(static_cast<size_t>(cg), 0.0f);
    const float* zero_row = zeros.data();
    const IndirectPlan plan{s.n * s.od * s.oh * s.ow, s.groups, s.f / s.groups,
                            s.kd * s.kh * s.kw, cg, uint64_t(s.sw) * uint64_t(s.c), false};
    run_indirect(
        plan, w, y, act, false,
        [&](int64_t g, int64_t p0, int64_t m, const float** ptrs, float*) {
            build_chunk_pointers_3d(s, x + g * cg, p0, m, ptrs, zero_row);
        },
        [](int64_t, int64_t, const float*, int64_t, int64_t) {});
}

}  // namespace conv_detail
}  // namespace fl
