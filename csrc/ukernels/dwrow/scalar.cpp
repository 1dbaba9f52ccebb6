// dwrow/scalar.cpp: depthwise conv row micro-kernel (depth multiplier 1), portable C++.
//
// Contract (csrc/ukernels/ukernels.h, FlDwRow): y[o*ldy + c] = ONE FMA chain, acc = bias[c]
// (or 0), then acc = fmaf(x(a, col0 + o*sw + b*dw)[c], k[(a*kw + b)*ldk + c], acc) for a, then
// b, in order, a column outside the input reading as 0. fmaf rounds once, like VFMADD/FMLA, so
// every ISA gives bitwise the same results. (Also the kernel used on NEON builds: fmaf is one
// instruction on aarch64.) This file is the plain statement of the contract; the AVX2 and
// AVX-512 files are the same arithmetic, reordered only across independent chains.
#include <math.h>

#include "../ukernels.h"

void fl_dwconv_row_f32_scalar(const FlDwRow* p) {
    for (int64_t o = 0; o < p->w; ++o) {
        float* yo = p->y + o * p->ldy;
        for (int64_t c = 0; c < p->ch; ++c) yo[c] = p->bias ? p->bias[c] : 0.0f;
        for (int64_t a = 0; a < p->kh; ++a) {
            for (int64_t b = 0; b < p->kw; ++b) {
                const int64_t q = p->col0 + o * p->sw + b * p->dw;
                const bool inside = q >= 0 && q < p->width;
                const float* x = p->rows[a] + (inside ? q * p->ldx : 0);
                const float* kt = p->k + (a * p->kw + b) * p->ldk;
                for (int64_t c = 0; c < p->ch; ++c)
                    yo[c] = fmaf(inside ? x[c] : 0.0f, kt[c], yo[c]);
            }
        }
    }
}
