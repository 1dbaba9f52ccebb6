// vmath/neon.cpp: float32 vector math, 4 lanes (one q register) per step: y[i] = exp(x[i])
// (vexp), the elementwise Keras activations in place (fl_act_<name>_neon: the common ones with
// act_neon.inc, the rare ones with the scalar code) and vsigmoid / vtanh for the LSTM/GRU gates.
//
// ISA: AArch64 Advanced SIMD (baseline on AArch64; this file is only compiled there). Width: 4
// floats; the last n % 4 elements go through a 4-float stack buffer so nothing past x[n-1] /
// y[n-1] is touched. Selected by fl::kernels() when active_isa() is neon (every AArch64 CPU).
// Same algorithm and special values as the AVX2 kernel (exp_neon.inc). Accuracy (fl_exp_ulp, run
// under qemu-aarch64): identical to AVX2, max 1 ULP from the correctly rounded
// float(exp(double(x))) over every float in [-87, 88], 1.014 ULP from the exact value, 99.23%
// correctly rounded.
//
// Activations: the same algorithms as act_avx2.inc, operation for operation (min/max with the x86
// rule, fl_maxps_neon), so the results are the same bits as the scalar, avx2 and avx512 kernels
// (docs/architecture.md, cross-ISA identity; csrc/tests/test_cross_isa.cpp, which runs under
// qemu-aarch64); accuracy as listed in avx2.cpp. The rare ones run the scalar code, which is
// the same algorithm.
#include "../ukernels.h"

#include "exp_neon.inc"

void fl_vexp_neon(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fl_exp_neon(vld1q_f32(x + i)));
    if (i < n) {
        float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t j = 0; j < n - i; ++j) buf[j] = x[i + j];
        vst1q_f32(buf, fl_exp_neon(vld1q_f32(buf)));
        for (int64_t j = 0; j < n - i; ++j) y[i + j] = buf[j];
    }
}

// ---------------------------------------------------------------------------------------------
// Activations: the common ones vectorized (act_neon.inc), 4 lanes per step, the tail through a
// 4-float stack buffer; the rare ones one element at a time with the scalar code
// (act_scalar.inc; NEON is baseline on AArch64, so sharing baseline code is safe here).
// ---------------------------------------------------------------------------------------------

#include "act_neon.inc"
#include "act_scalar.inc"

void fl_act_linear_neon(float*, int64_t) {}

#define FL_NEON_ACT_KERNEL(name)                                                         \
    void fl_act_##name##_neon(float* y, int64_t n) {                                     \
        int64_t i = 0;                                                                   \
        for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fl_##name##_neon(vld1q_f32(y + i))); \
        if (i < n) {                                                                     \
            float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                     \
            for (int64_t j = 0; j < n - i; ++j) buf[j] = y[i + j];                       \
            vst1q_f32(buf, fl_##name##_neon(vld1q_f32(buf)));                            \
            for (int64_t j = 0; j < n - i; ++j) y[i + j] = buf[j];                       \
        }                                                                                \
    }
#define FL_NEON_ACT_SCALAR_KERNEL(name)                                  \
    void fl_act_##name##_neon(float* y, int64_t n) {                     \
        for (int64_t i = 0; i < n; ++i) y[i] = fl_##name##_scalar(y[i]); \
    }
FL_NEON_ACT_KERNEL(relu)
FL_NEON_ACT_KERNEL(relu6)
FL_NEON_ACT_KERNEL(leaky_relu)
FL_NEON_ACT_KERNEL(sigmoid)
FL_NEON_ACT_KERNEL(tanh)
FL_NEON_ACT_KERNEL(gelu)
FL_NEON_ACT_KERNEL(gelu_tanh)
FL_NEON_ACT_KERNEL(silu)
FL_NEON_ACT_KERNEL(elu)
FL_NEON_ACT_KERNEL(selu)
FL_NEON_ACT_KERNEL(softplus)
FL_NEON_ACT_SCALAR_KERNEL(softsign)
FL_NEON_ACT_KERNEL(hard_sigmoid)
FL_NEON_ACT_KERNEL(hard_silu)
FL_NEON_ACT_KERNEL(mish)
FL_NEON_ACT_KERNEL(exponential)
FL_NEON_ACT_KERNEL(celu)
FL_NEON_ACT_KERNEL(log_sigmoid)
FL_NEON_ACT_SCALAR_KERNEL(tanh_shrink)
FL_NEON_ACT_KERNEL(hard_tanh)
FL_NEON_ACT_SCALAR_KERNEL(soft_shrink)
FL_NEON_ACT_SCALAR_KERNEL(hard_shrink)
FL_NEON_ACT_SCALAR_KERNEL(sparse_plus)
FL_NEON_ACT_SCALAR_KERNEL(squareplus)
FL_NEON_ACT_SCALAR_KERNEL(sparse_sigmoid)

void fl_vsigmoid_neon(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fl_sigmoid_neon(vld1q_f32(x + i)));
    if (i < n) {  // same lane math as the body, so a value's result does not depend on its index
        float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t j = 0; j < n - i; ++j) buf[j] = x[i + j];
        vst1q_f32(buf, fl_sigmoid_neon(vld1q_f32(buf)));
        for (int64_t j = 0; j < n - i; ++j) y[i + j] = buf[j];
    }
}

void fl_vtanh_neon(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fl_tanh_neon(vld1q_f32(x + i)));
    if (i < n) {  // same lane math as the body, so a value's result does not depend on its index
        float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t j = 0; j < n - i; ++j) buf[j] = x[i + j];
        vst1q_f32(buf, fl_tanh_neon(vld1q_f32(buf)));
        for (int64_t j = 0; j < n - i; ++j) y[i + j] = buf[j];
    }
}
