// gemm/scalar.cpp: the float32 GEMM micro-kernel, C (m x n) = init + A (m x k) * B (k x n).
//
// ISA: baseline (no extra flags). Selected by fl::kernels() (KernelTable::gemm) when no SIMD
// kernel can run (or FASTLAYERS_ISA=scalar); also the readable reference for the SIMD files.
// Contract: see fl_gemm_f32_scalar in csrc/ukernels/ukernels.h. Tile: one row x one 16-wide
// panel at a time, 16 independent chains.
//
// Every c[i][j] is one fused multiply-add chain in increasing p, exactly as in the SIMD kernels:
// fmaf rounds once, like VFMADD/FMLA, so this kernel gives bitwise the same results as theirs
// (the tests check it). Where the CPU has no FMA instruction fmaf is emulated by libm - slow,
// but this path is a fallback.
#include <math.h>

#include "../ukernels.h"

void fl_gemm_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                        const float* b, int64_t b_panel_stride, const float* bias, int load_c,
                        float* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        const float* ai = a + i * rs_a;
        float* ci = c + i * ldc;
        for (int64_t j0 = 0; j0 < n; j0 += 16) {
            const int64_t nj = n - j0 < 16 ? n - j0 : 16;
            const float* bq = b + (j0 / 16) * b_panel_stride;
            float acc[16];
            for (int64_t jj = 0; jj < nj; ++jj)
                acc[jj] = load_c ? ci[j0 + jj] : (bias ? bias[j0 + jj] : 0.0f);
            for (int64_t p = 0; p < k; ++p) {
                const float av = ai[p * cs_a];
                const float* bp = bq + p * 16;
                for (int64_t jj = 0; jj < nj; ++jj) acc[jj] = fmaf(av, bp[jj], acc[jj]);
            }
            for (int64_t jj = 0; jj < nj; ++jj) ci[j0 + jj] = acc[jj];
        }
    }
}

// Transposing pack (contract in ukernels.h): each source row is read contiguously and lands in
// one column of the panel.
void fl_pack_t16_scalar(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst) {
    for (int64_t i = 0; i < w; ++i) {
        const float* row = src + i * ld;
        for (int64_t p = 0; p < kc; ++p) dst[p * 16 + i] = row[p];
    }
    for (int64_t i = w; i < 16; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * 16 + i] = 0.0f;
}

// GEMM with a row-major B (contract in ukernels.h): the same chains as fl_gemm_f32_scalar.
void fl_gemm_rowb_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                             const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                             int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        float* ci = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) {
            float acc = load_c ? ci[j] : (bias ? bias[j] : 0.0f);
            for (int64_t p = 0; p < k; ++p) acc = fmaf(a[i * lda + p], b[p * ldb + j], acc);
            ci[j] = acc;
        }
    }
}
