// vmath/scalar.cpp: float32 vector math, one element at a time: y[i] = exp(x[i]) (vexp), the
// elementwise Keras activations in place (fl_act_<name>_scalar, act_scalar.inc), vsigmoid /
// vtanh out of place and the fused LSTM/GRU gate math.
//
// ISA: baseline (no flags beyond the platform default; SSE2 on x86-64). Width: 1 (the compiler
// may auto-vectorize within the baseline ISA). Selected by fl::kernels() when active_isa() is
// scalar: on CPUs without AVX2+FMA, on platforms with no SIMD kernels, or FASTLAYERS_ISA=scalar.
// ONE algorithm per function on every ISA: exp_scalar.inc / act_scalar.inc are the lane-wise
// twins of the avx2 / avx512 / neon code (fmaf exactly where they use FMA, plain operations
// where they use plain ones, -ffp-contract=off), so every result is the same bits as on those
// ISAs (docs/architecture.md, cross-ISA identity; csrc/tests/test_cross_isa.cpp). Accuracy and
// special values are therefore those measured and listed in avx2.cpp (exp: max 1 ULP; the
// activations: max 4 ULP, e.g. gelu 4, where the former <cmath>/double scalar code had 0-2).
// fmaf is the libm call on a baseline x86-64 build (glibc runs it on the FMA unit where there
// is one); results are the same either way.
#include "../ukernels.h"

#include "exp_scalar.inc"

void fl_vexp_scalar(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fl_exp_scalar(x[i]);
}

// ---------------------------------------------------------------------------------------------
// Activations (act_scalar.inc): in place, one element at a time.
// ---------------------------------------------------------------------------------------------

#include "act_scalar.inc"

void fl_act_linear_scalar(float*, int64_t) {}
void fl_act_to_linear_scalar(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

#define FL_SCALAR_ACT_KERNEL(name)                                             \
    void fl_act_##name##_scalar(float* y, int64_t n) {                         \
        for (int64_t i = 0; i < n; ++i) y[i] = fl_##name##_scalar(y[i]);       \
    }                                                                          \
    void fl_act_to_##name##_scalar(const float* x, float* y, int64_t n) {      \
        for (int64_t i = 0; i < n; ++i) y[i] = fl_##name##_scalar(x[i]);       \
    }
FL_SCALAR_ACT_KERNEL(relu)
FL_SCALAR_ACT_KERNEL(relu6)
FL_SCALAR_ACT_KERNEL(leaky_relu)
FL_SCALAR_ACT_KERNEL(sigmoid)
FL_SCALAR_ACT_KERNEL(tanh)
FL_SCALAR_ACT_KERNEL(gelu)
FL_SCALAR_ACT_KERNEL(gelu_tanh)
FL_SCALAR_ACT_KERNEL(silu)
FL_SCALAR_ACT_KERNEL(elu)
FL_SCALAR_ACT_KERNEL(selu)
FL_SCALAR_ACT_KERNEL(softplus)
FL_SCALAR_ACT_KERNEL(softsign)
FL_SCALAR_ACT_KERNEL(hard_sigmoid)
FL_SCALAR_ACT_KERNEL(hard_silu)
FL_SCALAR_ACT_KERNEL(mish)
FL_SCALAR_ACT_KERNEL(exponential)
FL_SCALAR_ACT_KERNEL(celu)
FL_SCALAR_ACT_KERNEL(log_sigmoid)
FL_SCALAR_ACT_KERNEL(tanh_shrink)
FL_SCALAR_ACT_KERNEL(hard_tanh)
FL_SCALAR_ACT_KERNEL(soft_shrink)
FL_SCALAR_ACT_KERNEL(hard_shrink)
FL_SCALAR_ACT_KERNEL(sparse_plus)
FL_SCALAR_ACT_KERNEL(squareplus)
FL_SCALAR_ACT_KERNEL(sparse_sigmoid)

void fl_vsigmoid_scalar(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fl_sigmoid_scalar(x[i]);
}

void fl_vtanh_scalar(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fl_tanh_scalar(x[i]);
}

// LSTM / GRU gate math on gate-interleaved blocks (contract in vmath.h), one unit at a time with
// the same per-element functions as fl_act_sigmoid_scalar / fl_act_tanh_scalar.
void fl_lstm_gates_scalar(int64_t n, const float* z, float* c, float* h) {
    for (int64_t j = 0; j < n; ++j) {
        const float* zb = z + 64 * (j / 16) + j % 16;
        const float i = fl_sigmoid_scalar(zb[0]);
        const float f = fl_sigmoid_scalar(zb[16]);
        const float g = fl_tanh_scalar(zb[32]);
        const float o = fl_sigmoid_scalar(zb[48]);
        const float fc = f * c[j];
        const float ig = i * g;
        c[j] = fc + ig;
        h[j] = o * fl_tanh_scalar(c[j]);
    }
}

void fl_gru_gates_scalar(int64_t n, const float* g, const float* x, const float* hp, float* h) {
    for (int64_t j = 0; j < n; ++j) {
        const int64_t o = 48 * (j / 16) + j % 16;
        const float zg = fl_sigmoid_scalar(g[o] + x[o]);
        const float r = fl_sigmoid_scalar(g[o + 16] + x[o + 16]);
        const float rg = r * g[o + 32];
        const float e = fl_tanh_scalar(x[o + 32] + rg);
        const float a = zg * hp[j];
        const float b = (1.0f - zg) * e;
        h[j] = a + b;
    }
}
