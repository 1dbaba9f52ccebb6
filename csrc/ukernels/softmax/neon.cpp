// softmax/neon.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)).
//
// ISA: AArch64 Advanced SIMD (baseline on AArch64; this file is only compiled there). Width: 4
// floats per q register; the max pass runs 4 accumulators (16 floats per step), the exp pass 2
// (8 per step). The last n % 4 elements of a row go through a 4-float stack buffer, so nothing
// outside [0, n) of a row is read or written. Selected by fl::kernels() when active_isa() is
// neon. Three passes per row: max, exp + sum (exp stored into y), scale by 1/sum.
//
// inf/NaN follow NumPy's `e = exp(x - max); e / e.sum()`: FMAX propagates NaN, a +inf gives
// inf - inf = NaN, an all -inf row gives -inf - -inf = NaN.
#include "../ukernels.h"

#include "../vmath/exp_neon.inc"

static void softmax_row_neon(const float* x, float* y, int64_t n) {
    const float neg_inf = -__builtin_inff();

    // Pass 1: row max.
    float32x4_t m0 = vdupq_n_f32(neg_inf), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = vmaxq_f32(m0, vld1q_f32(x + i));
        m1 = vmaxq_f32(m1, vld1q_f32(x + i + 4));
        m2 = vmaxq_f32(m2, vld1q_f32(x + i + 8));
        m3 = vmaxq_f32(m3, vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) m0 = vmaxq_f32(m0, vld1q_f32(x + i));
    const int64_t tail = n - i;
    if (tail > 0) {
        float buf[4] = {neg_inf, neg_inf, neg_inf, neg_inf};
        for (int64_t j = 0; j < tail; ++j) buf[j] = x[i + j];
        m1 = vmaxq_f32(m1, vld1q_f32(buf));
    }
    const float32x4_t vmax =
        vdupq_n_f32(vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3))));

    // Pass 2: e = exp(x - max) into y, and the row sum.
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t e0 = fl_exp_neon(vsubq_f32(vld1q_f32(x + i), vmax));
        const float32x4_t e1 = fl_exp_neon(vsubq_f32(vld1q_f32(x + i + 4), vmax));
        vst1q_f32(y + i, e0);
        vst1q_f32(y + i + 4, e1);
        s0 = vaddq_f32(s0, e0);
        s1 = vaddq_f32(s1, e1);
    }
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = fl_exp_neon(vsubq_f32(vld1q_f32(x + i), vmax));
        vst1q_f32(y + i, e);
        s0 = vaddq_f32(s0, e);
    }
    if (tail > 0) {
        float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t j = 0; j < tail; ++j) buf[j] = x[i + j];
        vst1q_f32(buf, fl_exp_neon(vsubq_f32(vld1q_f32(buf), vmax)));
        // Unused lanes hold exp(0 - max), arbitrary (even NaN): zero them before summing.
        for (int64_t j = 0; j < 4; ++j) {
            if (j < tail) {
                y[i + j] = buf[j];
            } else {
                buf[j] = 0.0f;
            }
        }
        s1 = vaddq_f32(s1, vld1q_f32(buf));
    }

    // Pass 3: scale. sum >= 1 for a finite row (the max contributes exp(0) = 1).
    const float inv_s = 1.0f / vaddvq_f32(vaddq_f32(s0, s1));
    const float32x4_t inv = vdupq_n_f32(inv_s);
    i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(y + i), inv));
    for (; i < n; ++i) y[i] *= inv_s;
}

void fl_softmax_rows_neon(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) softmax_row_neon(x + r * ldx, y + r * ldy, n);
}
