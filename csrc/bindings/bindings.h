// Internal to the extension module: one bind function per source file of csrc/bindings/, and
// the helpers they share (array checks, masks, activation ids, releasing the GIL). Bindings
// use the C++ API of the core (csrc/include/fastlayers/) only.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <climits>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "fastlayers/activations.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

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
// The same for elementwise / row kernels (softmax, activations): below this many elements a
// kernel takes about a microsecond or less.
constexpr int64_t kReleaseGilMinElements = 4096;

// ---- Array checks. Inputs are never converted (no forcecast, no implicit copy): the Python
// layer (fastlayers/_validation.py) converts before calling, so a copy here would hide a bug.
// A wrong type or dtype is a TypeError, a wrong layout, rank or shape a ValueError; the message
// names the op and the argument.

inline std::string type_name(const pybind11::handle& h) {
    return pybind11::str(pybind11::type::handle_of(h)).cast<std::string>();
}

inline bool is_aligned(const pybind11::array& a) {
    return (a.flags() & pybind11::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

// "(2, 3)", "(5,)"; a negative entry (a free size in an expected shape) prints as "?".
template <class T>
std::string shape_str(const T* dims, size_t n) {
    std::string s = "(";
    for (size_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += dims[i] >= 0 ? std::to_string(dims[i]) : std::string("?");
    }
    return s + (n == 1 ? ",)" : ")");
}

inline std::string shape_str(const pybind11::array& a) {
    return shape_str(a.shape(), static_cast<size_t>(a.ndim()));
}

// ---- Integer arguments and size arithmetic. Python ints are unbounded: an argument is taken
// as a py::handle and converted here, so 2**64 is a ValueError naming the op and the argument
// (not pybind11's "incompatible function arguments"); sizes computed from arguments are
// multiplied and added with overflow checks (a ValueError instead of signed overflow).

// A Python int (or NumPy integer; not a bool) as int64.
inline int64_t int64_arg(const pybind11::handle& h, const char* op, const char* arg) {
    namespace py = pybind11;
    if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr())) {
        throw py::type_error(std::string(op) + ": " + arg + " must be an int, got " +
                             type_name(h));
    }
    py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!idx) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
    if (overflow != 0) {
        throw py::value_error(std::string(op) + ": " + arg + " is out of the int64 range, got " +
                              py::str(idx).cast<std::string>());
    }
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return static_cast<int64_t>(v);
}

// A sequence of N ints (a tuple or list), each as int64_arg.
template <size_t N>
std::array<int64_t, N> int64_args(const pybind11::handle& h, const char* op, const char* arg) {
    namespace py = pybind11;
    if (!py::isinstance<py::tuple>(h) && !py::isinstance<py::list>(h)) {
        throw py::type_error(std::string(op) + ": " + arg + " must be a tuple of " +
                             std::to_string(N) + " ints, got " + type_name(h));
    }
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(h);
    if (seq.size() != N) {
        throw py::value_error(std::string(op) + ": " + arg + " must have " + std::to_string(N) +
                              " entries, got " + std::to_string(seq.size()));
    }
    std::array<int64_t, N> out{};
    for (size_t i = 0; i < N; ++i) out[i] = int64_arg(seq[i], op, arg);
    return out;
}

// a * b and a + b for sizes (a, b >= 0), or a ValueError: "<op>: <what> overflows int64".
inline int64_t checked_mul(int64_t a, int64_t b, const char* op, const char* what) {
    int64_t r = 0;
#if defined(__GNUC__) || defined(__clang__)
    const bool bad = __builtin_mul_overflow(a, b, &r);
#else
    const bool bad = a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a);
    if (!bad) r = a * b;
#endif
    if (bad) {
        throw pybind11::value_error(std::string(op) + ": " + what + " overflows int64 (" +
                                    std::to_string(a) + " * " + std::to_string(b) + ")");
    }
    return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* op, const char* what) {
    int64_t r = 0;
#if defined(__GNUC__) || defined(__clang__)
    const bool bad = __builtin_add_overflow(a, b, &r);
#else
    const bool bad = (b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b);
    if (!bad) r = a + b;
#endif
    if (bad) {
        throw pybind11::value_error(std::string(op) + ": " + what + " overflows int64 (" +
                                    std::to_string(a) + " + " + std::to_string(b) + ")");
    }
    return r;
}

// `h` as a C-contiguous, aligned float32 array of any rank.
inline FloatArrayC require_f32(const pybind11::handle& h, const char* op, const char* arg) {
    namespace py = pybind11;
    if (!py::isinstance<py::array>(h)) {
        throw py::type_error(std::string(op) + ": " + arg + " must be a numpy.ndarray, got " +
                             type_name(h));
    }
    const py::array a = py::reinterpret_borrow<py::array>(h);
    const bool aligned = is_aligned(a);
    if (!FloatArrayC::check_(a) || !aligned) {
        if (!a.dtype().equal(py::dtype::of<float>())) {
            throw py::type_error(std::string(op) + ": " + arg +
                                 " must be a float32 array, got dtype " +
                                 py::str(a.dtype()).cast<std::string>());
        }
        throw py::value_error(std::string(op) + ": " + arg +
                              (aligned ? " must be C-contiguous" : " must be aligned to 4 bytes"));
    }
    return py::reinterpret_borrow<FloatArrayC>(a);
}

// The same, of rank `ndim`.
inline FloatArrayC require_f32(const pybind11::handle& h, const char* op, const char* arg,
                               pybind11::ssize_t ndim) {
    FloatArrayC a = require_f32(h, op, arg);
    if (a.ndim() != ndim) {
        throw pybind11::value_error(std::string(op) + ": " + arg + " must have ndim " +
                                    std::to_string(ndim) + ", got " + std::to_string(a.ndim()));
    }
    return a;
}

// The same, of shape `shape` (an entry < 0 is free).
inline FloatArrayC require_f32_shape(const pybind11::handle& h, const char* op, const char* arg,
                                     std::initializer_list<int64_t> shape) {
    FloatArrayC a = require_f32(h, op, arg);
    bool ok = a.ndim() == static_cast<pybind11::ssize_t>(shape.size());
    pybind11::ssize_t i = 0;
    for (int64_t d : shape) {
        if (ok && d >= 0 && a.shape(i) != d) ok = false;
        ++i;
    }
    if (!ok) {
        throw pybind11::value_error(std::string(op) + ": " + arg + " must have shape " +
                                    shape_str(shape.begin(), shape.size()) + ", got " +
                                    shape_str(a));
    }
    return a;
}

// An optional float32 vector (a bias) of n elements: nullptr for None, else its data, kept
// alive by *holder.
inline const float* optional_f32_vector(const pybind11::handle& h, const char* op,
                                        const char* arg, int64_t n, FloatArrayC* holder) {
    if (h.is_none()) return nullptr;
    *holder = require_f32_shape(h, op, arg, {n});
    return holder->data();
}

// A keep-mask's dtype: bool or uint8.
inline bool is_mask_dtype(const pybind11::dtype& dt) {
    return dt.equal(pybind11::dtype::of<bool>()) || dt.equal(pybind11::dtype::of<uint8_t>());
}

// An optional keep-mask: nullptr for None, else the data of a C-contiguous bool or uint8 array
// of shape `shape`, kept alive by *holder.
inline const uint8_t* optional_mask(const pybind11::handle& h, const char* op,
                                    const std::vector<int64_t>& shape, pybind11::array* holder) {
    namespace py = pybind11;
    if (h.is_none()) return nullptr;
    if (!py::isinstance<py::array>(h)) {
        throw py::type_error(std::string(op) + ": mask must be a numpy.ndarray or None, got " +
                             type_name(h));
    }
    const py::array m = py::reinterpret_borrow<py::array>(h);
    const py::dtype dt = m.dtype();
    if (!is_mask_dtype(dt)) {
        throw py::type_error(std::string(op) + ": mask must be a bool or uint8 array, got dtype " +
                             py::str(dt).cast<std::string>());
    }
    if ((m.flags() & py::array::c_style) == 0) {
        throw py::value_error(std::string(op) + ": mask must be C-contiguous");
    }
    if (m.ndim() != static_cast<py::ssize_t>(shape.size()) ||
        !std::equal(shape.begin(), shape.end(), m.shape())) {
        throw py::value_error(std::string(op) + ": mask must have shape " +
                              shape_str(shape.data(), shape.size()) + ", got " + shape_str(m));
    }
    *holder = m;
    return static_cast<const uint8_t*>(m.data());
}

[[noreturn]] inline void fail_arg(bool type_error, const char* op, const char* arg,
                                  const std::string& what) {
    namespace py = pybind11;
    const std::string msg = std::string(op) + ": " + arg + " " + what;
    if (type_error) throw py::type_error(msg);
    throw py::value_error(msg);
}

// A checked rank-4 view for `op` (attention's inputs, conv2d_into's output): dtype (float32
// for T = float, bool/uint8 for T = uint8_t), aligned, non-negative strides, contiguous last dim.
// Also returns the shape and the byte range [lo, hi) the view can touch (empty for an empty
// array), for the overlap check.
template <class T>
struct StridedView4 {
    Rows4<T> rows;
    pybind11::ssize_t shape[4] = {0, 0, 0, 0};
    uintptr_t lo = 0, hi = 0;
};

template <class T>
StridedView4<T> strided_view4(const char* op, const pybind11::handle& h, const char* arg,
                              bool writable) {
    namespace py = pybind11;
    using Elem = std::remove_const_t<T>;
    if (!py::isinstance<py::array>(h)) fail_arg(true, op, arg, "must be a numpy.ndarray");
    const py::array a = py::reinterpret_borrow<py::array>(h);
    const bool is_float = std::is_same<Elem, float>::value;
    const bool ok_dtype =
        is_float ? a.dtype().equal(py::dtype::of<float>()) : is_mask_dtype(a.dtype());
    if (!ok_dtype) {
        fail_arg(true, op, arg, std::string("must be a ") + (is_float ? "float32" : "bool") +
                                    " array, got dtype " + py::str(a.dtype()).cast<std::string>());
    }
    if (a.ndim() != 4) {
        fail_arg(false, op, arg, "must have ndim 4, got " + std::to_string(a.ndim()));
    }
    if (!is_aligned(a)) fail_arg(false, op, arg, "must be aligned");
    if (writable && !a.writeable()) fail_arg(false, op, arg, "must be writable");
    StridedView4<T> v;
    const py::ssize_t item = a.itemsize();
    const bool empty = a.size() == 0;  // the strides of an empty array are never used
    py::ssize_t extent = 0;            // bytes from the first to the last element
    for (int i = 0; i < 4; ++i) {
        v.shape[i] = a.shape(i);
        if (empty) continue;
        if (a.shape(i) > 1 && (a.strides(i) < 0 || a.strides(i) % item != 0)) {
            fail_arg(false, op, arg,
                     "must have non-negative strides, multiples of its item size");
        }
        if (a.shape(i) > 1) {
            extent = checked_add(extent, checked_mul(a.shape(i) - 1, a.strides(i), op, arg),
                                 op, arg);
        }
    }
    if (!empty && a.shape(3) > 1 && a.strides(3) != item) {
        fail_arg(false, op, arg, "must have a contiguous last dim");
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

inline bool ranges_overlap(uintptr_t lo1, uintptr_t hi1, uintptr_t lo2, uintptr_t hi2) {
    return lo1 < hi2 && lo2 < hi1;
}

// A new C-contiguous float32 array (uninitialized) of the given shape / of a's shape.
//
// From kAlignedOutputBytes on, its data starts on a 64-byte boundary, owned by a capsule (the
// array's base; NumPy's own allocation of a large array starts 16 bytes past a page, 16 bytes
// into a cache line). The next op then reads whole 64-byte vectors that never straddle two
// lines: a 3x3 depthwise conv over (1, 112, 112, 32) took 219 us from an aligned input and 262
// from NumPy's, over (8, 14, 14, 512) 320 and 420 us (one Zen 4 core, AVX-512: every 64-byte
// load of a pixel's channels crossed a line). Smaller arrays stay NumPy's (its cache is faster).
constexpr int64_t kAlignedOutputBytes = 4096;

// The blocks behind those arrays (output_cache.cpp): a malloc'd block of at least `bytes` (the
// most recently freed one of about that size, else a new one; nullptr if malloc fails; *got =
// its size) and its return once the array that owned it is gone.
void* output_block_take(size_t bytes, size_t* got);
void output_block_give(void* raw);  // its size stored in its first sizeof(size_t) bytes
// Sets the bytes the cache may hold (0: none, the one block over the limit that it keeps
// besides freed too; the blocks beyond a smaller limit are freed at once; SIZE_MAX:
// unchanged) and returns the previous limit; *held = the bytes it holds afterwards.
size_t output_cache_limit(size_t max_bytes, size_t* held);

// From kStaggeredOutputBytes on, an output's data starts at one of these offsets into a page,
// a different one than the previous output's (output_page_offset, bindings/output_cache.cpp).
// Streaming kernels load x[i] and store y[i] in step; when x and y sit at the same offset
// into their pages (NumPy's large arrays start 16 bytes into a page, and a block malloc maps
// for a large output starts there too), the CPU takes each load for one that may depend on
// the store before it with the same low 12 address bits ("4K aliasing"): a softmax over
// (16384, 256) took 1.63 ms with its output 48 bytes from its input's page offset and
// 1.38-1.42 ms with it 1-3 KiB away (one Zen 4 core).
constexpr int64_t kStaggeredOutputBytes = int64_t{64} << 10;
size_t output_page_offset();

inline FloatArrayC new_f32_shape(std::vector<pybind11::ssize_t> shape) {
    // A size in bytes beyond int64, or one that cannot be allocated, is left to NumPy: its
    // ValueError ("array is too big") or MemoryError names the shape.
    int64_t n = 1;
    for (pybind11::ssize_t d : shape) {
        if (d < 0 || (d > 0 && n > INT64_MAX / int64_t{sizeof(float)} / d))
            return FloatArrayC(std::move(shape));
        n *= d;
    }
    if (n < kAlignedOutputBytes / int64_t{sizeof(float)}) return FloatArrayC(std::move(shape));
    // malloc, as NumPy (its heap serves a repeated size without new page faults: the aligned
    // operator new took 117 page faults per call of a 16 MiB softmax, NumPy's malloc none),
    // through the cache of recently freed blocks (output_cache.cpp). The block's size is kept
    // in its first bytes, before the data's 64-byte boundary.
    // Large outputs: the data at a chosen offset into a page (kStaggeredOutputBytes), so up to
    // a page of slack plus the offset; else at the first 64-byte boundary after the size.
    const bool staggered = n * int64_t{sizeof(float)} >= kStaggeredOutputBytes;
    const size_t slack = staggered ? 2 * 4096 : 64;
    size_t bytes = 0;
    std::unique_ptr<void, void (*)(void*)> raw(
        output_block_take(static_cast<size_t>(n) * sizeof(float) + slack + sizeof(size_t),
                          &bytes),
        [](void* p) { output_block_give(p); });
    if (!raw) return FloatArrayC(std::move(shape));
    std::memcpy(raw.get(), &bytes, sizeof bytes);
    const uintptr_t after_size = reinterpret_cast<uintptr_t>(raw.get()) + sizeof(size_t);
    float* data = reinterpret_cast<float*>(
        staggered ? ((after_size + 4095) & ~static_cast<uintptr_t>(4095)) + output_page_offset()
                  : (after_size + 63) & ~static_cast<uintptr_t>(63));
    pybind11::capsule owner(raw.get(), [](void* p) { output_block_give(p); });
    raw.release();  // the capsule gives it back from here on
    return FloatArrayC(std::move(shape), data, owner);
}
inline FloatArrayC new_f32(std::initializer_list<int64_t> shape) {
    return new_f32_shape(std::vector<pybind11::ssize_t>(shape.begin(), shape.end()));
}
inline FloatArrayC new_f32_like(const pybind11::array& a) {
    return new_f32_shape(std::vector<pybind11::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

// ---- Activations: ids of fastlayers/activations.h (activation_ids() in Python).

// The activation `id`, or a ValueError naming the op and the argument.
inline Act act_from_id(int id, const char* op, const char* arg) {
    if (id < 0 || id >= kNumActs) {
        throw pybind11::value_error(std::string(op) + ": " + arg + " must be in [0, " +
                                    std::to_string(kNumActs) + "), got " + std::to_string(id));
    }
    return static_cast<Act>(id);
}

// The kernel a driver applies to finished rows for activation `id` (nullptr for 0 = linear).
inline ActFn act_kernel_from_id(int id, const char* op, const char* arg) {
    return act_kernel(act_from_id(id, op, arg));
}

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// The pool's one-time report that the OS refused to start a thread (fl::take_thread_start_warning)
// as a RuntimeWarning, raised here, on the calling thread that holds the GIL: pool threads never
// call into Python. A warning filter that turns it into an error raises that error.
inline void warn_if_threads_refused() {
    const std::string msg = take_thread_start_warning();
    if (msg.empty()) return;
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) {
        throw pybind11::error_already_set();
    }
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
    warn_if_threads_refused();
}

// f() with the GIL released if `release` (enough work to pay for it), else with it held.
template <class F>
void call_without_gil_if(bool release, F&& f) {
    if (release) {
        call_without_gil(std::forward<F>(f));
    } else {
        std::forward<F>(f)();
        warn_if_threads_refused();
    }
}

}  // namespace py_bindings
}  // namespace fl
