// gemm/neon.cpp: the float32 GEMM micro-kernel, C (m x n) = init + A (m x k) * B (k x n).
//
// ISA: AArch64 Advanced SIMD (baseline there; this file is compiled only on AArch64). Selected
// by fl::kernels() (KernelTable::gemm) when active_isa() is neon. Contract: see
// fl_gemm_f32_neon in csrc/ukernels/ukernels.h - the same operands, the same "one FMA chain
// per c[i][j], p increasing" rule (FMLA rounds once), so results equal the scalar and AVX2
// kernels bit for bit.
//
// Register tiles (32 q registers of 4 floats): m = 4..6 rows x 16 columns (up to 24
// accumulators + 4 B + 1 A), m = 2, 3 x 32 columns (16/24 accumulators), m = 1 x 64 columns
// (16 independent chains over 4 panels). A is broadcast element by element (LD1R) - simple,
// and it works for row-major and packed A alike. The last, partial vector of an N tail goes
// through a small stack buffer, so nothing outside C's m x n block is read or written.
// Verified bit for bit against the chain reference under qemu-aarch64 (csrc/tests/test_gemm.cpp);
// not yet timed on ARM hardware.
#include <arm_neon.h>

#include "../inline.h"
#include "../ukernels.h"

// Full unrolling of the tile loops (constant trip counts after inlining) is what lets the
// compiler keep acc[][] in registers.
#define FL_GEMM_AI FL_KERNEL_AI
#define FL_GEMM_UNROLL(n) FL_KERNEL_UNROLL(n)

// One register tile: MR rows x NV vectors of 4 columns, starting at a panel boundary.
// `last` = valid columns of vector NV-1 (1..4).
FL_GEMM_AI void gemm_tile_neon(const int MR, const int NV, int64_t k, const float* a, int64_t rs_a,
                               int64_t cs_a, const float* b, int64_t ps, const float* bias,
                               int load_c, float* c, int64_t ldc, int64_t last) {
    float32x4_t acc[6][16];
    const int partial = last != 4;

    if (load_c) {
        FL_GEMM_UNROLL(6)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(16)
            for (int v = 0; v < NV; ++v) {
                const float* src = c + i * ldc + v * 4;
                if (v == NV - 1 && partial) {
                    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                    for (int64_t l = 0; l < last; ++l) tmp[l] = src[l];
                    acc[i][v] = vld1q_f32(tmp);
                } else {
                    acc[i][v] = vld1q_f32(src);
                }
            }
        }
    } else if (bias) {
        FL_GEMM_UNROLL(16)
        for (int v = 0; v < NV; ++v) {
            const float32x4_t bv = vld1q_f32(bias + v * 4);  // padded like the panels
            FL_GEMM_UNROLL(6)
            for (int i = 0; i < MR; ++i) acc[i][v] = bv;
        }
    } else {
        FL_GEMM_UNROLL(6)
        for (int i = 0; i < MR; ++i) {
            FL_GEMM_UNROLL(16)
            for (int v = 0; v < NV; ++v) acc[i][v] = vdupq_n_f32(0.0f);
        }
    }

    // Vector v of the tile is quarter (v & 3) of panel v / 4.
    const float* bp[16];
    FL_GEMM_UNROLL(16)
    for (int v = 0; v < NV; ++v) bp[v] = b + (v >> 2) * ps + (v & 3) * 4;

    const float* ap = a;
    if (NV <= 4) {
        FL_GEMM_UNROLL(2)
        for (int64_t p = 0; p < k; ++p) {
            float32x4_t bx[4];
            FL_GEMM_UNROLL(16)
            for (int v = 0; v < NV; ++v) bx[v] = vld1q_f32(bp[v] + p * 16);
            FL_GEMM_UNROLL(6)
            for (int i = 0; i < MR; ++i) {
                const float32x4_t ai = vld1q_dup_f32(ap + i * rs_a);
                FL_GEMM_UNROLL(16)
                for (int v = 0; v < NV; ++v) acc[i][v] = vfmaq_f32(acc[i][v], ai, bx[v]);
            }
            ap += cs_a;
        }
    } else {
        FL_GEMM_UNROLL(2)
        for (int64_t p = 0; p < k; ++p) {
            float32x4_t ai[6];
            FL_GEMM_UNROLL(6)
            for (int i = 0; i < MR; ++i) ai[i] = vld1q_dup_f32(ap + i * rs_a);
            FL_GEMM_UNROLL(16)
            for (int v = 0; v < NV; ++v) {
                const float32x4_t bx = vld1q_f32(bp[v] + p * 16);
                FL_GEMM_UNROLL(6)
                for (int i = 0; i < MR; ++i) acc[i][v] = vfmaq_f32(acc[i][v], ai[i], bx);
            }
            ap += cs_a;
        }
    }

    FL_GEMM_UNROLL(6)
    for (int i = 0; i < MR; ++i) {
        FL_GEMM_UNROLL(16)
        for (int v = 0; v < NV; ++v) {
            float* dst = c + i * ldc + v * 4;
            if (v == NV - 1 && partial) {
                float tmp[4];
                vst1q_f32(tmp, acc[i][v]);
                for (int64_t l = 0; l < last; ++l) dst[l] = tmp[l];
            } else {
                vst1q_f32(dst, acc[i][v]);
            }
        }
    }
}

// MR rows, all n columns, in strips of NVMAX vectors (NVMAX*4 columns, a multiple of 16).
FL_GEMM_AI void gemm_rows_neon(const int MR, const int NVMAX, int64_t n, int64_t k, const float* a,
                               int64_t rs_a, int64_t cs_a, const float* b, int64_t ps,
                               const float* bias, int load_c, float* c, int64_t ldc) {
    const int64_t width = NVMAX * 4;
    for (int64_t j = 0; j < n; j += width) {
        const int64_t rem = n - j < width ? n - j : width;
        const int64_t nv = (rem + 3) / 4;
        const int64_t last = rem - (nv - 1) * 4;
        const float* bj = b + (j / 16) * ps;
        const float* biasj = bias ? bias + j : 0;
        float* cj = c + j;
        if (nv == NVMAX) {
            gemm_tile_neon(MR, NVMAX, k, a, rs_a, cs_a, bj, ps, biasj, load_c, cj, ldc, last);
            continue;
        }
        // Tail strip: whole panels as 4-vector tiles, then the last panel with exactly the
        // vectors it needs (a wider tile would write past column n).
        for (int64_t jj = 0; jj < rem; jj += 16) {
            const int64_t r = rem - jj < 16 ? rem - jj : 16;
            const int64_t nvp = (r + 3) / 4;
            const int64_t lastp = r - (nvp - 1) * 4;
            const float* bq = bj + (jj / 16) * ps;
            const float* biasq = biasj ? biasj + jj : 0;
            float* cq = cj + jj;
            if (nvp == 4)
                gemm_tile_neon(MR, 4, k, a, rs_a, cs_a, bq, ps, biasq, load_c, cq, ldc, lastp);
            else if (nvp == 3)
                gemm_tile_neon(MR, 3, k, a, rs_a, cs_a, bq, ps, biasq, load_c, cq, ldc, lastp);
            else if (nvp == 2)
                gemm_tile_neon(MR, 2, k, a, rs_a, cs_a, bq, ps, biasq, load_c, cq, ldc, lastp);
            else
                gemm_tile_neon(MR, 1, k, a, rs_a, cs_a, bq, ps, biasq, load_c, cq, ldc, lastp);
        }
    }
}

void fl_gemm_f32_neon(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                      const float* b, int64_t b_panel_stride, const float* bias, int load_c,
                      float* c, int64_t ldc) {
    if (n <= 0) return;
    while (m > 0) {
        const int64_t rows = m < 6 ? m : 6;
        switch (rows) {
            case 1:
                gemm_rows_neon(1, 16, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 2:
                gemm_rows_neon(2, 8, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 3:
                gemm_rows_neon(3, 8, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 4:
                gemm_rows_neon(4, 4, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            case 5:
                gemm_rows_neon(5, 4, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
            default:
                gemm_rows_neon(6, 4, n, k, a, rs_a, cs_a, b, b_panel_stride, bias, load_c, c, ldc);
                break;
        }
        m -= rows;
        a += rows * rs_a;
        c += rows * ldc;
    }
}
