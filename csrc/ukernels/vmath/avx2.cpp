// vmath/avx2.cpp: float32 vector math, 8 lanes (one ymm) per step: y[i] = exp(x[i]) (vexp), the
// elementwise Keras activations in place (fl_act_<name>_avx2, algorithms in act_avx2.inc) and
// vsigmoid / vtanh out of place for the LSTM/GRU gates.
//
// ISA: AVX2 + FMA (this file alone is compiled with -mavx2 -mfma). Width: 8 floats; the last
// n % 8 elements use maskload/maskstore (no access past x[n-1] / y[n-1]). Selected by
// fl::kernels() when active_isa() is avx2 (CPUID AVX2 && FMA && OS ymm support).
//
// Accuracy, measured by csrc/tests/exp_ulp_check.cpp (fl_exp_ulp) over all 2,237,530,113 floats
// x in [-87, 88] against the correctly rounded float(exp(double(x))): max error 1 ULP (ordinal
// distance between floats), 1.014 ULP relative to the exact value; 99.23% of results are the
// correctly rounded float. Also 1 ULP max on the rest of the normal-result range,
// [ln FLT_MIN, -87) and (88, ln FLT_MAX]. Every ISA (scalar, avx2, avx512, neon) runs this one
// algorithm operation for operation and returns the same bits, so these figures hold for all.
// Special values: NaN -> NaN, x < -87.3365 (ln FLT_MIN, incl. -inf) -> 0 (no denormals),
// x > 88.7228 (incl. +inf) -> +inf. exp(0) == 1 exactly.
//
// Activations: max error over every float x in [-100, 100] (2,240,806,913 values), measured by
// csrc/tests/vmath_ulp_check.cpp (fl_vmath_ulp), as the ordinal distance to the double
// reference rounded to float (vmath_reference.h), over exact results >= 2^-126 (2^-119 for
// silu, mish, gelu_tanh); "vs exact" in ULPs of the exact value; below that threshold the max
// absolute error (where flushing to 0 happens).
//   activation      ULP  vs exact  abs below threshold
//   sigmoid          2     2.40    1.2e-38  (x < -87.34: exp(-|x|) flushed, result 0)
//   tanh             2     2.50    0
//   gelu             4     4.47    4.7e-39  (x < -13.2)
//   gelu_tanh        4     4.22    1.2e-37  (x < -10)
//   silu             3     3.19    1.0e-36  (x < -87.34: result 0 although up to 1.0e-36)
//   elu, celu        1     0.89    0
//   selu             2     1.58    1.1e-45
//   softplus         2     2.42    1.2e-38
//   log_sigmoid      2     2.42    1.2e-38
//   mish             4     3.93    1.0e-36  (as silu)
//   exponential      1     1.01    1.2e-38
//   tanh_shrink      4     3.61    2.1e-45
//   squareplus       3     2.75    0
//   softsign         1     1.49    0
//   hard_sigmoid     1     1.00    0
//   hard_silu        2     1.87    7.0e-46
//   sparse_plus      2     1.91    0
//   relu, relu6, leaky_relu, hard_tanh, soft_shrink, hard_shrink, sparse_sigmoid: exact (0 ULP;
//   leaky_relu's slope is the float 0.2 Keras uses, sparse_sigmoid's (x+1)/2 is one FMA).
// NaN -> NaN for every activation; +-inf give the limits (silu, gelu, gelu_tanh, mish, hard_silu
// of -inf are -0, softsign(+-inf) = +-1, squareplus has no overflow below FLT_MAX). Denormal
// inputs are computed with, not flushed (the drivers run with FTZ/DAZ on anyway).
#include "../ukernels.h"

#include "exp_avx2.inc"

void fl_vexp_avx2(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fl_exp_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mask, fl_exp_avx2(_mm256_maskload_ps(x + i, mask)));
    }
}

// ---------------------------------------------------------------------------------------------
// Activations (act_avx2.inc): in place, 8 lanes per step, masked tail.
// ---------------------------------------------------------------------------------------------

#include "act_avx2.inc"

void fl_act_linear_avx2(float*, int64_t) {}
void fl_act_to_linear_avx2(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

#define FL_AVX2_ACT_KERNEL(name)                                                                 \
    void fl_act_to_##name##_avx2(const float* x, float* y, int64_t n) {                          \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8)                                                               \
            _mm256_storeu_ps(y + i, fl_##name##_avx2(_mm256_loadu_ps(x + i)));                   \
        if (i < n) {                                                                             \
            const __m256i mask = fl_avx2_tail_mask(n - i);                                       \
            _mm256_maskstore_ps(y + i, mask, fl_##name##_avx2(_mm256_maskload_ps(x + i, mask))); \
        }                                                                                        \
    }                                                                                            \
    void fl_act_##name##_avx2(float* y, int64_t n) { fl_act_to_##name##_avx2(y, y, n); }
FL_AVX2_ACT_KERNEL(relu)
FL_AVX2_ACT_KERNEL(relu6)
FL_AVX2_ACT_KERNEL(leaky_relu)
FL_AVX2_ACT_KERNEL(sigmoid)
FL_AVX2_ACT_KERNEL(tanh)
FL_AVX2_ACT_KERNEL(gelu)
FL_AVX2_ACT_KERNEL(gelu_tanh)
FL_AVX2_ACT_KERNEL(silu)
FL_AVX2_ACT_KERNEL(elu)
FL_AVX2_ACT_KERNEL(selu)
FL_AVX2_ACT_KERNEL(softplus)
FL_AVX2_ACT_KERNEL(softsign)
FL_AVX2_ACT_KERNEL(hard_sigmoid)
FL_AVX2_ACT_KERNEL(hard_silu)
FL_AVX2_ACT_KERNEL(mish)
FL_AVX2_ACT_KERNEL(exponential)
FL_AVX2_ACT_KERNEL(celu)
FL_AVX2_ACT_KERNEL(log_sigmoid)
FL_AVX2_ACT_KERNEL(tanh_shrink)
FL_AVX2_ACT_KERNEL(hard_tanh)
FL_AVX2_ACT_KERNEL(soft_shrink)
FL_AVX2_ACT_KERNEL(hard_shrink)
FL_AVX2_ACT_KERNEL(sparse_plus)
FL_AVX2_ACT_KERNEL(squareplus)
FL_AVX2_ACT_KERNEL(sparse_sigmoid)

void fl_vsigmoid_avx2(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fl_sigmoid_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mask, fl_sigmoid_avx2(_mm256_maskload_ps(x + i, mask)));
    }
}

void fl_vtanh_avx2(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fl_tanh_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i mask = fl_avx2_tail_mask(n - i);
        _mm256_maskstore_ps(y + i, mask, fl_tanh_avx2(_mm256_maskload_ps(x + i, mask)));
    }
}

// LSTM / GRU gate math on gate-interleaved blocks (contract in vmath.h): 8 units per step, the
// gates of a block are at fixed offsets (16 floats apart), so every load of z / g / x is a
// whole vector; c, hp and h use masked accesses for the last n % 8 units. The same
// fl_sigmoid_avx2 / fl_tanh_avx2 as the act kernels, and separate mul / add (no FMA), so the
// results equal the gate-by-gate generic path.
void fl_lstm_gates_avx2(int64_t n, const float* z, float* c, float* h) {
    for (int64_t j = 0; j < n; j += 8) {
        const float* zb = z + 64 * (j / 16) + j % 16;
        const __m256 i = fl_sigmoid_avx2(_mm256_loadu_ps(zb));
        const __m256 f = fl_sigmoid_avx2(_mm256_loadu_ps(zb + 16));
        const __m256 g = fl_tanh_avx2(_mm256_loadu_ps(zb + 32));
        const __m256 o = fl_sigmoid_avx2(_mm256_loadu_ps(zb + 48));
        if (n - j >= 8) {
            const __m256 cn =
                _mm256_add_ps(_mm256_mul_ps(f, _mm256_loadu_ps(c + j)), _mm256_mul_ps(i, g));
            _mm256_storeu_ps(c + j, cn);
            _mm256_storeu_ps(h + j, _mm256_mul_ps(o, fl_tanh_avx2(cn)));
        } else {
            const __m256i mask = fl_avx2_tail_mask(n - j);
            const __m256 cn = _mm256_add_ps(_mm256_mul_ps(f, _mm256_maskload_ps(c + j, mask)),
                                            _mm256_mul_ps(i, g));
            _mm256_maskstore_ps(c + j, mask, cn);
            _mm256_maskstore_ps(h + j, mask, _mm256_mul_ps(o, fl_tanh_avx2(cn)));
        }
    }
}

void fl_gru_gates_avx2(int64_t n, const float* g, const float* x, const float* hp, float* h) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t j = 0; j < n; j += 8) {
        const int64_t o = 48 * (j / 16) + j % 16;
        const __m256 zg =
            fl_sigmoid_avx2(_mm256_add_ps(_mm256_loadu_ps(g + o), _mm256_loadu_ps(x + o)));
        const __m256 r = fl_sigmoid_avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + o + 16), _mm256_loadu_ps(x + o + 16)));
        const __m256 rg = _mm256_mul_ps(r, _mm256_loadu_ps(g + o + 32));
        const __m256 e = fl_tanh_avx2(_mm256_add_ps(_mm256_loadu_ps(x + o + 32), rg));
        const __m256 omz = _mm256_sub_ps(one, zg);
        if (n - j >= 8) {
            const __m256 hv =
                _mm256_add_ps(_mm256_mul_ps(zg, _mm256_loadu_ps(hp + j)), _mm256_mul_ps(omz, e));
            _mm256_storeu_ps(h + j, hv);
        } else {
            const __m256i mask = fl_avx2_tail_mask(n - j);
            const __m256 hv = _mm256_add_ps(_mm256_mul_ps(zg, _mm256_maskload_ps(hp + j, mask)),
                                            _mm256_mul_ps(omz, e));
            _mm256_maskstore_ps(h + j, mask, hv);
        }
    }
}
