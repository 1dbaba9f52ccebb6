// C++ tests of cross-ISA identity of the elementwise families (issue 15): every vmath, softmax
// and gate kernel of every ISA this CPU runs gives the SAME BITS as the scalar kernel (NaN:
// NaN in both, payloads may differ), because each function is one algorithm written with the
// same operations in the same order on every ISA, and every sum runs in one fixed order
// (16 partial sums in lanes j % 16, a fixed tree; docs/architecture.md, cross-ISA identity).
//
// Inputs: a sweep of float bit patterns over the whole float range (every 4099th pattern:
// +-0, denormals, normals, +-inf, NaNs) plus special and branch-point values, at every length
// 0..40 and long ones, at several offsets (every lane position and tail); 16 sentinels on both
// sides of every output buffer must be left intact.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fastlayers/activations.h"
#include "fastlayers/runtime.h"
#include "guarded_buf.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FL_X_HAVE_MXCSR 1
#endif

namespace {

using fl::Act;
using ActFn = void (*)(float*, int64_t);
using VecFn = void (*)(const float*, float*, int64_t);
using LstmFn = void (*)(int64_t, const float*, float*, float*);
using GruFn = void (*)(int64_t, const float*, const float*, const float*, float*);
using SoftmaxFn = void (*)(const float*, float*, int64_t, int64_t, int64_t, int64_t);
using ScorePrepFn = float (*)(float*, int64_t, float, const uint8_t*, int64_t, float, int);
using RowMaxFn = float (*)(const float*, int64_t);
using ExpShiftSumFn = float (*)(float*, int64_t, float, float);

struct EwIsa {
    fl::Isa isa;
    ActFn act[fl::kNumActs];
    VecFn vsigmoid, vtanh, vexp;
    LstmFn lstm;  // nullptr: the ISA has none (the driver applies the act kernels gate by gate)
    GruFn gru;
    SoftmaxFn softmax;
    ScorePrepFn score_prep;
    RowMaxFn row_max;
    ExpShiftSumFn exp_shift_sum;
    // out-of-place activations (fl_act_to_<name>_<isa>); nullptr where the ISA has none (NEON)
    void (*act_to[fl::kNumActs])(const float*, float*, int64_t) = {};
};

std::vector<EwIsa> built() {
    std::vector<EwIsa> v;
    {
        EwIsa s{fl::Isa::scalar,       {},
                fl_vsigmoid_scalar,    fl_vtanh_scalar,
                fl_vexp_scalar,        fl_lstm_gates_scalar,
                fl_gru_gates_scalar,   fl_softmax_rows_scalar,
                fl_score_prep_scalar,  fl_row_max_scalar,
                fl_exp_shift_sum_scalar};
#define FL_X_SCALAR(name)                                         \
    s.act[static_cast<int>(Act::name)] = fl_act_##name##_scalar; \
    s.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_scalar;
        FL_ACTIVATION_LIST(FL_X_SCALAR)
#undef FL_X_SCALAR
        v.push_back(s);
    }
#if defined(FL_HAVE_AVX2)
    {
        EwIsa s{fl::Isa::avx2,       {},
                fl_vsigmoid_avx2,    fl_vtanh_avx2,
                fl_vexp_avx2,        fl_lstm_gates_avx2,
                fl_gru_gates_avx2,   fl_softmax_rows_avx2,
                fl_score_prep_avx2,  fl_row_max_avx2,
                fl_exp_shift_sum_avx2};
#define FL_X_AVX2(name)                                         \
    s.act[static_cast<int>(Act::name)] = fl_act_##name##_avx2; \
    s.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_avx2;
        FL_ACTIVATION_LIST(FL_X_AVX2)
#undef FL_X_AVX2
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_AVX512)
    {
        EwIsa s{fl::Isa::avx512,       {},
                fl_vsigmoid_avx512,    fl_vtanh_avx512,
                fl_vexp_avx512,        fl_lstm_gates_avx512,
                fl_gru_gates_avx512,   fl_softmax_rows_avx512,
                fl_score_prep_avx512,  fl_row_max_avx512,
                fl_exp_shift_sum_avx512};
#define FL_X_AVX512(name)                                         \
    s.act[static_cast<int>(Act::name)] = fl_act_##name##_avx512; \
    s.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_avx512;
        FL_ACTIVATION_LIST(FL_X_AVX512)
#undef FL_X_AVX512
        v.push_back(s);
    }
#endif
#if defined(FL_HAVE_NEON)
    {
        // NEON has no gate or score-row kernels of its own (the table uses the act kernels
        // gate by gate, and the scalar score-row kernels).
        EwIsa s{fl::Isa::neon,         {},
                fl_vsigmoid_neon,      fl_vtanh_neon,
                fl_vexp_neon,          nullptr,
                nullptr,               fl_softmax_rows_neon,
                fl_score_prep_scalar,  fl_row_max_scalar,
                fl_exp_shift_sum_scalar};
#define FL_X_NEON(name) s.act[static_cast<int>(Act::name)] = fl_act_##name##_neon;
        FL_ACTIVATION_LIST(FL_X_NEON)
#undef FL_X_NEON
        v.push_back(s);
    }
#endif
    return v;
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const uint32_t kSentinel = 0x7FC0BEEFu;
const int64_t kPad = 16;

bool same(float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || fltest::float_bits(a) == fltest::float_bits(b);
}

float u2f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Special and branch-point values, then the bit-pattern sweep, then moderate random values.
std::vector<float> sweep_values() {
    std::vector<float> v = {0.0f, -0.0f, kNaN, -kNaN, kInf, -kInf, 1e-40f, -1e-40f,
                            0x1.6a09e6p-1f, -0x1.6a09e6p-1f, 1.5f, -1.5f, 0.34657359f,
                            -0.34657359f, 3.0f, -3.0f, 1.0f, -1.0f, 0.5f, -0.5f, 6.0f, 20.0f,
                            -20.0f, 16.0f, -16.0f, 87.3365f, -87.3365f, -87.3366f, 88.72f, 88.73f,
                            -87.0f, 0x1p30f, -0x1p30f, 1e30f, -1e30f, 3.4e38f, -3.4e38f};
    for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) v.push_back(u2f(static_cast<uint32_t>(u)));
    std::mt19937 rng(15);
    std::uniform_real_distribution<float> d(-30.0f, 30.0f);
    for (int i = 0; i < 100000; ++i) v.push_back(d(rng));
    return v;
}

// Lengths: every tail around 8/16/32 lanes, and one long run.
std::vector<int64_t> lengths() {
    std::vector<int64_t> n;
    for (int64_t i = 0; i <= 40; ++i) n.push_back(i);
    for (int64_t i : {47, 48, 49, 63, 64, 65, 127, 255, 1000, 1023}) n.push_back(i);
    return n;
}

// A buffer with kPad sentinels on both sides.
struct Padded {
    std::vector<float> b;
    explicit Padded(int64_t n) : b(static_cast<size_t>(n + 2 * kPad), u2f(kSentinel)) {}
    float* data() { return b.data() + kPad; }
    bool guards_intact(int64_t n) const {
        for (int64_t i = 0; i < kPad; ++i)
            if (fltest::float_bits(b[i]) != kSentinel ||
                fltest::float_bits(b[kPad + n + i]) != kSentinel)
                return false;
        return true;
    }
};

// FTZ/DAZ on for the scope (the mode the drivers run kernels in: parallel_for chunks), where
// the CPU has such a mode (x86: MXCSR); a no-op elsewhere.
struct FtzDazScope {
#if defined(FL_X_HAVE_MXCSR)
    unsigned saved = _mm_getcsr();
    explicit FtzDazScope(bool on) {
        if (on) _mm_setcsr(saved | 0x8040u);
    }
    ~FtzDazScope() { _mm_setcsr(saved); }
#else
    explicit FtzDazScope(bool) {}
#endif
};

// In-place act / out-of-place vec kernels: the whole sweep in one call, then every length at a
// few offsets; each ISA against scalar, bit for bit; with and without FTZ/DAZ (denormal inputs
// then read as 0: MAXPS and the scalar max must agree on it).
void test_act_identity(const EwIsa& ref, const EwIsa& k, bool ftz) {
    const FtzDazScope mode(ftz);
    const std::vector<float> vals = sweep_values();
    const int64_t total = static_cast<int64_t>(vals.size());
    for (int id = 0; id < fl::kNumActs; ++id) {
        int64_t bad = 0;
        std::vector<float> a = vals, b = vals;
        ref.act[id](a.data(), total);
        k.act[id](b.data(), total);
        for (int64_t i = 0; i < total; ++i) {
            if (!same(a[i], b[i]) && bad++ < 4)
                FLT_CHECK_MSG(false, "%s %s(0x%08x): 0x%08x, scalar 0x%08x (bits)",
                              fl::isa_name(k.isa), fl::act_name(id), fltest::float_bits(vals[i]),
                              fltest::float_bits(b[i]), fltest::float_bits(a[i]));
        }
        for (int64_t n : lengths()) {
            for (int64_t off : {int64_t(0), int64_t(5), int64_t(11), int64_t(1000)}) {
                Padded pa(n), pb(n);
                for (int64_t i = 0; i < n; ++i) pa.data()[i] = pb.data()[i] = vals[off + i];
                ref.act[id](pa.data(), n);
                k.act[id](pb.data(), n);
                FLT_CHECK_MSG(pb.guards_intact(n), "%s %s n=%" PRId64 ": wrote outside [0, n)",
                              fl::isa_name(k.isa), fl::act_name(id), n);
                for (int64_t i = 0; i < n; ++i)
                    if (!same(pa.data()[i], pb.data()[i]) && bad++ < 4)
                        FLT_CHECK_MSG(false, "%s %s n=%" PRId64 " [%" PRId64 "](%a): %a, scalar %a",
                                      fl::isa_name(k.isa), fl::act_name(id), n, i, vals[off + i],
                                      pb.data()[i], pa.data()[i]);
                // out of place (this ISA's and scalar's): the same bits, x left as it was,
                // nothing outside y[0, n) written
                for (const EwIsa* e : {&ref, &k}) {
                    if (e->act_to[id] == nullptr) continue;
                    Padded px(n), py(n);
                    for (int64_t i = 0; i < n; ++i) px.data()[i] = vals[off + i];
                    e->act_to[id](px.data(), py.data(), n);
                    FLT_CHECK_MSG(py.guards_intact(n), "%s %s to n=%" PRId64 ": wrote outside",
                                  fl::isa_name(e->isa), fl::act_name(id), n);
                    for (int64_t i = 0; i < n; ++i)
                        if ((!same(py.data()[i], pa.data()[i]) ||
                             !same(px.data()[i], vals[off + i])) && bad++ < 4)
                            FLT_CHECK_MSG(false, "%s %s to n=%" PRId64 " [%" PRId64 "](%a): %a, "
                                                 "scalar in place %a",
                                          fl::isa_name(e->isa), fl::act_name(id), n, i,
                                          vals[off + i], py.data()[i], pa.data()[i]);
                }
            }
        }
        FLT_CHECK_MSG(bad == 0, "%s %s: %" PRId64 " results differ from scalar",
                      fl::isa_name(k.isa), fl::act_name(id), bad);
    }
}

void test_vec_identity(const EwIsa& ref, const EwIsa& k, bool ftz) {
    const FtzDazScope mode(ftz);
    const std::vector<float> vals = sweep_values();
    const int64_t total = static_cast<int64_t>(vals.size());
    const struct {
        const char* name;
        VecFn r, g;
    } fns[] = {{"vsigmoid", ref.vsigmoid, k.vsigmoid},
               {"vtanh", ref.vtanh, k.vtanh},
               {"vexp", ref.vexp, k.vexp}};
    for (const auto& f : fns) {
        int64_t bad = 0;
        std::vector<float> a(vals.size()), b(vals.size());
        f.r(vals.data(), a.data(), total);
        f.g(vals.data(), b.data(), total);
        for (int64_t i = 0; i < total; ++i)
            if (!same(a[i], b[i]) && bad++ < 4)
                FLT_CHECK_MSG(false, "%s %s(%a): %a, scalar %a", fl::isa_name(k.isa), f.name,
                              vals[i], b[i], a[i]);
        for (int64_t n : lengths()) {
            Padded pa(n), pb(n);
            f.r(vals.data() + 7, pa.data(), n);
            f.g(vals.data() + 7, pb.data(), n);
            FLT_CHECK_MSG(pb.guards_intact(n), "%s %s n=%" PRId64 ": wrote outside [0, n)",
                          fl::isa_name(k.isa), f.name, n);
            for (int64_t i = 0; i < n; ++i)
                if (!same(pa.data()[i], pb.data()[i])) ++bad;
        }
        FLT_CHECK_MSG(bad == 0, "%s %s: %" PRId64 " results differ from scalar",
                      fl::isa_name(k.isa), f.name, bad);
    }
}

// Gate pre-activations: moderate, saturating and special values.
float gate_value(std::mt19937& rng, int kind) {
    std::uniform_real_distribution<float> d(-6.0f, 6.0f);
    switch (kind % 16) {
        case 0:
            return 0.0f;
        case 1:
            return 40.0f;
        case 2:
            return -95.0f;
        default:
            return d(rng);
    }
}

void test_gates_identity(const EwIsa& ref, const EwIsa& k, bool ftz) {
    if (!k.lstm || !k.gru) return;  // no fused kernel on this ISA (checked by test_recurrent)
    const FtzDazScope mode(ftz);
    std::mt19937 rng(7);
    int64_t bad = 0;
    for (int64_t n : lengths()) {
        const int64_t blocks = (n + 15) / 16;
        std::vector<float> z(static_cast<size_t>(64 * blocks)), g(static_cast<size_t>(48 * blocks)),
            x(static_cast<size_t>(48 * blocks)), c0(static_cast<size_t>(n)), hp(static_cast<size_t>(n));
        int kind = 0;
        for (float& v : z) v = gate_value(rng, kind++);
        for (float& v : g) v = gate_value(rng, kind++);
        for (float& v : x) v = gate_value(rng, kind++);
        for (float& v : c0) v = 3.0f * gate_value(rng, kind++);
        for (float& v : hp) v = std::tanh(gate_value(rng, kind++));
        Padded ca(n), cb(n), ha(n), hb(n), ga(n), gb(n);
        for (int64_t j = 0; j < n; ++j) ca.data()[j] = cb.data()[j] = c0[j];
        ref.lstm(n, z.data(), ca.data(), ha.data());
        k.lstm(n, z.data(), cb.data(), hb.data());
        ref.gru(n, g.data(), x.data(), hp.data(), ga.data());
        k.gru(n, g.data(), x.data(), hp.data(), gb.data());
        FLT_CHECK_MSG(cb.guards_intact(n) && hb.guards_intact(n) && gb.guards_intact(n),
                      "%s gates n=%" PRId64 ": wrote outside [0, n)", fl::isa_name(k.isa), n);
        for (int64_t j = 0; j < n; ++j) {
            if (!same(ca.data()[j], cb.data()[j]) || !same(ha.data()[j], hb.data()[j]) ||
                !same(ga.data()[j], gb.data()[j])) {
                if (bad++ < 4)
                    FLT_CHECK_MSG(false, "%s gates n=%" PRId64 " j=%" PRId64 ": c %a/%a h %a/%a gru %a/%a",
                                  fl::isa_name(k.isa), n, j, cb.data()[j], ca.data()[j],
                                  hb.data()[j], ha.data()[j], gb.data()[j], ga.data()[j]);
            }
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s gates: %" PRId64 " results differ from scalar", fl::isa_name(k.isa),
                  bad);
}

// Softmax rows and the attention score-row kernels: rows of random logits of every length,
// with a few rows holding special values; outputs and returned sums/maxima bit for bit.
void test_softmax_identity(const EwIsa& ref, const EwIsa& k, bool ftz) {
    const FtzDazScope mode(ftz);
    std::mt19937 rng(11);
    std::normal_distribution<float> d(0.0f, 4.0f);
    int64_t bad = 0;
    for (int64_t n : lengths()) {
        for (int variant = 0; variant < 4; ++variant) {
            const int64_t rows = 3, ld = n + 3;
            std::vector<float> x(static_cast<size_t>(rows * ld + 1));
            for (float& v : x) v = d(rng) * (variant == 1 ? 10.0f : 1.0f);
            if (variant == 2 && n > 0) {  // specials: -inf (masked), a huge logit, NaN row
                x[0] = -kInf;
                x[static_cast<size_t>(n / 2)] = 80.0f;
                x[static_cast<size_t>(ld + n - 1)] = kNaN;
            }
            if (variant == 3)  // all equal: the sum is n exactly if added in any order
                for (float& v : x) v = 0.25f;
            Padded ya(rows * ld), yb(rows * ld);
            ref.softmax(x.data(), ya.data(), rows, n, ld, ld);
            k.softmax(x.data(), yb.data(), rows, n, ld, ld);
            FLT_CHECK_MSG(yb.guards_intact(rows * ld), "%s softmax n=%" PRId64 ": wrote outside",
                          fl::isa_name(k.isa), n);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < n; ++j)
                    if (!same(ya.data()[r * ld + j], yb.data()[r * ld + j]) && bad++ < 4)
                        FLT_CHECK_MSG(false, "%s softmax n=%" PRId64 " v%d [%" PRId64 ",%" PRId64
                                      "]: %a, scalar %a", fl::isa_name(k.isa), n, variant, r, j,
                                      yb.data()[r * ld + j], ya.data()[r * ld + j]);

            // Score rows: prep (scale, keep mask, causal limit) + max, then exp_shift_sum.
            std::vector<uint8_t> keep(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; ++j) keep[j] = (j * 7 + variant) % 5 != 0;
            for (int mode = 0; mode < 3; ++mode) {
                Padded pa(n), pb(n);
                for (int64_t j = 0; j < n; ++j) pa.data()[j] = pb.data()[j] = x[j];
                float ma, mb;
                if (mode == 0) {
                    ma = ref.row_max(pa.data(), n);
                    mb = k.row_max(pb.data(), n);
                } else {
                    const uint8_t* kp = mode == 1 ? keep.data() : nullptr;
                    const int64_t lim = mode == 1 ? n : n - n / 3;
                    ma = ref.score_prep(pa.data(), n, 0.125f, kp, lim, -1e9f, mode == 2);
                    mb = k.score_prep(pb.data(), n, 0.125f, kp, lim, -1e9f, mode == 2);
                }
                if (!same(ma, mb) && bad++ < 4)
                    FLT_CHECK_MSG(false, "%s row max n=%" PRId64 " mode %d: %a, scalar %a",
                                  fl::isa_name(k.isa), n, mode, mb, ma);
                if (std::isinf(ma) || std::isnan(ma)) continue;
                const float scale = mode == 0 ? 0.125f : 1.0f;
                const float m = mode == 0 ? scale * ma : ma;
                const float sa = ref.exp_shift_sum(pa.data(), n, scale, m);
                const float sb = k.exp_shift_sum(pb.data(), n, scale, m);
                FLT_CHECK_MSG(pb.guards_intact(n), "%s exp_shift_sum n=%" PRId64 ": wrote outside",
                              fl::isa_name(k.isa), n);
                if (!same(sa, sb) && bad++ < 4)
                    FLT_CHECK_MSG(false, "%s exp_shift_sum n=%" PRId64 " mode %d: sum %a, scalar %a",
                                  fl::isa_name(k.isa), n, mode, sb, sa);
                for (int64_t j = 0; j < n; ++j)
                    if (!same(pa.data()[j], pb.data()[j]) && bad++ < 4)
                        FLT_CHECK_MSG(false, "%s exp_shift_sum n=%" PRId64 " [%" PRId64 "]: %a, scalar %a",
                                      fl::isa_name(k.isa), n, j, pb.data()[j], pa.data()[j]);
            }
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s softmax/score rows: %" PRId64 " results differ from scalar",
                  fl::isa_name(k.isa), bad);
}

// The sum order is the documented one: 16 partial sums (j % 16), then the fixed tree. Values
// chosen so that any other order rounds differently: 1 in lane 0, then 2^-24-sized values.
void test_sum_order(const EwIsa& k) {
    for (int64_t n : {int64_t(17), int64_t(33), int64_t(40), int64_t(100)}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) x[j] = std::log(j % 16 == 0 ? 1.0f : 0x1.8p-24f * (1 + j % 3));
        std::vector<float> e(x.size());
        // Expected: the same exps (this ISA's vexp; identical on all ISAs by the test above),
        // summed in the documented order in double-free float arithmetic.
        k.vexp(x.data(), e.data(), n);
        float s[16] = {0};
        for (int64_t j = 0; j < n; ++j) s[j % 16] += e[j];
        float t8[8], t4[4];
        for (int l = 0; l < 8; ++l) t8[l] = s[l] + s[l + 8];
        for (int l = 0; l < 4; ++l) t4[l] = t8[l] + t8[l + 4];
        const float want = (t4[0] + t4[2]) + (t4[1] + t4[3]);
        std::vector<float> y = x;
        const float got = k.exp_shift_sum(y.data(), n, 1.0f, 0.0f);
        FLT_CHECK_MSG(fltest::float_bits(got) == fltest::float_bits(want),
                      "%s exp_shift_sum n=%" PRId64 ": %a, want %a (fixed order)",
                      fl::isa_name(k.isa), n, got, want);
    }
}

// Column reductions (colreduce/<isa>.cpp, the global poolings): every ISA against the chain
// stated in ukernels.h, computed here - double sums of the rows in order, NumPy's maximum
// folded over the rows - bit for bit, at every width 0..70 and wider ones (every block and
// mask shape), rows 1..50 apart by more than the width, with NaN, +-inf, +-0, denormals and
// FLT_MAX among normal values; the entries past the width must stay untouched.
struct ColIsa {
    fl::Isa isa;
    void (*sum)(const float*, int64_t, int64_t, int64_t, double*);
    void (*max)(const float*, int64_t, int64_t, int64_t, float*);
    void (*mean)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, double, float*);
    void (*wmax)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
    void (*wavg)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float, int, float*);
};

std::vector<ColIsa> col_built() {
    std::vector<ColIsa> v{{fl::Isa::scalar, fl_col_sum_f64_scalar, fl_col_max_f32_scalar,
                           fl_window_mean_f32_scalar, fl_window_max_f32_scalar,
                           fl_window_avg_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_col_sum_f64_avx2, fl_col_max_f32_avx2,
                 fl_window_mean_f32_avx2, fl_window_max_f32_avx2, fl_window_avg_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)  // the avx512 table keeps the avx2 window poolings
    v.push_back({fl::Isa::avx512, fl_col_sum_f64_avx512, fl_col_max_f32_avx512,
                 fl_window_mean_f32_avx512, fl_window_max_f32_avx2, fl_window_avg_f32_avx2});
#endif
    return v;
}

void test_colreduce(const ColIsa& k) {
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    // (NaNs of both signs: the maximum keeps the first NaN it meets, bit for bit; the sums'
    // NaN sign is not part of the contract)
    const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-40f, -1e-40f,
                              std::numeric_limits<float>::max(), -kNaN};
    std::vector<int64_t> widths;
    for (int64_t n = 0; n <= 70; ++n) widths.push_back(n);
    for (int64_t n : {127, 128, 129, 255, 256, 300}) widths.push_back(n);
    int64_t bad = 0;
    for (int64_t rows : {1, 2, 3, 7, 50}) {
        for (int64_t n : widths) {
            const int64_t ld = n + 5;
            std::vector<float> x(static_cast<size_t>(rows * ld));
            for (float& v : x) v = dist(rng);
            for (size_t i = 0; i < x.size(); i += 11) x[i] = specials[(i / 11) % 9];
            if (rows == 3) {  // columns of -0, +0 and -1 in every order: ties between zeros
                const float zeros[] = {-0.0f, 0.0f, -1.0f};
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t j = 0; j < n; ++j)
                        x[static_cast<size_t>(r * ld + j)] = zeros[(r + j + j / 3) % 3];
            }
            std::vector<double> acc(static_cast<size_t>(n + 8), 0.5), want_acc(acc);
            std::vector<float> m(static_cast<size_t>(n + 8), -7.0f), want_m(m);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < n; ++j) {
                    const float t = x[static_cast<size_t>(r * ld + j)];
                    want_acc[j] += static_cast<double>(t);
                    const float a = want_m[j];
                    want_m[j] = (a > t || a != a) ? a : t;
                }
            k.sum(x.data(), rows, n, ld, acc.data());
            k.max(x.data(), rows, n, ld, m.data());
            for (int64_t j = 0; j < n + 8; ++j) {
                uint64_t ga, wa;
                std::memcpy(&ga, &acc[j], 8);
                std::memcpy(&wa, &want_acc[j], 8);
                const bool sum_ok = ga == wa || (acc[j] != acc[j] && want_acc[j] != want_acc[j]);
                const bool max_ok = fltest::float_bits(m[j]) == fltest::float_bits(want_m[j]);
                if ((!sum_ok || !max_ok) && bad++ < 8)
                    FLT_CHECK_MSG(false, "%s colreduce rows=%" PRId64 " n=%" PRId64 " [%" PRId64
                                         "]: sum %a (want %a), max %a (want %a)",
                                  fl::isa_name(k.isa), rows, n, j, acc[j], want_acc[j], m[j],
                                  want_m[j]);
            }
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s: %" PRId64 " column results differ", fl::isa_name(k.isa), bad);
}

// The windows (rows x cols) and channel counts of the window kernels' tests: every count
// 0..70 (every block and mask shape) and the wider ones given.
const int64_t kWindowShapes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {3, 3}, {7, 5}, {2, 3}};

std::vector<int64_t> window_widths(std::initializer_list<int64_t> wide) {
    std::vector<int64_t> widths;
    for (int64_t n = 0; n <= 70; ++n) widths.push_back(n);
    widths.insert(widths.end(), wide);
    return widths;
}

// Window means (the adaptive average poolings): every ISA against the chain of ukernels.h
// computed here - each column's rows summed in double from 0, then the columns from 0, one
// division, one rounding to float - bit for bit, for windows of 1-7 rows x 1-5 columns at
// every channel count 0..70 and wider ones, taps apart by more than the channels (the gaps
// hold NaN, which must not leak in), with the same special values as above; outputs past the
// channel count must stay untouched.
void test_window_mean(const ColIsa& k) {
    std::mt19937 rng(11);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-40f, -1e-40f,
                              std::numeric_limits<float>::max()};
    const std::vector<int64_t> widths = window_widths({127, 128, 129, 300, 512});
    int64_t bad = 0;
    for (const auto& shape : kWindowShapes) {
        const int64_t rows = shape[0], cols = shape[1];
        for (int64_t n : widths) {
            const int64_t col_ld = n + 3, row_ld = cols * col_ld + 5;
            std::vector<float> x(static_cast<size_t>(rows * row_ld), kNaN);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t q = 0; q < cols; ++q)
                    for (int64_t j = 0; j < n; ++j) {
                        const size_t i = static_cast<size_t>(r * row_ld + q * col_ld + j);
                        x[i] = i % 13 == 0 ? specials[(i / 13) % 8] : dist(rng);
                    }
            if (rows * cols == 2 && n > 0) {  // all-zero windows of both signs: 0 + -0 = +0
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t q = 0; q < cols; ++q)
                        x[static_cast<size_t>(r * row_ld + q * col_ld)] = -0.0f;
            }
            if (rows == 2 && cols == 2 && n > 0) {
                // The last channel: (2^60 + 1) + (-2^60 + 1) = 0 per column then across, but
                // 1 summed tap by tap: the two sums must be grouped as stated.
                const float taps[2][2] = {{0x1p60f, -0x1p60f}, {1.0f, 1.0f}};
                for (int64_t r = 0; r < 2; ++r)
                    for (int64_t q = 0; q < 2; ++q)
                        x[static_cast<size_t>(r * row_ld + q * col_ld + n - 1)] = taps[r][q];
            }
            if (rows == 3 && cols == 3 && n >= 3) {
                // Three more channels whose results show the order (the review of 18967f2:
                // sums of a few normal floats are exact in double, whatever the order):
                // (2^60, -2^60, 1) down a column (reversed rows give 0, not 1/9), the same
                // along a row (reversed columns), and taps whose mean divided by 9 differs
                // from the product with 1/9 (1.5929412 against 1.592941).
                auto tap = [&](int64_t r, int64_t q, int64_t j) -> float& {
                    return x[static_cast<size_t>(r * row_ld + q * col_ld + j)];
                };
                for (int64_t r = 0; r < 3; ++r)
                    for (int64_t q = 0; q < 3; ++q)
                        tap(r, q, 0) = tap(r, q, 1) = tap(r, q, 2) = 0.0f;
                tap(0, 0, 0) = 0x1p60f, tap(1, 0, 0) = -0x1p60f, tap(2, 0, 0) = 1.0f;
                tap(0, 0, 1) = 0x1p60f, tap(0, 1, 1) = -0x1p60f, tap(0, 2, 1) = 1.0f;
                tap(0, 0, 2) = 0x1.cac45cp+3f, tap(1, 0, 2) = 0x1.4p-22f, tap(2, 0, 2) = 0x1p-49f;
            }
            const double size = static_cast<double>(rows * cols);
            std::vector<float> out(static_cast<size_t>(n + 8), -7.0f), want(out);
            for (int64_t j = 0; j < n; ++j) {
                double acc = 0.0;
                for (int64_t q = 0; q < cols; ++q) {
                    double col = 0.0;
                    for (int64_t r = 0; r < rows; ++r) {
                        const size_t i = static_cast<size_t>(r * row_ld + q * col_ld + j);
                        col += static_cast<double>(x[i]);
                    }
                    acc += col;
                }
                want[j] = static_cast<float>(acc / size);
            }
            k.mean(x.data(), rows, cols, row_ld, col_ld, n, size, out.data());
            for (int64_t j = 0; j < n + 8; ++j) {
                const bool ok = fltest::float_bits(out[j]) == fltest::float_bits(want[j]) ||
                                (out[j] != out[j] && want[j] != want[j]);
                if (!ok && bad++ < 8)
                    FLT_CHECK_MSG(false, "%s window mean %" PRId64 "x%" PRId64 " n=%" PRId64
                                         " [%" PRId64 "]: %a (want %a)",
                                  fl::isa_name(k.isa), rows, cols, n, j, out[j], want[j]);
            }
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s: %" PRId64 " window means differ", fl::isa_name(k.isa), bad);
}

// Row statistics and passes of the normalizations (rownorm/<isa>.cpp): every ISA against the
// order stated in ukernels.h, computed here - element j into lane j % 32, then the fixed tree -
// bit for bit, and the float passes against their formula, at every length 0..100 and longer
// ones (every block and tail shape), with offsets up to 1e4, NaN, +-inf, +-0, denormals and
// FLT_MAX among normal values. The floats past the row are NaN (a read past it would leak
// in) and the outputs past it must stay untouched.
struct RowIsa {
    fl::Isa isa;
    double (*sumsq)(const float*, int64_t);
    double (*devsq)(const float*, int64_t, float, float);
    void (*moments)(const float*, int64_t, float, double*);
    void (*norm)(const float*, int64_t, float, float, float, const float*, const float*, float*);
    void (*scale)(const float*, int64_t, float, const float*, float*);
    float (*min_magnitude)(const float*, int64_t);
};

std::vector<RowIsa> row_built() {
    std::vector<RowIsa> v{{fl::Isa::scalar, fl_row_sumsq_f64_scalar,
                           fl_row_devsq_f64_scalar, fl_row_moments_f64_scalar,
                           fl_row_norm_f32_scalar,
                           fl_row_scale_f32_scalar, fl_row_min_magnitude_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_row_sumsq_f64_avx2, fl_row_devsq_f64_avx2,
                 fl_row_moments_f64_avx2, fl_row_norm_f32_avx2, fl_row_scale_f32_avx2,
                 fl_row_min_magnitude_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_row_sumsq_f64_avx512,
                 fl_row_devsq_f64_avx512, fl_row_moments_f64_avx512,
                 fl_row_norm_f32_avx512, fl_row_scale_f32_avx512,
                 fl_row_min_magnitude_avx512});
#endif
    return v;
}

template <class Term>
double lane_order_sum(const float* x, int64_t n, Term term) {
    double acc[32] = {0.0};
    for (int64_t j = 0; j < n; ++j) acc[j % 32] += term(x[j]);
    for (int w = 16; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}

bool same_double(double a, double b) {
    uint64_t ua, ub;
    std::memcpy(&ua, &a, 8);
    std::memcpy(&ub, &b, 8);
    return ua == ub || (a != a && b != b);
}

bool same_float(float a, float b) {
    return fltest::float_bits(a) == fltest::float_bits(b) || (a != a && b != b);
}

void test_rownorm(const RowIsa& k) {
    std::mt19937 rng(13);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-40f, -1e-40f,
                              std::numeric_limits<float>::max()};
    std::vector<int64_t> widths;
    for (int64_t n = 0; n <= 100; ++n) widths.push_back(n);
    for (int64_t n : {127, 128, 129, 255, 256, 257, 768, 1000}) widths.push_back(n);
    int64_t bad = 0;
    auto fail = [&bad](bool ok) { return !ok && bad++ < 8; };
    for (float offset : {0.0f, 3.0f, 1e4f}) {
        for (bool special : {false, true}) {
            for (int64_t n : widths) {
                std::vector<float> x(static_cast<size_t>(n + 40), kNaN);
                std::vector<float> gamma(x.size(), kNaN), beta(x.size(), kNaN);
                for (int64_t j = 0; j < n; ++j) {
                    x[j] = offset + 2.0f * dist(rng);
                    if (special && j % 7 == 3) x[j] = specials[(j / 7) % 8];
                    gamma[j] = 1.0f + 0.3f * dist(rng);
                    beta[j] = dist(rng);
                }
                const float hi = offset + 0.25f, lo = 1e-6f, f = 0.7f;
                // the moments about a shift: the row's first element (as the driver uses
                // them), and a value far from the row
                const float shift = (n > 0 && (offset != 0.0f || special)) ? x[0] : -5e3f;
                double moments[2] = {-1.0, -1.0};
                k.moments(x.data(), n, shift, moments);
                const double sums[4] = {k.sumsq(x.data(), n), k.devsq(x.data(), n, hi, lo),
                                        moments[0], moments[1]};
                const double want[4] = {
                    lane_order_sum(x.data(), n, [](float v) { return (double)v * (double)v; }),
                    lane_order_sum(x.data(), n, [hi, lo](float v) {
                        const double d = (double)((v - hi) - lo);
                        return d * d;
                    }),
                    lane_order_sum(x.data(), n, [shift](float v) { return (double)v - shift; }),
                    lane_order_sum(x.data(), n, [shift](float v) {
                        const double d = (double)v - (double)shift;
                        return d * d;
                    })};
                // the smallest magnitude that is not 0 or NaN, against the plain float loop,
                // with the smallest subnormal past the row (a read past it would win)
                std::vector<float> xm(x.begin(), x.begin() + n);
                xm.resize(x.size(), 1e-45f);
                float least = kInf;
                for (int64_t j = 0; j < n; ++j) {
                    const float m = std::fabs(xm[j]);
                    if (m != 0.0f && m < least) least = m;
                }
                const float got = k.min_magnitude(xm.data(), n);
                if (fail(same_float(got, least)))
                    FLT_CHECK_MSG(false, "%s min magnitude n=%" PRId64 ": %a, want %a",
                                  fl::isa_name(k.isa), n, got, least);
                for (int i = 0; i < 4; ++i)
                    if (fail(same_double(sums[i], want[i])))
                        FLT_CHECK_MSG(false, "%s rownorm sum %d n=%" PRId64 " offset %g: %a, want %a",
                                      fl::isa_name(k.isa), i, n, offset, sums[i], want[i]);
                for (int form = 0; form < 5; ++form) {
                    // norm: gamma and beta, gamma alone, neither; scale: with and without
                    const float* g = form == 0 || form == 1 ? gamma.data() : nullptr;
                    const float* b = form == 0 ? beta.data() : nullptr;
                    std::vector<float> y(x.size(), -7.0f);
                    if (form < 3) {
                        k.norm(x.data(), n, hi, lo, f, g, b, y.data());
                    } else {
                        k.scale(x.data(), n, f, form == 3 ? gamma.data() : nullptr, y.data());
                    }
                    for (int64_t j = 0; j < n + 40; ++j) {
                        float w = -7.0f;
                        if (j < n && form < 3) {
                            w = ((x[j] - hi) - lo) * (g ? f * g[j] : f);
                            if (b) w = w + b[j];
                        } else if (j < n) {
                            w = form == 3 ? (x[j] * f) * gamma[j] : x[j] * f;
                        }
                        if (fail(same_float(y[j], w)))
                            FLT_CHECK_MSG(false, "%s rownorm pass %d n=%" PRId64 " [%" PRId64
                                                 "]: %a, want %a",
                                          fl::isa_name(k.isa), form, n, j, y[j], w);
                    }
                }
            }
        }
    }
    // Rows of specials alone for the smallest magnitude: all zeros, all NaN (either sign, any
    // payload), +-inf among them (the answer +inf, or the inf itself), at block and tail sizes.
    const uint32_t special_bits[] = {0x00000000u, 0x80000000u, 0x7FC00000u, 0xFFC00000u,
                                     0x7F800001u, 0xFFFFFFFFu, 0x7F800000u, 0xFF800000u};
    for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65, 100}) {
        for (int kinds = 2; kinds <= 8; kinds += 2) {  // the first 2, 4, 6 or 8 patterns
            std::vector<float> xm(static_cast<size_t>(n + 40), 1e-45f);
            float least = kInf;
            for (int64_t j = 0; j < n; ++j) {
                std::memcpy(&xm[j], &special_bits[(j * 5 + n) % kinds], sizeof(float));
                const float m = std::fabs(xm[j]);
                if (m != 0.0f && m < least) least = m;
            }
            const float got = k.min_magnitude(xm.data(), n);
            if (fail(same_float(got, least)))
                FLT_CHECK_MSG(false, "%s min magnitude of specials n=%" PRId64 " kinds %d: %a, "
                                     "want %a", fl::isa_name(k.isa), n, kinds, got, least);
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s: %" PRId64 " rownorm results differ", fl::isa_name(k.isa), bad);
}

}  // namespace

namespace fltest {

// Window poolings (MaxPooling / AveragePooling): every ISA against the chain of ukernels.h
// computed here - the taps in row-major order from tap (0, 0), NumPy's maximum or float32 sums,
// "+ 0" for a padded window, one division - bit for bit, for windows of 1-7 rows x 1-5 columns
// at every channel count 0..70 and wider ones (every block and mask shape), counts that are
// powers of two and not, taps apart by more than the channels (the gaps hold NaN, which must
// not leak in), with NaN, +-inf, +-0 and FLT_MAX among normal values, all-zero windows of both
// signs, and channels whose sums show the order; outputs past the channel count must stay
// untouched. (No denormals: the kernels are called here without FTZ/DAZ, as the chain is.)
void test_window_pool(const ColIsa& k) {
    std::mt19937 rng(13);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, std::numeric_limits<float>::max(),
                              -kNaN};
    const std::vector<int64_t> widths = window_widths({127, 128, 129, 300});
    int64_t bad = 0;
    for (const auto& shape : kWindowShapes) {
        const int64_t rows = shape[0], cols = shape[1];
        for (int64_t n : widths) {
            const int64_t col_ld = n + 3, row_ld = cols * col_ld + 5;
            // The last tap's n channels end at a guard page: a read past them faults.
            GuardedBuf xbuf(static_cast<size_t>((rows - 1) * row_ld + (cols - 1) * col_ld + n));
            float* x = xbuf.data();
            auto tap = [&](int64_t r, int64_t q, int64_t j) -> float& {
                return x[r * row_ld + q * col_ld + j];
            };
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t q = 0; q < cols; ++q)
                    for (int64_t j = 0; j < n; ++j) {
                        const size_t i = static_cast<size_t>(r * row_ld + q * col_ld + j);
                        tap(r, q, j) = i % 13 == 0 ? specials[(i / 13) % 7] : dist(rng);
                    }
            if (n >= 3 && rows * cols >= 3) {
                // Channel 0 all -0 (the sum stays -0 unless padded); channel 1 -0 and +0 in
                // turn (the max's ties take the tap); channel 2 (2^60, -2^60, 1, 0...) in
                // row-major order, whose float32 sum is 1 only in that order.
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t q = 0; q < cols; ++q) {
                        tap(r, q, 0) = -0.0f;
                        tap(r, q, 1) = (r + q) % 2 ? 0.0f : -0.0f;
                        tap(r, q, 2) = 0.0f;
                    }
                const int64_t third = rows * cols >= 3 ? 2 : 1;
                tap(0, 0, 2) = 0x1p60f;
                tap(cols > 1 ? 0 : 1, cols > 1 ? 1 : 0, 2) = -0x1p60f;
                tap(third / cols, third % cols, 2) = 1.0f;
            }
            const float count = static_cast<float>(rows) * static_cast<float>(cols);
            for (int padded = 0; padded < 2; ++padded) {
                std::vector<float> got_max(static_cast<size_t>(n + 8), -7.0f), want_max(got_max);
                std::vector<float> got_avg(got_max), want_avg(got_max);
                for (int64_t j = 0; j < n; ++j) {
                    float m = tap(0, 0, j), sum = tap(0, 0, j);
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t q = r == 0 ? 1 : 0; q < cols; ++q) {
                            const float t = tap(r, q, j);
                            m = (m > t || m != m) ? m : t;
                            sum = sum + t;
                        }
                    if (padded) sum = sum + 0.0f;
                    want_max[j] = m;
                    want_avg[j] = sum / count;
                }
                if (!padded) k.wmax(x, rows, cols, row_ld, col_ld, n, got_max.data());
                else got_max = want_max;  // (the max has no padded form)
                k.wavg(x, rows, cols, row_ld, col_ld, n, count, padded, got_avg.data());
                for (int64_t j = 0; j < n + 8; ++j) {
                    // (the maximum keeps the first NaN it meets, bit for bit; a sum's NaN sign
                    // is not part of the contract)
                    const bool max_ok = fltest::float_bits(got_max[j]) ==
                                        fltest::float_bits(want_max[j]);
                    const bool avg_ok =
                        fltest::float_bits(got_avg[j]) == fltest::float_bits(want_avg[j]) ||
                        (got_avg[j] != got_avg[j] && want_avg[j] != want_avg[j]);
                    if ((!max_ok || !avg_ok) && bad++ < 8)
                        FLT_CHECK_MSG(false, "%s window pool %" PRId64 "x%" PRId64 " n=%" PRId64
                                             " padded=%d [%" PRId64 "]: max %a (want %a), "
                                             "avg %a (want %a)",
                                      fl::isa_name(k.isa), rows, cols, n, padded, j, got_max[j],
                                      want_max[j], got_avg[j], want_avg[j]);
                }
            }
        }
    }
    FLT_CHECK_MSG(bad == 0, "%s: %" PRId64 " window pool results differ", fl::isa_name(k.isa),
                  bad);
}

void register_cross_isa_tests() {
    for (const RowIsa& k : row_built()) {
        if (!isa_supported(k.isa)) continue;  // reported below
        add_case(std::string("rownorm_") + fl::isa_name(k.isa), [k] { test_rownorm(k); });
    }
    for (const ColIsa& k : col_built()) {
        if (!isa_supported(k.isa)) continue;  // reported below
        add_case(std::string("colreduce_") + fl::isa_name(k.isa), [k] { test_colreduce(k); });
        add_case(std::string("window_mean_") + fl::isa_name(k.isa),
                 [k] { test_window_mean(k); });
        add_case(std::string("window_pool_") + fl::isa_name(k.isa),
                 [k] { test_window_pool(k); });
    }
    const std::vector<EwIsa> isas = built();
    const EwIsa ref = isas[0];
    for (const EwIsa& k : isas) {
        const std::string name = fl::isa_name(k.isa);
        if (!isa_supported(k.isa)) {
            std::printf("skip %s cross-ISA identity: not supported by this CPU\n", name.c_str());
            continue;
        }
        add_case("sum_order_" + name, [k] { test_sum_order(k); });
        if (k.isa == fl::Isa::scalar) continue;
        for (bool ftz : {false, true}) {
            const std::string sfx = name + (ftz ? "_ftz" : "");
            add_case("identity_act_" + sfx, [ref, k, ftz] { test_act_identity(ref, k, ftz); });
            add_case("identity_vec_" + sfx, [ref, k, ftz] { test_vec_identity(ref, k, ftz); });
            add_case("identity_gates_" + sfx, [ref, k, ftz] { test_gates_identity(ref, k, ftz); });
            add_case("identity_softmax_" + sfx,
                     [ref, k, ftz] { test_softmax_identity(ref, k, ftz); });
        }
    }
}

}  // namespace fltest
