// Runtime control and introspection: threads, ISA, CPU features, build information.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <climits>
#include <string>
#include <thread>
#include <vector>

#include "bindings.h"
#include "fastlayers/runtime.h"

#ifndef FASTLAYERS_BUILD_TYPE
#define FASTLAYERS_BUILD_TYPE ""
#endif

namespace py = pybind11;

namespace fl {
namespace py_bindings {
namespace {

std::string compiler_description() {
#if defined(__clang__)
    return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
    return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
           std::to_string(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
    return "MSVC " + std::to_string(_MSC_FULL_VER);
#else
    return "unknown";
#endif
}

// The shapes of the arrays given, a tuple of tuples, when every one is what the kernels take as
// it is (fastlayers/_checks.py `unchanged`: exactly a numpy.ndarray, of float32 equal to the
// native one, C-contiguous and aligned), else None. The signature of a direct op call
// (functional.py, _plain_f32_key) in one call into the module: the same checks in Python took
// 0.25 us an array, 1.6 us for the key of scaled_dot_product_attention's three.
py::object plain_f32_shapes(const py::args& arrays) {
    using npy = py::detail::npy_api;
    static PyObject* const f32 = py::dtype::of<float>().release().ptr();  // kept for good
    PyTypeObject* const ndarray = npy::get().PyArray_Type_;
    constexpr int kWanted = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_;
    const Py_ssize_t n = PyTuple_GET_SIZE(arrays.ptr());
    py::tuple shapes(n);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* o = PyTuple_GET_ITEM(arrays.ptr(), i);
        if (Py_TYPE(o) != ndarray) return py::none();  // not an ndarray, or a subclass
        const py::detail::PyArray_Proxy* a = py::detail::array_proxy(o);
        if ((a->flags & kWanted) != kWanted) return py::none();
        if (a->descr != f32) {  // identity first: the usual case
            const int equal = PyObject_RichCompareBool(a->descr, f32, Py_EQ);
            if (equal < 0) throw py::error_already_set();
            if (equal == 0) return py::none();
        }
        py::tuple shape(a->nd);
        for (int d = 0; d < a->nd; ++d)
            PyTuple_SET_ITEM(shape.ptr(), d, py::int_(a->dimensions[d]).release().ptr());
        PyTuple_SET_ITEM(shapes.ptr(), i, shape.release().ptr());
    }
    return std::move(shapes);
}

py::list isa_names(const std::vector<Isa>& isas) {
    py::list out;
    for (Isa isa : isas) out.append(isa_name(isa));
    return out;
}

py::dict runtime_info() {
    const CpuFeatures& f = cpu_features();
    py::dict features;
    features["sse2"] = f.sse2;
    features["sse41"] = f.sse41;
    features["avx"] = f.avx;
    features["avx2"] = f.avx2;
    features["fma"] = f.fma;
    features["f16c"] = f.f16c;
    features["avx512f"] = f.avx512f;
    features["avx512bw"] = f.avx512bw;
    features["avx512dq"] = f.avx512dq;
    features["avx512vl"] = f.avx512vl;
    features["os_ymm"] = f.os_ymm;
    features["os_zmm"] = f.os_zmm;
    features["neon"] = f.neon;

    py::dict info;
    info["isa"] = isa_name(active_isa());
    info["isas_built"] = isa_names(isas_built());
    info["isas_supported"] = isa_names(isas_supported());
    info["cpu_features"] = features;
    info["num_threads"] = num_threads();
    const char* cap = isa_cap_env();
    info["isa_cap"] = cap ? py::object(py::str(cap)) : py::object(py::none());
    info["isa_cap_message"] = isa_cap_message();
    info["compiler"] = compiler_description();
    const std::string build_type = FASTLAYERS_BUILD_TYPE;
    info["build_type"] = build_type.empty() ? std::string("unspecified") : build_type;
    return info;
}

}  // namespace

void bind_runtime(py::module_& m) {
    // std::invalid_argument (n < 1) is translated to ValueError by pybind11.
    m.def("set_num_threads",
          [](const py::handle& n) {
              const int64_t v = int64_arg(n, "set_num_threads", "n");
              if (v < 1 || v > INT_MAX) {
                  throw py::value_error("set_num_threads: n must be in [1, " +
                                        std::to_string(INT_MAX) + "], got " + std::to_string(v));
              }
              // Without the GIL: resizing waits for a parallel region running in another
              // thread, and holding the GIL froze every Python thread until it ended (0.2-0.8 s
              // during a large LSTM; a concurrency audit).
              py::gil_scoped_release release;
              set_num_threads(static_cast<int>(v));
          },
          py::arg("n"),
          "Set the number of threads used by the C++ kernels (>= 1). Joins surplus workers.");
    m.def(
        "get_num_threads",
        [] {
            warn_if_threads_refused();
            return num_threads();
        },
        "Number of threads used by the C++ kernels (lowered to the threads the pool really got "
        "if the OS refused to start some; that is reported once, as a RuntimeWarning).");
    m.def(
        "pool_stats",
        [] {
            const PoolStats s = pool_stats();
            py::dict d;
            d["regions"] = s.regions;
            d["workers_signalled"] = s.workers_signalled;
            d["worker_wakeups"] = s.worker_wakeups;
            d["chunks_taken_over"] = s.chunks_taken_over;
            d["late_workers_called"] = s.late_workers_called;
            d["backoffs"] = s.backoffs;
            d["serial_by_backoff"] = s.serial_by_backoff;
            d["masks_given_back"] = s.masks_given_back;
            return d;
        },
        "Counters of the thread pool since the process started: regions (run on more than one "
        "thread), workers_signalled, worker_wakeups, chunks_taken_over, "
        "late_workers_called (late workers moved onto the caller's CPU), backoffs (contended "
        "recurrent units splits), serial_by_backoff (units splits the backoff ran on the caller "
        "alone), masks_given_back (late workers whose CPU mask the caller restored at the end of a "
        "region).");
    m.def(
        "_debug_pool_wake_delay", [](int64_t us) { pool_wake_delay_for_tests(us); },
        py::arg("us"),
        "Test hook: a worker woken with a region sleeps us microseconds before anything else (a "
        "late worker); 0 turns it off.");
    m.def(
        "set_contention_backoff",
        [](const py::handle& on) {
            if (!PyBool_Check(on.ptr()))
                throw py::type_error("set_contention_backoff: on must be a bool, got " +
                                     type_name(on));
            set_contention_backoff(on.ptr() == Py_True);
        },
        py::arg("on"),
        "Turn the units-split backoff on (the default) or off: after a recurrent units split in "
        "which the caller waited for the other threads for more than half of it (a worker "
        "descheduled by a busy host), the next units splits run on the calling thread alone "
        "(docs/architecture.md §7). Results do not depend on it.");
    m.def("contention_backoff", [] { return contention_backoff(); },
          "Whether the units-split backoff is on.");
    m.def(
        "_debug_note_region",
        [](int64_t wait_ns, int64_t total_ns) {
            note_region_for_tests(wait_ns, total_ns);
            return backoff_serial_left();
        },
        py::arg("wait_ns"), py::arg("total_ns"),
        "Test hook: the backoff's decision for a units split of total_ns in which the caller "
        "waited wait_ns; returns the units splits it will now run on the caller alone.");
    m.def(
        "_debug_run_alone",
        [](const py::function& fn) {
            const RunAloneScope alone(true);
            return fn();
        },
        py::arg("fn"),
        "Test hook: calls fn() with a RunAloneScope on this thread, so every region the ops "
        "inside start runs on this thread alone (nthreads == 1), as in a units split the "
        "backoff sends to the caller; returns fn's result, which must not change.");
    m.def(
        "_debug_parallel_for",
        [](int64_t n) {
            // n chunks of one item (at most num_threads()), each recording the thread it ran
            // on: how many distinct threads ran a region.
            std::mutex mu;
            std::vector<std::thread::id> ids;
            {
                py::gil_scoped_release release;
                parallel_for(n, 1, [&](int64_t, int64_t) {
                    std::lock_guard<std::mutex> lk(mu);
                    ids.push_back(std::this_thread::get_id());
                });
            }
            std::sort(ids.begin(), ids.end());
            const auto distinct = std::unique(ids.begin(), ids.end()) - ids.begin();
            return py::make_tuple(static_cast<int64_t>(ids.size()), static_cast<int64_t>(distinct));
        },
        py::arg("n"),
        "Test hook: a parallel_for of n one-item chunks; returns (chunks run, distinct threads).");
    m.def(
        "_debug_stalled_region",
        [](int64_t stall_us, bool phases) {
            // A 2-thread region whose second part runs on a worker that then stalls for stall_us
            // while the caller, done with its own, waits: what a descheduled worker looks like
            // to the caller. With phases, the two parts are the two items of one SharedPhases
            // phase (a units split), else the two chunks of a parallel_for. Returns whether the
            // stalled part ran on a worker (it always should: the caller's part waits up to
            // 10 s for it to start before it returns).
            std::atomic<int> started{0};
            std::atomic<bool> on_worker{false};
            const std::thread::id caller = std::this_thread::get_id();
            const auto wait_start = [&] {
                const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (!started.load() && std::chrono::steady_clock::now() < until)
                    std::this_thread::yield();
            };
            const auto stall = [&] {
                started.store(1);
                on_worker.store(std::this_thread::get_id() != caller);
                std::this_thread::sleep_for(std::chrono::microseconds(stall_us));
            };
            py::gil_scoped_release release;
            if (phases) {
                SharedPhases work({1, 1});
                parallel_region(2, [&](int tid, int nth) {
                    if (nth < 2) return;
                    int share = 0;
                    int64_t item = 0, mine = 0;
                    while (work.claim(tid, 0, &share, &item)) {
                        if (share == 0) wait_start();
                        else stall();
                        ++mine;
                    }
                    work.done(0, mine);
                    if (tid == 0) work.wait(0);
                });
            } else {
                parallel_for(2, 1, [&](int64_t begin, int64_t end) {
                    if (end - begin == 2) return;  // one thread: no region
                    if (begin == 0) wait_start();
                    else stall();
                });
            }
            return on_worker.load();
        },
        py::arg("stall_us"), py::arg("phases"),
        "Test hook: a region in which a worker stalls stall_us while the caller waits for it "
        "(phases: in a SharedPhases phase, as in a units split; else a parallel_for); returns "
        "whether the stalled part ran on a worker.");
    m.def("plain_f32_shapes", &plain_f32_shapes,
          "plain_f32_shapes(*arrays): their shapes (a tuple of tuples) when every one is an "
          "exact numpy.ndarray of native float32, C-contiguous and aligned "
          "(fastlayers._checks.unchanged), else None.");
    m.def(
        "empty_f32",
        [](const std::vector<int64_t>& shape) {
            return new_f32_shape(std::vector<py::ssize_t>(shape.begin(), shape.end()));
        },
        py::arg("shape"),
        "A new uninitialized C-contiguous float32 array; from 4 KiB on its data starts on a "
        "64-byte boundary (bindings.h, new_f32_shape), as the core's own outputs do.");
    // The size from which outputs are 64-byte aligned (the Python side skips the call below it).
    m.attr("ALIGNED_OUTPUT_BYTES") = kAlignedOutputBytes;
    m.def(
        "output_cache_limit",
        [](const py::object& max_bytes) {
            size_t held = 0;
            size_t before;
            if (max_bytes.is_none()) {
                before = output_cache_limit(SIZE_MAX, &held);  // a query
            } else {
                // An int or anything that is one (a NumPy integer), not a bool.
                py::object index;
                if (!py::isinstance<py::bool_>(max_bytes)) {
                    index = py::reinterpret_steal<py::object>(PyNumber_Index(max_bytes.ptr()));
                    if (!index) PyErr_Clear();
                }
                if (!index)
                    throw py::type_error("output_cache_limit: max_bytes must be an int or None, "
                                         "got " + type_name(max_bytes));
                int overflow = 0;
                const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
                if (overflow != 0 || v < 0)
                    throw py::value_error("output_cache_limit: max_bytes must be in [0, 2**63), "
                                          "got " + py::str(max_bytes).cast<std::string>());
                before = output_cache_limit(static_cast<size_t>(v), &held);
            }
            return py::make_tuple(before, held);
        },
        py::arg("max_bytes") = py::none(),
        "The cache of recently freed output blocks (bindings/output_cache.cpp): sets the bytes "
        "it may keep (0 frees them all and keeps none) and returns (the previous limit, the "
        "bytes it holds now); None only queries.");
    m.def("default_num_threads", &default_num_threads,
          "Number of CPUs this process may run on (the default thread count).");
    m.def(
        "fma_peak_probe",
        [](const std::string& isa, double seconds) {
            for (Isa i : isas_built())
                if (isa == isa_name(i)) {
                    py::gil_scoped_release release;
                    return fma_peak_gflops(i, seconds);
                }
            throw py::value_error("fma_peak_probe: unknown or unbuilt ISA '" + isa + "'");
        },
        py::arg("isa"), py::arg("seconds") = 0.2,
        "One core's float32 FMA peak in GFLOP/s for an ISA, measured on the calling thread with "
        "independent FMA chains in registers (0.0 if this CPU cannot run the ISA).");
    m.def("runtime_info", &runtime_info,
          "ISA in use, ISAs built and supported, CPU features, threads, FASTLAYERS_ISA, build.");
}

}  // namespace py_bindings
}  // namespace fl
