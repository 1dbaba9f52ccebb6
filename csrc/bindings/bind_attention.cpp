// Attention: rank-4 strided views in, the driver fl::attention_forward (csrc/ops/attention.cpp).
//
// q, k, v and out are (batch, heads, rows, cols) float32 views whose last dim is contiguous;
// the other strides are free (0 = broadcast), so the Python layer can pass a head-split
// projection (B, T, N, H) transposed to (B, N, T, H) without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

constexpr const char* kOp = "attention";

// Strides of a rank-4 array in elements, checking dtype, alignment and a contiguous last dim.
template <class T>
Rows4<T> rows4(const py::handle& h, const char* arg, bool writable, const char* kind,
               py::ssize_t* shape) {
    if (!py::isinstance<py::array>(h)) {
        throw py::type_error(std::string(kOp) + ": " + arg + " must be a numpy.ndarray");
    }
    const py::array a = py::reinterpret_borrow<py::array>(h);
    const bool ok_dtype = kind[0] == 'f' ? a.dtype().equal(py::dtype::of<float>())
                                         : (a.itemsize() == 1 && (a.dtype().kind() == 'b' ||
                                                                  a.dtype().kind() == 'u'));
    if (!ok_dtype) {
        throw py::type_error(std::string(kOp) + ": " + arg + " must be a " + kind +
                             " array, got dtype " + py::str(a.dtype()).cast<std::string>());
    }
    if (a.ndim() != 4) {
        throw py::value_error(std::string(kOp) + ": " + arg + " must have ndim 4, got " +
                              std::to_string(a.ndim()));
    }
    const py::ssize_t item = a.itemsize();
    const bool empty = a.size() == 0;  // strides of an empty array are never used
    for (int i = 0; i < 4; ++i) {
        if (!empty && (a.strides(i) % item != 0 || a.strides(i) < 0)) {
            throw py::value_error(std::string(kOp) + ": " + arg +
                                  " must have non-negative strides, multiples of its item size");
        }
        shape[i] = a.shape(i);
    }
    if (!empty && a.shape(3) > 1 && a.strides(3) != item) {
        throw py::value_error(std::string(kOp) + ": " + arg + " must have a contiguous last dim");
    }
    if (writable && !a.writeable()) {
        throw py::value_error(std::string(kOp) + ": " + arg + " must be writable");
    }
    Rows4<T> r;
    r.data = static_cast<T*>(const_cast<void*>(a.data()));
    r.sb = a.strides(0) / item;
    r.sh = a.strides(1) / item;
    r.st = a.strides(2) / item;
    return r;
}

void attention(const py::handle& q_in, const py::handle& k_in, const py::handle& v_in,
               const py::handle& out_in, const py::object& weights_in,
               const py::object& mask_in, bool causal, int rule, float scale, bool additive,
               float pre, float post, const py::object& add_w_in) {
    py::ssize_t qs[4], ks[4], vs[4], os[4];
    AttentionArgs a;
    a.q = rows4<const float>(q_in, "q", false, "float32", qs);
    a.k = rows4<const float>(k_in, "k", false, "float32", ks);
    a.v = rows4<const float>(v_in, "v", false, "float32", vs);
    a.out = rows4<float>(out_in, "out", true, "float32", os);
    a.batch = qs[0];
    a.heads = qs[1];
    a.t = qs[2];
    a.d = qs[3];
    a.s = ks[2];
    a.dv = vs[3];
    const auto same = [](const py::ssize_t* x, std::initializer_list<py::ssize_t> y) {
        int i = 0;
        for (py::ssize_t e : y)
            if (x[i++] != e) return false;
        return true;
    };
    if (!same(ks, {a.batch, a.heads, a.s, a.d}) || !same(vs, {a.batch, a.heads, a.s, a.dv}) ||
        !same(os, {a.batch, a.heads, a.t, a.dv})) {
        throw py::value_error(
            "attention: expected q (B,H,T,D), k (B,H,S,D), v (B,H,S,Dv), out (B,H,T,Dv)");
    }
    if (a.s < 1 || a.d < 1) throw py::value_error("attention: need S >= 1 and D >= 1");
    if (rule < 0 || rule > 2) throw py::value_error("attention: rule must be 0, 1 or 2");
    a.rule = static_cast<MaskRule>(rule);
    a.causal = causal;
    a.scale = scale;
    a.additive = additive;
    a.pre = pre;
    a.post = post;
    FloatArrayC w, add_w;
    if (!weights_in.is_none()) {
        w = require_f32(weights_in, kOp, "weights", 4);
        if (w.shape(0) != a.batch || w.shape(1) != a.heads || w.shape(2) != a.t ||
            w.shape(3) != a.s || !w.writeable()) {
            throw py::value_error("attention: weights must be a writable (B,H,T,S) array");
        }
        a.weights = w.mutable_data();
    }
    if (!add_w_in.is_none()) {
        add_w = require_f32(add_w_in, kOp, "add_w", 1);
        if (add_w.shape(0) != a.d) throw py::value_error("attention: add_w must have shape (D,)");
        a.add_w = add_w.data();
    }
    if (!mask_in.is_none()) {
        py::ssize_t ms[4];
        const Rows4<const uint8_t> m = rows4<const uint8_t>(mask_in, "mask", false, "bool", ms);
        if (!same(ms, {a.batch, a.heads, a.t, a.s})) {
            throw py::value_error("attention: mask must have shape (B,H,T,S)");
        }
        a.mask = m.data;
        a.mask_sb = m.sb;
        a.mask_sh = m.sh;
        a.mask_st = m.st;
    }
    const int64_t macs = a.batch * a.heads * a.t * a.s * (a.d + a.dv);
    if (macs >= kReleaseGilMinMacs) {
        call_without_gil([&] { attention_forward(a); });
    } else {
        attention_forward(a);
    }
}

}  // namespace

void bind_attention(py::module_& m) {
    m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
          py::kw_only(), py::arg("weights") = py::none(), py::arg("mask") = py::none(),
          py::arg("causal") = false, py::arg("rule") = 0, py::arg("scale") = 1.0f,
          py::arg("additive") = false, py::arg("pre") = 1.0f, py::arg("post") = 1.0f,
          py::arg("add_w") = py::none(),
          "out[b,h] = softmax(scores(q[b,h], k[b,h]), masked) @ v[b,h] for rank-4 float32 views "
          "(last dim contiguous). rule: 0 fused (-0.7*FLT_MAX), 1 subtract 1e9, 2 Softmax "
          "layer. Dot scores = scale*(q.k); additive = post*sum(add_w*tanh(pre*(q+k))). "
          "weights (B,H,T,S) C-contiguous, written if given. mask (B,H,T,S) bool view, last "
          "dim contiguous, True = attend.");
}

}  // namespace py_bindings
}  // namespace fl
