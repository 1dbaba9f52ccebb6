/* Internal: declarations of the per-ISA vector-math kernels (csrc/ukernels/vmath/<isa>.cpp).
 *
 * Included by csrc/ukernels/ukernels.h; same rules as that header (declarations with plain C
 * types only: it is seen by files compiled with -mavx2 -mfma).
 *
 *   fl_act_<name>_<isa>(y, n): y[i] = act(y[i]) for i < n, in place, for every elementwise
 *       activation of FL_ACTIVATION_LIST (fastlayers/activations.h). Nothing outside
 *       [y, y + n) is read or written; n <= 0 is a no-op.
 *   fl_vsigmoid_<isa>(x, y, n), fl_vtanh_<isa>(x, y, n): y[i] = sigmoid(x[i]) / tanh(x[i]),
 *       out of place (x == y allowed), for the LSTM/GRU gate math.
 *
 * Accuracy and special values of each ISA: the header comment of its .cpp file.
 */
#pragma once

#include <stdint.h>

#include "fastlayers/act_list.h"

#define FL_VMATH_DECLARE_ACT(name, isa) void fl_act_##name##_##isa(float* y, int64_t n);

#define FL_VMATH_DECLARE_SCALAR(name) FL_VMATH_DECLARE_ACT(name, scalar)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_SCALAR)
#undef FL_VMATH_DECLARE_SCALAR
void fl_vsigmoid_scalar(const float* x, float* y, int64_t n);
void fl_vtanh_scalar(const float* x, float* y, int64_t n);

#if defined(FL_HAVE_AVX2)
#define FL_VMATH_DECLARE_AVX2(name) FL_VMATH_DECLARE_ACT(name, avx2)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_AVX2)
#undef FL_VMATH_DECLARE_AVX2
void fl_vsigmoid_avx2(const float* x, float* y, int64_t n);
void fl_vtanh_avx2(const float* x, float* y, int64_t n);
#endif

#if defined(FL_HAVE_NEON)
#define FL_VMATH_DECLARE_NEON(name) FL_VMATH_DECLARE_ACT(name, neon)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_NEON)
#undef FL_VMATH_DECLARE_NEON
void fl_vsigmoid_neon(const float* x, float* y, int64_t n);
void fl_vtanh_neon(const float* x, float* y, int64_t n);
#endif
