// rownorm/avx512.cpp: the row statistics and passes of the normalizations (contract in
// csrc/ukernels/ukernels.h; scalar.cpp is the readable reference). The 32 double lanes are 4
// zmm accumulators (lanes 8i..8i+7 in accumulator i); the tail and the lane tree are lanes.h's
// additions, done in registers (k-masked tail, lane_tree): through an array on the stack, one
// store-forwarded trip per tree level, they were most of a short row's time (a LayerNorm of
// 4096 rows of 10: 85 -> 27 ns a row on Zen 4; the AVX2 file does the same since 2026-12-07,
// measured on a Zen 3 with AVX2 only: rows of 10 96 -> 57 ns, of 64 68 -> 63, of 768 299 ->
// 282 (LayerNormalization; on Zen 4's avx2 path it had been slower on rows of 64).
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

// lanes.h's fixed tree in registers: lane l += lane l + w for w = 16, 8, 4, 2, 1 over the 32
// lanes held as acc[0..3] (lanes 8i..8i+7 in acc[i]); the same additions as the scalar tree's
// that lane 0 depends on, so the same bits, without a trip through memory per level.
inline double lane_tree(const __m512d* acc) {
    const __m512d h16 = _mm512_add_pd(acc[0], acc[2]);    // lanes 0-7 (+16..23)
    const __m512d h16b = _mm512_add_pd(acc[1], acc[3]);   // lanes 8-15 (+24..31)
    const __m512d h8 = _mm512_add_pd(h16, h16b);          // lanes 0-7 (+8..15)
    const __m256d h4 = _mm256_add_pd(_mm512_castpd512_pd256(h8),
                                     _mm512_extractf64x4_pd(h8, 1));  // lanes 0-3 (+4..7)
    const __m128d h2 = _mm_add_pd(_mm256_castpd256_pd128(h4),
                                  _mm256_extractf128_pd(h4, 1));       // lanes 0-1 (+2, 3)
    return _mm_cvtsd_f64(_mm_add_sd(h2, _mm_unpackhi_pd(h2, h2)));  // lane 0 (+1)
}

// The tail of a row (fewer than kLanes elements from j, a multiple of kLanes, so element
// j + l goes into lane l): lanes 8i..8i+7 of acc[i] += the terms of their floats, k-masked.
// The mask is what leaves a lane past the row as it was, as lanes.h does: the term of a
// zeroed float is not 0 (moments: -s; devsq: (hi + lo)^2). term8(x8) gives the 8 doubles of
// 8 floats, term applied.
template <class Term8>
inline void add_tail(__m512d* acc, const float* x, int64_t j, int64_t n, Term8 term8) {
    for (int i = 0; i < 4 && j + 8 * i < n; ++i) {
        const int64_t rem = n - j - 8 * i;
        const __mmask8 m = rem >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << rem) - 1u);
        acc[i] = _mm512_mask_add_pd(acc[i], m, acc[i],
                                    term8(_mm256_maskz_loadu_ps(m, x + j + 8 * i)));
    }
}

// Sums term over a row: widen(x8) gives the 8 doubles of 8 floats, term applied.
template <class Widen>
double row_sum_avx512(const float* x, int64_t n, Widen widen) {
    __m512d acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (int i = 0; i < 4; ++i)
            acc[i] = _mm512_add_pd(acc[i], widen(_mm256_loadu_ps(x + j + 8 * i)));
    }
    add_tail(acc, x, j, n, widen);
    return lane_tree(acc);
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
        });
}

double fl_row_devsq_f64_avx512(const float* x, int64_t n, float hi, float lo) {
    const __m256 vh = _mm256_set1_ps(hi), vl = _mm256_set1_ps(lo);
    return row_sum_avx512(
        x, n,
        [vh, vl](__m256 v) {
            const __m512d d = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_sub_ps(v, vh), vl));
            return _mm512_mul_pd(d, d);
        });
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
    // the tail as add_tail's, both sums from one load of each block
    for (int i = 0; i < 4 && j + 8 * i < n; ++i) {
        const int64_t rem = n - j - 8 * i;
        const __mmask8 m = rem >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << rem) - 1u);
        const __m512d d =
            _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + j + 8 * i)), vs);
        a1[i] = _mm512_mask_add_pd(a1[i], m, a1[i], d);
        a2[i] = _mm512_mask_add_pd(a2[i], m, a2[i], _mm512_mul_pd(d, d));
    }
    out[0] = lane_tree(a1);
    out[1] = lane_tree(a2);
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
