// vmath/neon.cpp: y[i] = exp(x[i]) for float32, 4 lanes (one q register) per step.
//
// ISA: AArch64 Advanced SIMD (baseline on AArch64; this file is only compiled there). Width: 4
// floats; the last n % 4 elements go through a 4-float stack buffer so nothing past x[n-1] /
// y[n-1] is touched. Selected by fl::kernels() when active_isa() is neon (every AArch64 CPU).
// Same algorithm and special values as the AVX2 kernel (exp_neon.inc). Accuracy (fl_exp_ulp, run
// under qemu-aarch64): identical to AVX2, max 1 ULP from the correctly rounded
// float(exp(double(x))) over every float in [-87, 88], 1.014 ULP from the exact value, 99.23%
// correctly rounded.
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
