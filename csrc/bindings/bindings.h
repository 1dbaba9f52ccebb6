// Internal to the extension module: one bind function per source file of csrc/bindings/, and
// helpers shared by them.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
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
