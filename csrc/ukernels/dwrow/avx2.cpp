// dwrow/avx2.cpp: depthwise conv row micro-kernel (depth multiplier 1), AVX2 + FMA.
//
// Contract (csrc/ukernels/ukernels.h, FlDwRow): y[o*ldy + c] = ONE FMA chain, acc = bias[c]
// (or 0), then acc = fma(x(a, col0 + o*sw + b*dw)[c], k[(a*kw + b)*ldk + c], acc) for a, then
// b, in order, a column outside [0, width) reading as 0 - the chain of the scalar and AVX-512
// kernels, so all give bitwise the same results.
//
// Tiles: groups of W = 4 consecutive outputs x V = 2 vectors of 8 channels (kw up to 3; then one
// vector, then a masked tail of 1-7), or of 8 outputs x 1 vector for kw = 5 (8 accumulators + 5
// kernel vectors + 1 input fit the 16 ymm registers) and for kw = 7 (8 + 7 + 1: all 16; 4 outputs,
// 4 + 7 + 1, ran 1.0-1.3x slower at ConvNeXt's 7x7 on Zen 4). The last group of a segment is
// shifted back to end at w (it writes some outputs again, with the same values); a segment shorter
// than a group is one group that stores only its w outputs. For kw 3 or 5, stride 1 or 2 and no
// dilation the walk is by input column: each column's vector is loaded once and fed to every
// output of the group whose tap covers it, against the kernel row's kw vectors held in registers
// (kw 7 at stride 1 too). An output's taps come in ascending column order, which is ascending b:
// the contract's chain. Other kernels (KW = 0) loop over the taps at run time with one load per
// FMA. Groups whose columns reach outside the input (CHECK) load those columns with an all-zero
// mask, which reads nothing and gives zeros. Groups of 4 x 16 channels ran 1.04-2.6x faster than 8
// x 8 at 3x3 (a pass reads a whole 64-byte line of a pixel, not half of one): Zen 4, kernel alone,
// us, (1, 7, 7, 1024) 35 vs 91, (1, 14, 14, 512) 51 vs 87, (1, 56, 56, 128) 138 vs 143.
#include <immintrin.h>

#include <algorithm>

#include "../inline.h"
#include "../ukernels.h"

#define FL_DW2_AI FL_KERNEL_AI
#define FL_DW2_UNROLL(n) FL_KERNEL_UNROLL(n)

// The lanes below n (1-8) set.
static inline __m256i dw2_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

// 8 channels of column q: zeros for a column outside the input. MASKED: only the lanes of m.
template <bool CHECK, bool MASKED>
FL_DW2_AI __m256 dw2_load_x(const float* xr, int64_t q, int64_t width, int64_t ldx, __m256i m) {
    if (CHECK) {
        const bool inside = q >= 0 && q < width;
        return _mm256_maskload_ps(xr + (inside ? q : 0) * ldx,
                                  inside ? m : _mm256_setzero_si256());
    }
    if (MASKED) return _mm256_maskload_ps(xr + q * ldx, m);
    return _mm256_loadu_ps(xr + q * ldx);
}

template <bool MASKED>
FL_DW2_AI __m256 dw2_load(const float* s, __m256i m) {
    return MASKED ? _mm256_maskload_ps(s, m) : _mm256_loadu_ps(s);
}

// W outputs from o0 x V vectors of 8 channels from channel c (MASKED, V = 1 only: the lanes of
// m only).
template <int W, int V, int KW, int SW, int DW, bool CHECK, bool MASKED>
FL_DW2_AI void dw2_group(const FlDwRow& p, int64_t o0, int64_t n, int64_t c, __m256i m) {
    __m256 acc[W][V];
    FL_DW2_UNROLL(2)
    for (int v = 0; v < V; ++v) {
        const __m256 init = p.bias ? dw2_load<MASKED>(p.bias + c + 8 * v, m) : _mm256_setzero_ps();
        FL_DW2_UNROLL(8)
        for (int o = 0; o < W; ++o) acc[o][v] = init;
    }
    const int64_t sw = KW > 0 ? SW : p.sw;
    const int64_t q0 = p.col0 + o0 * sw;  // the group's first input column
    const int64_t width = p.width, ldx = p.ldx, ldk = p.ldk;
    for (int64_t a = 0; a < p.kh; ++a) {
        const float* xr = p.rows[a] + c;
        if constexpr (KW > 0) {
            const float* kr = p.k + a * KW * ldk + c;
            __m256 kv[KW][V];
            FL_DW2_UNROLL(7)
            for (int b = 0; b < KW; ++b) {
                FL_DW2_UNROLL(2)
                for (int v = 0; v < V; ++v) kv[b][v] = dw2_load<MASKED>(kr + b * ldk + 8 * v, m);
            }
            constexpr int kCols = (W - 1) * SW + (KW - 1) * DW + 1;
            FL_DW2_UNROLL(64)
            for (int i = 0; i < kCols; ++i) {
                FL_DW2_UNROLL(2)
                for (int v = 0; v < V; ++v) {
                    const __m256 xv = dw2_load_x<CHECK, MASKED>(xr + 8 * v, q0 + i, width, ldx, m);
                    FL_DW2_UNROLL(7)
                    for (int b = 0; b < KW; ++b) {
                        const int d = i - b * DW;  // = o * SW for the output fed by tap b here
                        if (d < 0 || d % SW != 0 || d / SW >= W) continue;
                        acc[d / SW][v] = _mm256_fmadd_ps(xv, kv[b][v], acc[d / SW][v]);
                    }
                }
            }
        } else {
            const int64_t kw = p.kw, dw = p.dw;
            const float* kr = p.k + a * kw * ldk + c;
            for (int64_t b = 0; b < kw; ++b) {
                FL_DW2_UNROLL(2)
                for (int v = 0; v < V; ++v) {
                    const __m256 kb = dw2_load<MASKED>(kr + b * ldk + 8 * v, m);
                    FL_DW2_UNROLL(8)
                    for (int o = 0; o < W; ++o) {
                        const __m256 xv = dw2_load_x<CHECK, MASKED>(
                            xr + 8 * v, q0 + o * sw + b * dw, width, ldx, m);
                        acc[o][v] = _mm256_fmadd_ps(xv, kb, acc[o][v]);
                    }
                }
            }
        }
    }
    FL_DW2_UNROLL(8)
    for (int o = 0; o < W; ++o) {
        if (o >= n) break;
        float* yo = p.y + (o0 + o) * p.ldy + c;
        FL_DW2_UNROLL(2)
        for (int v = 0; v < V; ++v) {
            if (MASKED)
                _mm256_maskstore_ps(yo + 8 * v, m, acc[o][v]);
            else
                _mm256_storeu_ps(yo + 8 * v, acc[o][v]);
        }
    }
}

// W outputs from o0, all channels.
template <int W, int KW, int SW, int DW, bool CHECK>
static void dw2_group_all(const FlDwRow& p, int64_t o0, int64_t n) {
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t c = 0;
    if constexpr (W == 4 && KW <= 3)
        for (; c + 16 <= p.ch; c += 16) dw2_group<W, 2, KW, SW, DW, CHECK, false>(p, o0, n, c, all);
    for (; c + 8 <= p.ch; c += 8) dw2_group<W, 1, KW, SW, DW, CHECK, false>(p, o0, n, c, all);
    if (c < p.ch) dw2_group<W, 1, KW, SW, DW, CHECK, true>(p, o0, n, c, dw2_mask(p.ch - c));
}

// W outputs from o0: the unchecked kernel when all of the group's columns are inside the input.
template <int W, int KW, int SW, int DW>
static void dw2_group_at(const FlDwRow& p, int64_t o0, int64_t n) {
    const int64_t sw = KW > 0 ? SW : p.sw;
    const int64_t first = p.col0 + o0 * sw;
    const int64_t last = first + (W - 1) * sw + (p.kw - 1) * (KW > 0 ? DW : p.dw);
    if (first >= 0 && last < p.width)
        dw2_group_all<W, KW, SW, DW, false>(p, o0, n);
    else
        dw2_group_all<W, KW, SW, DW, true>(p, o0, n);
}

// Groups of 4 outputs x 16 channels (kw up to 3, and the kernels without a column walk of their
// own) or of 8 x 8 channels (kw 5 and 7: 8 accumulators and 5 or 7 kernel vectors), the last group
// shifted back to end at w (it writes some outputs again, with the same values); a segment shorter
// than a group is one group that stores only its first w outputs (its other columns are read as
// the input has them, or as zeros past its end).
template <int KW, int SW, int DW>
static void dw2_row(const FlDwRow& p) {
    const int64_t w = p.w;
    if (KW <= 3 || w <= 4) {
        for (int64_t o0 = 0; o0 < w; o0 += 4)
            dw2_group_at<4, KW, SW, DW>(p, w < 4 ? 0 : std::min(o0, w - 4),
                                        std::min<int64_t>(w, 4));
        return;
    }
    for (int64_t o0 = 0; o0 < w; o0 += 8)
        dw2_group_at<8, KW, SW, DW>(p, w < 8 ? 0 : std::min(o0, w - 8), std::min<int64_t>(w, 8));
}

void fl_dwconv_row_f32_avx2(const FlDwRow* p) {
    if (p->w <= 0 || p->ch <= 0) return;
    if (p->dw == 1 && p->kw == 3 && p->sw == 1) return dw2_row<3, 1, 1>(*p);
    if (p->dw == 1 && p->kw == 3 && p->sw == 2) return dw2_row<3, 2, 1>(*p);
    if (p->dw == 1 && p->kw == 5 && p->sw == 1) return dw2_row<5, 1, 1>(*p);
    if (p->dw == 1 && p->kw == 5 && p->sw == 2) return dw2_row<5, 2, 1>(*p);
    if (p->dw == 1 && p->kw == 7 && p->sw == 1) return dw2_row<7, 1, 1>(*p);
    dw2_row<0, 1, 1>(*p);
}
