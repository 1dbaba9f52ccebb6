// The float32 GEMM engine: C (M, N) = act(A (M, K) · B (K, N) + bias), B pre-packed.
//
// Part of the C++ API of the core (no Python, no ISA-specific code). The micro-kernels behind
// it are the GEMM kernels of csrc/ukernels/gemm/<isa>.cpp; this layer packs, blocks, threads
// and applies the epilogue.
//
// Reproducibility: every C element is one FMA chain, acc = bias[j] (or 0), then
// acc = fma(A[i][p], B[p][j], acc) for p = 0..K-1 in order, whatever the blocking, the
// micro-kernel chosen for a row or the thread split. Results are therefore bitwise identical
// for any number of threads and any M (a row gives the same numbers alone or in a batch), and
// equal across ISAs (scalar, AVX2, NEON all use a single-rounding FMA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fastlayers/activations.h"

namespace fl {

// What happens to a tile of C after its last K block, while it is still in L1/L2. Bias is not
// here: it lives in the packed weights (PackedB) and starts the accumulation chains.
struct Epilogue {
    ActFn act = nullptr;  // applied to each finished row segment of C
};

// Micro-kernel geometry: packed B panels are kGemmNR columns wide on every ISA. kGemmMR is the
// row group the conv, attention and recurrent drivers hand the GEMM kernels (every kernel
// accepts any row count, so this is a performance choice only); the GEMM driver itself takes
// its row block from the active kernel (KernelTable::gemm_mr: 6, or 14 on AVX-512).
constexpr int64_t kGemmNR = 16;
constexpr int64_t kGemmMR = 6;

// Rows of the next register block when `rem` rows remain, for blocks of up to mr rows (the GEMM
// driver's, and the recurrent steps', ops/recurrent.h). With mr = 6 (AVX2), 7 rows go as 4 + 3:
// a 1-row tile streams B at cache bandwidth, so 6 + 1 ran M = 7 (K = N = 1024) at 88-92 GFLOP/s
// and 4 + 3 at 102 (8 rows stay 6 + 2: 4 + 4 measured slower). With larger blocks (14 for the
// AVX-512 GEMM), mr + 1 .. mr + 5 rows go as two near-equal blocks (15 -> 8 + 7), the split
// the kernel itself makes, so no block is left with fewer than 6 rows.
inline int64_t gemm_block_rows(int64_t rem, int64_t mr) {
    if (mr == 6) return rem == 7 ? 4 : (rem < 6 ? rem : 6);
    return rem <= mr ? rem : rem < mr + 6 ? (rem + 1) / 2 : mr;
}

// 64-byte aligned float storage.
struct AlignedFloatDeleter {
    void operator()(float* p) const;
};
using AlignedFloats = std::unique_ptr<float[], AlignedFloatDeleter>;
// n floats, 64-byte aligned, uninitialized. n == 0 gives nullptr. Throws std::bad_alloc.
AlignedFloats alloc_aligned_floats(int64_t n);

// Packed B (the weights of a layer): ceil(N/16) panels of K rows x 16 floats, K-major, so that
// B[p][j] sits at data()[(j/16)*panel_stride() + p*16 + j%16]; columns >= N are zero. A K
// block [p0, p0+kc) of a panel is contiguous (16*kc floats), so the same layout serves the
// whole-K small-M path and the KC-blocked path. The bias, if any, is stored padded with zeros to
// panels()*16 floats. Movable, not copyable; pack once, use from any number of threads.
class PackedB {
  public:
    PackedB() = default;
    // Zero-filled storage for a K x N matrix, with room for a bias if `with_bias`.
    PackedB(int64_t k, int64_t n, bool with_bias);

    int64_t k() const { return k_; }
    int64_t n() const { return n_; }
    int64_t panels() const { return (n_ + kGemmNR - 1) / kGemmNR; }
    int64_t panel_stride() const { return k_ * kGemmNR; }  // floats between panels
    const float* data() const { return data_.get(); }
    float* data() { return data_.get(); }
    const float* bias() const {
        return has_bias_ ? data_.get() + panels() * panel_stride() : nullptr;
    }
    float* bias() { return has_bias_ ? data_.get() + panels() * panel_stride() : nullptr; }
    bool has_bias() const { return has_bias_; }
    // Bytes held (for the Python object's repr and tests).
    size_t nbytes() const { return static_cast<size_t>(storage_floats_) * sizeof(float); }

  private:
    int64_t k_ = 0;
    int64_t n_ = 0;
    bool has_bias_ = false;
    int64_t storage_floats_ = 0;
    AlignedFloats data_;
};

// Packs a kernel (K, N) whose element (p, j) is kernel[p*ldk + j] (ldk >= N; a Keras Dense
// kernel is (K, N) row-major with ldk = N) and an optional bias (N,).
PackedB pack_b(const float* kernel, int64_t k, int64_t n, int64_t ldk, const float* bias_or_null);

// The packing routine behind pack_b, reusable by other drivers (conv, attention): packs the
// kc x nc block of any strided B - element (p, j) at b[p*rs_b + j*cs_b] - into ceil(nc/16)
// panels at dst + q*dst_panel_stride, row p of panel q at offset p*16, columns >= nc zeroed.
// (A transposed operand, e.g. K^T for Q·K^T, is rs_b = 1, cs_b = ld.) Single-threaded.
void pack_b_panel(const float* b, int64_t rs_b, int64_t cs_b, int64_t kc, int64_t nc, float* dst,
                  int64_t dst_panel_stride);

// C (M, N) = act(A (M, K) · B + bias), A[i][p] at a[i*lda + p], C[i][j] at c[i*ldc + j].
// K = B.k(), N = B.n(). M == 0 or N == 0 does nothing; K == 0 gives act(bias) (or act(0)).
// Threads on fl::parallel_for (serially when called from inside a parallel region). C must not
// overlap A or B.
void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                 Epilogue ep = {});

// The same on raw packed panels (for drivers that pack their own B, e.g. per conv group or
// attention block): panel q of the K x N operand at b_panels + q*b_panel_stride, in the
// PackedB layout; bias_padded is nullptr or readable for ceil(N/16)*16 floats.
void gemm_packed_raw(const float* a, int64_t m, int64_t lda, int64_t k, int64_t n,
                     const float* b_panels, int64_t b_panel_stride, const float* bias_padded,
                     float* c, int64_t ldc, Epilogue ep = {});

// Ad-hoc products with a B used once: C = act(A · B + bias) with B (K, N) row-major (ldb).
// Up to 32 rows B is read in place (streamed, KernelTable::gemm_rowb); more rows pack it per call
// (in parallel) for the packed micro-kernel. Either way the same FMA chains, hence the same bits
// as gemm_packed. bias is nullptr or (N,). Prefer pack_b + gemm_packed for weights reused.
void gemm(const float* a, int64_t m, int64_t k, int64_t lda, const float* b, int64_t n, int64_t ldb,
          const float* bias, float* c, int64_t ldc, Epilogue ep = {});

// A batch of products C_i (M, N) = A_i (M, K) · B_i (K, N), i < batch, each entry contiguous
// and row-major: A_i at a + i*M*K, B_i at b + i*K*N, C_i at c + i*M*N. Each C_i has the bits
// fl::gemm gives it (no bias, no activation; NaN payloads may differ where both factors are
// NaN); threads split the batch, or each large product.
void gemm_batched(int64_t batch, const float* a, int64_t m, int64_t k, const float* b, int64_t n,
                  float* c);

}  // namespace fl
