// C++ tests of the elementwise activation kernels (csrc/ukernels/vmath/): every activation of
// every ISA this CPU supports against the double references of vmath_reference.h, on a grid of
// special and boundary values at every length 1..33 and 1000 (all lane positions, every tail),
// with sentinels before and after the buffer; vsigmoid/vtanh; the dispatch table; the name
// table; the threaded driver fl::activate.
//
// Tolerance: ULPs from the correctly rounded float of the exact result (per activation, a little
// above what fl_vmath_ulp measured over every float in [-100, 100]); results whose exact value
// is below act_flush_threshold may be flushed to 0, so there the error is absolute.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fastlayers/activations.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "runtime/dispatch.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"
#include "vmath_reference.h"

namespace {

using fl::Act;
using ActFn = void (*)(float*, int64_t);
using VecFn = void (*)(const float*, float*, int64_t);

struct VmathIsa {
    fl::Isa isa;
    ActFn act[fl::kNumActs];
    VecFn vsigmoid;
    VecFn vtanh;
    VecFn vexp;
};

std::vector<VmathIsa> vmath_built() {
    std::vector<VmathIsa> v;
    {
        VmathIsa s{fl::Isa::scalar, {}, fl_vsigmoid_scalar, fl_vtanh_scalar, fl_vexp_scalar};
#define FL_T_SCALAR(name) s.act[static_cast<int>(Act::name)] = fl_act_##name##_scalar;
        FL_ACTIVATION_LIST(FL_T_SCALAR)
#undef FL_T_SCALAR
        v.push_back(s);
    }
#if defined(FL_HAVE_AVX2)
    {
        VmathIsa s{fl::Isa::avx2, {}, fl_vsigmoid_avx2, fl_vtanh_avx2, fl_vexp_avx2};
#define FL_T_AVX2(name) s.act[static_cast<int>(Act::name)] = fl_act_##name##_avx2;
        FL_ACTIVATION_LIST(FL_T_AVX2)
#undef FL_T_AVX2
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_AVX512)
    {
        VmathIsa s{fl::Isa::avx512, {}, fl_vsigmoid_avx512, fl_vtanh_avx512, fl_vexp_avx512};
#define FL_T_AVX512(name) s.act[static_cast<int>(Act::name)] = fl_act_##name##_avx512;
        FL_ACTIVATION_LIST(FL_T_AVX512)
#undef FL_T_AVX512
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_NEON)
    {
        VmathIsa s{fl::Isa::neon, {}, fl_vsigmoid_neon, fl_vtanh_neon, fl_vexp_neon};
#define FL_T_NEON(name) s.act[static_cast<int>(Act::name)] = fl_act_##name##_neon;
        FL_ACTIVATION_LIST(FL_T_NEON)
#undef FL_T_NEON
        v.push_back(s);
    }
#endif
    return v;
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const uint32_t kSentinel = 0x7FC0BEEFu;  // a NaN payload no kernel produces

// The grid of the brief plus each kernel's branch points and a few extremes.
std::vector<float> grid_values() {
    const float pos[] = {1e-7f, 1e-3f, 0.5f, 1.0f, 3.0f, 6.0f, 20.0f, 88.0f, 89.0f, 100.0f, kInf,
                         // branch points: gelu (1/sqrt2), tanh_shrink (1.5), expm1 (ln2/2),
                         // mish clamp (20), exp flush (87.34), gelu's exp flush (13.2)
                         0x1.6a09e6p-1f, 0x1.6a09e4p-1f, 1.5f, 1.4999999f, 0.34657359f, 9.0f,
                         13.25f, 87.3365f, 1e-30f, 1e-40f /* denormal */, 1e30f, 3.4e38f,
                         // softplus(-87) = 1.65e-38 in [FLT_MIN, 2 FLT_MIN) (log1p's u/(2+u)
                         // is a denormal there: it was flushed to 0)
                         87.0f, 86.9f};
    std::vector<float> v = {0.0f, -0.0f, kNaN};
    for (float p : pos) {
        v.push_back(p);
        v.push_back(-p);
    }
    return v;
}

// Allowed ULP error: the measured maximum over every float in [-100, 100] is 4 or less for
// every activation and ISA (avx2.cpp, scalar.cpp); 5 leaves a margin for other libms.
int64_t ulp_tolerance(Act, float) { return 5; }

// got vs exact: NaN iff NaN; tiny exact results in absolute terms (flushing allowed); else ULPs.
bool act_close(Act act, float x, float got, double ref, int64_t* ulp_out) {
    *ulp_out = 0;
    if (std::isnan(ref)) return std::isnan(got);
    if (std::isnan(got)) return false;
    const double thr = fltest::act_flush_threshold(act);
    if (std::fabs(ref) < thr) return std::fabs(static_cast<double>(got) - ref) <= thr;
    *ulp_out = fltest::ulp_diff(got, static_cast<float>(ref));
    return *ulp_out <= ulp_tolerance(act, x);
}

bool same_result(float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || fltest::f2u(a) == fltest::f2u(b);
}

// Every activation on the grid, for every length 1..33 and 1000, the values rotated so that each
// one visits every lane and the masked tail; 8 sentinels before and after the buffer. Each
// result must also be bit-identical to the one the same value gives alone (n = 1), so that a
// result never depends on where a chunk boundary fell.
void test_act_grid(const VmathIsa& k) {
    const std::vector<float> g = grid_values();
    const size_t gn = g.size();
    for (int id = 0; id < fl::kNumActs; ++id) {
        const Act act = static_cast<Act>(id);
        std::vector<float> alone(gn);
        for (size_t i = 0; i < gn; ++i) {
            float v = g[i];
            k.act[id](&v, 1);
            alone[i] = v;
        }
        std::vector<int64_t> lengths;
        for (int64_t n = 1; n <= 33; ++n) lengths.push_back(n);
        lengths.push_back(1000);
        for (int64_t n : lengths) {
            for (size_t rot = 0; rot < (n < 1000 ? gn : 1); rot += (n <= 8 ? 1 : 7)) {
                const int64_t pad = 8;
                std::vector<float> buf(static_cast<size_t>(n + 2 * pad), fltest::u2f(kSentinel));
                std::vector<size_t> src(static_cast<size_t>(n));
                for (int64_t i = 0; i < n; ++i) {
                    src[i] = (static_cast<size_t>(i) + rot) % gn;
                    buf[pad + i] = g[src[i]];
                }
                k.act[id](buf.data() + pad, n);
                for (int64_t i = 0; i < pad; ++i) {
                    FLT_CHECK_MSG(fltest::f2u(buf[i]) == kSentinel &&
                                      fltest::f2u(buf[pad + n + i]) == kSentinel,
                                  "%s %s n=%" PRId64 ": wrote outside [0, n)", fl::isa_name(k.isa),
                                  fl::act_name(id), n);
                }
                for (int64_t i = 0; i < n; ++i) {
                    const float x = g[src[i]];
                    const float got = buf[pad + i];
                    const double ref = fltest::act_reference(act, x);
                    int64_t ulp = 0;
                    FLT_CHECK_MSG(act_close(act, x, got, ref, &ulp),
                                  "%s %s(%.9g) = %.9g, want %.12g (%" PRId64 " ulp)",
                                  fl::isa_name(k.isa), fl::act_name(id), x, got, ref, ulp);
                    FLT_CHECK_MSG(
                        same_result(got, alone[src[i]]),
                        "%s %s(%.9g): %.9g at index %" PRId64 " of %" PRId64 " but %.9g alone",
                        fl::isa_name(k.isa), fl::act_name(id), x, got, i, n, alone[src[i]]);
                }
            }
        }
        // n = 0 and n < 0 touch nothing.
        float one = 1.5f;
        k.act[id](&one, 0);
        k.act[id](&one, -3);
        FLT_CHECK(one == 1.5f);
    }
}

// Exact limits and values the definitions pin down (beyond ULP closeness).
void test_act_exact_values(const VmathIsa& k) {
    struct Case {
        Act act;
        float x, want;
    };
    const Case cases[] = {
        {Act::relu, -kInf, 0.0f},
        {Act::relu, kInf, kInf},
        {Act::relu6, kInf, 6.0f},
        {Act::leaky_relu, -kInf, -kInf},
        {Act::sigmoid, 0.0f, 0.5f},
        {Act::sigmoid, kInf, 1.0f},
        {Act::sigmoid, -kInf, 0.0f},
        {Act::sigmoid, 100.0f, 1.0f},
        {Act::tanh, kInf, 1.0f},
        {Act::tanh, -kInf, -1.0f},
        {Act::tanh, 20.0f, 1.0f},
        {Act::tanh, 0.0f, 0.0f},
        {Act::gelu, kInf, kInf},
        {Act::gelu, -kInf, 0.0f},
        {Act::gelu, 0.0f, 0.0f},
        {Act::gelu, 20.0f, 20.0f},
        {Act::gelu_tanh, kInf, kInf},
        {Act::gelu_tanh, -kInf, 0.0f},
        {Act::silu, -kInf, 0.0f},
        {Act::silu, kInf, kInf},
        {Act::elu, -kInf, -1.0f},
        {Act::elu, kInf, kInf},
        {Act::celu, -kInf, -1.0f},
        {Act::selu, kInf, kInf},
        {Act::softplus, kInf, kInf},
        {Act::softplus, -kInf, 0.0f},
        {Act::softsign, kInf, 1.0f},
        {Act::softsign, -kInf, -1.0f},
        {Act::hard_sigmoid, -3.0f, 0.0f},
        {Act::hard_sigmoid, 3.0f, 1.0f},
        {Act::hard_sigmoid, 0.0f, 0.5f},
        {Act::hard_silu, -kInf, 0.0f},
        {Act::hard_silu, kInf, kInf},
        {Act::mish, -kInf, 0.0f},
        {Act::mish, kInf, kInf},
        {Act::exponential, 0.0f, 1.0f},
        {Act::exponential, -kInf, 0.0f},
        {Act::exponential, kInf, kInf},
        {Act::log_sigmoid, kInf, 0.0f},
        {Act::log_sigmoid, -kInf, -kInf},
        {Act::tanh_shrink, kInf, kInf},
        {Act::hard_tanh, kInf, 1.0f},
        {Act::soft_shrink, 0.25f, 0.0f},
        {Act::soft_shrink, kInf, kInf},
        {Act::hard_shrink, 0.5f, 0.0f},
        {Act::hard_shrink, -0.75f, -0.75f},
        {Act::sparse_plus, -1.0f, 0.0f},
        {Act::sparse_plus, 1.0f, 1.0f},
        {Act::sparse_plus, 0.0f, 0.25f},
        {Act::squareplus, 0.0f, 1.0f},
        {Act::squareplus, kInf, kInf},
        {Act::squareplus, -kInf, 0.0f},
        {Act::squareplus, 1e20f, 1e20f},
        {Act::sparse_sigmoid, kInf, 1.0f},
        {Act::sparse_sigmoid, -kInf, 0.0f},
        {Act::linear, -kInf, -kInf},
    };
    for (const Case& c : cases) {
        float y = c.x;
        k.act[static_cast<int>(c.act)](&y, 1);
        FLT_CHECK_MSG(y == c.want, "%s %s(%g) = %.9g, want %.9g", fl::isa_name(k.isa),
                      fl::act_name(static_cast<int>(c.act)), c.x, y, c.want);
    }
    // Odd functions keep the sign of zero: tanh(+0) = +0, tanh(-0) = -0.
    for (float z : {0.0f, -0.0f}) {
        float y = z;
        k.act[static_cast<int>(Act::tanh)](&y, 1);
        FLT_CHECK_MSG(fltest::f2u(y) == fltest::f2u(z), "%s tanh(%g) has the wrong sign",
                      fl::isa_name(k.isa), z);
    }
    // NaN in, NaN out, for every activation, whatever the sign and payload.
    const float nans[] = {kNaN, -kNaN, fltest::u2f(0x7FA00001u), fltest::u2f(0xFFC12345u)};
    for (int id = 0; id < fl::kNumActs; ++id) {
        for (float v : nans) {
            float y[3] = {v, v, v};
            k.act[id](y, 3);
            FLT_CHECK_MSG(std::isnan(y[0]) && std::isnan(y[2]), "%s %s(NaN) = %.9g",
                          fl::isa_name(k.isa), fl::act_name(id), y[0]);
        }
    }
}

// Random values, uniform on [-30, 30] and log-uniform in magnitude on [1e-8, 1e3].
void test_act_random(const VmathIsa& k) {
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> uni(-30.0f, 30.0f), lg(-8.0f, 3.0f);
    std::vector<float> x(4099);
    for (size_t i = 0; i < x.size(); ++i) {
        const float mag = std::pow(10.0f, lg(rng));
        x[i] = (i % 2) ? uni(rng) : ((i % 4) ? mag : -mag);
    }
    for (int id = 0; id < fl::kNumActs; ++id) {
        const Act act = static_cast<Act>(id);
        std::vector<float> y = x;
        k.act[id](y.data(), static_cast<int64_t>(y.size()));
        int failures = 0;
        for (size_t i = 0; i < x.size() && failures < 4; ++i) {
            const double ref = fltest::act_reference(act, x[i]);
            int64_t ulp = 0;
            if (!act_close(act, x[i], y[i], ref, &ulp)) {
                ++failures;
                FLT_CHECK_MSG(false, "%s %s(%.9g) = %.9g, want %.12g (%" PRId64 " ulp)",
                              fl::isa_name(k.isa), fl::act_name(id), x[i], y[i], ref, ulp);
            }
        }
    }
}

// vsigmoid / vtanh: out of place (input untouched, sentinels kept) and in place, bit-identical
// to the in-place activation kernels.
void test_vsigmoid_vtanh(const VmathIsa& k) {
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> dist(-40.0f, 40.0f);
    for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 1000}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = dist(rng);
        x[0] = (n % 2) ? kNaN : -kInf;
        for (int which = 0; which < 2; ++which) {
            const VecFn fn = which == 0 ? k.vsigmoid : k.vtanh;
            const int id = static_cast<int>(which == 0 ? Act::sigmoid : Act::tanh);
            std::vector<float> want = x;
            k.act[id](want.data(), n);
            const std::vector<float> x_copy = x;
            std::vector<float> y(static_cast<size_t>(n + 4), fltest::u2f(kSentinel));
            fn(x.data(), y.data(), n);
            FLT_CHECK(std::memcmp(x.data(), x_copy.data(), x.size() * sizeof(float)) == 0);
            for (int64_t i = 0; i < n; ++i)
                FLT_CHECK_MSG(same_result(y[i], want[i]), "%s %s n=%" PRId64 " [%" PRId64 "]",
                              fl::isa_name(k.isa), which == 0 ? "vsigmoid" : "vtanh", n, i);
            for (int64_t i = n; i < n + 4; ++i) FLT_CHECK(fltest::f2u(y[i]) == kSentinel);
            std::vector<float> z = x;
            fn(z.data(), z.data(), n);
            for (int64_t i = 0; i < n; ++i) FLT_CHECK(same_result(z[i], want[i]));
        }
    }
}

// sigmoid = (x < 0 ? e : 1) / (1 + e), e = exp(-|x|): the kernels take e from the exp for
// arguments <= 0 (fl_exp_nonpos_<isa>, fewer operations), which must give the bits of the full
// exp (fl_vexp_<isa>) there. Every 4099th float bit pattern, both signs, and special values.
void test_sigmoid_matches_full_exp(const VmathIsa& k) {
    std::vector<float> x;
    for (uint64_t u = 0; u <= 0xFFFFFFFFu; u += 4099) x.push_back(fltest::u2f(uint32_t(u)));
    for (float v : {0.0f, -0.0f, kInf, -kInf, kNaN, 87.3365f, -87.3365f, 87.34f, -87.34f,
                    88.8f, -88.8f, 1e-30f, -1e-30f, std::numeric_limits<float>::max(),
                    std::numeric_limits<float>::lowest(), std::numeric_limits<float>::min()})
        x.push_back(v);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<float> neg(x.size()), e(x.size());
    for (size_t i = 0; i < x.size(); ++i) neg[i] = -std::fabs(x[i]);
    k.vexp(neg.data(), e.data(), n);
    std::vector<float> got = x;
    k.act[static_cast<int>(Act::sigmoid)](got.data(), n);
    int64_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const float num = std::signbit(x[i]) ? e[i] : 1.0f;
        const float want = num / (1.0f + e[i]);
        if (!same_result(got[i], want) && bad++ < 8)
            FLT_CHECK_MSG(false, "%s sigmoid(%a) = %a, from fl_vexp %a", fl::isa_name(k.isa),
                          x[i], got[i], want);
    }
    FLT_CHECK_MSG(bad == 0, "%s: %" PRId64 " of %" PRId64 " differ", fl::isa_name(k.isa), bad, n);
}

void test_act_names() {
    FLT_CHECK(fl::kNumActs == 26);
    for (int i = 0; i < fl::kNumActs; ++i) {
        FLT_CHECK(fl::act_name(i) != nullptr);
        FLT_CHECK_MSG(fl::act_id(fl::act_name(i)) == i, "act_id(act_name(%d))", i);
    }
    FLT_CHECK(fl::act_name(-1) == nullptr && fl::act_name(fl::kNumActs) == nullptr);
    FLT_CHECK(fl::act_id("linear") == 0 && fl::act_id("relu") == 1);
    FLT_CHECK(fl::act_id("sparse_sigmoid") == 25);
    FLT_CHECK(fl::act_id("swish") == static_cast<int>(Act::silu));
    FLT_CHECK(fl::act_id("hard_swish") == static_cast<int>(Act::hard_silu));
    FLT_CHECK(fl::act_id("softmax") == -1 && fl::act_id("Relu") == -1 && fl::act_id("") == -1);
    FLT_CHECK(fl::act_id(nullptr) == -1);
    FLT_CHECK(std::string(fl::act_alias_name(0)) == "swish" && fl::act_alias_name(2) == nullptr);
}

void test_act_dispatch_table() {
    const fl::KernelTable& t = fl::kernels();
    for (const VmathIsa& k : vmath_built()) {
        if (k.isa != t.isa) continue;
        for (int i = 0; i < fl::kNumActs; ++i)
            FLT_CHECK_MSG(t.act[i] == k.act[i], "act[%d] is not the %s kernel", i,
                          fl::isa_name(k.isa));
        FLT_CHECK(t.vsigmoid == k.vsigmoid && t.vtanh == k.vtanh);
    }
}

// The driver: out of place and in place equal the active ISA's kernel, for any thread count.
void test_activate_driver() {
    const int saved = fl::num_threads();
    const int64_t n = 100003;
    std::vector<float> x(static_cast<size_t>(n));
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-12.0f, 12.0f);
    for (float& v : x) v = dist(rng);
    for (int id = 0; id < fl::kNumActs; ++id) {
        // The driver's chunks run with FTZ/DAZ on (parallel_for), so the expected values are
        // computed that way too: one chunk, on this thread.
        std::vector<float> want = x;
        fl::parallel_for(
            n, n, [&](int64_t b, int64_t e) { fl::kernels().act[id](want.data() + b, e - b); });
        for (int threads : {1, 2, 3}) {
            fl::set_num_threads(threads);
            std::vector<float> y(static_cast<size_t>(n) + 1, fltest::u2f(kSentinel));
            fl::activate(x.data(), y.data(), n, static_cast<Act>(id));
            bool same = fltest::f2u(y[n]) == kSentinel;
            for (int64_t i = 0; i < n && same; ++i) same = same_result(y[i], want[i]);
            FLT_CHECK_MSG(same, "activate %s, %d threads, out of place", fl::act_name(id), threads);
            std::vector<float> z = x;
            fl::activate(z.data(), z.data(), n, static_cast<Act>(id));
            same = true;
            for (int64_t i = 0; i < n && same; ++i) same = same_result(z[i], want[i]);
            FLT_CHECK_MSG(same, "activate %s, %d threads, in place", fl::act_name(id), threads);
        }
    }
    fl::activate(x.data(), x.data(), 0, Act::relu);  // no-op
    fl::set_num_threads(saved);
}

}  // namespace

namespace fltest {

void register_vmath_tests() {
    for (const VmathIsa& k : vmath_built()) {
        const std::string isa = fl::isa_name(k.isa);
        if (!fltest::isa_supported(k.isa)) continue;  // test_main prints the skip
        add_case("vmath_act_grid_" + isa, [k] { test_act_grid(k); });
        add_case("vmath_act_exact_values_" + isa, [k] { test_act_exact_values(k); });
        add_case("vmath_act_random_" + isa, [k] { test_act_random(k); });
        add_case("vmath_vsigmoid_vtanh_" + isa, [k] { test_vsigmoid_vtanh(k); });
        add_case("vmath_sigmoid_matches_full_exp_" + isa,
                 [k] { test_sigmoid_matches_full_exp(k); });
    }
    add_case("vmath_act_names", test_act_names);
    add_case("vmath_act_dispatch_table", test_act_dispatch_table);
    add_case("vmath_activate_driver", test_activate_driver);
}

}  // namespace fltest
