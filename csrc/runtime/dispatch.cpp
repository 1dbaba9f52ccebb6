// ISA selection and the micro-kernel table.
//
// The choice is made once per process: the best ISA this build has kernels for and this CPU can
// run, optionally capped by FASTLAYERS_ISA (for tests and bug reports). Drivers then call
// through kernels(), whose function pointers never change afterwards.
#include "dispatch.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "../ukernels/ukernels.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

bool isa_runs_here(Isa isa) {
    const CpuFeatures& f = cpu_features();
    switch (isa) {
        case Isa::scalar:
            return true;
        case Isa::avx2:
            return f.avx2 && f.fma;  // both already imply OS ymm support
        case Isa::avx512:
            // F, BW, DQ and VL (Skylake-SP, Zen 4 and later), each already implying OS zmm
            // support; the avx512 files also use AVX2 and FMA instructions.
            return f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
        case Isa::neon:
            return f.neon;
    }
    return false;
}

struct IsaChoice {
    Isa isa = Isa::scalar;
    bool cap_given = false;
    std::string cap;      // raw FASTLAYERS_ISA value
    std::string message;  // why the cap was not honoured
};

IsaChoice choose_isa() {
    IsaChoice c;
    const std::vector<Isa> supported = isas_supported();
    const Isa best = supported.back();  // isas_supported() lists scalar first, best last
    c.isa = best;

    const char* env = std::getenv("FASTLAYERS_ISA");
    if (env == nullptr || env[0] == '\0') return c;
    c.cap_given = true;
    c.cap = env;

    // Case and surrounding blanks are ignored, as for the other FASTLAYERS_* variables.
    std::string lower;
    for (const char* p = env; *p; ++p)
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
    const size_t first = lower.find_first_not_of(" \t\r\n");
    const size_t last = lower.find_last_not_of(" \t\r\n");
    lower = first == std::string::npos ? std::string() : lower.substr(first, last - first + 1);

    bool known = false;
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) {
        if (lower != isa_name(isa)) continue;
        known = true;
        bool ok = false;
        for (Isa s : supported) ok = ok || s == isa;
        if (ok) {
            c.isa = isa;
        } else {
            c.message = std::string("FASTLAYERS_ISA=") + env + ": " + isa_name(isa) +
                        " is not supported by this build or CPU; using " + isa_name(best);
        }
    }
    if (!known) {
        c.message = std::string("FASTLAYERS_ISA=") + env +
                    ": unknown ISA (expected scalar, avx2, avx512 or neon); using " + isa_name(best);
    }
    return c;
}

const IsaChoice& isa_choice() {
    static const IsaChoice choice = choose_isa();
    return choice;
}

KernelTable make_table(Isa isa) {
    KernelTable t;
    t.isa = Isa::scalar;
    t.softmax_rows = fl_softmax_rows_scalar;
    t.vexp = fl_vexp_scalar;
    t.score_prep = fl_score_prep_scalar;  // also on NEON
    t.row_max = fl_row_max_scalar;
    t.exp_shift_sum = fl_exp_shift_sum_scalar;
    t.gemm = fl_gemm_f32_scalar;
    t.gemm_mr = 6;
    t.pack_t16 = fl_pack_t16_scalar;  // also on NEON
    t.gemm_rowb = fl_gemm_rowb_f32_scalar;  // also on NEON (fmaf is one instruction there)
    t.dwconv = fl_dwconv_f32_scalar;  // also on NEON (fmaf is one instruction there)
    t.dwconv_row = fl_dwconv_row_f32_scalar;
    t.dwconv_row_max_ch = 256;
    t.igemm = fl_igemm_f32_scalar;
    t.igemm_mr = 6;
    t.igemm_nr = 16;
#define FL_SET_ACT_SCALAR(name)                                  \
    t.act[static_cast<int>(Act::name)] = fl_act_##name##_scalar; \
    t.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_scalar;
    FL_ACTIVATION_LIST(FL_SET_ACT_SCALAR)
#undef FL_SET_ACT_SCALAR
    t.vsigmoid = fl_vsigmoid_scalar;
    t.vtanh = fl_vtanh_scalar;
    t.lstm_gates = fl_lstm_gates_scalar;
    t.gru_gates = fl_gru_gates_scalar;
    t.dot_rows = fl_dot_rows_f32_scalar;  // also on NEON (fmaf is one instruction there)
    t.col_sum_f64 = fl_col_sum_f64_scalar;  // also on NEON
    t.col_max_f32 = fl_col_max_f32_scalar;
    t.window_mean_f32 = fl_window_mean_f32_scalar;
    t.window_max_f32 = fl_window_max_f32_scalar;  // also on NEON
    t.window_avg_f32 = fl_window_avg_f32_scalar;
    t.row_sumsq_f64 = fl_row_sumsq_f64_scalar;
    t.row_devsq_f64 = fl_row_devsq_f64_scalar;
    t.row_moments_f64 = fl_row_moments_f64_scalar;
    t.row_norm_f32 = fl_row_norm_f32_scalar;
    t.row_scale_f32 = fl_row_scale_f32_scalar;
    t.row_min_magnitude = fl_row_min_magnitude_scalar;
#if defined(FL_HAVE_AVX2)
    // avx512 starts from the avx2 table and replaces the kernels it has its own version of.
    if (isa == Isa::avx2 || isa == Isa::avx512) {
        t.isa = isa;
        t.softmax_rows = fl_softmax_rows_avx2;
        t.vexp = fl_vexp_avx2;
        t.score_prep = fl_score_prep_avx2;
        t.row_max = fl_row_max_avx2;
        t.exp_shift_sum = fl_exp_shift_sum_avx2;
        t.gemm = fl_gemm_f32_avx2;
        t.pack_t16 = fl_pack_t16_avx2;
        t.gemm_rowb = fl_gemm_rowb_f32_avx2;
        t.dwconv = fl_dwconv_f32_avx2;
        t.dwconv_row = fl_dwconv_row_f32_avx2;
        t.dwconv_row_max_ch = 256;
        t.igemm = fl_igemm_f32_avx2;
#define FL_SET_ACT_AVX2(name)                                  \
    t.act[static_cast<int>(Act::name)] = fl_act_##name##_avx2; \
    t.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_avx2;
        FL_ACTIVATION_LIST(FL_SET_ACT_AVX2)
#undef FL_SET_ACT_AVX2
        t.vsigmoid = fl_vsigmoid_avx2;
        t.vtanh = fl_vtanh_avx2;
        t.lstm_gates = fl_lstm_gates_avx2;
        t.gru_gates = fl_gru_gates_avx2;
        t.dot_rows = fl_dot_rows_f32_avx2;
        t.col_sum_f64 = fl_col_sum_f64_avx2;
        t.col_max_f32 = fl_col_max_f32_avx2;
        t.window_mean_f32 = fl_window_mean_f32_avx2;
        t.window_max_f32 = fl_window_max_f32_avx2;  // also on avx512 (not set there)
        t.window_avg_f32 = fl_window_avg_f32_avx2;
        t.row_sumsq_f64 = fl_row_sumsq_f64_avx2;
        t.row_devsq_f64 = fl_row_devsq_f64_avx2;
        t.row_moments_f64 = fl_row_moments_f64_avx2;
        t.row_norm_f32 = fl_row_norm_f32_avx2;
        t.row_scale_f32 = fl_row_scale_f32_avx2;
        t.row_min_magnitude = fl_row_min_magnitude_avx2;
    }
#endif
#if defined(FL_HAVE_AVX512)
    if (isa == Isa::avx512) {
        // Kernels with an avx512 version (the others keep their avx2 one, same bits).
        t.softmax_rows = fl_softmax_rows_avx512;
        t.vexp = fl_vexp_avx512;
        t.score_prep = fl_score_prep_avx512;
        t.row_max = fl_row_max_avx512;
        t.exp_shift_sum = fl_exp_shift_sum_avx512;
#define FL_SET_ACT_AVX512(name)                                  \
    t.act[static_cast<int>(Act::name)] = fl_act_##name##_avx512; \
    t.act_to[static_cast<int>(Act::name)] = fl_act_to_##name##_avx512;
        FL_ACTIVATION_LIST(FL_SET_ACT_AVX512)
#undef FL_SET_ACT_AVX512
        t.vsigmoid = fl_vsigmoid_avx512;
        t.vtanh = fl_vtanh_avx512;
        t.lstm_gates = fl_lstm_gates_avx512;
        t.gru_gates = fl_gru_gates_avx512;
        t.dot_rows = fl_dot_rows_f32_avx512;
        t.gemm = fl_gemm_f32_avx512;
        t.gemm_mr = 14;
        t.gemm_rowb = fl_gemm_rowb_f32_avx512;
        t.pack_t16 = fl_pack_t16_avx512;
        t.igemm = fl_igemm_f32_avx512;
        t.igemm_mr = 12;
        t.igemm_nr = 32;
        t.dwconv = fl_dwconv_f32_avx512;
        t.dwconv_row = fl_dwconv_row_f32_avx512;
        t.dwconv_row_max_ch = 512;
        t.col_sum_f64 = fl_col_sum_f64_avx512;
        t.col_max_f32 = fl_col_max_f32_avx512;
        t.window_mean_f32 = fl_window_mean_f32_avx512;
        t.row_sumsq_f64 = fl_row_sumsq_f64_avx512;
        t.row_devsq_f64 = fl_row_devsq_f64_avx512;
        t.row_moments_f64 = fl_row_moments_f64_avx512;
        t.row_norm_f32 = fl_row_norm_f32_avx512;
        t.row_scale_f32 = fl_row_scale_f32_avx512;
        t.row_min_magnitude = fl_row_min_magnitude_avx512;
    }
#endif
#if defined(FL_HAVE_NEON)
    if (isa == Isa::neon) {
        t.isa = isa;
        t.softmax_rows = fl_softmax_rows_neon;
        t.vexp = fl_vexp_neon;
        t.gemm = fl_gemm_f32_neon;
        // No NEON indirect kernel yet: conv2d expands patches for the NEON GEMM instead of
        // running the scalar igemm.
        t.igemm = nullptr;
#define FL_SET_ACT_NEON(name) t.act[static_cast<int>(Act::name)] = fl_act_##name##_neon;
        FL_ACTIVATION_LIST(FL_SET_ACT_NEON)
#undef FL_SET_ACT_NEON
        // no out-of-place NEON kernels yet: the driver copies, then runs the NEON ones
        for (auto& f : t.act_to) f = nullptr;
        t.vsigmoid = fl_vsigmoid_neon;
        t.vtanh = fl_vtanh_neon;
        t.lstm_gates = nullptr;  // no NEON version: the act kernels, gate by gate
        t.gru_gates = nullptr;
    }
#endif
    return t;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar:
            return "scalar";
        case Isa::avx2:
            return "avx2";
        case Isa::neon:
            return "neon";
        case Isa::avx512:
            return "avx512";
    }
    return "unknown";
}

std::vector<Isa> isas_built() {
    std::vector<Isa> v{Isa::scalar};
#if defined(FL_HAVE_AVX2)
    v.push_back(Isa::avx2);
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back(Isa::avx512);
#endif
#if defined(FL_HAVE_NEON)
    v.push_back(Isa::neon);
#endif
    return v;
}

std::vector<Isa> isas_supported() {
    std::vector<Isa> v;
    for (Isa isa : isas_built())
        if (isa_runs_here(isa)) v.push_back(isa);
    return v;
}

Isa active_isa() { return isa_choice().isa; }

double fma_peak_gflops(Isa isa, double seconds) {
    if (!isa_runs_here(isa)) return 0.0;
    int64_t (*probe)(int64_t, float*) = fl_fma_probe_scalar;
#if defined(FL_HAVE_AVX2)
    if (isa == Isa::avx2) probe = fl_fma_probe_avx2;
#endif
#if defined(FL_HAVE_AVX512)
    if (isa == Isa::avx512) probe = fl_fma_probe_avx512;
#endif
#if defined(FL_HAVE_NEON)
    if (isa == Isa::neon) probe = fl_fma_probe_neon;
#endif
    float sink = 0.0f;
    probe(1000, &sink);  // warm up: power state, code in cache
    // Double the iteration count until one run takes a tenth of the time asked for, then keep
    // the best of the runs that fit in `seconds`.
    int64_t iters = 1000;
    double best = 0.0, spent = 0.0;
    while (spent < seconds) {
        const auto t0 = std::chrono::steady_clock::now();
        const int64_t flops = probe(iters, &sink);
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        spent += dt;
        if (dt > 0) best = std::max(best, static_cast<double>(flops) / dt * 1e-9);
        if (dt < seconds * 0.1) iters *= 2;
    }
    (void)sink;  // written through a pointer by another object file: the probe cannot be elided
    return best;
}

const char* isa_cap_env() {
    const IsaChoice& c = isa_choice();
    return c.cap_given ? c.cap.c_str() : nullptr;
}

const std::string& isa_cap_message() { return isa_choice().message; }

const KernelTable& kernels() {
    static const KernelTable table = make_table(active_isa());
    return table;
}

}  // namespace fl
