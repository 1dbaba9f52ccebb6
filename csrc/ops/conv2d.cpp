// Conv2D driver (NHWC): packs the kernel and chooses its algorithm once (PackedConv, ConvAlgo),
// then runs it per call: a direct depthwise kernel (conv2d_depthwise.cpp), an indirect GEMM
// reading the patches in place (conv2d_indirect.cpp), or patch tiles expanded per thread and
// multiplied by the packed GEMM engine (conv2d_tiles.cpp).
//
// Shapes (fastlayers/conv2d.h): x (N, H, W, C), kernel (kh, kw, cg, F) with cg = C/groups,
// fg = F/groups, y (N, OH, OW, F); P = N*OH*OW output pixels, K = kh*kw*cg.
//
// Per group g the conv is the GEMM  Y_g (P, fg) = A_g (P, K) · W_g (K, fg) + bias_g, where row p
// of A_g is the patch of output pixel p: A_g[p][(a*kw + b)*cg + c] =
// xp[n, i*sh + a*dh, j*sw + b*dw, g*cg + c] (zero in the padding). The full A_g (the im2col
// matrix, kh*kw times the input) is never built:
//   * 1x1, stride 1 (pads are then always zero; the one choice made per call, since strides
//     and pads are per call): A_g IS x, rows of lda = C starting at channel g*cg, so the GEMM
//     reads x directly (no copy) and threads itself.
//   * depthwise (cg == 1; multiplier fg == 1, or any fg with C >= 8): two direct kernels, no
//     GEMM (ConvAlgo::depthwise, conv2d_depthwise.cpp): the row kernel (kernels().dwconv_row)
//     over segments of output rows read from the input rows, or for many channels the
//     per-pixel kernel (kernels().dwconv) through per-tile tap pointers.
//   * K <= kIgemmMaxK (4096), where the ISA has an indirect kernel (not NEON yet): the indirect
//     GEMM kernel (kernels().igemm) reads each patch row as a few chunks of x through per-tile
//     pointers - kernel rows of kw*cg floats for few-channel convs, else single taps of cg
//     floats - so nothing is copied but the few kernel rows that the left/right padding clips
//     (ConvAlgo::indirect, conv2d_indirect.cpp). At one thread it measured 1.08x (64
//     channels, 3x3) to 1.9-2.3x (3 channels) faster than the expanded tiles below, 1.6-7x on
//     grouped convs.
//   * otherwise (ConvAlgo::tiles, conv2d_tiles.cpp) the pixels are cut into tiles of at most
//     T = conv2d_tile_pixels(K) rows (48..240, about 256 KiB of patches), balanced over the
//     threads (PixelTiles, conv2d_internal.h); each parallel_for
//     chunk (one per thread) owns one tile buffer (T x K floats, allocated once per call), and
//     for each of its tiles and each group expands the patches into it (row-major, rs_a = K)
//     and runs the GEMM on it while it is hot in L2, writing Y_g straight into y (ldc = F,
//     column offset g*fg). Extra memory:
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
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../runtime/dispatch.h"
#include "conv2d_internal.h"
#include "fastlayers/runtime.h"

namespace fl {

namespace {

// The algorithm for a kernel (kh, kw, cg, f) in `groups` (ConvAlgo, fastlayers/conv2d.h).
ConvAlgo choose_algo(int64_t kh, int64_t kw, int64_t cg, int64_t f, int64_t groups) {
    if (cg == 1 && (f == groups || groups >= 8)) return ConvAlgo::depthwise;
    if (kh * kw * cg <= conv_detail::kIgemmMaxK && kernels().igemm) return ConvAlgo::indirect;
    return ConvAlgo::tiles;
}

}  // namespace

PackedConv::PackedConv(const float* kernel, int64_t kh, int64_t kw, int64_t cg, int64_t f,
                       int64_t groups, const float* bias_or_null, ConvAlgo algo)
    : kh_(kh), kw_(kw), cg_(cg), f_(f), groups_(groups), has_bias_(bias_or_null != nullptr) {
    if (kh < 1 || kw < 1 || cg < 1 || f < 1 || groups < 1 || f % groups != 0) {
        throw std::invalid_argument("PackedConv: bad kernel shape (" + std::to_string(kh) + ", " +
                                    std::to_string(kw) + ", " + std::to_string(cg) + ", " +
                                    std::to_string(f) + ") for groups " + std::to_string(groups));
    }
    if (algo == ConvAlgo::depthwise && cg != 1) {
        throw std::invalid_argument("PackedConv: the depthwise algorithm needs one input channel "
                                    "per group, got " + std::to_string(cg));
    }
    if (algo == ConvAlgo::indirect && !kernels().igemm) {
        throw std::invalid_argument(std::string("PackedConv: no indirect GEMM kernel for ") +
                                    isa_name(kernels().isa));
    }
    algo_ = algo == ConvAlgo::automatic ? choose_algo(kh, kw, cg, f, groups) : algo;
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

// a * b + c for non-negative sizes, false on int64 overflow.
bool mul_add_fits(int64_t a, int64_t b, int64_t c, int64_t* r) {
    if (a < 0 || b < 0 || c < 0) return false;
    if (a != 0 && b > INT64_MAX / a) return false;
    if (a * b > INT64_MAX - c) return false;
    *r = a * b + c;
    return true;
}

// One spatial axis of a convolution: input length >= 1, output length >= 0, kernel taps, stride
// and dilation >= 1, pad >= 0, and the index arithmetic of the last output's last tap and of
// the padded length within int64.
bool axis_fits(int64_t in, int64_t out, int64_t taps, int64_t stride, int64_t dilation,
               int64_t pad) {
    int64_t tap = 0, last = 0, padded = 0;
    return in >= 1 && out >= 0 && taps >= 1 && stride >= 1 && dilation >= 1 && pad >= 0 &&
           mul_add_fits(taps - 1, dilation, 0, &tap) &&
           mul_add_fits(std::max<int64_t>(out - 1, 0), stride, tap, &last) &&
           mul_add_fits(1, in, pad, &padded);
}

// The geometry's index arithmetic fits int64: the last tap of the last output row and column,
// (o - 1) * stride + (k - 1) * dilation, the padded input extent, N * OH * OW * F output
// elements and N * H * W * C input elements. The bindings check this first with messages
// naming the argument; a direct C++ caller gets std::invalid_argument.
void check_geometry(const Conv2dShape& s) {
    int64_t t = 0;
    const bool ok = s.n >= 0 && s.c >= 1 &&
                    axis_fits(s.h, s.oh, s.kh, s.sh, s.dh, s.pad_top) &&
                    axis_fits(s.w, s.ow, s.kw, s.sw, s.dw, s.pad_left) &&
                    mul_add_fits(s.n, s.oh, 0, &t) && mul_add_fits(t, s.ow, 0, &t) &&
                    mul_add_fits(t, s.f, 0, &t) && mul_add_fits(s.h, s.w, 0, &t) &&
                    mul_add_fits(t, s.c, 0, &t) &&
                    mul_add_fits(t, std::max<int64_t>(s.n, 1), 0, &t);
    if (!ok) {
        throw std::invalid_argument(
            "conv2d_forward: invalid geometry (sizes must be positive, strides and dilation >= "
            "1, pads >= 0, and the index arithmetic must fit int64)");
    }
}

}  // namespace

OutputPlacement dense_output(const Conv2dShape& s) {
    return OutputPlacement{s.f, s.ow * s.f, s.oh * s.ow * s.f};
}

namespace {

void check_kernel_matches(const Conv2dShape& s, const PackedConv& w) {
    if (s.groups != w.groups() || s.kh != w.kh() || s.kw != w.kw() || s.f != w.f() ||
        s.c != w.cg() * s.groups) {
        throw std::invalid_argument("conv2d_forward: the packed kernel (" +
                                    std::to_string(w.kh()) + ", " + std::to_string(w.kw()) + ", " +
                                    std::to_string(w.cg()) + ", " + std::to_string(w.f()) +
                                    ", groups " + std::to_string(w.groups()) +
                                    ") does not match the shape");
    }
}

// 1x1 stride 1 without padding: x is the A operand of every group. (Keras's geometry never
// pads a 1x1 kernel, but a caller may: Conv2DTranspose's phases pad below and right, and
// then the output has more pixels than x.)
bool x_is_operand(const Conv2dShape& s) {
    return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pad_top == 0 &&
           s.pad_left == 0 && s.oh == s.h && s.ow == s.w;
}

}  // namespace

void conv2d_forward(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                    ActFn act) {
    check_geometry(s);
    check_kernel_matches(s, w);
    const int64_t pixels = s.n * s.oh * s.ow;
    if (pixels <= 0 || s.f <= 0) return;
    if (w.depthwise()) {
        conv_detail::depthwise_forward(x, s, w, y, act);
        return;
    }

    if (x_is_operand(s)) {
        const int64_t cg = w.cg();
        const int64_t fg = s.f / s.groups;
        for (int64_t g = 0; g < s.groups; ++g) {
            const PackedB& b = w.group(g);
            gemm_packed_raw(x + g * cg, pixels, s.c, cg, fg, b.data(), b.panel_stride(), b.bias(),
                            y + g * fg, s.f, Epilogue{act});
        }
        return;
    }

    if (w.algo() == ConvAlgo::indirect) {
        conv_detail::indirect_forward(x, s, w, y, dense_output(s), act);
    } else {
        conv_detail::tiles_forward(x, s, w, y, act);
    }
}

void conv3d_forward(const float* x, const Conv3dShape& s, const PackedConv& w, float* y,
                    ActFn act) {
    // Geometry: as check_geometry, per axis, with the index arithmetic within int64.
    int64_t t = 0;
    bool ok = s.n >= 0 && s.c >= 1 && s.groups >= 1 && s.c % s.groups == 0 &&
              axis_fits(s.d, s.od, s.kd, s.sd, s.dd, s.pad_front) &&
              axis_fits(s.h, s.oh, s.kh, s.sh, s.dh, s.pad_top) &&
              axis_fits(s.w, s.ow, s.kw, s.sw, s.dw, s.pad_left);
    ok = ok && mul_add_fits(s.n, s.od, 0, &t) && mul_add_fits(t, s.oh, 0, &t) &&
         mul_add_fits(t, s.ow, 0, &t) && mul_add_fits(t, s.f, 0, &t) &&
         mul_add_fits(s.d, s.h, 0, &t) && mul_add_fits(t, s.w, 0, &t) &&
         mul_add_fits(t, s.c, 0, &t) && mul_add_fits(t, std::max<int64_t>(s.n, 1), 0, &t);
    if (!ok) {
        throw std::invalid_argument(
            "conv3d_forward: invalid geometry (sizes must be positive, strides and dilation >= "
            "1, pads >= 0, channels divisible by groups, and the index arithmetic must fit "
            "int64)");
    }
    int64_t stacked = 0;  // channels per group of the depth-stacked conv2d
    if (w.algo() != ConvAlgo::indirect || s.groups != w.groups() || s.kh != w.kh() ||
        s.kw != w.kw() || s.f != w.f() || !mul_add_fits(s.kd, s.c / s.groups, 0, &stacked) ||
        w.cg() != stacked) {
        throw std::invalid_argument(
            "conv3d_forward: the packed kernel (" + std::to_string(w.kh()) + ", " +
            std::to_string(w.kw()) + ", " + std::to_string(w.cg()) + ", " +
            std::to_string(w.f()) + ", groups " + std::to_string(w.groups()) +
            ") is not the indirect depth-stacked kernel of this Conv3D");
    }
    if (s.n * s.od * s.oh * s.ow <= 0 || s.f <= 0) return;
    conv_detail::indirect_forward_3d(x, s, w, y, act);
}

void conv2d_forward_into(const float* x, const Conv2dShape& s, const PackedConv& w, float* y,
                         OutputPlacement out, ActFn act) {
    check_geometry(s);
    check_kernel_matches(s, w);
    const int64_t pixels = s.n * s.oh * s.ow;
    if (pixels <= 0 || s.f <= 0) return;
    if (out.pixel < s.f || out.row < (s.ow - 1) * out.pixel + s.f ||
        out.image < (s.oh - 1) * out.row + (s.ow - 1) * out.pixel + s.f) {
        throw std::invalid_argument(
            "conv2d_forward_into: the output pixels must not overlap one another");
    }
    const OutputPlacement dense = dense_output(s);
    if (out.pixel == dense.pixel && out.row == dense.row && out.image == dense.image) {
        conv2d_forward(x, s, w, y, act);
    } else if (x_is_operand(s) && !w.depthwise()) {
        // A 1x1 conv with x as the A operand (the phases of a Conv2DTranspose whose kernel
        // equals its strides, U-Net's 2x2 stride 2): one GEMM per output row and group, its
        // pixels out.pixel floats apart (ldc), written in place. The same GEMM as
        // conv2d_forward's, row by row, so the same bits; through the indirect kernel's
        // per-thread buffer a sixth of the time went to copying.
        const int64_t rows = s.n * s.oh;
        const int64_t cg = w.cg(), fg = s.f / s.groups;
        const int64_t macs_per_row = std::max<int64_t>(1, s.ow * s.c * fg);
        parallel_for(rows, std::max<int64_t>(1, (int64_t(1) << 17) / macs_per_row),
                     [&](int64_t begin, int64_t end) {
                         for (int64_t r = begin; r < end; ++r) {
                             const float* a = x + r * s.w * s.c;
                             float* c = y + (r / s.oh) * out.image + (r % s.oh) * out.row;
                             for (int64_t g = 0; g < s.groups; ++g) {
                                 const PackedB& b = w.group(g);
                                 gemm_packed_raw(a + g * cg, s.ow, s.c, cg, fg, b.data(),
                                                 b.panel_stride(), b.bias(), c + g * fg,
                                                 out.pixel, Epilogue{act});
                             }
                         }
                     });
    } else if (w.algo() == ConvAlgo::indirect) {
        conv_detail::indirect_forward(x, s, w, y, out, act);
    } else {
        // Depthwise and tiles write densely: a temporary, then each pixel's F floats copied.
        const AlignedFloats tmp = alloc_aligned_floats(pixels * s.f);  // every float written
        conv2d_forward(x, s, w, tmp.get(), act);
        parallel_for(s.n * s.oh, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.ow * s.f)),
                     [&](int64_t begin, int64_t end) {
                         for (int64_t r = begin; r < end; ++r) {
                             float* dst = y + (r / s.oh) * out.image + (r % s.oh) * out.row;
                             const float* src = tmp.get() + r * s.ow * s.f;
                             for (int64_t j = 0; j < s.ow; ++j) {
                                 conv_detail::copy_floats(dst + j * out.pixel, src + j * s.f, s.f);
                             }
                         }
                     });
    }
}

}  // namespace fl
