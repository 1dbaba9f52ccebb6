// dwrow/avx512.cpp: depthwise conv row micro-kernel (depth multiplier 1), AVX-512 (F).
//
// Contract (csrc/ukernels/ukernels.h, FlDwRow): y[o*ldy + c] = ONE FMA chain, acc = bias[c]
// (or 0), then acc = fma(x(a, col0 + o*sw + b*dw)[c], k[(a*kw + b)*ldk + c], acc) for a, then
// b, in order, a column outside [0, width) reading as 0 - the chain of the scalar and AVX2
// kernels, so all give bitwise the same results. ISA: AVX-512 F (this file alone is compiled
// with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma). Selected by fl::kernels()
// (KernelTable::dwconv_row) when active_isa() is avx512; the tests call it by name.
//
// Tiles: W = 8 consecutive outputs (7 when 7 divides the segment and 8 does not; the last group
// shifted back to end at w, writing some outputs again with the same values; a segment shorter
// than 8 is one group of 8, or of 4 up to 4 outputs, that stores only its w) x V = 2 vectors of 16
// channels (then 1, then a masked tail of 1-15; for kw 7, V = 1 throughout). For the common
// kernels (kw 3 or 5, stride 1 or 2; kw 7, stride 1: ConvNeXt's; no dilation) the walk is by input
// column: each column's vectors are loaded once and fed to every output of the group whose tap
// covers it, against the kernel row's kw x V vectors held in registers. An output's taps come in
// ascending column order, which is ascending b: the contract's chain. 8 x 2 accumulators + 5 x 2
// kernel vectors + 2 inputs fit the 32 zmm registers. A 3x3 stride-1 group loads 10 input vectors
// per kernel row where the per-pixel kernel (fl_dwconv_f32) loads 24. Other kernels (KW = 0) loop
// over the taps at run time with one load per FMA. Groups whose columns reach outside the input
// (CHECK) load those columns with an all-zero mask, which reads nothing and gives zeros. Groups of
// 4 x 64 channels (no room left for the kernel vectors: spills) ran 1.3-2x slower.
//
// Zen 4, one core, 3x3 'same', kernel alone over whole rows, cycles per output pixel and 16
// channels, this kernel vs the per-pixel one, inputs 64-byte aligned: (1, 112, 112, 32) 15.1
// vs 34.7; (1, 56, 56, 128) 15.7 vs 21.7; (8, 14, 14, 512) 17.6 vs 21.3; (8, 7, 7, 1024) 24.5
// vs 26.4; stride 2 (1, 112, 112, 96) 26-28 vs 27-28 (reading the input from L3). The FMA
// bound is 9. Through the driver the per-pixel kernel is the faster one from 96 channels at
// stride 2 and above 512 channels (conv2d_depthwise.cpp picks).
#include <immintrin.h>

#include <algorithm>

#include "../inline.h"
#include "../ukernels.h"

#define FL_DW5_AI FL_KERNEL_AI
#define FL_DW5_UNROLL(n) FL_KERNEL_UNROLL(n)

// Input vector v (16 channels) of column q: zeros for a column outside the input.
template <bool CHECK>
FL_DW5_AI __m512 dw5_load_x(const float* xr, int64_t q, int64_t width, int64_t ldx, int v,
                            __mmask16 mv) {
    if (CHECK) {
        const bool inside = q >= 0 && q < width;
        return _mm512_maskz_loadu_ps(inside ? mv : (__mmask16)0,
                                     xr + (inside ? q : 0) * ldx + v * 16);
    }
    return _mm512_maskz_loadu_ps(mv, xr + q * ldx + v * 16);
}

// W outputs from o0 x V vectors of 16 channels from channel c; the last vector is masked.
template <int W, int V, int KW, int SW, int DW, bool CHECK>
FL_DW5_AI void dw5_group(const FlDwRow& p, int64_t o0, int64_t n, int64_t c, __mmask16 mask) {
    __m512 acc[W][V];
    FL_DW5_UNROLL(2)
    for (int v = 0; v < V; ++v) {
        const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
        const __m512 init =
            p.bias ? _mm512_maskz_loadu_ps(mv, p.bias + c + v * 16) : _mm512_setzero_ps();
        FL_DW5_UNROLL(8)
        for (int o = 0; o < W; ++o) acc[o][v] = init;
    }
    const int64_t sw = KW > 0 ? SW : p.sw;
    const int64_t q0 = p.col0 + o0 * sw;  // the group's first input column
    const int64_t width = p.width, ldx = p.ldx, ldk = p.ldk;
    for (int64_t a = 0; a < p.kh; ++a) {
        const float* xr = p.rows[a] + c;
        if constexpr (KW > 0) {
            const float* kr = p.k + a * KW * ldk + c;
            __m512 kv[KW > 0 ? KW : 1][V];
            FL_DW5_UNROLL(7)
            for (int b = 0; b < KW; ++b) {
                FL_DW5_UNROLL(2)
                for (int v = 0; v < V; ++v) {
                    const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
                    kv[b][v] = _mm512_maskz_loadu_ps(mv, kr + b * ldk + v * 16);
                }
            }
            constexpr int kCols = (W - 1) * SW + (KW - 1) * DW + 1;
            FL_DW5_UNROLL(64)
            for (int i = 0; i < kCols; ++i) {
                __m512 xv[V];
                FL_DW5_UNROLL(2)
                for (int v = 0; v < V; ++v) {
                    const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
                    xv[v] = dw5_load_x<CHECK>(xr, q0 + i, width, ldx, v, mv);
                }
                FL_DW5_UNROLL(7)
                for (int b = 0; b < KW; ++b) {
                    const int d = i - b * DW;  // = o * SW for the output fed by tap b here
                    if (d < 0 || d % SW != 0 || d / SW >= W) continue;
                    FL_DW5_UNROLL(2)
                    for (int v = 0; v < V; ++v)
                        acc[d / SW][v] = _mm512_fmadd_ps(xv[v], kv[b][v], acc[d / SW][v]);
                }
            }
        } else {
            const int64_t kw = p.kw, dw = p.dw;
            const float* kr = p.k + a * kw * ldk + c;
            for (int64_t b = 0; b < kw; ++b) {
                FL_DW5_UNROLL(2)
                for (int v = 0; v < V; ++v) {
                    const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
                    const __m512 kb = _mm512_maskz_loadu_ps(mv, kr + b * ldk + v * 16);
                    FL_DW5_UNROLL(8)
                    for (int o = 0; o < W; ++o) {
                        const __m512 xv =
                            dw5_load_x<CHECK>(xr, q0 + o * sw + b * dw, width, ldx, v, mv);
                        acc[o][v] = _mm512_fmadd_ps(xv, kb, acc[o][v]);
                    }
                }
            }
        }
    }
    FL_DW5_UNROLL(8)
    for (int o = 0; o < W; ++o) {
        if (o >= n) break;
        float* yo = p.y + (o0 + o) * p.ldy + c;
        FL_DW5_UNROLL(2)
        for (int v = 0; v < V; ++v) {
            const __mmask16 mv = v == V - 1 ? mask : (__mmask16)0xFFFF;
            _mm512_mask_storeu_ps(yo + v * 16, mv, acc[o][v]);
        }
    }
}

// W outputs from o0, all channels.
template <int W, int KW, int SW, int DW, bool CHECK>
static void dw5_group_all(const FlDwRow& p, int64_t o0, int64_t n) {
    const __mmask16 full = (__mmask16)0xFFFF;
    int64_t c = 0;
    if constexpr (KW <= 5)  // (kw 7: 8 x 2 accumulators and 7 x 2 kernel vectors would spill)
        for (; c + 32 <= p.ch; c += 32) dw5_group<W, 2, KW, SW, DW, CHECK>(p, o0, n, c, full);
    for (; c + 16 <= p.ch; c += 16) dw5_group<W, 1, KW, SW, DW, CHECK>(p, o0, n, c, full);
    if (c < p.ch) {
        const __mmask16 tail = (__mmask16)(0xFFFFu >> (16 - (int)(p.ch - c)));
        dw5_group<W, 1, KW, SW, DW, CHECK>(p, o0, n, c, tail);
    }
}

// W outputs from o0: the unchecked kernel when all of the group's columns are inside the input.
template <int W, int KW, int SW, int DW>
static void dw5_group_at(const FlDwRow& p, int64_t o0, int64_t n) {
    const int64_t sw = KW > 0 ? SW : p.sw;
    const int64_t first = p.col0 + o0 * sw;
    const int64_t last = first + (W - 1) * sw + (p.kw - 1) * (KW > 0 ? DW : p.dw);
    if (first >= 0 && last < p.width)
        dw5_group_all<W, KW, SW, DW, false>(p, o0, n);
    else
        dw5_group_all<W, KW, SW, DW, true>(p, o0, n);
}

// Groups of 8 outputs, the last one shifted back to end at w (it writes some outputs again,
// with the same values), or of 7 when 7 divides w and 8 does not (rows of 7, 14, 28: CNNs'
// small feature maps, computed without overlap); a segment shorter than 8 is one group of 8
// (of 4 up to 4 outputs) that stores only its first w outputs (its other columns are read as
// the input has them, or as zeros past its end).
template <int KW, int SW, int DW>
static void dw5_row(const FlDwRow& p) {
    const int64_t w = p.w;
    if (w <= 4) return dw5_group_at<4, KW, SW, DW>(p, 0, w);
    if (w % 8 != 0 && w % 7 == 0) {
        for (int64_t o0 = 0; o0 < w; o0 += 7) dw5_group_at<7, KW, SW, DW>(p, o0, 7);
        return;
    }
    for (int64_t o0 = 0; o0 < w; o0 += 8)
        dw5_group_at<8, KW, SW, DW>(p, w < 8 ? 0 : std::min(o0, w - 8), std::min<int64_t>(w, 8));
}

void fl_dwconv_row_f32_avx512(const FlDwRow* p) {
    if (p->w <= 0 || p->ch <= 0) return;
    if (p->dw == 1 && p->kw == 3 && p->sw == 1) return dw5_row<3, 1, 1>(*p);
    if (p->dw == 1 && p->kw == 3 && p->sw == 2) return dw5_row<3, 2, 1>(*p);
    if (p->dw == 1 && p->kw == 5 && p->sw == 1) return dw5_row<5, 1, 1>(*p);
    if (p->dw == 1 && p->kw == 5 && p->sw == 2) return dw5_row<5, 2, 1>(*p);
    if (p->dw == 1 && p->kw == 7 && p->sw == 1) return dw5_row<7, 1, 1>(*p);
    dw5_row<0, 1, 1>(*p);
}
