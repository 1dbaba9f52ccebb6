// igemm/avx512.cpp: the indirect GEMM (convolution) micro-kernel, AVX-512 (F).
//
// C (m x n) = init + A (m x ks*kc) * B (ks*kc x n), where row i of A is not stored: it is the
// ks chunks of kc floats at the pointers a[i*ks + t] (t < ks), e.g. the kernel taps of one
// output pixel read in place from the NHWC input (no im2col copy). ISA: AVX-512 F (this file
// alone is compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma). Selected by
// fl::kernels() (KernelTable::igemm) when active_isa() is avx512; the tests call
// fl_igemm_f32_avx512 by name. Contract: see csrc/ukernels/ukernels.h. Every c[i][j] is ONE FMA
// chain, acc = bias[j] (or 0), then acc = fma(a[i*ks + t][p], B[t*kc + p][j], acc) for
// t = 0..ks-1, p = 0..kc-1 in this order - the order of fl_gemm_f32 on the expanded patch row
// and of the scalar and AVX2 kernels, so all give bitwise the same results.
//
// One zmm vector = one 16-wide packed panel. Register tiles (up to 24 zmm accumulators of the
// 32, plus the B vectors and a broadcast):
//   n <= 8         : 12 x 8 in ymm (and m x 8 for the last m < 12 rows) (fl_igemm_f32_avx512)
//   a last vector of 1-8 columns (n = 24, 40 ...) is a ymm register (igemm_tile_avx512, HALF)
//   n <= 16        : 24 x 16 while 24 rows remain (few filters: 24 chains instead of 12)
//   m >= 12        : 12 x 32 (2 B loads + 12 broadcasts per step, 24 accumulators)
//   m = 7..11      : m x 32;  m = 4, 5, 6 : m x 64;  m = 3 : 3 x 64;  m = 2 : 2 x 96;
//   m = 1          : 1 x 128 (8 independent chains)
// so the driver's row blocks are multiples of 12 (KernelTable::igemm_mr). The column tail of
// a strip is one masked store (the panels and the bias are padded to 16, so loads need no
// mask). The row pointers of a tile are reloaded once per chunk t; the kc loop is unrolled by
// 4. The shapes are instantiated from one always-inline function with constant arguments (no
// templates or shared inline code in ISA files, docs/architecture.md §5).
#include <immintrin.h>

#include "../inline.h"
#include "../ukernels.h"

#define FL_IGEMM5_AI FL_KERNEL_AI
#define FL_IGEMM5_UNROLL(n) FL_KERNEL_UNROLL(n)

// One register tile: MR rows x NV vectors of 16 columns (= NV panels), starting at a panel
// boundary. `last` = lanes of vector NV-1 to store (columns beyond are never written). HALF:
// vector NV-1 has at most 8 lanes and is a ymm register (as in gemm/avx512.cpp: a half-empty
// zmm FMA costs a whole one on Zen 4).
FL_IGEMM5_AI void igemm_tile_avx512(const int MR, const int NV, const int HALF, int64_t ks,
                                    int64_t kc, const float* const* a, const float* b, int64_t ps,
                                    const float* bias, float* c, int64_t ldc, __mmask16 last) {
    const int NZ = HALF ? NV - 1 : NV;  // zmm vectors
    __m512 acc[24][8];
    __m256 acch[24];

    if (bias) {
        FL_IGEMM5_UNROLL(8)
        for (int v = 0; v < NZ; ++v) {
            // bias is padded like the panels, so a whole vector is readable.
            const __m512 bv = _mm512_loadu_ps(bias + v * 16);
            FL_IGEMM5_UNROLL(24)
            for (int i = 0; i < MR; ++i) acc[i][v] = bv;
        }
        if (HALF) {
            const __m256 bh = _mm256_loadu_ps(bias + NZ * 16);
            FL_IGEMM5_UNROLL(24)
            for (int i = 0; i < MR; ++i) acch[i] = bh;
        }
    } else {
        FL_IGEMM5_UNROLL(24)
        for (int i = 0; i < MR; ++i) {
            FL_IGEMM5_UNROLL(8)
            for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_setzero_ps();
            if (HALF) acch[i] = _mm256_setzero_ps();
        }
    }

    // Vector v of the tile is panel v; chunk t starts at panel row t*kc.
    const float* bp[8];
    FL_IGEMM5_UNROLL(8)
    for (int v = 0; v < NV; ++v) bp[v] = b + v * ps;

    for (int64_t t = 0; t < ks; ++t) {
        const float* ap[24];
        FL_IGEMM5_UNROLL(24)
        for (int i = 0; i < MR; ++i) ap[i] = a[i * ks + t];
        // Tall tiles load the B row once and broadcast A row by row; wide tiles broadcast the
        // few A values first and stream B vector by vector.
        if (NV <= 2) {
            FL_IGEMM5_UNROLL(4)
            for (int64_t p = 0; p < kc; ++p) {
                __m512 bx[2];
                __m256 bh = _mm256_setzero_ps();
                FL_IGEMM5_UNROLL(2)
                for (int v = 0; v < NZ; ++v) bx[v] = _mm512_loadu_ps(bp[v] + p * 16);
                if (HALF) bh = _mm256_loadu_ps(bp[NZ] + p * 16);
                FL_IGEMM5_UNROLL(24)
                for (int i = 0; i < MR; ++i) {
                    const __m512 ai = _mm512_set1_ps(ap[i][p]);
                    FL_IGEMM5_UNROLL(2)
                    for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bx[v], acc[i][v]);
                    if (HALF) acch[i] = _mm256_fmadd_ps(_mm256_set1_ps(ap[i][p]), bh, acch[i]);
                }
            }
        } else {
            FL_IGEMM5_UNROLL(4)
            for (int64_t p = 0; p < kc; ++p) {
                __m512 ai[6];  // only MR <= 6 rows reach this branch
                FL_IGEMM5_UNROLL(6)
                for (int i = 0; i < MR; ++i) ai[i] = _mm512_set1_ps(ap[i][p]);
                FL_IGEMM5_UNROLL(8)
                for (int v = 0; v < NZ; ++v) {
                    const __m512 bx = _mm512_loadu_ps(bp[v] + p * 16);
                    FL_IGEMM5_UNROLL(6)
                    for (int i = 0; i < MR; ++i) acc[i][v] = _mm512_fmadd_ps(ai[i], bx, acc[i][v]);
                }
                if (HALF) {
                    const __m256 bh = _mm256_loadu_ps(bp[NZ] + p * 16);
                    FL_IGEMM5_UNROLL(6)
                    for (int i = 0; i < MR; ++i)
                        acch[i] = _mm256_fmadd_ps(_mm256_set1_ps(ap[i][p]), bh, acch[i]);
                }
            }
        }
        FL_IGEMM5_UNROLL(8)
        for (int v = 0; v < NV; ++v) bp[v] += kc * 16;
    }

    FL_IGEMM5_UNROLL(24)
    for (int i = 0; i < MR; ++i) {
        FL_IGEMM5_UNROLL(8)
        for (int v = 0; v < NZ; ++v) {
            float* dst = c + i * ldc + v * 16;
            if (v == NV - 1)
                _mm512_mask_storeu_ps(dst, last, acc[i][v]);
            else
                _mm512_storeu_ps(dst, acc[i][v]);
        }
        if (HALF) _mm256_mask_storeu_ps(c + i * ldc + NZ * 16, (__mmask8)last, acch[i]);
    }
}

// The 12-row tiles whose last vector is a ymm (1 or 2 vectors; igemm_rows_avx512 reaches them
// only with MR = 12, NVMAX = 2), out of line, so that the code of the other tiles stays as it
// was without them (fl_igemm_f32_avx512 inlines everything else: HALF copies of every tile
// grew it from 75 to 134 KB and cost the 64-filter conv 2-4 %; these two alone, inlined, to
// 78 KB).
#if defined(_MSC_VER) && !defined(__clang__)
__declspec(noinline)
#else
__attribute__((noinline))
#endif
static void igemm_tile12_half_avx512(int64_t nv, int64_t ks, int64_t kc, const float* const* a,
                                     const float* b, int64_t ps, const float* bias, float* c,
                                     int64_t ldc, __mmask16 last) {
    if (nv == 1)
        igemm_tile_avx512(12, 1, 1, ks, kc, a, b, ps, bias, c, ldc, last);
    else
        igemm_tile_avx512(12, 2, 1, ks, kc, a, b, ps, bias, c, ldc, last);
}

// MR rows, all n columns, in strips of NVMAX panels (NVMAX*16 columns).
FL_IGEMM5_AI void igemm_rows_avx512(const int MR, const int NVMAX, int64_t n, int64_t ks,
                                    int64_t kc, const float* const* a, const float* b, int64_t ps,
                                    const float* bias, float* c, int64_t ldc) {
    const int64_t width = NVMAX * 16;
    for (int64_t j = 0; j < n; j += width) {
        const int64_t rem = n - j < width ? n - j : width;
        const int64_t nv = (rem + 15) / 16;
        const int lanes = (int)(rem - (nv - 1) * 16);  // 1..16
        const __mmask16 last = (__mmask16)(0xFFFFu >> (16 - lanes));
        const float* bj = b + (j / 16) * ps;
        const float* biasj = bias ? bias + j : 0;
        float* cj = c + j;
        // A last vector of at most 8 lanes runs as a ymm (igemm_tile_avx512, HALF) in the
        // 12-row tiles; the short tiles of the last rows keep a masked zmm (HALF copies of
        // every tile made the function larger and the 64-filter 3x3 conv 2-4% slower).
        if (MR == 12 && lanes <= 8) {
            igemm_tile12_half_avx512(nv, ks, kc, a, bj, ps, biasj, cj, ldc, last);
            continue;
        }
#define FL_IGEMM5_TILE_CASE(NVC)                                                           \
    if ((NVC) <= NVMAX && nv == (NVC)) {                                                   \
        igemm_tile_avx512(MR, (NVC) <= NVMAX ? (NVC) : 1, 0, ks, kc, a, bj, ps, biasj, cj, \
                          ldc, last);                                                      \
        continue;                                                                          \
    }
        FL_IGEMM5_TILE_CASE(8)
        FL_IGEMM5_TILE_CASE(7)
        FL_IGEMM5_TILE_CASE(6)
        FL_IGEMM5_TILE_CASE(5)
        FL_IGEMM5_TILE_CASE(4)
        FL_IGEMM5_TILE_CASE(3)
        FL_IGEMM5_TILE_CASE(2)
        FL_IGEMM5_TILE_CASE(1)
#undef FL_IGEMM5_TILE_CASE
    }
}

void fl_igemm_f32_avx512(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                         const float* b, int64_t b_panel_stride, const float* bias, float* c,
                         int64_t ldc) {
    if (n <= 0) return;
    const int64_t ps = b_panel_stride;
    if (n <= 8) {
        // One 8-column ymm vector per row (igemm_tile_avx512 with NV = 1, HALF): on Zen 4 a
        // zmm FMA costs two ymm FMAs, so a half-empty zmm tile ran at half the rate. 12 rows,
        // not 24: 24 row pointers do not fit in the 16 general registers, and the reloads made
        // a 24 x 8 tile slower (4 x 32 x 32 x 3 conv with 8 filters, one thread, Zen 4: 46 us
        // with the zmm tile, 41 us with 24 x 8, 35.5 us with 12 x 8; the AVX2 kernel's 12 x 8
        // 38 us).
        const __mmask16 last = (__mmask16)(0xFFu >> (8 - n));
        while (m >= 12) {
            igemm_tile_avx512(12, 1, 1, ks, kc, a, b, ps, bias, c, ldc, last);
            m -= 12;
            a += 12 * ks;
            c += 12 * ldc;
        }
        switch (m) {
#define FL_IGEMM5_TILE8_CASE(R)                                             \
    case R:                                                                 \
        igemm_tile_avx512(R, 1, 1, ks, kc, a, b, ps, bias, c, ldc, last);   \
        break;
            FL_IGEMM5_TILE8_CASE(1)
            FL_IGEMM5_TILE8_CASE(2)
            FL_IGEMM5_TILE8_CASE(3)
            FL_IGEMM5_TILE8_CASE(4)
            FL_IGEMM5_TILE8_CASE(5)
            FL_IGEMM5_TILE8_CASE(6)
            FL_IGEMM5_TILE8_CASE(7)
            FL_IGEMM5_TILE8_CASE(8)
            FL_IGEMM5_TILE8_CASE(9)
            FL_IGEMM5_TILE8_CASE(10)
            FL_IGEMM5_TILE8_CASE(11)
#undef FL_IGEMM5_TILE8_CASE
            default:
                break;
        }
        return;
    }
    while (m > 0) {
        int64_t rows;
        if (n <= 16 && m >= 24) {
            rows = 24;
            igemm_rows_avx512(24, 1, n, ks, kc, a, b, ps, bias, c, ldc);
        } else if (m >= 12) {
            rows = 12;
            igemm_rows_avx512(12, 2, n, ks, kc, a, b, ps, bias, c, ldc);
        } else {
            rows = m;
            switch (m) {
                case 1:
                    igemm_rows_avx512(1, 8, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 2:
                    igemm_rows_avx512(2, 6, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 3:
                    igemm_rows_avx512(3, 4, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 4:
                    igemm_rows_avx512(4, 4, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 5:
                    igemm_rows_avx512(5, 4, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 6:
                    igemm_rows_avx512(6, 4, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 7:
                    igemm_rows_avx512(7, 2, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 8:
                    igemm_rows_avx512(8, 2, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 9:
                    igemm_rows_avx512(9, 2, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                case 10:
                    igemm_rows_avx512(10, 2, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
                default:
                    igemm_rows_avx512(11, 2, n, ks, kc, a, b, ps, bias, c, ldc);
                    break;
            }
        }
        m -= rows;
        a += rows * ks;
        c += rows * ldc;
    }
}
