// rowb_band.h: the band height of the row-major-B kernels (fl_gemm_rowb_f32_avx2 and _avx512),
// shared so that both ISAs sweep B alike. A band is as many rows as make kRowbBandFloats
// (16 KiB) of B, rounded down to a multiple of 8, between 8 and 256 rows; the measurements
// behind it are in gemm/avx2.cpp and docs/performance.md section 3.
#pragma once

#include <cstdint>

static const int64_t kRowbMinRows = 8, kRowbMaxRows = 256, kRowbBandFloats = 4096;

static inline int64_t rowb_band_rows(int64_t n) {
    const int64_t r = (kRowbBandFloats / (n > 0 ? n : 1)) / 8 * 8;
    return r < kRowbMinRows ? kRowbMinRows : r > kRowbMaxRows ? kRowbMaxRows : r;
}
