/* Internal: declarations of every per-ISA micro-kernel.
 *
 * Each ISA file (csrc/ukernels/<family>/<isa>.cpp) defines uniquely named functions
 * fl_<kernel>_<isa>. Only the runtime dispatch table (csrc/runtime/dispatch.cpp) and the C++
 * tests call them by name; drivers go through fl::kernels().
 *
 * This header is included by ISA files compiled with -mavx2 -mfma. It therefore holds nothing
 * but declarations with plain C types: no STL, no inline functions, no templates, so that no
 * AVX2-compiled copy of a shared function can ever be picked by the linker for baseline code.
 *
 * FL_HAVE_AVX2 / FL_HAVE_NEON are defined by the build (CMakeLists.txt) when the matching
 * files are compiled in.
 */
#pragma once

#include <stdint.h>

/* Row softmax: rows of n floats at x + r*ldx -> y + r*ldy (see KernelTable in dispatch.h). */
void fl_softmax_rows_scalar(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                            int64_t ldy);
/* y[i] = exp(x[i]), i < n; results below FLT_MIN flush to 0. */
void fl_vexp_scalar(const float* x, float* y, int64_t n);

#if defined(FL_HAVE_AVX2)
void fl_softmax_rows_avx2(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy);
void fl_vexp_avx2(const float* x, float* y, int64_t n);
#endif

#if defined(FL_HAVE_NEON)
void fl_softmax_rows_neon(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy);
void fl_vexp_neon(const float* x, float* y, int64_t n);
#endif
