// C++ tests of the core: every micro-kernel of every ISA this CPU supports against a naive
// double-precision reference, plus the runtime (dispatch, thread pool). No Python, no framework:
// a test case is a function, CHECK records a failure, main() prints "N passed, N failed".
//
// Usage: fl_tests [--expect-isa NAME] [--expect-cap-message] [--skip CASE]... [--only CASE]...
//                 [--shard I/N]
//   (ctest runs it once per FASTLAYERS_ISA setting, see CMakeLists.txt; --shard I/N runs the
//   cases whose position among those selected is I modulo N, so that N processes share a slow
//   run - the scalar one - over the cores)
// A case whose name holds an ISA's name as a word (gemm_kernel_grid_avx2, identity_act_avx512_ftz;
// the last such word when there are two: gemm_kernel_vs_scalar_avx2 is avx2's) calls that ISA's
// kernels by name, not through the dispatch table, so what it tests does not depend on
// FASTLAYERS_ISA: with --expect-isa NAME only NAME's such cases run (each ISA's kernels are
// tested once, in its own ctest run); without it, every supported ISA's. The other cases test
// the drivers through the table, on the ISA the run selects, and never name an ISA.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "runtime/dispatch.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#define FL_TEST_FORK 1
#endif
#if defined(__x86_64__) || defined(__aarch64__)
#define FL_TEST_FTZ 1
#endif

// ---------------------------------------------------------------------------------------------
// A minimal test framework
// ---------------------------------------------------------------------------------------------

namespace {

int g_case_failures = 0;  // failed CHECKs in the running case
const char* g_case_name = "";

void report_failure(const char* file, int line, const std::string& what) {
    // Print the first few failures of a case only: one bad kernel would print millions.
    if (g_case_failures < 8)
        std::fprintf(stderr, "  FAIL %s (%s:%d): %s\n", g_case_name, file, line, what.c_str());
    if (g_case_failures == 8) std::fprintf(stderr, "  ... more failures in %s\n", g_case_name);
    ++g_case_failures;
}

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

// CHECK with a printf-style explanation.
#define CHECK_MSG(cond, ...)                                                      \
    do {                                                                          \
        if (!(cond)) {                                                            \
            char msg_[512];                                                       \
            std::snprintf(msg_, sizeof msg_, __VA_ARGS__);                        \
            report_failure(__FILE__, __LINE__, #cond + std::string(": ") + msg_); \
        }                                                                         \
    } while (0)

struct TestCase {
    std::string name;
    std::function<void()> fn;
};

std::vector<TestCase>& registry() {
    static std::vector<TestCase> cases;
    return cases;
}

void add_case(std::string name, std::function<void()> fn) {
    registry().push_back({std::move(name), std::move(fn)});
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

using SoftmaxFn = void (*)(const float*, float*, int64_t, int64_t, int64_t, int64_t);
using VexpFn = void (*)(const float*, float*, int64_t);

struct IsaKernels {
    fl::Isa isa;
    SoftmaxFn softmax_rows;
    VexpFn vexp;
};

// Every ISA compiled in, whether or not this CPU can run it.
std::vector<IsaKernels> built_kernels() {
    std::vector<IsaKernels> v{{fl::Isa::scalar, fl_softmax_rows_scalar, fl_vexp_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_softmax_rows_avx2, fl_vexp_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_softmax_rows_avx512, fl_vexp_avx512});
#endif
#if defined(FL_HAVE_NEON)
    v.push_back({fl::Isa::neon, fl_softmax_rows_neon, fl_vexp_neon});
#endif
    return v;
}

float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Floats mapped to integers so that adjacent floats differ by 1 (+0 and -0 both map to 0).
int64_t float_ordinal(float f) {
    const uint32_t u = fltest::float_bits(f);
    return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}

int64_t ulp_distance(float a, float b) {
    const int64_t d = float_ordinal(a) - float_ordinal(b);
    return d < 0 ? -d : d;
}

// A NaN with a payload no kernel produces: guard cells must keep exactly these bits.
const uint32_t kSentinelBits = 0x7FC0DEADu;
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kExpUnderflowX = -0x1.5d589ep+6f;  // below this, the kernels return exactly 0

const std::vector<int64_t> kSizes = {1,  2,  3,  7,  8,  9,   15,   16,   17,   31,
                                     32, 33, 63, 64, 65, 127, 1000, 1023, 1024, 1025};

// Reference softmax with NumPy float32 semantics: x - max rounded to float as NumPy does, the
// rest in double. A NaN anywhere makes the row NaN (NumPy's max propagates NaN).
void softmax_reference(const float* x, double* y, int64_t n) {
    float m = -kInf;
    bool has_nan = false;
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) has_nan = true;
        m = std::max(m, x[i]);
    }
    if (has_nan) m = kNaN;
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const float d = x[i] - m;
        y[i] = std::exp(static_cast<double>(d));
        s += y[i];
    }
    for (int64_t i = 0; i < n; ++i) y[i] /= s;
}

// got vs reference: both NaN, or within a relative tolerance (plus an absolute one that covers
// results the kernels flush to 0 below FLT_MIN).
bool close_to(float got, double ref, double rtol) {
    if (std::isnan(ref)) return std::isnan(got);
    if (std::isnan(got)) return false;
    return std::fabs(static_cast<double>(got) - ref) <= rtol * std::fabs(ref) + 2e-38;
}

// Runs a softmax_rows kernel on `rows` rows of n values taken from `values` (cycled), with
// strided rows. x: padding between rows is NaN, so reading it would poison the result; the
// buffer ends right after the last row's n-th value, so AddressSanitizer catches reads past it.
// y: padding after every row (the last one included) holds a sentinel that must survive.
void check_softmax_case(const IsaKernels& k, const std::vector<float>& values, int64_t rows,
                        int64_t n, bool in_place, double rtol) {
    const int64_t ldx = in_place ? n + 5 : n + 3;
    const int64_t ldy = n + 5;
    std::vector<float> x(static_cast<size_t>((rows - 1) * ldx + n), kNaN);
    std::vector<float> y(static_cast<size_t>(rows * ldy), bits_to_float(kSentinelBits));
    size_t v = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) x[r * ldx + i] = values[v++ % values.size()];

    std::vector<float> x_copy = x;
    if (in_place) {
        for (int64_t r = 0; r < rows; ++r)
            std::memcpy(&y[r * ldy], &x[r * ldx], static_cast<size_t>(n) * sizeof(float));
        k.softmax_rows(y.data(), y.data(), rows, n, ldy, ldy);
    } else {
        k.softmax_rows(x.data(), y.data(), rows, n, ldx, ldy);
        CHECK_MSG(std::memcmp(x.data(), x_copy.data(), x.size() * sizeof(float)) == 0,
                  "%s wrote to its input (rows=%" PRId64 " n=%" PRId64 ")", fl::isa_name(k.isa),
                  rows, n);
    }

    std::vector<double> ref(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
        softmax_reference(&x_copy[r * ldx], ref.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            const float got = y[r * ldy + i];
            CHECK_MSG(close_to(got, ref[i], rtol),
                      "%s rows=%" PRId64 " n=%" PRId64 " [%" PRId64 ",%" PRId64
                      "]: x=%.9g got %.9g want %.9g",
                      fl::isa_name(k.isa), rows, n, r, i, x_copy[r * ldx + i], got, ref[i]);
        }
        for (int64_t i = n; i < ldy; ++i)
            CHECK_MSG(fltest::float_bits(y[r * ldy + i]) == kSentinelBits,
                      "%s rows=%" PRId64 " n=%" PRId64 ": wrote past row %" PRId64 " at %" PRId64,
                      fl::isa_name(k.isa), rows, n, r, i);
    }
}

std::vector<float> random_values(size_t count, float lo, float hi, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(count);
    for (float& f : v) f = dist(rng);
    return v;
}

// Expected vexp result: NaN stays NaN, below the underflow threshold exactly +0, otherwise
// within 2 ULP of the correctly rounded float(exp(double(x))) (inf included: it is one ordinal
// step above FLT_MAX).
void check_vexp_value(fl::Isa isa, float x, float got) {
    if (std::isnan(x)) {
        CHECK_MSG(std::isnan(got), "%s exp(NaN) = %.9g", fl::isa_name(isa), got);
    } else if (x < kExpUnderflowX) {
        CHECK_MSG(fltest::float_bits(got) == 0u, "%s exp(%.9g) = %.9g, want +0 (flushed)",
                  fl::isa_name(isa), x, got);
    } else {
        const float ref = static_cast<float>(std::exp(static_cast<double>(x)));
        CHECK_MSG(ulp_distance(got, ref) <= 2, "%s exp(%.9g) = %.9g, want %.9g (%" PRId64 " ulp)",
                  fl::isa_name(isa), x, got, ref, ulp_distance(got, ref));
        CHECK_MSG(got == 0.0f || std::isinf(got) || std::fabs(got) >= 1.17549435e-38f,
                  "%s exp(%.9g) = %.9g is denormal", fl::isa_name(isa), x, got);
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel tests (registered per supported ISA)
// ---------------------------------------------------------------------------------------------

void test_vexp_sizes(const IsaKernels& k) {
    for (int64_t n : kSizes) {
        // Spans underflow and overflow; the buffer is exactly n long (ASan catches overreads).
        std::vector<float> x =
            random_values(static_cast<size_t>(n), -95.0f, 95.0f, static_cast<uint32_t>(n));
        std::vector<float> y(static_cast<size_t>(n) + 8, bits_to_float(kSentinelBits));
        k.vexp(x.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) check_vexp_value(k.isa, x[i], y[i]);
        for (int64_t i = n; i < n + 8; ++i)
            CHECK_MSG(fltest::float_bits(y[i]) == kSentinelBits,
                      "%s n=%" PRId64 ": wrote y[%" PRId64 "]", fl::isa_name(k.isa), n, i);

        // In place.
        std::vector<float> z = x;
        k.vexp(z.data(), z.data(), n);
        CHECK_MSG(std::memcmp(z.data(), y.data(), static_cast<size_t>(n) * sizeof(float)) == 0,
                  "%s n=%" PRId64 ": in-place result differs", fl::isa_name(k.isa), n);
    }
}

void test_vexp_special(const IsaKernels& k) {
    const std::vector<float> x = {
        kNaN,
        -kNaN,
        bits_to_float(0x7FA00001u),  // signalling NaN with a payload
        kInf,
        -kInf,
        0.0f,
        -0.0f,
        1e-10f,
        -1e-10f,
        bits_to_float(1u),           // smallest denormal
        bits_to_float(0x42B17217u),  // 88.72283: largest x with a finite result
        bits_to_float(0x42B17218u),  // next float: overflows
        kExpUnderflowX,              // smallest x with a normal result
        std::nextafter(kExpUnderflowX, -kInf),
        -87.0f,
        88.0f,
        89.0f,
        -88.0f,
        -1000.0f,
        1000.0f,
        -3.4e38f,
        3.4e38f,
        1.0f,
        -1.0f,
        0.5f * 0.6931472f,  // at the edge of the reduced range
    };
    // Every value at every lane position and through the masked tail: rotate and vary length.
    for (size_t len = 1; len <= x.size(); ++len) {
        for (size_t rot = 0; rot < x.size(); rot += 3) {
            std::vector<float> in(len), out(len + 4, bits_to_float(kSentinelBits));
            for (size_t i = 0; i < len; ++i) in[i] = x[(i + rot) % x.size()];
            k.vexp(in.data(), out.data(), static_cast<int64_t>(len));
            for (size_t i = 0; i < len; ++i) check_vexp_value(k.isa, in[i], out[i]);
            for (size_t i = len; i < len + 4; ++i) CHECK(fltest::float_bits(out[i]) == kSentinelBits);
        }
    }
    float one = 0.0f, zero_in = 0.0f;
    k.vexp(&zero_in, &one, 1);
    CHECK_MSG(one == 1.0f, "%s exp(0) = %.9g, want exactly 1", fl::isa_name(k.isa), one);
    float pinf_in = kInf, minf_in = -kInf, out = 0.0f;
    k.vexp(&pinf_in, &out, 1);
    CHECK(std::isinf(out) && out > 0.0f);
    k.vexp(&minf_in, &out, 1);
    CHECK(out == 0.0f && !std::signbit(out));
}

// A sample of the exhaustive sweep in exp_ulp_check.cpp: every 251st float in [-87, 88].
void test_vexp_ulp_sample(const IsaKernels& k) {
    std::vector<float> x;
    for (int64_t o = float_ordinal(-87.0f); o <= float_ordinal(88.0f); o += 251) {
        const uint32_t bits =
            o >= 0 ? static_cast<uint32_t>(o) : (static_cast<uint32_t>(-o) | 0x80000000u);
        x.push_back(bits_to_float(bits));
    }
    std::vector<float> y(x.size());
    k.vexp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    int64_t worst = 0;
    float worst_x = 0.0f;
    for (size_t i = 0; i < x.size(); ++i) {
        const float ref = static_cast<float>(std::exp(static_cast<double>(x[i])));
        const int64_t d = ulp_distance(y[i], ref);
        if (d > worst) {
            worst = d;
            worst_x = x[i];
        }
    }
    CHECK_MSG(worst <= 2, "%s: max error %" PRId64 " ulp at x=%.9g", fl::isa_name(k.isa), worst,
              worst_x);
}

void test_softmax_sizes(const IsaKernels& k) {
    const std::vector<float> narrow = random_values(4099, -5.0f, 5.0f, 1);
    const std::vector<float> wide = random_values(4099, -120.0f, 120.0f, 2);  // flushes to 0
    for (int64_t n : kSizes) {
        // Rounding of the float sum grows with n; the exp itself is within 2 ulp.
        const double rtol = 2e-6 + 1e-7 * std::sqrt(static_cast<double>(n));
        for (int64_t rows : {1, 3, 17}) {
            check_softmax_case(k, narrow, rows, n, false, rtol);
            check_softmax_case(k, wide, rows, n, false, rtol);
            check_softmax_case(k, narrow, rows, n, true, rtol);
        }
    }
}

void test_softmax_special(const IsaKernels& k) {
    const float big = 3.4e38f;
    // Rows with NumPy-defined results for inf/NaN; each pattern is tried at several lengths and
    // positions so that the special value lands in the vector body and in the tail.
    struct Pattern {
        const char* name;
        std::function<float(int64_t i, int64_t pos)> value;
    };
    const std::vector<Pattern> patterns = {
        {"nan",
         [](int64_t i, int64_t pos) { return i == pos ? kNaN : 0.1f * static_cast<float>(i); }},
        {"+inf",
         [](int64_t i, int64_t pos) { return i == pos ? kInf : 0.1f * static_cast<float>(i); }},
        {"-inf mixed", [](int64_t i, int64_t pos) { return i == pos ? 0.5f : -kInf; }},
        {"one -inf",
         [](int64_t i, int64_t pos) { return i == pos ? -kInf : -0.3f * static_cast<float>(i); }},
        {"all -inf", [](int64_t, int64_t) { return -kInf; }},
        {"very negative", [](int64_t i, int64_t pos) { return i == pos ? 0.0f : -1e30f; }},
        {"+-max", [big](int64_t i, int64_t pos) { return i == pos ? big : -big; }},
        {"all -max", [big](int64_t, int64_t) { return -big; }},
        {"constant", [](int64_t, int64_t) { return 1e30f; }},
        {"all negative", [](int64_t i, int64_t) { return -50.0f - 0.01f * static_cast<float>(i); }},
        // A max taken from the wrong elements (e.g. a tail lane read as 0) would make every
        // exp(x - max) underflow here.
        {"all very negative",
         [](int64_t i, int64_t) { return -200.0f - 0.01f * static_cast<float>(i); }},
    };
    for (const Pattern& p : patterns) {
        for (int64_t n : {1, 2, 5, 8, 9, 13, 32, 33, 40}) {
            for (int64_t pos : {int64_t(0), n / 2, n - 1}) {
                std::vector<float> values(static_cast<size_t>(n));
                for (int64_t i = 0; i < n; ++i) values[i] = p.value(i, pos);
                const size_t before = static_cast<size_t>(g_case_failures);
                check_softmax_case(k, values, 1, n, false, 1e-5);
                check_softmax_case(k, values, 2, n, true, 1e-5);
                if (static_cast<size_t>(g_case_failures) != before)
                    std::fprintf(stderr, "    (pattern '%s', n=%" PRId64 ", pos=%" PRId64 ")\n",
                                 p.name, n, pos);
            }
        }
    }
}

void test_softmax_zero_length(const IsaKernels& k) {
    float sentinel = bits_to_float(kSentinelBits);
    k.softmax_rows(nullptr, &sentinel, 3, 0, 0, 1);  // n = 0: nothing may be read or written
    CHECK(fltest::float_bits(sentinel) == kSentinelBits);
    k.vexp(nullptr, &sentinel, 0);
    CHECK(fltest::float_bits(sentinel) == kSentinelBits);
}

// ---------------------------------------------------------------------------------------------
// Runtime tests
// ---------------------------------------------------------------------------------------------

void test_cpu_features_and_isas() {
    const fl::CpuFeatures& f = fl::cpu_features();
    CHECK(!f.avx2 || f.os_ymm);  // usable AVX2 implies OS ymm support
    CHECK(!f.fma || f.os_ymm);
    CHECK(!f.avx512f || f.os_zmm);
#if defined(__x86_64__)
    CHECK(f.sse2);
    CHECK(!f.neon);
#endif
#if defined(__aarch64__)
    CHECK(f.neon);
#endif
    const std::vector<fl::Isa> built = fl::isas_built();
    const std::vector<fl::Isa> supported = fl::isas_supported();
    CHECK(!built.empty() && built.front() == fl::Isa::scalar);
    CHECK(!supported.empty() && supported.front() == fl::Isa::scalar);
    CHECK(fltest::isa_supported(fl::active_isa()));
    CHECK(fl::kernels().isa == fl::active_isa());
    CHECK(fl::kernels().softmax_rows != nullptr && fl::kernels().vexp != nullptr);
    CHECK(std::string(fl::isa_name(fl::Isa::scalar)) == "scalar");
    CHECK(std::string(fl::isa_name(fl::Isa::avx2)) == "avx2");
    CHECK(std::string(fl::isa_name(fl::Isa::neon)) == "neon");
    if (fl::isa_cap_env() == nullptr) {
        CHECK(fl::active_isa() == supported.back());  // uncapped: the best one
        CHECK(fl::isa_cap_message().empty());
    }
    std::printf("  isa=%s cap=%s message='%s' threads=%d default=%d\n",
                fl::isa_name(fl::active_isa()), fl::isa_cap_env() ? fl::isa_cap_env() : "(none)",
                fl::isa_cap_message().c_str(), fl::num_threads(), fl::default_num_threads());
}

// Chunks [begin, end) of one parallel_for call, sorted.
std::vector<std::pair<int64_t, int64_t>> record_chunks(int64_t n, int64_t min_per_task,
                                                       std::vector<int>* visits) {
    std::mutex mu;
    std::vector<std::pair<int64_t, int64_t>> chunks;
    std::vector<std::atomic<int>> counts(static_cast<size_t>(n));
    fl::parallel_for(n, min_per_task, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) counts[i].fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(mu);
        chunks.emplace_back(b, e);
    });
    std::sort(chunks.begin(), chunks.end());
    visits->assign(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) (*visits)[i] = counts[i].load();
    return chunks;
}

void test_parallel_for_coverage() {
    const int saved = fl::num_threads();
    for (int threads : {1, 2, 3, 5}) {
        fl::set_num_threads(threads);
        CHECK(fl::num_threads() == threads);
        for (int64_t n : {0, 1, 2, 7, 64, 1000, 100003}) {
            for (int64_t min_per_task : {1, 2, 7, 100, 1000}) {
                std::vector<int> visits;
                const auto chunks = record_chunks(n, min_per_task, &visits);
                for (int64_t i = 0; i < n; ++i)
                    CHECK_MSG(visits[i] == 1,
                              "threads=%d n=%" PRId64 " min=%" PRId64 ": index %" PRId64
                              " visited %d times",
                              threads, n, min_per_task, i, visits[i]);
                const int64_t want_chunks =
                    n == 0 ? 0 : std::max<int64_t>(1, std::min<int64_t>(threads, n / min_per_task));
                CHECK_MSG(static_cast<int64_t>(chunks.size()) == want_chunks,
                          "threads=%d n=%" PRId64 " min=%" PRId64 ": %zu chunks, want %" PRId64,
                          threads, n, min_per_task, chunks.size(), want_chunks);
                int64_t expect_begin = 0;
                for (const auto& c : chunks) {
                    CHECK(c.first == expect_begin);
                    CHECK(c.second > c.first);
                    if (chunks.size() > 1) CHECK(c.second - c.first >= min_per_task);
                    expect_begin = c.second;
                }
                CHECK(expect_begin == n);
                // Same inputs, same split.
                std::vector<int> again;
                CHECK(record_chunks(n, min_per_task, &again) == chunks);
            }
        }
    }
    fl::set_num_threads(saved);
}

// Back-to-back regions whose chunk 0 returns at once: the caller then often runs worker chunks
// that have not started yet (thread pool: each chunk is claimed once per region). Every chunk
// of every region must run exactly once, whoever runs it, and a worker that lost its chunk must
// not run it late into the next region.
void test_parallel_for_caller_claims() {
    const int saved = fl::num_threads();
    for (int threads : {2, 3, 5}) {
        fl::set_num_threads(threads);
        const std::thread::id caller = std::this_thread::get_id();
        int64_t by_caller = 0;
        for (int region = 0; region < 3000; ++region) {
            std::atomic<int> runs[8];
            for (auto& r : runs) r.store(0);
            std::atomic<int64_t> caller_runs{0};
            fl::parallel_for(threads, 1, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) {
                    runs[i].fetch_add(1);
                    if (i > 0 && std::this_thread::get_id() == caller) caller_runs.fetch_add(1);
                }
                if (b > 0) {  // a little work in the worker chunks
                    volatile float acc = 0.0f;
                    for (int k = 0; k < 200; ++k) acc = acc + 1.0f;
                }
            });
            for (int i = 0; i < threads; ++i)
                CHECK_MSG(runs[i].load() == 1, "threads=%d region %d: chunk %d ran %d times",
                          threads, region, i, runs[i].load());
            by_caller += caller_runs.load();
            if (fltest::case_failures() > 5) break;
        }
        std::printf("  threads %d: %" PRId64 " worker chunks run by the caller\n", threads,
                    by_caller);
    }
    fl::set_num_threads(saved);
}

// The softmax driver gives bitwise identical results for every thread count.
void test_parallel_results_bitwise() {
    const int saved = fl::num_threads();
    const int64_t rows = 257, n = 300;  // 55 rows per task minimum -> up to 4 chunks
    const std::vector<float> x = random_values(static_cast<size_t>(rows * n), -30.0f, 30.0f, 7);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 5}) {
        fl::set_num_threads(threads);
        std::vector<float> y(x.size());
        fl::softmax_lastdim(x.data(), y.data(), rows, n);
        if (first.empty()) {
            first = y;
        } else {
            CHECK_MSG(std::memcmp(first.data(), y.data(), y.size() * sizeof(float)) == 0,
                      "threads=%d differs from threads=1", threads);
        }
    }
    // And equal to the active row kernel run serially.
    std::vector<float> serial(x.size());
    fl::kernels().softmax_rows(x.data(), serial.data(), rows, n, n, n);
    CHECK(std::memcmp(first.data(), serial.data(), serial.size() * sizeof(float)) == 0);
    // rows * n == 0 touches nothing.
    float sentinel = bits_to_float(kSentinelBits);
    fl::softmax_lastdim(nullptr, &sentinel, 0, 5);
    fl::softmax_lastdim(nullptr, &sentinel, 5, 0);
    CHECK(fltest::float_bits(sentinel) == kSentinelBits);
    fl::set_num_threads(saved);
}

// Softmax with special values (docs/semantics.md §15), out of place and in place (x == y is
// allowed and takes its own path: each row goes through a copy): the policy's values, and the
// same bits both ways, for rows with +inf, only -inf, NaN, and finite rows around them.
void test_softmax_special_values_in_place() {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const int64_t n = 37;  // a vector tail on every ISA
    const int64_t rows = 6;
    std::vector<float> x = random_values(static_cast<size_t>(rows * n), -5.0f, 5.0f, 11);
    x[0 * n + 0] = inf;   // row 0: two +inf share the weight
    x[0 * n + 36] = inf;
    for (int64_t j = 0; j < n; ++j) x[1 * n + j] = -inf;  // row 1: only -inf, uniform
    x[2 * n + 17] = nan;  // row 2: NaN, all NaN
    x[3 * n + 3] = inf;   // row 3: +inf and NaN, all NaN
    x[3 * n + 30] = nan;
    x[4 * n + 5] = -inf;  // row 4: one -inf among finite values, the ordinary path
    // row 5: finite
    std::vector<float> y(x.size());
    fl::softmax_lastdim(x.data(), y.data(), rows, n);
    for (int64_t j = 0; j < n; ++j) {
        CHECK(y[0 * n + j] == (j == 0 || j == 36 ? 0.5f : 0.0f));
        CHECK(y[1 * n + j] == 1.0f / static_cast<float>(n));
        CHECK(std::isnan(y[2 * n + j]) && std::isnan(y[3 * n + j]));
        CHECK(std::isfinite(y[4 * n + j]) && std::isfinite(y[5 * n + j]));
    }
    CHECK(y[4 * n + 5] == 0.0f);
    std::vector<float> z = x;
    fl::softmax_lastdim(z.data(), z.data(), rows, n);
    CHECK_MSG(std::memcmp(y.data(), z.data(), y.size() * sizeof(float)) == 0,
              "softmax_lastdim in place differs from out of place");

    // limits = false (PyTorch's rule, from_torch): the rows with +inf or only -inf are NaN,
    // the others have the same bits as with the limits; in place too, and rows of one.
    for (bool in_place : {false, true}) {
        std::vector<float> w = x;
        std::vector<float> out(x.size());
        float* dst = in_place ? w.data() : out.data();
        fl::softmax_lastdim(w.data(), dst, rows, n, false);
        for (int64_t j = 0; j < n; ++j)
            for (int64_t r = 0; r < 4; ++r) CHECK(std::isnan(dst[r * n + j]));
        CHECK(std::memcmp(dst + 4 * n, y.data() + 4 * n, 2 * n * sizeof(float)) == 0);
    }
    const float ones[4] = {inf, -inf, nan, 2.5f};
    float ones_y[4];
    fl::softmax_lastdim(ones, ones_y, 4, 1, false);
    CHECK(std::isnan(ones_y[0]) && std::isnan(ones_y[1]) && std::isnan(ones_y[2]));
    CHECK(ones_y[3] == 1.0f);

    // Masked: a masked NaN is ignored, kept +inf share the weight, masked entries are 0.
    std::vector<uint8_t> keep(x.size(), 1);
    keep[0 * n + 36] = 0;  // row 0: one +inf left
    keep[2 * n + 17] = 0;  // row 2: its NaN masked, finite again
    std::vector<float> ym(x.size());
    fl::softmax_masked_lastdim(x.data(), keep.data(), ym.data(), rows, n);
    for (int64_t j = 0; j < n; ++j) {
        CHECK(ym[0 * n + j] == (j == 0 ? 1.0f : 0.0f));
        CHECK(std::isfinite(ym[2 * n + j]));
        CHECK(std::isnan(ym[3 * n + j]));
    }
    CHECK(ym[2 * n + 17] == 0.0f);
    std::vector<float> zm = x;
    fl::softmax_masked_lastdim(zm.data(), keep.data(), zm.data(), rows, n);
    CHECK_MSG(std::memcmp(ym.data(), zm.data(), ym.size() * sizeof(float)) == 0,
              "softmax_masked_lastdim in place differs from out of place");
}

void test_parallel_for_nested() {
    const int saved = fl::num_threads();
    fl::set_num_threads(3);
    std::atomic<int> bad{0}, inner_calls{0};
    fl::parallel_for(3, 1, [&](int64_t, int64_t) {
        const std::thread::id me = std::this_thread::get_id();
        fl::parallel_for(1000, 1, [&](int64_t b, int64_t e) {
            inner_calls.fetch_add(1);
            if (std::this_thread::get_id() != me || b != 0 || e != 1000) bad.fetch_add(1);
        });
    });
    CHECK(bad.load() == 0);
    CHECK(inner_calls.load() == 3);
    fl::set_num_threads(saved);
}

// GuidedRuns: one worker walks [0, n) in runs of max_run; several share it in runs that are
// whole granules (but the last), at most max_run, never shorter than the guided rule allows,
// each item claimed exactly once.
void test_guided_runs() {
    {
        fl::GuidedRuns runs(100, 1, 6, 48);
        std::vector<std::pair<int64_t, int64_t>> got;
        int64_t b = -1, e = -1;
        while (runs.claim(&b, &e)) got.emplace_back(b, e);
        CHECK(got.size() == 3);
        CHECK(got.size() == 3 && got[0] == std::make_pair(int64_t(0), int64_t(48)) &&
              got[1] == std::make_pair(int64_t(48), int64_t(96)) &&
              got[2] == std::make_pair(int64_t(96), int64_t(100)));
        CHECK(!runs.claim(&b, &e));
    }
    {
        // Serially, with 4 workers: each run is max(6, rest / 8 rounded down to 6), <= 60.
        const int64_t n = 1000;
        fl::GuidedRuns runs(n, 4, 6, 60);
        int64_t b = 0, e = 0, expect_begin = 0;
        while (runs.claim(&b, &e)) {
            const int64_t rest = n - b;
            const int64_t guided = std::max<int64_t>(6, rest / 8 / 6 * 6);
            const int64_t want = std::min({rest, int64_t(60), guided});
            CHECK_MSG(b == expect_begin && e - b == want, "run [%lld, %lld)", (long long)b,
                      (long long)e);
            expect_begin = e;
        }
        CHECK(expect_begin == n);
    }
    {
        // Concurrently: every item exactly once.
        const int saved = fl::num_threads();
        fl::set_num_threads(3);
        const int64_t n = 100000;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h.store(0);
        fl::GuidedRuns runs(n, 3);
        fl::parallel_for(3, 1, [&](int64_t, int64_t) {
            int64_t b = 0, e = 0;
            while (runs.claim(&b, &e))
                for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        int64_t bad = 0;
        for (auto& h : hits) bad += h.load() != 1;
        CHECK(bad == 0);
        fl::set_num_threads(saved);
    }
}

void test_parallel_for_exceptions() {
    const int saved = fl::num_threads();
    fl::set_num_threads(3);
    bool caught = false;
    try {
        fl::parallel_for(300, 1, [](int64_t b, int64_t) {
            if (b > 0) throw std::runtime_error("chunk failed");
        });
    } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "chunk failed";
    }
    CHECK(caught);
    // The pool still works afterwards.
    std::vector<int> visits;
    record_chunks(999, 1, &visits);
    CHECK(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }));
    fl::set_num_threads(saved);
}

#if defined(FL_TEST_FTZ)
// FLT_MIN/4 computed at run time: non-zero without FTZ, zero with it.
float tiny_product() {
    volatile float a = 1.17549435e-38f;
    volatile float b = 0.25f;
    return a * b;
}
#endif

void test_parallel_for_ftz() {
#if defined(FL_TEST_FTZ)
    const int saved = fl::num_threads();
    CHECK(tiny_product() != 0.0f);  // the test thread itself runs without FTZ
    for (int threads : {1, 3}) {
        fl::set_num_threads(threads);
        std::atomic<int> not_flushed{0};
        fl::parallel_for(3, 1, [&](int64_t, int64_t) {
            if (tiny_product() != 0.0f) not_flushed.fetch_add(1);
        });
        CHECK_MSG(not_flushed.load() == 0, "threads=%d: %d chunks ran without FTZ", threads,
                  not_flushed.load());
        CHECK(tiny_product() != 0.0f);  // restored on the caller
    }
    fl::set_num_threads(saved);
#endif
}

// pack_gates: column (g, j) of the kernel lands at packed column (j/16)*16*G + 16*g + j%16,
// bias likewise, everything else zero.
void test_pack_gates_layout() {
    for (int gates : {2, 3, 4}) {
        for (int64_t u : {1, 7, 16, 17, 33}) {
            const int64_t k = 5, n = gates * u;
            std::vector<float> kern(static_cast<size_t>(k * n)), bias(static_cast<size_t>(n));
            for (size_t i = 0; i < kern.size(); ++i) kern[i] = 1.0f + float(i);
            for (size_t i = 0; i < bias.size(); ++i) bias[i] = -1.0f - float(i);
            const fl::PackedGates p = fl::pack_gates(kern.data(), k, u, gates, bias.data());
            const int64_t nq = (u + 15) / 16;
            CHECK(p.units == u && p.gates == gates && p.w.k() == k && p.w.n() == nq * 16 * gates);
            int bad = 0;
            for (int64_t col = 0; col < p.w.n(); ++col) {
                const int64_t q = col / (16 * gates), g = (col / 16) % gates, j = q * 16 + col % 16;
                const bool valid = j < u;
                const float* panel = p.w.data() + (col / 16) * p.w.panel_stride();
                for (int64_t r = 0; r < k; ++r) {
                    const float want = valid ? kern[static_cast<size_t>(r * n + g * u + j)] : 0.0f;
                    if (panel[r * 16 + col % 16] != want) ++bad;
                }
                if (p.w.bias()[col] != (valid ? bias[static_cast<size_t>(g * u + j)] : 0.0f)) ++bad;
            }
            CHECK_MSG(bad == 0, "gates=%d u=%d: %d wrong", gates, int(u), bad);
        }
    }
}

// parallel_region: every tid in [0, n) runs exactly once, all at the same time (a barrier
// between them completes), tid 0 on the caller; nested regions run on one thread; FTZ is on.
void test_parallel_region_and_barrier() {
    const int saved = fl::num_threads();
    for (int threads : {1, 2, 3}) {
        fl::set_num_threads(threads);
        for (int wanted : {1, 2, 3, 8}) {
            const int expect = std::min(wanted, threads);
            std::vector<std::atomic<int>> runs(8);
            std::atomic<int> bad{0}, nested_bad{0};
            std::atomic<int64_t> sum{0};
            std::vector<int64_t> slots(static_cast<size_t>(expect) * 200, 0);
            fl::SpinBarrier barrier;
            const std::thread::id caller = std::this_thread::get_id();
            fl::parallel_region(wanted, [&](int tid, int n) {
                if (n != expect || tid < 0 || tid >= n) {
                    bad.fetch_add(1);
                    return;
                }
                runs[tid].fetch_add(1);
                if (tid == 0 && std::this_thread::get_id() != caller) bad.fetch_add(1);
#if defined(FL_TEST_FTZ)
                if (tiny_product() != 0.0f) bad.fetch_add(1);
#endif
                // Inside a multi-thread region a nested one runs on its thread alone (a
                // one-thread region holds no pool resources, as with parallel_for).
                if (n > 1) {
                    fl::parallel_region(4, [&](int t2, int n2) {
                        if (t2 != 0 || n2 != 1) nested_bad.fetch_add(1);
                    });
                }
                // Rounds: each thread writes its slot, waits, then reads every other slot of
                // the round; a barrier that let anyone through early shows a stale value.
                for (int r = 0; r < 200; ++r) {
                    // Now and then a late thread: the others outlast the spin budget and sleep.
                    if (r % 50 == 7 && tid == r % n) {
                        std::this_thread::sleep_for(std::chrono::microseconds(300));
                    }
                    slots[static_cast<size_t>(r) * n + tid] = r + 1;
                    barrier.wait(n);
                    for (int o = 0; o < n; ++o) {
                        if (slots[static_cast<size_t>(r) * n + o] != r + 1) bad.fetch_add(1);
                    }
                    sum.fetch_add(r);
                }
            });
            CHECK_MSG(bad.load() == 0, "threads=%d wanted=%d: %d bad", threads, wanted,
                      bad.load());
            CHECK(nested_bad.load() == 0);
            for (int i = 0; i < 8; ++i) CHECK(runs[i].load() == (i < expect ? 1 : 0));
            CHECK(sum.load() == int64_t(expect) * 199 * 200 / 2);
        }
    }
    fl::set_num_threads(saved);
}

// SharedPhases: every item of every phase runs exactly once, no item of phase p+1 before all of
// phase p are done, and a thread that has not started holds up nobody: here thread `late` starts
// only after the other three have finished every phase, which they can only do by taking over
// its share (the main thread waits for them with a deadline, so a regression fails instead of
// hanging).
void test_shared_phases_takeover() {
    const std::vector<int64_t> sizes = {3, 2, 0, 4};
    const int64_t total = 9, phases = 40;
    for (int late : {0, 1, 3}) {
        fl::SharedPhases work(sizes);
        std::vector<std::atomic<int>> runs(static_cast<size_t>(phases * 16));
        std::vector<std::atomic<int64_t>> done_in(static_cast<size_t>(phases));
        std::atomic<int> order_bad{0}, finished{0};
        std::atomic<int64_t> by_late{0};
        auto body = [&](int tid) {
            for (int64_t p = 0; p < phases; ++p) {
                int sh;
                int64_t item, mine = 0;
                while (work.claim(tid, p, &sh, &item)) {
                    if (p > 0 && done_in[p - 1].load() != total) order_bad.fetch_add(1);
                    if (sh < 0 || sh > 3 || item < 0 || item >= sizes[sh]) {
                        order_bad.fetch_add(1);
                    } else {
                        runs[static_cast<size_t>(p * 16 + sh * 4 + item)].fetch_add(1);
                    }
                    done_in[p].fetch_add(1);
                    if (tid == late) by_late.fetch_add(1);
                    ++mine;
                }
                work.done(p, mine);
                work.wait(p);
                if (!work.finished(p)) order_bad.fetch_add(1);
            }
            finished.fetch_add(1);
        };
        std::vector<std::thread> others;
        for (int tid = 0; tid < 4; ++tid)
            if (tid != late) others.emplace_back(body, tid);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (finished.load() < 3 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        CHECK_MSG(finished.load() == 3, "late=%d: the others waited for the late thread", late);
        std::thread latecomer(body, late);  // unblocks the others if they did wait
        latecomer.join();
        for (auto& t : others) t.join();
        CHECK(order_bad.load() == 0);
        CHECK_MSG(by_late.load() == 0, "late=%d: the late thread found %" PRId64 " items left",
                  late, by_late.load());
        for (int64_t p = 0; p < phases; ++p)
            for (int sh = 0; sh < 4; ++sh)
                for (int64_t i = 0; i < 4; ++i) {
                    const int want = i < sizes[sh] ? 1 : 0;
                    CHECK(runs[static_cast<size_t>(p * 16 + sh * 4 + i)].load() == want);
                }
    }
}

// SharedPhases on one thread: claim visits its own share and then the ones after it, or with
// `backwards` the last share first (the order a units split's caller uses alone on odd steps);
// wait_for gives up after its patience on an unfinished phase and returns at once on a finished
// one.
void test_shared_phases_claim_order_and_wait_for() {
    const std::vector<int64_t> sizes = {2, 2, 3};
    fl::SharedPhases work(sizes);
    CHECK(work.items_per_phase() == 7);
    auto order = [&](int tid, int64_t phase, bool backwards) {
        std::vector<int64_t> got;  // share * 10 + item
        int sh;
        int64_t item;
        while (work.claim(tid, phase, &sh, &item, backwards)) got.push_back(sh * 10 + item);
        return got;
    };
    CHECK((order(2, 0, false) == std::vector<int64_t>{20, 21, 22, 0, 1, 10, 11}));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(!work.wait_for(0, std::chrono::microseconds(200)));  // claimed, not done
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::microseconds(200));
    work.done(0, 7);
    CHECK(work.wait_for(0, std::chrono::hours(1)));
    CHECK((order(1, 1, false) == std::vector<int64_t>{10, 11, 20, 21, 22, 0, 1}));
    work.done(1, 7);
    // Backwards: the last share first, whatever the thread's own (forwards, tid 1 starts with
    // share 1, as just checked).
    CHECK((order(1, 2, true) == std::vector<int64_t>{20, 21, 22, 10, 11, 0, 1}));
    work.done(2, 7);
    CHECK(work.finished(2) && !work.finished(3));
}

// A region of k chunks on a big pool hands itself to the k-1 workers that own a chunk, and no
// other worker leaves its wait (pool_stats counts both).
void test_region_wakes_only_what_it_needs() {
    const int saved = fl::num_threads();
    const int big = 16;
    fl::set_num_threads(big);
    std::atomic<int> calls{0};
    fl::parallel_for(big, 1, [&](int64_t, int64_t) { calls.fetch_add(1); });  // workers exist
    CHECK(calls.load() == big);
    // The counters once no wake-up has landed for 50 ms (up to 5 s): a worker signalled by an
    // earlier region but descheduled on a busy host wakes late, and must not be counted in
    // the next region's window.
    const auto settled = [] {
        fl::PoolStats s = fl::pool_stats();
        for (int i = 0; i < 100; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const fl::PoolStats t = fl::pool_stats();
            if (t.worker_wakeups == s.worker_wakeups) return t;
            s = t;
        }
        return s;
    };
    for (int chunks : {2, 3, 5, big}) {
        const fl::PoolStats before = settled();
        calls.store(0);
        fl::parallel_for(chunks, 1, [&](int64_t, int64_t) { calls.fetch_add(1); });
        const fl::PoolStats after = settled();
        CHECK(calls.load() == chunks);
        CHECK(after.regions - before.regions == 1);
        CHECK_MSG(after.workers_signalled - before.workers_signalled == uint64_t(chunks - 1),
                  "chunks=%d: %" PRIu64 " workers signalled", chunks,
                  after.workers_signalled - before.workers_signalled);
        CHECK_MSG(after.worker_wakeups - before.worker_wakeups <= uint64_t(chunks - 1),
                  "chunks=%d: %" PRIu64 " workers woke", chunks,
                  after.worker_wakeups - before.worker_wakeups);
    }
    fl::set_num_threads(saved);
}

void test_parallel_for_concurrent_callers() {
    const int saved = fl::num_threads();
    fl::set_num_threads(3);
    std::atomic<int> bad{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t) {
        callers.emplace_back([&bad, t] {
            for (int it = 0; it < 150; ++it) {
                const int64_t n = 100 + 37 * t + it;
                std::vector<std::atomic<int>> counts(static_cast<size_t>(n));
                fl::parallel_for(n, 1, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) counts[i].fetch_add(1);
                });
                for (auto& c : counts)
                    if (c.load() != 1) bad.fetch_add(1);
            }
        });
    }
    // Meanwhile, resize the pool under their feet.
    std::thread resizer([&done] {
        for (int i = 0; !done.load(); ++i) {
            fl::set_num_threads(2 + i % 3);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    for (auto& c : callers) c.join();
    done.store(true);
    resizer.join();
    CHECK(bad.load() == 0);
    fl::set_num_threads(saved);
}

void test_set_num_threads_invalid() {
    const int before = fl::num_threads();
    for (int bad : {0, -1, fl::kMaxThreads + 1}) {
        bool threw = false;
        try {
            fl::set_num_threads(bad);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK_MSG(threw, "set_num_threads(%d) did not throw", bad);
    }
    CHECK(fl::num_threads() == before);
    CHECK(fl::default_num_threads() >= 1);
}

void test_fork_child_can_run_regions() {
#if defined(FL_TEST_FORK)
    const int saved = fl::num_threads();
    fl::set_num_threads(3);
    std::vector<int> visits;
    record_chunks(1000, 1, &visits);  // workers now exist in the parent
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(20);  // a hang in the child must not hang the test
        std::vector<int> v;
        const auto chunks = record_chunks(1000, 1, &v);
        const bool ok =
            chunks.size() == 3 && std::all_of(v.begin(), v.end(), [](int c) { return c == 1; });
        _exit(ok ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    record_chunks(1000, 1, &visits);  // the parent's pool is intact
    CHECK(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }));
    fl::set_num_threads(saved);
#endif
}

}  // namespace

// The framework, for the other test files (test_framework.h).
namespace fltest {
void report_failure(const char* file, int line, const std::string& what) {
    ::report_failure(file, line, what);
}
int case_failures() { return g_case_failures; }
void add_case(std::string name, std::function<void()> fn) {
    ::add_case(std::move(name), std::move(fn));
}
}  // namespace fltest

int main(int argc, char** argv) {
    const char* expect_isa = nullptr;
    bool expect_cap_message = false;
    std::vector<std::string> skip;  // e.g. fork_child_can_run_regions under qemu-user
    std::vector<std::string> only;  // run just these cases (e.g. the cap-message check)
    int shard = 0, shards = 1;      // --shard I/N
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--expect-isa" && i + 1 < argc) {
            expect_isa = argv[++i];
        } else if (a == "--expect-cap-message") {
            expect_cap_message = true;
        } else if (a == "--skip" && i + 1 < argc) {
            skip.push_back(argv[++i]);
        } else if (a == "--only" && i + 1 < argc) {
            only.push_back(argv[++i]);
        } else if (a == "--shard" && i + 1 < argc &&
                   std::sscanf(argv[i + 1], "%d/%d", &shard, &shards) == 2 && shards >= 1 &&
                   shard >= 0 && shard < shards) {
            ++i;
        } else {
            std::fprintf(stderr,
                         "usage: %s [--expect-isa NAME] [--expect-cap-message] [--skip CASE]... "
                         "[--only CASE]... [--shard I/N]\n",
                         argv[0]);
            return 2;
        }
    }

    if (expect_isa) {
        // A run per ISA is registered for every ISA built (CMakeLists.txt); on a CPU without
        // this one, the run reports itself skipped to ctest (exit 77) instead of passing.
        bool supported = false;
        for (fl::Isa isa : fl::isas_supported()) supported |= std::string(fl::isa_name(isa)) == expect_isa;
        if (!supported) {
            std::printf("skip: this CPU does not support ISA %s\n", expect_isa);
            return 77;
        }
    }
    add_case("cpu_features_and_isas", test_cpu_features_and_isas);
    if (expect_isa) {
        add_case("expect_isa", [expect_isa] {
            CHECK(fl::isa_cap_env() != nullptr);
            CHECK_MSG(std::string(fl::isa_name(fl::active_isa())) == expect_isa,
                      "active isa %s, want %s", fl::isa_name(fl::active_isa()), expect_isa);
            CHECK(fl::isa_cap_message().empty());
        });
    }
    if (expect_cap_message) {
        add_case("expect_cap_message", [] {
            CHECK(fl::isa_cap_env() != nullptr);
            CHECK(!fl::isa_cap_message().empty());
            CHECK(fl::active_isa() == fl::isas_supported().back());
        });
    }
    for (const IsaKernels& k : built_kernels()) {
        const std::string isa = fl::isa_name(k.isa);
        if (!fltest::isa_supported(k.isa)) {
            std::printf("skip %s kernels: not supported by this CPU\n", isa.c_str());
            continue;
        }
        add_case("vexp_sizes_" + isa, [k] { test_vexp_sizes(k); });
        add_case("vexp_special_" + isa, [k] { test_vexp_special(k); });
        add_case("vexp_ulp_sample_" + isa, [k] { test_vexp_ulp_sample(k); });
        add_case("softmax_sizes_" + isa, [k] { test_softmax_sizes(k); });
        add_case("softmax_special_" + isa, [k] { test_softmax_special(k); });
        add_case("softmax_zero_length_" + isa, [k] { test_softmax_zero_length(k); });
    }
    add_case("parallel_for_coverage", test_parallel_for_coverage);
    add_case("parallel_for_caller_claims", test_parallel_for_caller_claims);
    add_case("parallel_results_bitwise", test_parallel_results_bitwise);
    add_case("softmax_special_values_in_place", test_softmax_special_values_in_place);
    add_case("parallel_for_nested", test_parallel_for_nested);
    add_case("parallel_for_exceptions", test_parallel_for_exceptions);
    add_case("guided_runs", test_guided_runs);
    add_case("parallel_for_ftz", test_parallel_for_ftz);
    add_case("parallel_for_concurrent_callers", test_parallel_for_concurrent_callers);
    add_case("parallel_region_and_barrier", test_parallel_region_and_barrier);
    add_case("shared_phases_takeover", test_shared_phases_takeover);
    add_case("shared_phases_claim_order_and_wait_for", test_shared_phases_claim_order_and_wait_for);
    add_case("region_wakes_only_what_it_needs", test_region_wakes_only_what_it_needs);
    add_case("pack_gates_layout", test_pack_gates_layout);
    add_case("set_num_threads_invalid", test_set_num_threads_invalid);
    add_case("fork_child_can_run_regions", test_fork_child_can_run_regions);
    fltest::register_gemm_tests();
    fltest::register_vmath_tests();
    fltest::register_conv2d_tests();
    fltest::register_attention_tests();
    fltest::register_recurrent_tests();
    fltest::register_cross_isa_tests();
    fltest::register_layer_norm_tests();
    fltest::register_transpose_tests();

    // The ISA whose kernels a case calls by name: the last word of its name (words split at
    // '_') that names an ISA, or nullptr.
    auto kernel_isa = [](const std::string& name) -> const char* {
        const char* found = nullptr;
        size_t begin = 0;
        while (begin <= name.size()) {
            size_t end = name.find('_', begin);
            if (end == std::string::npos) end = name.size();
            const std::string word = name.substr(begin, end - begin);
            for (const char* isa : {"scalar", "avx2", "avx512", "neon"})
                if (word == isa) found = isa;
            begin = end + 1;
        }
        return found;
    };
    int passed = 0, failed = 0, other_runs = 0, other_shards = 0, position = 0;
    for (const TestCase& c : registry()) {
        if (!only.empty() && std::find(only.begin(), only.end(), c.name) == only.end()) continue;
        const char* case_isa = kernel_isa(c.name);
        if (expect_isa && case_isa && std::strcmp(case_isa, expect_isa) != 0) {
            ++other_runs;
            continue;
        }
        if (position++ % shards != shard) {
            ++other_shards;
            continue;
        }
        if (std::find(skip.begin(), skip.end(), c.name) != skip.end()) {
            std::printf("skip %s\n", c.name.c_str());
            continue;
        }
        g_case_name = c.name.c_str();
        g_case_failures = 0;
        const auto t0 = std::chrono::steady_clock::now();
        c.fn();
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (g_case_failures == 0) {
            ++passed;
            std::printf("ok   %s (%.2f s)\n", c.name.c_str(), secs);
        } else {
            ++failed;
            std::printf("FAIL %s (%d failed checks, %.2f s)\n", c.name.c_str(), g_case_failures,
                        secs);
        }
        std::fflush(stdout);
    }
    if (other_runs > 0)
        std::printf("(%d cases of other ISAs' kernels are in those ISAs' runs)\n", other_runs);
    if (shards > 1)
        std::printf("(shard %d of %d: %d cases are in the other shards)\n", shard, shards,
                    other_shards);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
