// Ops: unpack arrays, check what the Python layer promised, release the GIL, call a driver.
//
// Inputs are checked, never converted (bindings.h): a silent copy can never hide in a
// benchmark. The Python layer (fastlayers/) converts before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "bindings.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

py::array softmax_lastdim(const py::array& x_in, const py::object& mask_in) {
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
            fl::softmax_lastdim(xp, yp, rows, n);
    });
    return std::move(y);
}

py::array layer_norm_lastdim(const py::array& x_in, const py::object& gamma_in,
                             const py::object& beta_in, double epsilon) {
    const char* op = "layer_norm_lastdim";
    const FloatArrayC x = require_f32(x_in, op, "x");
    if (x.ndim() < 1) throw py::value_error("layer_norm_lastdim: x must have ndim >= 1, got 0");
    if (!(epsilon >= 0.0)) throw py::value_error("layer_norm_lastdim: epsilon must be >= 0");
    const int64_t n = static_cast<int64_t>(x.shape(x.ndim() - 1));
    FloatArrayC gamma, beta;
    const float* gp = optional_f32_vector(gamma_in, op, "gamma", n, &gamma);
    const float* bp = optional_f32_vector(beta_in, op, "beta", n, &beta);
    FloatArrayC y = new_f32_like(x);
    const int64_t size = static_cast<int64_t>(x.size());
    if (size == 0) return std::move(y);
    const int64_t rows = size / n;
    const float* xp = x.data();
    float* yp = y.mutable_data();
    const float eps = static_cast<float>(epsilon);
    call_without_gil_if(size >= kReleaseGilMinElements,
                        [=] { fl::layer_norm_lastdim(xp, gp, bp, yp, rows, n, eps); });
    return std::move(y);
}

}  // namespace

void bind_ops(py::module_& m) {
    m.def("layer_norm_lastdim", &layer_norm_lastdim, py::arg("x"), py::arg("gamma") = py::none(),
          py::arg("beta") = py::none(), py::arg("epsilon") = 1e-3,
          "LayerNormalization over the last axis of a C-contiguous float32 array (ndim >= 1); "
          "gamma, beta: None or float32 (n,). Returns a new float32 array of x's shape "
          "(fl::layer_norm_lastdim: one summation order, the same bits on every ISA).");
    m.def("softmax_lastdim", &softmax_lastdim, py::arg("x"), py::arg("mask") = py::none(),
          "Softmax over the last axis of a C-contiguous float32 array (ndim >= 1); returns a new "
          "float32 array of the same shape. mask (optional): bool/uint8, C-contiguous, x's shape; "
          "False entries get -1e9 before and 0 after the softmax (Keras Softmax layer).");
}

}  // namespace py_bindings
}  // namespace fl
