// softmax/avx512.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)), and the
// attention score-row steps (fl_score_prep / fl_row_max / fl_exp_shift_sum, contract in
// ukernels.h).
//
// ISA: AVX-512 F/BW/DQ/VL + FMA (this file alone is compiled with the -mavx512* flags). Width:
// 16 floats per zmm; the max pass runs 4 accumulators (64 floats per step), the exp pass one
// (the sum order below). The last n % 16 elements of a row use k-masked loads and stores (no
// scalar tail loop), so nothing outside [0, n) of a row (or of keep) is read or written; rows may
// be strided (ldx/ldy >= n). Selected by fl::kernels() when active_isa() is avx512. Three passes
// per row: max, exp + sum (exp stored into y), scale by 1/sum.
//
// Bitwise identical to the other ISAs (docs/architecture.md, cross-ISA identity): the shared exp
// algorithm (exp_avx512.inc), and every row sum in the fixed order of softmax/scalar.cpp: 16
// partial sums in the 16 lanes (element j into lane j % 16, in index order, the masked tail
// added into its own lanes), then the tree l + l+8, l + l+4, l + l+2, l + l+1 (hsum_avx512).
//
// inf/NaN follow NumPy's `e = exp(x - max); e / e.sum()`, as on avx2: MAXPS may drop a NaN from
// the max, but that NaN then reaches the sum through exp(NaN - max), so the whole row is NaN; a
// +inf gives inf - inf = NaN; an all -inf row gives -inf - -inf = NaN.
#include "../ukernels.h"

// GCC 12's <avx512fintrin.h> builds the unused pass-through operand of unmasked intrinsics
// (_mm512_max_ps, _mm512_roundscale_ps, ...) from a self-initialized _mm512_undefined_ps(),
// which -Wuninitialized reports at every use; the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../vmath/exp_avx512.inc"

/* Max of the 16 lanes (the accumulator-second MAXPS rule, as on avx2: a NaN may be skipped). */
static inline float hmax_avx512(__m512 v) {
    const __m256 m8 = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* The fixed reduction tree of the 16 partial sums: l + l+8, l + l+4, l + l+2, l + l+1. */
static inline float hsum_avx512(__m512 v) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m512 neg_inf_avx512() {
    return _mm512_castsi512_ps(_mm512_set1_epi32((int)0xFF800000u));
}

/* Row max: four accumulators hide the MAXPS latency; masked-off tail lanes keep the
 * accumulator. The accumulator goes second, so a NaN element is skipped. */
float fl_row_max_avx512(const float* x, int64_t n) {
    const __m512 neg_inf = neg_inf_avx512();
    __m512 m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + j), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + j + 16), m1);
        m2 = _mm512_max_ps(_mm512_loadu_ps(x + j + 32), m2);
        m3 = _mm512_max_ps(_mm512_loadu_ps(x + j + 48), m3);
    }
    for (; j + 16 <= n; j += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(x + j), m0);
    if (j < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - j);
        m1 = _mm512_mask_max_ps(m1, k, _mm512_maskz_loadu_ps(k, x + j), m1);
    }
    return hmax_avx512(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

static void softmax_row_avx512(const float* x, float* y, int64_t n) {
    // Pass 1: row max.
    const __m512 vmax = _mm512_set1_ps(fl_row_max_avx512(x, n));

    // Pass 2: e = exp(x - max) into y, and the row sum in lanes j % 16 (one accumulator).
    __m512 s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = fl_exp_nonpos_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
        _mm512_storeu_ps(y + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        // Masked-off lanes keep their sum (adding exactly what the other ISAs add there: 0).
        const __mmask16 k = fl_avx512_tail_mask(n - i);
        const __m512 e = fl_exp_nonpos_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmax));
        _mm512_mask_storeu_ps(y + i, k, e);
        s = _mm512_mask_add_ps(s, k, s, e);
    }

    // Pass 3: scale. sum >= 1 for a finite row (the max contributes exp(0) = 1).
    const __m512 inv = _mm512_set1_ps(1.0f / hsum_avx512(s));
    i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (i < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), inv));
    }
}

void fl_softmax_rows_avx512(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                            int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) softmax_row_avx512(x + r * ldx, y + r * ldy, n);
}

/* Attention score rows (contract in ukernels.h). 16 lanes per step; lanes at or past `limit`
 * and lanes with keep == 0 are masked; the tail of the row is a k-mask, so nothing beyond x[n)
 * or keep[n) is touched. */
float fl_score_prep_avx512(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                           float masked, int subtract) {
    const __m512 vscale = _mm512_set1_ps(scale), vmasked = _mm512_set1_ps(masked);
    const int64_t lim = limit < n ? (limit < 0 ? 0 : limit) : n;
    __m512 m0 = neg_inf_avx512(), m1 = neg_inf_avx512();
    int64_t j = 0;
    /* Unmasked-by-position part without keep: plain scale + max. */
    if (keep == 0) {
        for (; j + 16 <= lim; j += 16) {
            const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + j), vscale);
            _mm512_storeu_ps(x + j, v);
            m0 = _mm512_max_ps(v, m0);
        }
    }
    for (; j < n; j += 16) {
        const __mmask16 k = fl_avx512_tail_mask(n - j);
        const int64_t open = lim - j;  // lanes below this are not masked by position
        __mmask16 ml = (__mmask16)~fl_avx512_tail_mask(open < 0 ? 0 : open);
        if (keep) {
            const __m128i kb = _mm_maskz_loadu_epi8(k, keep + j);
            ml = (__mmask16)(ml | _mm_testn_epi8_mask(kb, kb));
        }
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + j), vscale);
        const __m512 mv = subtract ? _mm512_sub_ps(v, vmasked) : vmasked;
        const __m512 r = _mm512_mask_blend_ps(ml, v, mv);
        _mm512_mask_storeu_ps(x + j, k, r);
        m1 = _mm512_mask_max_ps(m1, k, r, m1);
    }
    return hmax_avx512(_mm512_max_ps(m0, m1));
}

float fl_exp_shift_sum_avx512(float* x, int64_t n, float scale, float m) {
    const __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(-m);
    __m512 s = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 e = fl_exp_nonpos_avx512(_mm512_fmadd_ps(_mm512_loadu_ps(x + j), vs, vm));
        _mm512_storeu_ps(x + j, e);
        s = _mm512_add_ps(s, e);
    }
    if (j < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - j);
        const __m512 xt = _mm512_maskz_loadu_ps(k, x + j);
        const __m512 e = fl_exp_nonpos_avx512(_mm512_fmadd_ps(xt, vs, vm));
        _mm512_mask_storeu_ps(x + j, k, e);
        s = _mm512_mask_add_ps(s, k, s, e);
    }
    return hsum_avx512(s);
}
