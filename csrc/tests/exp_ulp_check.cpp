// Exhaustive accuracy sweep of the vexp kernels: every float x in [-87, 88] (about 2.2e9 values)
// against float(exp(double(x))), for every ISA this CPU supports. Prints, per ISA:
//   - the max error in ULP as the ordinal distance to the correctly rounded float,
//   - the max error in ULP relative to the exact value (|y - exp(x)| / ulp(exp(x))),
//   - the share of results equal to the correctly rounded float.
// Run by hand (tens of seconds; uses all threads): ./fl_exp_ulp. Exit status 1 if > 2 ULP.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fastlayers/runtime.h"
#include "ukernels/ukernels.h"

namespace {

using VexpFn = void (*)(const float*, float*, int64_t);

int64_t ordinal(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}

float from_ordinal(int64_t o) {
    const uint32_t u =
        o >= 0 ? static_cast<uint32_t>(o) : (static_cast<uint32_t>(-o) | 0x80000000u);
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

struct Stats {
    int64_t max_ulp = 0;
    float max_ulp_x = 0.0f;
    double max_frac = 0.0;
    float max_frac_x = 0.0f;
    int64_t exact = 0;
    int64_t count = 0;
};

struct SweepArgs {
    VexpFn vexp;
    int64_t first;  // ordinal of the first x
    int64_t chunk;  // values per task
    int64_t total;
    std::vector<Stats>* per_task;
};

void sweep_task(void* ctx, int64_t begin, int64_t end) {
    const SweepArgs* a = static_cast<const SweepArgs*>(ctx);
    constexpr int64_t kBlock = 4096;
    std::vector<float> x(kBlock), y(kBlock);
    for (int64_t t = begin; t < end; ++t) {
        Stats s;
        const int64_t lo = a->first + t * a->chunk;
        const int64_t hi = std::min(a->first + a->total, lo + a->chunk);
        for (int64_t b = lo; b < hi; b += kBlock) {
            const int64_t m = std::min(kBlock, hi - b);
            for (int64_t i = 0; i < m; ++i) x[i] = from_ordinal(b + i);
            a->vexp(x.data(), y.data(), m);
            for (int64_t i = 0; i < m; ++i) {
                const double e = std::exp(static_cast<double>(x[i]));
                const float ref = static_cast<float>(e);
                const int64_t d = std::llabs(ordinal(y[i]) - ordinal(ref));
                // ulp of the exact value: spacing of floats at ref's binade.
                const double ulp = static_cast<double>(std::nextafter(ref, INFINITY)) - ref;
                const double frac = std::fabs(static_cast<double>(y[i]) - e) / ulp;
                if (d > s.max_ulp) {
                    s.max_ulp = d;
                    s.max_ulp_x = x[i];
                }
                if (frac > s.max_frac) {
                    s.max_frac = frac;
                    s.max_frac_x = x[i];
                }
                s.exact += d == 0;
            }
            s.count += m;
        }
        (*a->per_task)[t] = s;
    }
}

Stats merge(const Stats& a, const Stats& b) {
    Stats m = a;
    if (b.max_ulp > m.max_ulp) {
        m.max_ulp = b.max_ulp;
        m.max_ulp_x = b.max_ulp_x;
    }
    if (b.max_frac > m.max_frac) {
        m.max_frac = b.max_frac;
        m.max_frac_x = b.max_frac_x;
    }
    m.exact += b.exact;
    m.count += b.count;
    return m;
}

// Every float in [lo, hi], split into tasks of 4M values over the thread pool.
Stats sweep(VexpFn fn, float lo, float hi) {
    const int64_t first = ordinal(lo), last = ordinal(hi);
    const int64_t total = last - first + 1;
    const int64_t chunk = int64_t(1) << 22;
    const int64_t tasks = (total + chunk - 1) / chunk;
    std::vector<Stats> per_task(static_cast<size_t>(tasks));
    SweepArgs args{fn, first, chunk, total, &per_task};
    fl::parallel_for(tasks, 1, sweep_task, &args);
    Stats all;
    for (const Stats& s : per_task) all = merge(all, s);
    return all;
}

void print(const char* isa, const char* range, const Stats& s) {
    std::printf("%-6s exp on %s, %" PRId64 " floats: max %" PRId64
                " ulp vs correctly rounded (x=%.9g); max %.3f ulp vs exact (x=%.9g); "
                "%.2f%% correctly rounded\n",
                isa, range, s.count, s.max_ulp, static_cast<double>(s.max_ulp_x), s.max_frac,
                static_cast<double>(s.max_frac_x),
                100.0 * static_cast<double>(s.exact) / static_cast<double>(s.count));
}

}  // namespace

int main() {
    struct Entry {
        fl::Isa isa;
        VexpFn fn;
    };
    std::vector<Entry> entries{{fl::Isa::scalar, fl_vexp_scalar}};
#if defined(FL_HAVE_AVX2)
    entries.push_back({fl::Isa::avx2, fl_vexp_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    entries.push_back({fl::Isa::avx512, fl_vexp_avx512});
#endif
#if defined(FL_HAVE_NEON)
    entries.push_back({fl::Isa::neon, fl_vexp_neon});
#endif
    const std::vector<fl::Isa> supported = fl::isas_supported();

    int status = 0;
    for (const Entry& e : entries) {
        if (std::find(supported.begin(), supported.end(), e.isa) == supported.end()) continue;
        const Stats main_range = sweep(e.fn, -87.0f, 88.0f);
        print(fl::isa_name(e.isa), "[-87, 88]", main_range);
        // The rest of the range with normal results: [ln FLT_MIN, -87) and (88, ln FLT_MAX].
        const Stats edges = merge(sweep(e.fn, -0x1.5d589ep+6f, std::nextafter(-87.0f, 0.0f)),
                                  sweep(e.fn, std::nextafter(88.0f, 89.0f), 0x1.62e42ep+6f));
        print(fl::isa_name(e.isa), "[-87.3365, -87) + (88, 88.7228]", edges);
        if (main_range.max_ulp > 2 || edges.max_ulp > 2) status = 1;
    }
    return status;
}
