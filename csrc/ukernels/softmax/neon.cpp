// softmax/neon.cpp: row-wise stable softmax, y = exp(x - max) / sum(exp(x - max)).
//
// ISA: AArch64 Advanced SIMD (baseline on AArch64; this file is only compiled there). Width: 4
// floats per q register; the max pass runs 4 accumulators (16 floats per step), the exp pass 4
// (16 per step; the sums in the fixed order of softmax/scalar.cpp, so the bits equal every
// ISA's). The last n % 4 elements of a row go through a 4-float stack buffer, so nothing
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

    // Pass 2: e = exp(x - max) into y, and the row sum: 16 partial sums in lanes i % 16 (four q
    // registers: acc[k] holds lanes 4k..4k+3), the tail added into its own lanes.
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                          vdupq_n_f32(0.0f)};
    i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int k = 0; k < 4; ++k) {
            const float32x4_t e = fl_exp_neon(vsubq_f32(vld1q_f32(x + i + 4 * k), vmax));
            vst1q_f32(y + i + 4 * k, e);
            acc[k] = vaddq_f32(acc[k], e);
        }
    }
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = fl_exp_neon(vsubq_f32(vld1q_f32(x + i), vmax));
        vst1q_f32(y + i, e);
        acc[(i >> 2) & 3] = vaddq_f32(acc[(i >> 2) & 3], e);
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
        acc[(i >> 2) & 3] = vaddq_f32(acc[(i >> 2) & 3], vld1q_f32(buf));
    }

    // Pass 3: scale. sum >= 1 for a finite row (the max contributes exp(0) = 1). The sum tree:
    // lanes l + l+8, then l + l+4, l + l+2, l + l+1 (as on every ISA).
    const float32x4_t c = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
    const float32x2_t d = vadd_f32(vget_low_f32(c), vget_high_f32(c));
    const float inv_s = 1.0f / (vget_lane_f32(d, 0) + vget_lane_f32(d, 1));
    const float32x4_t inv = vdupq_n_f32(inv_s);
    i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(y + i), inv));
    for (; i < n; ++i) y[i] *= inv_s;
}

void fl_softmax_rows_neon(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) softmax_row_neon(x + r * ldx, y + r * ldy, n);
}
