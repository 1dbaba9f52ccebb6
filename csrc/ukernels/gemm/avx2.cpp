// gemm/avx2.cpp: the float32 GEMM micro-kernel, C (m x n) = init + A (m x k) * B (k x n).
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Selected by fl::kernels()
// (KernelTable::gemm) when active_isa() is avx2; the tests call fl_gemm_f32_avx2 by name.
// The full contract (operand layouts, summation order, what may be read and written) is in
// csrc/ukernels/ukernels.h next to the declaration; in short:
//   A   a[i*rs_a + p*cs_a]: row-major activations (rs_a = lda, cs_a = 1) or a packed A
//       micro-panel (rs_a = 1, cs_a = its row count); only elements i < m, p < k are read.
//   B   packed 16-wide panels, K-major: column j at b[(j/16)*b_panel_stride + p*16 + j%16],
//       zero-padded to a multiple of 16 columns (the padding is read, never used).
//   C   c[i*ldc + j]; only i < m, j < n is read (load_c) or written. The N tail uses
//       maskload/maskstore.
//   every c[i][j] is ONE FMA chain: acc = init (C if load_c, else bias[j], else 0), then
//   acc = fma(a[i][p], b[p][j], acc) for p = 0, 1, ..., k-1.
//
// Register tiles (12 ymm accumulators where the row count allows):
//   m = 6, 5, 4 : m x 16 (2 B loads + m broadcasts per k; 12/10/8 accumulators)
//   m = 3       : 3 x 32 (4 B loads + 3 broadcasts, 12 accumulators)
//   m = 2       : 2 x 48 (6 B loads + 2 broadcasts, 12 accumulators)
//   m = 1       : 1 x 64 (8 B loads from 4 panels + 1 broadcast, 8 independent chains)
// so small batches (M = 1..5) are never bound by the 4-cycle FMA latency. m > 6 is handled as
// consecutive blocks of 6 rows (the driver normally passes m <= 6). The k loop is unrolled by
// 4. No software prefetch: prefetching the next C tile or B 256-512 bytes ahead measured no
// gain (hardware prefetchers follow the sequential panel streams).
//
// The shapes are instantiated from one always-inline function with constant arguments (not a
// template: ISA files hold no shared inline code, see docs/architecture.md §5).
#include <immintrin.h>

#include "../inline.h"
#include "../ukernels.h"
#include "rowb_band.h"

// Full unrolling of the tile loops (constant trip counts after inlining) is what lets the
// compiler keep acc[][] in registers.
#define FL_GEMM_AI FL_KERNEL_AI
#define FL_GEMM_UNROLL(n) FL_KERNEL_UNROLL(n)

// Lanes [0, r) set, r in 1..8.
static inline __m256i gemm_lane_mask_avx2(int64_t r) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lane);
}

// One register tile: MR rows x NV vectors of 8 columns, starting at a panel boundary.
// `last` = valid columns of vector NV-1 (1..8); columns beyond it are neither read nor written.
FL_GEMM_AI void gemm_tile_avx2(const int MR, const int NV, int64_t k, const float* a, int64_t rs_a,
                               int64_t cs_a, const float* b, int64_t ps, const float* bias,
                               int load_c, float* c, int64_t ldc, int64_t last) {
    __m256 acc[6][8];
    const __m256i mask = gemm_lane_mask_avx2(last);
    const int partial = last != 8;

    // Chain start: C (continuing a K block), the bias row, or 0.
    if (load_c) {
        FL_GEMM_UNROLL(6)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                const float* src = c + i * ldc + v * 8;
                acc[i][v] =
                    (v == NV - 1 && partial) ? _mm256_maskload_ps(src, mask) : _mm256_loadu_ps(src);
            }
        }
    } else if (bias) {
        FL_GEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            // bias is padded like the panels, so a whole vector is readable.
            const __m256 bv = _mm256_loadu_ps(bias + v * 8);
            FL_GEMM_UNROLL(6)
            for (int i = 0; i < MR; ++i) acc[i][v] = bv;
        }
    } else {
        FL_GEMM_UNROLL(6)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
        }
    }

    // Vector v of the tile is half (v & 1) of panel v / 2.
    const float* bp[8];
    FL_GEMM_UNROLL(8)
    for (int v = 0; v < NV; ++v) bp[v] = b + (v >> 1) * ps + (v & 1) * 8;

    // Two loop orders with the same FMAs (so the same chains): tall tiles load the B row once
    // and broadcast A row by row (12 acc + 2 B + 1 A registers); wide tiles broadcast the few A
    // values first and stream B vector by vector (12 acc + 3 A + 1 B at most), which keeps gcc
    // from holding all NV B vectors at once and spilling accumulators.
    const float* ap = a;
    if (NV <= 2) {
        FL_GEMM_UNROLL(4)
        for (int64_t p = 0; p < k; ++p) {
            __m256 bx[2];
            FL_GEMM_UNROLL(2)
            for (int v = 0; v < NV; ++v) bx[v] = _mm256_loadu_ps(bp[v] + p * 16);
            FL_GEMM_UNROLL(6)
            for (int i = 0; i < MR; ++i) {
                const __m256 ai = _mm256_broadcast_ss(ap + i * rs_a);
                FL_GEMM_UNROLL(2)
                for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bx[v], acc[i][v]);
            }
            ap += cs_a;
        }
    } else {
        FL_GEMM_UNROLL(4)
        for (int64_t p = 0; p < k; ++p) {
            __m256 ai[6];
            FL_GEMM_UNROLL(3)
            for (int i = 0; i < MR; ++i) ai[i] = _mm256_broadcast_ss(ap + i * rs_a);
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                const __m256 bx = _mm256_loadu_ps(bp[v] + p * 16);
                FL_GEMM_UNROLL(3)
                for (int i = 0; i < MR; ++i) acc[i][v] = _mm256_fmadd_ps(ai[i], bx, acc[i][v]);
            }
            ap += cs_a;
        }
    }

    FL_GEMM_UNROLL(6)
    for (int i = 0; i < MR; ++i) {
        FL_GEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            float* dst = c + i * ldc + v * 8;
            if (v == NV - 1 && partial)
                _mm256_maskstore_ps(dst, mask, acc[i][v]);
            else
                _mm256_storeu_ps(dst, acc[i][v]);
        }
    }
}

// MR rows, all n columns, in strips of NVMAX vectors (NVMAX*8 columns, a multiple of 16).
FL_GEMM_AI void gemm_rows_avx2(const int MR, const int NVMAX, int64_t n, int64_t k, const float* a,
                               int64_t rs_a, int64_t cs_a, const float* b, int64_t ps,
                               const float* bias, int load_c, float* c, int64_t ldc) {
    const int64_t width = NVMAX * 8;
    for (int64_t j = 0; j < n; j += width) {
        const int64_t rem = n - j < width ? n - j : width;
        const int64_t nv = (rem + 7) / 8;
        const int64_t last = rem - (nv - 1) * 8;
        const float* bj = b + (j / 16) * ps;
        const float* biasj = bias ? bias + j : 0;
        float* cj = c + j;
#define FL_GEMM_TILE_CASE(NVC)                                                                  \
    if ((NVC) <= NVMAX && nv == (NVC)) {                                                        \
        gemm_tile_avx2(MR, (NVC) <= NVMAX ? (NVC) : 1, k, a, rs_a, cs_a, bj, ps, biasj, load_c, \
                       cj, ldc, last);                                                          \
        continue;                                                                               \
    }
        FL_GEMM_TILE_CASE(8)
        FL_GEMM_TILE_CASE(7)
        FL_GEMM_TILE_CASE(6)
        FL_GEMM_TILE_CASE(5)
        FL_GEMM_TILE_CASE(4)
        FL_GEMM_TILE_CASE(3)
        FL_GEMM_TILE_CASE(2)
        FL_GEMM_TILE_CASE(1)
#undef FL_GEMM_TILE_CASE
    }
}

void fl_gemm_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                      const float* b, int64_t b_panel_stride, const float* bias, int load_c,
                      float* c, int64_t ldc) {
    if (n <= 0) return;
    while (m > 0) {
        const int64_t rows = m < 6 ? m : 6;
        switch (rows) {
            case 1:
                gemm_rows_avx2(1, 8, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 2:
                gemm_rows_avx2(2, 6, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 3:
                gemm_rows_avx2(3, 4, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 4:
                gemm_rows_avx2(4, 2, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 5:
                gemm_rows_avx2(5, 2, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            default:
                gemm_rows_avx2(6, 2, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
        }
        m -= rows;
        a += rows * rs_a;
        c += rows * ldc;
    }
}

// Transposing pack (contract in ukernels.h). Each group of 8 source rows is transposed in
// 8 x 8 register blocks (unpack, shuffle, permute2f128: 24 shuffles per 64 floats) and stored
// as half-rows of the panel; the last kc % 8 columns and a group of fewer than 8 rows are
// copied element by element, as in the scalar kernel. Packing K^T of an attention head this
// way is several times faster than the scalar loop's strided stores.
void fl_pack_t16_avx2(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst) {
    for (int64_t i0 = 0; i0 < 16; i0 += 8) {
        const int64_t rows = w - i0 < 0 ? 0 : (w - i0 > 8 ? 8 : w - i0);
        int64_t p0 = 0;
        if (rows == 8) {
            const float* s = src + i0 * ld;
            for (; p0 + 8 <= kc; p0 += 8) {
                const __m256 r0 = _mm256_loadu_ps(s + 0 * ld + p0);
                const __m256 r1 = _mm256_loadu_ps(s + 1 * ld + p0);
                const __m256 r2 = _mm256_loadu_ps(s + 2 * ld + p0);
                const __m256 r3 = _mm256_loadu_ps(s + 3 * ld + p0);
                const __m256 r4 = _mm256_loadu_ps(s + 4 * ld + p0);
                const __m256 r5 = _mm256_loadu_ps(s + 5 * ld + p0);
                const __m256 r6 = _mm256_loadu_ps(s + 6 * ld + p0);
                const __m256 r7 = _mm256_loadu_ps(s + 7 * ld + p0);
                // t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], and so on.
                const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                // u0 = column 0 of rows 0-3 | column 4 of rows 0-3; u1: columns 1 | 5, ...
                const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                float* d = dst + p0 * 16 + i0;
                _mm256_storeu_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
                _mm256_storeu_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
                _mm256_storeu_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
                _mm256_storeu_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
                _mm256_storeu_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
                _mm256_storeu_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
                _mm256_storeu_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
                _mm256_storeu_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
            }
        }
        for (int64_t i = i0; i < i0 + 8; ++i) {
            if (i < w) {
                for (int64_t p = p0; p < kc; ++p) dst[p * 16 + i] = src[i * ld + p];
            } else {
                for (int64_t p = p0; p < kc; ++p) dst[p * 16 + i] = 0.0f;
            }
        }
    }
}

// GEMM with a row-major B (contract in ukernels.h). B is swept in bands of rows: for each band
// and group of MR rows, tiles of MR rows x NV vectors of 8 columns go left to right, each loading
// its C tile (or its init on the first band), running the band's steps in registers and storing
// it back. So B is read once, as sequential row streams (a tile walking all k rows of a narrow
// column strip, at a stride of ldb, measured 2x slower: every row a new page for the
// prefetchers), and C is stored once per band instead of once per step (a store per FMA halved
// the speed). Each C element is the same FMA chain as in the packed kernels, only stored between
// bands (a float store is exact). A C of one tile, and 2 rows of up to 64 columns with a B of
// at most 64 KiB, skip the bands (see fl_gemm_rowb_f32_avx2).
//
// Band height (rowb_band_rows in rowb_band.h, shared with the AVX-512 kernel): as many rows
// as make kRowbBandFloats (16 KiB) of B, rounded down to a multiple of 8, between 8 and 256
// rows; so 8 rows for every n > 256 (up to 32 KiB of a 1024-column block in L1) and more for
// narrow B. With short rows, 8-row bands stored and
// reloaded C every 8 FMAs: decode attention's P.V at T = 4, Dv = 64 (a 4 x 64 C over 256 keys
// in L2; C++ micro-benchmark, thread CPU time) took 3.7 us in 8-row bands and 1.75-1.9 us in
// 64-row ones (39K -> 22K instructions); streaming 8 MB of V, 8-row bands 364-372 us, 64-row
// bands 325-332 us. Bands of 32 KiB measured the same as 16 KiB, of 8 KiB slower.
//
// Largest B (k x n floats, 64 KiB: the size measured) that fl_gemm_rowb_f32_avx2 reads once
// per row of A (2 rows).
static const int64_t kRowbRowByRowFloats = 16384;

FL_GEMM_AI void gemm_rowb_band_avx2(const int MR, const int NV, int64_t n, int64_t p0,
                                    int64_t kb, const float* a, int64_t lda, const float* b,
                                    int64_t ldb, const float* bias, int first, float* c,
                                    int64_t ldc) {
    for (int64_t j = 0; j < n; j += 8 * NV) {
        const int64_t cols = n - j < 8 * NV ? n - j : 8 * NV;
        const int full = cols == 8 * NV;
        __m256i mask[8];
        FL_GEMM_UNROLL(8)
        for (int v = 0; v < NV; ++v) {
            const int64_t r = cols - 8 * v;
            mask[v] = gemm_lane_mask_avx2(r < 0 ? 0 : (r > 8 ? 8 : r));
        }
        __m256 acc[4][8];
        FL_GEMM_UNROLL(4)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                const float* src = !first ? c + i * ldc + j + 8 * v : (bias ? bias + j + 8 * v : 0);
                acc[i][v] = src == 0 ? _mm256_setzero_ps()
                            : full   ? _mm256_loadu_ps(src)
                                     : _mm256_maskload_ps(src, mask[v]);
            }
        }
        // Unrolled by 4 (C++ micro-benchmark, thread CPU time, best of 300): m 2 n 64 k 256
        // 1.64-1.66 -> 1.35-1.38 us, m 1 n 512 k 784 28.4-29.4 -> 27.0-27.6 us, other shapes
        // (m 1..32, n 32..1024) within noise.
        FL_GEMM_UNROLL(4)
        for (int64_t p = p0; p < p0 + kb; ++p) {
            const float* bp = b + p * ldb + j;
            if (MR == 1) {
                // One row: each vector of B next to its FMA. Loaded all at once (below), the
                // masked loads of a partial 1 x 8 tile (no FMA takes one as its memory operand)
                // kept 8 vectors live beside 8 accumulators and the masks, and GCC spilled 6 of
                // them to the stack and back every step.
                const __m256 a0 = _mm256_broadcast_ss(a + p);
                FL_GEMM_UNROLL(8)
                for (int v = 0; v < NV; ++v) {
                    const __m256 bv = full ? _mm256_loadu_ps(bp + 8 * v)
                                           : _mm256_maskload_ps(bp + 8 * v, mask[v]);
                    acc[0][v] = _mm256_fmadd_ps(a0, bv, acc[0][v]);
                }
                continue;
            }
            __m256 bv[8];
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v)
                bv[v] = full ? _mm256_loadu_ps(bp + 8 * v) : _mm256_maskload_ps(bp + 8 * v, mask[v]);
            FL_GEMM_UNROLL(4)
            for (int i = 0; i < MR; ++i) {
                const __m256 ai = _mm256_broadcast_ss(a + i * lda + p);
                FL_GEMM_UNROLL(8)
                for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
            }
        }
        FL_GEMM_UNROLL(4)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(8)
            for (int v = 0; v < NV; ++v) {
                if (full) {
                    _mm256_storeu_ps(c + i * ldc + j + 8 * v, acc[i][v]);
                } else {
                    _mm256_maskstore_ps(c + i * ldc + j + 8 * v, mask[v], acc[i][v]);
                }
            }
        }
    }
}

void fl_gemm_rowb_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                           int64_t ldc) {
    if (n <= 0 || m <= 0) return;
    // One tile holds all of C (up to 4 rows x 64, 32, 24 or 16 columns): it stays in registers
    // for all of k, with up to 8 or 9 independent chains, and B is read once, row after row.
    // Stored and reloaded every band, the masked store and the masked load of the same line do not
    // forward, and x (1, 8192) @ W (8192, 2) took 3x its FMA chain's latency; for one row
    // against 64 columns of short rows (decode attention's P.V, T = 1, Dv = 64: k = 256 keys
    // in L2) the band round trips made it 1.65x slower (2-vCPU Zen 3, thread CPU time, best of
    // 200). Several whole-k tiles per row group, each walking all of B's rows for its columns,
    // were 1.1-1.8x faster than the bands with B in L2 but slower streaming from memory (B1 H8
    // T4 S4096 decode: 2.2-3.8 ms against 1.8-2.2), so wider C keeps the bands.
    if (k > 0 && m <= 4 && n <= (m == 1 ? 64 : m == 2 ? 32 : m == 3 ? 24 : 16)) {
        const int first = !load_c;
#define FL_ROWB_WHOLE(MR, NV) \
    gemm_rowb_band_avx2(MR, NV, n, 0, k, a, lda, b, ldb, bias, first, c, ldc)
        if (m == 1 && n > 32) FL_ROWB_WHOLE(1, 8);
        else if (m == 1) FL_ROWB_WHOLE(1, 4);
        else if (m == 2 && n > 16) FL_ROWB_WHOLE(2, 4);
        else if (m == 2) FL_ROWB_WHOLE(2, 2);
        else if (m == 3 && n > 16) FL_ROWB_WHOLE(3, 3);
        else if (m == 3) FL_ROWB_WHOLE(3, 2);
        else FL_ROWB_WHOLE(4, 2);
#undef FL_ROWB_WHOLE
        return;
    }
    // 2 rows of 33-64 columns (up to 32 fit the 2-row tile above) with a B of at most 64 KiB
    // (decode attention's P.V at T = 2, Dv = 64, a chunk of 256 keys): the one-row whole-k
    // tile for each row in turn. The first row reads B row after row, the second again from
    // cache, where the bands' 2 x 16 tiles walked each band at a 256-byte stride four times
    // over. C++ micro-benchmark, Zen 4, 2026-12-03, B of 256 x 64 from memory: 6.9-7.9 ->
    // 3.2-3.9 us (with B in cache 1.2-1.3 us either way). For 3-4 rows the rows' latency-bound
    // chains add up: with B in cache 1.3-1.6 -> 2.1-3.0 us, so they keep the bands. A larger B
    // was not measured.
    if (k > 0 && m == 2 && n <= 64 && k * n <= kRowbRowByRowFloats) {
        const int first = !load_c;
        for (int64_t i = 0; i < 2; ++i)
            gemm_rowb_band_avx2(1, 8, n, 0, k, a + i * lda, lda, b, ldb, bias, first, c + i * ldc,
                                ldc);
        return;
    }
    // Bands outside, row groups inside: a band of B (rowb_band_rows of the driver's column block)
    // is read from memory once and reused from L1 by every group of 4 rows of A.
    const int64_t band = rowb_band_rows(n);
    for (int64_t p0 = 0; p0 < k || (p0 == 0 && !load_c); p0 += band) {
        const int64_t kb = k - p0 < band ? k - p0 : band;  // 0 when k == 0
        const int first = p0 == 0 && !load_c;
        for (int64_t i0 = 0; i0 < m; i0 += 4) {
            const float* ai = a + i0 * lda;
            float* ci = c + i0 * ldc;
            switch (m - i0 < 4 ? m - i0 : 4) {
                case 1:
                    gemm_rowb_band_avx2(1, 4, n, p0, kb, ai, lda, b, ldb, bias, first, ci, ldc);
                    break;
                case 2:
                    gemm_rowb_band_avx2(2, 2, n, p0, kb, ai, lda, b, ldb, bias, first, ci, ldc);
                    break;
                case 3:
                    gemm_rowb_band_avx2(3, 2, n, p0, kb, ai, lda, b, ldb, bias, first, ci, ldc);
                    break;
                default:
                    gemm_rowb_band_avx2(4, 2, n, p0, kb, ai, lda, b, ldb, bias, first, ci, ldc);
                    break;
            }
        }
        if (k == 0) break;
    }
}
