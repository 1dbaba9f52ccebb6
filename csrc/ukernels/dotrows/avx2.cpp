// dotrows/avx2.cpp: dot products of rows read in place, C[i][j] = A row i . B row j
// (fl_dot_rows_f32_<isa>, contract and summation order in csrc/ukernels/ukernels.h).
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Selected by fl::kernels()
// (KernelTable::dot_rows) when active_isa() is avx2 or avx512 (the avx512 file has its own).
// Tile: 4 (row of A, row of B) pairs - 1 x 4 for a single row of A, else 2 x 2 - each pair's
// 16 lane sums in two ymm (lanes 0-7 and 8-15 of a 16-element block), 8 accumulators; the
// last block of a row uses maskload (nothing past k is read; masked lanes load 0 and take
// fma(0, 0, acc) as the contract says). The 4 pairs are then reduced together by the contract's
// tree: lo + hi (lane l + lane l + 8), 128-bit halves (l + 4), in-lane shuffles (l + 2, l + 1),
// every addition with the lower lane first, so the bits are those of the scalar kernel. Pairs
// past the last row of B point at row n - 1 and are not stored.
#include <immintrin.h>

#include "../ukernels.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FL_DOT_AI static __forceinline
#else
#define FL_DOT_AI static inline __attribute__((always_inline))
#endif

static inline __m256i dot_tail_mask_avx2(int64_t r) {  // lanes < r set, 0 <= r <= 8
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), idx);
}

// The 4 dot products of pairs (a[q], b[q]), q < 4, in lanes 0..3 of the result.
FL_DOT_AI __m128 dot4_avx2(const float* a0, const float* a1, const float* a2, const float* a3,
                           const float* b0, const float* b1, const float* b2, const float* b3,
                           int64_t k) {
    __m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, lo2 = lo0, lo3 = lo0;
    __m256 hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0;
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        lo0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p), _mm256_loadu_ps(b0 + p), lo0);
        hi0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p + 8), _mm256_loadu_ps(b0 + p + 8), hi0);
        lo1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + p), _mm256_loadu_ps(b1 + p), lo1);
        hi1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + p + 8), _mm256_loadu_ps(b1 + p + 8), hi1);
        lo2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + p), _mm256_loadu_ps(b2 + p), lo2);
        hi2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + p + 8), _mm256_loadu_ps(b2 + p + 8), hi2);
        lo3 = _mm256_fmadd_ps(_mm256_loadu_ps(a3 + p), _mm256_loadu_ps(b3 + p), lo3);
        hi3 = _mm256_fmadd_ps(_mm256_loadu_ps(a3 + p + 8), _mm256_loadu_ps(b3 + p + 8), hi3);
    }
    if (p < k) {
        const int64_t r = k - p;
        const __m256i ml = dot_tail_mask_avx2(r < 8 ? r : 8);
        const __m256i mh = dot_tail_mask_avx2(r > 8 ? r - 8 : 0);
        lo0 = _mm256_fmadd_ps(_mm256_maskload_ps(a0 + p, ml), _mm256_maskload_ps(b0 + p, ml), lo0);
        hi0 = _mm256_fmadd_ps(_mm256_maskload_ps(a0 + p + 8, mh),
                              _mm256_maskload_ps(b0 + p + 8, mh), hi0);
        lo1 = _mm256_fmadd_ps(_mm256_maskload_ps(a1 + p, ml), _mm256_maskload_ps(b1 + p, ml), lo1);
        hi1 = _mm256_fmadd_ps(_mm256_maskload_ps(a1 + p + 8, mh),
                              _mm256_maskload_ps(b1 + p + 8, mh), hi1);
        lo2 = _mm256_fmadd_ps(_mm256_maskload_ps(a2 + p, ml), _mm256_maskload_ps(b2 + p, ml), lo2);
        hi2 = _mm256_fmadd_ps(_mm256_maskload_ps(a2 + p + 8, mh),
                              _mm256_maskload_ps(b2 + p + 8, mh), hi2);
        lo3 = _mm256_fmadd_ps(_mm256_maskload_ps(a3 + p, ml), _mm256_maskload_ps(b3 + p, ml), lo3);
        hi3 = _mm256_fmadd_ps(_mm256_maskload_ps(a3 + p + 8, mh),
                              _mm256_maskload_ps(b3 + p + 8, mh), hi3);
    }
    // Lane l + lane l + 8.
    const __m256 w0 = _mm256_add_ps(lo0, hi0), w1 = _mm256_add_ps(lo1, hi1);
    const __m256 w2 = _mm256_add_ps(lo2, hi2), w3 = _mm256_add_ps(lo3, hi3);
    // l + 4: x0 = [pair 0 | pair 1], x1 = [pair 2 | pair 3], 4 lanes each.
    const __m256 x0 = _mm256_add_ps(_mm256_permute2f128_ps(w0, w1, 0x20),
                                    _mm256_permute2f128_ps(w0, w1, 0x31));
    const __m256 x1 = _mm256_add_ps(_mm256_permute2f128_ps(w2, w3, 0x20),
                                    _mm256_permute2f128_ps(w2, w3, 0x31));
    // l + 2: half h = [pair h: s0, s1, pair h + 2: s0, s1].
    const __m256 y = _mm256_add_ps(_mm256_shuffle_ps(x0, x1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_shuffle_ps(x0, x1, _MM_SHUFFLE(3, 2, 3, 2)));
    // l + 1: half h lanes 0, 1 = pairs h, h + 2.
    const __m256 z = _mm256_add_ps(_mm256_shuffle_ps(y, y, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(y, y, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm_unpacklo_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1));
}

void fl_dot_rows_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          const float* b, int64_t ldb, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    int64_t i = 0;
    // Two rows of A x two rows of B.
    for (; i + 2 <= m; i += 2) {
        const float* ai = a + i * lda;
        float* ci = c + i * ldc;
        for (int64_t j = 0; j < n; j += 2) {
            const float* bj = b + j * ldb;
            const float* bj1 = j + 1 < n ? bj + ldb : bj;
            float r[4];
            _mm_storeu_ps(r, dot4_avx2(ai, ai, ai + lda, ai + lda, bj, bj1, bj, bj1, k));
            ci[j] = r[0];
            ci[ldc + j] = r[2];
            if (j + 1 < n) {
                ci[j + 1] = r[1];
                ci[ldc + j + 1] = r[3];
            }
        }
    }
    // A last single row x four rows of B.
    if (i < m) {
        const float* ai = a + i * lda;
        float* ci = c + i * ldc;
        for (int64_t j = 0; j < n; j += 4) {
            const float* b0 = b + j * ldb;
            const float* b1 = j + 1 < n ? b0 + ldb : b0;
            const float* b2 = j + 2 < n ? b0 + 2 * ldb : b0;
            const float* b3 = j + 3 < n ? b0 + 3 * ldb : b0;
            const __m128 r = dot4_avx2(ai, ai, ai, ai, b0, b1, b2, b3, k);
            if (j + 4 <= n) {
                _mm_storeu_ps(ci + j, r);
            } else {
                float t[4];
                _mm_storeu_ps(t, r);
                for (int64_t q = 0; q < n - j; ++q) ci[j + q] = t[q];
            }
        }
    }
}
