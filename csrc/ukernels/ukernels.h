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
 * FL_HAVE_AVX2 / FL_HAVE_AVX512 / FL_HAVE_NEON are defined by the build (CMakeLists.txt) when
 * the matching files are compiled in. avx512 files are compiled with -mavx512f -mavx512bw
 * -mavx512dq -mavx512vl -mavx2 -mfma and selected only where CPUID and XGETBV allow all of it.
 */
#pragma once

#include <stdint.h>

/* Activations, vsigmoid, vtanh: fl_act_<name>_<isa> and friends. */
#include "vmath/vmath.h"

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

#if defined(FL_HAVE_AVX512)
void fl_softmax_rows_avx512(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                            int64_t ldy);
void fl_vexp_avx512(const float* x, float* y, int64_t n);
#endif

#if defined(FL_HAVE_NEON)
void fl_softmax_rows_neon(const float* x, float* y, int64_t rows, int64_t n, int64_t ldx,
                          int64_t ldy);
void fl_vexp_neon(const float* x, float* y, int64_t n);
#endif

/* Score-row steps of the attention kernels and of the masked softmax (csrc/ops/attention.cpp,
 * csrc/ops/softmax.cpp), the same contract on every ISA:
 *
 *   fl_score_prep_<isa>(x, n, scale, keep, limit, masked, subtract) returns the max of the new
 *   x[0..n): for j < n, v = x[j] * scale; if j >= limit or (keep != NULL and keep[j] == 0) the
 *   entry is masked and v = subtract ? v - masked : masked; x[j] = v. The max is -inf for n == 0
 *   and may skip a NaN. keep is read for j < n only.
 *
 *   fl_row_max_<isa>(x, n) returns the max of x[0..n) (-inf for n == 0; may skip a NaN).
 *
 *   fl_exp_shift_sum_<isa>(x, n, scale, m) sets x[j] = exp(fma(x[j], scale, -m)) for j < n and
 *   returns the sum of the new x[j]. Callers pass m >= the max of x[j] * scale, so every exp
 *   argument is <= 0 (up to rounding): results are those of fl_vexp there (below FLT_MIN
 *   flushed to 0), NaN propagates. The sum has one order on every ISA (16 partial sums, x[j]
 *   into sum j % 16 in index order, then ((s[l] + s[l+8]) ...) down to one: the tree of
 *   softmax/scalar.cpp), so every ISA returns the same bits; so does the row softmax. */
float fl_score_prep_scalar(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                           float masked, int subtract);
float fl_row_max_scalar(const float* x, int64_t n);
float fl_exp_shift_sum_scalar(float* x, int64_t n, float scale, float m);
#if defined(FL_HAVE_AVX2)
float fl_score_prep_avx2(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                         float masked, int subtract);
float fl_row_max_avx2(const float* x, int64_t n);
float fl_exp_shift_sum_avx2(float* x, int64_t n, float scale, float m);
#endif
#if defined(FL_HAVE_AVX512)
float fl_score_prep_avx512(float* x, int64_t n, float scale, const uint8_t* keep, int64_t limit,
                           float masked, int subtract);
float fl_row_max_avx512(const float* x, int64_t n);
float fl_exp_shift_sum_avx512(float* x, int64_t n, float scale, float m);
#endif

/* GEMM micro-kernel (csrc/ukernels/gemm/<isa>.cpp), the same contract on every ISA:
 *
 *   C[i][j] (i < m, j < n) = init[i][j] + sum over p < k of A[i][p] * B[p][j], computed as ONE
 *   fused-multiply-add chain per element: acc = init; acc = fma(A[i][p], B[p][j], acc) for
 *   p = 0, 1, ..., k-1 in this order; C[i][j] = acc. init = C[i][j] as stored (load_c != 0:
 *   continuing a previous K block), else bias[j] (bias != NULL), else 0. Because a K-blocked
 *   product continues each chain from the stored float, the result is bitwise the same for
 *   any K blocking, any split of rows or columns between calls or threads, and any ISA.
 *
 *   A: element (i, p) at a[i*rs_a + p*cs_a] - row-major activations (rs_a = lda, cs_a = 1) or
 *      a packed micro-panel (rs_a = 1, cs_a = rows); only i < m, p < k is read.
 *   B: packed 16-wide panels, K-major: element (p, j) at
 *      b[(j/16)*b_panel_stride + p*16 + j%16]; panels cover ceil(n/16)*16 columns (zero
 *      padding in fl::PackedB) and all of them may be read for p < k.
 *   bias: NULL, or readable for ceil(n/16)*16 floats (padded like the panels).
 *   C: element (i, j) at c[i*ldc + j]; only i < m, j < n is read (load_c) or written.
 *   No alignment is required. m, n, k >= 0 (k == 0 stores init). Any m: rows are processed
 *   in blocks of up to 6 (register tiles up to 6 x 16; 1 x 64, 2 x 48, 3 x 32 for short
 *   blocks).
 */
void fl_gemm_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                        int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                        int load_c, float* c, int64_t ldc);
#if defined(FL_HAVE_AVX2)
void fl_gemm_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                      int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                      int load_c, float* c, int64_t ldc);
#endif
#if defined(FL_HAVE_AVX512)
/* Register tiles up to 14 x 32 (m x 48 / 64 / 96 for shorter blocks, m x 8 in ymm when n <= 8,
 * blocks of 7 rows when an in-place A's row stride is a multiple of 1024 floats); any m. */
void fl_gemm_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                        int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                        int load_c, float* c, int64_t ldc);
#endif
#if defined(FL_HAVE_NEON)
void fl_gemm_f32_neon(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                      int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                      int load_c, float* c, int64_t ldc);
#endif

/* GEMM with a row-major B read in place, for a few rows and a B used once (fl::gemm's few-row
 * path, lstm_cell's kernels), where packing B would cost more than the product
 * (csrc/ukernels/gemm/<isa>.cpp):
 *   C[i][j] (i < m, j < n) = init + sum over p < k of A[i][p] * B[p][j], ONE fused-multiply-add
 *   chain per element in p order, init = C[i][j] (load_c != 0), else bias[j] (bias != NULL),
 *   else 0: the chain of fl_gemm_f32, so the result is bitwise that of packing B and calling it.
 *   A[i][p] at a[i*lda + p]; B[p][j] at b[p*ldb + j]; C[i][j] at c[i*ldc + j]. Only i < m,
 *   p < k, j < n is read (bias: j < n) or written (C rows are written before every step, so
 *   C must not overlap A or B). No alignment required; any m, n, k >= 0. */
void fl_gemm_rowb_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                             const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                             int64_t ldc);
#if defined(FL_HAVE_AVX2)
void fl_gemm_rowb_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                           int64_t ldc);
#endif
#if defined(FL_HAVE_AVX512)
void fl_gemm_rowb_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                             const float* b, int64_t ldb, const float* bias, int load_c, float* c,
                             int64_t ldc);
#endif

/* Transposing pack of one B panel (csrc/ukernels/gemm/<isa>.cpp), used for transposed
 * operands such as K^T in Q·K^T: w source rows of kc contiguous floats become one 16-wide
 * K-major panel,
 *   dst[p*16 + i] = src[i*ld + p] for i < w, and 0 for w <= i < 16, for every p < kc.
 * Only src[i*ld + p] with i < w, p < kc is read; exactly dst[0 .. 16*kc) is written.
 * 0 <= w <= 16, kc >= 0, no alignment required. A pure copy: the same bits on every ISA. */
void fl_pack_t16_scalar(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst);
#if defined(FL_HAVE_AVX2)
void fl_pack_t16_avx2(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst);
#endif
#if defined(FL_HAVE_AVX512)
void fl_pack_t16_avx512(const float* src, int64_t ld, int64_t w, int64_t kc, float* dst);
#endif

/* Depthwise conv micro-kernel, depth multiplier 1 (csrc/ukernels/dwconv/<isa>.cpp): for each
 * pixel p < m and channel c < ch, y[p*ldy + c] is ONE fused-multiply-add chain:
 *   acc = bias[c] (bias != NULL) or 0; acc = fma(rows[p*taps + t][c], k[t*ch + c], acc) for
 *   t = 0, 1, ..., taps-1; y[p*ldy + c] = acc.
 * rows: m*taps pointers, each readable for ch floats (the driver points padding taps at a row
 * of zeros, so they contribute fma(0, k, acc) exactly as in the GEMM path). k: taps x ch,
 * row-major (a Keras depthwise kernel (kh, kw, 1, ch) as stored). No alignment required. The
 * same results on every ISA; there is no NEON file: NEON builds use the scalar kernel, whose
 * fmaf is one instruction there. */
void fl_dwconv_f32_scalar(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                          const float* k, const float* bias, float* y, int64_t ldy);
#if defined(FL_HAVE_AVX2)
void fl_dwconv_f32_avx2(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                        const float* k, const float* bias, float* y, int64_t ldy);
#endif
#if defined(FL_HAVE_AVX512)
void fl_dwconv_f32_avx512(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                          const float* k, const float* bias, float* y, int64_t ldy);
#endif

/* Depthwise conv row micro-kernel, depth multiplier 1 (csrc/ukernels/dwrow/<isa>.cpp): a
 * segment of w consecutive output pixels of one output row, read straight from the input rows
 * (no per-pixel pointers: a kernel that walks the row loads each input vector once for all the
 * outputs whose taps cover it - for 3x3 stride 1, 10 input loads per kernel row for 8 outputs
 * on AVX-512 where fl_dwconv_f32 makes 24, 6 for 4 on AVX2 where it makes 12). The same chain
 * per output as fl_dwconv_f32, so the two give the same bits.
 * For o < w, c < ch, y[o*ldy + c] is ONE fused-multiply-add chain:
 *   acc = bias[c] (bias != NULL) or 0;
 *   for a = 0 .. kh-1, then b = 0 .. kw-1: q = col0 + o*sw + b*dw,
 *     acc = fma(q in [0, width) ? rows[a][q*ldx + c] : 0, k[(a*kw + b)*ldk + c], acc);
 *   y[o*ldy + c] = acc.
 * rows[a]: the input row of kernel row a at column 0, readable for (width-1)*ldx + ch floats
 * (the driver points a padding row at zeros); nothing before it or past a pixel's ch channels
 * is read. A column outside [0, width) is padding: its taps add fma(0, k, acc), as the GEMM
 * path's zero-filled patches do, so every path and ISA gives bitwise the same results. No
 * alignment required. There is no NEON file: NEON builds use the scalar kernel, whose fmaf is
 * one instruction there. */
typedef struct FlDwRow {
    int64_t w;           /* output pixels in the segment, >= 1 */
    int64_t col0;        /* input column of output 0's tap b = 0 (negative in the padding) */
    int64_t width;       /* input columns */
    int64_t ch;          /* channels to compute */
    int64_t kh, kw;      /* kernel rows and columns */
    int64_t sw, dw;      /* column stride and dilation, >= 1 */
    const float* const* rows; /* kh row pointers */
    int64_t ldx;         /* floats from one input pixel to the next */
    const float* k;      /* (kh*kw) x ldk taps */
    int64_t ldk;
    const float* bias;   /* ch floats, or NULL */
    float* y;            /* w pixels, ldy floats apart */
    int64_t ldy;
} FlDwRow;
void fl_dwconv_row_f32_scalar(const FlDwRow* p);
#if defined(FL_HAVE_AVX2)
void fl_dwconv_row_f32_avx2(const FlDwRow* p);
#endif
#if defined(FL_HAVE_AVX512)
void fl_dwconv_row_f32_avx512(const FlDwRow* p);
#endif

/* Indirect GEMM micro-kernel for convolution (csrc/ukernels/igemm/<isa>.cpp): the GEMM above
 * with A given through pointers instead of a matrix, K = ks*kc:
 *
 *   C[i][j] (i < m, j < n) = init[j] + sum over t < ks, p < kc of a[i*ks + t][p] * B[t*kc + p][j],
 *   computed as ONE fused-multiply-add chain per element: acc = bias[j] (bias != NULL) or 0;
 *   acc = fma(a[i*ks + t][p], B[t*kc + p][j], acc) for t = 0, 1, ..., ks-1 and, within each t,
 *   p = 0, 1, ..., kc-1; C[i][j] = acc. This is the chain of fl_gemm_f32 on the row-major
 *   matrix whose row i is the ks chunks of row i laid end to end, so both kernels give bitwise
 *   the same results (the conv driver uses either).
 *
 *   a: m*ks pointers, pointer (i, t) at a[i*ks + t], each readable for kc floats (the conv
 *      driver points at patch chunks inside the NHWC input, at a row of zeros for padding, or
 *      into a small buffer of expanded edge patches). Only p < kc of each is read.
 *   B: packed 16-wide panels as for fl_gemm_f32 (ks*kc rows per panel, panel stride
 *      b_panel_stride); bias: NULL or readable for ceil(n/16)*16 floats.
 *   C: element (i, j) at c[i*ldc + j]; only i < m, j < n is written (never read).
 *   No alignment is required. m, n, ks, kc >= 0. Register tiles on AVX2: 12 x 8 when n <= 8,
 *   else as fl_gemm_f32 (6 x 16 ...); on AVX-512: 12 x 8 in ymm when n <= 8, 24 x 16 when
 *   n <= 16, else 12 x 32 (rows in blocks of KernelTable::igemm_mr = 12 suit it best). There
 *   is no NEON file yet: on NEON the dispatch table has no igemm and conv2d expands patches
 *   for the NEON GEMM instead.
 */
void fl_igemm_f32_scalar(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                         const float* b, int64_t b_panel_stride, const float* bias, float* c,
                         int64_t ldc);
#if defined(FL_HAVE_AVX2)
void fl_igemm_f32_avx2(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                       const float* b, int64_t b_panel_stride, const float* bias, float* c,
                       int64_t ldc);
#endif
#if defined(FL_HAVE_AVX512)
void fl_igemm_f32_avx512(int64_t m, int64_t n, int64_t ks, int64_t kc, const float* const* a,
                         const float* b, int64_t b_panel_stride, const float* bias, float* c,
                         int64_t ldc);
#endif

/* Dot products of rows read in place (csrc/ukernels/dotrows/<isa>.cpp), for a few rows of A
 * (attention queries) against many rows of B (keys, in place, no packing):
 *
 *   C[i][j] (i < m, j < n) = sum over p < k of A[i][p] * B[j][p], A[i][p] at a[i*lda + p],
 *   B[j][p] at b[j*ldb + p], C[i][j] at c[i*ldc + j]. Every result is this fixed chain, the same
 *   on every ISA (bitwise): 16 lane sums acc[l] = +0, l < 16; for each block p0 = 0, 16, 32, ...
 *   (p0 < k) and every lane l, acc[l] = fma(A[i][p0 + l], B[j][p0 + l], acc[l]), where both
 *   factors are taken as 0 for p0 + l >= k; then the tree acc[l] = acc[l] + acc[l + h] for
 *   h = 8, 4, 2, 1 and l < h (lower lane first), and C[i][j] = acc[0].
 *   Only p < k of a row is read (i < m, j < n), only C[i][j] with i < m, j < n is written; C
 *   must not overlap A or B. No alignment required; m, n, k >= 0 (k == 0 gives +0). */
void fl_dot_rows_f32_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float* c, int64_t ldc);
#if defined(FL_HAVE_AVX2)
void fl_dot_rows_f32_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          const float* b, int64_t ldb, float* c, int64_t ldc);
#endif
#if defined(FL_HAVE_AVX512)
void fl_dot_rows_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float* c, int64_t ldc);
#endif

/* Column reductions over rows read in place (csrc/ukernels/colreduce/<isa>.cpp), for the global
 * poolings and the adaptive max: x[r*ld + j] for r < rows, j < n.
 *   fl_col_sum_f64_<isa>: acc[j] = acc[j] + (double)x[0*ld + j] + (double)x[1*ld + j] + ...,
 *     one double chain per column, rows in order.
 *   fl_col_max_f32_<isa>: m[j] = (m[j] > t || m[j] is NaN) ? m[j] : t for t = x[r*ld + j],
 *     rows in order (NaN propagates, the first NaN met with its sign; a tie, -0 against +0,
 *     takes the row's value: NumPy's maximum).
 * The same bits on every ISA (the maxima bit for bit, NaN signs included) and however the columns are cut into vectors. Only j < n of a
 * row is read, only acc[j] / m[j] for j < n is written; rows, n >= 0. */
void fl_col_sum_f64_scalar(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc);
void fl_col_max_f32_scalar(const float* x, int64_t rows, int64_t n, int64_t ld, float* m);
#if defined(FL_HAVE_AVX2)
void fl_col_sum_f64_avx2(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc);
void fl_col_max_f32_avx2(const float* x, int64_t rows, int64_t n, int64_t ld, float* m);
#endif
#if defined(FL_HAVE_AVX512)
void fl_col_sum_f64_avx512(const float* x, int64_t rows, int64_t n, int64_t ld, double* acc);
void fl_col_max_f32_avx512(const float* x, int64_t rows, int64_t n, int64_t ld, float* m);
#endif

/* Row statistics and row passes of LayerNormalization, RMSNormalization and
 * UnitNormalization (csrc/ukernels/rownorm/<isa>.cpp; the driver is csrc/ops/layer_norm.cpp),
 * over the n >= 0 floats of one row x:
 *   fl_row_sumsq_f64_<isa>: sum of (double)x[j] * (double)x[j]
 *   fl_row_devsq_f64_<isa>: sum of d * d, d = (double)((x[j] - hi) - lo) (the float32
 *     deviation from the mean held as two floats hi + lo)
 *   fl_row_moments_f64_<isa>: out[0] = sum of d, out[1] = sum of d * d, d = (double)x[j] -
 *     (double)s (the moments about a shift s, for a one-pass mean and variance)
 *   each in double, in one order on every ISA: element j into lane j % 32 in increasing j,
 *   then lane l += lane l + w for w = 16, 8, 4, 2, 1 (rownorm/lanes.h); no FMA.
 *   fl_row_norm_f32_<isa>:  y[j] = ((x[j] - hi) - lo) * (gamma ? f * gamma[j] : f), then
 *     + beta[j] if beta (float32, each operation rounded; gamma, beta may be null)
 *   fl_row_scale_f32_<isa>: y[j] = (x[j] * f) * scale[j], or x[j] * f without scale.
 *   fl_row_min_magnitude_<isa>: the smallest |x[j]| that is neither 0 nor NaN (subnormals
 *     count), +inf if there is none (n == 0 too): exact, so the same on every ISA by itself.
 *     Computed on the bits: k = ((bits(x[j]) & 0x7FFFFFFF) - 1) & 0x7FFFFFFF orders the
 *     magnitudes as integers, with 0 sent to 0x7FFFFFFF and NaN above +inf's k.
 * The same bits on every ISA. Only j < n is read and written; y may be x. */
double fl_row_sumsq_f64_scalar(const float* x, int64_t n);
double fl_row_devsq_f64_scalar(const float* x, int64_t n, float hi, float lo);
void fl_row_moments_f64_scalar(const float* x, int64_t n, float s, double* out);
void fl_row_norm_f32_scalar(const float* x, int64_t n, float hi, float lo, float f,
                            const float* gamma, const float* beta, float* y);
void fl_row_scale_f32_scalar(const float* x, int64_t n, float f, const float* scale, float* y);
float fl_row_min_magnitude_scalar(const float* x, int64_t n);
#if defined(FL_HAVE_AVX2)
double fl_row_sumsq_f64_avx2(const float* x, int64_t n);
double fl_row_devsq_f64_avx2(const float* x, int64_t n, float hi, float lo);
void fl_row_moments_f64_avx2(const float* x, int64_t n, float s, double* out);
void fl_row_norm_f32_avx2(const float* x, int64_t n, float hi, float lo, float f,
                          const float* gamma, const float* beta, float* y);
void fl_row_scale_f32_avx2(const float* x, int64_t n, float f, const float* scale, float* y);
float fl_row_min_magnitude_avx2(const float* x, int64_t n);
#endif
#if defined(FL_HAVE_AVX512)
double fl_row_sumsq_f64_avx512(const float* x, int64_t n);
double fl_row_devsq_f64_avx512(const float* x, int64_t n, float hi, float lo);
void fl_row_moments_f64_avx512(const float* x, int64_t n, float s, double* out);
void fl_row_norm_f32_avx512(const float* x, int64_t n, float hi, float lo, float f,
                            const float* gamma, const float* beta, float* y);
void fl_row_scale_f32_avx512(const float* x, int64_t n, float f, const float* scale, float* y);
float fl_row_min_magnitude_avx512(const float* x, int64_t n);
#endif

/* Window means for the adaptive average poolings (csrc/ukernels/colreduce/<isa>.cpp): a window
 * of rows x cols taps, tap (r, q) at x + r*row_ld + q*col_ld, each tap n floats (channels).
 *   fl_window_mean_f32_<isa>: for j < n, with every step in double,
 *     s_q    = 0 + x[0*row_ld + q*col_ld + j] + x[1*row_ld + q*col_ld + j] + ...  (rows in order)
 *     out[j] = (float)((0 + s_0 + s_1 + ... + s_(cols-1)) / size)
 *   (the NumPy path's order: each column's rows summed in float64, then the columns, one
 *   division). The same bits on every ISA and however the channels are cut into vectors
 *   (but a NaN's sign bit where NaNs of both signs meet in a sum: the compilers order the
 *   operands of an add differently).
 *   rows, cols >= 1, n >= 0; only j < n of a tap is read and of out written. A size that is
 *   a power of two (1 x 1, 2 x 2 windows ...) may multiply by its reciprocal instead: exact,
 *   the same bits (the SIMD kernels do; a division costs them more than the window's sums). */
void fl_window_mean_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                               int64_t col_ld, int64_t n, double size, float* out);
#if defined(FL_HAVE_AVX2)
void fl_window_mean_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                             int64_t col_ld, int64_t n, double size, float* out);
#endif
#if defined(FL_HAVE_AVX512)
void fl_window_mean_f32_avx512(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                               int64_t col_ld, int64_t n, double size, float* out);
#endif

/* Window poolings of MaxPooling1D/2D and AveragePooling1D/2D (csrc/ukernels/colreduce/<isa>.cpp;
 * the driver is csrc/ops/pooling.cpp): a window of rows x cols taps inside the input, tap
 * (r, q) at x + r*row_ld + q*col_ld, each tap n floats (channels), visited in row-major order.
 * For j < n:
 *   fl_window_max_f32_<isa>: m = tap(0, 0)[j]; then for each next tap t, m = (m > t || m is
 *     NaN) ? m : t (NumPy's maximum: NaN propagates, a tie between -0 and +0 takes the tap);
 *     out[j] = m
 *   fl_window_avg_f32_<isa>: s = tap(0, 0)[j]; then s = s + t for each next tap (float32, each
 *     sum rounded, no reassociation); if padded, s = s + 0 (the window's padding taps: only
 *     -0 changes); out[j] = s / count (float32). A count that is a power of two may
 *     multiply by its reciprocal instead: exact, the same bits.
 *   The same bits on every ISA and however the channels are cut into vectors (but a NaN's
 *   sign where NaNs of both signs meet in a sum). rows, cols >= 1, n >= 0; only j < n of a
 *   tap is read and of out written. The avx512 table runs the avx2 kernels. */
void fl_window_max_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                              int64_t col_ld, int64_t n, float* out);
void fl_window_avg_f32_scalar(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                              int64_t col_ld, int64_t n, float count, int padded, float* out);
#if defined(FL_HAVE_AVX2)
void fl_window_max_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                            int64_t col_ld, int64_t n, float* out);
void fl_window_avg_f32_avx2(const float* x, int64_t rows, int64_t cols, int64_t row_ld,
                            int64_t col_ld, int64_t n, float count, int padded, float* out);
#endif

/* FMA peak probe (csrc/ukernels/probe/<isa>.cpp): runs `iters` steps of independent FMA chains
 * held in registers (enough chains to fill the FMA pipes), writes a value depending on every
 * chain to *sink and returns the number of floating-point operations done (2 per FMA lane).
 * Used only by fl::fma_peak_gflops, for the benchmark's "% of peak" figures. */
int64_t fl_fma_probe_scalar(int64_t iters, float* sink);
#if defined(FL_HAVE_AVX2)
int64_t fl_fma_probe_avx2(int64_t iters, float* sink);
#endif
#if defined(FL_HAVE_AVX512)
int64_t fl_fma_probe_avx512(int64_t iters, float* sink);
#endif
#if defined(FL_HAVE_NEON)
int64_t fl_fma_probe_neon(int64_t iters, float* sink);
#endif
