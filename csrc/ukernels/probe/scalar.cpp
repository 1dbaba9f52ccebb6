// FMA peak probe, scalar: 8 independent fmaf chains (fl_fma_probe_<isa>, ukernels.h). Selected by
// fl::fma_peak_gflops (csrc/runtime/dispatch.cpp) for the benchmark's "% of peak" column.
#include <math.h>

#include "../ukernels.h"

int64_t fl_fma_probe_scalar(int64_t iters, float* sink) {
    float a0 = 0.f, a1 = 1.f, a2 = 2.f, a3 = 3.f, a4 = 4.f, a5 = 5.f, a6 = 6.f, a7 = 7.f;
    const float m = 0.999999f, c = 1e-7f;
    for (int64_t i = 0; i < iters; ++i) {
        a0 = fmaf(a0, m, c);
        a1 = fmaf(a1, m, c);
        a2 = fmaf(a2, m, c);
        a3 = fmaf(a3, m, c);
        a4 = fmaf(a4, m, c);
        a5 = fmaf(a5, m, c);
        a6 = fmaf(a6, m, c);
        a7 = fmaf(a7, m, c);
    }
    *sink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    return iters * 8 * 2;
}
