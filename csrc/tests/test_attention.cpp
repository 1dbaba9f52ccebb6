// C++ tests of the attention score-row micro-kernels (fl_score_prep_<isa>, fl_row_max_<isa>,
// fl_exp_shift_sum_<isa>, csrc/ukernels/softmax/) and of the row dot-product kernels
// (fl_dot_rows_f32_<isa>, csrc/ukernels/dotrows/) of every ISA this CPU supports, and of the
// attention drivers fl::attention_forward (csrc/ops/attention.cpp, and for T <= 8 dot scores
// csrc/ops/attention_decode.cpp) against a double reference.
//
// Out-of-bounds accesses: the row x and the keep bytes each end exactly where an inaccessible
// page begins (POSIX), so reading x[n] or keep[n] faults; the floats before x hold NaN sentinels
// with a payload no kernel produces, which must survive bit for bit. The same for the driver:
// q, k, v, the mask and the weights end at a guard page, gaps between rows hold NaN (reading
// them would poison a result) and the gaps of the output rows hold sentinels.
//
// Tolerances (documented here once):
//   score_prep / row_max: exact. Every output is one IEEE operation (x*scale, then v - masked),
//     so it must equal float(double(x)*scale) (- masked) bit for bit, the max exactly.
//   exp_shift_sum elements: the exp argument is a = fmaf(x, scale, -m) (one rounding, as the
//     contract says); x[j] must be within 2 ulp of float(exp(double(a))) (the vexp bound of
//     test_main.cpp), exactly +0 for a < -87.3365 (flush), and - the stronger check - bit for
//     bit equal to fl_vexp_<isa>(a) wherever a <= 0.
//   exp_shift_sum sum: relative error <= (ceil(n/4) + 6) * 2^-24 against the double sum of the
//     kernel's own outputs (worst case of float summation split into >= 4 partial sums of at
//     most ceil(n/4) terms each plus <= 6 combining additions; the kernels use 4 (scalar) or 16
//     (avx2) partial sums), and that plus 2.4e-7 (2 ulp per term) against the double sum of
//     exact exps.
//   dot_rows: bit for bit the contract's chain (16 lane FMA chains, then the lane tree),
//     recomputed here with fmaf, on every ISA; and within (k + 4) * 2^-24 * sum |a b| of the
//     double dot product (the chain is a dot product at all).
//   attention_forward: per output row, |got - ref| <= (2E + (S + 16) * 2^-24) * mag + 1e-30,
//     where E bounds the float error of a score of that row ((D + 2) * 2^-24 * sum|q k| * |scale|
//     for dot scores, (D + 8) * 2^-24 * post * sum|w| for additive ones), and mag = sum_s p_s
//     |v_s| / sum_s p_s; weights: |got - p| <= (2E + (S + 16) * 2^-24) * p + 1e-37. Weights
//     the reference makes exactly 0 (masked keys) must be exactly 0.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "runtime/dispatch.h"
#include "guarded_buf.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"


namespace {

using fltest::Guarded;

using ScorePrepFn = float (*)(float*, int64_t, float, const uint8_t*, int64_t, float, int);
using RowMaxFn = float (*)(const float*, int64_t);
using ExpShiftSumFn = float (*)(float*, int64_t, float, float);
using VexpFn = void (*)(const float*, float*, int64_t);

struct RowIsa {
    fl::Isa isa;
    ScorePrepFn score_prep;
    RowMaxFn row_max;
    ExpShiftSumFn exp_shift_sum;
    VexpFn vexp;
};

std::vector<RowIsa> row_kernels_built() {
    std::vector<RowIsa> v{{fl::Isa::scalar, fl_score_prep_scalar, fl_row_max_scalar,
                           fl_exp_shift_sum_scalar, fl_vexp_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_score_prep_avx2, fl_row_max_avx2, fl_exp_shift_sum_avx2,
                 fl_vexp_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_score_prep_avx512, fl_row_max_avx512,
                 fl_exp_shift_sum_avx512, fl_vexp_avx512});
#endif
    return v;
}

const uint32_t kSentinelBits = 0x7FC0A77Eu;  // a NaN payload no kernel produces
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kExpUnderflowX = -0x1.5d589ep+6f;  // below this, exp results are exactly +0
const double kU = 0x1p-24;

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

float sentinel() { return from_bits(kSentinelBits); }

int64_t ordinal(float f) {
    const uint32_t u = fltest::float_bits(f);
    return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}

float from_ordinal(int64_t o) {
    return from_bits(o >= 0 ? static_cast<uint32_t>(o)
                            : (static_cast<uint32_t>(-o) | 0x80000000u));
}

int64_t ulps(float a, float b) {
    const int64_t d = ordinal(a) - ordinal(b);
    return d < 0 ? -d : d;
}

const std::vector<int64_t> kRowSizes = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 255, 256, 257};
const int64_t kPre = 16;  // sentinel floats before each row

bool pre_intact(Guarded<float>& x) {
    for (int64_t i = 0; i < kPre; ++i)
        if (fltest::float_bits(x.pre_begin()[i]) != kSentinelBits) return false;
    return true;
}

// keep modes: 0 = NULL, 1 = random 0/1, 2 = random bytes where every nonzero byte means keep.
void fill_keep(Guarded<uint8_t>& keep, int mode, std::mt19937& rng) {
    static const uint8_t nonzero[] = {1, 2, 7, 128, 255};
    for (size_t j = 0; j < keep.size(); ++j) {
        const bool k = (rng() % 3) != 0;
        keep[j] = !k ? 0 : mode == 1 ? 1 : nonzero[rng() % 5];
    }
}

// ---------------------------------------------------------------------------------------------
// fl_score_prep_<isa>
// ---------------------------------------------------------------------------------------------

void test_score_prep(const RowIsa& k) {
    std::mt19937 rng(1234);
    const float scales[] = {1.0f, -1.0f, 0.37f, -2.5f, 0.125f};
    int64_t cases = 0;
    for (int64_t n : kRowSizes) {
        const std::vector<int64_t> limits = {0, 1, n / 2, n, n + 5, -3};
        for (int keep_mode = 0; keep_mode < 3; ++keep_mode) {
            for (int64_t limit : limits) {
                for (int subtract = 0; subtract < 2; ++subtract) {
                    const std::vector<float> maskeds =
                        subtract ? std::vector<float>{1e9f, 1.0f}
                                 : std::vector<float>{-kInf, -1e9f, fl::kFusedMaskValue};
                    for (float scale : scales) {
                        for (float masked : maskeds) {
                            ++cases;
                            Guarded<float> x(static_cast<size_t>(n), 0.0f, kPre, sentinel());
                            Guarded<uint8_t> keep(static_cast<size_t>(n), 0);
                            fill_keep(keep, keep_mode, rng);
                            // Mostly [-20, 20]; sometimes all negative (a tail lane read as 0
                            // would then win the max); rarely +-inf.
                            const bool all_neg = (rng() % 4) == 0;
                            std::uniform_real_distribution<float> d(all_neg ? -300.0f : -20.0f,
                                                                    all_neg ? -100.0f : 20.0f);
                            for (int64_t j = 0; j < n; ++j) {
                                const uint32_t r = rng() % 64;
                                x[j] = r == 0 ? kInf : r == 1 ? -kInf : d(rng);
                            }
                            const std::vector<float> x0(x.data(), x.data() + n);
                            const std::vector<uint8_t> k0(keep.data(), keep.data() + n);
                            const uint8_t* kp = keep_mode == 0 ? nullptr : keep.data();
                            const float got_max =
                                k.score_prep(x.data(), n, scale, kp, limit, masked, subtract);

                            float want_max = -kInf;
                            bool any_nan = false;
                            for (int64_t j = 0; j < n; ++j) {
                                float v = static_cast<float>(static_cast<double>(x0[j]) *
                                                             static_cast<double>(scale));
                                const bool is_masked = j >= limit || (kp && k0[j] == 0);
                                if (is_masked)
                                    v = subtract ? static_cast<float>(static_cast<double>(v) -
                                                                      static_cast<double>(masked))
                                                 : masked;
                                if (std::isnan(v)) any_nan = true;
                                else want_max = std::max(want_max, v);
                                FLT_CHECK_MSG(
                                    fltest::float_bits(x[j]) == fltest::float_bits(v) || (std::isnan(v) && std::isnan(x[j])),
                                    "%s score_prep n=%" PRId64 " keep=%d limit=%" PRId64
                                    " sub=%d scale=%g masked=%g: x[%" PRId64
                                    "]=%.9g -> %.9g, want %.9g",
                                    fl::isa_name(k.isa), n, keep_mode, limit, subtract, scale,
                                    masked, j, x0[j], x[j], v);
                            }
                            FLT_CHECK_MSG(got_max == want_max || (any_nan && std::isnan(got_max)),
                                          "%s score_prep n=%" PRId64 " keep=%d limit=%" PRId64
                                          " sub=%d scale=%g masked=%g: max %.9g, want %.9g",
                                          fl::isa_name(k.isa), n, keep_mode, limit, subtract,
                                          scale, masked, got_max, want_max);
                            FLT_CHECK_MSG(pre_intact(x), "%s score_prep n=%" PRId64
                                          ": wrote before x", fl::isa_name(k.isa), n);
                            FLT_CHECK(k0.empty() ||
                                      std::memcmp(keep.data(), k0.data(), k0.size()) == 0);
                        }
                    }
                }
            }
        }
    }
    // n = 0: -inf, nothing touched (the pointers are at a guard page).
    Guarded<float> empty(0, 0.0f, kPre, sentinel());
    Guarded<uint8_t> no_keep(0, 0);
    FLT_CHECK(k.score_prep(empty.data(), 0, 1.0f, no_keep.data(), 0, -kInf, 0) == -kInf);
    FLT_CHECK(k.score_prep(empty.data(), 0, 1.0f, nullptr, 5, 1e9f, 1) == -kInf);
    FLT_CHECK(pre_intact(empty));
    std::printf("  %s score_prep: %" PRId64 " cases\n", fl::isa_name(k.isa), cases);
}

// NaN inputs: the entry stays NaN; the max is either NaN or the max of the others (the contract
// lets it skip the NaN, but not a number: callers pass it on as m >= every x[j] * scale).
void test_score_prep_nan(const RowIsa& k) {
    for (int64_t n : {1, 5, 8, 9, 16, 17, 33, 40, 64, 65}) {
        for (int64_t pos = 0; pos < n; ++pos) {
            Guarded<float> x(static_cast<size_t>(n), 0.0f, kPre, sentinel());
            for (int64_t j = 0; j < n; ++j) x[j] = j == pos ? kNaN : -1.0f - 0.5f * j;
            const float m = k.score_prep(x.data(), n, 2.0f, nullptr, n, -kInf, 0);
            FLT_CHECK(std::isnan(x[pos]));
            const float others = n == 1 ? -kInf : (pos == 0 ? -3.0f : -2.0f);
            FLT_CHECK_MSG(std::isnan(m) || m == others,
                          "%s score_prep n=%" PRId64 " NaN at %" PRId64
                          ": max %.9g, want NaN or %.9g",
                          fl::isa_name(k.isa), n, pos, m, others);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fl_row_max_<isa>
// ---------------------------------------------------------------------------------------------

void test_row_max(const RowIsa& k) {
    std::mt19937 rng(99);
    for (int64_t n : kRowSizes) {
        for (int pattern = 0; pattern < 5; ++pattern) {
            for (int rep = 0; rep < 4; ++rep) {
                Guarded<float> x(static_cast<size_t>(n), 0.0f, kPre, sentinel());
                std::uniform_real_distribution<float> d(-50.0f, 50.0f);
                for (int64_t j = 0; j < n; ++j) {
                    switch (pattern) {
                        case 0: x[j] = d(rng); break;
                        case 1: x[j] = -1000.0f + d(rng); break;        // all negative
                        case 2: x[j] = -kInf; break;                    // all -inf
                        case 3: x[j] = (rng() % 5) ? -kInf : d(rng); break;  // masked mix
                        default: x[j] = -1e-30f * static_cast<float>(j + 1); break;  // tiny < 0
                    }
                }
                if (n > 0 && pattern == 1) x[rng() % n] = -5.0f;  // max at a random lane
                const std::vector<float> x0(x.data(), x.data() + n);
                float want = -kInf;
                for (float v : x0) want = std::max(want, v);
                const float got = k.row_max(x.data(), n);
                FLT_CHECK_MSG(got == want, "%s row_max n=%" PRId64 " pattern %d: %.9g, want %.9g",
                              fl::isa_name(k.isa), n, pattern, got, want);
                FLT_CHECK(x0.empty() ||
                          std::memcmp(x.data(), x0.data(), x0.size() * sizeof(float)) == 0);
                FLT_CHECK(pre_intact(x));
            }
        }
    }
}

// A NaN at every position of rows whose max is x[0] (or x[1]): the max is NaN or that.
void test_row_max_nan(const RowIsa& k) {
    for (int64_t n : {1, 8, 9, 16, 17, 33, 40, 64, 65, 100}) {
        for (int64_t pos = 0; pos < n; ++pos) {
            std::vector<float> x(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; ++j) x[j] = j == pos ? kNaN : -1.0f - 0.5f * j;
            const float m = k.row_max(x.data(), n);
            const float others = n == 1 ? -kInf : (pos == 0 ? -1.5f : -1.0f);
            FLT_CHECK_MSG(std::isnan(m) || m == others,
                          "%s row_max n=%" PRId64 " NaN at %" PRId64 ": %.9g, want NaN or %.9g",
                          fl::isa_name(k.isa), n, pos, m, others);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fl_exp_shift_sum_<isa>
// ---------------------------------------------------------------------------------------------

// One call on x0 (n values): elements vs double exp and vs fl_vexp bit for bit (args <= 0),
// the sum, the guards.
void check_exp_shift_case(const RowIsa& k, const std::vector<float>& x0, float scale, float m,
                          const char* what) {
    const int64_t n = static_cast<int64_t>(x0.size());
    Guarded<float> x(x0.size(), 0.0f, kPre, sentinel());
    std::copy(x0.begin(), x0.end(), x.data());
    const float got_sum = k.exp_shift_sum(x.data(), n, scale, m);

    std::vector<float> args(x0.size()), vexp_out(x0.size());
    for (size_t j = 0; j < x0.size(); ++j) args[j] = std::fma(x0[j], scale, -m);
    if (n > 0) k.vexp(args.data(), vexp_out.data(), n);

    bool any_nan = false;
    double exact_sum = 0.0, own_sum = 0.0;
    int bad = 0;
    for (int64_t j = 0; j < n && bad < 4; ++j) {
        const float a = args[j], got = x[j];
        const size_t before = static_cast<size_t>(fltest::case_failures());
        if (std::isnan(a)) {
            any_nan = true;
            FLT_CHECK_MSG(std::isnan(got), "%s %s: exp(NaN) = %g", fl::isa_name(k.isa), what, got);
            continue;
        }
        if (a < kExpUnderflowX) {
            FLT_CHECK_MSG(fltest::float_bits(got) == 0u,
                          "%s %s n=%" PRId64 " [%" PRId64 "]: exp(%.9g) = %.9g, want +0",
                          fl::isa_name(k.isa), what, n, j, a, got);
        } else {
            const double e = std::exp(static_cast<double>(a));
            exact_sum += e;
            FLT_CHECK_MSG(ulps(got, static_cast<float>(e)) <= 2,
                          "%s %s n=%" PRId64 " [%" PRId64 "]: x=%.9g scale=%g m=%.9g exp(%.9g) = "
                          "%.9g, want %.9g",
                          fl::isa_name(k.isa), what, n, j, x0[j], scale, m, a, got, e);
        }
        own_sum += got;
        if (a <= 0.0f)
            FLT_CHECK_MSG(fltest::float_bits(got) == fltest::float_bits(vexp_out[j]),
                          "%s %s n=%" PRId64 " [%" PRId64 "]: exp(%a) = %a but fl_vexp gives %a",
                          fl::isa_name(k.isa), what, n, j, a, got, vexp_out[j]);
        if (static_cast<size_t>(fltest::case_failures()) != before) ++bad;
    }
    if (any_nan) {
        FLT_CHECK_MSG(std::isnan(got_sum), "%s %s: sum %g with a NaN term", fl::isa_name(k.isa),
                      what, got_sum);
    } else {
        const double chain = static_cast<double>((n + 3) / 4 + 6) * kU;
        FLT_CHECK_MSG(std::fabs(got_sum - own_sum) <= chain * own_sum,
                      "%s %s n=%" PRId64 ": sum %.9g, own elements sum to %.12g",
                      fl::isa_name(k.isa), what, n, got_sum, own_sum);
        FLT_CHECK_MSG(std::fabs(got_sum - exact_sum) <= (chain + 2.4e-7) * exact_sum + 1e-37,
                      "%s %s n=%" PRId64 ": sum %.9g, exact %.12g", fl::isa_name(k.isa), what, n,
                      got_sum, exact_sum);
    }
    FLT_CHECK_MSG(pre_intact(x), "%s %s n=%" PRId64 ": wrote before x", fl::isa_name(k.isa), what,
                  n);
}

void test_exp_shift_sum(const RowIsa& k) {
    std::mt19937 rng(4321);
    const float scales[] = {1.0f, -1.0f, 0.125f, -2.5f, 1.7f};
    for (int64_t n : kRowSizes) {
        for (float scale : scales) {
            for (int mode = 0; mode < 6; ++mode) {
                std::uniform_real_distribution<float> d(-40.0f, 40.0f);
                std::vector<float> x(static_cast<size_t>(n));
                for (float& v : x) v = d(rng);
                if (mode == 1)  // masked entries (-inf from score_prep; scale is then 1)
                    for (float& v : x)
                        if (rng() % 3 == 0) v = -kInf;
                if (mode == 4)  // subtract rule: masked scores are v - 1e9
                    for (float& v : x)
                        if (rng() % 2 == 0) v = v - 1e9f;
                float mx = -kInf;
                for (float v : x)
                    if (!std::isinf(v) || scale > 0) mx = std::max(mx, v * scale);
                if (mode == 1 && scale < 0) continue;  // -inf * negative = +inf: not a caller case
                float m = mx;
                if (mode == 2) m = mx + 30.0f;   // everything well below the max
                if (mode == 3) m = mx + 120.0f;  // everything flushes: sum 0
                if (mode == 5 && n > 0) m = std::nextafter(mx, -kInf);  // args up to ~1 ulp > 0
                if (n == 0) m = 0.0f;
                char what[96];
                std::snprintf(what, sizeof what, "exp_shift_sum scale=%g mode=%d", scale, mode);
                check_exp_shift_case(k, x, scale, m, what);
            }
        }
    }
    // NaN propagates to its element and to the sum.
    for (int64_t n : {1, 7, 8, 9, 16, 17, 33}) {
        for (int64_t pos : {int64_t(0), n / 2, n - 1}) {
            std::vector<float> x(static_cast<size_t>(n), -1.0f);
            x[pos] = kNaN;
            check_exp_shift_case(k, x, 1.0f, 0.0f, "exp_shift_sum NaN");
        }
    }
}

// The exp pass uses the exp for x <= 0 (fl_exp_nonpos_<isa>), claimed to give fl_exp's bits
// there and up to 88.37 (when the pass applies the attention scale itself, its argument can
// exceed 0 by up to 32: attention_decode.h score_row_max): compare with fl_vexp on every
// `step`-th float in [-88, 88], on every float near the underflow threshold and near 0, and on
// special values. scale = 1, m = 0 make the argument x itself.
void test_exp_nonpos_matches_vexp(const RowIsa& k, int64_t step) {
    std::vector<float> xs;
    xs.reserve(1 << 20);
    int64_t checked = 0, mismatches = 0;
    auto flush = [&]() {
        if (xs.empty()) return;
        std::vector<float> a = xs, b(xs.size());
        k.exp_shift_sum(a.data(), static_cast<int64_t>(a.size()), 1.0f, 0.0f);
        k.vexp(xs.data(), b.data(), static_cast<int64_t>(b.size()));
        for (size_t i = 0; i < xs.size(); ++i) {
            if (fltest::float_bits(a[i]) != fltest::float_bits(b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) {
                if (mismatches < 8)
                    FLT_CHECK_MSG(false, "%s exp_shift_sum(x=%a) = %a (%.9g), fl_vexp = %a (%.9g)",
                                  fl::isa_name(k.isa), xs[i], a[i], a[i], b[i], b[i]);
                ++mismatches;
            }
        }
        checked += static_cast<int64_t>(xs.size());
        xs.clear();
    };
    auto add = [&](float v) {
        xs.push_back(v);
        if (xs.size() == (1u << 20)) flush();
    };
    const int64_t lo = ordinal(-88.0f);
    for (int64_t o = lo; o <= ordinal(88.0f); o += step) add(from_ordinal(o));
    for (int64_t o = ordinal(kExpUnderflowX) - 200000; o <= ordinal(kExpUnderflowX) + 200000; ++o)
        add(from_ordinal(o));
    for (int64_t o = -200000; o <= 0; ++o) add(from_ordinal(o));  // denormals and -0
    for (int64_t o = ordinal(-0.5f) - 100000; o <= ordinal(-0.25f); o += 3) add(from_ordinal(o));
    for (float v : {-kInf, -std::numeric_limits<float>::max(), -1e30f, -1000.0f, -88.72f,
                    -87.5f, -87.33654f, 0.0f, -0.0f, kNaN, -kNaN})
        add(v);
    flush();
    if (mismatches)
        std::fprintf(stderr, "  %s: %" PRId64 " of %" PRId64 " arguments differ from fl_vexp\n",
                     fl::isa_name(k.isa), mismatches, checked);
    std::printf("  %s exp_shift_sum vs fl_vexp: %" PRId64 " arguments compared\n",
                fl::isa_name(k.isa), checked);
}

// ---------------------------------------------------------------------------------------------
// fl_dot_rows_f32_<isa>
// ---------------------------------------------------------------------------------------------

using DotRowsFn = void (*)(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                           int64_t, float*, int64_t);

struct DotIsa {
    fl::Isa isa;
    DotRowsFn fn;
};

std::vector<DotIsa> dot_kernels_built() {
    std::vector<DotIsa> v{{fl::Isa::scalar, fl_dot_rows_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_dot_rows_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_dot_rows_f32_avx512});
#endif
    return v;
}

// The contract's chain (ukernels.h), written out independently of the kernels.
float dot_chain(const float* a, const float* b, int64_t k) {
    float acc[16] = {};
    for (int64_t p0 = 0; p0 < k; p0 += 16)
        for (int64_t l = 0; l < 16; ++l) {
            const bool in = p0 + l < k;
            acc[l] = std::fma(in ? a[p0 + l] : 0.0f, in ? b[p0 + l] : 0.0f, acc[l]);
        }
    for (int64_t h = 8; h >= 1; h /= 2)
        for (int64_t l = 0; l < h; ++l) acc[l] = acc[l] + acc[l + h];
    return acc[0];
}

// Every ISA against the chain, bit for bit: A (m rows) and B (n rows) of k floats with NaN in
// the row gaps (ld = k + 3) and the last row of each ending at a guard page, so reading past
// element k - 1 of a row poisons a result or faults; C between sentinel rows and columns.
// Values include exact zeros of both signs and products that cancel.
void test_dot_rows_kernel(const DotIsa& ki) {
    const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9};
    const int64_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 256, 257};
    // 24, 40: a tail of exactly 8 after whole blocks (the lanes 8-15 pass of the AVX2 2 x 4 tile
    // then takes only fma(0, 0, acc)). 32, 64, 128: the AVX2 kernel's unrolled copies.
    const int64_t ks[] = {0, 1, 3, 8, 15, 16, 17, 24, 31, 32, 33, 40, 64, 65, 100, 128};
    std::mt19937 rng(4242);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    int64_t cases = 0;
    for (int64_t m : ms)
        for (int64_t n : ns)
            for (int64_t k : ks) {
                if (fltest::case_failures() > 20) return;
                const int64_t ld = k + 3, ldc = n + 5;
                Guarded<float> a(static_cast<size_t>((m - 1) * ld + k), kNaN);
                Guarded<float> b(static_cast<size_t>((n - 1) * ld + k), kNaN);
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t p = 0; p < k; ++p) {
                        const uint32_t r = rng() % 16;
                        a[i * ld + p] = r == 0 ? 0.0f : r == 1 ? -0.0f : u(rng);
                    }
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t p = 0; p < k; ++p) b[j * ld + p] = u(rng);
                if (k > 0 && n > 1)  // row 1 of B = -(row 0 of A): products that cancel
                    for (int64_t p = 0; p < k; ++p) b[ld + p] = -a[p];
                std::vector<float> cbuf(static_cast<size_t>((m + 2) * ldc), sentinel());
                float* c = cbuf.data() + ldc + 2;
                ki.fn(m, n, k, a.data(), ld, b.data(), ld, c, ldc);
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t j = 0; j < n; ++j) {
                        const float* ar = a.data() + i * ld;
                        const float* br = b.data() + j * ld;
                        const float want = dot_chain(ar, br, k);
                        const float got = c[i * ldc + j];
                        double exact = 0.0, mag = 0.0;
                        for (int64_t p = 0; p < k; ++p) {
                            exact += static_cast<double>(ar[p]) * br[p];
                            mag += std::fabs(static_cast<double>(ar[p]) * br[p]);
                        }
                        FLT_CHECK_MSG(fltest::float_bits(got) == fltest::float_bits(want),
                                      "%s dot_rows m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                                      ": c[%" PRId64 "][%" PRId64 "] = %.9g, chain %.9g",
                                      fl::isa_name(ki.isa), m, n, k, i, j, got, want);
                        FLT_CHECK_MSG(std::fabs(got - exact) <= (k + 4) * kU * mag,
                                      "%s dot_rows k=%" PRId64 ": %.9g vs exact %.17g",
                                      fl::isa_name(ki.isa), k, got, exact);
                    }
                for (int64_t r = 0; r < m + 2; ++r)
                    for (int64_t col = 0; col < ldc; ++col) {
                        const bool inside = r >= 1 && r <= m && col >= 2 && col < n + 2;
                        if (!inside)
                            FLT_CHECK_MSG(fltest::float_bits(cbuf[r * ldc + col]) == kSentinelBits,
                                          "%s dot_rows m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                                          ": wrote outside C (%" PRId64 ", %" PRId64 ")",
                                          fl::isa_name(ki.isa), m, n, k, r - 1, col - 2);
                    }
                ++cases;
            }
    // m == 0 or n == 0: nothing written.
    float c0 = sentinel();
    ki.fn(0, 5, 3, nullptr, 3, nullptr, 3, &c0, 1);
    ki.fn(5, 0, 3, nullptr, 3, nullptr, 3, &c0, 1);
    FLT_CHECK(fltest::float_bits(c0) == kSentinelBits);
    std::printf("  %s dot_rows: %" PRId64 " cases\n", fl::isa_name(ki.isa), cases);
}

// Special values: a NaN or inf in a row makes exactly its dot products NaN / inf (as the
// chain does), the same on every ISA; -0 and +0 results as the chain gives them.
void test_dot_rows_special(const DotIsa& ki) {
    const int64_t m = 3, n = 21, k = 37;
    std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k));
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    b[5 * k + 36] = kNaN;   // key 5: NaN in the tail block
    b[6 * k + 3] = kInf;    // key 6: +inf
    b[7 * k + 20] = -kInf;  // key 7: -inf
    for (int64_t i = 0; i < m; ++i) {
        a[i * k] = 1.0f;
        a[i * k + 1] = -1.0f;
    }
    for (int64_t p = 0; p < k; ++p) b[8 * k + p] = p < 2 ? kInf : 0.5f;  // inf + -inf
    for (int64_t p = 0; p < k; ++p) b[9 * k + p] = -0.0f;  // all -0 products: +0 (acc starts +0)
    std::vector<float> c(static_cast<size_t>(m * n));
    ki.fn(m, n, k, a.data(), k, b.data(), k, c.data(), n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            const float want = dot_chain(a.data() + i * k, b.data() + j * k, k);
            const float got = c[i * n + j];
            FLT_CHECK_MSG(fltest::float_bits(got) == fltest::float_bits(want) ||
                              (std::isnan(got) && std::isnan(want)),
                          "%s dot_rows special c[%" PRId64 "][%" PRId64 "] = %g, chain %g",
                          fl::isa_name(ki.isa), i, j, got, want);
        }
    for (int64_t i = 0; i < m; ++i) {
        FLT_CHECK(std::isnan(c[i * n + 5]));
        FLT_CHECK(std::isinf(c[i * n + 6]));
        FLT_CHECK(std::isnan(c[i * n + 8]));  // inf - inf
        FLT_CHECK(fltest::float_bits(c[i * n + 9]) == 0u);
        FLT_CHECK(std::isfinite(c[i * n + 10]));
    }
    // Signed zeros: every product is -1e-60, which rounds to -0, so a lane that only takes real
    // products ends at -0, and a lane that also takes the tail's fma(0, 0, acc) ends at +0. The
    // tree's sum is -0 only if all 16 lanes are -0: k a multiple of 16 gives -0, any other k +0.
    for (int64_t kz : {8, 16, 24, 32, 40, 41, 64, 128}) {
        for (int64_t mz : {1, 2, 3}) {
            const int64_t nz = 5;
            std::vector<float> az(static_cast<size_t>(mz * kz), 1e-30f);
            std::vector<float> bz(static_cast<size_t>(nz * kz), -1e-30f);
            std::vector<float> cz(static_cast<size_t>(mz * nz), kNaN);
            ki.fn(mz, nz, kz, az.data(), kz, bz.data(), kz, cz.data(), nz);
            const uint32_t want = kz % 16 == 0 ? 0x80000000u : 0u;
            for (int64_t q = 0; q < mz * nz; ++q)
                FLT_CHECK_MSG(fltest::float_bits(cz[q]) == want &&
                                  fltest::float_bits(cz[q]) ==
                                      fltest::float_bits(dot_chain(az.data(), bz.data(), kz)),
                              "%s dot_rows signed zero m=%" PRId64 " k=%" PRId64 ": bits %08x",
                              fl::isa_name(ki.isa), mz, kz, fltest::float_bits(cz[q]));
        }
    }
}

// Every ISA gives the scalar kernel's bits on long random rows (the decode driver's shapes:
// up to 8 rows of A against 256 keys of D = 64, 128, 32 and odd widths).
void test_dot_rows_isas_agree() {
    const std::vector<DotIsa> all = dot_kernels_built();
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.0f, 3.0f);
    for (int64_t k : {64, 128, 32, 80, 200, 7}) {
        for (int64_t m : {1, 4, 6, 8}) {
            const int64_t n = 256;
            std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k));
            for (float& x : a) x = g(rng);
            for (float& x : b) x = g(rng);
            std::vector<float> ref(static_cast<size_t>(m * n)), got(ref.size());
            fl_dot_rows_f32_scalar(m, n, k, a.data(), k, b.data(), k, ref.data(), n);
            for (const DotIsa& ki : all) {
                if (!fltest::isa_supported(ki.isa)) continue;
                std::fill(got.begin(), got.end(), sentinel());
                ki.fn(m, n, k, a.data(), k, b.data(), k, got.data(), n);
                FLT_CHECK_MSG(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)) == 0,
                              "dot_rows %s differs from scalar (m=%" PRId64 " k=%" PRId64 ")",
                              fl::isa_name(ki.isa), m, k);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fl::attention_forward
// ---------------------------------------------------------------------------------------------

struct AttnCase {
    int64_t batch = 1, heads = 2, t = 1, s = 1, d = 1, dv = 1;
    fl::MaskRule rule = fl::MaskRule::fused;
    bool causal = false;
    int mask_mode = 0;  // 0: none, 1: random keep bytes with fully masked rows
    bool additive = false, add_w = false;
    bool shared_kv = false;  // k and v broadcast over heads (sh = 0)
    int64_t group = 1;       // grouped-query: k and v have heads / group heads (Rows4::group)
    float scale = 1.0f, pre = 1.0f, post = 1.0f;
    uint32_t seed = 1;
};

const char* rule_name(fl::MaskRule r) {
    return r == fl::MaskRule::fused ? "fused" : r == fl::MaskRule::subtract ? "subtract" : "layer";
}

// Inputs of one case, laid out with gaps (NaN) and ending at guard pages.
struct AttnData {
    AttnCase c;
    int64_t ldq, ldk, ldv, ldo, ldm;
    Guarded<float> q, k, v;
    Guarded<uint8_t> mask;
    std::vector<float> add_w;

    static size_t kv_heads(const AttnCase& c) {
        return c.shared_kv ? 1 : static_cast<size_t>(c.heads / c.group);
    }

    explicit AttnData(const AttnCase& cs)
        : c(cs),
          ldq(cs.d + 1),
          ldk(cs.d + 2),
          ldv(cs.dv + 3),
          ldo(cs.dv + 2),
          ldm(cs.s + 3),
          q(static_cast<size_t>(cs.batch * cs.heads * cs.t * (cs.d + 1) - 1), kNaN),
          k(static_cast<size_t>(cs.batch * kv_heads(cs) * cs.s * (cs.d + 2) - 2), kNaN),
          v(static_cast<size_t>(cs.batch * kv_heads(cs) * cs.s * (cs.dv + 3) - 3), kNaN),
          mask(cs.mask_mode ? static_cast<size_t>(cs.batch * cs.t * (cs.s + 3) - 3) : 0, 0xEE) {
        std::mt19937 rng(cs.seed);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (int64_t i = 0; i < cs.batch * cs.heads * cs.t; ++i)
            for (int64_t e = 0; e < cs.d; ++e) q[i * ldq + e] = u(rng);
        for (int64_t i = 0; i < cs.batch * static_cast<int64_t>(kv_heads(cs)) * cs.s; ++i) {
            for (int64_t e = 0; e < cs.d; ++e) k[i * ldk + e] = u(rng);
            for (int64_t e = 0; e < cs.dv; ++e) v[i * ldv + e] = 2.0f * u(rng);
        }
        if (cs.mask_mode) {
            static const uint8_t nonzero[] = {1, 2, 9, 255};
            for (int64_t b = 0; b < cs.batch; ++b)
                for (int64_t t = 0; t < cs.t; ++t) {
                    // Every 5th row (row 0 included) and the rows of a 1-in-4 random choice are
                    // fully masked; the others keep about 2/3 of the keys.
                    const bool full = (t % 5 == 0) || (rng() % 4 == 0);
                    for (int64_t s = 0; s < cs.s; ++s) {
                        const bool keep = !full && (rng() % 3 != 0);
                        mask[(b * cs.t + t) * ldm + s] = keep ? nonzero[rng() % 4] : 0;
                    }
                }
        }
        if (cs.add_w) {
            add_w.resize(static_cast<size_t>(cs.d));
            for (float& w : add_w) w = u(rng);
        }
    }

    fl::AttentionArgs args(float* out, float* weights) {
        fl::AttentionArgs a;
        a.batch = c.batch;
        a.heads = c.heads;
        a.t = c.t;
        a.s = c.s;
        a.d = c.d;
        a.dv = c.dv;
        const int64_t kvh = static_cast<int64_t>(kv_heads(c));
        a.q = {q.data(), c.heads * c.t * ldq, c.t * ldq, ldq};
        a.k = {k.data(), kvh * c.s * ldk, c.shared_kv ? 0 : c.s * ldk, ldk, c.group};
        a.v = {v.data(), kvh * c.s * ldv, c.shared_kv ? 0 : c.s * ldv, ldv, c.group};
        a.out = {out, c.heads * c.t * ldo, c.t * ldo, ldo};
        a.weights = weights;
        if (c.mask_mode) {
            a.mask = {mask.data(), c.t * ldm, 0, ldm};
        }
        a.causal = c.causal;
        a.rule = c.rule;
        a.additive = c.additive;
        a.scale = c.scale;
        a.pre = c.pre;
        a.post = c.post;
        a.add_w = c.add_w ? add_w.data() : nullptr;
        return a;
    }
};

// tanh in double with an absolute error of a few 1e-16 (|x| <= 2 here): one exp instead of
// libm's expm1-based tanh, which dominated the test time.
double tanh_ref(double x) { return 1.0 - 2.0 / (std::exp(2.0 * x) + 1.0); }

std::string describe(const AttnCase& c) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "B=%" PRId64 " H=%" PRId64 " T=%" PRId64 " S=%" PRId64 " D=%" PRId64
                  " Dv=%" PRId64 " rule=%s causal=%d mask=%d additive=%d add_w=%d shared_kv=%d "
                  "group=%" PRId64 " scale=%g pre=%g post=%g",
                  c.batch, c.heads, c.t, c.s, c.d, c.dv, rule_name(c.rule), c.causal, c.mask_mode,
                  c.additive, c.add_w, c.shared_kv, c.group, c.scale, c.pre, c.post);
    return buf;
}

// Runs the driver with weights and without; checks both against the double reference, the
// output gaps, and that the outputs are bitwise equal. Returns the output (with weights).
void check_attention_case(const AttnCase& c) {
    AttnData data(c);
    const int64_t n_out = c.batch * c.heads * c.t * data.ldo;
    std::vector<float> out_w(static_cast<size_t>(n_out), sentinel());
    std::vector<float> out_nw(static_cast<size_t>(n_out), sentinel());
    Guarded<float> weights(static_cast<size_t>(c.batch * c.heads * c.t * c.s), sentinel());
    fl::attention_forward(data.args(out_w.data(), weights.data()));
    fl::attention_forward(data.args(out_nw.data(), nullptr));
    const std::string desc = describe(c);

    FLT_CHECK_MSG(std::memcmp(out_w.data(), out_nw.data(), out_w.size() * sizeof(float)) == 0,
                  "%s: output differs with and without weights", desc.c_str());

    const int64_t kvh = static_cast<int64_t>(AttnData::kv_heads(c));
    std::vector<double> logit(static_cast<size_t>(c.s)), p(static_cast<size_t>(c.s));
    std::vector<char> kept(static_cast<size_t>(c.s));
    int bad = 0;
    for (int64_t b = 0; b < c.batch && bad < 6; ++b) {
        for (int64_t h = 0; h < c.heads && bad < 6; ++h) {
            const int64_t bh = b * c.heads + h;
            const int64_t kvbh = b * kvh + (c.shared_kv ? 0 : h / c.group);
            for (int64_t t = 0; t < c.t && bad < 6; ++t) {
                const float* qr = data.q.data() + (bh * c.t + t) * data.ldq;
                double err = 0.0;  // bound on the float error of a score of this row
                bool any_kept = false;
                for (int64_t s = 0; s < c.s; ++s) {
                    const float* kr = data.k.data() + (kvbh * c.s + s) * data.ldk;
                    double score = 0.0, mag = 0.0;
                    if (!c.additive) {
                        for (int64_t e = 0; e < c.d; ++e) {
                            score += static_cast<double>(qr[e]) * kr[e];
                            mag += std::fabs(static_cast<double>(qr[e]) * kr[e]);
                        }
                        score *= c.scale;
                        err = std::max(err, static_cast<double>(c.d + 2) * kU * mag *
                                                std::fabs(c.scale));
                    } else {
                        double wsum = 0.0;
                        for (int64_t e = 0; e < c.d; ++e) {
                            const double w = c.add_w ? data.add_w[e] : 1.0;
                            score += w * tanh_ref(static_cast<double>(c.pre) *
                                                  (static_cast<double>(qr[e]) + kr[e]));
                            wsum += std::fabs(w);
                        }
                        score *= c.post;
                        err = std::max(err, static_cast<double>(c.d + 8) * kU * c.post * wsum);
                    }
                    bool keep = !c.causal || s <= t;
                    if (c.mask_mode && data.mask[(b * c.t + t) * data.ldm + s] == 0) keep = false;
                    kept[s] = keep;
                    any_kept = any_kept || keep;
                    if (keep) {
                        logit[s] = score;
                    } else if (c.rule == fl::MaskRule::fused) {
                        logit[s] = static_cast<double>(fl::kFusedMaskValue);
                    } else if (c.rule == fl::MaskRule::subtract) {
                        logit[s] = static_cast<double>(static_cast<float>(score) - 1e9f);
                    } else {
                        logit[s] = -std::numeric_limits<double>::infinity();
                    }
                }
                // Softmax in double (all -inf: the Softmax-layer rule's zero row).
                double mx = -std::numeric_limits<double>::infinity();
                for (int64_t s = 0; s < c.s; ++s) mx = std::max(mx, logit[s]);
                double sum = 0.0;
                for (int64_t s = 0; s < c.s; ++s) {
                    p[s] = std::isinf(mx) ? 0.0 : std::exp(logit[s] - mx);
                    sum += p[s];
                }
                for (int64_t s = 0; s < c.s; ++s) p[s] = sum > 0.0 ? p[s] / sum : 0.0;
                const double rtol = 2.0 * err + static_cast<double>(c.s + 16) * kU;
                const float* wrow = weights.data() + (bh * c.t + t) * c.s;
                for (int64_t s = 0; s < c.s; ++s) {
                    const float got = wrow[s];
                    const bool ok = p[s] == 0.0 ? (got == 0.0f)
                                                : std::fabs(got - p[s]) <= rtol * p[s] + 1e-37;
                    if (!ok) {
                        ++bad;
                        FLT_CHECK_MSG(false,
                                      "%s: weight (b=%" PRId64 " h=%" PRId64 " t=%" PRId64
                                      " s=%" PRId64 ") = %.9g, want %.9g (kept=%d, row kept=%d)",
                                      desc.c_str(), b, h, t, s, got, p[s], kept[s], any_kept);
                        break;
                    }
                }
                const float* orow = out_w.data() + (bh * c.t + t) * data.ldo;
                for (int64_t j = 0; j < c.dv; ++j) {
                    double ref = 0.0, mag = 0.0;
                    for (int64_t s = 0; s < c.s; ++s) {
                        const double vv = data.v[(kvbh * c.s + s) * data.ldv + j];
                        ref += p[s] * vv;
                        mag += p[s] * std::fabs(vv);
                    }
                    const double got = orow[j];
                    if (!(std::fabs(got - ref) <= rtol * mag + 1e-30)) {
                        ++bad;
                        FLT_CHECK_MSG(false,
                                      "%s: out (b=%" PRId64 " h=%" PRId64 " t=%" PRId64
                                      " j=%" PRId64 ") = %.9g, want %.9g (tol %.3g, row kept=%d)",
                                      desc.c_str(), b, h, t, j, got, ref, rtol * mag, any_kept);
                        break;
                    }
                }
                for (int64_t j = c.dv; j < data.ldo; ++j)
                    FLT_CHECK_MSG(fltest::float_bits(orow[j]) == kSentinelBits, "%s: wrote out gap (t=%" PRId64
                                  ", col %" PRId64 ")", desc.c_str(), t, j);
            }
        }
    }
}

AttnCase make_case(int64_t t, int64_t s, int64_t d, int64_t dv, int rule, bool causal, int mask,
                   bool additive, uint32_t idx) {
    AttnCase c;
    c.t = t;
    c.s = s;
    c.d = d;
    c.dv = dv;
    c.rule = static_cast<fl::MaskRule>(rule);
    c.causal = causal;
    c.mask_mode = mask;
    c.additive = additive;
    c.seed = 1000 + idx;
    // Several (batch, head) problems on small shapes; one batch on large ones (test time).
    c.batch = t * s <= 4096 ? 1 + idx % 2 : 1;
    c.heads = t * s <= 20000 ? 1 + (idx / 2) % 2 : 1;
    c.shared_kv = c.heads > 1 && idx % 3 == 0;
    // |score| < 32 so that the subtract rule's score - 1e9 rounds to -1e9 in float32 for every
    // masked key (what the reference assumes for fully masked rows).
    if (additive) {
        c.add_w = idx % 2 == 0;
        c.pre = idx % 3 == 0 ? 0.5f : 1.0f;
        c.post = idx % 5 == 0 ? 1.2f : 1.0f;
    } else {
        const float scales[] = {1.0f / std::sqrt(static_cast<float>(d)), 1.0f, -0.5f, 1.5f, 0.0f};
        c.scale = scales[idx % 5];
    }
    return c;
}

// Query rows around the 48-row blocks and the 96-row single block; keys around the 512-key
// blocks of the online softmax (and the 256 of earlier builds).
const int64_t kT[] = {1, 5, 47, 48, 49, 255, 256, 257, 300};
const int64_t kS[] = {1, 5, 47, 48, 49, 256, 257, 511, 512, 513};
const int64_t kDims[] = {1, 3, 16, 17};

// Every (T, S) x rule x causal x mask x scoring, (D, Dv) cycling through the 16 pairs; the T
// of even (part 0) or odd (part 1) positions in kT, two cases of about the same cost (on the
// scalar kernels about 30 s in all, which the runner's shards then share).
void test_attention_ts_grid(int part) {
    uint32_t idx = 0;
    for (size_t ti = 0; ti < sizeof(kT) / sizeof(kT[0]); ++ti)
        for (int64_t s : kS)
            for (int rule = 0; rule < 3; ++rule)
                for (int causal = 0; causal < 2; ++causal)
                    for (int mask = 0; mask < 2; ++mask)
                        for (int additive = 0; additive < 2; ++additive) {
                            const int64_t d = kDims[idx % 4], dv = kDims[(idx / 4 + idx) % 4];
                            const uint32_t seed = idx++;  // (the same cases as in one grid)
                            if (static_cast<int>(ti % 2) != part) continue;
                            if (!fltest::driver_grid_case(seed)) continue;
                            if (fltest::case_failures() > 40) return;
                            check_attention_case(make_case(kT[ti], s, d, dv, rule, causal != 0,
                                                           mask, additive != 0, seed));
                        }
}

// Every (D, Dv) x rule x causal x mask x scoring on a few (T, S).
void test_attention_dim_grid() {
    const int64_t ts[][2] = {{5, 47}, {49, 257}, {257, 49}, {48, 1}};
    uint32_t idx = 7;
    for (const auto& p : ts)
        for (int64_t d : kDims)
            for (int64_t dv : kDims)
                for (int rule = 0; rule < 3; ++rule)
                    for (int causal = 0; causal < 2; ++causal)
                        for (int mask = 0; mask < 2; ++mask)
                            for (int additive = 0; additive < 2; ++additive) {
                                if (fltest::case_failures() > 40) return;
                                const uint32_t seed = idx++;
                                if (!fltest::driver_grid_case(seed)) continue;
                                check_attention_case(make_case(p[0], p[1], d, dv, rule,
                                                               causal != 0, mask, additive != 0,
                                                               seed));
                            }
}

// Bitwise the same outputs and weights for 1, 2 and 3 threads (2 x 2 heads x 4 query blocks =
// 16 tasks, uneven splits; S = 520 crosses a key block).
void test_attention_threads_bitwise() {
    const int saved = fl::num_threads();
    for (int rule = 0; rule < 3; ++rule)
        for (int causal = 0; causal < 2; ++causal)
            for (int mask = 0; mask < 2; ++mask)
                for (int additive = 0; additive < 2; ++additive) {
                    if (!fltest::driver_grid_case(rule * 8 + causal * 4 + mask * 2 + additive))
                        continue;
                    AttnCase c = make_case(150, 520, 17, 16, rule, causal != 0, mask,
                                           additive != 0, 77 + rule * 8 + causal * 4 + mask * 2);
                    c.batch = 2;
                    c.heads = 2;
                    c.shared_kv = false;
                    AttnData data(c);
                    const size_t n_out = static_cast<size_t>(c.batch * c.heads * c.t * data.ldo);
                    const size_t n_w = static_cast<size_t>(c.batch * c.heads * c.t * c.s);
                    std::vector<float> out1, w1;
                    for (int threads : {1, 2, 3}) {
                        fl::set_num_threads(threads);
                        std::vector<float> out(n_out, sentinel()), w(n_w, sentinel()),
                            out_nw(n_out, sentinel());
                        fl::attention_forward(data.args(out.data(), w.data()));
                        fl::attention_forward(data.args(out_nw.data(), nullptr));
                        FLT_CHECK_MSG(std::memcmp(out.data(), out_nw.data(),
                                                  n_out * sizeof(float)) == 0,
                                      "%s threads=%d: output differs without weights",
                                      describe(c).c_str(), threads);
                        if (threads == 1) {
                            out1 = out;
                            w1 = w;
                        } else {
                            FLT_CHECK_MSG(
                                std::memcmp(out.data(), out1.data(), n_out * sizeof(float)) == 0,
                                "%s: output with %d threads differs from 1 thread",
                                describe(c).c_str(), threads);
                            FLT_CHECK_MSG(
                                std::memcmp(w.data(), w1.data(), n_w * sizeof(float)) == 0,
                                "%s: weights with %d threads differ from 1 thread",
                                describe(c).c_str(), threads);
                        }
                    }
                }
    fl::set_num_threads(saved);
}

// The decode driver (T <= 8 dot scores, attention_decode.cpp): every T of it (and 9, the
// blocked driver) x S around the 256-key chunks and long x rule x causal x mask, D and Dv
// cycling; the same checks as above (double reference, guard pages, gaps, with and without
// weights bitwise).
void test_attention_decode_grid() {
    const int64_t ts[] = {1, 2, 3, 4, 5, 7, 8, 9};
    const int64_t ss[] = {1, 2, 13, 255, 256, 257, 512, 513, 1500};
    const int64_t dims[][2] = {{64, 64}, {1, 3}, {16, 17}, {17, 16}, {33, 8}, {3, 1}};
    uint32_t idx = 300;
    for (int64_t t : ts)
        for (int64_t s : ss)
            for (int rule = 0; rule < 3; ++rule)
                for (int causal = 0; causal < 2; ++causal)
                    for (int mask = 0; mask < 2; ++mask) {
                        if (fltest::case_failures() > 40) return;
                        if (!fltest::driver_grid_case(idx)) {
                            ++idx;
                            continue;
                        }
                        const int64_t* dd = dims[idx % 6];
                        AttnCase c = make_case(t, s, dd[0], dd[1], rule, causal != 0, mask,
                                               false, idx++);
                        c.batch = 1 + idx % 2;
                        c.heads = 1 + (idx / 2) % 3;
                        c.shared_kv = c.heads > 1 && idx % 3 == 0;
                        check_attention_case(c);
                    }
}

// Decode shapes: bitwise the same outputs and weights for 1, 2 and 3 threads, with several
// heads (tasks of one head's chunks end up on different threads) and many 256-key chunks.
void test_attention_decode_threads_bitwise() {
    const int saved = fl::num_threads();
    const int64_t shapes[][2] = {{1, 4100}, {4, 1031}, {8, 2048}};
    uint32_t idx = 500;
    for (const auto& sh : shapes)
        for (int rule = 0; rule < 3; ++rule)
            for (int causal = 0; causal < 2; ++causal)
                for (int mask = 0; mask < 2; ++mask) {
                    if (!fltest::driver_grid_case(idx)) {
                        ++idx;
                        continue;
                    }
                    AttnCase c = make_case(sh[0], sh[1], 64, 48, rule, causal != 0, mask, false,
                                           idx++);
                    c.batch = 2;
                    c.heads = 3;
                    c.shared_kv = false;
                    AttnData data(c);
                    const size_t n_out = static_cast<size_t>(c.batch * c.heads * c.t * data.ldo);
                    const size_t n_w = static_cast<size_t>(c.batch * c.heads * c.t * c.s);
                    std::vector<float> out1, w1;
                    for (int threads : {1, 2, 3}) {
                        fl::set_num_threads(threads);
                        std::vector<float> out(n_out, sentinel()), w(n_w, sentinel()),
                            out_nw(n_out, sentinel());
                        fl::attention_forward(data.args(out.data(), w.data()));
                        fl::attention_forward(data.args(out_nw.data(), nullptr));
                        FLT_CHECK_MSG(std::memcmp(out.data(), out_nw.data(),
                                                  n_out * sizeof(float)) == 0,
                                      "%s threads=%d: output differs without weights",
                                      describe(c).c_str(), threads);
                        if (threads == 1) {
                            out1 = out;
                            w1 = w;
                            continue;
                        }
                        FLT_CHECK_MSG(
                            std::memcmp(out.data(), out1.data(), n_out * sizeof(float)) == 0,
                            "%s: output with %d threads differs from 1 thread",
                            describe(c).c_str(), threads);
                        FLT_CHECK_MSG(std::memcmp(w.data(), w1.data(), n_w * sizeof(float)) == 0,
                                      "%s: weights with %d threads differ from 1 thread",
                                      describe(c).c_str(), threads);
                    }
                }
    fl::set_num_threads(saved);
}

// NaN in one key (decode driver): exactly the rows that may attend it are NaN - also a row
// whose only kept key in that key's chunk is the NaN one, and not a row that masks it or
// whose causal window ends before it; a fully masked row stays the (finite) mean of v.
void test_attention_decode_nan_key() {
    for (int64_t j : {0, 2, 255, 256, 700}) {
        for (int causal = 0; causal < 2; ++causal) {
            AttnCase c = make_case(8, 800, 16, 8, 0, causal != 0, 1, false, 900);
            c.batch = 1;
            c.heads = 1;
            AttnData data(c);
            for (int64_t e = 0; e < c.d; ++e) data.k[j * data.ldk + e] = kNaN;
            auto keep = [&](int64_t t, int64_t s) -> uint8_t& { return data.mask[t * data.ldm + s]; };
            for (int64_t t = 0; t < c.t; ++t)
                for (int64_t s = 0; s < c.s; ++s) keep(t, s) = 1;
            keep(1, j) = 0;
            for (int64_t s = j / 256 * 256; s < std::min<int64_t>(c.s, j / 256 * 256 + 256); ++s)
                keep(2, s) = s == j;  // row 2: key j alone in its chunk
            for (int64_t s = 0; s < c.s; ++s) keep(3, s) = s == j;  // row 3: key j only
            for (int64_t s = 0; s < c.s; ++s) keep(4, s) = 0;       // row 4: nothing
            std::vector<float> out(static_cast<size_t>(c.t * data.ldo), sentinel());
            fl::attention_forward(data.args(out.data(), nullptr));
            for (int64_t t = 0; t < c.t; ++t) {
                const bool may = keep(t, j) != 0 && (!causal || j <= t);
                for (int64_t e = 0; e < c.dv; ++e) {
                    const float o = out[t * data.ldo + e];
                    FLT_CHECK_MSG(may ? std::isnan(o) : std::isfinite(o),
                                  "NaN key %" PRId64 " causal=%d: row %" PRId64 " = %g", j, causal,
                                  t, o);
                }
            }
        }
    }
}

// A NaN in value row j reaches exactly the rows that may attend key j (docs/semantics.md §15):
// with a causal mask rows t >= j, whatever the kernel's blocks of rows (the flash driver scores
// groups of 6 rows up to the group's last row, where p = 0 met 0 * NaN = NaN), and with an
// explicit mask only the rows that keep key j. T = 20 and 100 (flash), 5 (decode).
void test_attention_nan_value_follows_the_mask() {
    for (int64_t t : {5, 20, 100}) {
        for (int64_t j : {0, 3, 9, 17}) {
            for (int causal = 0; causal < 2; ++causal) {
                AttnCase c = make_case(t, 40, 8, 8, 0, causal != 0, 1, false, 901);
                c.batch = 1;
                c.heads = 1;
                AttnData data(c);
                data.v[j * data.ldv + 2] = kNaN;
                auto keep = [&](int64_t r, int64_t s) -> uint8_t& {
                    return data.mask[r * data.ldm + s];
                };
                for (int64_t r = 0; r < c.t; ++r)
                    for (int64_t s = 0; s < c.s; ++s) keep(r, s) = causal ? 1 : (r + s) % 3 != 0;
                std::vector<float> out(static_cast<size_t>(c.t * data.ldo), sentinel());
                std::vector<float> w(static_cast<size_t>(c.t * c.s), sentinel());
                fl::attention_forward(data.args(out.data(), w.data()));
                for (int64_t r = 0; r < c.t; ++r) {
                    const bool may = keep(r, j) != 0 && (!causal || j <= r);
                    for (int64_t e = 0; e < c.dv; ++e) {
                        const float o = out[r * data.ldo + e];
                        const bool want_nan = may && e == 2;
                        FLT_CHECK_MSG(want_nan ? std::isnan(o) : std::isfinite(o),
                                      "T=%" PRId64 " NaN value %" PRId64 " causal=%d: row %" PRId64
                                      " col %" PRId64 " = %g",
                                      t, j, causal, r, e, o);
                    }
                    for (int64_t s = 0; s < c.s; ++s)  // the weights never see a value
                        FLT_CHECK(std::isfinite(w[r * c.s + s]));
                }
            }
        }
    }
}

}  // namespace

namespace fltest {

// Grouped-query k and v (Rows4::group: G stored heads, each read by H / G query heads): the
// double reference of check_attention_case on both drivers (T <= 8 decode, T > 8 blocked) and
// additive scores, then bitwise the output and weights of the same problem with k and v
// repeated to H heads, for 1 and 3 threads (threads that take part of a group's heads pack
// its k and v themselves).
void test_attention_grouped() {
    const int saved = fl::num_threads();
    // (T, S, group): the decode driver runs the heads of a group together where group' * T <= 8
    // (T 1 S 300 group 3, T 1 S 1100 group 6, T 2 group 2, T 3 group 2, T 4 group 6: 2 of 3)
    // and apart otherwise (T 5 or 8 with group 2, every causal case, and a mask at T > 1: the
    // test's mask is shared by the heads, head stride 0). Variants: 0 plain, 1 causal and
    // masked, 2 masked (decode) or additive scores (T > 8).
    const int64_t shapes[][3] = {{1, 300, 3}, {1, 1100, 6}, {2, 513, 2}, {3, 40, 2},
                                 {4, 300, 6}, {5, 17, 2},   {8, 1100, 2}, {9, 40, 3},
                                 {100, 257, 2}, {50, 64, 6}};
    uint32_t idx = 700;
    for (const auto& sh : shapes)
        for (int rule = 0; rule < 3; ++rule)
            for (int variant = 0; variant < 3; ++variant) {
                const uint32_t seed = idx++;
                if (!fltest::driver_grid_case(seed)) continue;
                const bool additive = variant == 2 && sh[0] > 8;
                AttnCase c = make_case(sh[0], sh[1], 16, 17, rule, variant == 1,
                                       variant == 1 || (variant == 2 && !additive), additive,
                                       seed);
                c.batch = 2;
                c.heads = 6;
                c.shared_kv = false;
                c.group = sh[2];
                check_attention_case(c);
                AttnData grouped(c);
                AttnCase flat_case = c;
                flat_case.group = 1;
                AttnData flat(flat_case);
                const int64_t g = c.heads / c.group;
                for (int64_t b = 0; b < c.batch; ++b)
                    for (int64_t h = 0; h < c.heads; ++h)
                        for (int64_t s = 0; s < c.s; ++s) {
                            const int64_t from = (b * g + h / c.group) * c.s + s;
                            const int64_t to = (b * c.heads + h) * c.s + s;
                            for (int64_t e = 0; e < c.d; ++e)
                                flat.k[to * flat.ldk + e] = grouped.k[from * grouped.ldk + e];
                            for (int64_t e = 0; e < c.dv; ++e)
                                flat.v[to * flat.ldv + e] = grouped.v[from * grouped.ldv + e];
                        }
                for (size_t i = 0; i < flat.q.size(); ++i) flat.q[i] = grouped.q[i];
                for (size_t i = 0; i < flat.mask.size(); ++i) flat.mask[i] = grouped.mask[i];
                flat.add_w = grouped.add_w;
                const size_t n_out = static_cast<size_t>(c.batch * c.heads * c.t * grouped.ldo);
                const size_t n_w = static_cast<size_t>(c.batch * c.heads * c.t * c.s);
                for (int threads : {1, 3}) {
                    fl::set_num_threads(threads);
                    std::vector<float> out_g(n_out, sentinel()), w_g(n_w, sentinel());
                    std::vector<float> out_f(n_out, sentinel()), w_f(n_w, sentinel());
                    fl::attention_forward(grouped.args(out_g.data(), w_g.data()));
                    fl::attention_forward(flat.args(out_f.data(), w_f.data()));
                    FLT_CHECK_MSG(
                        std::memcmp(out_g.data(), out_f.data(), n_out * sizeof(float)) == 0 &&
                            std::memcmp(w_g.data(), w_f.data(), n_w * sizeof(float)) == 0,
                        "%s threads=%d: grouped k/v differ from the same k/v repeated",
                        describe(c).c_str(), threads);
                    // Without weights (the decode driver's score tile instead of the rows).
                    std::vector<float> out_n(n_out, sentinel());
                    fl::attention_forward(grouped.args(out_n.data(), nullptr));
                    FLT_CHECK_MSG(
                        std::memcmp(out_n.data(), out_f.data(), n_out * sizeof(float)) == 0,
                        "%s threads=%d: grouped k/v without weights differ from the same k/v "
                        "repeated",
                        describe(c).c_str(), threads);
                }
            }
    fl::set_num_threads(saved);
}

// Refused head groups: k's and v's differ, one that does not divide the heads, a zero one, a
// group on q, on out or on the mask.
void test_attention_group_refused() {
    AttnCase c = make_case(4, 9, 8, 8, 0, false, 0, false, 900);
    c.batch = 1;
    c.heads = 4;
    c.shared_kv = false;
    c.group = 2;
    AttnData data(c);
    std::vector<float> out(static_cast<size_t>(c.heads * c.t * data.ldo), sentinel());
    const std::vector<float> untouched = out;
    for (int which = 0; which < 6; ++which) {
        fl::AttentionArgs a = data.args(out.data(), nullptr);
        if (which == 0) a.v.group = 1;
        if (which == 1) a.k.group = a.v.group = 3;
        if (which == 2) a.q.group = 2;
        if (which == 3) a.k.group = a.v.group = 0;
        if (which == 4) a.out.group = 2;
        if (which == 5) a.mask.group = 2;
        bool threw = false;
        try {
            fl::attention_forward(a);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        FLT_CHECK_MSG(threw, "bad head group %d was not refused", which);
        FLT_CHECK_MSG(std::memcmp(out.data(), untouched.data(), out.size() * sizeof(float)) == 0,
                      "bad head group %d wrote the output", which);
    }
}

void register_attention_tests() {
    for (const RowIsa& k : row_kernels_built()) {
        const std::string isa = fl::isa_name(k.isa);
        if (!fltest::isa_supported(k.isa)) {
            std::printf("skip %s attention row kernels: not supported by this CPU\n", isa.c_str());
            continue;
        }
        add_case("attn_score_prep_" + isa, [k] { test_score_prep(k); });
        add_case("attn_row_max_" + isa, [k] { test_row_max(k); });
        add_case("attn_score_prep_nan_" + isa, [k] { test_score_prep_nan(k); });
        add_case("attn_row_max_nan_" + isa, [k] { test_row_max_nan(k); });
        add_case("attn_exp_shift_sum_" + isa, [k] { test_exp_shift_sum(k); });
        // Dense for the SIMD kernels (their own exp); sparse for scalar (same function as vexp).
        const int64_t step = k.isa == fl::Isa::scalar ? 1009 : 61;
        add_case("attn_exp_shift_matches_vexp_" + isa,
                 [k, step] { test_exp_nonpos_matches_vexp(k, step); });
    }
    add_case("attention_ts_grid_even_t", [] { test_attention_ts_grid(0); });
    add_case("attention_ts_grid_odd_t", [] { test_attention_ts_grid(1); });
    add_case("attention_dim_grid", test_attention_dim_grid);
    add_case("attention_threads_bitwise", test_attention_threads_bitwise);
    for (const DotIsa& k : dot_kernels_built()) {
        const std::string isa = fl::isa_name(k.isa);
        if (!fltest::isa_supported(k.isa)) {
            std::printf("skip %s dot_rows kernel: not supported by this CPU\n", isa.c_str());
            continue;
        }
        add_case("dot_rows_" + isa, [k] { test_dot_rows_kernel(k); });
        add_case("dot_rows_special_" + isa, [k] { test_dot_rows_special(k); });
    }
    add_case("dot_rows_isas_agree", test_dot_rows_isas_agree);
    add_case("attention_decode_grid", test_attention_decode_grid);
    add_case("attention_decode_threads_bitwise", test_attention_decode_threads_bitwise);
    add_case("attention_decode_nan_key", test_attention_decode_nan_key);
    add_case("attention_nan_value_follows_the_mask", test_attention_nan_value_follows_the_mask);
    add_case("attention_grouped", test_attention_grouped);
    add_case("attention_group_refused", test_attention_group_refused);
}

}  // namespace fltest
