// Internal to the extension module: one bind function per source file of csrc/bindings/, and
// helpers shared by them.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>

namespace fl {
namespace py_bindings {

void bind_runtime(pybind11::module_& m);
void bind_ops(pybind11::module_& m);
void bind_dense(pybind11::module_& m);
void bind_act(pybind11::module_& m);
void bind_recurrent(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);
void bind_attention(pybind11::module_& m);

using FloatArrayC = pybind11::array_t<float, pybind11::array::c_style>;

// Below this many multiply-adds (~2-3 us of work) releasing and re-taking the GIL costs more
// than another Python thread could gain.
constexpr int64_t kReleaseGilMinMacs = 32768;

// `h` as a C-contiguous, aligned float32 array of rank `ndim`, or a TypeError (not an array, wrong
// dtype) / ValueError (layout, rank) naming the op and the argument. Never converts: the Python
// layer (fastlayers/_validation.py) converts before calling, so a copy here would hide a bug.
inline FloatArrayC require_f32(const pybind11::handle& h, const char* op, const char* arg,
                               pybind11::ssize_t ndim) {
    namespace py = pybind11;
    if (!py::isinstance<py::array>(h)) {
        throw py::type_error(std::string(op) + ": " + arg + " must be a numpy.ndarray, got " +
                             py::str(py::type::handle_of(h)).cast<std::string>());
    }
    const py::array a = py::reinterpret_borrow<py::array>(h);
    const bool aligned = (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    if (!FloatArrayC::check_(a) || !aligned) {
        if (!a.dtype().equal(py::dtype::of<float>())) {
            throw py::type_error(std::string(op) + ": " + arg +
                                 " must be a float32 array, got dtype " +
                                 py::str(a.dtype()).cast<std::string>());
        }
        throw py::value_error(std::string(op) + ": " + arg +
                              (aligned ? " must be C-contiguous" : " must be aligned to 4 bytes"));
    }
    if (a.ndim() != ndim) {
        throw py::value_error(std::string(op) + ": " + arg + " must have ndim " +
                              std::to_string(ndim) + ", got " + std::to_string(a.ndim()));
    }
    return py::reinterpret_borrow<FloatArrayC>(a);
}

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// Runs f() with the GIL released.
//
// Not py::gil_scoped_release: on Python < 3.14, a daemon thread that re-takes the GIL while the
// interpreter finalizes is ended with pthread_exit, whose forced unwinding through that RAII
// object's (noexcept) destructor calls std::terminate, so an application exiting while a daemon
// thread runs a kernel would abort. Here the GIL is re-taken from a plain function call, and a
// thread that finds the interpreter finalizing parks instead (as Python 3.14 itself does): the
// process is about to exit and the thread must not touch Python objects any more.
template <class F>
void call_without_gil(F&& f) {
    PyThreadState* state = PyEval_SaveThread();
    try {
        std::forward<F>(f)();
    } catch (...) {
        PyEval_RestoreThread(state);
        throw;
    }
    if (interpreter_finalizing()) {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    PyEval_RestoreThread(state);
}

}  // namespace py_bindings
}  // namespace fl
