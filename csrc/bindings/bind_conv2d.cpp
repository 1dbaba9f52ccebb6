// Conv2D: pre-packed conv weights (PackedConv) and the conv2d op.
//
// Inputs are checked, never converted (bindings.h); the Python layer converts and computes the
// geometry (pads, output size) before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "bindings.h"
#include "fastlayers/activations.h"
#include "fastlayers/conv2d.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

PackedConv make_packed_conv(const py::handle& kernel_in, const py::handle& bias_in,
                            int64_t groups) {
    const FloatArrayC kernel = require_f32(kernel_in, "PackedConv", "kernel", 4);
    const int64_t kh = kernel.shape(0), kw = kernel.shape(1), cg = kernel.shape(2),
                  f = kernel.shape(3);
    if (groups < 1 || kh < 1 || kw < 1 || cg < 1 || f < 1 || f % groups != 0) {
        throw py::value_error("PackedConv: kernel (" + std::to_string(kh) + ", " +
                              std::to_string(kw) + ", " + std::to_string(cg) + ", " +
                              std::to_string(f) + ") must be non-empty with filters divisible "
                              "by groups (" + std::to_string(groups) + ")");
    }
    FloatArrayC bias_arr;
    const float* bias = optional_f32_vector(bias_in, "PackedConv", "bias", f, &bias_arr);
    const float* kp = kernel.data();
    PackedConv packed;
    call_without_gil_if(kh * kw * cg * f >= (int64_t(1) << 20),
                        [&] { packed = PackedConv(kp, kh, kw, cg, f, groups, bias); });
    return packed;
}

// The shape of a conv of x by w, but for its output size (oh, ow), with the strides, dilation
// and top/left pads checked (>= 1, >= 1, given).
Conv2dShape conv_shape(const char* op, const FloatArrayC& x, const PackedConv& w,
                        const std::array<int64_t, 2>& strides,
                        const std::array<int64_t, 2>& dilation, int64_t pad_top,
                        int64_t pad_left) {
    Conv2dShape s;
    s.n = x.shape(0);
    s.h = x.shape(1);
    s.w = x.shape(2);
    s.c = x.shape(3);
    s.kh = w.kh();
    s.kw = w.kw();
    s.f = w.f();
    s.groups = w.groups();
    s.sh = strides[0];
    s.sw = strides[1];
    s.dh = dilation[0];
    s.dw = dilation[1];
    for (int64_t v : {s.sh, s.sw, s.dh, s.dw}) {
        if (v < 1) {
            throw py::value_error(std::string(op) + ": strides and dilation must be >= 1");
        }
    }
    if (s.c != checked_mul(w.cg(), w.groups(), op, "channels per group * groups")) {
        throw py::value_error(std::string(op) + ": x has " + std::to_string(s.c) +
                              " channels, the kernel expects " +
                              std::to_string(w.cg() * w.groups()) + " (" +
                              std::to_string(w.cg()) + " per group x " +
                              std::to_string(w.groups()) + " groups)");
    }
    s.pad_top = pad_top;
    s.pad_left = pad_left;
    return s;
}

// One axis of a convolution of `in` inputs padded by before + after, a kernel of `taps` taps
// dilated by `dilation`: {the dilated kernel's extent, the padded length}, each checked for
// int64 overflow ("<op>: the dilated kernel <axis> overflows", "the padded <axis> ...").
struct AxisExtent {
    int64_t kernel, padded;
};
AxisExtent axis_extent(const char* op, const char* axis, int64_t in, int64_t before,
                       int64_t after, int64_t taps, int64_t dilation) {
    const std::string k = std::string("the dilated kernel ") + axis;
    const std::string p = std::string("the padded ") + axis;
    const int64_t kernel =
        checked_add(checked_mul(taps - 1, dilation, op, k.c_str()), 1, op, k.c_str());
    const int64_t padded =
        checked_add(checked_add(in, before, op, p.c_str()), after, op, p.c_str());
    return {kernel, padded};
}

double macs(const Conv2dShape& s, const PackedConv& w) {
    return static_cast<double>(s.n) * static_cast<double>(s.oh) * static_cast<double>(s.ow) *
           static_cast<double>(s.f) * static_cast<double>(s.kh * s.kw * w.cg());
}

// x (N, H, W, C); kernel: a (kh, kw, cg, F) array (packed for this call, with `bias`) or a
// PackedConv (then bias must be None and groups must match it).
py::array conv2d(const py::handle& x_in, const py::handle& kernel_in, const py::handle& bias_in,
                 const py::handle& strides_in, const py::handle& dilation_in,
                 const py::handle& pads_in, const py::handle& groups_in, int activation_id) {
    const FloatArrayC x = require_f32(x_in, "conv2d", "x", 4);
    const std::array<int64_t, 2> strides = int64_args<2>(strides_in, "conv2d", "strides");
    const std::array<int64_t, 2> dilation = int64_args<2>(dilation_in, "conv2d", "dilation");
    const std::array<int64_t, 4> pads = int64_args<4>(pads_in, "conv2d", "pads");
    const int64_t groups = int64_arg(groups_in, "conv2d", "groups");
    if (groups < 1) throw py::value_error("conv2d: groups must be >= 1, got " + std::to_string(groups));
    const ActFn act = act_kernel_from_id(activation_id, "conv2d", "activation_id");
    PackedConv local;
    const PackedConv* w = nullptr;
    if (py::isinstance<PackedConv>(kernel_in)) {
        if (!bias_in.is_none()) {
            throw py::value_error("conv2d: bias must be None with a PackedConv (it holds the "
                                  "bias)");
        }
        w = &kernel_in.cast<const PackedConv&>();
        if (w->groups() != groups) {
            throw py::value_error("conv2d: groups " + std::to_string(groups) +
                                  " does not match the PackedConv (" +
                                  std::to_string(w->groups()) + ")");
        }
    } else {
        local = make_packed_conv(kernel_in, bias_in, groups);
        w = &local;
    }
    Conv2dShape s = conv_shape("conv2d", x, *w, strides, dilation, pads[0], pads[2]);
    for (int64_t v : pads) {
        if (v < 0) throw py::value_error("conv2d: pads must be >= 0");
    }
    const char* op = "conv2d";
    const AxisExtent eh = axis_extent(op, "height", s.h, pads[0], pads[1], s.kh, s.dh);
    const AxisExtent ew = axis_extent(op, "width", s.w, pads[2], pads[3], s.kw, s.dw);
    if (eh.padded < eh.kernel || ew.padded < ew.kernel) {
        throw py::value_error("conv2d: the padded input is smaller than the dilated kernel");
    }
    s.oh = (eh.padded - eh.kernel) / s.sh + 1;
    s.ow = (ew.padded - ew.kernel) / s.sw + 1;
    // The output must be addressable: N * OH * OW * F elements.
    checked_mul(checked_mul(checked_mul(s.n, s.oh, op, "the output size"), s.ow, op,
                            "the output size"),
                s.f, op, "the output size");
    FloatArrayC y = new_f32({s.n, s.oh, s.ow, s.f});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(macs(s, *w) >= kReleaseGilMinMacs,
                        [&] { conv2d_forward(xp, s, *w, yp, act); });
    return std::move(y);
}

// Conv3D on its depth-stacked conv2d's PackedConv (conv3d_forward): x (N, D, H, W, C),
// strides / dilation (d, h, w), pads (front, back, top, bottom, left, right); kd, the kernel's
// depth, since the PackedConv holds kd * cg stacked channels per group.
py::array conv3d(const py::handle& x_in, const py::handle& kernel_in, int64_t kd,
                 const py::handle& strides_in, const py::handle& dilation_in,
                 const py::handle& pads_in, int activation_id) {
    const char* op = "conv3d";
    const FloatArrayC x = require_f32(x_in, op, "x", 5);
    const std::array<int64_t, 3> strides = int64_args<3>(strides_in, op, "strides");
    const std::array<int64_t, 3> dilation = int64_args<3>(dilation_in, op, "dilation");
    const std::array<int64_t, 6> pads = int64_args<6>(pads_in, op, "pads");
    const ActFn act = act_kernel_from_id(activation_id, op, "activation_id");
    if (!py::isinstance<PackedConv>(kernel_in)) {
        throw py::type_error("conv3d: kernel must be a PackedConv (the depth-stacked kernel)");
    }
    const PackedConv& w = kernel_in.cast<const PackedConv&>();
    if (w.algo() != ConvAlgo::indirect) {
        throw py::value_error("conv3d: the PackedConv does not run the indirect GEMM on this "
                              "machine; run the conv2d of the depth-stacked input instead");
    }
    if (kd < 1 || w.cg() % kd != 0) {
        throw py::value_error("conv3d: kd " + std::to_string(kd) + " does not divide the " +
                              std::to_string(w.cg()) + " stacked channels per group");
    }
    Conv3dShape s;
    s.n = x.shape(0);
    s.d = x.shape(1);
    s.h = x.shape(2);
    s.w = x.shape(3);
    s.c = x.shape(4);
    s.kd = kd;
    s.kh = w.kh();
    s.kw = w.kw();
    s.f = w.f();
    s.groups = w.groups();
    if (s.c != checked_mul(w.cg() / kd, w.groups(), op, "channels per group * groups")) {
        throw py::value_error("conv3d: x has " + std::to_string(s.c) + " channels, the kernel "
                              "expects " + std::to_string(w.cg() / kd * w.groups()));
    }
    if (s.d < 1 || s.h < 1 || s.w < 1) {  // (no channels fails the channel count above)
        throw py::value_error("conv3d: x has an empty depth, height or width axis");
    }
    const int64_t in[3] = {s.d, s.h, s.w}, taps[3] = {s.kd, s.kh, s.kw};
    const char* const axes[3] = {"depth", "height", "width"};
    int64_t out[3] = {0, 0, 0};
    for (int i = 0; i < 3; ++i) {
        if (strides[i] < 1 || dilation[i] < 1) {
            throw py::value_error("conv3d: strides and dilation must be >= 1");
        }
        if (pads[2 * i] < 0 || pads[2 * i + 1] < 0) {
            throw py::value_error("conv3d: pads must be >= 0");
        }
        const AxisExtent e =
            axis_extent(op, axes[i], in[i], pads[2 * i], pads[2 * i + 1], taps[i], dilation[i]);
        if (e.padded < e.kernel) {
            throw py::value_error("conv3d: the padded input is smaller than the dilated kernel");
        }
        out[i] = (e.padded - e.kernel) / strides[i] + 1;
    }
    s.sd = strides[0];
    s.sh = strides[1];
    s.sw = strides[2];
    s.dd = dilation[0];
    s.dh = dilation[1];
    s.dw = dilation[2];
    s.pad_front = pads[0];
    s.pad_top = pads[2];
    s.pad_left = pads[4];
    s.od = out[0];
    s.oh = out[1];
    s.ow = out[2];
    checked_mul(checked_mul(checked_mul(checked_mul(s.n, s.od, op, "the output size"), s.oh, op,
                                        "the output size"),
                            s.ow, op, "the output size"),
                s.f, op, "the output size");
    FloatArrayC y = new_f32({s.n, s.od, s.oh, s.ow, s.f});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    const double m = static_cast<double>(s.n) * s.od * s.oh * s.ow * s.f * s.kh * s.kw * w.cg();
    // (conv3d_forward's std::invalid_argument reaches Python as ValueError.)
    call_without_gil_if(m >= kReleaseGilMinMacs, [&] { conv3d_forward(xp, s, w, yp, act); });
    return std::move(y);
}

// conv2d writing into `out`, a float32 (N, OH, OW, F) view with contiguous channels (such as
// y[:, r::s, q::s] of a C-contiguous y): x (N, H, W, C) C-contiguous, kernel a PackedConv
// (groups and bias its own); pads (top, left): the input is zero beyond its bottom and right
// edges, as far as out's OH and OW reach. Returns None.
void conv2d_into(const py::handle& out_in, const py::handle& x_in, const py::handle& kernel_in,
                 const py::handle& strides_in, const py::handle& dilation_in,
                 const py::handle& pads_in, int activation_id) {
    const char* op = "conv2d_into";
    const FloatArrayC x = require_f32(x_in, op, "x", 4);
    if (!py::isinstance<PackedConv>(kernel_in)) {
        throw py::type_error(std::string(op) + ": kernel must be a PackedConv, got " +
                             type_name(kernel_in));
    }
    const PackedConv& w = kernel_in.cast<const PackedConv&>();
    const std::array<int64_t, 2> pads = int64_args<2>(pads_in, op, "pads");
    if (pads[0] < 0 || pads[1] < 0) throw py::value_error("conv2d_into: pads must be >= 0");
    Conv2dShape s = conv_shape(op, x, w, int64_args<2>(strides_in, op, "strides"),
                               int64_args<2>(dilation_in, op, "dilation"), pads[0], pads[1]);
    if (s.h < 1 || s.w < 1) {
        throw py::value_error("conv2d_into: x must have a height and a width of at least 1, "
                              "got shape " + shape_str(x));
    }
    const ActFn act = act_kernel_from_id(activation_id, op, "activation_id");
    const StridedView4<float> out = strided_view4<float>(op, out_in, "out", true);
    if (out.shape[0] != s.n || out.shape[3] != s.f || out.shape[1] < 1 || out.shape[2] < 1) {
        throw py::value_error("conv2d_into: out must have shape (" + std::to_string(s.n) +
                              ", OH >= 1, OW >= 1, " + std::to_string(s.f) + "), got " +
                              shape_str(out.shape, 4));
    }
    s.oh = out.shape[1];
    s.ow = out.shape[2];
    if (s.n == 0) return;
    const uintptr_t x_lo = reinterpret_cast<uintptr_t>(x.data());
    if (ranges_overlap(out.lo, out.hi, x_lo, x_lo + static_cast<uintptr_t>(x.nbytes()))) {
        throw py::value_error("conv2d_into: out must not overlap x");
    }
    // The strides of a dimension of size 1 are never used: given their dense values (overlapping
    // pixels are refused by conv2d_forward_into, std::invalid_argument -> ValueError).
    OutputPlacement place;
    place.pixel = s.ow > 1 ? out.rows.st : s.f;
    place.row = s.oh > 1 ? out.rows.sh : s.ow * place.pixel;
    place.image = s.n > 1 ? out.rows.sb : s.oh * place.row;
    const float* xp = x.data();
    float* yp = out.rows.data;
    call_without_gil_if(macs(s, w) >= kReleaseGilMinMacs,
                        [&] { conv2d_forward_into(xp, s, w, yp, place, act); });
}

}  // namespace

void bind_conv2d(py::module_& m) {
    py::class_<PackedConv>(m, "PackedConv",
                           "Conv2D weights packed once for the C++ GEMM: kernel (kh, kw, "
                           "C // groups, F) float32 C-contiguous, bias (F,) float32 or None, "
                           "groups.")
        .def(py::init(&make_packed_conv), py::arg("kernel"), py::arg("bias") = py::none(),
             py::arg("groups") = 1)
        .def_property_readonly("kernel_shape",
                               [](const PackedConv& p) {
                                   return py::make_tuple(p.kh(), p.kw(), p.cg(), p.f());
                               })
        .def_property_readonly("groups", &PackedConv::groups)
        .def_property_readonly("has_bias", &PackedConv::has_bias)
        .def_property_readonly("nbytes", &PackedConv::nbytes, "Bytes of packed storage.")
        .def_property_readonly(
            "indirect", [](const PackedConv& p) { return p.algo() == ConvAlgo::indirect; },
            "Whether it runs the indirect GEMM (which conv3d needs).")
        .def("__repr__", [](const PackedConv& p) {
            return "PackedConv(kernel_shape=(" + std::to_string(p.kh()) + ", " +
                   std::to_string(p.kw()) + ", " + std::to_string(p.cg()) + ", " +
                   std::to_string(p.f()) + "), groups=" + std::to_string(p.groups()) +
                   ", bias=" + (p.has_bias() ? "True" : "False") + ")";
        });
    m.def("conv2d", &conv2d, py::arg("x"), py::arg("kernel"), py::arg("bias"),
          py::arg("strides"), py::arg("dilation"), py::arg("pads"), py::arg("groups"),
          py::arg("activation_id") = 0,
          "NHWC conv: x (N, H, W, C) float32 C-contiguous; kernel (kh, kw, C // groups, F) "
          "float32 C-contiguous (packed per call, with bias (F,) or None) or a PackedConv "
          "(bias None); strides (sh, sw); dilation (dh, dw); pads (top, bottom, left, right); "
          "activation_id 0 = linear, else an id of activation_ids(). Returns a new "
          "(N, OH, OW, F) float32 array.");
    m.def("conv3d", &conv3d, py::arg("x"), py::arg("kernel"), py::arg("kd"),
          py::arg("strides"), py::arg("dilation"), py::arg("pads"),
          py::arg("activation_id") = 0,
          "Conv3D (NDHWC) with the PackedConv of its depth-stacked conv2d (kernel (kh, kw, "
          "kd * cg, F), groups), reading x in place: x (N, D, H, W, C) float32 C-contiguous; "
          "strides, dilation (d, h, w); pads (front, back, top, bottom, left, right). The "
          "PackedConv must run the indirect GEMM. Returns a new (N, OD, OH, OW, F) float32 "
          "array, bitwise the conv2d of the depth-stacked input.");
    m.def("conv2d_into", &conv2d_into, py::arg("out"), py::arg("x"), py::arg("kernel"),
          py::arg("strides"), py::arg("dilation"), py::arg("pads"),
          py::arg("activation_id") = 0,
          "conv2d writing into out, a float32 (N, OH, OW, F) view with contiguous channels and "
          "non-overlapping pixels (such as y[:, r::s, q::s]): x (N, H, W, C) C-contiguous, not "
          "overlapping out; kernel a PackedConv; strides, dilation; pads (top, left), the input "
          "being zero below and right of it as far as OH and OW reach. Returns None.");
}

}  // namespace py_bindings
}  // namespace fl
