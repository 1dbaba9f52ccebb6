// Packing of the B operand into 16-wide K-major panels (the layout of fl::PackedB), and the
// aligned storage behind it.
//
// B (K, N) -> ceil(N/16) panels; panel q holds columns [16q, 16q+16) as K rows of 16 floats,
// so a micro-kernel streams one contiguous panel and a K block of it is a contiguous slice.
#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

#include "../runtime/dispatch.h"
#include "fastlayers/gemm.h"

namespace fl {

void AlignedFloatDeleter::operator()(float* p) const {
    ::operator delete[](p, std::align_val_t(64));
}

AlignedFloats alloc_aligned_floats(int64_t n) {
    if (n <= 0) return AlignedFloats();
    void* p = ::operator new[](static_cast<size_t>(n) * sizeof(float), std::align_val_t(64));
    return AlignedFloats(static_cast<float*>(p));
}

PackedB::PackedB(int64_t k, int64_t n, bool with_bias) : k_(k), n_(n), has_bias_(with_bias) {
    if (k < 0 || n < 0) throw std::invalid_argument("PackedB: negative size");
    const int64_t panel_floats = panels() * panel_stride();
    const int64_t bias_floats = with_bias ? panels() * kGemmNR : 0;
    storage_floats_ = panel_floats + bias_floats;
    // Keep a valid pointer even for empty shapes, so bias() is non-null when asked for.
    data_ = alloc_aligned_floats(std::max<int64_t>(storage_floats_, kGemmNR));
    std::memset(data_.get(), 0,
                static_cast<size_t>(std::max<int64_t>(storage_floats_, kGemmNR)) * sizeof(float));
}

void pack_b_panel(const float* b, int64_t rs_b, int64_t cs_b, int64_t kc, int64_t nc, float* dst,
                  int64_t dst_panel_stride) {
    const int64_t panels = (nc + kGemmNR - 1) / kGemmNR;
    if (cs_b == 1) {
        // Row-major B. Blocks of 16 source rows, all panels: the reads are 16 sequential
        // streams and each panel receives a contiguous 1 KiB run. (Walking one panel at a time
        // down the columns ran at 2 GB/s for N = 2048, where every row is a new 8 KiB stride.)
        constexpr int64_t kRows = 16;
        for (int64_t p0 = 0; p0 < kc; p0 += kRows) {
            const int64_t p1 = std::min(p0 + kRows, kc);
            for (int64_t q = 0; q < panels; ++q) {
                const int64_t j0 = q * kGemmNR;
                const int64_t w = std::min<int64_t>(kGemmNR, nc - j0);
                float* panel = dst + q * dst_panel_stride;
                const float* src = b + j0;
                if (w == kGemmNR) {
                    for (int64_t p = p0; p < p1; ++p)
                        std::memcpy(panel + p * kGemmNR, src + p * rs_b, kGemmNR * sizeof(float));
                } else {
                    for (int64_t p = p0; p < p1; ++p) {
                        float* row = panel + p * kGemmNR;
                        std::memcpy(row, src + p * rs_b, static_cast<size_t>(w) * sizeof(float));
                        std::memset(row + w, 0, static_cast<size_t>(kGemmNR - w) * sizeof(float));
                    }
                }
            }
        }
        return;
    }
    if (rs_b == 1) {
        // Transposed B (column j contiguous at b + j*cs_b, e.g. K^T): the ISA's transposing
        // pack, one panel at a time.
        for (int64_t q = 0; q < panels; ++q) {
            const int64_t j0 = q * kGemmNR;
            kernels().pack_t16(b + j0 * cs_b, cs_b, std::min<int64_t>(kGemmNR, nc - j0), kc,
                               dst + q * dst_panel_stride);
        }
        return;
    }
    // Any other strides: element by element.
    for (int64_t q = 0; q < panels; ++q) {
        const int64_t j0 = q * kGemmNR;
        const int64_t w = std::min<int64_t>(kGemmNR, nc - j0);
        float* panel = dst + q * dst_panel_stride;
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t jj = 0; jj < kGemmNR; ++jj)
                panel[p * kGemmNR + jj] = jj < w ? b[p * rs_b + (j0 + jj) * cs_b] : 0.0f;
    }
}

PackedB pack_b(const float* kernel, int64_t k, int64_t n, int64_t ldk, const float* bias_or_null) {
    if (k < 0 || n < 0 || ldk < n) throw std::invalid_argument("pack_b: bad sizes");
    PackedB packed(k, n, bias_or_null != nullptr);
    if (k > 0 && n > 0) pack_b_panel(kernel, ldk, 1, k, n, packed.data(), packed.panel_stride());
    if (bias_or_null && n > 0)
        std::memcpy(packed.bias(), bias_or_null, static_cast<size_t>(n) * sizeof(float));
    return packed;
}

}  // namespace fl
