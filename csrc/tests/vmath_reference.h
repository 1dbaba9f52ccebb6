// Double-precision references of the elementwise activations (docs/semantics.md §2), shared by the
// C++ tests (test_vmath.cpp) and the ULP checker (vmath_ulp_check.cpp). Written for accuracy,
// not speed: every formula is arranged so that it neither cancels nor overflows in double, and
// +-inf give the mathematical limits.
//
// Constants are Keras's: the string activations use float32 tensors, so leaky_relu's slope 0.2
// and gelu_tanh's sqrt(2/pi) and 0.044715 are the float32 values; selu's scale and alpha are
// exact (the kernels round them, which is part of their error).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "fastlayers/activations.h"

namespace fltest {

inline double ref_sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

inline double ref_softplus(double x) {
    return (x > 0.0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x)));
}

// x * f where f -> 0 as x -> -inf faster than x grows: 0 at -inf instead of -inf * 0.
inline double ref_times(double x, double f) { return f == 0.0 ? 0.0 : x * f; }

inline double act_reference(fl::Act act, double x) {
    using fl::Act;
    if (std::isnan(x)) return x;
    switch (act) {
        case Act::linear:
            return x;
        case Act::relu:
            return x < 0.0 ? 0.0 : x;
        case Act::relu6:
            return x < 0.0 ? 0.0 : (x > 6.0 ? 6.0 : x);
        case Act::leaky_relu:
            return x >= 0.0 ? x : static_cast<double>(0.2f) * x;
        case Act::sigmoid:
            return ref_sigmoid(x);
        case Act::tanh:
            return std::tanh(x);
        case Act::gelu:
            if (std::isinf(x)) return x > 0 ? x : 0.0;
            return 0.5 * x * std::erfc(-x * 0.70710678118654752440);
        case Act::gelu_tanh: {
            if (std::isinf(x)) return x > 0 ? x : 0.0;
            const double c = static_cast<double>(0x1.988454p-1f);  // float32 sqrt(2/pi)
            const double k = static_cast<double>(0x1.6e4e26p-5f);  // float32 0.044715
            return ref_times(x, ref_sigmoid(2.0 * c * (x + k * x * x * x)));
        }
        case Act::silu:
            return ref_times(x, ref_sigmoid(x));
        case Act::elu:
        case Act::celu:  // alpha = 1: max(x, 0) + expm1(min(x, 0)) is elu
            return x >= 0.0 ? x : std::expm1(x);
        case Act::selu: {
            const double scale = 1.0507009873554804934193349852946;
            const double alpha = 1.6732632423543772848170429916717;
            return x >= 0.0 ? scale * x : scale * alpha * std::expm1(x);
        }
        case Act::softplus:
            return ref_softplus(x);
        case Act::softsign:
            if (std::isinf(x)) return x > 0 ? 1.0 : -1.0;
            return x / (1.0 + std::fabs(x));
        case Act::hard_sigmoid: {
            const double v = x / 6.0 + 0.5;
            return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
        }
        case Act::hard_silu: {
            if (x <= -3.0) return 0.0;
            const double v = x / 6.0 + 0.5;
            return x * (v > 1.0 ? 1.0 : v);
        }
        case Act::mish:
            return ref_times(x, std::tanh(ref_softplus(x)));
        case Act::exponential:
            return std::exp(x);
        case Act::log_sigmoid:
            return -ref_softplus(-x);
        case Act::tanh_shrink:
            if (std::fabs(x) < 1e-2) {
                const double x2 = x * x;
                return x * x2 * (1.0 / 3.0 + x2 * (-2.0 / 15.0 + x2 * (17.0 / 315.0)));
            }
            return x - std::tanh(x);
        case Act::hard_tanh:
            return x < -1.0 ? -1.0 : (x > 1.0 ? 1.0 : x);
        case Act::soft_shrink:
            return x > 0.5 ? x - 0.5 : (x < -0.5 ? x + 0.5 : 0.0);
        case Act::hard_shrink:
            return std::fabs(x) <= 0.5 ? 0.0 : x;
        case Act::sparse_plus:
            return x <= -1.0 ? 0.0 : (x >= 1.0 ? x : 0.25 * (x + 1.0) * (x + 1.0));
        case Act::squareplus: {
            if (std::isinf(x)) return x > 0 ? x : 0.0;
            const double s = std::sqrt(x * x + 4.0);
            return x >= 0.0 ? 0.5 * (x + s) : 2.0 / (s - x);
        }
        case Act::sparse_sigmoid: {
            const double v = 0.5 * (x + 1.0);
            return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
        }
    }
    return std::numeric_limits<double>::quiet_NaN();
}

// Below this magnitude of the exact result, a kernel may flush to 0 (the SIMD kernels flush
// exp(t) for t < ln(FLT_MIN) = -87.34 to 0; silu, mish and gelu_tanh multiply such a flushed
// factor by |x| <= 92, which gives results up to 92 * FLT_MIN ~ 1.1e-36 = 2^-119.6); results
// this small are compared in absolute terms, larger ones in ULPs.
inline double act_flush_threshold(fl::Act act) {
    switch (act) {
        case fl::Act::silu:
        case fl::Act::mish:
        case fl::Act::gelu_tanh:
            return 0x1p-119;
        default:
            return 0x1p-126;  // FLT_MIN
    }
}

inline uint32_t f2u(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float u2f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Floats mapped to integers so that adjacent floats differ by 1 (+0 and -0 both map to 0; inf
// is one step beyond FLT_MAX).
inline int64_t float_ordinal(float f) {
    const uint32_t u = f2u(f);
    return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}

inline int64_t ulp_diff(float a, float b) {
    const int64_t d = float_ordinal(a) - float_ordinal(b);
    return d < 0 ? -d : d;
}

}  // namespace fltest
