// softmax/avx2.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)).
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Width: 8 floats per ymm;
// the max pass runs 4 accumulators (32 floats per step), the exp pass 2 (16 per step). The last
// n % 8 elements of a row use maskload/maskstore, so nothing outside [0, n) of a row is read or
// written (rows may be strided, ldx/ldy >= n). Selected by fl::kernels() when active_isa() is
// avx2. Three passes per row: max, exp + sum (exp stored into y), scale by 1/sum.
//
// Bitwise identical to the other ISAs (docs/architecture.md, cross-ISA identity): the shared
// exp algorithm, and every row sum in the fixed order of softmax/scalar.cpp: 16 partial sums in
// lanes j % 16 (s0 = lanes 0-7, s1 = lanes 8-15, the tail added into its own lanes), reduced by
// hsum_avx2(s0 + s1) = the tree l + l+8, l + l+4, l + l+2, l + l+1.
//
// inf/NaN follow NumPy's `e = exp(x - max); e / e.sum()`: MAXPS may drop a NaN from the max, but
// that NaN then reaches the sum through exp(NaN - max), so the whole row is NaN as in NumPy; a
// +inf gives inf - inf = NaN; an all -inf row gives -inf - -inf = NaN.
#include "../ukernels.h"

#include "../vmath/exp_avx2.inc"

static inline float hmax_avx2(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row max: four accumulators hide the MAXPS latency; masked-off tail lanes count as -inf.
 * MAXPS returns its second operand when either is NaN, so the accumulator goes second: a NaN
 * element is skipped and never replaces (and later loses) the running max. */
float fl_row_max_avx2(const float* x, int64_t n) {
    const __m256 neg_inf = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xFF800000u));
    __m256 m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
        m2 = _mm256_max_ps(_mm256_loadu_ps(x + j + 16), m2);
        m3 = _mm256_max_ps(_mm256_loadu_ps(x + j + 24), m3);
    }
    for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
    if (j < n) {
        const __m256i mask = fl_avx2_tail_mask(n - j);
        const __m256 v = _mm256_maskload_ps(x + j, mask);
        m1 = _mm256_max_ps(_mm256_blendv_ps(neg_inf, v, _mm256_castsi256_ps(mask)), m1);
    }
    return hmax_avx2(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
}

static void softmax_row_avx2(const float* x, float* y, int64_t n) {
    // Pass 1: row max.
    const __m256 vmax = _mm256_set1_ps(fl_row_max_avx2(x, n));

    // Pass 2: e = exp(x - max) into y, and the row sum.
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 e0 = fl_exp_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        const __m256 e1 = fl_exp_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmax));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    // The rest (< 16 elements) into the lanes j % 16: s0 for the first 8, s1 for the others.
    if (n - i >= 8) {
        const __m256 e = fl_exp_nonpos_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(y + i, e);
        s0 = _mm256_add_ps(s0, e);
        i += 8;
        if (i < n) {
            // exp of a masked-off lane (x = 0) is arbitrary, even inf/NaN: zero it before summing.
            const __m256i mask = fl_avx2_tail_mask(n - i);
            __m256 t = fl_exp_nonpos_avx2(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vmax));
            t = _mm256_and_ps(t, _mm256_castsi256_ps(mask));
            _mm256_maskstore_ps(y + i, mask, t);
            s1 = _mm256_add_ps(s1, t);
        }
    } else if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        __m256 t = fl_exp_nonpos_avx2(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vmax));
        t = _mm256_and_ps(t, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(y + i, mask, t);
        s0 = _mm256_add_ps(s0, t);
    }

    // Pass 3: scale. sum >= 1 for a finite row (the max contributes exp(0) = 1).
    const __m256 inv = _mm256_set1_ps(1.0f / hsum_avx2(_mm256_add_ps(s0, s1)));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mask, _mm256_mul_ps(_mm256_maskload_ps(y + i, mask), inv));
    }
}

void fl_softmax_rows_avx2(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) softmax_row_avx2(x + r * ldx, y + r * ldy, n);
}

/* Attention score rows (contract in ukernels.h). 8 lanes per step; the tail of the row is
 * masked so nothing beyond x[n) or keep[n) is touched. */
static inline __m256 score_prep_8(__m256 x, __m256 scale, __m256i masked_lanes, __m256 masked,
                                  int subtract) {
    const __m256 v = _mm256_mul_ps(x, scale);
    const __m256 mv = subtract ? _mm256_sub_ps(v, masked) : masked;
    return _mm256_blendv_ps(v, mv, _mm256_castsi256_ps(masked_lanes));
}

/* j - lim + 1 clamped to [-8, 1]: lane i (0..7) of the 8 at j is masked by position iff this
 * exceeds -i; the clamp keeps the 32-bit compare right for rows of any length. */
static inline int lanes_from(int64_t j, int64_t lim) {
    const int64_t d = j - lim + 1;
    return d < -8 ? -8 : (d > 1 ? 1 : (int)d);
}

float fl_score_prep_avx2(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                         float masked, int subtract) {
    const __m256 neg_inf = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xFF800000u));
    const __m256 vscale = _mm256_set1_ps(scale), vmasked = _mm256_set1_ps(masked);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i zero = _mm256_setzero_si256();
    const int64_t lim = limit < n ? (limit < 0 ? 0 : limit) : n;
    __m256 m0 = neg_inf, m1 = neg_inf;
    int64_t j = 0;
    /* Unmasked-by-position part without keep: plain scale + max. */
    if (keep == 0) {
        for (; j + 8 <= lim; j += 8) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), vscale);
            _mm256_storeu_ps(x + j, v);
            m0 = _mm256_max_ps(v, m0);
        }
    }
    for (; j + 8 <= n; j += 8) {
        /* Lanes at or past `limit` are masked; so are those with keep == 0. */
        __m256i ml = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes_from(j, lim)),
                                        _mm256_sub_epi32(zero, iota));
        if (keep) {
            const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(keep + j)));
            ml = _mm256_or_si256(ml, _mm256_cmpeq_epi32(k, zero));
        }
        const __m256 v = score_prep_8(_mm256_loadu_ps(x + j), vscale, ml, vmasked, subtract);
        _mm256_storeu_ps(x + j, v);
        m1 = _mm256_max_ps(v, m1);
    }
    if (j < n) {
        const int64_t rem = n - j;
        const __m256i tail = fl_avx2_tail_mask(rem);
        int32_t kb[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        if (keep)
            for (int64_t t = 0; t < rem; ++t) kb[t] = keep[j + t];
        __m256i ml = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes_from(j, lim)),
                                        _mm256_sub_epi32(zero, iota));
        ml = _mm256_or_si256(ml, _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i*)kb), zero));
        const __m256 v =
            score_prep_8(_mm256_maskload_ps(x + j, tail), vscale, ml, vmasked, subtract);
        _mm256_maskstore_ps(x + j, tail, v);
        m1 = _mm256_max_ps(_mm256_blendv_ps(neg_inf, v, _mm256_castsi256_ps(tail)), m1);
    }
    return hmax_avx2(_mm256_max_ps(m0, m1));
}

float fl_exp_shift_sum_avx2(float* x, int64_t n, float scale, float m) {
    const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(-m);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 e0 = fl_exp_nonpos_avx2(_mm256_fmadd_ps(_mm256_loadu_ps(x + j), vs, vm));
        const __m256 e1 = fl_exp_nonpos_avx2(_mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), vs, vm));
        _mm256_storeu_ps(x + j, e0);
        _mm256_storeu_ps(x + j + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    if (n - j >= 8) {
        const __m256 e = fl_exp_nonpos_avx2(_mm256_fmadd_ps(_mm256_loadu_ps(x + j), vs, vm));
        _mm256_storeu_ps(x + j, e);
        s0 = _mm256_add_ps(s0, e);
        j += 8;
        if (j < n) {
            const __m256i mask = fl_avx2_tail_mask(n - j);
            const __m256 xt = _mm256_maskload_ps(x + j, mask);
            __m256 e1 = fl_exp_nonpos_avx2(_mm256_fmadd_ps(xt, vs, vm));
            e1 = _mm256_and_ps(e1, _mm256_castsi256_ps(mask));
            _mm256_maskstore_ps(x + j, mask, e1);
            s1 = _mm256_add_ps(s1, e1);
        }
    } else if (j < n) {
        const __m256i mask = fl_avx2_tail_mask(n - j);
        __m256 e = fl_exp_nonpos_avx2(_mm256_fmadd_ps(_mm256_maskload_ps(x + j, mask), vs, vm));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(x + j, mask, e);
        s0 = _mm256_add_ps(s0, e);
    }
    return hsum_avx2(_mm256_add_ps(s0, s1));
}
