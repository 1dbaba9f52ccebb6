// softmax/scalar.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)).
//
// ISA: baseline (no extra flags). Width: 1 element (4 independent partial sums). Selected by
// fl::kernels() when active_isa() is scalar (no AVX2+FMA / no NEON, or FASTLAYERS_ISA=scalar).
// Three passes per row: max, exp + sum (exp stored into y), scale by 1/sum.
//
// inf/NaN follow NumPy's `e = exp(x - max); e / e.sum()`: the max may skip a NaN, but that NaN
// then reaches the sum through exp(NaN - max), so the whole row is NaN as in NumPy; a +inf gives
// inf - inf = NaN; an all -inf row gives -inf - -inf = NaN.
#include <math.h>

#include "../ukernels.h"

#include "../vmath/exp_scalar.inc"

static void softmax_row_scalar(const float* x, float* y, int64_t n) {
    float m = fl_exp_scalar_bits_to_float(0xFF800000u); /* -inf */
    for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;

    // Four partial sums: shorter dependency chain and smaller rounding error on long rows.
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (int k = 0; k < 4; ++k) {
            const float e = fl_exp_scalar(x[i + k] - m);
            y[i + k] = e;
            s[k] += e;
        }
    }
    for (; i < n; ++i) {
        const float e = fl_exp_scalar(x[i] - m);
        y[i] = e;
        s[0] += e;
    }
    const float inv = 1.0f / ((s[0] + s[1]) + (s[2] + s[3]));
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
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        for (int k = 0; k < 4; ++k) {
            x[j + k] = fl_exp_scalar(fmaf(x[j + k], scale, -m));
            s[k] += x[j + k];
        }
    }
    for (; j < n; ++j) {
        x[j] = fl_exp_scalar(fmaf(x[j], scale, -m));
        s[0] += x[j];
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}
