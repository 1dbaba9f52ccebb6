// Dense and GEMM: pre-packed weights (PackedDense), the dense op, and matmul (for tests).
//
// Inputs are checked, never converted (bindings.h); the Python layer converts before calling.
// The per-call path is kept short (a (1, 64) x (64, 64) dense costs ~1 us from Python): no
// keyword parsing needed, no temporary besides the result, the GIL kept for tiny products.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings.h"
#include "fastlayers/activations.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

// An optional bias (N,) for a kernel (K, N): nullptr for None, else its data, kept alive by
// *holder; a ValueError names the op and both shapes.
const float* optional_bias(const py::handle& bias_in, const char* op, int64_t k, int64_t n,
                           FloatArrayC* holder) {
    if (bias_in.is_none()) return nullptr;
    *holder = require_f32(bias_in, op, "bias");
    if (holder->ndim() != 1 || holder->shape(0) != n) {
        throw py::value_error(std::string(op) + ": bias must have shape (" + std::to_string(n) +
                              ",) to match kernel (" + std::to_string(k) + ", " +
                              std::to_string(n) + "), got " + shape_str(*holder));
    }
    return holder->data();
}

PackedB make_packed_dense(const py::handle& kernel_in, const py::handle& bias_in) {
    const FloatArrayC kernel = require_f32(kernel_in, "PackedDense", "kernel", 2);
    const int64_t k = kernel.shape(0), n = kernel.shape(1);
    FloatArrayC bias_arr;
    const float* bias = optional_bias(bias_in, "PackedDense", k, n, &bias_arr);
    const float* kp = kernel.data();
    PackedB packed;
    call_without_gil_if(k * n >= (int64_t(1) << 20), [&] { packed = pack_b(kp, k, n, n, bias); });
    return packed;
}

py::array dense(const py::handle& x_in, const PackedB& w, int activation_id) {
    const FloatArrayC x = require_f32(x_in, "dense", "x", 2);
    const int64_t m = x.shape(0), k = x.shape(1), n = w.n();
    if (k != w.k()) {
        throw py::value_error("dense: x must have shape (batch, " + std::to_string(w.k()) +
                              ") for this PackedDense, got (" + std::to_string(m) + ", " +
                              std::to_string(k) + ")");
    }
    const ActFn act = act_kernel_from_id(activation_id, "dense", "activation_id");
    FloatArrayC y = new_f32({m, n});
    const float* xp = x.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kReleaseGilMinMacs,
                        [&] { dense_forward(xp, m, k, w, yp, act); });
    return std::move(y);
}

// dense with the kernel as given (the functional API): fl::gemm reads it in place for few rows
// and packs it per call otherwise.
py::array dense_unpacked(const py::handle& x_in, const py::handle& kernel_in,
                         const py::handle& bias_in, int activation_id) {
    const FloatArrayC x = require_f32(x_in, "dense", "x", 2);
    const FloatArrayC kernel = require_f32(kernel_in, "dense", "kernel", 2);
    const int64_t m = x.shape(0), k = x.shape(1), n = kernel.shape(1);
    if (kernel.shape(0) != k) {
        throw py::value_error("dense: kernel must have shape (" + std::to_string(k) +
                              ", units) for x (" + std::to_string(m) + ", " + std::to_string(k) +
                              "), got (" + std::to_string(kernel.shape(0)) + ", " +
                              std::to_string(n) + ")");
    }
    FloatArrayC bias_arr;
    const float* bias = optional_bias(bias_in, "dense", k, n, &bias_arr);
    const ActFn act = act_kernel_from_id(activation_id, "dense", "activation_id");
    FloatArrayC y = new_f32({m, n});
    const float* xp = x.data();
    const float* kp = kernel.data();
    float* yp = y.mutable_data();
    call_without_gil_if(static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kReleaseGilMinMacs,
                        [=] { gemm(xp, m, k, k, kp, n, n, bias, yp, n, Epilogue{act}); });
    return std::move(y);
}

py::array matmul(const py::handle& a_in, const py::handle& b_in) {
    const FloatArrayC a = require_f32(a_in, "matmul", "a", 2);
    const FloatArrayC b = require_f32(b_in, "matmul", "b", 2);
    const int64_t m = a.shape(0), k = a.shape(1), n = b.shape(1);
    if (b.shape(0) != k) {
        throw py::value_error("matmul: a (" + std::to_string(m) + ", " + std::to_string(k) +
                              ") and b (" + std::to_string(b.shape(0)) + ", " + std::to_string(n) +
                              ") do not align");
    }
    FloatArrayC c = new_f32({m, n});
    const float* ap = a.data();
    const float* bp = b.data();
    float* cp = c.mutable_data();
    call_without_gil_if(static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kReleaseGilMinMacs,
                        [=] { gemm(ap, m, k, k, bp, n, n, nullptr, cp, n); });
    return std::move(c);
}

// A batch of products: a (B, M, K) @ b (B, K, N) -> (B, M, N) by fl::gemm_batched (each entry
// with the bits of fl::gemm, the batch split over threads), in C++ without the GIL: a batched
// matmul from Python paid one binding call and two array copies per entry (the seed article's
// attention, B x (T, D) @ (D, T), ran 5x slower than NumPy's matmul).
py::array matmul_batched(const py::handle& a_in, const py::handle& b_in) {
    const FloatArrayC a = require_f32(a_in, "matmul", "a", 3);
    const FloatArrayC b = require_f32(b_in, "matmul", "b", 3);
    const int64_t nb = a.shape(0), m = a.shape(1), k = a.shape(2), n = b.shape(2);
    if (b.shape(0) != nb || b.shape(1) != k) {
        throw py::value_error("matmul: a (" + std::to_string(nb) + ", " + std::to_string(m) +
                              ", " + std::to_string(k) + ") and b (" +
                              std::to_string(b.shape(0)) + ", " + std::to_string(b.shape(1)) +
                              ", " + std::to_string(n) + ") do not align");
    }
    FloatArrayC c = new_f32({nb, m, n});
    const float* ap = a.data();
    const float* bp = b.data();
    float* cp = c.mutable_data();
    call_without_gil_if(static_cast<double>(nb) * static_cast<double>(m) * static_cast<double>(n) *
                                static_cast<double>(k) >= kReleaseGilMinMacs,
                        [=] { gemm_batched(nb, ap, m, k, bp, n, cp); });
    return std::move(c);
}

}  // namespace

void bind_dense(py::module_& m) {
    py::class_<PackedB>(m, "PackedDense",
                        "Dense weights packed once for the C++ GEMM: kernel (K, N) float32 "
                        "C-contiguous, bias (N,) float32 or None.")
        .def(py::init(&make_packed_dense), py::arg("kernel"), py::arg("bias") = py::none())
        .def_property_readonly("k", &PackedB::k, "Input features K.")
        .def_property_readonly("n", &PackedB::n, "Output features N.")
        .def_property_readonly("has_bias", &PackedB::has_bias)
        .def_property_readonly("nbytes", &PackedB::nbytes, "Bytes of packed storage.")
        .def("__repr__", [](const PackedB& p) {
            return "PackedDense(k=" + std::to_string(p.k()) + ", n=" + std::to_string(p.n()) +
                   ", bias=" + (p.has_bias() ? "True" : "False") + ")";
        });
    m.def("dense", &dense, py::arg("x"), py::arg("packed"), py::arg("activation_id") = 0,
          "y = act(x @ kernel + bias) for x (M, K) float32 C-contiguous; returns a new (M, N) "
          "float32 array. activation_id: 0 = linear, else an id of activation_ids().");
    m.def("dense_unpacked", &dense_unpacked, py::arg("x"), py::arg("kernel"),
          py::arg("bias") = py::none(), py::arg("activation_id") = 0,
          "dense with a raw kernel (K, N) float32 C-contiguous, bias (N,) or None: read in place "
          "for up to 32 rows of x (M, K), packed per call for more. Same bits as dense() on "
          "PackedDense(kernel, bias).");
    m.def("matmul", &matmul, py::arg("a"), py::arg("b"),
          "a @ b for float32 C-contiguous 2-D arrays (b is packed per call); a new array.");
    m.def("matmul_batched", &matmul_batched, py::arg("a"), py::arg("b"),
          "a (B, M, K) @ b (B, K, N) for float32 C-contiguous 3-D arrays: one product per "
          "batch entry, each with the bits of matmul; a new (B, M, N) array.");
}

}  // namespace py_bindings
}  // namespace fl
