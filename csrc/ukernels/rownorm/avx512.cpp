// rownorm/avx512.cpp: the row statistics and passes of the normalizations (contract in
// csrc/ukernels/ukernels.h; scalar.cpp is the readable reference). The 32 double lanes are 4
// zmm accumulators (lanes 8i..8i+7 in accumulator i); the tail and the lane tree are lanes.h's.
// The float passes take 16 lanes at a time and a k-masked tail. Compiled with the AVX-512
// flags; no FMA is used (the same separate roundings as scalar.cpp).
#include <immintrin.h>

#include "../ukernels.h"
#include "lanes.h"

// GCC 12's _mm512_cvtps_pd starts from _mm512_undefined_pd(), which -Wmaybe-uninitialized
// reports once inlined (a false positive; colreduce/avx512.cpp says the same).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

using fl_rownorm::kLanes;

namespace {

// Sums term over a row: widen(x8) gives the 8 doubles of 8 floats, term applied.
template <class Widen, class Term>
double row_sum_avx512(const float* x, int64_t n, Widen widen, Term term) {
    __m512d acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm512_add_pd(acc[i], widen(_mm256_loadu_ps(x + j + 8 * i)));
    }
    alignas(64) double lanes[kLanes];
    for (int i = 0; i < 4; ++i) _mm512_store_pd(lanes + 8 * i, acc[i]);
    return fl_rownorm::finish_lanes(lanes, x, j, n, term);
}

inline __mmask16 tail_mask(int64_t rem) {
    return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
}

}  // namespace

double fl_row_sumsq_f64_avx512(const float* x, int64_t n) {
    return row_sum_avx512(
        x, n,
        [](__m256 v) {
            const __m512d d = _mm512_cvtps_pd(v);
            return _mm512_mul_pd(d, d);
        },
        fl_rownorm::term_sq);
}

double fl_row_devsq_f64_avx512(const float* x, int64_t n, float hi, float lo) {
    const __m256 vh = _mm256_set1_ps(hi), vl = _mm256_set1_ps(lo);
    return row_sum_avx512(
        x, n,
        [vh, vl](__m256 v) {
            const __m512d d = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_sub_ps(v, vh), vl));
            return _mm512_mul_pd(d, d);
        },
        [hi, lo](float v) { return fl_rownorm::term_dev_sq(v, hi, lo); });
}

void fl_row_moments_f64_avx512(const float* x, int64_t n, float s, double* out) {
    const __m512d vs = _mm512_set1_pd((double)s);
    __m512d a1[4], a2[4];
    for (int i = 0; i < 4; ++i) a1[i] = a2[i] = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (int i = 0; i < 4; ++i) {
            const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8 * i)), vs);
            a1[i] = _mm512_add_pd(a1[i], d);
            a2[i] = _mm512_add_pd(a2[i], _mm512_mul_pd(d, d));
        }
    }
    alignas(64) double l1[kLanes], l2[kLanes];
    for (int i = 0; i < 4; ++i) {
        _mm512_store_pd(l1 + 8 * i, a1[i]);
        _mm512_store_pd(l2 + 8 * i, a2[i]);
    }
    fl_rownorm::finish_moments(l1, l2, x, j, n, s, out);
}

void fl_row_norm_f32_avx512(const float* x, int64_t n, float hi, float lo, float f,
                            const float* gamma, const float* beta, float* y) {
    const __m512 vh = _mm512_set1_ps(hi), vl = _mm512_set1_ps(lo), vf = _mm512_set1_ps(f);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 s = gamma ? _mm512_mul_ps(vf, _mm512_maskz_loadu_ps(m, gamma + j)) : vf;
        __m512 v = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vh), vl);
        v = _mm512_mul_ps(v, s);
        if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + j));
        _mm512_mask_storeu_ps(y + j, m, v);
    }
}

void fl_row_scale_f32_avx512(const float* x, int64_t n, float f, const float* scale, float* y) {
    const __m512 vf = _mm512_set1_ps(f);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), vf);
        if (scale) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, scale + j));
        _mm512_mask_storeu_ps(y + j, m, v);
    }
}

// 64 floats a step in 4 accumulators, the tail k-masked (its lanes read as 0, whose key is the
// neutral 0x7FFFFFFF).
float fl_row_min_magnitude_avx512(const float* x, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
    auto key = [&](__m512 v) {
        const __m512i b = _mm512_and_si512(_mm512_castps_si512(v), abs_mask);
        return _mm512_and_si512(_mm512_sub_epi32(b, one), abs_mask);
    };
    __m512i acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = abs_mask;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64)
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm512_min_epi32(acc[i], key(_mm512_loadu_ps(x + j + 16 * i)));
    for (; j < n; j += 16)
        acc[0] = _mm512_min_epi32(acc[0], key(_mm512_maskz_loadu_ps(tail_mask(n - j), x + j)));
    const __m512i v = _mm512_min_epi32(_mm512_min_epi32(acc[0], acc[1]),
                                       _mm512_min_epi32(acc[2], acc[3]));
    return fl_rownorm::magnitude_from_key(_mm512_reduce_min_epi32(v));
}
