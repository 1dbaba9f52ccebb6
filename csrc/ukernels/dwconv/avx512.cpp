// dwconv/avx512.cpp: depthwise conv micro-kernel (depth multiplier 1), AVX-512 (F).
//
// Contract (csrc/ukernels/ukernels.h): y[p*ldy + c] = ONE FMA chain, acc = bias[c] (or 0),
// then acc = fma(rows[p*taps + t][c], k[t*ch + c], acc) for t = 0, 1, ..., taps-1 - the chain of
// the scalar and AVX2 kernels, so all give bitwise the same results. ISA: AVX-512 F (this file
// alone is compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma). Selected by
// fl::kernels() (KernelTable::dwconv) when active_isa() is avx512; the tests call
// fl_dwconv_f32_avx512 by name.
//
// Tiles: groups of 4 pixels (then the 1-3 left over) x channel blocks of 64, 32, 16 and a
// masked tail of 1-15 channels (a ymm register for 1-8, HALF), the taps loop innermost so every
// chain stays in a register for the whole patch; each kernel vector is loaded once per tap for
// the 4 pixels. A 4 x 64 tile runs 16 independent chains (enough to cover the FMA latency on
// two pipes).
#include <immintrin.h>

#include "../inline.h"
#include "../ukernels.h"

#define FL_DW5_AI FL_KERNEL_AI
#define FL_DW5_UNROLL(n) FL_KERNEL_UNROLL(n)

// P pixels (rows + u*taps, y + u*ldy) x V vectors of 16 channels from channel c. The last
// vector loads and stores only the lanes in `mask` (masked loads do not fault on the others).
// HALF (V = 1 only): the vector is a ymm register holding at most 8 lanes. On Zen 4 a zmm
// load or FMA costs two ymm ones, so a half-empty zmm ran the 1-8 channel tail at the cost of
// 16 channels; full-width cores run both at the same rate. Same chains either way.
FL_DW5_AI void dw_tile_avx512(const int P, const int V, const int HALF, const float* const* rows,
                              int64_t taps, const float* k, int64_t ch, int64_t c,
                              const float* bias, float* y, int64_t ldy, __mmask16 mask) {
    __m512 acc[4][4];
    __m256 acch[4];
    const __mmask8 mask8 = (__mmask8)mask;
    if (HALF) {
        const __m256 init = bias ? _mm256_maskz_loadu_ps(mask8, bias + c) : _mm256_setzero_ps();
        FL_DW5_UNROLL(4)
        for (int u = 0; u < P; ++u) acch[u] = init;
    } else {
        FL_DW5_UNROLL(4)
        for (int v = 0; v < V; ++v) {
            const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
            const __m512 init =
                bias ? _mm512_maskz_loadu_ps(mv, bias + c + v * 16) : _mm512_setzero_ps();
            FL_DW5_UNROLL(4)
            for (int u = 0; u < P; ++u) acc[u][v] = init;
        }
    }
    for (int64_t t = 0; t < taps; ++t) {
        const float* xs[4];
        FL_DW5_UNROLL(4)
        for (int u = 0; u < P; ++u) xs[u] = rows[u * taps + t] + c;
        const float* kt = k + t * ch + c;
        if (HALF) {
            const __m256 kv = _mm256_maskz_loadu_ps(mask8, kt);
            FL_DW5_UNROLL(4)
            for (int u = 0; u < P; ++u)
                acch[u] = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(mask8, xs[u]), kv, acch[u]);
            continue;
        }
        FL_DW5_UNROLL(4)
        for (int v = 0; v < V; ++v) {
            const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
            const __m512 kv = _mm512_maskz_loadu_ps(mv, kt + v * 16);
            FL_DW5_UNROLL(4)
            for (int u = 0; u < P; ++u) {
                const __m512 xv = _mm512_maskz_loadu_ps(mv, xs[u] + v * 16);
                acc[u][v] = _mm512_fmadd_ps(xv, kv, acc[u][v]);
            }
        }
    }
    FL_DW5_UNROLL(4)
    for (int u = 0; u < P; ++u) {
        if (HALF) {
            _mm256_mask_storeu_ps(y + u * ldy + c, mask8, acch[u]);
            continue;
        }
        FL_DW5_UNROLL(4)
        for (int v = 0; v < V; ++v) {
            const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
            _mm512_mask_storeu_ps(y + u * ldy + c + v * 16, mv, acc[u][v]);
        }
    }
}

// P pixels, all channels.
FL_DW5_AI void dw_pixels_avx512(const int P, const float* const* rows, int64_t ch, int64_t taps,
                                const float* k, const float* bias, float* y, int64_t ldy) {
    const __mmask16 full = (__mmask16)0xFFFF;
    int64_t c = 0;
    for (; c + 64 <= ch; c += 64)
        dw_tile_avx512(P, 4, 0, rows, taps, k, ch, c, bias, y, ldy, full);
    if (c + 32 <= ch) {
        dw_tile_avx512(P, 2, 0, rows, taps, k, ch, c, bias, y, ldy, full);
        c += 32;
    }
    if (c + 16 <= ch) {
        dw_tile_avx512(P, 1, 0, rows, taps, k, ch, c, bias, y, ldy, full);
        c += 16;
    }
    if (c < ch) {
        const __mmask16 tail = (__mmask16)(0xFFFFu >> (16 - (int)(ch - c)));
        if (ch - c <= 8)
            dw_tile_avx512(P, 1, 1, rows, taps, k, ch, c, bias, y, ldy, tail);
        else
            dw_tile_avx512(P, 1, 0, rows, taps, k, ch, c, bias, y, ldy, tail);
    }
}

void fl_dwconv_f32_avx512(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                          const float* k, const float* bias, float* y, int64_t ldy) {
    int64_t p = 0;
    for (; p + 4 <= m; p += 4)
        dw_pixels_avx512(4, rows + p * taps, ch, taps, k, bias, y + p * ldy, ldy);
    switch (m - p) {
        case 3:
            dw_pixels_avx512(3, rows + p * taps, ch, taps, k, bias, y + p * ldy, ldy);
            break;
        case 2:
            dw_pixels_avx512(2, rows + p * taps, ch, taps, k, bias, y + p * ldy, ldy);
            break;
        case 1:
            dw_pixels_avx512(1, rows + p * taps, ch, taps, k, bias, y + p * ldy, ldy);
            break;
        default:
            break;
    }
}
