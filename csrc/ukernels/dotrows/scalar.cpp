// dotrows/scalar.cpp: dot products of rows read in place, C[i][j] = A row i . B row j
// (fl_dot_rows_f32_<isa>, contract and summation order in csrc/ukernels/ukernels.h).
//
// ISA: baseline (no extra flags). Tile: one (row, row) pair at a time, its 16 lane sums in an
// array. Selected by fl::kernels() (KernelTable::dot_rows) when no SIMD kernel can run (or
// FASTLAYERS_ISA=scalar, and on NEON, where fmaf is one instruction); also the readable
// reference of the chain the SIMD files compute: 16 lane sums, lane l taking the elements
// p = l, l + 16, l + 32, ... as one fused-multiply-add chain (lanes past k take fma(0, 0, acc),
// as the masked loads of the SIMD files do), then the tree ((0+8), (4+12), ...) below.
#include <math.h>

#include "../ukernels.h"

static float dot_row_pair_scalar(const float* a, const float* b, int64_t k) {
    float acc[16];
    for (int l = 0; l < 16; ++l) acc[l] = 0.0f;
    int64_t p0 = 0;
    for (; p0 + 16 <= k; p0 += 16)
        for (int l = 0; l < 16; ++l) acc[l] = fmaf(a[p0 + l], b[p0 + l], acc[l]);
    if (p0 < k) {
        for (int l = 0; l < 16; ++l) {
            const int in = p0 + l < k;
            acc[l] = fmaf(in ? a[p0 + l] : 0.0f, in ? b[p0 + l] : 0.0f, acc[l]);
        }
    }
    // The reduction tree: lane l += lane l + 8, then l + 4, l + 2, l + 1 (lower lane first).
    for (int half = 8; half >= 1; half /= 2)
        for (int l = 0; l < half; ++l) acc[l] = acc[l] + acc[l + half];
    return acc[0];
}

void fl_dot_rows_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = dot_row_pair_scalar(a + i * lda, b + j * ldb, k);
}
