// dwconv/scalar.cpp: depthwise conv micro-kernel (depth multiplier 1), portable C++.
//
// Contract (csrc/ukernels/ukernels.h): y[p*ldy + c] = ONE FMA chain, acc = bias[c] (or 0),
// then acc = fmaf(rows[p*taps + t][c], k[t*ch + c], acc) for t = 0, 1, ..., taps-1. fmaf rounds
// once, like VFMADD/FMLA, so every ISA gives bitwise the same results. (Also the kernel used on
// NEON builds: fmaf is one instruction on aarch64.)
#include <math.h>

#include "../ukernels.h"

void fl_dwconv_f32_scalar(int64_t m, int64_t ch, int64_t taps, const float* const* rows,
                          const float* k, const float* bias, float* y, int64_t ldy) {
    for (int64_t p = 0; p < m; ++p) {
        const float* const* r = rows + p * taps;
        float* yp = y + p * ldy;
        for (int64_t c = 0; c < ch; ++c) yp[c] = bias ? bias[c] : 0.0f;
        for (int64_t t = 0; t < taps; ++t) {
            const float* x = r[t];
            const float* kt = k + t * ch;
            for (int64_t c = 0; c < ch; ++c) yp[c] = fmaf(x[c], kt[c], yp[c]);
        }
    }
}
