// dwconv/avx2.cpp: depthwise conv micro-kernel (depth multiplier 1), AVX2 + FMA.
//
// Contract (csrc/ukernels/ukernels.h): y[p*ldy + c] = ONE FMA chain, acc = bias[c] (or 0),
// then acc = fma(rows[p*taps + t][c], k[t*ch + c], acc) for t = 0, 1, ..., taps-1.
// Channels go 32 at a time (4 independent ymm chains per pixel, so the 4-cycle FMA latency is
// hidden), then 8 at a time, then a masked tail; the taps loop is innermost so each chain stays
// in a register for the whole patch.
#include <immintrin.h>

#include "../ukernels.h"

static inline __m256i fl_dw_tail_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

// Two pixels at once over 32-channel blocks: 8 independent chains (the kernel rows are loaded
// once for both), which keeps both FMA ports busy when there are only 32-63 channels.
static inline void fl_dw_pair32(const float* const* r0, const float* const* r1, int64_t taps,
                                const float* k, int64_t ch, int64_t c, const float* bias,
                                float* y0, float* y1) {
    __m256 a0, a1, a2, a3;
    if (bias) {
        a0 = _mm256_loadu_ps(bias + c);
        a1 = _mm256_loadu_ps(bias + c + 8);
        a2 = _mm256_loadu_ps(bias + c + 16);
        a3 = _mm256_loadu_ps(bias + c + 24);
    } else {
        a0 = a1 = a2 = a3 = _mm256_setzero_ps();
    }
    __m256 b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (int64_t t = 0; t < taps; ++t) {
        const float* x0 = r0[t] + c;
        const float* x1 = r1[t] + c;
        const float* kt = k + t * ch + c;
        const __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8);
        const __m256 k2 = _mm256_loadu_ps(kt + 16), k3 = _mm256_loadu_ps(kt + 24);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0), k0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + 8), k1, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + 16), k2, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + 24), k3, a3);
        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x1), k0, b0);
        b1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + 8), k1, b1);
        b2 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + 16), k2, b2);
        b3 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + 24), k3, b3);
    }
    _mm256_storeu_ps(y0 + c, a0);
    _mm256_storeu_ps(y0 + c + 8, a1);
    _mm256_storeu_ps(y0 + c + 16, a2);
    _mm256_storeu_ps(y0 + c + 24, a3);
    _mm256_storeu_ps(y1 + c, b0);
    _mm256_storeu_ps(y1 + c + 8, b1);
    _mm256_storeu_ps(y1 + c + 16, b2);
    _mm256_storeu_ps(y1 + c + 24, b3);
}

void fl_dwconv_f32_avx2(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                        const float* k, const float* bias, float* y, int64_t ldy) {
    const int64_t ch32 = ch / 32 * 32;
    int64_t p0 = 0;
    for (; p0 + 2 <= m && ch32 > 0; p0 += 2) {
        for (int64_t c = 0; c < ch32; c += 32) {
            fl_dw_pair32(rows + p0 * taps, rows + (p0 + 1) * taps, taps, k, ch, c, bias,
                         y + p0 * ldy, y + (p0 + 1) * ldy);
        }
    }
    // The remaining channels of the pairs above, then the remaining pixels (c from 0).
    for (int64_t p = 0; p < m; ++p) {
        const int64_t c_start = p < p0 ? ch32 : 0;
        const float* const* r = rows + p * taps;
        float* yp = y + p * ldy;
        int64_t c = c_start;
        for (; c + 32 <= ch; c += 32) {
            __m256 a0, a1, a2, a3;
            if (bias) {
                a0 = _mm256_loadu_ps(bias + c);
                a1 = _mm256_loadu_ps(bias + c + 8);
                a2 = _mm256_loadu_ps(bias + c + 16);
                a3 = _mm256_loadu_ps(bias + c + 24);
            } else {
                a0 = a1 = a2 = a3 = _mm256_setzero_ps();
            }
            for (int64_t t = 0; t < taps; ++t) {
                const float* x = r[t] + c;
                const float* kt = k + t * ch + c;
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(kt), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), _mm256_loadu_ps(kt + 8), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(kt + 16), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), _mm256_loadu_ps(kt + 24), a3);
            }
            _mm256_storeu_ps(yp + c, a0);
            _mm256_storeu_ps(yp + c + 8, a1);
            _mm256_storeu_ps(yp + c + 16, a2);
            _mm256_storeu_ps(yp + c + 24, a3);
        }
        for (; c + 8 <= ch; c += 8) {
            __m256 a0 = bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps();
            for (int64_t t = 0; t < taps; ++t) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r[t] + c), _mm256_loadu_ps(k + t * ch + c),
                                     a0);
            }
            _mm256_storeu_ps(yp + c, a0);
        }
        if (c < ch) {
            const __m256i mask = fl_dw_tail_mask(ch - c);
            __m256 a0 = bias ? _mm256_maskload_ps(bias + c, mask) : _mm256_setzero_ps();
            for (int64_t t = 0; t < taps; ++t) {
                a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r[t] + c, mask),
                                     _mm256_maskload_ps(k + t * ch + c, mask), a0);
            }
            _mm256_maskstore_ps(yp + c, mask, a0);
        }
    }
}
