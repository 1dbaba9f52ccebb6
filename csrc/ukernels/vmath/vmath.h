/* Internal: declarations of the per-ISA vector-math kernels (csrc/ukernels/vmath/<isa>.cpp).
 *
 * Included by csrc/ukernels/ukernels.h; same rules as that header (declarations with plain C
 * types only: it is seen by files compiled with -mavx2 -mfma).
 *
 *   fl_act_<name>_<isa>(y, n): y[i] = act(y[i]) for i < n, in place, for every elementwise
 *       activation of FL_ACTIVATION_LIST (fastlayers/activations.h). Nothing outside
 *       [y, y + n) is read or written; n <= 0 is a no-op.
 *   fl_act_to_<name>_<isa>(x, y, n): y[i] = act(x[i]), out of place (x == y allowed), the
 *       same bits as fl_act_<name>_<isa> (one loop: the in-place kernel calls it with x = y);
 *       linear copies. Not on NEON yet (the driver copies, then runs the in-place kernel).
 *   fl_vsigmoid_<isa>(x, y, n), fl_vtanh_<isa>(x, y, n): y[i] = sigmoid(x[i]) / tanh(x[i]),
 *       out of place (x == y allowed), for the LSTM/GRU gate math.
 *   fl_lstm_gates_<isa>(n, z, c, h): the gate math of one LSTM row, tanh / sigmoid, for units
 *       j < n whose pre-activations are interleaved per 16-unit block (fl::PackedGates): block
 *       q = j/16 is z[64q, 64q+64) = [i f g o], 16 each, lane l = j%16:
 *         c[j] = sigmoid(f)*c[j] + sigmoid(i)*tanh(g)   (two products rounded, then added)
 *         h[j] = sigmoid(o) * tanh(c[j])
 *       z is read for whole blocks (64*ceil(n/16) floats) and not written; c, h: j < n only.
 *   fl_gru_gates_<isa>(n, g, x, hp, h): one GRU row (reset_after), tanh / sigmoid, blocks of
 *       48 = [z r h] in both g (h·R + b_rec) and x (the input projection), lane l = j%16:
 *         z = sigmoid(g_z + x_z), r = sigmoid(g_r + x_r), e = tanh(x_h + r*g_h),
 *         h[j] = z*hp[j] + (1 - z)*e                     (each operation rounded, no FMA)
 *       g, x are read for whole blocks; hp, h: j < n only (h != hp).
 *   Both give bit for bit what the same ISA's fl_act_sigmoid / fl_act_tanh kernels give when
 *   applied gate by gate (the drivers' generic path, used for other activations).
 *
 * Every function is ONE algorithm on every ISA (same operations in the same order, FMA exactly
 * where the others use FMA), so all ISAs return the same bits for every input
 * (docs/architecture.md, cross-ISA identity; csrc/tests/test_cross_isa.cpp). Accuracy and
 * special values: the header comment of vmath/avx2.cpp.
 */
#pragma once

#include <stdint.h>

#include "fastlayers/act_list.h"

#define FL_VMATH_DECLARE_ACT(name, isa) void fl_act_##name##_##isa(float* y, int64_t n);
#define FL_VMATH_DECLARE_ACT_TO(name, isa) \
    void fl_act_to_##name##_##isa(const float* x, float* y, int64_t n);

#define FL_VMATH_DECLARE_SCALAR(name) FL_VMATH_DECLARE_ACT(name, scalar) FL_VMATH_DECLARE_ACT_TO(name, scalar)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_SCALAR)
#undef FL_VMATH_DECLARE_SCALAR
void fl_vsigmoid_scalar(const float* x, float* y, int64_t n);
void fl_vtanh_scalar(const float* x, float* y, int64_t n);
void fl_lstm_gates_scalar(int64_t n, const float* z, float* c, float* h);
void fl_gru_gates_scalar(int64_t n, const float* g, const float* x, const float* hp, float* h);

#if defined(FL_HAVE_AVX2)
#define FL_VMATH_DECLARE_AVX2(name) FL_VMATH_DECLARE_ACT(name, avx2) FL_VMATH_DECLARE_ACT_TO(name, avx2)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_AVX2)
#undef FL_VMATH_DECLARE_AVX2
void fl_vsigmoid_avx2(const float* x, float* y, int64_t n);
void fl_vtanh_avx2(const float* x, float* y, int64_t n);
void fl_lstm_gates_avx2(int64_t n, const float* z, float* c, float* h);
void fl_gru_gates_avx2(int64_t n, const float* g, const float* x, const float* hp, float* h);
#endif

#if defined(FL_HAVE_AVX512)
#define FL_VMATH_DECLARE_AVX512(name) FL_VMATH_DECLARE_ACT(name, avx512) FL_VMATH_DECLARE_ACT_TO(name, avx512)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_AVX512)
#undef FL_VMATH_DECLARE_AVX512
void fl_vsigmoid_avx512(const float* x, float* y, int64_t n);
void fl_vtanh_avx512(const float* x, float* y, int64_t n);
void fl_lstm_gates_avx512(int64_t n, const float* z, float* c, float* h);
void fl_gru_gates_avx512(int64_t n, const float* g, const float* x, const float* hp, float* h);
#endif

#if defined(FL_HAVE_NEON)
#define FL_VMATH_DECLARE_NEON(name) FL_VMATH_DECLARE_ACT(name, neon)
FL_ACTIVATION_LIST(FL_VMATH_DECLARE_NEON)
#undef FL_VMATH_DECLARE_NEON
void fl_vsigmoid_neon(const float* x, float* y, int64_t n);
void fl_vtanh_neon(const float* x, float* y, int64_t n);
#endif
