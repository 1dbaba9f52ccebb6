// softmax/scalar.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)).
//
// ISA: baseline (no extra flags). Width: 1 element. Selected by fl::kernels() when active_isa()
// is scalar (no AVX2+FMA, or FASTLAYERS_ISA=scalar; the NEON table uses the score-row kernels
// too). Three passes per row: max, exp + sum (exp stored into y), scale by 1/sum.
//
// Bitwise identical to every SIMD ISA (docs/architecture.md, cross-ISA identity): the exp is the
// shared algorithm (exp_scalar.inc), and sums use the fixed order of every ISA: 16 partial sums,
// element j going to sum j % 16 in index order (avx512: one zmm, avx2: two ymm, neon: four q;
// a tail adds into its lanes), then the tree ((s[l] + s[l+8]) for l < 8, then l + l+4, l + l+2,
// l + l+1).
//
// inf/NaN follow NumPy's `e = exp(x - max); e / e.sum()`: the max may skip a NaN, but that NaN
// then reaches the sum through exp(NaN - max), so the whole row is NaN as in NumPy; a +inf gives
// inf - inf = NaN; an all -inf row gives -inf - -inf = NaN.
#include <math.h>

#include "../ukernels.h"

#include "../vmath/exp_scalar.inc"

/* The fixed reduction tree of the 16 partial sums (the SIMD hsum order). */
static float sum16_scalar(const float* s) {
    float t8[8], t4[4];
    for (int l = 0; l < 8; ++l) t8[l] = s[l] + s[l + 8];
    for (int l = 0; l < 4; ++l) t4[l] = t8[l] + t8[l + 4];
    const float t2a = t4[0] + t4[2];
    const float t2b = t4[1] + t4[3];
    return t2a + t2b;
}

static void softmax_row_scalar(const float* x, float* y, int64_t n) {
    float m = fl_exp_scalar_bits_to_float(0xFF800000u); /* -inf */
    for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;

    // 16 partial sums, element i into s[i % 16] (the lanes of every SIMD ISA).
    float s[16] = {0.0f};
    for (int64_t i = 0; i < n; ++i) {
        const float e = fl_exp_nonpos_scalar(x[i] - m);
        y[i] = e;
        s[i & 15] += e;
    }
    const float inv = 1.0f / sum16_scalar(s);
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
}

void fl_softmax_rows_scalar(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                            int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) softmax_row_scalar(x + r * ldx, y + r * ldy, n);
}

/* Attention score rows (contract in ukernels.h). */
float fl_score_prep_scalar(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                           float masked, int subtract) {
    float m = fl_exp_scalar_bits_to_float(0xFF800000u); /* -inf */
    for (int64_t j = 0; j < n; ++j) {
        float v = x[j] * scale;
        if (j >= limit || (keep && keep[j] == 0)) v = subtract ? v - masked : masked;
        x[j] = v;
        m = v > m ? v : m;
    }
    return m;
}

float fl_row_max_scalar(const float* x, int64_t n) {
    float m = fl_exp_scalar_bits_to_float(0xFF800000u); /* -inf */
    for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
    return m;
}

float fl_exp_shift_sum_scalar(float* x, int64_t n, float scale, float m) {
    float s[16] = {0.0f};
    for (int64_t j = 0; j < n; ++j) {
        const float e = fl_exp_nonpos_scalar(fl_fmaf_scalar(x[j], scale, -m));
        x[j] = e;
        s[j & 15] += e;
    }
    return sum16_scalar(s);
}
