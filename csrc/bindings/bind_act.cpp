// Elementwise activations: the name -> id table and activate(x, id) (used by the tests; the
// layers apply activations inside their drivers).
//
// Inputs are checked, never converted (bindings.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "bindings.h"
#include "fastlayers/activations.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

py::dict activation_ids() {
    py::dict d;
    for (int i = 0; i < kNumActs; ++i) d[act_name(i)] = i;
    for (int i = 0; i < kNumActAliases; ++i) d[act_alias_name(i)] = act_alias_id(i);
    return d;
}

py::array activate(const py::array& x_in, int id) {
    const FloatArrayC x = require_f32(x_in, "activate", "x");
    const Act act = act_from_id(id, "activate", "id");
    FloatArrayC y = new_f32_like(x);
    const int64_t n = static_cast<int64_t>(x.size());
    if (n == 0) return std::move(y);
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(n >= kReleaseGilMinElements, [=] { fl::activate(xp, yp, n, act); });
    return std::move(y);
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
