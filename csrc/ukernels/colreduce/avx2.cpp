// colreduce/avx2.cpp: fl_col_sum_f64_avx2, fl_col_max_f32_avx2, fl_window_mean_f32_avx2 and the
// window poolings fl_window_max_f32_avx2 and fl_window_avg_f32_avx2
// (contracts in csrc/ukernels/ukernels.h): scalar.cpp's per-column chains, blocks of up to 32
// columns held in registers over all the rows (up to 8 ymm of doubles for the sums, 4 ymm of
// floats for the maxima; 16 columns for the window means, whose column and window sums take
// 4 ymm each), the last vector of a block read and written with masked loads and stores
// (masked-off lanes are neither read nor written; the window means mask only a partial one).
// The same bits as scalar.cpp and avx512.cpp.
//
// ISA: AVX2 (this file alone is compiled with -mavx2 -mfma). Selected by fl::kernels() when
// active_isa() is avx2; the avx512 table has its own but for the window poolings, which it
// takes from here.
#include <immintrin.h>
#include <string.h>

#include "../ukernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#define FL_CR2_AI static inline __attribute__((always_inline))
#else
#define FL_CR2_AI static inline
#endif

// Lanes [0, r) set (r >= the lane count: all).
static inline __m128i col_mask4_avx2(int64_t r) {
    return _mm_cmpgt_epi32(_mm_set1_epi32((int)(r < 4 ? r : 4)), _mm_setr_epi32(0, 1, 2, 3));
}
static inline __m256i col_mask4d_avx2(int64_t r) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(r < 4 ? r : 4), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline __m256i col_mask8_avx2(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < 8 ? r : 8)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// NV vectors of 4 columns (doubles), the last one with `last` (1..4) lanes.
FL_CR2_AI void col_sum_block_avx2(const int NV, const float* x, int64_t rows, int64_t ld,
                                  double* acc, int64_t last) {
    const __m128i kf = col_mask4_avx2(last);
    const __m256i kd = col_mask4d_avx2(last);
    __m256d s[8];
    for (int v = 0; v < NV - 1; ++v) s[v] = _mm256_loadu_pd(acc + 4 * v);
    s[NV - 1] = _mm256_maskload_pd(acc + 4 * (NV - 1), kd);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int v = 0; v < NV - 1; ++v)
            s[v] = _mm256_add_pd(s[v], _mm256_cvtps_pd(_mm_loadu_ps(xr + 4 * v)));
        s[NV - 1] = _mm256_add_pd(s[NV - 1],
                                  _mm256_cvtps_pd(_mm_maskload_ps(xr + 4 * (NV - 1), kf)));
    }
    for (int v = 0; v < NV - 1; ++v) _mm256_storeu_pd(acc + 4 * v, s[v]);
    _mm256_maskstore_pd(acc + 4 * (NV - 1), kd, s[NV - 1]);
}

void fl_col_sum_f64_avx2(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc) {
    for (int64_t j = 0; j < n; j += 32) {
        const int64_t rem = n - j < 32 ? n - j : 32;
        const int nv = (int)((rem + 3) / 4);
        const int64_t last = rem - 4 * (nv - 1);
        switch (nv) {
#define FL_CR2_SUM(NVC)                                                  \
    case NVC:                                                            \
        col_sum_block_avx2(NVC, x + j, rows, ld, acc + j, last);         \
        break;
            FL_CR2_SUM(1)
            FL_CR2_SUM(2)
            FL_CR2_SUM(3)
            FL_CR2_SUM(4)
            FL_CR2_SUM(5)
            FL_CR2_SUM(6)
            FL_CR2_SUM(7)
            default:
                col_sum_block_avx2(8, x + j, rows, ld, acc + j, last);
                break;
#undef FL_CR2_SUM
        }
    }
}

// m = (m > t || m is NaN) ? m : t, lane by lane.
static inline __m256 col_max_step_avx2(__m256 m, __m256 t) {
    const __m256 keep =
        _mm256_or_ps(_mm256_cmp_ps(m, t, _CMP_GT_OQ), _mm256_cmp_ps(m, m, _CMP_UNORD_Q));
    return _mm256_blendv_ps(t, m, keep);
}

// NV vectors of 8 columns, the last one with `last` (1..8) lanes.
FL_CR2_AI void col_max_block_avx2(const int NV, const float* x, int64_t rows, int64_t ld,
                                  float* m, int64_t last) {
    const __m256i k = col_mask8_avx2(last);
    __m256 s[4];
    for (int v = 0; v < NV - 1; ++v) s[v] = _mm256_loadu_ps(m + 8 * v);
    s[NV - 1] = _mm256_maskload_ps(m + 8 * (NV - 1), k);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int v = 0; v < NV - 1; ++v)
            s[v] = col_max_step_avx2(s[v], _mm256_loadu_ps(xr + 8 * v));
        s[NV - 1] = col_max_step_avx2(s[NV - 1], _mm256_maskload_ps(xr + 8 * (NV - 1), k));
    }
    for (int v = 0; v < NV - 1; ++v) _mm256_storeu_ps(m + 8 * v, s[v]);
    _mm256_maskstore_ps(m + 8 * (NV - 1), k, s[NV - 1]);
}

void fl_col_max_f32_avx2(const float* x, int64_t rows, int64_t n, int64_t ld, float* m) {
    for (int64_t j = 0; j < n; j += 32) {
        const int64_t rem = n - j < 32 ? n - j : 32;
        const int nv = (int)((rem + 7) / 8);
        const int64_t last = rem - 8 * (nv - 1);
        if (nv == 1)
            col_max_block_avx2(1, x + j, rows, ld, m + j, last);
        else if (nv == 2)
            col_max_block_avx2(2, x + j, rows, ld, m + j, last);
        else if (nv == 3)
            col_max_block_avx2(3, x + j, rows, ld, m + j, last);
        else
            col_max_block_avx2(4, x + j, rows, ld, m + j, last);
    }
}

// Whether size (a window's tap count, >= 1) is a power of two: its mantissa bits are zero. The
// mean then multiplies by 1 / size, which is exact (ukernels.h).
static int window_size_is_pow2_avx2(double size) {
    uint64_t bits;
    memcpy(&bits, &size, sizeof bits);
    return (bits & 0x000FFFFFFFFFFFFFull) == 0;
}

// A window mean of NV vectors of 4 channels; with PART, the last one has `last` (1..3) lanes,
// read and written with masked loads and stores (a masked store is microcoded on AMD cores:
// whole vectors take plain ones).
FL_CR2_AI void window_mean_block_avx2(const int NV, const int PART, const float* x, int64_t rows,
                                      int64_t cols, int64_t row_ld, int64_t col_ld, double size,
                                      int pow2, float* out, int64_t last) {
    const int NF = PART ? NV - 1 : NV;  // whole vectors
    const __m128i kf = col_mask4_avx2(last);
    __m256d acc[4], col[4];
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_setzero_pd();
    for (int64_t q = 0; q < cols; ++q) {
        for (int v = 0; v < NV; ++v) col[v] = _mm256_setzero_pd();
        for (int64_t r = 0; r < rows; ++r) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int v = 0; v < NF; ++v)
                col[v] = _mm256_add_pd(col[v], _mm256_cvtps_pd(_mm_loadu_ps(t + 4 * v)));
            if (PART)
                col[NF] = _mm256_add_pd(col[NF], _mm256_cvtps_pd(_mm_maskload_ps(t + 4 * NF, kf)));
        }
        for (int v = 0; v < NV; ++v) acc[v] = _mm256_add_pd(acc[v], col[v]);
    }
    const __m256d d = _mm256_set1_pd(pow2 ? 1.0 / size : size);
    for (int v = 0; v < NV; ++v) {
        const __m256d mean = pow2 ? _mm256_mul_pd(acc[v], d) : _mm256_div_pd(acc[v], d);
        if (v < NF)
            _mm_storeu_ps(out + 4 * v, _mm256_cvtpd_ps(mean));
        else
            _mm_maskstore_ps(out + 4 * v, kf, _mm256_cvtpd_ps(mean));
    }
}

void fl_window_mean_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                             int64_t col_ld, int64_t n, double size, float* out) {
    const int pow2 = window_size_is_pow2_avx2(size);
    for (int64_t j = 0; j < n; j += 16) {
        const int64_t rem = n - j < 16 ? n - j : 16;
        const int nv = (int)((rem + 3) / 4);
        const int64_t last = rem - 4 * (nv - 1);
        switch (nv * 2 + (last < 4)) {
#define FL_CR2_MEAN(NVC, PARTC)                                                        \
    case NVC * 2 + PARTC:                                                              \
        window_mean_block_avx2(NVC, PARTC, x + j, rows, cols, row_ld, col_ld, size, pow2, \
                               out + j, last);                                         \
        break;
            FL_CR2_MEAN(1, 0)
            FL_CR2_MEAN(1, 1)
            FL_CR2_MEAN(2, 0)
            FL_CR2_MEAN(2, 1)
            FL_CR2_MEAN(3, 0)
            FL_CR2_MEAN(3, 1)
            FL_CR2_MEAN(4, 1)
            default:
                window_mean_block_avx2(4, 0, x + j, rows, cols, row_ld, col_ld, size, pow2,
                                       out + j, last);
                break;
#undef FL_CR2_MEAN
        }
    }
}

// The window poolings (fl_window_max_f32_avx2, fl_window_avg_f32_avx2): blocks of up to 32
// channels (4 ymm) held in registers over all the window's taps, in row-major order; with
// PART the block's last vector has `last` (1..7) lanes, read with masked loads (masked-off
// lanes read as 0 and are never stored) and written with a masked store.
FL_CR2_AI void window_pool_block_avx2(const int NV, const int PART, const int AVG,
                                      const float* x, int64_t rows, int64_t cols,
                                      int64_t row_ld, int64_t col_ld, float count, int pow2,
                                      int padded, float* out, int64_t last) {
    const int NF = PART ? NV - 1 : NV;  // whole vectors
    const __m256i k = col_mask8_avx2(last);
    __m256 s[4];
    for (int v = 0; v < NF; ++v) s[v] = _mm256_loadu_ps(x + 8 * v);
    if (PART) s[NF] = _mm256_maskload_ps(x + 8 * NF, k);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t q = r == 0 ? 1 : 0; q < cols; ++q) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int v = 0; v < NV; ++v) {
                const __m256 tv = (PART && v == NF) ? _mm256_maskload_ps(t + 8 * v, k)
                                                    : _mm256_loadu_ps(t + 8 * v);
                s[v] = AVG ? _mm256_add_ps(s[v], tv) : col_max_step_avx2(s[v], tv);
            }
        }
    }
    if (AVG) {
        const __m256 z = _mm256_setzero_ps();
        const __m256 d = _mm256_set1_ps(pow2 ? 1.0f / count : count);
        for (int v = 0; v < NV; ++v) {
            if (padded) s[v] = _mm256_add_ps(s[v], z);
            s[v] = pow2 ? _mm256_mul_ps(s[v], d) : _mm256_div_ps(s[v], d);
        }
    }
    for (int v = 0; v < NF; ++v) _mm256_storeu_ps(out + 8 * v, s[v]);
    if (PART) _mm256_maskstore_ps(out + 8 * NF, k, s[NF]);
}

// Whether count (a window's tap count, >= 1) is a power of two: its mantissa bits are zero.
static int pool_count_is_pow2_avx2(float count) {
    uint32_t bits;
    memcpy(&bits, &count, sizeof bits);
    return (bits & 0x007FFFFFu) == 0;
}

static void window_pool_avx2(int avg, const float* x, int64_t rows, int64_t cols,
                             int64_t row_ld, int64_t col_ld, int64_t n, float count,
                             int padded, float* out) {
    const int pow2 = avg ? pool_count_is_pow2_avx2(count) : 0;
    for (int64_t j = 0; j < n; j += 32) {
        const int64_t rem = n - j < 32 ? n - j : 32;
        const int nv = (int)((rem + 7) / 8);
        const int64_t last = rem - 8 * (nv - 1);
        switch ((nv * 2 + (last < 8)) * 2 + avg) {
#define FL_CR2_POOL(NVC, PARTC, AVGC)                                                       \
    case (NVC * 2 + PARTC) * 2 + AVGC:                                                      \
        window_pool_block_avx2(NVC, PARTC, AVGC, x + j, rows, cols, row_ld, col_ld, count, \
                               pow2, padded, out + j, last);                                \
        break;
            FL_CR2_POOL(1, 1, 0)
            FL_CR2_POOL(1, 1, 1)
            FL_CR2_POOL(1, 0, 0)
            FL_CR2_POOL(1, 0, 1)
            FL_CR2_POOL(2, 1, 0)
            FL_CR2_POOL(2, 1, 1)
            FL_CR2_POOL(2, 0, 0)
            FL_CR2_POOL(2, 0, 1)
            FL_CR2_POOL(3, 1, 0)
            FL_CR2_POOL(3, 1, 1)
            FL_CR2_POOL(3, 0, 0)
            FL_CR2_POOL(3, 0, 1)
            FL_CR2_POOL(4, 1, 0)
            FL_CR2_POOL(4, 1, 1)
            FL_CR2_POOL(4, 0, 0)
            FL_CR2_POOL(4, 0, 1)
            default:  // (every case is listed above: nv is 1..4)
                break;
#undef FL_CR2_POOL
        }
    }
}

void fl_window_max_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                            int64_t col_ld, int64_t n, float* out) {
    window_pool_avx2(0, x, rows, cols, row_ld, col_ld, n, 1.0f, 0, out);
}

void fl_window_avg_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                            int64_t col_ld, int64_t n, float count, int padded, float* out) {
    window_pool_avx2(1, x, rows, cols, row_ld, col_ld, n, count, padded, out);
}
