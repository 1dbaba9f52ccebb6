// FMA peak probe, AVX-512: 16 independent 16-wide FMA chains in zmm registers, enough to fill two
// 512-bit FMA pipes of latency 4-6 (fl_fma_probe_<isa>, ukernels.h). Selected by
// fl::fma_peak_gflops (csrc/runtime/dispatch.cpp) for the benchmark's "% of peak" column.
#include <immintrin.h>

#include "../ukernels.h"

int64_t fl_fma_probe_avx512(int64_t iters, float* sink) {
    __m512 a[16];
    for (int j = 0; j < 16; ++j) a[j] = _mm512_set1_ps(static_cast<float>(j));
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i) {
        a[0] = _mm512_fmadd_ps(a[0], m, c);
        a[1] = _mm512_fmadd_ps(a[1], m, c);
        a[2] = _mm512_fmadd_ps(a[2], m, c);
        a[3] = _mm512_fmadd_ps(a[3], m, c);
        a[4] = _mm512_fmadd_ps(a[4], m, c);
        a[5] = _mm512_fmadd_ps(a[5], m, c);
        a[6] = _mm512_fmadd_ps(a[6], m, c);
        a[7] = _mm512_fmadd_ps(a[7], m, c);
        a[8] = _mm512_fmadd_ps(a[8], m, c);
        a[9] = _mm512_fmadd_ps(a[9], m, c);
        a[10] = _mm512_fmadd_ps(a[10], m, c);
        a[11] = _mm512_fmadd_ps(a[11], m, c);
        a[12] = _mm512_fmadd_ps(a[12], m, c);
        a[13] = _mm512_fmadd_ps(a[13], m, c);
        a[14] = _mm512_fmadd_ps(a[14], m, c);
        a[15] = _mm512_fmadd_ps(a[15], m, c);
    }
    __m512 s = a[0];
    for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, a[j]);
    float out[16];
    _mm512_storeu_ps(out, s);
    *sink = out[0] + out[15];
    return iters * 16 * 16 * 2;
}
