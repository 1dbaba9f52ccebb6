// The bridge that lets test files other than test_main.cpp register cases with fl_tests and
// report failures through its tiny framework (defined in test_main.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "fastlayers/runtime.h"

namespace fltest {

// Whether this CPU runs kernels of `isa` (and this build has them).
inline bool isa_supported(fl::Isa isa) {
    for (fl::Isa s : fl::isas_supported())
        if (s == isa) return true;
    return false;
}

// The bit pattern of a float (for exact comparisons, NaN payloads and sentinels included).
inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

// Whether case `idx` of an attention driver grid runs. The drivers are the same code on every
// ISA, so their grids run whole on the best ISA this CPU has, and a quarter of them on a run
// capped below it (FASTLAYERS_ISA=scalar on an AVX2 machine, avx2 on an AVX-512 one): the
// capped ISA's kernels are checked whole by their own grids, and bit for bit by the cross-ISA
// cases (test_cross_isa.cpp: each ISA's against the scalar kernels). The scalar run spent 58 of
// its 103 s (wall) in these grids (docs/architecture.md §10).
inline bool driver_grid_case(uint32_t idx) {
    static const bool capped = fl::active_isa() != fl::isas_supported().back();
    // A quarter by a hash of the index, not idx % 4: the grids derive a case's dims from its
    // index modulo small numbers, which idx % 4 would fix.
    return !capped || ((idx * 2654435761u) >> 16) % 4 == 0;
}

// Records a failed check in the running case (printed for the first few failures only).
void report_failure(const char* file, int line, const std::string& what);
// Failed checks so far in the running case.
int case_failures();
// Adds a case to the run (in registration order).
void add_case(std::string name, std::function<void()> fn);

// Registration functions of the other test files, called by main().
void register_gemm_tests();
void register_vmath_tests();
void register_conv2d_tests();
void register_attention_tests();
void register_recurrent_tests();
void register_cross_isa_tests();
void register_layer_norm_tests();
void register_transpose_tests();

}  // namespace fltest

#define FLT_CHECK(cond)                                                                \
    do {                                                                               \
        if (!(cond)) ::fltest::report_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

#define FLT_CHECK_MSG(cond, ...)                                                                \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            char flt_msg_[512];                                                                 \
            std::snprintf(flt_msg_, sizeof flt_msg_, __VA_ARGS__);                              \
            ::fltest::report_failure(__FILE__, __LINE__, #cond + std::string(": ") + flt_msg_); \
        }                                                                                       \
    } while (0)
