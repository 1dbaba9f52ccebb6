// vmath/scalar.cpp: y[i] = exp(x[i]) for float32, one element at a time.
//
// ISA: baseline (no flags beyond the platform default; SSE2 on x86-64). Width: 1 (the compiler
// may auto-vectorize within the baseline ISA). Selected by fl::kernels() when active_isa() is
// scalar: on CPUs without AVX2+FMA, on platforms with no SIMD kernels, or FASTLAYERS_ISA=scalar.
// Same algorithm and special-value behaviour as the AVX2/NEON kernels (exp_scalar.inc).
// Accuracy (fl_exp_ulp, every float in [-87, 88], x86-64): max 1 ULP from the correctly rounded
// float(exp(double(x))), 0.989 ULP from the exact value, 99.19% correctly rounded.
#include "../ukernels.h"

#include "exp_scalar.inc"

void fl_vexp_scalar(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fl_exp_scalar(x[i]);
}
