// rownorm/lanes.h: the part of the row sums (fl_row_*_f64_<isa>, csrc/ukernels/ukernels.h)
// stated once in scalar C++: the elements past the last whole block of kLanes, each into its
// lane, and the fixed tree that adds the lanes up (scalar.cpp runs them; avx2.cpp and
// avx512.cpp do the same additions in registers), and the terms every file computes.
// Included by scalar.cpp, avx2.cpp and avx512.cpp only (everything here is static inline: each
// file gets its own copy, compiled with its flags; plain double additions, so the same bits).
#pragma once
#include <stdint.h>
#include <string.h>

namespace fl_rownorm {

// Element j of a row goes into lane j % kLanes: enough independent chains to hide the latency
// of the double additions (4 zmm or 8 ymm accumulators).
constexpr int kLanes = 32;

// acc[l] += term(x[j]) for the tail elements j = j0, j0 + 1, ... < n (lane l = j - j0, as
// j0 is a multiple of kLanes), then the lanes as a fixed tree: lane l += lane l + w for
// w = 16, 8, 4, 2, 1. Returns the sum.
template <class Term>
static inline double finish_lanes(double* acc, const float* x, int64_t j0, int64_t n,
                                  Term term) {
    for (int64_t j = j0; j < n; ++j) acc[j - j0] += term(x[j]);
    for (int w = kLanes / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}

// The terms of the two sums (the SIMD files compute the same operations lane by lane):
// x widened, squared; the deviation (x - hi) - lo rounded to float32 (hi + lo the
// mean as two floats), widened, squared. No FMA (the files are compiled with
// -ffp-contract=off).
static inline double term_sq(float v) {
    const double d = v;
    return d * d;
}
static inline double term_dev_sq(float v, float hi, float lo) {
    const double d = (double)((v - hi) - lo);
    return d * d;
}

// The terms of the shifted moments (fl_row_moments_f64_<isa>): d = (double)x - (double)s, exact
// unless the two exponents are more than 29 apart (then rounded once), and d * d.
static inline double term_shift(float v, float s) { return (double)v - (double)s; }
static inline double term_shift_sq(float v, float s) {
    const double d = term_shift(v, s);
    return d * d;
}

// Both moments' tails and trees (finish_lanes on each): out[0] the sum of d, out[1] of d * d.
static inline void finish_moments(double* acc1, double* acc2, const float* x, int64_t j0,
                                  int64_t n, float s, double* out) {
    out[0] = finish_lanes(acc1, x, j0, n, [s](float v) { return term_shift(v, s); });
    out[1] = finish_lanes(acc2, x, j0, n, [s](float v) { return term_shift_sq(v, s); });
}

// fl_row_min_magnitude_<isa>: the key of one float (ukernels.h), and the answer from the
// least key. Keys of 0x7F7FFFFF (+inf) and above (NaN, 0) answer +inf.
static inline int32_t magnitude_key(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (int32_t)(((bits & 0x7FFFFFFFu) - 1u) & 0x7FFFFFFFu);
}
static inline float magnitude_from_key(int32_t least) {
    const uint32_t bits = least >= 0x7F7FFFFF ? 0x7F800000u : (uint32_t)least + 1u;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

}  // namespace fl_rownorm
