// dotrows/avx2.cpp: dot products of rows read in place, C[i][j] = A row i . B row j
// (fl_dot_rows_f32_<isa>, contract and summation order in csrc/ukernels/ukernels.h).
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Selected by fl::kernels()
// (KernelTable::dot_rows) when active_isa() is avx2 or avx512 (the avx512 file has its own).
// A (row, row) pair's 16 lane sums are two ymm chains, lanes 0-7 and 8-15 of each 16-element
// block; the last block of a row uses maskload (nothing past k is read; masked lanes load 0 and
// take fma(0, 0, acc) as the contract says). Then the contract's tree: lo + hi (lane l + lane
// l + 8), 128-bit halves (l + 4), in-lane shuffles (l + 2, l + 1), every addition with the
// lower lane first, so the bits are those of the scalar kernel. Two tiles:
// - pairs of rows of A: 2 x 4 (2 queries x 4 keys), the lo and hi chains in two passes of 8
//   accumulators, the 8 outputs reduced by one tree (dot_tile2x4_avx2);
// - a last single row of A: 1 x 4, both chains in one pass, 4 outputs per tree (dot4_avx2).
// The pair tile's loop has copies for k = 32, 64 and 128 (dot_pairs_avx2<K>), fully unrolled.
// Rows of B past the last (n - 1) point at a valid row (n - 1 in the pair tile, the first of
// the group in the single-row one) and are not stored.
#include <immintrin.h>

#include "../ukernels.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FL_DOT_AI static __forceinline
#else
#define FL_DOT_AI static inline __attribute__((always_inline))
#endif

// Keeps a loaded vector in a register: without it GCC folds the load into each FMA that uses it,
// and a key vector used by two queries is loaded twice.
#if defined(__GNUC__) || defined(__clang__)
#define FL_DOT_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define FL_DOT_IN_REGISTER(v) (void)0
#endif

static inline __m256i dot_tail_mask_avx2(int64_t r) {  // lanes < r set, 0 <= r <= 8
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), idx);
}

// The contract's tree (h = 4, 2, 1) for four 16-lane sums given as w_q = lanes 0-7 + lanes
// 8-15 (the h = 8 step), every addition with the lower lane first: lanes 0..3 of the result are
// the four dot products, in order.
FL_DOT_AI __m128 dot_tree4_avx2(__m256 w0, __m256 w1, __m256 w2, __m256 w3) {
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
    // Lane l + lane l + 8, then the rest of the tree.
    return dot_tree4_avx2(_mm256_add_ps(lo0, hi0), _mm256_add_ps(lo1, hi1), _mm256_add_ps(lo2, hi2),
                          _mm256_add_ps(lo3, hi3));
}

// The contract's tree (h = 4, 2, 1) for eight 16-lane sums u0..u7, each given as its lanes 0-7 +
// lanes 8-15 (the h = 8 step, done by the caller), every addition with the lower lane first.
// Returns [u0 u2 u4 u6 | u1 u3 u5 u7]: the caller passes its outputs o0..o7 as
// u = (o0, o4, o1, o5, o2, o6, o3, o7), so that the result is [o0 o1 o2 o3 | o4 o5 o6 o7].
FL_DOT_AI __m256 dot_tree8_avx2(const __m256* u) {
    // l + 4: x_q = [u_2q lanes 0-3 + 4-7 | u_2q+1 lanes 0-3 + 4-7].
    __m256 x[4];
    for (int q = 0; q < 4; ++q)
        x[q] = _mm256_add_ps(_mm256_permute2f128_ps(u[2 * q], u[2 * q + 1], 0x20),
                             _mm256_permute2f128_ps(u[2 * q], u[2 * q + 1], 0x31));
    // l + 2: y0 = [u0: s0 s1, u2: s0 s1 | u1: s0 s1, u3: s0 s1], y1 the same for u4..u7.
    const __m256 y0 = _mm256_add_ps(_mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 y1 = _mm256_add_ps(_mm256_shuffle_ps(x[2], x[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(x[2], x[3], _MM_SHUFFLE(3, 2, 3, 2)));
    // l + 1.
    return _mm256_add_ps(_mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// One pass of a 2 x 4 tile: lanes 0-7 (OFF 0) or 8-15 (OFF 8) of every 16-element block of rows
// a0, a1 of A against rows bj[0..4) of B, 8 accumulators acc[i*4 + j] from zero. The last,
// partial block loads 0 past k; a pass whose lanes are all past k there takes fma(0, 0, acc).
template <int OFF>
FL_DOT_AI void dot_pass2x4_avx2(const float* a0, const float* a1, const float* const* bj,
                                int64_t full, int64_t tail, __m256* acc) {
    for (int q = 0; q < 8; ++q) acc[q] = _mm256_setzero_ps();
    for (int64_t p = OFF; p < full; p += 16) {
        const __m256 x0 = _mm256_loadu_ps(a0 + p), x1 = _mm256_loadu_ps(a1 + p);
        for (int j = 0; j < 4; ++j) {
            __m256 y = _mm256_loadu_ps(bj[j] + p);
            FL_DOT_IN_REGISTER(y);
            acc[j] = _mm256_fmadd_ps(x0, y, acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(x1, y, acc[4 + j]);
        }
    }
    if (tail > OFF) {
        const __m256i mk = dot_tail_mask_avx2(tail - OFF < 8 ? tail - OFF : 8);
        const int64_t p = full + OFF;
        const __m256 x0 = _mm256_maskload_ps(a0 + p, mk), x1 = _mm256_maskload_ps(a1 + p, mk);
        for (int j = 0; j < 4; ++j) {
            const __m256 y = _mm256_maskload_ps(bj[j] + p, mk);
            acc[j] = _mm256_fmadd_ps(x0, y, acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(x1, y, acc[4 + j]);
        }
    } else if (OFF == 8 && tail > 0) {
        // The hi lanes of a last block of at most 8: all past k, they take fma(0, 0, acc) as the
        // contract says. Not removable: it turns a -0 lane into +0 (see test_dot_rows_special).
        const __m256 z = _mm256_setzero_ps();
        for (int q = 0; q < 8; ++q) acc[q] = _mm256_fmadd_ps(z, z, acc[q]);
    }
}

// Rows a, a + lda of A against rows bj[0..4) of B into C[0][0..w), C[1][0..w) (at c, c + ldc).
// The lo and hi chains are independent until the tree's h = 8 step, so they run one after the
// other in 8 accumulators (both at once would take 16, all of AVX2's registers), and the 8 outputs
// share one tree and two row stores. The driver loops keys outside and query pairs inside, so a
// key is read from memory once for all the queries: T = 4 queries streaming 8 MB of keys of 64
// floats (C++ micro-benchmark, thread CPU time) took 385-420 us against 440-526 with the 2 x 2
// tiles before, which read each key once per pair (instructions per output: 27.6 -> 25.8), and
// 353-361 us once each key vector was loaded once for both queries (FL_DOT_IN_REGISTER; folded
// into both FMAs it was loaded twice: 10 loads per 8 FMAs, 391-397 us).
FL_DOT_AI void dot_tile2x4_avx2(const float* a, int64_t lda, const float* const* bj, int64_t w,
                                int64_t full, int64_t tail, float* c, int64_t ldc) {
    __m256 lo[8], hi[8];
    dot_pass2x4_avx2<0>(a, a + lda, bj, full, tail, lo);
    dot_pass2x4_avx2<8>(a, a + lda, bj, full, tail, hi);
    // h = 8, in the order dot_tree8 wants: u = (o0, o4, o1, o5, o2, o6, o3, o7).
    __m256 u[8];
    for (int q = 0; q < 4; ++q) {
        u[2 * q] = _mm256_add_ps(lo[q], hi[q]);
        u[2 * q + 1] = _mm256_add_ps(lo[q + 4], hi[q + 4]);
    }
    const __m256 r = dot_tree8_avx2(u);  // [row 0: keys 0..3 | row 1: keys 0..3]
    if (w == 4) {
        _mm_storeu_ps(c, _mm256_castps256_ps128(r));
        _mm_storeu_ps(c + ldc, _mm256_extractf128_ps(r, 1));
    } else {
        const __m128i mw = _mm256_castsi256_si128(dot_tail_mask_avx2(w));
        _mm_maskstore_ps(c, mw, _mm256_castps256_ps128(r));
        _mm_maskstore_ps(c + ldc, mw, _mm256_extractf128_ps(r, 1));
    }
}

// Rows [0, pairs) of A (an even count) against all n rows of B: rows of B outside, pairs of
// rows of A inside, so 4 rows of B (4 keys) stay in L1 while every pair of queries takes them.
// K > 0 is k known at compile time (the common head sizes: the passes are then fully unrolled,
// without loop control), K = 0 any k.
template <int64_t K>
FL_DOT_AI void dot_pairs_avx2(int64_t pairs, int64_t n, int64_t k, const float* a,
                              int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    if (K > 0) k = K;
    const int64_t tail = k % 16, full = k - tail;
    for (int64_t j = 0; j < n; j += 4) {
        const int64_t w = n - j < 4 ? n - j : 4;
        const float* bj[4];
        for (int q = 0; q < 4; ++q) bj[q] = b + (j + (q < w ? q : w - 1)) * ldb;
        for (int64_t i = 0; i < pairs; i += 2)
            dot_tile2x4_avx2(a + i * lda, lda, bj, w, full, tail, c + i * ldc + j, ldc);
    }
}

void fl_dot_rows_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          const float* b, int64_t ldb, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    // Head sizes 32, 64 and 128 get unrolled copies: decode attention's q.k at T = 4, D = 64
    // (C++ micro-benchmark, thread CPU time, alternating with the loop in one process) took
    // 15-22 % less time with the keys in L2 and 14-19 % less streaming them from L3 (B1 H8
    // S1024), the whole decode chunk (q.k, softmax, P.V) 2-9 % less; with 256 keys in L2 at
    // T = 2, 4, 8, D = 128 took 14-17 % less, D = 32 13-31 % less. Other k measured 0-2 %
    // slower in the loop copy (k = 48, 80, 200; at k = 80 0.5 % more instructions: register
    // allocation).
    const int64_t pairs = m / 2 * 2;
    if (pairs > 0) {
        switch (k) {
            case 32: dot_pairs_avx2<32>(pairs, n, k, a, lda, b, ldb, c, ldc); break;
            case 64: dot_pairs_avx2<64>(pairs, n, k, a, lda, b, ldb, c, ldc); break;
            case 128: dot_pairs_avx2<128>(pairs, n, k, a, lda, b, ldb, c, ldc); break;
            default: dot_pairs_avx2<0>(pairs, n, k, a, lda, b, ldb, c, ldc); break;
        }
    }
    // A last single row of A against 4 rows of B at a time, both chains in one pass (a 1 x 8
    // two-pass tile streamed 8 MB of keys ~4 % slower).
    if (pairs < m) {
        const float* ai = a + pairs * lda;
        float* ci = c + pairs * ldc;
        for (int64_t j = 0; j < n; j += 4) {
            const float* b0 = b + j * ldb;
            const float* b1 = j + 1 < n ? b0 + ldb : b0;
            const float* b2 = j + 2 < n ? b0 + 2 * ldb : b0;
            const float* b3 = j + 3 < n ? b0 + 3 * ldb : b0;
            const __m128 r = dot4_avx2(ai, ai, ai, ai, b0, b1, b2, b3, k);
            if (j + 4 <= n) {
                _mm_storeu_ps(ci + j, r);
            } else {
                _mm_maskstore_ps(ci + j, _mm256_castsi256_si128(dot_tail_mask_avx2(n - j)), r);
            }
        }
    }
}
