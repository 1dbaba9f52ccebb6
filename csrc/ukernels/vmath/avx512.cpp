// vmath/avx512.cpp: float32 vector math, 16 lanes (one zmm) per step: y[i] = exp(x[i]) (vexp),
// the elementwise Keras activations in place (fl_act_<name>_avx512, act_avx512.inc), vsigmoid /
// vtanh out of place, and the fused LSTM / GRU gate math (contract in vmath.h).
//
// ISA: AVX-512 F/BW/DQ/VL + FMA (this file alone is compiled with the -mavx512* flags). Width:
// 16 floats; the last n % 16 elements use k-masked loads and stores (no scalar tail loop, no
// access past x[n-1] / y[n-1]). Selected by fl::kernels() when active_isa() is avx512 (CPUID
// AVX512F/BW/DQ/VL + OS zmm support; the default where present).
//
// Results: the same bits as the scalar, avx2 and neon kernels for every input (one algorithm per
// function, the same operations in the same order; csrc/tests/test_cross_isa.cpp checks it), so
// the accuracy and special values are those documented in avx2.cpp.
#include "../ukernels.h"

// GCC 12's <avx512fintrin.h> builds the unused pass-through operand of unmasked intrinsics
// (_mm512_max_ps, _mm512_roundscale_ps, ...) from a self-initialized _mm512_undefined_ps(),
// which -Wuninitialized reports at every use; the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "act_avx512.inc"

void fl_vexp_avx512(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, fl_exp_avx512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, fl_exp_avx512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

// ---------------------------------------------------------------------------------------------
// Activations (act_avx512.inc): in place, 16 lanes per step, k-masked tail.
// ---------------------------------------------------------------------------------------------

void fl_act_linear_avx512(float*, int64_t) {}
void fl_act_to_linear_avx512(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

#define FL_AVX512_ACT_KERNEL(name)                                                       \
    void fl_act_to_##name##_avx512(const float* x, float* y, int64_t n) {                \
        int64_t i = 0;                                                                   \
        for (; i + 16 <= n; i += 16)                                                     \
            _mm512_storeu_ps(y + i, fl_##name##_avx512(_mm512_loadu_ps(x + i)));         \
        if (i < n) {                                                                     \
            const __mmask16 k = fl_avx512_tail_mask(n - i);                             \
            _mm512_mask_storeu_ps(y + i, k,                                              \
                                  fl_##name##_avx512(_mm512_maskz_loadu_ps(k, x + i)));  \
        }                                                                                \
    }                                                                                    \
    void fl_act_##name##_avx512(float* y, int64_t n) { fl_act_to_##name##_avx512(y, y, n); }
FL_AVX512_ACT_KERNEL(relu)
FL_AVX512_ACT_KERNEL(relu6)
FL_AVX512_ACT_KERNEL(leaky_relu)
FL_AVX512_ACT_KERNEL(sigmoid)
FL_AVX512_ACT_KERNEL(tanh)
FL_AVX512_ACT_KERNEL(gelu)
FL_AVX512_ACT_KERNEL(gelu_tanh)
FL_AVX512_ACT_KERNEL(silu)
FL_AVX512_ACT_KERNEL(elu)
FL_AVX512_ACT_KERNEL(selu)
FL_AVX512_ACT_KERNEL(softplus)
FL_AVX512_ACT_KERNEL(softsign)
FL_AVX512_ACT_KERNEL(hard_sigmoid)
FL_AVX512_ACT_KERNEL(hard_silu)
FL_AVX512_ACT_KERNEL(mish)
FL_AVX512_ACT_KERNEL(exponential)
FL_AVX512_ACT_KERNEL(celu)
FL_AVX512_ACT_KERNEL(log_sigmoid)
FL_AVX512_ACT_KERNEL(tanh_shrink)
FL_AVX512_ACT_KERNEL(hard_tanh)
FL_AVX512_ACT_KERNEL(soft_shrink)
FL_AVX512_ACT_KERNEL(hard_shrink)
FL_AVX512_ACT_KERNEL(sparse_plus)
FL_AVX512_ACT_KERNEL(squareplus)
FL_AVX512_ACT_KERNEL(sparse_sigmoid)

void fl_vsigmoid_avx512(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, fl_sigmoid_avx512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, fl_sigmoid_avx512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

void fl_vtanh_avx512(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, fl_tanh_avx512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 k = fl_avx512_tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, fl_tanh_avx512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

// LSTM / GRU gate math on gate-interleaved blocks (contract in vmath.h): one 16-unit block per
// step, so each gate of a block is exactly one zmm load; c, hp and h are k-masked for the last
// n % 16 units. The same fl_sigmoid_avx512 / fl_tanh_avx512 as the act kernels and separate
// mul / add (no FMA), as on every ISA, so the results equal the scalar / avx2 gates bit for bit.
void fl_lstm_gates_avx512(int64_t n, const float* z, float* c, float* h) {
    for (int64_t j = 0; j < n; j += 16) {
        const float* zb = z + 4 * j;  // block j/16 starts at 64 * (j/16)
        const __mmask16 k = fl_avx512_tail_mask(n - j);
        const __m512 i = fl_sigmoid_avx512(_mm512_loadu_ps(zb));
        const __m512 f = fl_sigmoid_avx512(_mm512_loadu_ps(zb + 16));
        const __m512 g = fl_tanh_avx512(_mm512_loadu_ps(zb + 32));
        const __m512 o = fl_sigmoid_avx512(_mm512_loadu_ps(zb + 48));
        const __m512 cn = _mm512_add_ps(_mm512_mul_ps(f, _mm512_maskz_loadu_ps(k, c + j)),
                                        _mm512_mul_ps(i, g));
        _mm512_mask_storeu_ps(c + j, k, cn);
        _mm512_mask_storeu_ps(h + j, k, _mm512_mul_ps(o, fl_tanh_avx512(cn)));
    }
}

void fl_gru_gates_avx512(int64_t n, const float* g, const float* x, const float* hp, float* h) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t j = 0; j < n; j += 16) {
        const int64_t o = 3 * j;  // block j/16 starts at 48 * (j/16)
        const __mmask16 k = fl_avx512_tail_mask(n - j);
        const __m512 zg =
            fl_sigmoid_avx512(_mm512_add_ps(_mm512_loadu_ps(g + o), _mm512_loadu_ps(x + o)));
        const __m512 r = fl_sigmoid_avx512(
            _mm512_add_ps(_mm512_loadu_ps(g + o + 16), _mm512_loadu_ps(x + o + 16)));
        const __m512 rg = _mm512_mul_ps(r, _mm512_loadu_ps(g + o + 32));
        const __m512 e = fl_tanh_avx512(_mm512_add_ps(_mm512_loadu_ps(x + o + 32), rg));
        const __m512 omz = _mm512_sub_ps(one, zg);
        const __m512 hv = _mm512_add_ps(_mm512_mul_ps(zg, _mm512_maskz_loadu_ps(k, hp + j)),
                                        _mm512_mul_ps(omz, e));
        _mm512_mask_storeu_ps(h + j, k, hv);
    }
}
