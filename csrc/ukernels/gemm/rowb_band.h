// rowb_band.h: the band height of the row-major-B kernels (fl_gemm_rowb_f32_avx2 and _avx512),
// shared so that both ISAs sweep B alike; the rule and its measurements are described in
// gemm/avx2.cpp. Included by ISA files: everything here must stay `static` (internal linkage,
// a copy per ISA object), never a plain `inline` the linker could merge across ISA objects
// (docs/architecture.md section 5).
#pragma once

#include <cstdint>

static const int64_t kRowbMinRows = 8, kRowbMaxRows = 256, kRowbBandFloats = 4096;

static inline int64_t rowb_band_rows(int64_t n) {
    const int64_t r = (kRowbBandFloats / (n > 0 ? n : 1)) / 8 * 8;
    return r < kRowbMinRows ? kRowbMinRows : r > kRowbMaxRows ? kRowbMaxRows : r;
}
