// Ops: unpack arrays, check what the Python layer promised, release the GIL, call a driver.
//
// Inputs are checked, never converted (bindings.h): a silent copy can never hide in a
// benchmark. The Python layer (fastlayers/) converts before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

py::array softmax_lastdim(const py::array& x_in, const py::object& mask_in, bool limits) {
    const char* op = "softmax_lastdim";
    const FloatArrayC x = require_f32(x_in, op, "x");
    if (x.ndim() < 1) throw py::value_error("softmax_lastdim: x must have ndim >= 1, got 0");

    // x (..., n) -> (rows, n); y has x's shape and is freshly allocated, so C-contiguous.
    FloatArrayC y = new_f32_like(x);
    const int64_t size = static_cast<int64_t>(x.size());
    if (size == 0) return std::move(y);  // (the mask is not looked at)
    py::array mask_arr;
    const uint8_t* keep = optional_mask(
        mask_in, op, std::vector<int64_t>(x.shape(), x.shape() + x.ndim()), &mask_arr);
    const int64_t n = static_cast<int64_t>(x.shape(x.ndim() - 1));
    const int64_t rows = size / n;
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(size >= kReleaseGilMinElements, [=] {
        if (keep)
            fl::softmax_masked_lastdim(xp, keep, yp, rows, n);
        else
            fl::softmax_lastdim(xp, yp, rows, n, limits);
    });
    return std::move(y);
}

// The length n of x's last axis, once x is checked to have one.
int64_t last_axis(const FloatArrayC& x, const char* op) {
    if (x.ndim() < 1) throw py::value_error(std::string(op) + ": x must have ndim >= 1, got 0");
    return static_cast<int64_t>(x.shape(x.ndim() - 1));
}

// A row driver on x (..., n) as (rows, n): run(xp, yp, rows, n) into a new array of x's shape
// (C-contiguous), without the GIL for large inputs; an empty x gives an empty y at once.
template <class Run>
py::array over_last_axis(const FloatArrayC& x, Run run) {
    FloatArrayC y = new_f32_like(x);
    const int64_t size = static_cast<int64_t>(x.size());
    if (size == 0) return std::move(y);
    const int64_t n = static_cast<int64_t>(x.shape(x.ndim() - 1));
    const int64_t rows = size / n;
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(size >= kReleaseGilMinElements, [=] { run(xp, yp, rows, n); });
    return std::move(y);
}

py::array layer_norm_lastdim(const py::array& x_in, const py::object& gamma_in,
                             const py::object& beta_in, double epsilon) {
    const char* op = "layer_norm_lastdim";
    const FloatArrayC x = require_f32(x_in, op, "x");
    const int64_t n = last_axis(x, op);
    if (!(epsilon >= 0.0)) throw py::value_error("layer_norm_lastdim: epsilon must be >= 0");
    FloatArrayC gamma, beta;
    const float* gp = optional_f32_vector(gamma_in, op, "gamma", n, &gamma);
    const float* bp = optional_f32_vector(beta_in, op, "beta", n, &beta);
    // epsilon stays a double: as a float32, one below FLT_MIN was flushed to zero (a constant
    // row gave NaN where Keras and PyTorch give beta) and one above FLT_MAX was inf
    return over_last_axis(x, [=](const float* xp, float* yp, int64_t rows, int64_t len) {
        fl::layer_norm_lastdim(xp, gp, bp, yp, rows, len, epsilon);
    });
}

// x * scale + shift over the last axis, then activation `act` (an id; 0 for none).
py::array channel_affine_lastdim(const py::array& x_in, const py::object& scale_in,
                                 const py::object& shift_in, int act) {
    const char* op = "channel_affine_lastdim";
    const FloatArrayC x = require_f32(x_in, op, "x");
    const int64_t n = last_axis(x, op);
    FloatArrayC scale, shift;
    const float* sp = optional_f32_vector(scale_in, op, "scale", n, &scale);
    const float* hp = optional_f32_vector(shift_in, op, "shift", n, &shift);
    if (!sp || !hp) throw py::type_error("channel_affine_lastdim: scale and shift are required");
    const ActFn fn = act_kernel_from_id(act, op, "act");
    return over_last_axis(x, [=](const float* xp, float* yp, int64_t rows, int64_t len) {
        fl::channel_affine_lastdim(xp, sp, hp, yp, rows, len, fn);
    });
}

// RMSNormalization (scale may be None) or, with unit, UnitNormalization over the last axis.
py::array rms_norm_lastdim(const py::array& x_in, const py::object& scale_in, double epsilon,
                           bool unit) {
    const char* op = "rms_norm_lastdim";
    const FloatArrayC x = require_f32(x_in, op, "x");
    const int64_t n = last_axis(x, op);
    if (!(epsilon >= 0.0)) throw py::value_error("rms_norm_lastdim: epsilon must be >= 0");
    FloatArrayC scale;
    const float* sp = optional_f32_vector(scale_in, op, "scale", n, &scale);
    if (unit && sp) throw py::value_error("rms_norm_lastdim: unit takes no scale");
    const float eps = static_cast<float>(epsilon);
    return over_last_axis(x, [=](const float* xp, float* yp, int64_t rows, int64_t len) {
        if (unit)
            fl::unit_norm_lastdim(xp, yp, rows, len);
        else
            fl::rms_norm_lastdim(xp, sp, yp, rows, len, eps);
    });
}

py::array group_norm_nhwc(const py::array& x_in, const py::object& gamma_in,
                          const py::object& beta_in, int64_t groups, double epsilon) {
    const char* op = "group_norm_nhwc";
    const FloatArrayC x = require_f32(x_in, op, "x", 3);
    if (!(epsilon >= 0.0)) throw py::value_error("group_norm_nhwc: epsilon must be >= 0");
    const int64_t n = x.shape(0), pixels = x.shape(1), c = x.shape(2);
    if (groups < 1 || c % groups != 0) {
        throw py::value_error("group_norm_nhwc: groups (" + std::to_string(groups) +
                              ") must divide the number of channels (" + std::to_string(c) +
                              ")");
    }
    FloatArrayC gamma, beta;
    const float* gp = optional_f32_vector(gamma_in, op, "gamma", c, &gamma);
    const float* bp = optional_f32_vector(beta_in, op, "beta", c, &beta);
    FloatArrayC y = new_f32_like(x);
    const int64_t size = static_cast<int64_t>(x.size());
    if (size == 0) return std::move(y);
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(size >= kReleaseGilMinElements, [=] {  // (epsilon a double: layer_norm)
        fl::group_norm_nhwc(xp, gp, bp, yp, n, pixels, c, groups, epsilon);
    });
    return std::move(y);
}

// `h` as a C-contiguous int64 array of shape `shape` (kept alive by *holder).
const int64_t* require_i64_shape(const py::handle& h, const char* op, const char* arg,
                                 std::initializer_list<int64_t> shape, py::array* holder) {
    using IntArrayC = py::array_t<int64_t, py::array::c_style>;
    if (!py::isinstance<py::array>(h))
        throw py::type_error(std::string(op) + ": " + arg + " must be a numpy.ndarray, got " +
                             type_name(h));
    const py::array a = py::reinterpret_borrow<py::array>(h);
    if (!a.dtype().equal(py::dtype::of<int64_t>()))
        throw py::type_error(std::string(op) + ": " + arg + " must be an int64 array, got dtype " +
                             py::str(a.dtype()).cast<std::string>());
    if (!IntArrayC::check_(a) || !is_aligned(a))
        throw py::value_error(std::string(op) + ": " + arg + " must be C-contiguous and aligned");
    if (a.ndim() != static_cast<py::ssize_t>(shape.size()) ||
        !std::equal(shape.begin(), shape.end(), a.shape()))
        throw py::value_error(std::string(op) + ": " + arg + " must have shape " +
                              shape_str(shape.begin(), shape.size()) + ", got " + shape_str(a));
    *holder = a;
    return static_cast<const int64_t*>(a.data());
}

py::array transpose_batched(const py::array& x_in) {
    const FloatArrayC x = require_f32(x_in, "transpose_batched", "x", 3);
    const int64_t batch = x.shape(0), rows = x.shape(1), cols = x.shape(2);
    FloatArrayC y = new_f32({batch, cols, rows});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<int64_t>(x.size()) >= kReleaseGilMinElements,
                        [=] { fl::transpose_batched(xp, yp, batch, rows, cols); });
    return std::move(y);
}

py::array resample_axis(const py::array& x_in, const py::handle& idx_in, const py::handle& w_in,
                        const py::handle& count_in) {
    const char* op = "resample_axis";
    const FloatArrayC x = require_f32(x_in, op, "x", 3);
    const FloatArrayC w = require_f32(w_in, op, "w", 2);
    const int64_t outer = x.shape(0), n_in = x.shape(1), inner = x.shape(2);
    const int64_t n_out = w.shape(0), taps = w.shape(1);
    if (taps < 1) throw py::value_error("resample_axis: w must have at least one tap per output");
    py::array idx_arr, count_arr;
    const int64_t* idx = require_i64_shape(idx_in, op, "idx", {n_out, taps}, &idx_arr);
    const int64_t* count = require_i64_shape(count_in, op, "count", {n_out}, &count_arr);
    for (int64_t j = 0; j < n_out; ++j) {
        if (count[j] < 1 || count[j] > taps)
            throw py::value_error("resample_axis: count[" + std::to_string(j) + "] = " +
                                  std::to_string(count[j]) + " is not in [1, " +
                                  std::to_string(taps) + "]");
        for (int64_t k = 0; k < count[j]; ++k) {
            const int64_t i = idx[j * taps + k];
            if (i < 0 || i >= n_in)
                throw py::value_error("resample_axis: idx[" + std::to_string(j) + ", " +
                                      std::to_string(k) + "] = " + std::to_string(i) +
                                      " is outside the axis of length " + std::to_string(n_in));
        }
    }
    checked_mul(checked_mul(outer, n_out, op, "output size"), inner, op, "output size");
    FloatArrayC y = new_f32({outer, n_out, inner});
    const float* xp = x.data();
    const float* wp = w.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<double>(y.size()) * static_cast<double>(taps) >=
                            static_cast<double>(kReleaseGilMinElements),
                        [=] { fl::resample_axis(xp, yp, outer, n_in, inner, n_out, taps, idx, wp,
                                                count); });
    return std::move(y);
}

py::array pool2d(const py::array& x_in, const py::handle& pool_in, const py::handle& strides_in,
                 const py::handle& pads_in, bool average) {
    const char* op = "pool2d";
    const FloatArrayC x = require_f32(x_in, op, "x", 4);
    const auto pool = int64_args<2>(pool_in, op, "pool");
    const auto strides = int64_args<2>(strides_in, op, "strides");
    const auto pads = int64_args<4>(pads_in, op, "pads");
    constexpr int64_t kMaxArg = (int64_t(1) << 31) - 1;
    for (int64_t v : {pool[0], pool[1], strides[0], strides[1]}) {
        if (v < 1 || v > kMaxArg)
            throw py::value_error("pool2d: pool and strides must be in [1, 2**31 - 1]");
    }
    for (int64_t v : pads) {
        if (v < 0 || v > kMaxArg) throw py::value_error("pool2d: pads must be in [0, 2**31 - 1]");
    }
    fl::PoolGeometry g{};
    g.n = x.shape(0), g.h = x.shape(1), g.w = x.shape(2), g.c = x.shape(3);
    g.ph = pool[0], g.pw = pool[1], g.sh = strides[0], g.sw = strides[1];
    g.top = pads[0], g.left = pads[2];
    const int64_t hp = checked_add(checked_add(g.h, pads[0], op, "padded height"), pads[1], op,
                                   "padded height");
    const int64_t wp = checked_add(checked_add(g.w, pads[2], op, "padded width"), pads[3], op,
                                   "padded width");
    if (hp < g.ph || wp < g.pw) {
        throw py::value_error("pool2d: the padded input " + std::to_string(hp) + " x " +
                              std::to_string(wp) + " is smaller than the window");
    }
    g.oh = (hp - g.ph) / g.sh + 1;
    g.ow = (wp - g.pw) / g.sw + 1;
    checked_mul(checked_mul(checked_mul(g.n, g.oh, op, "output size"), g.ow, op, "output size"),
                g.c, op, "output size");
    FloatArrayC y = new_f32({g.n, g.oh, g.ow, g.c});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<double>(y.size()) * static_cast<double>(g.ph * g.pw) >=
                            static_cast<double>(kReleaseGilMinElements),
                        [=] { fl::pool2d_nhwc(xp, g, average, yp); });
    return std::move(y);
}

py::array adaptive_pool2d(const py::array& x_in, const py::handle& out_in, bool average) {
    const char* op = "adaptive_pool2d";
    const FloatArrayC x = require_f32(x_in, op, "x", 4);
    const auto out = int64_args<2>(out_in, op, "output_size");
    const int64_t n = x.shape(0), h = x.shape(1), w = x.shape(2), c = x.shape(3);
    if (out[0] < 1 || out[1] < 1)
        throw py::value_error("adaptive_pool2d: output_size must be >= 1, got (" +
                              std::to_string(out[0]) + ", " + std::to_string(out[1]) + ")");
    if (h < 1 || w < 1)
        throw py::value_error("adaptive_pool2d: x has an empty spatial axis, shape " +
                              shape_str(x));
    // i * h in the window bounds stays within int64
    constexpr int64_t kMaxSide = int64_t(1) << 31;
    if (h >= kMaxSide || w >= kMaxSide || out[0] >= kMaxSide || out[1] >= kMaxSide)
        throw py::value_error("adaptive_pool2d: sizes must be below 2**31");
    checked_mul(checked_mul(checked_mul(n, out[0], op, "output size"), out[1], op,
                            "output size"), c, op, "output size");
    FloatArrayC y = new_f32({n, out[0], out[1], c});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    const int64_t oh = out[0], ow = out[1];
    call_without_gil_if(static_cast<int64_t>(x.size()) >= kReleaseGilMinElements, [=] {
        fl::adaptive_pool2d_nhwc(xp, n, h, w, c, oh, ow, average, yp);
    });
    return std::move(y);
}

py::array global_pool(const py::array& x_in, bool average) {
    const char* op = "global_pool";
    const FloatArrayC x = require_f32(x_in, op, "x", 3);
    const int64_t n = x.shape(0), pixels = x.shape(1), c = x.shape(2);
    if (pixels < 1)
        throw py::value_error("global_pool: x has no pixels, shape " + shape_str(x));
    FloatArrayC y = new_f32({n, c});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<int64_t>(x.size()) >= kReleaseGilMinElements,
                        [=] { fl::global_pool_nhwc(xp, n, pixels, c, average, yp); });
    return std::move(y);
}

}  // namespace

void bind_ops(py::module_& m) {
    m.def("global_pool", &global_pool, py::arg("x"), py::arg("average"),
          "Global max (average=False) or average pooling of a C-contiguous float32 (n, pixels, "
          "c) array to (n, c) (fl::global_pool_nhwc: the pixels in order, averages in double; "
          "the NumPy path's bits).");
    m.def("adaptive_pool2d", &adaptive_pool2d, py::arg("x"), py::arg("output_size"),
          py::arg("average"),
          "Adaptive max (average=False) or average pooling of a C-contiguous float32 (n, h, w, c) "
          "array to (n, oh, ow, c): output (i, j) pools rows [floor(i h / oh), ceil((i + 1) h / "
          "oh)) and the columns alike (fl::adaptive_pool2d_nhwc: averages in double, rows then "
          "columns, the NumPy path's bits).");
    m.def("pool2d", &pool2d, py::arg("x"), py::arg("pool"), py::arg("strides"), py::arg("pads"),
          py::arg("average"),
          "Max (average=False) or average pooling of a C-contiguous float32 (n, h, w, c) array; "
          "pool, strides: (rows, cols); pads: (top, bottom, left, right). Returns a new float32 "
          "(n, oh, ow, c) array, oh = (h + top + bottom - pool rows) // stride rows + 1 "
          "(fl::pool2d_nhwc: the taps in NumPy's order, the same bits as the NumPy path except "
          "that denormal inputs count as zero).");
    m.def("transpose_batched", &transpose_batched, py::arg("x"),
          "A C-contiguous float32 (batch, rows, cols) array transposed item by item: a new "
          "(batch, cols, rows) array (fl::transpose_batched; the NCHW <-> NHWC copies at a "
          "converted model's edges).");
    m.def("resample_axis", &resample_axis, py::arg("x"), py::arg("idx"), py::arg("w"),
          py::arg("count"),
          "Resampling along the middle axis of a C-contiguous float32 (outer, n_in, inner) array "
          "(Resizing's taps): output j = sum over k < count[j] of x[:, idx[j, k]] * w[j, k], in "
          "tap order, float32, no FMA (fl::resample_axis); idx (n_out, taps) int64 in [0, n_in), "
          "w (n_out, taps) float32, count (n_out,) int64 in [1, taps]. Returns a new float32 "
          "(outer, n_out, inner) array, the same bits on every ISA.");
    m.def("group_norm_nhwc", &group_norm_nhwc, py::arg("x"), py::arg("gamma") = py::none(),
          py::arg("beta") = py::none(), py::arg("groups") = 1, py::arg("epsilon") = 1e-3,
          "GroupNormalization of x (N, pixels, C) float32 C-contiguous: groups of C / groups "
          "consecutive channels, statistics over each sample's group (fl::group_norm_nhwc: one "
          "summation order, the same bits on every ISA and thread count); gamma, beta (C,) or "
          "None. Returns a new array.");
    m.def("layer_norm_lastdim", &layer_norm_lastdim, py::arg("x"), py::arg("gamma") = py::none(),
          py::arg("beta") = py::none(), py::arg("epsilon") = 1e-3,
          "LayerNormalization over the last axis of a C-contiguous float32 array (ndim >= 1); "
          "gamma, beta: None or float32 (n,). Returns a new float32 array of x's shape "
          "(fl::layer_norm_lastdim: one summation order, the same bits on every ISA).");
    m.def("channel_affine_lastdim", &channel_affine_lastdim, py::arg("x"), py::arg("scale"),
          py::arg("shift"), py::arg("act") = 0,
          "act(x * scale + shift) over the last axis of a C-contiguous float32 array (ndim >= "
          "1): scale, shift float32 (n,); the product rounded, then the sum (no FMA: NumPy's "
          "bits, but subnormals flush to 0); act an activation id (0: none). Returns a new "
          "float32 array of x's shape "
          "(fl::channel_affine_lastdim: the same bits on every ISA and thread count).");
    m.def("rms_norm_lastdim", &rms_norm_lastdim, py::arg("x"), py::arg("scale") = py::none(),
          py::arg("epsilon") = 1e-6, py::arg("unit") = false,
          "RMSNormalization over the last axis of a C-contiguous float32 array (ndim >= 1): "
          "x * (1 / sqrt(mean(x^2) + epsilon)) * scale, the squares summed in double; scale: "
          "None or float32 (n,). unit=True: UnitNormalization, x * min(1 / sqrt(sum(x^2)), "
          "1e12), no scale. Returns a new float32 array of x's shape (fl::rms_norm_lastdim: one "
          "summation order, the same bits on every ISA).");
    m.def("softmax_lastdim", &softmax_lastdim, py::arg("x"), py::arg("mask") = py::none(),
          py::arg("limits") = true,
          "Softmax over the last axis of a C-contiguous float32 array (ndim >= 1); returns a new "
          "float32 array of the same shape. mask (optional): bool/uint8, C-contiguous, x's shape; "
          "False entries get -1e9 before and 0 after the softmax (Keras Softmax layer). "
          "limits=False (no mask): a row holding +inf, or only -inf, is NaN (PyTorch's rule), "
          "not its limit.");
}

}  // namespace py_bindings
}  // namespace fl
