// Ops: unpack arrays, check what the Python layer promised, release the GIL, call a driver.
//
// Inputs are never converted here (no forcecast, no implicit copy): a wrong dtype is a TypeError
// and a non-contiguous or misaligned array a ValueError, so a silent copy can never hide in a
// benchmark. The Python layer (fastlayers/) converts before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "bindings.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

// Below this many elements a kernel takes well under a microsecond: releasing and re-taking
// the GIL would cost more than another Python thread could gain.
constexpr int64_t kReleaseGilMinElements = 4096;

// Checks that `a` is a C-contiguous, aligned float32 array; raises otherwise.
FloatArrayC require_float32_c(const py::array& a, const char* op, const char* arg) {
    const bool aligned = (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    if (FloatArrayC::check_(a) && aligned) return py::reinterpret_borrow<FloatArrayC>(a);
    if (!a.dtype().equal(py::dtype::of<float>())) {
        throw py::type_error(std::string(op) + ": " + arg + " must be a float32 array, got dtype " +
                             py::str(a.dtype()).cast<std::string>());
    }
    if (!aligned) {
        throw py::value_error(std::string(op) + ": " + arg + " must be aligned to 4 bytes");
    }
    throw py::value_error(std::string(op) + ": " + arg + " must be C-contiguous");
}

py::array softmax_lastdim(const py::array& x_in, const py::object& mask_in) {
    const FloatArrayC x = require_float32_c(x_in, "softmax_lastdim", "x");
    if (x.ndim() < 1) throw py::value_error("softmax_lastdim: x must have ndim >= 1, got 0");

    // x (..., n) -> (rows, n); y has x's shape and is freshly allocated, so C-contiguous.
    const py::ssize_t ndim = x.ndim();
    FloatArrayC y(py::array::ShapeContainer(x.shape(), x.shape() + ndim));
    const int64_t size = static_cast<int64_t>(x.size());
    if (size == 0) return y;
    const int64_t n = static_cast<int64_t>(x.shape(ndim - 1));
    const int64_t rows = size / n;

    const float* xp = x.data();
    float* yp = y.mutable_data();
    const uint8_t* keep = nullptr;
    if (!mask_in.is_none()) {
        if (!py::isinstance<py::array>(mask_in)) {
            throw py::type_error("softmax_lastdim: mask must be a numpy.ndarray");
        }
        const py::array m = py::reinterpret_borrow<py::array>(mask_in);
        if (m.itemsize() != 1 || (m.dtype().kind() != 'b' && m.dtype().kind() != 'u')) {
            throw py::type_error("softmax_lastdim: mask must be a bool/uint8 array");
        }
        if (!(m.flags() & py::array::c_style)) {
            throw py::value_error("softmax_lastdim: mask must be C-contiguous");
        }
        if (m.ndim() != ndim || !std::equal(x.shape(), x.shape() + ndim, m.shape())) {
            throw py::value_error("softmax_lastdim: mask must have the shape of x");
        }
        keep = static_cast<const uint8_t*>(m.data());
    }
    auto run = [=] {
        if (keep)
            fl::softmax_masked_lastdim(xp, keep, yp, rows, n);
        else
            fl::softmax_lastdim(xp, yp, rows, n);
    };
    if (size >= kReleaseGilMinElements) {
        call_without_gil(run);
    } else {
        run();
    }
    return y;
}

}  // namespace

void bind_ops(py::module_& m) {
    m.def("softmax_lastdim", &softmax_lastdim, py::arg("x"), py::arg("mask") = py::none(),
          "Softmax over the last axis of a C-contiguous float32 array (ndim >= 1); returns a new "
          "float32 array of the same shape. mask (optional): bool/uint8, C-contiguous, x's shape; "
          "False entries get -1e9 before and 0 after the softmax (Keras Softmax layer).");
}

}  // namespace py_bindings
}  // namespace fl
