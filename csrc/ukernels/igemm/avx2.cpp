// igemm/avx2.cpp: the indirect GEMM (convolution) micro-kernel, AVX2 + FMA.
//
// C (m x n) = init + A (m x ks*kc) * B (ks*kc x n), where row i of A is not stored: it is the
// ks chunks of kc floats at the pointers a[i*ks + t] (t < ks), e.g. the kernel taps of one
// output pixel read in place from the NHWC input (no im2col copy). ISA: AVX2 + FMA (this file
// alone is compiled with -mavx2 -mfma). Selected by fl::kernels() (KernelTable::igemm) when
// active_isa() is avx2; the tests call fl_igemm_f32_avx2 by name. Contract: see
// csrc/ukernels/ukernels.h. Every c[i][j] is ONE FMA chain, acc = bias[j] (or 0), then
// acc = fma(a[i*ks + t][p], B[t*kc + p][j], acc) for t = 0..ks-1, p = 0..kc-1 in this order -
// the order of fl_gemm_f32 on the expanded patch row, so both give bitwise the same results.
//
// Register tiles (as in gemm/avx2.cpp, 12 ymm accumulators where the row count allows):
//   n <= 8      : 12 x 8 while 12 rows remain (few filters, e.g. 8: 12 chains instead of 6)
//   m = 6, 5, 4 : m x 16;  m = 3 : 3 x 32;  m = 2 : 2 x 48;  m = 1 : 1 x 64
// The row pointers of a tile are reloaded once per chunk t; the kc loop is unrolled by 4.
// The shapes are instantiated from one always-inline function with constant arguments (no
// templates or shared inline code in ISA files, docs/architecture.md §5).
#include <immintrin.h>

#include "../inline.h"
#include "../ukernels.h"

#define FL_IGEMM_AI FL_KERNEL_AI
#define FL_IGEMM_UNROLL(n) FL_KERNEL_UNROLL(n)

// Lanes [0, r) set, r in 1..8.
static inline __m256i igemm_lane_mask_avx2(int64_t r) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lane);
}

// One register tile: MR rows x NV vectors of 8 columns, starting at a panel boundary.
// `last` = valid columns of vector NV-1 (1..8); columns beyond it are neither read nor written.
FL_IGEMM_AI void igemm_tile_avx2(const int MR, const int NV, int64_t ks, int64_t kc,
                                 const float* const* a, const float* b, int64_t ps,
                                 const float* bias, float* c, int64_t ldc, int64_t last) {
    __m256 acc[12][8];
    const __m256i mask = igemm_lane_mask_avx2(last);
    const int partial = last != 8;

    if (bias) {
        FL_IGEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            // bias is padded like the panels, so a whole vector is readable.
            const __m256 bv = _mm256_loadu_ps(bias + v * 8);
            FL_IGEMM_UNROLL(12)
            for (int i = 0; i < MR; ++i) acc[i][v] = bv;
        }
    } else {
        FL_IGEMM_UNROLL(12)
        for (int i = 0; i < MR; ++i) {
            FL_IGEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
        }
    }

    // Vector v of the tile is half (v & 1) of panel v / 2; chunk t starts at row t*kc.
    const float* bp[8];
    FL_IGEMM_UNROLL(8)
    for (int v = 0; v < NV; ++v) bp[v] = b + (v >> 1) * ps + (v & 1) * 8;

    for (int64_t t = 0; t < ks; ++t) {
        const float* ap[12];
        FL_IGEMM_UNROLL(12)
        for (int i = 0; i < MR; ++i) ap[i] = a[i * ks + t];
        // The loop orders of gemm/avx2.cpp: tall tiles load the B row once and broadcast A row
        // by row; wide tiles broadcast the few A values first and stream B vector by vector.
        if (NV <= 2) {
            FL_IGEMM_UNROLL(4)
            for (int64_t p = 0; p < kc; ++p) {
                __m256 bx[2];
                FL_IGEMM_UNROLL(2)
                for (int v = 0; v < NV; ++v) bx[v] = _mm256_loadu_ps(bp[v] + p * 16);
                FL_IGEMM_UNROLL(12)
                for (int i = 0; i < MR; ++i) {
                    const __m256 ai = _mm256_broadcast_ss(ap[i] + p);
                    FL_IGEMM_UNROLL(2)
                    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bx[v], acc[i][v]);
                }
            }
        } else {
            FL_IGEMM_UNROLL(4)
            for (int64_t p = 0; p < kc; ++p) {
                __m256 ai[12];  // only MR <= 3 rows reach this branch
                FL_IGEMM_UNROLL(3)
                for (int i = 0; i < MR; ++i) ai[i] = _mm256_broadcast_ss(ap[i] + p);
                FL_IGEMM_UNROLL(8)
                for (int v = 0; v < NV; ++v) {
                    const __m256 bx = _mm256_loadu_ps(bp[v] + p * 16);
                    FL_IGEMM_UNROLL(3)
                    for (int i = 0; i < MR; ++i) acc[i][v] = _mm256_fmadd_ps(ai[i], bx, acc[i][v]);
                }
            }
        }
        FL_IGEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) bp[v] += kc * 16;
    }

    FL_IGEMM_UNROLL(12)
    for (int i = 0; i < MR; ++i) {
        FL_IGEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            float* dst = c + i * ldc + v * 8;
            if (v == NV - 1 && partial)
                _mm256_maskstore_ps(dst, mask, acc[i][v]);
            else
                _mm256_storeu_ps(dst, acc[i][v]);
        }
    }
}

// MR rows, all n columns, in strips of NVMAX vectors (NVMAX*8 columns; a multiple of 16 unless
// NVMAX is 1, which is used only when n <= 8).
FL_IGEMM_AI void igemm_rows_avx2(const int MR, const int NVMAX, int64_t n, int64_t ks, int64_t kc,
                                 const float* const* a, const float* b, int64_t ps,
                                 const float* bias, float* c, int64_t ldc) {
    const int64_t width = NVMAX * 8;
    for (int64_t j = 0; j < n; j += width) {
        const int64_t rem = n - j < width ? n - j : width;
        const int64_t nv = (rem + 7) / 8;
        const int64_t last = rem - (nv - 1) * 8;
        const float* bj = b + (j / 16) * ps;
        const float* biasj = bias ? bias + j : 0;
        float* cj = c + j;
#define FL_IGEMM_TILE_CASE(NVC)                                                                   \
    if ((NVC) <= NVMAX && nv == (NVC)) {                                                          \
        igemm_tile_avx2(MR, (NVC) <= NVMAX ? (NVC) : 1, ks, kc, a, bj, ps, biasj, cj, ldc, last); \
        continue;                                                                                 \
    }
        FL_IGEMM_TILE_CASE(8)
        FL_IGEMM_TILE_CASE(7)
        FL_IGEMM_TILE_CASE(6)
        FL_IGEMM_TILE_CASE(5)
        FL_IGEMM_TILE_CASE(4)
        FL_IGEMM_TILE_CASE(3)
        FL_IGEMM_TILE_CASE(2)
        FL_IGEMM_TILE_CASE(1)
#undef FL_IGEMM_TILE_CASE
    }
}

void fl_igemm_f32_avx2(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                       const float* b, int64_t b_panel_stride, const float* bias, float* c,
                       int64_t ldc) {
    if (n <= 0) return;
    while (m > 0) {
        int64_t rows = m < 6 ? m : 6;
        if (n <= 8 && m >= 12) {
            rows = 12;
            igemm_rows_avx2(12, 1, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
        } else {
            switch (rows) {
                case 1:
                    igemm_rows_avx2(1, 8, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
                case 2:
                    igemm_rows_avx2(2, 6, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
                case 3:
                    igemm_rows_avx2(3, 4, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
                case 4:
                    igemm_rows_avx2(4, 2, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
                case 5:
                    igemm_rows_avx2(5, 2, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
                default:
                    igemm_rows_avx2(6, 2, n, ks, kc, a, b, b_panel_stride, bias, c, ldc);
                    break;
            }
        }
        m -= rows;
        a += rows * ks;
        c += rows * ldc;
    }
}
