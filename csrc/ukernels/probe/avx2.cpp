// FMA peak probe, AVX2+FMA: 12 independent 8-wide FMA chains in ymm registers, enough to fill two
// FMA pipes of latency 4-6 (fl_fma_probe_<isa>, ukernels.h). Selected by fl::fma_peak_gflops
// (csrc/runtime/dispatch.cpp) for the benchmark's "% of peak" column.
#include <immintrin.h>

#include "../ukernels.h"

int64_t fl_fma_probe_avx2(int64_t iters, float* sink) {
    __m256 a[12];
    for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(static_cast<float>(j));
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i) {
        a[0] = _mm256_fmadd_ps(a[0], m, c);
        a[1] = _mm256_fmadd_ps(a[1], m, c);
        a[2] = _mm256_fmadd_ps(a[2], m, c);
        a[3] = _mm256_fmadd_ps(a[3], m, c);
        a[4] = _mm256_fmadd_ps(a[4], m, c);
        a[5] = _mm256_fmadd_ps(a[5], m, c);
        a[6] = _mm256_fmadd_ps(a[6], m, c);
        a[7] = _mm256_fmadd_ps(a[7], m, c);
        a[8] = _mm256_fmadd_ps(a[8], m, c);
        a[9] = _mm256_fmadd_ps(a[9], m, c);
        a[10] = _mm256_fmadd_ps(a[10], m, c);
        a[11] = _mm256_fmadd_ps(a[11], m, c);
    }
    __m256 s = a[0];
    for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    *sink = out[0] + out[7];
    return iters * 12 * 8 * 2;
}
