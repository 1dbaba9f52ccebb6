// dotrows/avx512.cpp: dot products of rows read in place, C[i][j] = A row i . B row j
// (fl_dot_rows_f32_<isa>, contract and summation order in csrc/ukernels/ukernels.h).
//
// ISA: AVX-512 F/DQ/VL (this file alone is compiled with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx2 -mfma). Selected by fl::kernels() (KernelTable::dot_rows) when
// active_isa() is avx512. Tile: 16 (row of A, row of B) pairs - MR rows of A x NR rows of B
// with MR x NR = 4 x 4 (4+ rows of A left), 2 x 8 (2 or 3) or 1 x 16 (1) - each pair's 16 lane
// sums in one zmm, 16 accumulators; the last block of a row uses a zero-masking load (nothing
// past k is read; masked lanes load 0 and take fma(0, 0, acc) as the contract says). The 16
// pairs are then reduced together by the contract's tree - 256-bit halves (lane l + lane l + 8),
// 128-bit quarters (l + 4), in-lane shuffles (l + 2, l + 1), every addition with the lower lane
// first - into one zmm holding the 16 results, so the bits are those of the scalar kernel. Pairs
// past the last row of B point at row n - 1 and are not stored.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's _mm512_undefined_ps (inside _mm512_shuffle_f32x4 and friends) trips a false
// -Wmaybe-uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "../ukernels.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FL_DOT_AI static __forceinline
#define FL_DOT_UNROLL(n)
#else
#define FL_DOT_AI static inline __attribute__((always_inline))
#define FL_DOT_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define FL_DOT_UNROLL(n) FL_DOT_PRAGMA(clang loop unroll(full))
#else
#define FL_DOT_UNROLL(n) FL_DOT_PRAGMA(GCC unroll n)
#endif
#endif

// The 16 accumulators acc[q] (pair q = i * NR + j) reduced to one zmm, lane q = pair q.
FL_DOT_AI __m512 dot_reduce16_avx512(const __m512* acc) {
    // l + 8: w[u] = [pair 2u (8 lanes) | pair 2u + 1 (8 lanes)].
    __m512 w[8];
    FL_DOT_UNROLL(8)
    for (int u = 0; u < 8; ++u)
        w[u] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * u], acc[2 * u + 1], 0x44),
                             _mm512_shuffle_f32x4(acc[2 * u], acc[2 * u + 1], 0xEE));
    // l + 4: x[r] quarter g = pair 4r + g (4 lanes).
    __m512 x[4];
    FL_DOT_UNROLL(4)
    for (int r = 0; r < 4; ++r)
        x[r] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * r], w[2 * r + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * r], w[2 * r + 1], 0xDD));
    // l + 2: y[s] quarter g = [pair 8s + g: s0, s1, pair 8s + 4 + g: s0, s1].
    __m512 y[2];
    FL_DOT_UNROLL(2)
    for (int s = 0; s < 2; ++s)
        y[s] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * s], x[2 * s + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(x[2 * s], x[2 * s + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // l + 1: quarter g lane e = pair g + 4e.
    const __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
    // Lane q = pair q: from lane 4 * (q % 4) + q / 4.
    const __m512i idx =
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, z);
}

// 16 floats at p as two 256-bit loads; with a mask, the lanes outside it are 0 and not read
// (no fault past the end of a row). dot_tile_avx512 says why.
FL_DOT_AI __m512 dot_load_split_avx512(const float* p) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
}
FL_DOT_AI __m512 dot_load_split_avx512(const float* p, __mmask16 m) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(static_cast<__mmask8>(m), p)),
                              _mm256_maskz_loadu_ps(static_cast<__mmask8>(m >> 8), p + 8), 1);
}

// Rows i0 .. i0 + MR - 1 of A against rows j0 .. j0 + NR - 1 of B (those >= n point at row
// n - 1 and are not stored).
FL_DOT_AI void dot_tile_avx512(const int MR, const int NR, int64_t n, int64_t k, int64_t j0,
                               const float* a, int64_t lda, const float* b, int64_t ldb,
                               float* c, int64_t ldc) {
    const float* bp[16];
    FL_DOT_UNROLL(16)
    for (int j = 0; j < NR; ++j) bp[j] = b + (j0 + j < n ? j0 + j : n - 1) * ldb;
    __m512 acc[16];
    FL_DOT_UNROLL(16)
    for (int q = 0; q < 16; ++q) acc[q] = _mm512_setzero_ps();
    // Keys in groups of 4 (rows j0 + g .. j0 + g + 3 of B outside, their blocks of 16 in order inside,
    // the 4 keys in turn for each block), each block of B loaded as two 256-bit halves: the
    // same chains (each accumulator still takes its blocks in order), but keys streamed from
    // memory as fast as the AVX2 kernel. One row of A against 128 MiB of keys of 64 floats
    // (Zen 4, 2026-12-03, medians of 15 interleaved runs): all NR keys per block, 512-bit loads
    // (this kernel before) 13-16 GB/s; groups of 4, 512-bit loads 17-20 GB/s; groups of 4,
    // halves 22-24 GB/s; the AVX2 kernel 22-24 GB/s. A plain sequential read on that machine
    // runs 21.5 GB/s with 512-bit loads and 24.8 with 256-bit ones. With the keys in L1 the
    // three orders take the same time within noise. Zen 5 (full-width loads) is unmeasured.
    const int64_t full = k / 16 * 16;
    const __mmask16 mk = static_cast<__mmask16>((1u << (k - full)) - 1u);
    FL_DOT_UNROLL(4)
    for (int g = 0; g < NR; g += 4) {
        if (j0 + g >= n) break;  // keys past the last: not stored, their accumulators unused
        for (int64_t p = 0; p < full; p += 16) {
            __m512 av[4];
            FL_DOT_UNROLL(4)
            for (int i = 0; i < MR; ++i) av[i] = _mm512_loadu_ps(a + i * lda + p);
            FL_DOT_UNROLL(4)
            for (int j = g; j < g + 4; ++j) {
                const __m512 bv = dot_load_split_avx512(bp[j] + p);
                FL_DOT_UNROLL(4)
                for (int i = 0; i < MR; ++i)
                    acc[i * NR + j] = _mm512_fmadd_ps(av[i], bv, acc[i * NR + j]);
            }
        }
        if (full < k) {
            __m512 av[4];
            FL_DOT_UNROLL(4)
            for (int i = 0; i < MR; ++i) av[i] = _mm512_maskz_loadu_ps(mk, a + i * lda + full);
            FL_DOT_UNROLL(4)
            for (int j = g; j < g + 4; ++j) {
                const __m512 bv = dot_load_split_avx512(bp[j] + full, mk);
                FL_DOT_UNROLL(4)
                for (int i = 0; i < MR; ++i)
                    acc[i * NR + j] = _mm512_fmadd_ps(av[i], bv, acc[i * NR + j]);
            }
        }
    }
    const __m512 r = dot_reduce16_avx512(acc);
    const int64_t left = n - j0;
    const __mmask16 keep = static_cast<__mmask16>(left >= NR ? (1u << NR) - 1u : (1u << left) - 1u);
    // Row i of the tile is lanes i * NR .. i * NR + NR - 1.
    FL_DOT_UNROLL(4)
    for (int i = 0; i < MR; ++i) {
        const __m512 ri = i == 0 ? r
                                 : _mm512_maskz_compress_ps(
                                       static_cast<__mmask16>(((1u << NR) - 1u) << (i * NR)), r);
        _mm512_mask_storeu_ps(c + i * ldc + j0, keep, ri);
    }
}

void fl_dot_rows_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
        for (int64_t j = 0; j < n; j += 4)
            dot_tile_avx512(4, 4, n, k, j, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    for (; i + 2 <= m; i += 2)
        for (int64_t j = 0; j < n; j += 8)
            dot_tile_avx512(2, 8, n, k, j, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    if (i < m)
        for (int64_t j = 0; j < n; j += 16)
            dot_tile_avx512(1, 16, n, k, j, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
}
