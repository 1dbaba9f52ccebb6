// Conv2D (NHWC) on the GEMM engine: C++ API of the core (driver in csrc/ops/conv2d*.cpp).
//
// y[n, i, j, f] = act(bias[f] + sum over a < kh, b < kw, c < cg of
//                     xp[n, i*sh + a*dh, j*sw + b*dw, g*cg + c] * K[a, b, c, f]),
// g = f / fg, cg = C / groups, fg = F / groups, xp = x zero-padded by (pad_top, pad_left)
// before and whatever the output size needs after (docs/semantics.md §5; the Python layer computes
// the TensorFlow split and the output size).
//
// Per group g the kernel slice K[:, :, :, g*fg:(g+1)*fg] is a (kh*kw*cg, fg) row-major matrix
// with row stride F, packed once (PackedConv) into the fl::PackedB layout, bias folded in.
//
// Reproducibility: every output element is one FMA chain over its kh*kw*cg products in the
// order (a, b, c), started from the bias (fastlayers/gemm.h), so results are bitwise identical
// for any number of threads and any batch split.
#pragma once

#include <cstdint>
#include <vector>

#include "fastlayers/gemm.h"

namespace fl {

struct Conv2dShape {
    int64_t n = 0, h = 0, w = 0, c = 0;  // input (N, H, W, C)
    int64_t kh = 1, kw = 1, f = 0;       // kernel (kh, kw, C/groups, F)
    int64_t groups = 1;
    int64_t sh = 1, sw = 1;  // strides
    int64_t dh = 1, dw = 1;  // dilation
    int64_t pad_top = 0, pad_left = 0;
    int64_t oh = 0, ow = 0;  // output spatial size
};

// How conv2d_forward computes a packed kernel (csrc/ops/conv2d*.cpp). Chosen once, when the
// kernel is packed, from its shape and the active ISA's kernels; the only choice left to a call
// is that a 1x1 kernel with unit strides and no padding (not depthwise) runs the GEMM on x
// itself, since strides and pads are per call.
enum class ConvAlgo {
    automatic,  // PackedConv constructor only: choose as below
    // Depthwise (cg == 1: one input channel per group, C == groups) with multiplier m = F / C of
    // 1, or any m when C >= 8 (fewer channels fill no vector of the direct kernel: a 1-channel
    // stem with 32 filters is better served by the GEMM): a direct kernel over per-tile row
    // pointers, no GEMM operands.
    depthwise,
    // Otherwise, K = kh*kw*cg <= 4096 where the ISA has an indirect GEMM kernel (not NEON yet):
    // the indirect GEMM reads the patches in place through per-tile chunk pointers.
    indirect,
    // Otherwise: patch tiles expanded per thread (im2col by tiles) for the packed GEMM.
    tiles,
};

// A conv kernel (kh, kw, cg, F) (+ bias (F,)) packed once, with its algorithm: for depthwise,
// m planes of (kh*kw, C) row-major for the direct kernel, plane j holding the filters of output
// channels c*m + j (for m == 1 the Keras layout (kh*kw, F) itself), then m bias planes of C
// floats; otherwise one PackedB per group, each the (kh*kw*cg, fg) matrix of that group's
// filters.
class PackedConv {
  public:
    PackedConv() = default;
    // kernel: (kh, kw, cg, f) row-major contiguous; bias: nullptr or (f,). f % groups == 0,
    // else std::invalid_argument. `algo` other than automatic forces an algorithm (tests);
    // depthwise needs cg == 1 and indirect an ISA with an indirect kernel, else
    // std::invalid_argument. Every algorithm gives the same bits.
    PackedConv(const float* kernel, int64_t kh, int64_t kw, int64_t cg, int64_t f,
               int64_t groups, const float* bias_or_null, ConvAlgo algo = ConvAlgo::automatic);

    int64_t kh() const { return kh_; }
    int64_t kw() const { return kw_; }
    int64_t cg() const { return cg_; }
    int64_t f() const { return f_; }
    int64_t groups() const { return groups_; }
    bool has_bias() const { return has_bias_; }
    ConvAlgo algo() const { return algo_; }
    bool depthwise() const { return algo_ == ConvAlgo::depthwise; }
    int64_t multiplier() const { return f_ / groups_; }
    // Direct-kernel planes (depthwise() only).
    const float* dw_kernel(int64_t j = 0) const { return dw_.data() + j * kh_ * kw_ * groups_; }
    const float* dw_bias(int64_t j = 0) const {
        return has_bias_ ? dw_.data() + kh_ * kw_ * f_ + j * groups_ : nullptr;
    }
    // GEMM operand of group g (not depthwise()).
    const PackedB& group(int64_t g) const { return packed_[static_cast<size_t>(g)]; }
    size_t nbytes() const;

  private:
    int64_t kh_ = 0, kw_ = 0, cg_ = 0, f_ = 0, groups_ = 1;
    bool has_bias_ = false;
    ConvAlgo algo_ = ConvAlgo::tiles;
    std::vector<PackedB> packed_;
    std::vector<float> dw_;
};

// Pixels per patch tile for a patch length K = kh*kw*cg: the tile (pixels x K floats) targets
// 256 KiB, clamped to [48, 240] pixels (a multiple of 6, the micro-kernel's row block).
int64_t conv2d_tile_pixels(int64_t k);

// y (N, OH, OW, F) = conv(x (N, H, W, C)) by w.algo(); x and y C-contiguous, not overlapping.
// The shape's kernel fields must match w (std::invalid_argument otherwise). N == 0 does
// nothing. Extra memory: 1x1 stride-1 unpadded convs (not depthwise) run the GEMM on x itself;
// depthwise: the row kernel, kh row pointers per thread, a zero row of W x C floats when
// there are padding rows, and for multiplier > 1 a 128 x C tile per thread; the per-pixel
// kernel, per-tile row pointers (threads x 64 x kh*kw pointers + a zero row of C floats, and
// for multiplier > 1 a 64 x C tile per thread); indirect: per-tile chunk pointers (threads
// x conv2d_tile_pixels(K) x kh*kw pointers, a zero row, and for C < 16 a scratch tile of
// conv2d_tile_pixels(K) x K floats per thread of which only the rows clipped by the left/right
// padding are written); tiles: one tile buffer per thread chunk, <= threads x
// conv2d_tile_pixels(K) x K x 4 bytes (per thread at most max(256 KiB, 192 x K bytes)), except
// that a whole problem of <= 240 pixels and <= 4 MiB of patches is one tile (one buffer; the
// GEMM inside then threads over filters or pixels itself).
void conv2d_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                    ActFn act);

// Where conv2d_forward_into writes: output pixel (n, i, j) at y + n*image + i*row + j*pixel
// floats, its F channels contiguous. Pixels must not overlap: pixel >= F, row >=
// (OW - 1)*pixel + F, image >= (OH - 1)*row + (OW - 1)*pixel + F (as any view with positive
// steps of a C-contiguous (..., F) array). dense_output(s) is conv2d_forward's own layout.
struct OutputPlacement {
    int64_t pixel = 0, row = 0, image = 0;
};
OutputPlacement dense_output(const Conv2dShape& s);

// conv2d_forward writing its output pixels where `out` says instead of densely (a strided
// view, such as the rows and columns of one output phase of a transposed convolution,
// docs/performance.md §5). Same bits as conv2d_forward. The indirect algorithm writes each
// finished register tile's rows in place from a per-thread buffer; the others compute into a
// dense temporary (N*OH*OW*F floats) and copy it over. x must not overlap the output.
void conv2d_forward_into(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                         OutputPlacement out, ActFn act);

// ---------------------------------------------------------------------------- Conv3D
// A Conv3D of x (N, D, H, W, C), NDHWC, kernel (kd, kh, kw, C/groups, F).
struct Conv3dShape {
    int64_t n = 0, d = 0, h = 0, w = 0, c = 0;  // input (N, D, H, W, C)
    int64_t kd = 1, kh = 1, kw = 1, f = 0;      // kernel (kd, kh, kw, C/groups, F)
    int64_t groups = 1;
    int64_t sd = 1, sh = 1, sw = 1;  // strides
    int64_t dd = 1, dh = 1, dw = 1;  // dilation
    int64_t pad_front = 0, pad_top = 0, pad_left = 0;
    int64_t od = 0, oh = 0, ow = 0;  // output size
};

// y (N, OD, OH, OW, F) = Conv3D(x), with w the packed kernel of the Conv3D as a conv2d over its
// depth-stacked input: PackedConv(kernel (kh, kw, kd*cg, F) whose row (a, b, e*cg + c) is the
// Conv3D kernel's (e, a, b, c), groups) - the layout docs/semantics.md §30 stacks the depths
// in. Runs the indirect GEMM with chunk pointers into x itself (no stacked copy): the same
// chains, so the same bits, as conv2d_forward on the stacked input. w.algo() must be
// ConvAlgo::indirect and w must match s (std::invalid_argument otherwise); x and y
// C-contiguous, not overlapping; N == 0 does nothing. Extra memory per thread: a tile of
// conv2d_tile_pixels(K) x kd*kh*kw pointers and a zero row of C/groups floats.
void conv3d_forward(const float* x, const Conv3dShape& s, const PackedConv& w, float* y,
                    ActFn act);

}  // namespace fl
