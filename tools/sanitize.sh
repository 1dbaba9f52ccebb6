#!/usr/bin/env bash
# Sanitizer run: builds the C++ tests and the Python extension with AddressSanitizer +
# UndefinedBehaviorSanitizer (or, with --tsan, ThreadSanitizer), runs the C++ tests, then the
# Python suite (hypothesis differential tests included) on the instrumented extension, and
# reports. Any sanitizer report fails the run (halt_on_error / -fno-sanitize-recover).
#
#   tools/sanitize.sh                 # ASan+UBSan: C++ tests, Python suite
#   tools/sanitize.sh --tsan          # ThreadSanitizer instead
#   tools/sanitize.sh --cpp-only      # only the C++ tests
#   tools/sanitize.sh --all-isas      # the C++ tests once per ISA (every ctest entry), not only
#                                     # at the best ISA (each run already checks the kernels of
#                                     # every ISA built; the drivers use the one in force)
#   tools/sanitize.sh --skip-cpp      # only the Python suite
#   tools/sanitize.sh --python PY     # the Python that has numpy, pytest, hypothesis, pybind11
#                                     # (default: python3)
#   tools/sanitize.sh -- -k attention # the rest goes to pytest
#   SANITIZE_JOBS=1 tools/sanitize.sh # build with one job (default: nproc)
#
# Needs gcc or clang with the sanitizer runtimes (libasan/libubsan or libtsan) and cmake. The
# build trees go to build-sanitize-<kind>/ in the repository root (delete them to rebuild from
# scratch). The Python package is not installed anywhere: the instrumented _core is copied next
# to a copy of src/fastlayers in the build tree and found through PYTHONPATH.
#
# Python is not built with the sanitizer, so the runtime is preloaded (LD_PRELOAD, with
# libstdc++), huge allocations return NULL under ASan and TSan (NumPy then raises MemoryError,
# as without a sanitizer: tests/test_absurd_arguments.py asks for terabytes) and leak detection
# is off (CPython keeps its interned objects until exit; LeakSanitizer would report them).
# CPython's small objects come from its own arenas, which ASan does not see; with
# PYTHONMALLOC=malloc in the environment they go through malloc too (the whole suite takes
# about 3x as long).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

kind=asan
cpp_only=0
skip_cpp=0
all_isas=0
py=python3
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tsan) kind=tsan ;;
        --cpp-only) cpp_only=1 ;;
        --skip-cpp) skip_cpp=1 ;;
        --all-isas) all_isas=1 ;;
        --python) py="$2"; shift ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "sanitize.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$kind" = asan ]; then
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1"
    runtime_lib=libasan.so
    export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
else
    flags="-fsanitize=thread -fno-omit-frame-pointer -g1"
    runtime_lib=libtsan.so
    # tools/tsan.supp: reports inside third-party libraries only (each one explained there).
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1:suppressions=$root/tools/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    # OpenBLAS (NumPy's matmul) on one thread: its worker threads are not built with TSan, so
    # every word they write into a NumPy result races, for TSan, with the next read of it. Each
    # such race is suppressed (tools/tsan.supp), but TSan first looks the address up in its list
    # of racy addresses seen so far (a linear scan), so a large result costs time quadratic in
    # its size: the 2048x2048 GEMM of tests/benchmarks/ (4M floats) ran for over 20 minutes
    # without finishing; on one thread it takes 1.6 s. fastlayers does not read this variable, and
    # its own thread pool is what this run checks.
    export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
fi
# Every report also goes to a file of its own (build-sanitize-<kind>/reports/report.<pid>):
# pytest captures a test's stderr, and a report that stops the process inside a test would be
# lost with the capture (the run then only says FAILED); a test's child process writes there
# too. The reports among them are printed at the end, and any of them fails the run.
reports="$root/build-sanitize-$kind/reports"
rm -rf "$reports" && mkdir -p "$reports"
if [ "$kind" = asan ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$reports/report"
    export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$reports/report"
else
    export TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$reports/report"
fi
jobs=${SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 2)}  # build and ctest parallelism
cxx=${CXX:-c++}
status=0
summary=()

# ---- C++ tests ----------------------------------------------------------------------------
if [ "$skip_cpp" = 0 ]; then
    bt="$root/build-sanitize-$kind/tests"
    echo "== [$kind] C++ tests: building in $bt"
    cmake -S "$root" -B "$bt" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
          -DFASTLAYERS_BUILD_PYTHON=OFF -DFASTLAYERS_BUILD_TESTS=ON \
          -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
    cmake --build "$bt" -j "$jobs" --target fl_tests >/dev/null
    if [ "$all_isas" = 1 ]; then
        ctest --test-dir "$bt" --output-on-failure -j "$jobs" && ok=1 || ok=0
    else
        # fork_child_can_run_regions forks a threaded process; ThreadSanitizer does not
        # support that (it reports or hangs by design), so a TSan run skips it.
        extra=()
        [ "$kind" = tsan ] && extra=(--skip fork_child_can_run_regions)
        "$bt/fl_tests" "${extra[@]}" && ok=1 || ok=0
    fi
    if [ "$ok" = 1 ]; then
        summary+=("C++ tests under $kind: passed")
    else
        summary+=("C++ tests under $kind: FAILED (see the output above)")
        status=1
    fi
fi

# ---- Python suite on the instrumented extension -------------------------------------------
if [ "$cpp_only" = 0 ]; then
    bp="$root/build-sanitize-$kind/python"
    pybind11_dir=$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')
    echo "== [$kind] Python extension: building in $bp"
    cmake -S "$root" -B "$bp" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
          -DFASTLAYERS_BUILD_PYTHON=ON -DFASTLAYERS_BUILD_TESTS=OFF \
          -DPython_EXECUTABLE="$(command -v "$py")" -Dpybind11_DIR="$pybind11_dir" \
          -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >/dev/null
    cmake --build "$bp" -j "$jobs" --target _core >/dev/null
    stage="$bp/stage"
    rm -rf "$stage" && mkdir -p "$stage"
    cp -r "$root/src/fastlayers" "$stage/"
    find "$stage/fastlayers" -name '_core*.so' -delete
    cp "$bp"/_core*.so "$stage/fastlayers/"
    runtime=$("$cxx" -print-file-name="$runtime_lib")
    if [ ! -e "$runtime" ]; then
        echo "sanitize.sh: $runtime_lib not found by $cxx -print-file-name" >&2
        exit 2
    fi
    # The C++ runtime too: the sanitizer intercepts __cxa_throw and must find the real one
    # at startup, but python itself does not link libstdc++ (without this, the first C++
    # exception aborts with "CHECK failed ... real___cxa_throw").
    stdcxx=$("$cxx" -print-file-name=libstdc++.so)
    [ -e "$stdcxx" ] && runtime="$runtime $stdcxx"
    echo "== [$kind] Python suite (LD_PRELOAD=$runtime)"
    # The instrumented package first on the path; the suite checks that it imports this copy.
    if (cd "$root" && LD_PRELOAD="$runtime" PYTHONPATH="$stage" FASTLAYERS_SANITIZER_RUN=1 \
            HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" \
            "$py" -c 'import fastlayers, sys; sys.exit(0 if fastlayers.__file__.startswith(sys.argv[1]) else 1)' "$stage" &&
        cd "$root" && LD_PRELOAD="$runtime" PYTHONPATH="$stage" FASTLAYERS_SANITIZER_RUN=1 \
            HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" \
            "$py" -m pytest -q -p no:cacheprovider "${pytest_args[@]}"); then
        summary+=("Python suite under $kind: passed")
    else
        summary+=("Python suite under $kind: FAILED (see the output above)")
        status=1
    fi
fi

# A report has a SUMMARY line (UBSan: "runtime error:"); files with only warnings (ASan's
# "failed to allocate" when a test asks for terabytes and gets NULL) are not reports.
found=$(find "$reports" -type f -size +0 -exec grep -l -e "SUMMARY: " -e "runtime error:" {} + |
        sort || true)
if [ -n "$found" ]; then
    for f in $found; do
        echo
        echo "== [$kind] sanitizer report $f"
        cat "$f"
    done
    summary+=("sanitizer reports: $(echo "$found" | wc -l) (printed above, kept in $reports)")
    status=1
else
    summary+=("sanitizer reports: none")
fi

echo
echo "== sanitize.sh ($kind) summary"
for line in "${summary[@]}"; do echo "  $line"; done
exit $status
