// vmath/avx2.cpp: y[i] = exp(x[i]) for float32, 8 lanes (one ymm) per step.
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Width: 8 floats; the last
// n % 8 elements use maskload/maskstore (no access past x[n-1] / y[n-1]). Selected by
// fl::kernels() when active_isa() is avx2 (CPUID AVX2 && FMA && OS ymm support).
//
// Accuracy, measured by csrc/tests/exp_ulp_check.cpp (fl_exp_ulp) over all 2,237,530,113 floats
// x in [-87, 88] against the correctly rounded float(exp(double(x))): max error 1 ULP (ordinal
// distance between floats), 1.014 ULP relative to the exact value; 99.23% of results are the
// correctly rounded float. Also 1 ULP max on the rest of the normal-result range,
// [ln FLT_MIN, -87) and (88, ln FLT_MAX]. (The scalar kernel: 1 ULP max, 0.989 vs exact, 99.19%.)
// Special values: NaN -> NaN, x < -87.3365 (ln FLT_MIN, incl. -inf) -> 0 (no denormals),
// x > 88.7228 (incl. +inf) -> +inf. exp(0) == 1 exactly.
#include "../ukernels.h"

#include "exp_avx2.inc"

void fl_vexp_avx2(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fl_exp_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mask, fl_exp_avx2(_mm256_maskload_ps(x + i, mask)));
    }
}
