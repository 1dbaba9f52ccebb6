// Accuracy sweep of the elementwise activation kernels (csrc/ukernels/vmath/): every float in
// [lo, hi] (default [-100, 100], about 2.2e9 values) through every activation of every ISA this
// CPU supports, against the double reference of vmath_reference.h.
//
// Reported per activation and ISA:
//   ulp      max ordinal distance to the reference rounded to float, over results whose exact
//            magnitude is >= the flush threshold (act_flush_threshold: FLT_MIN, or 2^-119 for
//            silu/mish/gelu_tanh), and the x where it occurs;
//   ulp_ex   the same error measured against the exact value, in ULPs of the exact value;
//   abs<T    max absolute error over results below the threshold (flushing shows up here);
//   nan      results that are NaN where the reference is not, or the reverse (must be 0);
//   exact%   share of the results in the ULP range that equal the correctly rounded float.
// Not a ctest: it takes minutes. Run it by hand after touching a vmath kernel:
//   fl_vmath_ulp [--act NAME]... [--lo X] [--hi X] [--step K] [--threads N]
// --step K visits every K-th float (a quick look); the default is 1 (exhaustive).
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fastlayers/activations.h"
#include "fastlayers/runtime.h"
#include "tests/vmath_reference.h"
#include "ukernels/ukernels.h"

namespace {

using ActFn = void (*)(float*, int64_t);

struct IsaActs {
    fl::Isa isa;
    ActFn act[fl::kNumActs];
};

std::vector<IsaActs> supported_isas() {
    std::vector<IsaActs> v;
    {
        IsaActs s{fl::Isa::scalar, {}};
#define FL_SET_SCALAR(name) s.act[static_cast<int>(fl::Act::name)] = fl_act_##name##_scalar;
        FL_ACTIVATION_LIST(FL_SET_SCALAR)
#undef FL_SET_SCALAR
        v.push_back(s);
    }
#if defined(FL_HAVE_AVX2)
    {
        IsaActs s{fl::Isa::avx2, {}};
#define FL_SET_AVX2(name) s.act[static_cast<int>(fl::Act::name)] = fl_act_##name##_avx2;
        FL_ACTIVATION_LIST(FL_SET_AVX2)
#undef FL_SET_AVX2
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_AVX512)
    {
        IsaActs s{fl::Isa::avx512, {}};
#define FL_SET_AVX512(name) s.act[static_cast<int>(fl::Act::name)] = fl_act_##name##_avx512;
        FL_ACTIVATION_LIST(FL_SET_AVX512)
#undef FL_SET_AVX512
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_NEON)
    {
        IsaActs s{fl::Isa::neon, {}};
#define FL_SET_NEON(name) s.act[static_cast<int>(fl::Act::name)] = fl_act_##name##_neon;
        FL_ACTIVATION_LIST(FL_SET_NEON)
#undef FL_SET_NEON
        v.push_back(s);
    }
#endif
    std::vector<IsaActs> out;
    const std::vector<fl::Isa> ok = fl::isas_supported();
    for (const IsaActs& s : v)
        if (std::find(ok.begin(), ok.end(), s.isa) != ok.end()) out.push_back(s);
    return out;
}

struct Stats {
    int64_t max_ulp = 0;
    float x_ulp = 0.0f;
    double max_ulp_exact = 0.0;
    double max_abs_small = 0.0;
    float x_abs = 0.0f;
    int64_t nan_mismatch = 0;
    float x_nan = 0.0f;
    int64_t count = 0;
    int64_t correctly_rounded = 0;

    void merge(const Stats& o) {
        if (o.max_ulp > max_ulp) {
            max_ulp = o.max_ulp;
            x_ulp = o.x_ulp;
        }
        max_ulp_exact = std::max(max_ulp_exact, o.max_ulp_exact);
        if (o.max_abs_small > max_abs_small) {
            max_abs_small = o.max_abs_small;
            x_abs = o.x_abs;
        }
        if (o.nan_mismatch > 0 && nan_mismatch == 0) x_nan = o.x_nan;
        nan_mismatch += o.nan_mismatch;
        count += o.count;
        correctly_rounded += o.correctly_rounded;
    }
};

// The ULP of the exact value r (its float neighbourhood), for the "vs exact" measure.
double ulp_of(double r) {
    const double a = std::fabs(r);
    if (a < 0x1p-126) return 0x1p-149;
    int e;
    std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
    return std::ldexp(1.0, e - 24);
}

uint32_t ordinal_to_bits(int64_t o) {
    return o >= 0 ? static_cast<uint32_t>(o) : (static_cast<uint32_t>(-o) | 0x80000000u);
}

void sweep_block(fl::Act act, const std::vector<IsaActs>& isas, int64_t o_begin, int64_t o_end,
                 int64_t step, std::vector<float>& x, std::vector<double>& ref,
                 std::vector<float>& y, std::vector<Stats>& stats) {
    const int id = static_cast<int>(act);
    const double thr = fltest::act_flush_threshold(act);
    x.clear();
    for (int64_t o = o_begin; o < o_end; o += step) x.push_back(fltest::u2f(ordinal_to_bits(o)));
    const size_t n = x.size();
    ref.resize(n);
    for (size_t i = 0; i < n; ++i) ref[i] = fltest::act_reference(act, x[i]);
    for (size_t k = 0; k < isas.size(); ++k) {
        y = x;
        isas[k].act[id](y.data(), static_cast<int64_t>(n));
        Stats& s = stats[k];
        for (size_t i = 0; i < n; ++i) {
            const double r = ref[i];
            const float g = y[i];
            if (std::isnan(r) != std::isnan(g)) {
                if (s.nan_mismatch++ == 0) s.x_nan = x[i];
                continue;
            }
            if (std::isnan(r)) continue;
            const float rf = static_cast<float>(r);
            if (std::fabs(r) < thr) {
                const double e = std::fabs(static_cast<double>(g) - r);
                if (e > s.max_abs_small) {
                    s.max_abs_small = e;
                    s.x_abs = x[i];
                }
                continue;
            }
            ++s.count;
            const int64_t d = fltest::ulp_diff(g, rf);
            if (d == 0) ++s.correctly_rounded;
            if (d > s.max_ulp) {
                s.max_ulp = d;
                s.x_ulp = x[i];
            }
            if (!std::isinf(r) && !std::isinf(g)) {
                const double ex = std::fabs(static_cast<double>(g) - r) / ulp_of(r);
                s.max_ulp_exact = std::max(s.max_ulp_exact, ex);
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> acts;
    float lo = -100.0f, hi = 100.0f;
    int64_t step = 1;
    int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--act" && i + 1 < argc) {
            const int id = fl::act_id(argv[++i]);
            if (id < 0) {
                std::fprintf(stderr, "unknown activation %s\n", argv[i]);
                return 2;
            }
            acts.push_back(id);
        } else if (a == "--lo" && i + 1 < argc) {
            lo = std::strtof(argv[++i], nullptr);
        } else if (a == "--hi" && i + 1 < argc) {
            hi = std::strtof(argv[++i], nullptr);
        } else if (a == "--step" && i + 1 < argc) {
            step = std::max<int64_t>(1, std::strtoll(argv[++i], nullptr, 10));
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::max(1, std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr,
                         "usage: %s [--act NAME]... [--lo X] [--hi X] [--step K] [--threads N]\n",
                         argv[0]);
            return 2;
        }
    }
    if (acts.empty())
        for (int i = 1; i < fl::kNumActs; ++i) acts.push_back(i);  // linear is the identity

    const std::vector<IsaActs> isas = supported_isas();
    const int64_t o_lo = fltest::float_ordinal(lo), o_hi = fltest::float_ordinal(hi);
    const int64_t block = 1 << 16;
    const std::string every = step == 1 ? "every" : "every " + std::to_string(step) + "th";
    std::printf("%s float in [%g, %g] (%" PRId64 " values), %d threads\n", every.c_str(), lo, hi,
                (o_hi - o_lo) / step + 1, threads);
    std::printf("%-15s %-6s %8s %14s %9s %12s %14s %6s %7s\n", "activation", "isa", "ulp", "at x",
                "ulp_ex", "abs<T", "at x", "nan", "exact%");
    bool all_ok = true;
    for (int id : acts) {
        const fl::Act act = static_cast<fl::Act>(id);
        std::vector<Stats> total(isas.size());
        std::atomic<int64_t> next{o_lo};
        std::mutex mu;
        auto worker = [&] {
            std::vector<float> x, y;
            std::vector<double> ref;
            std::vector<Stats> local(isas.size());
            for (;;) {
                const int64_t b = next.fetch_add(block * step);
                if (b > o_hi) break;
                const int64_t e = std::min(o_hi + 1, b + block * step);
                sweep_block(act, isas, b, e, step, x, ref, y, local);
            }
            std::lock_guard<std::mutex> lock(mu);
            for (size_t k = 0; k < isas.size(); ++k) total[k].merge(local[k]);
        };
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
        for (std::thread& t : pool) t.join();
        for (size_t k = 0; k < isas.size(); ++k) {
            const Stats& s = total[k];
            std::printf("%-15s %-6s %8" PRId64 " %14.8g %9.3f %12.3g %14.8g %6" PRId64 " %7.3f\n",
                        fl::act_name(id), fl::isa_name(isas[k].isa), s.max_ulp, s.x_ulp,
                        s.max_ulp_exact, s.max_abs_small, s.x_abs, s.nan_mismatch,
                        100.0 * static_cast<double>(s.correctly_rounded) /
                            static_cast<double>(std::max<int64_t>(1, s.count)));
            if (s.nan_mismatch) {
                std::printf("  NaN mismatch first at x=%.9g\n", s.x_nan);
                all_ok = false;
            }
        }
        std::fflush(stdout);
    }
    return all_ok ? 0 : 1;
}
