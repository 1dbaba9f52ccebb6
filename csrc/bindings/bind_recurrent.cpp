// LSTM, GRU and SimpleRNN: lstm(...), gru(...) and simple_rnn(...) over a whole sequence, with
// kernels pre-packed as PackedGates (gate-interleaved, fastlayers/ops.h; bound here) - and
// PackedDense (bind_dense.cpp) for the GRU's reset_before candidate kernel.
//
// Inputs are checked, never converted (bindings.h); the Python layer
// (fastlayers/functional.py) validates and converts before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "bindings.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

void check_packed(const PackedB& p, const char* op, const char* arg, int64_t k, int64_t n) {
    if (p.k() != k || p.n() != n) {
        throw py::value_error(std::string(op) + ": " + arg + " must be packed from a (" +
                              std::to_string(k) + ", " + std::to_string(n) +
                              ") kernel, got (" + std::to_string(p.k()) + ", " +
                              std::to_string(p.n()) + ")");
    }
}

void check_packed(const PackedGates& p, const char* op, const char* arg, int64_t k, int gates,
                  int64_t u) {
    if (p.w.k() != k || p.gates != gates || p.units != u) {
        throw py::value_error(std::string(op) + ": " + arg + " must be packed from a (" +
                              std::to_string(k) + ", " + std::to_string(gates * u) +
                              ") kernel with " + std::to_string(gates) + " gates, got (" +
                              std::to_string(p.w.k()) + ", " + std::to_string(p.gates * p.units) +
                              ") with " + std::to_string(p.gates) + " gates");
    }
}

PackedGates make_packed_gates(const py::handle& kernel_in, int gates, const py::handle& bias_in) {
    const char* op = "PackedGates";
    if (gates < 1 || gates > 4) {
        throw py::value_error("PackedGates: gates must be in [1, 4], got " +
                              std::to_string(gates));
    }
    const FloatArrayC kernel = require_f32_shape(kernel_in, op, "kernel", {-1, -1});
    const int64_t k = kernel.shape(0), n = kernel.shape(1);
    if (n % gates != 0) {
        throw py::value_error("PackedGates: kernel columns (" + std::to_string(n) +
                              ") must be a multiple of gates (" + std::to_string(gates) + ")");
    }
    FloatArrayC bias_arr;
    const float* bias = optional_f32_vector(bias_in, op, "bias", n, &bias_arr);
    const float* kp = kernel.data();
    PackedGates packed;
    call_without_gil_if(k * n >= (int64_t(1) << 20),
                        [&] { packed = pack_gates(kp, k, n / gates, gates, bias); });
    return packed;
}

// Whether a recurrent call of `gates` gates over b rows, t steps, f features and u units is
// large enough to run without the GIL (its multiply-adds, in double: no overflow).
bool releases_gil(int gates, int64_t b, int64_t t, int64_t f, int64_t u) {
    return static_cast<double>(gates) * static_cast<double>(b) * static_cast<double>(t) *
               static_cast<double>(u) * static_cast<double>(f + u) >=
           kReleaseGilMinMacs;
}

FloatArrayC new_output(int64_t b, int64_t t, int64_t u, bool return_sequences) {
    return return_sequences ? new_f32({b, t, u}) : new_f32({b, u});
}

py::tuple lstm(const py::handle& x_in, const PackedGates& w_in, const PackedGates& w_rec,
               const py::handle& h0_in, const py::handle& c0_in, const py::handle& mask_in,
               bool return_sequences, bool go_backwards, int act_id, int ract_id) {
    const char* op = "lstm";
    const FloatArrayC x = require_f32_shape(x_in, op, "x", {-1, -1, -1});
    const int64_t b = x.shape(0), t = x.shape(1), f = x.shape(2), u = w_rec.units;
    check_packed(w_rec, op, "packed_recurrent", u, 4, u);
    check_packed(w_in, op, "packed_kernel", f, 4, u);
    const FloatArrayC h0 = require_f32_shape(h0_in, op, "h0", {b, u});
    const FloatArrayC c0 = require_f32_shape(c0_in, op, "c0", {b, u});
    py::array mask_arr;
    const uint8_t* mask = optional_mask(mask_in, op, {b, t}, &mask_arr);
    const Act act = act_from_id(act_id, op, "activation_id");
    const Act ract = act_from_id(ract_id, op, "recurrent_activation_id");
    FloatArrayC out = new_output(b, t, u, return_sequences);
    FloatArrayC h = new_f32({b, u});
    FloatArrayC c = new_f32({b, u});
    if (b > 0) {  // an empty batch calls no kernel
        const float* xp = x.data();
        const float* h0p = h0.data();
        const float* c0p = c0.data();
        float* op_ = out.mutable_data();
        float* hp = h.mutable_data();
        float* cp = c.mutable_data();
        call_without_gil_if(releases_gil(4, b, t, f, u), [&] {
            lstm_forward(xp, b, t, f, w_in, w_rec, h0p, c0p, mask, return_sequences,
                         go_backwards, act, ract, op_, hp, cp);
        });
    }
    return py::make_tuple(std::move(out), std::move(h), std::move(c));
}

py::tuple lstm_cell(const py::handle& x_in, const py::handle& kernel_in,
                    const py::handle& recurrent_in, const py::handle& bias_in,
                    const py::handle& h0_in, const py::handle& c0_in, int act_id, int ract_id) {
    const char* op = "lstm_cell";
    const FloatArrayC x = require_f32_shape(x_in, op, "x", {-1, -1});
    const int64_t b = x.shape(0), f = x.shape(1);
    const FloatArrayC rec = require_f32_shape(recurrent_in, op, "recurrent_kernel", {-1, -1});
    const int64_t u = rec.shape(0);
    checked_mul(4, u, op, "4 * units");  // an empty (u, 0) array may claim any u
    if (rec.shape(1) != 4 * u) {
        throw py::value_error("lstm_cell: recurrent_kernel must have shape (u, 4u), got (" +
                              std::to_string(u) + ", " + std::to_string(rec.shape(1)) + ")");
    }
    const FloatArrayC kernel = require_f32_shape(kernel_in, op, "kernel", {f, 4 * u});
    FloatArrayC bias_arr;
    const float* bias = optional_f32_vector(bias_in, op, "bias", 4 * u, &bias_arr);
    const FloatArrayC h0 = require_f32_shape(h0_in, op, "h0", {b, u});
    const FloatArrayC c0 = require_f32_shape(c0_in, op, "c0", {b, u});
    const Act act = act_from_id(act_id, op, "activation_id");
    const Act ract = act_from_id(ract_id, op, "recurrent_activation_id");
    FloatArrayC h = new_f32({b, u});
    FloatArrayC c = new_f32({b, u});
    if (b > 0 && u > 0) {
        const float* xp = x.data();
        const float* kp = kernel.data();
        const float* rp = rec.data();
        const float* h0p = h0.data();
        const float* c0p = c0.data();
        float* hp = h.mutable_data();
        float* cp = c.mutable_data();
        call_without_gil_if(releases_gil(4, b, 1, f, u), [&] {
            lstm_cell_forward(xp, b, f, u, kp, rp, bias, h0p, c0p, act, ract, hp, cp);
        });
    }
    return py::make_tuple(std::move(h), std::move(c));
}

py::tuple gru(const py::handle& x_in, const PackedGates& w_in, const PackedGates& w_rec,
              const py::handle& w_rec_h_in, const py::handle& h0_in, const py::handle& mask_in,
              bool return_sequences, bool go_backwards, bool reset_after, int act_id,
              int ract_id) {
    const char* op = "gru";
    const FloatArrayC x = require_f32_shape(x_in, op, "x", {-1, -1, -1});
    const int64_t b = x.shape(0), t = x.shape(1), f = x.shape(2), u = w_rec.units;
    const PackedB* w_rec_h = nullptr;
    if (reset_after) {
        if (!w_rec_h_in.is_none()) {
            throw py::value_error("gru: packed_recurrent_h must be None with reset_after=True");
        }
        check_packed(w_rec, op, "packed_recurrent", u, 3, u);
    } else {
        if (w_rec_h_in.is_none()) {
            throw py::value_error(
                "gru: packed_recurrent_h (recurrent_kernel[:, 2u:]) is required with "
                "reset_after=False");
        }
        if (!py::isinstance<PackedB>(w_rec_h_in)) {
            throw py::type_error("gru: packed_recurrent_h must be a PackedDense, got " +
                                 type_name(w_rec_h_in));
        }
        w_rec_h = &w_rec_h_in.cast<const PackedB&>();
        check_packed(w_rec, op, "packed_recurrent", u, 2, u);
        check_packed(*w_rec_h, op, "packed_recurrent_h", u, u);
    }
    check_packed(w_in, op, "packed_kernel", f, 3, u);
    const FloatArrayC h0 = require_f32_shape(h0_in, op, "h0", {b, u});
    py::array mask_arr;
    const uint8_t* mask = optional_mask(mask_in, op, {b, t}, &mask_arr);
    const Act act = act_from_id(act_id, op, "activation_id");
    const Act ract = act_from_id(ract_id, op, "recurrent_activation_id");
    FloatArrayC out = new_output(b, t, u, return_sequences);
    FloatArrayC h = new_f32({b, u});
    if (b > 0) {
        const float* xp = x.data();
        const float* h0p = h0.data();
        float* op_ = out.mutable_data();
        float* hp = h.mutable_data();
        call_without_gil_if(releases_gil(3, b, t, f, u), [&] {
            gru_forward(xp, b, t, f, w_in, w_rec, w_rec_h, h0p, mask, return_sequences,
                        go_backwards, reset_after, act, ract, op_, hp);
        });
    }
    return py::make_tuple(std::move(out), std::move(h));
}

py::tuple simple_rnn(const py::handle& x_in, const PackedGates& w_in, const PackedGates& w_rec,
                     const py::handle& h0_in, const py::handle& mask_in, bool return_sequences,
                     bool go_backwards, int act_id) {
    const char* op = "simple_rnn";
    const FloatArrayC x = require_f32_shape(x_in, op, "x", {-1, -1, -1});
    const int64_t b = x.shape(0), t = x.shape(1), f = x.shape(2), u = w_rec.units;
    check_packed(w_rec, op, "packed_recurrent", u, 1, u);
    check_packed(w_in, op, "packed_kernel", f, 1, u);
    const FloatArrayC h0 = require_f32_shape(h0_in, op, "h0", {b, u});
    py::array mask_arr;
    const uint8_t* mask = optional_mask(mask_in, op, {b, t}, &mask_arr);
    const Act act = act_from_id(act_id, op, "activation_id");
    FloatArrayC out = new_output(b, t, u, return_sequences);
    FloatArrayC h = new_f32({b, u});
    if (b > 0) {
        const float* xp = x.data();
        const float* h0p = h0.data();
        float* op_ = out.mutable_data();
        float* hp = h.mutable_data();
        call_without_gil_if(releases_gil(1, b, t, f, u), [&] {
            simple_rnn_forward(xp, b, t, f, w_in, w_rec, h0p, mask, return_sequences,
                               go_backwards, act, op_, hp);
        });
    }
    return py::make_tuple(std::move(out), std::move(h));
}

}  // namespace

void bind_recurrent(py::module_& m) {
    py::class_<PackedGates>(m, "PackedGates",
                            "A recurrent layer's kernel (K, gates*u) float32 C-contiguous, with "
                            "its bias (gates*u,) float32 or None, packed once for lstm, gru or "
                            "simple_rnn with the gates of each 16-unit block side by side.")
        .def(py::init(&make_packed_gates), py::arg("kernel"), py::arg("gates"),
             py::arg("bias") = py::none())
        .def_property_readonly("k", [](const PackedGates& p) { return p.w.k(); },
                               "Input features K.")
        .def_property_readonly("units", [](const PackedGates& p) { return p.units; })
        .def_property_readonly("gates", [](const PackedGates& p) { return p.gates; })
        .def_property_readonly("has_bias", [](const PackedGates& p) { return p.w.has_bias(); })
        .def_property_readonly("nbytes", [](const PackedGates& p) { return p.w.nbytes(); },
                               "Bytes of packed storage.")
        .def("__repr__", [](const PackedGates& p) {
            return "PackedGates(k=" + std::to_string(p.w.k()) + ", gates=" +
                   std::to_string(p.gates) + ", units=" + std::to_string(p.units) +
                   ", bias=" + (p.w.has_bias() ? "True" : "False") + ")";
        });
    m.def(
        "_debug_units_split_close_at",
        [](int64_t step) { units_split_close_at_for_tests(step); }, py::arg("step"),
        "Test hook: step >= 0 runs every LSTM/GRU/SimpleRNN units split as if its workers never "
        "came (the caller takes their shares, then closes the split at that step); -1 turns it "
        "off.");
    m.def(
        "_debug_units_split_leave_at",
        [](int64_t step, int64_t delay_us) { units_split_leave_at_for_tests(step, delay_us); },
        py::arg("step"), py::arg("delay_us") = 0,
        "Test hook: step >= 0 makes the caller of every LSTM/GRU/SimpleRNN units split act at "
        "that step as after a stalled phase (call its workers onto its CPU, ask them to leave), "
        "after sleeping delay_us microseconds while its workers run on; -1 turns it off.");
    m.def(
        "_debug_recurrent_projection_fail_at",
        [](int64_t step) { recurrent_projection_fail_at_for_tests(step); }, py::arg("step"),
        "Test hook: step >= 0 makes the LSTM/GRU/SimpleRNN input projection of the time chunk "
        "holding that processing step (k = T-1-t with go_backwards) raise MemoryError "
        "(std::bad_alloc); -1 turns it off.");
    m.def("_debug_recurrent_sliced_projections",
          [] { return recurrent_sliced_projections_for_tests(); },
          "Test hook: how many LSTM/GRU/SimpleRNN time-chunk projections were cut into slices "
          "of unit blocks (a units split run on one thread).");
    m.def("_debug_units_split_closes", [] { return units_split_closes_for_tests(); },
          "Test hook: how many LSTM/GRU/SimpleRNN units splits have been closed so far.");
    m.def("lstm", &lstm, py::arg("x"), py::arg("packed_kernel"), py::arg("packed_recurrent"),
          py::arg("h0"), py::arg("c0"), py::arg("mask"), py::arg("return_sequences"),
          py::arg("go_backwards"), py::arg("activation_id"), py::arg("recurrent_activation_id"),
          "Keras LSTM over x (B, T, F) float32; packed_kernel = PackedGates(kernel (F, 4u), 4, "
          "bias), packed_recurrent = PackedGates(recurrent_kernel (u, 4u), 4); h0, c0 (B, u); "
          "mask None or bool/uint8 (B, T). Returns (out, h, c), out (B, T, u) in processing "
          "order if return_sequences else (B, u).");
    m.def("lstm_cell", &lstm_cell, py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"),
          py::arg("bias"), py::arg("h0"), py::arg("c0"), py::arg("activation_id"),
          py::arg("recurrent_activation_id"),
          "One Keras LSTM step with raw (unpacked) weights: x (B, F), kernel (F, 4u), "
          "recurrent_kernel (u, 4u), bias (4u,) or None, h0, c0 (B, u); float32, C-contiguous. "
          "Returns (h, c). Bitwise lstm() with T = 1 on the packed weights.");
    m.def("gru", &gru, py::arg("x"), py::arg("packed_kernel"), py::arg("packed_recurrent"),
          py::arg("packed_recurrent_h"), py::arg("h0"), py::arg("mask"),
          py::arg("return_sequences"), py::arg("go_backwards"), py::arg("reset_after"),
          py::arg("activation_id"), py::arg("recurrent_activation_id"),
          "Keras GRU over x (B, T, F) float32. packed_kernel = PackedGates(kernel (F, 3u), 3, "
          "input bias). reset_after: packed_recurrent = PackedGates(recurrent_kernel (u, 3u), 3, "
          "recurrent bias), packed_recurrent_h None; else packed_recurrent = "
          "PackedGates(recurrent_kernel[:, :2u], 2), packed_recurrent_h = "
          "PackedDense(recurrent_kernel[:, 2u:]). Returns (out, h).");
    m.def("simple_rnn", &simple_rnn, py::arg("x"), py::arg("packed_kernel"),
          py::arg("packed_recurrent"), py::arg("h0"), py::arg("mask"),
          py::arg("return_sequences"), py::arg("go_backwards"), py::arg("activation_id"),
          "Keras SimpleRNN over x (B, T, F) float32; packed_kernel = PackedGates(kernel (F, u), "
          "1, bias), packed_recurrent = PackedGates(recurrent_kernel (u, u), 1); h0 (B, u); "
          "mask None or bool/uint8 (B, T). Returns (out, h), out (B, T, u) in processing order "
          "if return_sequences else (B, u).");
}

}  // namespace py_bindings
}  // namespace fl
