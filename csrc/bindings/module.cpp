// The extension module fastlayers._core. It is private: the Python package (fastlayers/) does
// all argument validation and conversion, and calls in here only with arrays that are already
// float32 and C-contiguous.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastlayers compiled core (private; use the fastlayers package)";
    fl::py_bindings::bind_runtime(m);
    fl::py_bindings::bind_ops(m);
    fl::py_bindings::bind_dense(m);
    fl::py_bindings::bind_act(m);
    fl::py_bindings::bind_recurrent(m);
    fl::py_bindings::bind_conv2d(m);
    fl::py_bindings::bind_attention(m);
}
