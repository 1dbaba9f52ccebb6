// Elementwise activations: the name -> id table and activate(x, id) (used by the tests; the
// layers apply activations inside their drivers).
//
// As in bind_ops.cpp, inputs are never converted: a wrong dtype is a TypeError, a
// non-contiguous or misaligned array a ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings.h"
#include "fastlayers/activations.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

// Below this many elements the kernel takes about a microsecond or less: releasing and
// re-taking the GIL would cost more than another Python thread could gain.
constexpr int64_t kReleaseGilMinElements = 4096;

py::dict activation_ids() {
    py::dict d;
    for (int i = 0; i < kNumActs; ++i) d[act_name(i)] = i;
    for (int i = 0; i < kNumActAliases; ++i) d[act_alias_name(i)] = act_alias_id(i);
    return d;
}

py::array activate(const py::array& x_in, int id) {
    const bool aligned = (x_in.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    if (!FloatArrayC::check_(x_in) || !aligned) {
        if (!x_in.dtype().equal(py::dtype::of<float>())) {
            throw py::type_error("activate: x must be a float32 array, got dtype " +
                                 py::str(x_in.dtype()).cast<std::string>());
        }
        throw py::value_error(std::string("activate: x must be ") +
                              (aligned ? "C-contiguous" : "aligned to 4 bytes"));
    }
    if (id < 0 || id >= kNumActs) {
        throw py::value_error("activate: unknown activation id " + std::to_string(id) +
                              " (expected 0.." + std::to_string(kNumActs - 1) + ")");
    }
    const FloatArrayC x = py::reinterpret_borrow<FloatArrayC>(x_in);
    FloatArrayC y(py::array::ShapeContainer(x.shape(), x.shape() + x.ndim()));
    const int64_t n = static_cast<int64_t>(x.size());
    if (n == 0) return y;
    const float* xp = x.data();
    float* yp = y.mutable_data();
    const Act act = static_cast<Act>(id);
    if (n >= kReleaseGilMinElements) {
        call_without_gil([=] { fl::activate(xp, yp, n, act); });
    } else {
        fl::activate(xp, yp, n, act);
    }
    return y;
}

}  // namespace

void bind_act(py::module_& m) {
    m.def("activation_ids", &activation_ids,
          "Keras name -> id of every elementwise activation of the core (aliases swish and "
          "hard_swish included).");
    m.def("activate", &activate, py::arg("x"), py::arg("id"),
          "Elementwise activation `id` (see activation_ids()) of a C-contiguous float32 array; "
          "returns a new float32 array of the same shape.");
}

}  // namespace py_bindings
}  // namespace fl
