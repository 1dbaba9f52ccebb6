// Attention: rank-4 strided views in, the driver fl::attention_forward (csrc/ops/attention.cpp).
//
// q, k, v and out are (batch, heads, rows, cols) float32 views whose last dim is contiguous;
// the other strides are free (0 = broadcast), so the Python layer can pass a head-split
// projection (B, T, N, H) transposed to (B, N, T, H) without a copy. k and v may have fewer
// heads than q, a divisor of them (grouped-query attention, read in place).
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

bool same_shape(const py::ssize_t* x, std::initializer_list<py::ssize_t> y) {
    int i = 0;
    for (py::ssize_t e : y)
        if (x[i++] != e) return false;
    return true;
}

// Returns the output: `out`, or when `out` is None a new C-contiguous (B, H, T, Dv) array
// (allocated here: a small head's call skips a second call into the module for it).
py::object attention(const py::handle& q_in, const py::handle& k_in, const py::handle& v_in,
                     const py::handle& out_arg, const py::object& weights_in,
                     const py::object& mask_in, bool causal, int rule, float scale,
                     bool additive, float pre, float post, const py::object& add_w_in) {
    const StridedView4<const float> q = strided_view4<const float>(kOp, q_in, "q", false);
    const StridedView4<const float> k = strided_view4<const float>(kOp, k_in, "k", false);
    const StridedView4<const float> v = strided_view4<const float>(kOp, v_in, "v", false);
    AttentionArgs a;
    a.q = q.rows;
    a.k = k.rows;
    a.v = v.rows;
    a.batch = q.shape[0];
    a.heads = q.shape[1];
    a.t = q.shape[2];
    a.d = q.shape[3];
    a.s = k.shape[2];
    a.dv = v.shape[3];
    // Grouped-query attention: k and v may have G heads, G dividing H, each read by H / G
    // consecutive query heads in place (Rows4::group).
    const int64_t g = k.shape[1];
    const bool grouped = g != a.heads;
    const char* const kShapes =
        "attention: expected q (B,H,T,D), k (B,G,S,D), v (B,G,S,Dv), out (B,H,T,Dv) with G "
        "dividing H";
    if ((grouped && (g < 1 || a.heads % g != 0)) ||
        !same_shape(k.shape, {a.batch, g, a.s, a.d}) ||
        !same_shape(v.shape, {a.batch, g, a.s, a.dv})) {
        throw py::value_error(kShapes);
    }
    if (a.s < 1 || a.d < 1) throw py::value_error("attention: need S >= 1 and D >= 1");
    // The packed copies of k and v: B*H*(S16*D + Dv16*S) floats must be addressable.
    const double packed = static_cast<double>(a.batch) * static_cast<double>(a.heads) *
                          ((a.s + 15.0) * a.d + (a.dv + 15.0) * a.s);
    if (packed * sizeof(float) > 9.0e18) {
        throw py::value_error("attention: the problem is too large to address");
    }
    if (rule < 0 || rule > 2) throw py::value_error("attention: rule must be 0, 1 or 2");
    // out None: a new (B, H, T, Dv) array, allocated once q, k and v are known to agree.
    py::object out_obj = py::reinterpret_borrow<py::object>(out_arg);
    if (out_obj.is_none()) out_obj = new_f32({a.batch, a.heads, a.t, a.dv});
    const StridedView4<float> out = strided_view4<float>(kOp, out_obj, "out", true);
    if (!same_shape(out.shape, {a.batch, a.heads, a.t, a.dv})) throw py::value_error(kShapes);
    a.out = out.rows;
    if (grouped && a.heads > 0) a.k.group = a.v.group = a.heads / g;
    // Every output element must have its own address (threads write them concurrently).
    for (int i = 0; i < 3; ++i) {
        const int64_t stride[3] = {out.rows.sb, out.rows.sh, out.rows.st};
        if (out.hi > out.lo && out.shape[i] > 1 && stride[i] == 0) {
            throw py::value_error("attention: out must not have zero (broadcast) strides");
        }
    }
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
    StridedView4<const uint8_t> m;
    if (!mask_in.is_none()) {
        m = strided_view4<const uint8_t>(kOp, mask_in, "mask", false);
        if (!same_shape(m.shape, {a.batch, a.heads, a.t, a.s})) {
            throw py::value_error("attention: mask must have shape (B,H,T,S)");
        }
        a.mask = m.rows;
    }
    // Outputs are written while inputs are still read: they must not share memory.
    for (const auto& in : {std::make_pair(q.lo, q.hi), std::make_pair(k.lo, k.hi),
                           std::make_pair(v.lo, v.hi), std::make_pair(m.lo, m.hi)}) {
        if (ranges_overlap(out.lo, out.hi, in.first, in.second) ||
            ranges_overlap(w_lo, w_hi, in.first, in.second)) {
            throw py::value_error("attention: out and weights must not overlap the inputs");
        }
    }
    if (ranges_overlap(out.lo, out.hi, w_lo, w_hi)) {
        throw py::value_error("attention: out and weights must not overlap");
    }
    const double macs = static_cast<double>(a.batch) * a.heads * a.t * a.s * (a.d + a.dv);
    call_without_gil_if(macs >= kReleaseGilMinMacs, [&] { attention_forward(a); });
    return out_obj;
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
          "(last dim contiguous); k and v may have G heads, G dividing H, each serving H/G "
          "consecutive query heads. out None: a new C-contiguous (B,H,T,Dv) array. Returns "
          "out. rule: 0 fused (-0.7*FLT_MAX), 1 subtract 1e9, 2 Softmax "
          "layer. Dot scores = scale*(q.k); additive = post*sum(add_w*tanh(pre*(q+k))). "
          "weights (B,H,T,S) C-contiguous, written if given. mask (B,H,T,S) bool view, last "
          "dim contiguous, True = attend.");
}

}  // namespace py_bindings
}  // namespace fl
