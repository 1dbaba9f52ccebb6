// rownorm/avx2.cpp: the row statistics and passes of the normalizations (contract in
// csrc/ukernels/ukernels.h; scalar.cpp is the readable reference). The 32 double lanes are 8
// ymm accumulators (lanes 4i..4i+3 in accumulator i); the tail and the lane tree are lanes.h's.
// Compiled with -mavx2 -mfma; no FMA is used (the same separate roundings as scalar.cpp).
#include <immintrin.h>

#include "../ukernels.h"
#include "lanes.h"

using fl_rownorm::kLanes;

namespace {

// Sums term over a row: term4(4 floats) gives their 4 terms in double.
template <class Term4, class Term>
double row_sum_avx2(const float* x, int64_t n, Term4 term4, Term term) {
    __m256d acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (int i = 0; i < 8; ++i)
            acc[i] = _mm256_add_pd(acc[i], term4(_mm_loadu_ps(x + j + 4 * i)));
    }
    alignas(32) double lanes[kLanes];
    for (int i = 0; i < 8; ++i) _mm256_store_pd(lanes + 4 * i, acc[i]);
    return fl_rownorm::finish_lanes(lanes, x, j, n, term);
}

}  // namespace

double fl_row_sumsq_f64_avx2(const float* x, int64_t n) {
    return row_sum_avx2(
        x, n,
        [](__m128 v) {
            const __m256d d = _mm256_cvtps_pd(v);
            return _mm256_mul_pd(d, d);
        },
        fl_rownorm::term_sq);
}

double fl_row_devsq_f64_avx2(const float* x, int64_t n, float hi, float lo) {
    const __m128 vh = _mm_set1_ps(hi), vl = _mm_set1_ps(lo);
    return row_sum_avx2(
        x, n,
        [vh, vl](__m128 v) {
            const __m256d d = _mm256_cvtps_pd(_mm_sub_ps(_mm_sub_ps(v, vh), vl));
            return _mm256_mul_pd(d, d);
        },
        [hi, lo](float v) { return fl_rownorm::term_dev_sq(v, hi, lo); });
}

// Two sums of 32 lanes would take all 16 ymm registers, so the lanes are taken in two halves
// (lanes 0..15, then 16..31), each a walk over the row with 4 + 4 accumulators: the same
// additions into each lane, in the same order.
void fl_row_moments_f64_avx2(const float* x, int64_t n, float s, double* out) {
    const __m256d vs = _mm256_set1_pd((double)s);
    alignas(32) double l1[kLanes], l2[kLanes];
    const int64_t whole = n - n % kLanes;
    for (int half = 0; half < 2; ++half) {
        __m256d a1[4], a2[4];
        for (int i = 0; i < 4; ++i) a1[i] = a2[i] = _mm256_setzero_pd();
        for (int64_t j = 16 * half; j < whole; j += kLanes) {
            for (int i = 0; i < 4; ++i) {
                const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j + 4 * i)), vs);
                a1[i] = _mm256_add_pd(a1[i], d);
                a2[i] = _mm256_add_pd(a2[i], _mm256_mul_pd(d, d));
            }
        }
        for (int i = 0; i < 4; ++i) {
            _mm256_store_pd(l1 + 16 * half + 4 * i, a1[i]);
            _mm256_store_pd(l2 + 16 * half + 4 * i, a2[i]);
        }
    }
    fl_rownorm::finish_moments(l1, l2, x, whole, n, s, out);
}

void fl_row_norm_f32_avx2(const float* x, int64_t n, float hi, float lo, float f,
                          const float* gamma, const float* beta, float* y) {
    const __m256 vh = _mm256_set1_ps(hi), vl = _mm256_set1_ps(lo), vf = _mm256_set1_ps(f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 s = gamma ? _mm256_mul_ps(vf, _mm256_loadu_ps(gamma + j)) : vf;
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vh), vl), s);
        if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + j));
        _mm256_storeu_ps(y + j, v);
    }
    for (; j < n; ++j) {
        float v = ((x[j] - hi) - lo) * (gamma ? f * gamma[j] : f);
        if (beta) v = v + beta[j];
        y[j] = v;
    }
}

void fl_row_scale_f32_avx2(const float* x, int64_t n, float f, const float* scale, float* y) {
    const __m256 vf = _mm256_set1_ps(f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), vf);
        if (scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(scale + j));
        _mm256_storeu_ps(y + j, v);
    }
    for (; j < n; ++j) y[j] = scale ? (x[j] * f) * scale[j] : x[j] * f;
}

// 32 floats a step in 4 accumulators, the tail with a masked load (its lanes past n read as
// 0, whose key is the neutral 0x7FFFFFFF).
float fl_row_min_magnitude_avx2(const float* x, int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), one = _mm256_set1_epi32(1);
    auto key = [&](__m256 v) {
        const __m256i b = _mm256_and_si256(_mm256_castps_si256(v), abs_mask);
        return _mm256_and_si256(_mm256_sub_epi32(b, one), abs_mask);
    };
    __m256i acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = abs_mask;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32)
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm256_min_epi32(acc[i], key(_mm256_loadu_ps(x + j + 8 * i)));
    for (; j < n; j += 8) {
        const int64_t rem = n - j < 8 ? n - j : 8;
        const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), lanes);
        acc[0] = _mm256_min_epi32(acc[0], key(_mm256_maskload_ps(x + j, m)));
    }
    __m256i v = _mm256_min_epi32(_mm256_min_epi32(acc[0], acc[1]),
                                 _mm256_min_epi32(acc[2], acc[3]));
    alignas(32) int32_t l[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(l), v);
    int32_t least = l[0];
    for (int i = 1; i < 8; ++i) least = l[i] < least ? l[i] : least;
    return fl_rownorm::magnitude_from_key(least);
}
