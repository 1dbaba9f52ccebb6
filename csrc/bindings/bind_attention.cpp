// Attention: rank-4 strided views in, the driver fl::attention_forward (csrc/ops/attention.cpp).
//
// q, k, v and out are (batch, heads, rows, cols) float32 views whose last dim is contiguous;
// the other strides are free (0 = broadcast), so the Python layer can pass a head-split
// projection (B, T, N, H) transposed to (B, N, T, H) without a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>

#include "bindings.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

constexpr const char* kOp = "attention";

[[noreturn]] void fail(bool type_error, const char* arg, const std::string& what) {
    const std::string msg = std::string(kOp) + ": " + arg + " " + what;
    if (type_error) throw py::type_error(msg);
    throw py::value_error(msg);
}

// A checked rank-4 view: dtype (float32 for T = float, bool/uint8 for T = uint8_t), aligned,
// non-negative strides, contiguous last dim. Also returns the shape and the byte range
// [lo, hi) the view can touch (empty for an empty array), for the overlap check.
template <class T>
struct View {
    Rows4<T> rows;
    py::ssize_t shape[4] = {0, 0, 0, 0};
    uintptr_t lo = 0, hi = 0;
};

template <class T>
View<T> view4(const py::handle& h, const char* arg, bool writable) {
    using Elem = std::remove_const_t<T>;
    if (!py::isinstance<py::array>(h)) fail(true, arg, "must be a numpy.ndarray");
    const py::array a = py::reinterpret_borrow<py::array>(h);
    const bool is_float = std::is_same<Elem, float>::value;
    const bool ok_dtype =
        is_float ? a.dtype().equal(py::dtype::of<float>()) : is_mask_dtype(a.dtype());
    if (!ok_dtype) {
        fail(true, arg, std::string("must be a ") + (is_float ? "float32" : "bool") +
                            " array, got dtype " + py::str(a.dtype()).cast<std::string>());
    }
    if (a.ndim() != 4) fail(false, arg, "must have ndim 4, got " + std::to_string(a.ndim()));
    if (!is_aligned(a)) fail(false, arg, "must be aligned");
    if (writable && !a.writeable()) fail(false, arg, "must be writable");
    View<T> v;
    const py::ssize_t item = a.itemsize();
    const bool empty = a.size() == 0;  // the strides of an empty array are never used
    py::ssize_t extent = 0;            // bytes from the first to the last element
    for (int i = 0; i < 4; ++i) {
        v.shape[i] = a.shape(i);
        if (empty) continue;
        if (a.shape(i) > 1 && (a.strides(i) < 0 || a.strides(i) % item != 0)) {
            fail(false, arg, "must have non-negative strides, multiples of its item size");
        }
        if (a.shape(i) > 1) {
            extent = checked_add(extent, checked_mul(a.shape(i) - 1, a.strides(i), "attention", arg),
                                 "attention", arg);
        }
    }
    if (!empty && a.shape(3) > 1 && a.strides(3) != item) {
        fail(false, arg, "must have a contiguous last dim");
    }
    v.rows.data = static_cast<T*>(const_cast<void*>(a.data()));
    v.rows.sb = a.strides(0) / item;
    v.rows.sh = a.strides(1) / item;
    v.rows.st = a.strides(2) / item;
    if (!empty) {
        v.lo = reinterpret_cast<uintptr_t>(a.data());
        v.hi = v.lo + static_cast<uintptr_t>(extent + item);
    }
    return v;
}

bool overlap(uintptr_t lo1, uintptr_t hi1, uintptr_t lo2, uintptr_t hi2) {
    return lo1 < hi2 && lo2 < hi1;
}

bool same_shape(const py::ssize_t* x, std::initializer_list<py::ssize_t> y) {
    int i = 0;
    for (py::ssize_t e : y)
        if (x[i++] != e) return false;
    return true;
}

void attention(const py::handle& q_in, const py::handle& k_in, const py::handle& v_in,
               const py::handle& out_in, const py::object& weights_in,
               const py::object& mask_in, bool causal, int rule, float scale, bool additive,
               float pre, float post, const py::object& add_w_in) {
    const View<const float> q = view4<const float>(q_in, "q", false);
    const View<const float> k = view4<const float>(k_in, "k", false);
    const View<const float> v = view4<const float>(v_in, "v", false);
    const View<float> out = view4<float>(out_in, "out", true);
    AttentionArgs a;
    a.q = q.rows;
    a.k = k.rows;
    a.v = v.rows;
    a.out = out.rows;
    a.batch = q.shape[0];
    a.heads = q.shape[1];
    a.t = q.shape[2];
    a.d = q.shape[3];
    a.s = k.shape[2];
    a.dv = v.shape[3];
    if (!same_shape(k.shape, {a.batch, a.heads, a.s, a.d}) ||
        !same_shape(v.shape, {a.batch, a.heads, a.s, a.dv}) ||
        !same_shape(out.shape, {a.batch, a.heads, a.t, a.dv})) {
        throw py::value_error(
            "attention: expected q (B,H,T,D), k (B,H,S,D), v (B,H,S,Dv), out (B,H,T,Dv)");
    }
    if (a.s < 1 || a.d < 1) throw py::value_error("attention: need S >= 1 and D >= 1");
    // Every output element must have its own address (threads write them concurrently).
    for (int i = 0; i < 3; ++i) {
        const int64_t stride[3] = {out.rows.sb, out.rows.sh, out.rows.st};
        if (out.hi > out.lo && out.shape[i] > 1 && stride[i] == 0) {
            throw py::value_error("attention: out must not have zero (broadcast) strides");
        }
    }
    // The packed copies of k and v: B*H*(S16*D + Dv16*S) floats must be addressable.
    const double packed = static_cast<double>(a.batch) * static_cast<double>(a.heads) *
                          ((a.s + 15.0) * a.d + (a.dv + 15.0) * a.s);
    if (packed * sizeof(float) > 9.0e18) {
        throw py::value_error("attention: the problem is too large to address");
    }
    if (rule < 0 || rule > 2) throw py::value_error("attention: rule must be 0, 1 or 2");
    a.rule = static_cast<MaskRule>(rule);
    a.causal = causal;
    a.scale = scale;
    a.additive = additive;
    a.pre = pre;
    a.post = post;
    FloatArrayC w, add_w;
    uintptr_t w_lo = 0, w_hi = 0;
    if (!weights_in.is_none()) {
        w = require_f32(weights_in, kOp, "weights", 4);
        if (w.shape(0) != a.batch || w.shape(1) != a.heads || w.shape(2) != a.t ||
            w.shape(3) != a.s || !w.writeable()) {
            throw py::value_error("attention: weights must be a writable (B,H,T,S) array");
        }
        a.weights = w.mutable_data();
        if (w.size() > 0) {
            w_lo = reinterpret_cast<uintptr_t>(w.data());
            w_hi = w_lo + static_cast<uintptr_t>(w.nbytes());
        }
    }
    if (!add_w_in.is_none()) {
        add_w = require_f32(add_w_in, kOp, "add_w", 1);
        if (add_w.shape(0) != a.d) throw py::value_error("attention: add_w must have shape (D,)");
        a.add_w = add_w.data();
    }
    View<const uint8_t> m;
    if (!mask_in.is_none()) {
        m = view4<const uint8_t>(mask_in, "mask", false);
        if (!same_shape(m.shape, {a.batch, a.heads, a.t, a.s})) {
            throw py::value_error("attention: mask must have shape (B,H,T,S)");
        }
        a.mask = m.rows;
    }
    // Outputs are written while inputs are still read: they must not share memory.
    for (const auto& in : {std::make_pair(q.lo, q.hi), std::make_pair(k.lo, k.hi),
                           std::make_pair(v.lo, v.hi), std::make_pair(m.lo, m.hi)}) {
        if (overlap(out.lo, out.hi, in.first, in.second) ||
            overlap(w_lo, w_hi, in.first, in.second)) {
            throw py::value_error("attention: out and weights must not overlap the inputs");
        }
    }
    if (overlap(out.lo, out.hi, w_lo, w_hi)) {
        throw py::value_error("attention: out and weights must not overlap");
    }
    const double macs = static_cast<double>(a.batch) * a.heads * a.t * a.s * (a.d + a.dv);
    call_without_gil_if(macs >= kReleaseGilMinMacs, [&] { attention_forward(a); });
}

}  // namespace

void bind_attention(py::module_& m) {
    // Every argument may be passed by position: fastlayers/_cpp/attention.py does (pybind11
    // matches keyword arguments by name, about 16K instructions per call on a small head).
    m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
          py::arg("weights") = py::none(), py::arg("mask") = py::none(),
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
