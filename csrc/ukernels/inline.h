/* inline.h: the two compiler hints the micro-kernels' inner loops rely on, written once.
 *
 *   FL_KERNEL_AI         a helper forced inline into its kernel (static, so each kernel file
 *                        keeps its own copy: no ISA's code is linked into another's).
 *   FL_KERNEL_UNROLL(n)  unroll the next loop n times (register tiles indexed by the loop
 *                        variable must be unrolled for their values to stay in registers).
 *
 * No intrinsics and no ISA flags here: every csrc/ukernels/<family>/<isa>.cpp may include it
 * (architecture §5). MSVC without clang has neither hint's syntax: plain __forceinline, and
 * the loops are left to its optimizer. */
#pragma once

#if defined(_MSC_VER) && !defined(__clang__)
#define FL_KERNEL_AI static __forceinline
#define FL_KERNEL_UNROLL(n)
#else
#define FL_KERNEL_AI static inline __attribute__((always_inline))
#define FL_KERNEL_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define FL_KERNEL_UNROLL(n) FL_KERNEL_PRAGMA(unroll n)
#else
#define FL_KERNEL_UNROLL(n) FL_KERNEL_PRAGMA(GCC unroll n)
#endif
#endif
