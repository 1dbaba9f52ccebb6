// FMA peak probe, NEON: 16 independent 4-wide FMA chains (fl_fma_probe_<isa>, ukernels.h).
// Selected by fl::fma_peak_gflops (csrc/runtime/dispatch.cpp) for the benchmark's "% of peak".
#include <arm_neon.h>

#include "../ukernels.h"

int64_t fl_fma_probe_neon(int64_t iters, float* sink) {
    float32x4_t a[16];
    for (int j = 0; j < 16; ++j) a[j] = vdupq_n_f32(static_cast<float>(j));
    const float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
    for (int64_t i = 0; i < iters; ++i)
        for (int j = 0; j < 16; ++j) a[j] = vfmaq_f32(c, a[j], m);
    float32x4_t s = a[0];
    for (int j = 1; j < 16; ++j) s = vaddq_f32(s, a[j]);
    *sink = vaddvq_f32(s);
    return iters * 16 * 4 * 2;
}
