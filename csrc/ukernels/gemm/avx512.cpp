// gemm/avx512.cpp: the float32 GEMM micro-kernels for AVX-512: the packed-B kernel
// (fl_gemm_f32_avx512), the row-major-B kernel for few rows (fl_gemm_rowb_f32_avx512) and the
// transposing panel pack (fl_pack_t16_avx512).
//
// ISA: AVX-512 F/BW/DQ/VL (this file alone is compiled with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx2 -mfma). Selected by fl::kernels() (KernelTable::gemm, gemm_rowb, pack_t16;
// csrc/runtime/dispatch.cpp) when active_isa() is avx512; the tests call the functions by name.
// Contracts (operand layouts, summation order, what may be read and written) are in
// csrc/ukernels/ukernels.h next to the declarations; in short, for the packed kernel:
//   A   a[i*rs_a + p*cs_a]: row-major activations (rs_a = lda, cs_a = 1) or a packed A
//       micro-panel (rs_a = 1, cs_a = its row count); only elements i < m, p < k are read.
//   B   packed 16-wide panels, K-major: column j at b[(j/16)*b_panel_stride + p*16 + j%16] -
//       one zmm register is exactly one panel row, so a tile of NV vectors reads NV panels.
//   C   c[i*ldc + j]; only i < m, j < n is read (load_c) or written. The N tail uses k-masked
//       loads and stores (masked-off lanes are neither read nor written, and cannot fault).
//   every c[i][j] is ONE FMA chain: acc = init (C if load_c, else bias[j], else 0), then
//   acc = fma(a[i][p], b[p][j], acc) for p = 0, 1, ..., k-1 - the chain of the scalar and AVX2
//   kernels, so the results are bitwise theirs.
//
// Register tiles (rows x columns; accumulators + B vectors + 1 broadcast <= 32 zmm):
//   m = 10..14 : m x 32   (2 panels; 14 x 32 = 28 accumulators + 2 B + 1 A, the main tile)
//   m = 7..9   : m x 48   (3 panels, 21..27 accumulators)
//   m = 3..6   : m x 64   (4 panels, 12..24 accumulators)
//   m = 2      : 2 x 96   (6 panels, 12 accumulators)
//   m = 1      : 1 x 64   (4 panels, 4 chains: a single row is bound by streaming B, and 4
//                panel streams ran (1, 784) x (784, 512) at 47-50 GFLOP/s against 44 with 8
//                streams of a 1 x 128 tile and 47 for the AVX2 kernel)
//   a last vector of 1-8 columns is a ymm register (gemm_tile_avx512, HALF)
// Larger m is cut into blocks of 14 rows (of 7 when rows of A read in place are 4 KiB apart,
// see fl_gemm_f32_avx512); a remainder that would leave a block of fewer than 6 rows is split
// evenly instead (15 -> 8 + 7), so no block streams B for a single row. The k loop is unrolled
// by 4; a packed A (rs_a == 1) gets its own instantiation with constant offsets.
// The C tile of the next strip is prefetched before each tile (in the GEMM driver C comes from
// L3 or memory between K blocks): 1024^3 on one core 175-183 -> 188-193 GFLOP/s.
//
// The shapes are instantiated from one always-inline function with constant arguments (not a
// template: ISA files hold no shared inline code, see docs/architecture.md).
#include <immintrin.h>

#include "../inline.h"
#include "../ukernels.h"
#include "rowb_band.h"

#define FL_G512_AI FL_KERNEL_AI
#define FL_G512_UNROLL(n) FL_KERNEL_UNROLL(n)

// Rows of the main register tile.
#define FL_G512_MR 14

// Lanes [0, r) set, r in 0..16.
static inline __mmask16 gemm_lane_mask_avx512(int64_t r) {
    return (__mmask16)((1u << (unsigned)r) - 1u);
}

// One register tile: MR rows x NV vectors (= NV panels of 16 columns), starting at a panel
// boundary. `mask` = valid lanes of vector NV-1 (non-zero); other lanes of it are neither read
// nor written. RS1: rs_a == 1 (packed A), the row offsets become constants. HALF: vector NV-1
// has at most 8 lanes and is a ymm register (the first half of its panel). On Zen 4 a zmm FMA
// costs two ymm FMAs, so a half-empty zmm ran at half the rate (one core: dense 4096 x 512 -> 8
// 617 us against 461 for the AVX2 kernel, 391-423 with the ymm; 512 x 512 -> 24 165 -> 125 us,
// AVX2 141; -> 40 and -> 56 1.11x and 1.15x); full-width cores run both at the same rate. Same
// chains either way.
FL_G512_AI void gemm_tile_avx512(const int MR, const int NV, const int HALF, const int RS1,
                                 int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                 const float* b, int64_t ps, const float* bias, int load_c,
                                 float* c, int64_t ldc, __mmask16 mask) {
    const int NZ = HALF ? NV - 1 : NV;  // zmm vectors
    __m512 acc[14][8];
    __m256 acch[14];
    const int partial = mask != (__mmask16)0xFFFF;
    const __mmask8 mask8 = (__mmask8)mask;
    const int64_t rs = RS1 ? 1 : rs_a;

    // Chain start: C (continuing a K block), the bias row, or 0.
    if (load_c) {
        FL_G512_UNROLL(14)
        for (int i = 0; i < MR; ++i) {
            FL_G512_UNROLL(8)
            for (int v = 0; v < NZ; ++v) {
                const float* src = c + i * ldc + v * 16;
                acc[i][v] = (v == NV - 1 && partial) ? _mm512_maskz_loadu_ps(mask, src)
                                                     : _mm512_loadu_ps(src);
            }
            if (HALF) acch[i] = _mm256_maskz_loadu_ps(mask8, c + i * ldc + NZ * 16);
        }
    } else if (bias) {
        FL_G512_UNROLL(8)
        for (int v = 0; v < NZ; ++v) {
            // bias is padded like the panels, so a whole vector is readable.
            const __m512 bv = _mm512_loadu_ps(bias + v * 16);
            FL_G512_UNROLL(14)
            for (int i = 0; i < MR; ++i) acc[i][v] = bv;
        }
        if (HALF) {
            const __m256 bh = _mm256_loadu_ps(bias + NZ * 16);
            FL_G512_UNROLL(14)
            for (int i = 0; i < MR; ++i) acch[i] = bh;
        }
    } else {
        FL_G512_UNROLL(14)
        for (int i = 0; i < MR; ++i) {
            FL_G512_UNROLL(8)
            for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_setzero_ps();
            if (HALF) acch[i] = _mm256_setzero_ps();
        }
    }

    const float* bp[8];
    FL_G512_UNROLL(8)
    for (int v = 0; v < NV; ++v) bp[v] = b + v * ps;

    // The B row of the tile is loaded once, then A is broadcast row by row (MR*NV accumulators
    // + NV B vectors + 1 broadcast <= 32 registers for every shape above).
    const float* ap = a;
    FL_G512_UNROLL(4)
    for (int64_t p = 0; p < k; ++p) {
        __m512 bx[8];
        __m256 bh = _mm256_setzero_ps();
        FL_G512_UNROLL(8)
        for (int v = 0; v < NZ; ++v) bx[v] = _mm512_loadu_ps(bp[v] + p * 16);
        if (HALF) bh = _mm256_loadu_ps(bp[NZ] + p * 16);
        FL_G512_UNROLL(14)
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(ap[i * rs]);
            FL_G512_UNROLL(8)
            for (int v = 0; v < NZ; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bx[v], acc[i][v]);
            // Its own broadcast: GCC 12 turns _mm512_castps512_ps256(ai) into a vextractf64x4
            // (n = 8: 394 -> 720 us), a second load of the same float costs nothing here.
            if (HALF) acch[i] = _mm256_fmadd_ps(_mm256_set1_ps(ap[i * rs]), bh, acch[i]);
        }
        ap += cs_a;
    }

    FL_G512_UNROLL(14)
    for (int i = 0; i < MR; ++i) {
        FL_G512_UNROLL(8)
        for (int v = 0; v < NZ; ++v) {
            float* dst = c + i * ldc + v * 16;
            if (v == NV - 1 && partial)
                _mm512_mask_storeu_ps(dst, mask, acc[i][v]);
            else
                _mm512_storeu_ps(dst, acc[i][v]);
        }
        if (HALF) _mm256_mask_storeu_ps(c + i * ldc + NZ * 16, mask8, acch[i]);
    }
}

// MR rows, all n columns, in strips of NVMAX panels.
FL_G512_AI void gemm_rows_avx512(const int MR, const int NVMAX, const int RS1, int64_t n,
                                 int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                 const float* b, int64_t ps, const float* bias, int load_c,
                                 float* c, int64_t ldc) {
    const int64_t width = NVMAX * 16;
    for (int64_t j = 0; j < n; j += width) {
        const int64_t rem = n - j < width ? n - j : width;
        const int64_t nv = (rem + 15) / 16;
        const __mmask16 mask = gemm_lane_mask_avx512(rem - (nv - 1) * 16);
        const float* bj = b + (j / 16) * ps;
        const float* biasj = bias ? bias + j : 0;
        float* cj = c + j;
        // The C tile of the next strip, whose first touch would otherwise stall the start of
        // that tile (C of a large GEMM sits in L3 or memory between K blocks).
        if (j + width < n) {
            const float* cn = cj + width;
            FL_G512_UNROLL(14)
            for (int i = 0; i < MR; ++i) {
                FL_G512_UNROLL(8)
                for (int v = 0; v < NVMAX; ++v)
                    _mm_prefetch((const char*)(cn + i * ldc + v * 16), _MM_HINT_T0);
            }
        }
        // A last vector of at most 8 lanes runs as a ymm (gemm_tile_avx512, HALF).
        const int half = rem - (nv - 1) * 16 <= 8;
#define FL_G512_TILE_CASE(NVC)                                                             \
    if ((NVC) <= NVMAX && nv == (NVC)) {                                                   \
        if (half)                                                                          \
            gemm_tile_avx512(MR, (NVC) <= NVMAX ? (NVC) : 1, 1, RS1, k, a, rs_a, cs_a, bj, \
                             ps, biasj, load_c, cj, ldc, mask);                            \
        else                                                                               \
            gemm_tile_avx512(MR, (NVC) <= NVMAX ? (NVC) : 1, 0, RS1, k, a, rs_a, cs_a, bj, \
                             ps, biasj, load_c, cj, ldc, mask);                            \
        continue;                                                                          \
    }
        FL_G512_TILE_CASE(8)
        FL_G512_TILE_CASE(7)
        FL_G512_TILE_CASE(6)
        FL_G512_TILE_CASE(5)
        FL_G512_TILE_CASE(4)
        FL_G512_TILE_CASE(3)
        FL_G512_TILE_CASE(2)
        FL_G512_TILE_CASE(1)
#undef FL_G512_TILE_CASE
    }
}

// One block of `rows` (1..14) rows with the widest tile for that row count.
FL_G512_AI void gemm_block_avx512(const int RS1, int64_t rows, int64_t n, int64_t k,
                                  const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                                  int64_t ps, const float* bias, int load_c, float* c,
                                  int64_t ldc) {
#define FL_G512_ROWS(MRC, NVC)                                                              \
    case MRC:                                                                               \
        gemm_rows_avx512(MRC, NVC, RS1, n, k, a, rs_a, cs_a, b, ps, bias, load_c, c, ldc); \
        break;
    switch (rows) {
        FL_G512_ROWS(1, 4)
        FL_G512_ROWS(2, 6)
        FL_G512_ROWS(3, 4)
        FL_G512_ROWS(4, 4)
        FL_G512_ROWS(5, 4)
        FL_G512_ROWS(6, 4)
        FL_G512_ROWS(7, 3)
        FL_G512_ROWS(8, 3)
        FL_G512_ROWS(9, 3)
        FL_G512_ROWS(10, 2)
        FL_G512_ROWS(11, 2)
        FL_G512_ROWS(12, 2)
        FL_G512_ROWS(13, 2)
        default:
            gemm_rows_avx512(14, 2, RS1, n, k, a, rs_a, cs_a, b, ps, bias, load_c, c, ldc);
            break;
    }
#undef FL_G512_ROWS
}

void fl_gemm_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                        int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                        int load_c, float* c, int64_t ldc) {
    if (n <= 0) return;
    // Rows of A read in place 4 KiB apart (a multiple of 1024 floats) all map to one set of
    // the L1 cache (64 sets of 64 bytes; 8-way on Zen 3/4 and most Intel cores, 12-way on Zen
    // 5), so a block of 14 such rows evicts its own lines every k step. Blocks of 7 keep them
    // resident (7 x 48 tiles): dense 2048 x 1024 -> 128, one Zen 4 core, 75 -> 111 GFLOP/s.
    // 2 KiB apart, 14 rows spread over two sets and ran at full speed. Same chains either way.
    const int64_t mr = rs_a != 1 && rs_a % 1024 == 0 ? 7 : FL_G512_MR;
    while (m > 0) {
        // Blocks of mr rows; mr+1..mr+5 rows go as two near-equal blocks (14-row blocks: 8 + 7
        // ... 10 + 9; 7-row blocks: 4 + 4 ... 6 + 6).
        const int64_t rows = m <= mr ? m : m < mr + 6 ? (m + 1) / 2 : mr;
        if (rs_a == 1)
            gemm_block_avx512(1, rows, n, k, a, 1, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
        else
            gemm_block_avx512(0, rows, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c,
                              ldc);
        m -= rows;
        a += rows * rs_a;
        c += rows * ldc;
    }
}

// Transposing pack (contract in ukernels.h). Blocks of 16 source rows x 16 columns are
// transposed in registers (16 unpacks, 16 shuffle_ps, 32 shuffle_f32x4 per 256 floats) and
// stored as 16 whole panel rows. Rows i >= w are zero vectors (never read); the last kc % 16
// columns use masked loads and store only their panel rows, so every kc and w takes this path.
// GCC 12 reports the _mm512_undefined_ps() inside its shuffle intrinsics as "may be used
// uninitialized" once they are inlined here (a false positive: every lane is written).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
FL_G512_AI void pack_t16_block_avx512(const float* src, int64_t ld, int64_t w, __mmask16 mask,
                                      int64_t cols, float* dst) {
    __m512 r[16];
    FL_G512_UNROLL(16)
    for (int i = 0; i < 16; ++i)
        r[i] = i < w ? _mm512_maskz_loadu_ps(mask, src + i * ld) : _mm512_setzero_ps();
    // t: pairs of rows interleaved; u[4g + q]: column 4L + q of rows 4g..4g+3 in 128-bit lane L.
    __m512 t[16], u[16];
    FL_G512_UNROLL(8)
    for (int g = 0; g < 8; ++g) {
        t[2 * g] = _mm512_unpacklo_ps(r[2 * g], r[2 * g + 1]);
        t[2 * g + 1] = _mm512_unpackhi_ps(r[2 * g], r[2 * g + 1]);
    }
    FL_G512_UNROLL(4)
    for (int g = 0; g < 4; ++g) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    // Column 4L + q = lanes L of u[q], u[4 + q], u[8 + q], u[12 + q].
    __m512 out[16];
    FL_G512_UNROLL(4)
    for (int q = 0; q < 4; ++q) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);  // lanes 0, 2 | 0, 2
        const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);  // lanes 1, 3 | 1, 3
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
        out[q] = _mm512_shuffle_f32x4(v0, w0, 0x88);       // lane 0
        out[8 + q] = _mm512_shuffle_f32x4(v0, w0, 0xDD);   // lane 2
        out[4 + q] = _mm512_shuffle_f32x4(v1, w1, 0x88);   // lane 1
        out[12 + q] = _mm512_shuffle_f32x4(v1, w1, 0xDD);  // lane 3
    }
    if (cols == 16) {
        FL_G512_UNROLL(16)
        for (int p = 0; p < 16; ++p) _mm512_storeu_ps(dst + p * 16, out[p]);
    } else {
        FL_G512_UNROLL(16)
        for (int p = 0; p < 16; ++p)
            if (p < cols) _mm512_storeu_ps(dst + p * 16, out[p]);
    }
}

void fl_pack_t16_avx512(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst) {
    int64_t p0 = 0;
    for (; p0 + 16 <= kc; p0 += 16)
        pack_t16_block_avx512(src + p0, ld, w, (__mmask16)0xFFFF, 16, dst + p0 * 16);
    if (p0 < kc)
        pack_t16_block_avx512(src + p0, ld, w, gemm_lane_mask_avx512(kc - p0), kc - p0,
                              dst + p0 * 16);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// GEMM with a row-major B (contract in ukernels.h). As in the AVX2 kernel, B is swept in bands
// of rows: for each band and group of rows, tiles of MR rows x NV vectors of 16 columns go left
// to right, each loading its C tile (or its init on the first band), running the band's steps
// in registers and storing it back, so B is read once as a few sequential row streams and C is
// stored once per band. Column tails use k-masked loads and stores. Each C element is the same
// FMA chain as in the packed kernels, only stored between bands (a float store is exact).
// Tiles: up to 64 columns (4 vectors: 16 accumulators for 4 rows), only as many vectors as n
// needs; a C of one tile (1-2 rows x up to 128 columns, 3-4 rows x up to 64) skips the bands
// (see fl_gemm_rowb_f32_avx512).
//
// Band height: rowb_band_rows (rowb_band.h), as in the AVX2 kernel: 8 rows for every n > 256
// and 64 rows for decode attention's Dv = 64 value rows, where 8-row bands stored and
// reloaded C every 8 FMAs.

FL_G512_AI void gemm_rowb_band_avx512(const int MR, const int NV, int64_t n, int64_t p0,
                                      int64_t kb, const float* a, int64_t lda, const float* b,
                                      int64_t ldb, const float* bias, int first, float* c,
                                      int64_t ldc) {
    for (int64_t j = 0; j < n; j += 16 * NV) {
        const int64_t cols = n - j < 16 * NV ? n - j : 16 * NV;
        const int full = cols == 16 * NV;
        __mmask16 mask[8];
        FL_G512_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            const int64_t r = cols - 16 * v;
            mask[v] = gemm_lane_mask_avx512(r < 0 ? 0 : (r > 16 ? 16 : r));
        }
        __m512 acc[4][8];
        FL_G512_UNROLL(4)
        for (int i = 0; i < MR; ++i) {
            FL_G512_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                const float* src =
                    !first ? c + i * ldc + j + 16 * v : (bias ? bias + j + 16 * v : 0);
                acc[i][v] = src == 0 ? _mm512_setzero_ps()
                            : full   ? _mm512_loadu_ps(src)
                                     : _mm512_maskz_loadu_ps(mask[v], src);
            }
        }
        for (int64_t p = p0; p < p0 + kb; ++p) {
            const float* bp = b + p * ldb + j;
            if (MR == 1) {
                // One row: each vector of B loaded next to its FMA (as in the AVX2 kernel).
                const __m512 a0 = _mm512_set1_ps(a[p]);
                FL_G512_UNROLL(8)
                for (int v = 0; v < NV; ++v) {
                    const __m512 bv = full ? _mm512_loadu_ps(bp + 16 * v)
                                           : _mm512_maskz_loadu_ps(mask[v], bp + 16 * v);
                    acc[0][v] = _mm512_fmadd_ps(a0, bv, acc[0][v]);
                }
                continue;
            }
            __m512 bv[8];
            FL_G512_UNROLL(8)
            for (int v = 0; v < NV; ++v)
                bv[v] = full ? _mm512_loadu_ps(bp + 16 * v)
                             : _mm512_maskz_loadu_ps(mask[v], bp + 16 * v);
            FL_G512_UNROLL(4)
            for (int i = 0; i < MR; ++i) {
                const __m512 ai = _mm512_set1_ps(a[i * lda + p]);
                FL_G512_UNROLL(8)
                for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
            }
        }
        FL_G512_UNROLL(4)
        for (int i = 0; i < MR; ++i) {
            FL_G512_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                if (full)
                    _mm512_storeu_ps(c + i * ldc + j + 16 * v, acc[i][v]);
                else
                    _mm512_mask_storeu_ps(c + i * ldc + j + 16 * v, mask[v], acc[i][v]);
            }
        }
    }
}

void fl_gemm_rowb_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                             const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                             int64_t ldc) {
    if (n <= 0 || m <= 0) return;
    // Vectors of 16 columns per tile: as many as n needs, at most 4 (64 columns) in the bands;
    // the whole-k tiles of 1-2 rows take 8 (128 columns). Bands of 1-2 rows in 128-wide tiles
    // streamed B from memory 10-25 % slower than in 64-wide ones (C++ micro-benchmark, Zen 4,
    // 2026-12-03: x (1, 1024) @ (1024, 1024) 228-307 -> 202-237 us, (2, 784) @ (784, 512)
    // 177-182 -> 135-143 us; the AVX2 kernel 218-253 and 134-136 us; with B in cache, mixed:
    // (2, 1024) @ (1024, 1024) 118-130 -> 132-168 us, (2, 784) @ (784, 512) 44-46 -> 36-41).
    const int64_t nv = (n + 15) / 16;
    const int nv_wide = nv > 4 ? 8 : static_cast<int>(nv);  // whole-k only: n <= 128
    const int nv_narrow = nv > 4 ? 4 : static_cast<int>(nv);
#define FL_ROWB512_SWITCH_NV(MR, NVAR)          \
    do {                                        \
        if ((NVAR) == 1) FL_ROWB512_BAND(MR, 1);  \
        else if ((NVAR) == 2) FL_ROWB512_BAND(MR, 2); \
        else if ((NVAR) == 3) FL_ROWB512_BAND(MR, 3); \
        else if ((NVAR) == 4) FL_ROWB512_BAND(MR, 4); \
        else FL_ROWB512_BAND(MR, 8);            \
    } while (0)
    // One tile holds all of C (1 or 2 rows x up to 128 columns, 3 or 4 rows x up to 64): it
    // stays in registers for all of k, with up to 16 independent chains, and B is read once,
    // row after row (the AVX2 kernel's reasons: no C round trip per band).
    if (k > 0 && m <= 4 && n <= (m <= 2 ? 128 : 64)) {
        const int first = !load_c;
#define FL_ROWB512_BAND(MR, NV) \
    gemm_rowb_band_avx512(MR, NV, n, 0, k, a, lda, b, ldb, bias, first, c, ldc)
        switch (m) {
            case 1: FL_ROWB512_SWITCH_NV(1, nv_wide); break;
            case 2: FL_ROWB512_SWITCH_NV(2, nv_wide); break;
            case 3: FL_ROWB512_SWITCH_NV(3, nv_narrow); break;
            default: FL_ROWB512_SWITCH_NV(4, nv_narrow); break;
        }
#undef FL_ROWB512_BAND
        return;
    }
    // Bands outside, row groups inside: a band of B is read from memory once and reused from
    // L1 by every group of 4 rows of A.
    const int64_t band = rowb_band_rows(n);
    for (int64_t p0 = 0; p0 < k || (p0 == 0 && !load_c); p0 += band) {
        const int64_t kb = k - p0 < band ? k - p0 : band;  // 0 when k == 0
        const int first = p0 == 0 && !load_c;
        for (int64_t i0 = 0; i0 < m; i0 += 4) {
            const float* ai = a + i0 * lda;
            float* ci = c + i0 * ldc;
#define FL_ROWB512_BAND(MR, NV) \
    gemm_rowb_band_avx512(MR, NV, n, p0, kb, ai, lda, b, ldb, bias, first, ci, ldc)
            // Tiles only as wide as n needs: (32, 1) products of a batched matmul ran their one
            // column in 4 x 64 tiles, 16 chains of which 4 were used (0.32 us per product now,
            // 0.59 for the AVX2 kernel); the value rows of decode attention (Dv = 64) ran
            // half-masked in 128-wide tiles (~185 us per 8 MiB of B against ~112 us for the AVX2
            // kernel).
            switch (m - i0 < 4 ? m - i0 : 4) {
                case 1: FL_ROWB512_SWITCH_NV(1, nv_narrow); break;
                case 2: FL_ROWB512_SWITCH_NV(2, nv_narrow); break;
                case 3: FL_ROWB512_SWITCH_NV(3, nv_narrow); break;
                default: FL_ROWB512_SWITCH_NV(4, nv_narrow); break;
            }
#undef FL_ROWB512_BAND
        }
        if (k == 0) break;
    }
#undef FL_ROWB512_SWITCH_NV
}
