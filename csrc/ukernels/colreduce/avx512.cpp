// colreduce/avx512.cpp: fl_col_sum_f64_avx512, fl_col_max_f32_avx512 and
// fl_window_mean_f32_avx512 (contracts in csrc/ukernels/ukernels.h): scalar.cpp's per-column
// chains, blocks of up to 64 columns held in registers over all the rows (up to 8 zmm of
// doubles for the sums, 4 zmm of floats for the maxima, 8 + 8 for a window mean's column and
// window sums), the last vector of a block k-masked (masked-off lanes are neither read nor
// written). The same bits as scalar.cpp and avx2.cpp.
//
// ISA: AVX-512 F/BW/DQ/VL (this file alone is compiled with the -mavx512* flags). Selected by
// fl::kernels() when active_isa() is avx512.
#include <immintrin.h>
#include <string.h>

#include "../ukernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FL_CR512_AI static inline __attribute__((always_inline))
#else
#define FL_CR512_AI static inline
#endif

// Lanes [0, r) set, r in 1..16.
static inline __mmask16 col_mask_avx512(int64_t r) {
    return r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

// NV vectors of 8 columns (doubles), the last one with `last` lanes.
FL_CR512_AI void col_sum_block_avx512(const int NV, const float* x, int64_t rows, int64_t ld,
                                      double* acc, __mmask8 last) {
    __m512d s[8];
    for (int v = 0; v < NV; ++v)
        s[v] = _mm512_maskz_loadu_pd(v == NV - 1 ? last : (__mmask8)0xFF, acc + 8 * v);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int v = 0; v < NV; ++v) {
            const __mmask8 k = v == NV - 1 ? last : (__mmask8)0xFF;
            s[v] = _mm512_add_pd(s[v], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, xr + 8 * v)));
        }
    }
    for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_pd(acc + 8 * v, v == NV - 1 ? last : (__mmask8)0xFF, s[v]);
}

void fl_col_sum_f64_avx512(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc) {
    for (int64_t j = 0; j < n; j += 64) {
        const int64_t rem = n - j < 64 ? n - j : 64;
        const int nv = (int)((rem + 7) / 8);
        const __mmask8 last = (__mmask8)col_mask_avx512(rem - 8 * (nv - 1));
        switch (nv) {
#define FL_CR512_SUM(NVC)                                                   \
    case NVC:                                                               \
        col_sum_block_avx512(NVC, x + j, rows, ld, acc + j, last);          \
        break;
            FL_CR512_SUM(1)
            FL_CR512_SUM(2)
            FL_CR512_SUM(3)
            FL_CR512_SUM(4)
            FL_CR512_SUM(5)
            FL_CR512_SUM(6)
            FL_CR512_SUM(7)
            default:
                col_sum_block_avx512(8, x + j, rows, ld, acc + j, last);
                break;
#undef FL_CR512_SUM
        }
    }
}

// m = (m > t || m is NaN) ? m : t, lane by lane.
static inline __m512 col_max_step_avx512(__m512 m, __m512 t) {
    const __mmask16 keep =
        _mm512_cmp_ps_mask(m, t, _CMP_GT_OQ) | _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(keep, t, m);
}

// NV vectors of 16 columns, the last one with `last` lanes.
FL_CR512_AI void col_max_block_avx512(const int NV, const float* x, int64_t rows, int64_t ld,
                                      float* m, __mmask16 last) {
    __m512 s[4];
    for (int v = 0; v < NV; ++v)
        s[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? last : (__mmask16)0xFFFF, m + 16 * v);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ld;
        for (int v = 0; v < NV; ++v) {
            const __mmask16 k = v == NV - 1 ? last : (__mmask16)0xFFFF;
            s[v] = col_max_step_avx512(s[v], _mm512_maskz_loadu_ps(k, xr + 16 * v));
        }
    }
    for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_ps(m + 16 * v, v == NV - 1 ? last : (__mmask16)0xFFFF, s[v]);
}

void fl_col_max_f32_avx512(const float* x, int64_t rows, int64_t n, int64_t ld, float* m) {
    for (int64_t j = 0; j < n; j += 64) {
        const int64_t rem = n - j < 64 ? n - j : 64;
        const int nv = (int)((rem + 15) / 16);
        const __mmask16 last = col_mask_avx512(rem - 16 * (nv - 1));
        if (nv == 1)
            col_max_block_avx512(1, x + j, rows, ld, m + j, last);
        else if (nv == 2)
            col_max_block_avx512(2, x + j, rows, ld, m + j, last);
        else if (nv == 3)
            col_max_block_avx512(3, x + j, rows, ld, m + j, last);
        else
            col_max_block_avx512(4, x + j, rows, ld, m + j, last);
    }
}

// Whether size (a window's tap count, >= 1) is a power of two: its mantissa bits are zero. The
// mean then multiplies by 1 / size, which is exact (ukernels.h).
static int window_size_is_pow2_avx512(double size) {
    uint64_t bits;
    memcpy(&bits, &size, sizeof bits);
    return (bits & 0x000FFFFFFFFFFFFFull) == 0;
}

// A window mean of NV vectors of 8 channels, the last one with the lanes of `last`.
FL_CR512_AI void window_mean_block_avx512(const int NV, const float* x, int64_t rows,
                                          int64_t cols, int64_t row_ld, int64_t col_ld,
                                          double size, int pow2, float* out, __mmask8 last) {
    __m512d acc[8], col[8];
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_pd();
    for (int64_t q = 0; q < cols; ++q) {
        for (int v = 0; v < NV; ++v) col[v] = _mm512_setzero_pd();
        for (int64_t r = 0; r < rows; ++r) {
            const float* t = x + r * row_ld + q * col_ld;
            for (int v = 0; v < NV; ++v) {
                const __mmask8 k = v == NV - 1 ? last : (__mmask8)0xFF;
                const __m256 tv = _mm256_maskz_loadu_ps(k, t + 8 * v);
                col[v] = _mm512_add_pd(col[v], _mm512_cvtps_pd(tv));
            }
        }
        for (int v = 0; v < NV; ++v) acc[v] = _mm512_add_pd(acc[v], col[v]);
    }
    const __m512d d = _mm512_set1_pd(pow2 ? 1.0 / size : size);
    for (int v = 0; v < NV; ++v) {
        const __m512d mean = pow2 ? _mm512_mul_pd(acc[v], d) : _mm512_div_pd(acc[v], d);
        _mm256_mask_storeu_ps(out + 8 * v, v == NV - 1 ? last : (__mmask8)0xFF,
                              _mm512_cvtpd_ps(mean));
    }
}

void fl_window_mean_f32_avx512(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                               int64_t col_ld, int64_t n, double size, float* out) {
    const int pow2 = window_size_is_pow2_avx512(size);
    for (int64_t j = 0; j < n; j += 64) {
        const int64_t rem = n - j < 64 ? n - j : 64;
        const int nv = (int)((rem + 7) / 8);
        const __mmask8 last = (__mmask8)col_mask_avx512(rem - 8 * (nv - 1));
        switch (nv) {
#define FL_CR512_MEAN(NVC)                                                                   \
    case NVC:                                                                                \
        window_mean_block_avx512(NVC, x + j, rows, cols, row_ld, col_ld, size, pow2, out + j, \
                                 last);                                                  \
        break;
            FL_CR512_MEAN(1)
            FL_CR512_MEAN(2)
            FL_CR512_MEAN(3)
            FL_CR512_MEAN(4)
            FL_CR512_MEAN(5)
            FL_CR512_MEAN(6)
            FL_CR512_MEAN(7)
            default:
                window_mean_block_avx512(8, x + j, rows, cols, row_ld, col_ld, size, pow2,
                                         out + j, last);
                break;
#undef FL_CR512_MEAN
        }
    }
}
