// igemm/scalar.cpp: the indirect GEMM (convolution) micro-kernel, portable C++.
//
// ISA: baseline (no extra flags). Selected by fl::kernels() (KernelTable::igemm) when no SIMD
// kernel can run (or FASTLAYERS_ISA=scalar); NEON builds have no igemm in the table yet (conv2d
// then uses the NEON GEMM on expanded patches). Also the readable reference for
// igemm/avx2.cpp. Contract: see fl_igemm_f32_scalar in csrc/ukernels/ukernels.h.
// Tile: one row x one 16-wide panel at a time, 16 independent chains.
//
// Every c[i][j] is one fused multiply-add chain over (t, p) in increasing order, exactly as in
// the AVX2 kernel and as fl_gemm_f32 on the expanded patches: bitwise the same results.
#include <math.h>

#include "../ukernels.h"

void fl_igemm_f32_scalar(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                         const float* b, int64_t b_panel_stride, const float* bias, float* c,
                         int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        const float* const* ai = a + i * ks;
        float* ci = c + i * ldc;
        for (int64_t j0 = 0; j0 < n; j0 += 16) {
            const int64_t nj = n - j0 < 16 ? n - j0 : 16;
            const float* bq = b + (j0 / 16) * b_panel_stride;
            float acc[16];
            for (int64_t jj = 0; jj < nj; ++jj) acc[jj] = bias ? bias[j0 + jj] : 0.0f;
            for (int64_t t = 0; t < ks; ++t) {
                const float* at = ai[t];
                const float* bt = bq + t * kc * 16;
                for (int64_t p = 0; p < kc; ++p) {
                    const float av = at[p];
                    const float* bp = bt + p * 16;
                    for (int64_t jj = 0; jj < nj; ++jj) acc[jj] = fmaf(av, bp[jj], acc[jj]);
                }
            }
            for (int64_t jj = 0; jj < nj; ++jj) ci[j0 + jj] = acc[jj];
        }
    }
}
