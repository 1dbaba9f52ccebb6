// rownorm/avx2.cpp: the row statistics and passes of the normalizations (contract in
// csrc/ukernels/ukernels.h; scalar.cpp is the readable reference). The 32 double lanes are 8
// ymm accumulators (lanes 4i..4i+3 in accumulator i); the tail and the lane tree are lanes.h's
// additions, done in registers (masked loads and blends, lane_tree), as in avx512.cpp (which
// has the measurements).
// Compiled with -mavx2 -mfma; no FMA is used (the same separate roundings as scalar.cpp).
#include <immintrin.h>

#include "../ukernels.h"
#include "lanes.h"

using fl_rownorm::kLanes;

namespace {

// lanes.h's fixed tree in registers: lane l += lane l + w for w = 16, 8, 4, 2, 1 over the 32
// lanes held as acc[0..7] (lanes 4i..4i+3 in acc[i]); the same additions, operands in the same
// order, as the scalar tree's that lane 0 depends on, so the same bits, without a trip through
// an array on the stack per level.
inline double lane_tree(const __m256d* acc) {
    __m256d h16[4];
    for (int i = 0; i < 4; ++i) h16[i] = _mm256_add_pd(acc[i], acc[i + 4]);  // lanes 0-15
    const __m256d h8a = _mm256_add_pd(h16[0], h16[2]);                       // lanes 0-3
    const __m256d h8b = _mm256_add_pd(h16[1], h16[3]);                       // lanes 4-7
    const __m256d h4 = _mm256_add_pd(h8a, h8b);                              // lanes 0-3
    const __m128d h2 = _mm_add_pd(_mm256_castpd256_pd128(h4),
                                  _mm256_extractf128_pd(h4, 1));  // lanes 0-1 (+2, 3)
    return _mm_cvtsd_f64(_mm_add_sd(h2, _mm_unpackhi_pd(h2, h2)));  // lane 0 (+1)
}

// The lanes [0, rem) of 4 (rem < 4) as a float mask for a masked load and a double mask for
// a blend.
inline __m128i tail_mask4(int64_t rem) {
    return _mm_cmpgt_epi32(_mm_set1_epi32((int)rem), _mm_setr_epi32(0, 1, 2, 3));
}

// The tail of a row (fewer than kLanes elements from j, a multiple of kLanes, so element
// j + l goes into lane l) in registers: lanes 4i..4i+3 of acc[i0 + i] += the terms of their
// floats, for the blocks of 4 starting at j + 4 (i0 + i) < n with i0 + i < i1. A lane past the
// row is left as it was (a blend, as lanes.h leaves it: the term of a zeroed float is not 0).
// term4(4 floats) gives their 4 terms in double.
template <class Term4>
inline void add_tail(__m256d* acc, int i0, int i1, const float* x, int64_t j, int64_t n,
                     Term4 term4) {
    for (int i = i0; i < i1 && j + 4 * i < n; ++i) {
        const int64_t rem = n - j - 4 * i;
        if (rem >= 4) {
            acc[i - i0] = _mm256_add_pd(acc[i - i0], term4(_mm_loadu_ps(x + j + 4 * i)));
        } else {
            const __m128i m = tail_mask4(rem);
            const __m256d t = _mm256_add_pd(acc[i - i0],
                                            term4(_mm_maskload_ps(x + j + 4 * i, m)));
            acc[i - i0] = _mm256_blendv_pd(acc[i - i0], t,
                                           _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m)));
        }
    }
}

// The lanes [0, rem) of 8 (rem < 8) for the float passes' masked tail.
inline __m256i tail_mask8(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Sums term over a row: term4(4 floats) gives their 4 terms in double.
template <class Term4>
double row_sum_avx2(const float* x, int64_t n, Term4 term4) {
    __m256d acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (int i = 0; i < 8; ++i)
            acc[i] = _mm256_add_pd(acc[i], term4(_mm_loadu_ps(x + j + 4 * i)));
    }
    add_tail(acc, 0, 8, x, j, n, term4);
    return lane_tree(acc);
}

}  // namespace

double fl_row_sumsq_f64_avx2(const float* x, int64_t n) {
    return row_sum_avx2(x, n, [](__m128 v) {
        const __m256d d = _mm256_cvtps_pd(v);
        return _mm256_mul_pd(d, d);
    });
}

double fl_row_devsq_f64_avx2(const float* x, int64_t n, float hi, float lo) {
    const __m128 vh = _mm_set1_ps(hi), vl = _mm_set1_ps(lo);
    return row_sum_avx2(x, n, [vh, vl](__m128 v) {
        const __m256d d = _mm256_cvtps_pd(_mm_sub_ps(_mm_sub_ps(v, vh), vl));
        return _mm256_mul_pd(d, d);
    });
}

// Two sums of 32 lanes would take all 16 ymm registers, so the lanes are taken in two halves
// (lanes 0..15, then 16..31), each a walk over the row with 4 + 4 accumulators and its part of
// the tail: the same additions into each lane, in the same order. The first half's sums wait
// on the stack (the compiler's spill) for the tree's first level.
void fl_row_moments_f64_avx2(const float* x, int64_t n, float s, double* out) {
    const __m256d vs = _mm256_set1_pd((double)s);
    const int64_t whole = n - n % kLanes;
    __m256d a1[8], a2[8];
    for (int half = 0; half < 2; ++half) {
        __m256d* b1 = a1 + 4 * half;
        __m256d* b2 = a2 + 4 * half;
        for (int i = 0; i < 4; ++i) b1[i] = b2[i] = _mm256_setzero_pd();
        for (int64_t j = 16 * half; j < whole; j += kLanes) {
            for (int i = 0; i < 4; ++i) {
                const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j + 4 * i)), vs);
                b1[i] = _mm256_add_pd(b1[i], d);
                b2[i] = _mm256_add_pd(b2[i], _mm256_mul_pd(d, d));
            }
        }
        add_tail(b1, 4 * half, 4 * half + 4, x, whole, n,
                 [vs](__m128 v) { return _mm256_sub_pd(_mm256_cvtps_pd(v), vs); });
        add_tail(b2, 4 * half, 4 * half + 4, x, whole, n, [vs](__m128 v) {
            const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(v), vs);
            return _mm256_mul_pd(d, d);
        });
    }
    out[0] = lane_tree(a1);
    out[1] = lane_tree(a2);
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
    if (j < n) {  // the last 1-7 floats: the same operations, masked loads and store
        const __m256i m = tail_mask8(n - j);
        const __m256 s = gamma ? _mm256_mul_ps(vf, _mm256_maskload_ps(gamma + j, m)) : vf;
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), vh), vl),
                                 s);
        if (beta) v = _mm256_add_ps(v, _mm256_maskload_ps(beta + j, m));
        _mm256_maskstore_ps(y + j, m, v);
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
    if (j < n) {  // the last 1-7 floats: the same operations, masked loads and store
        const __m256i m = tail_mask8(n - j);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + j, m), vf);
        if (scale) v = _mm256_mul_ps(v, _mm256_maskload_ps(scale + j, m));
        _mm256_maskstore_ps(y + j, m, v);
    }
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
