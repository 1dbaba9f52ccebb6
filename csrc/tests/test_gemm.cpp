// C++ tests of the GEMM engine: every micro-kernel of every ISA this CPU supports, the driver
// (blocking, threading, epilogue), packing and the dense op.
//
// The reference is the summation-order contract itself: c = init, then c = fmaf(a[p], b[p], c)
// for p = 0..k-1, computed here in plain C++. fmaf rounds once, like VFMADD and FMLA, so every
// kernel and every blocking / thread split must match it BIT FOR BIT. A float64 dot product
// with a rounding-error bound double-checks the reference itself.
//
// Out-of-bounds accesses: A, B and the bias sit at the very end of a buffer followed by an
// inaccessible page (POSIX; AddressSanitizer covers the rest), gaps between rows, panels and
// padding columns hold NaN (reading them into a result would poison it), and C is surrounded
// by NaN sentinels with a payload no computation produces, which must survive bit for bit.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "gemm/gemm_internal.h"
#include "runtime/dispatch.h"
#include "runtime/scratch.h"
#include "guarded_buf.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"

namespace {

using GemmFn = void (*)(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*,
                        int64_t, const float*, int, float*, int64_t);

struct GemmIsa {
    fl::Isa isa;
    GemmFn fn;
};

std::vector<GemmIsa> gemm_kernels_built() {
    std::vector<GemmIsa> v{{fl::Isa::scalar, fl_gemm_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_gemm_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_gemm_f32_avx512});
#endif
#if defined(FL_HAVE_NEON)
    v.push_back({fl::Isa::neon, fl_gemm_f32_neon});
#endif
    return v;
}

const uint32_t kSentinelBits = 0x7FC0BEEFu;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

float sentinel() {
    float f;
    std::memcpy(&f, &kSentinelBits, sizeof f);
    return f;
}

using GuardedFloats = fltest::GuardedBuf;  // (csrc/tests/guarded_buf.h)

float uniform(std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    return std::uniform_real_distribution<float>(lo, hi)(rng);
}

// The contract: one FMA chain per element, p increasing.
float chain(float init, const float* a, int64_t a_step, const float* b, int64_t b_step, int64_t k) {
    float acc = init;
    for (int64_t p = 0; p < k; ++p) acc = std::fma(a[p * a_step], b[p * b_step], acc);
    return acc;
}

// |chain - exact| <= about k * 2^-24 * (|init| + sum |a b|): checks the reference itself.
bool near_exact(float got, double init, const float* a, int64_t a_step, const float* b,
                int64_t b_step, int64_t k) {
    double exact = init, mag = std::fabs(init);
    for (int64_t p = 0; p < k; ++p) {
        const double t = static_cast<double>(a[p * a_step]) * static_cast<double>(b[p * b_step]);
        exact += t;
        mag += std::fabs(t);
    }
    const double tol = static_cast<double>(k + 2) * 1.2e-7 * mag + 1e-30;
    return std::fabs(static_cast<double>(got) - exact) <= tol;
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels
// ---------------------------------------------------------------------------------------------

enum InitMode { kInitZero = 0, kInitBias = 1, kInitLoadC = 2 };
const char* init_name(int mode) {
    return mode == kInitZero ? "zero" : mode == kInitBias ? "bias" : "load_c";
}

// One kernel call on an m x n x k problem; `packed_a` selects the A layout (row-major with
// lda = k + 3, or `lda` when given; or k-major with a column stride of m + 1), both with NaN in
// the gaps.
void check_kernel_case(const GemmIsa& g, int64_t m, int64_t n, int64_t k, int mode, bool packed_a,
                       uint32_t seed, int64_t lda = 0) {
    std::mt19937 rng(seed);

    // A: element (i, p) at a[i*rs + p*cs]; the last element read is the buffer's last.
    const int64_t rs = packed_a ? 1 : lda > 0 ? lda : k + 3;
    const int64_t cs = packed_a ? m + 1 : 1;
    const size_t a_len = k > 0 ? static_cast<size_t>((m - 1) * rs + (k - 1) * cs + 1) : 0;
    GuardedFloats a(a_len, kNaN);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t p = 0; p < k; ++p) a[i * rs + p * cs] = uniform(rng);

    // B: panels of k rows x 16, one NaN row between panels (ps = 16k + 16), NaN pad columns.
    const int64_t np = (n + 15) / 16;
    const int64_t ps = 16 * k + 16;
    const size_t b_len = static_cast<size_t>((np - 1) * ps + 16 * k);
    GuardedFloats b(std::max<size_t>(b_len, 1), kNaN);
    for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p) b[(j / 16) * ps + p * 16 + j % 16] = uniform(rng);

    // Bias: padded to np*16, pad NaN.
    GuardedFloats bias(static_cast<size_t>(np * 16), kNaN);
    for (int64_t j = 0; j < n; ++j) bias[j] = uniform(rng, -2.0f, 2.0f);

    // C: block at (1, 2) of an (m + 2) x (n + 5) buffer of sentinels.
    const int64_t ldc = n + 5;
    std::vector<float> cbuf(static_cast<size_t>((m + 2) * ldc), sentinel());
    float* c = cbuf.data() + ldc + 2;
    if (mode == kInitLoadC)
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = uniform(rng, -3.0f, 3.0f);
    const std::vector<float> c_before = cbuf;

    g.fn(m, n, k, a.data(), rs, cs, b.data(), ps, mode == kInitBias ? bias.data() : nullptr,
         mode == kInitLoadC ? 1 : 0, c, ldc);

    int bad = 0;
    for (int64_t i = 0; i < m && bad < 3; ++i) {
        for (int64_t j = 0; j < n && bad < 3; ++j) {
            const float init = mode == kInitZero   ? 0.0f
                               : mode == kInitBias ? bias[j]
                                                   : c_before[(i + 1) * ldc + j + 2];
            const float* arow = a.data() + i * rs;
            const float* bcol = b.data() + (j / 16) * ps + j % 16;
            const float want = chain(init, arow, cs, bcol, 16, k);
            const float got = c[i * ldc + j];
            if (fltest::float_bits(got) != fltest::float_bits(want)) {
                ++bad;
                FLT_CHECK_MSG(false,
                              "%s m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                              " init=%s packed_a=%d: c[%" PRId64 "][%" PRId64
                              "] = %.9g, chain = %.9g",
                              fl::isa_name(g.isa), m, n, k, init_name(mode), packed_a ? 1 : 0, i, j,
                              got, want);
            }
            if (i == 0 || j == 0)  // the reference against float64, on a sample
                FLT_CHECK_MSG(near_exact(want, init, arow, cs, bcol, 16, k),
                              "chain reference off at m=%" PRId64 " n=%" PRId64 " k=%" PRId64, m, n,
                              k);
        }
    }
    // Everything outside the block keeps its sentinel.
    for (int64_t r = 0; r < m + 2; ++r) {
        for (int64_t col = 0; col < ldc; ++col) {
            const bool inside = r >= 1 && r <= m && col >= 2 && col < n + 2;
            if (inside) continue;
            if (fltest::float_bits(cbuf[r * ldc + col]) != kSentinelBits) {
                FLT_CHECK_MSG(false,
                              "%s m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                              " init=%s: wrote outside C at buffer (%" PRId64 ", %" PRId64 ")",
                              fl::isa_name(g.isa), m, n, k, init_name(mode), r, col);
                return;
            }
        }
    }
}

void test_gemm_kernel_grid(const GemmIsa& g) {
    // Rows: every tile height of every ISA (AVX2 up to 6, AVX-512 up to 14) and the block
    // splits above them (15 -> 8 + 7, 20 -> 14 + 6, 29 -> 14 + 14 + 1); columns: tile edges +-1
    // of the 16/32/48/64-wide tiles and of the 96/128-wide AVX-512 ones, and last vectors of
    // 1-8 columns (AVX-512 runs them in ymm registers: n = 3, 8, 24, 40, 56, 72, 88 (the 2 x 96
    // tile), 104 ...).
    const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20, 29};
    const int64_t ns[] = {1,  3,  7,  8,  9,  15, 16, 17, 24,  31,  32,  33,  40, 47,
                          48, 49, 56, 63, 64, 65, 72, 88, 97, 104, 127, 128, 129};
    const int64_t ks[] = {1, 2, 7, 16, 255, 256, 257};
    uint32_t seed = 1;
    int cases = 0;
    for (int64_t m : ms)
        for (int64_t n : ns)
            for (int64_t k : ks)
                for (int mode = 0; mode < 3; ++mode)
                    for (int packed = 0; packed < 2; ++packed) {
                        if (fltest::case_failures() > 20) return;
                        check_kernel_case(g, m, n, k, mode, packed != 0, seed++);
                        ++cases;
                    }
    // Row strides of 1024 and 3072 floats (4 KiB multiples: AVX-512 runs blocks of 7 rows) and
    // 2048 + 512 (2 KiB apart: blocks of 14), with the n <= 8 ymm tiles and wider ones.
    for (int64_t lda : {1024, 3072, 2560})
        for (int64_t m : {1, 6, 7, 8, 12, 13, 14, 15, 20, 29})
            for (int64_t n : {1, 8, 9, 33, 64})
                for (int mode = 0; mode < 3; ++mode) {
                    if (fltest::case_failures() > 20) return;
                    check_kernel_case(g, m, n, 19, mode, false, seed++, lda);
                    ++cases;
                }
    std::printf("  %s: %d kernel cases\n", fl::isa_name(g.isa), cases);
}

// Bitwise against the scalar kernel on larger problems (both A layouts, all three inits, primes
// and multiples of the tiles), values spread over many binades so that any reordering of a
// chain would show.
void test_gemm_kernel_vs_scalar(const GemmIsa& g) {
    const int64_t shapes[][3] = {{28, 64, 300}, {31, 113, 97}, {14, 256, 512}, {97, 61, 41},
                                 {6, 200, 129}, {1, 300, 77}, {43, 130, 16}};
    uint32_t seed = 1000;
    for (const auto& s : shapes) {
        const int64_t m = s[0], n = s[1], k = s[2];
        const int64_t np = (n + 15) / 16, ps = 16 * k;
        for (int mode = 0; mode < 3; ++mode)
            for (int packed = 0; packed < 2; ++packed) {
                std::mt19937 rng(seed++);
                const int64_t rs = packed ? 1 : k + 1, cs = packed ? m : 1;
                std::vector<float> a(static_cast<size_t>(m * (k + 1) + 1));
                std::vector<float> b(static_cast<size_t>(np * ps)), bias(static_cast<size_t>(np * 16));
                for (float& v : a) v = std::ldexp(uniform(rng), static_cast<int>(rng() % 20) - 10);
                for (float& v : b) v = std::ldexp(uniform(rng), static_cast<int>(rng() % 20) - 10);
                for (float& v : bias) v = uniform(rng);
                const int64_t ldc = n + 3;
                std::vector<float> c0(static_cast<size_t>(m * ldc));
                for (float& v : c0) v = uniform(rng, -5.0f, 5.0f);
                std::vector<float> c1 = c0, c2 = c0;
                const float* bi = mode == kInitBias ? bias.data() : nullptr;
                const int lc = mode == kInitLoadC ? 1 : 0;
                fl_gemm_f32_scalar(m, n, k, a.data(), rs, cs, b.data(), ps, bi, lc, c1.data(), ldc);
                g.fn(m, n, k, a.data(), rs, cs, b.data(), ps, bi, lc, c2.data(), ldc);
                size_t diff = 0;
                for (size_t e = 0; e < c1.size(); ++e)
                    diff += fltest::float_bits(c1[e]) != fltest::float_bits(c2[e]);
                FLT_CHECK_MSG(diff == 0,
                              "%s vs scalar m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                              " init=%s packed_a=%d: %zu elements differ",
                              fl::isa_name(g.isa), m, n, k, init_name(mode), packed, diff);
            }
    }
}

// k = 0 writes the chain's initial value; m = 0 or n = 0 touches nothing.
void test_gemm_kernel_degenerate(const GemmIsa& g) {
    for (int64_t n : {1, 9, 16, 70}) {
        for (int mode = 0; mode < 3; ++mode) check_kernel_case(g, 3, n, 0, mode, false, 99);
    }
    float c = sentinel();
    const float one = 1.0f;
    g.fn(0, 5, 3, &one, 1, 1, &one, 16, nullptr, 0, &c, 1);
    g.fn(2, 0, 3, &one, 1, 1, &one, 16, nullptr, 0, &c, 1);
    FLT_CHECK(fltest::float_bits(c) == kSentinelBits);
}

// Special values flow through the chain as IEEE says (no flush to zero of inputs inside a
// kernel called outside a parallel region: the caller's MXCSR applies).
void test_gemm_kernel_special(const GemmIsa& g) {
    const float inf = std::numeric_limits<float>::infinity();
    const int64_t k = 5, n = 20, m = 3;
    std::vector<float> a(static_cast<size_t>(m * k), 1.0f);
    std::vector<float> b(static_cast<size_t>(2 * 16 * k), 1.0f);
    a[0 * k + 2] = kNaN;    // row 0: NaN
    a[1 * k + 1] = inf;     // row 1: +inf ...
    b[1 * 16 + 3] = -1.0f;  // ... times -1 in column 3 -> -inf there
    std::vector<float> c(static_cast<size_t>(m * n), 0.0f);
    g.fn(m, n, k, a.data(), k, 1, b.data(), 16 * k, nullptr, 0, c.data(), n);
    for (int64_t j = 0; j < n; ++j) {
        FLT_CHECK(std::isnan(c[j]));
        FLT_CHECK(std::isinf(c[n + j]) && ((c[n + j] < 0) == (j == 3)));
        FLT_CHECK(c[2 * n + j] == (j == 3 ? 3.0f : 5.0f));  // 1 - 1 + 1 + 1 + 1 in column 3
    }
}

// ---------------------------------------------------------------------------------------------
// Indirect GEMM (conv) micro-kernels: fl_igemm_f32_<isa>
// ---------------------------------------------------------------------------------------------

using IgemmFn = void (*)(int64_t, int64_t, int64_t, int64_t, const float* const*, const float*,
                         int64_t, const float*, float*, int64_t);

struct IgemmIsa {
    fl::Isa isa;
    IgemmFn fn;
};

std::vector<IgemmIsa> igemm_kernels_built() {
    std::vector<IgemmIsa> v{{fl::Isa::scalar, fl_igemm_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_igemm_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_igemm_f32_avx512});
#endif
    return v;
}

// One kernel call: m rows of ks chunks of kc floats. The chunks lie in one buffer, a NaN gap
// of 3 floats between them; every fifth pointer (and all of the last row) points at the
// buffer's last chunk, which ends at the guard page (as the conv driver shares its zero row),
// so reading past kc floats of a chunk faults or poisons a result. B, bias and C as in
// check_kernel_case (NaN gaps and padding, sentinels around C).
void check_igemm_case(const IgemmIsa& g, int64_t m, int64_t n, int64_t ks, int64_t kc,
                      bool with_bias, uint32_t seed) {
    std::mt19937 rng(seed);
    const int64_t k = ks * kc;
    const int64_t stride = kc + 3;
    const int64_t chunks = m * ks + 1;  // + the shared last chunk
    GuardedFloats x(static_cast<size_t>((chunks - 1) * stride + kc), kNaN);
    std::vector<const float*> a(static_cast<size_t>(m * ks));
    const float* shared = x.data() + (chunks - 1) * stride;
    for (int64_t c = 0; c < chunks; ++c)
        for (int64_t p = 0; p < kc; ++p) x[c * stride + p] = uniform(rng);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t t = 0; t < ks; ++t) {
            const bool share = (i * ks + t) % 5 == 0 || i == m - 1;
            a[i * ks + t] = share ? shared : x.data() + (i * ks + t) * stride;
        }

    const int64_t np = (n + 15) / 16;
    const int64_t ps = 16 * k + 16;
    GuardedFloats b(std::max<size_t>(static_cast<size_t>((np - 1) * ps + 16 * k), 1), kNaN);
    for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p) b[(j / 16) * ps + p * 16 + j % 16] = uniform(rng);
    GuardedFloats bias(static_cast<size_t>(np * 16), kNaN);
    for (int64_t j = 0; j < n; ++j) bias[j] = uniform(rng, -2.0f, 2.0f);

    const int64_t ldc = n + 5;
    std::vector<float> cbuf(static_cast<size_t>((m + 2) * ldc), sentinel());
    float* c = cbuf.data() + ldc + 2;
    g.fn(m, n, ks, kc, a.data(), b.data(), ps, with_bias ? bias.data() : nullptr, c, ldc);

    int bad = 0;
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t i = 0; i < m && bad < 3; ++i) {
        // Row i of A laid end to end: the chunks in order (the expanded patch).
        for (int64_t t = 0; t < ks; ++t)
            for (int64_t p = 0; p < kc; ++p) row[t * kc + p] = a[i * ks + t][p];
        for (int64_t j = 0; j < n && bad < 3; ++j) {
            const float init = with_bias ? bias[j] : 0.0f;
            const float* bcol = b.data() + (j / 16) * ps + j % 16;
            const float want = chain(init, row.data(), 1, bcol, 16, k);
            const float got = c[i * ldc + j];
            if (fltest::float_bits(got) != fltest::float_bits(want)) {
                ++bad;
                FLT_CHECK_MSG(false,
                              "%s igemm m=%" PRId64 " n=%" PRId64 " ks=%" PRId64 " kc=%" PRId64
                              " bias=%d: c[%" PRId64 "][%" PRId64 "] = %.9g, chain = %.9g",
                              fl::isa_name(g.isa), m, n, ks, kc, with_bias ? 1 : 0, i, j, got,
                              want);
            }
            if (i == 0 || j == 0)
                FLT_CHECK_MSG(near_exact(want, init, row.data(), 1, bcol, 16, k),
                              "chain reference off at m=%" PRId64 " n=%" PRId64, m, n);
        }
    }
    for (int64_t r = 0; r < m + 2; ++r) {
        for (int64_t col = 0; col < ldc; ++col) {
            const bool inside = r >= 1 && r <= m && col >= 2 && col < n + 2;
            if (!inside && fltest::float_bits(cbuf[r * ldc + col]) != kSentinelBits) {
                FLT_CHECK_MSG(false,
                              "%s igemm m=%" PRId64 " n=%" PRId64 " ks=%" PRId64 " kc=%" PRId64
                              ": wrote outside C at buffer (%" PRId64 ", %" PRId64 ")",
                              fl::isa_name(g.isa), m, n, ks, kc, r, col);
                return;
            }
        }
    }
}

// Rows around the register tiles (AVX2: 6, and 12 when n <= 8; AVX-512: 12, 24 when n <= 16,
// the ymm tiles of 12 rows when n <= 8, every short tile 1..11), columns around 8/16/32/48/64
// and the AVX-512 strips of 96 and 128, last vectors of 1-8 columns (ymm on AVX-512: 24, 40,
// 56, 72, 131 ...), chunk shapes of a 1x1, an RGB kernel row (9), a tap of 64 channels.
void test_igemm_kernel_grid(const IgemmIsa& g) {
    const int64_t ms[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                          12, 13, 18, 23, 24, 25, 36, 37, 47, 48};
    const int64_t ns[] = {1,  3,  7,  8,  9,  15, 16, 17, 24,  31,  32,  33,  40,  47,
                          48, 49, 56, 63, 64, 65, 72, 95, 96, 97, 127, 128, 129, 131};
    const int64_t chunk_shapes[][2] = {{1, 1}, {1, 7},  {3, 1},  {3, 9},
                                       {9, 3}, {2, 16}, {5, 17}, {9, 64}};
    uint32_t seed = 7;
    int cases = 0;
    for (int64_t m : ms)
        for (int64_t n : ns)
            for (const auto& kk : chunk_shapes)
                for (int bias = 0; bias < 2; ++bias) {
                    if (fltest::case_failures() > 20) return;
                    check_igemm_case(g, m, n, kk[0], kk[1], bias != 0, seed++);
                    ++cases;
                }
    // ks or kc == 0 stores the initial value; m == 0 or n == 0 touches nothing.
    check_igemm_case(g, 5, 20, 0, 4, true, 1);
    check_igemm_case(g, 13, 8, 3, 0, true, 2);
    check_igemm_case(g, 4, 9, 0, 0, false, 3);
    float c = sentinel();
    const float one = 1.0f;
    const float* p = &one;
    g.fn(0, 5, 1, 1, &p, &one, 16, nullptr, &c, 1);
    g.fn(2, 0, 1, 1, &p, &one, 16, nullptr, &c, 1);
    FLT_CHECK(fltest::float_bits(c) == kSentinelBits);
    std::printf("  %s: %d igemm kernel cases\n", fl::isa_name(g.isa), cases);
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

// A non-idempotent activation: applied twice or skipped, the results differ.
void test_act(float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] * 0.5f - 1.0f;
}

struct DriverCase {
    int64_t m, n, k;
};

// gemm_packed on an m x n x k problem, for 1, 2 and 3 threads: every result bitwise equal to
// the chain reference (hence to each other), nothing outside C written, A read in place with
// lda > k (NaN gaps) and ending at a guard page.
void check_driver_case(const DriverCase& dc, bool with_bias, fl::ActFn act, uint32_t seed) {
    const int64_t m = dc.m, n = dc.n, k = dc.k;
    std::mt19937 rng(seed);
    const int64_t lda = k + 1;
    GuardedFloats a(static_cast<size_t>(std::max<int64_t>((m - 1) * lda + k, 1)), kNaN);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t p = 0; p < k; ++p) a[i * lda + p] = uniform(rng);
    const int64_t ldk = n + 2;
    std::vector<float> kernel(static_cast<size_t>(std::max<int64_t>(k * ldk, 1)), kNaN);
    for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) kernel[p * ldk + j] = uniform(rng);
    std::vector<float> bias(static_cast<size_t>(n));
    for (float& v : bias) v = uniform(rng, -2.0f, 2.0f);
    const fl::PackedB packed =
        fl::pack_b(kernel.data(), k, n, ldk, with_bias ? bias.data() : nullptr);
    FLT_CHECK(packed.k() == k && packed.n() == n && packed.has_bias() == with_bias);

    std::vector<float> want(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j)
            want[i * n + j] =
                chain(with_bias ? bias[j] : 0.0f, a.data() + i * lda, 1, kernel.data() + j, ldk, k);
        if (act) act(want.data() + i * n, n);
    }

    const int saved = fl::num_threads();
    const int64_t ldc = n + 3;
    for (int threads : {1, 2, 3}) {
        fl::set_num_threads(threads);
        std::vector<float> cbuf(static_cast<size_t>((m + 2) * ldc), sentinel());
        float* c = cbuf.data() + ldc;
        fl::gemm_packed(a.data(), m, lda, packed, c, ldc, fl::Epilogue{act});
        int bad = 0;
        for (int64_t i = 0; i < m && bad < 3; ++i)
            for (int64_t j = 0; j < n && bad < 3; ++j)
                if (fltest::float_bits(c[i * ldc + j]) != fltest::float_bits(want[i * n + j])) {
                    ++bad;
                    FLT_CHECK_MSG(false,
                                  "M=%" PRId64 " N=%" PRId64 " K=%" PRId64
                                  " bias=%d act=%d threads=%d: C[%" PRId64 "][%" PRId64
                                  "] = %.9g, want %.9g",
                                  m, n, k, with_bias, act != nullptr, threads, i, j, c[i * ldc + j],
                                  want[i * n + j]);
                }
        bool outside_ok = true;
        for (int64_t r = 0; r < m + 2 && outside_ok; ++r)
            for (int64_t col = 0; col < ldc; ++col) {
                const bool inside = r >= 1 && r <= m && col < n;
                if (!inside && fltest::float_bits(cbuf[r * ldc + col]) != kSentinelBits) outside_ok = false;
            }
        FLT_CHECK_MSG(outside_ok,
                      "M=%" PRId64 " N=%" PRId64 " K=%" PRId64 " threads=%d: wrote outside C", m, n,
                      k, threads);

        // fl::gemm on the raw kernel (read in place up to 8 rows, packed block by block or all
        // at once above):
        // the same chains, so the same bits; NaN in the kernel's row padding must stay unread.
        std::vector<float> c2(static_cast<size_t>(m * ldc), sentinel());
        fl::gemm(a.data(), m, k, lda, kernel.data(), n, ldk, with_bias ? bias.data() : nullptr,
                 c2.data(), ldc, fl::Epilogue{act});
        int bad2 = 0;
        for (int64_t i = 0; i < m && bad2 < 3; ++i)
            for (int64_t j = 0; j < ldc && bad2 < 3; ++j) {
                const uint32_t want_bits =
                    j < n ? fltest::float_bits(want[i * n + j]) : kSentinelBits;
                if (fltest::float_bits(c2[i * ldc + j]) != want_bits) {
                    ++bad2;
                    FLT_CHECK_MSG(false,
                                  "gemm (raw B) M=%" PRId64 " N=%" PRId64 " K=%" PRId64
                                  " threads=%d: C[%" PRId64 "][%" PRId64 "]",
                                  m, n, k, threads, i, j);
                }
            }
    }
    fl::set_num_threads(saved);
}

const std::vector<DriverCase>& driver_cases() {
    static const std::vector<DriverCase> cases = {
        {1, 1, 1},       {1, 16, 0},    {3, 17, 0},     {1, 512, 784},   {2, 1000, 33},
        {3, 97, 64},     {4, 200, 100}, {5, 65, 257},   {6, 64, 256},    {7, 100, 300},
        {8, 1024, 64},   {13, 49, 7},   {11, 272, 513}, {37, 255, 511},  {97, 257, 255},
        {145, 130, 260}, {300, 40, 20}, {64, 512, 100}, {150, 300, 257}, {12, 4100, 3},
        {1000, 17, 31},  {131, 1, 129}, {2, 3, 1024},
        // fl::gemm's in-place path (M <= 8) with bands of 8 rows and column tails, and past it
        // (B packed block by block: several K blocks, column blocks split over the threads).
        {1, 513, 257},   {5, 255, 512}, {32, 257, 300}, {33, 100, 40}, {9, 1100, 1},
        {10, 700, 600},  {29, 2100, 45}, {17, 300, 1000},
    };
    return cases;
}

void test_gemm_driver_default_blocking() {
    uint32_t seed = 1000;
    for (const DriverCase& dc : driver_cases()) {
        check_driver_case(dc, true, test_act, seed++);
        if (fltest::case_failures() > 20) return;
    }
    check_driver_case({9, 70, 40}, false, nullptr, seed++);
    check_driver_case({9, 70, 40}, true, nullptr, seed++);
    check_driver_case({9, 70, 40}, false, test_act, seed++);
}

// Around the blocking this machine uses by default (MC, KC, NC depend on the L2 size).
void test_gemm_driver_block_boundaries() {
    const fl::gemm_detail::GemmConfig cfg = fl::gemm_detail::config();
    const int64_t mc = cfg.mc, kc = cfg.kc, nc = cfg.nc;
    // The N block of a product with K >= KC (narrower than NC when the L2 is small).
    const int64_t nb = fl::gemm_detail::n_block(cfg, kc);
    std::printf("  blocking: MC=%" PRId64 " KC=%" PRId64 " NC=%" PRId64 " (%" PRId64
                " at K >= KC)\n",
                mc, kc, nc, nb);
    uint32_t seed = 3000;
    for (const DriverCase& dc :
         {DriverCase{mc - 1, nc + 1, kc + 1}, DriverCase{mc, nc, kc},
          DriverCase{mc + 1, nc - 1, kc - 1}, DriverCase{mc + 7, 2 * nc + 16, 2 * kc + 3},
          DriverCase{mc + 5, 3 * nc + 1, 5}, DriverCase{13, nb + 1, kc},
          DriverCase{mc + 1, 2 * nb - 1, kc + 1}, DriverCase{7, nc + 16, kc - 1}}) {
        check_driver_case(dc, true, test_act, seed++);
        if (fltest::case_failures() > 20) return;
    }
}

// The blocking chosen for each L2 size and register block height (gemm.cpp, config_for).
void test_gemm_config_for() {
    using fl::gemm_detail::config_for;
    struct Want {
        int64_t l2, mr, kc, mc, nc, b_block;
    };
    for (const Want& w : {Want{512 << 10, 6, 1024, 288, 256, 65536},    // Zen 2/3: AVX2
                          Want{0, 6, 1024, 288, 256, 65536},            // L2 unknown: small
                          Want{512 << 10, 14, 256, 140, 256, 65536},    // AVX-512, small L2
                          Want{1 << 20, 6, 512, 240, 256, 512 * 256},   // Zen 4: AVX2
                          Want{1 << 20, 14, 512, 238, 256, 512 * 256},  // Zen 4/5: AVX-512
                          Want{2 << 20, 14, 512, 238, 256, 512 * 256}}) {
        const fl::gemm_detail::GemmConfig c = config_for(w.l2, w.mr);
        FLT_CHECK_MSG(c.kc == w.kc && c.mc == w.mc && c.nc == w.nc && c.b_block_floats == w.b_block,
                      "config_for(%" PRId64 ", %" PRId64 "): kc %" PRId64 " mc %" PRId64
                      " nc %" PRId64 " b_block %" PRId64,
                      w.l2, w.mr, c.kc, c.mc, c.nc, c.b_block_floats);
        FLT_CHECK(c.mc % w.mr == 0 && c.pack_a);
    }
}

// n_block: the widest multiple of 16 columns up to NC whose min(K, KC) x NC block of B fits in
// b_block_floats, at least 16.
void test_gemm_n_block() {
    fl::gemm_detail::GemmConfig cfg{};
    cfg.kc = 1024;
    cfg.nc = 256;
    cfg.b_block_floats = 65536;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 1024) == 64);
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 4096) == 64);   // K blocked at KC
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 784) == 80);    // 65536 / 784 = 83.6
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 256) == 256);
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 64) == 256);    // at most NC
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 0) == 256);     // K = 0 still gets a block
    cfg.b_block_floats = 100;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 1024) == 16);   // at least one panel
    cfg.b_block_floats = 512 * 256;
    cfg.kc = 512;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 2048) == 256);  // the 1 MiB L2 blocking: NC 256
    cfg.nc = 40;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 8) == 32);      // NC rounded down to panels
    cfg.nc = 0;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 8) == 16);      // degenerate settings: one panel
    cfg.nc = 256;
    cfg.kc = 0;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 100) == 256);   // KC <= 0 taken as 1 row
    cfg.b_block_floats = -5;
    FLT_CHECK(fl::gemm_detail::n_block(cfg, 100) == 16);
}

// A GEMM issued from inside a parallel region (as the conv and attention drivers will) runs
// serially on that thread and still gives the chain results.
void test_gemm_nested_in_parallel_region() {
    std::mt19937 rng(21);
    const int64_t m = 30, k = 50, n = 70;
    std::vector<float> a(static_cast<size_t>(m * k)), w(static_cast<size_t>(k * n));
    for (float& v : a) v = uniform(rng);
    for (float& v : w) v = uniform(rng);
    const fl::PackedB packed = fl::pack_b(w.data(), k, n, n, nullptr);
    std::vector<float> c(static_cast<size_t>(m * n), sentinel());
    const int saved = fl::num_threads();
    fl::set_num_threads(3);
    fl::parallel_for(3, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t)
            fl::gemm_packed(a.data() + t * 10 * k, 10, k, packed, c.data() + t * 10 * n, n);
    });
    fl::set_num_threads(saved);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            FLT_CHECK(fltest::float_bits(c[i * n + j]) ==
                      fltest::float_bits(chain(0.0f, a.data() + i * k, 1, w.data() + j, n, k)));
}

// gemm_batched: every entry's outputs are the chains of fl::gemm (0, then p in order), on 1 to 3
// threads, through each branch - small matrix-vector products as b^T A^T (A^T in one block of
// 32 or 64 columns, or two), other products split over the threads (read in place in one column
// block, or through fl::gemm past 512 columns at 32 rows or past 32 rows), one product, k = 0,
// and a few products of >= 1M multiply-adds split one at a time.
void test_gemm_batched() {
    struct Case {
        int64_t nb, m, k, n;
    };
    const int saved = fl::num_threads();
    uint32_t seed = 300;
    for (const Case& cs : {Case{3000, 8, 8, 1}, Case{50, 100, 2, 1}, Case{7, 80, 3, 1},
                           Case{10, 40, 5, 1}, Case{20, 40, 9, 1}, Case{67, 3, 5, 7},
                           Case{40, 32, 9, 512},
                           Case{9, 32, 3, 513}, Case{30, 33, 17, 16}, Case{1, 5, 4, 3},
                           Case{12, 4, 0, 6}, Case{5, 7, 0, 1}, Case{3, 96, 128, 96},
                           Case{2, 128, 64, 129}}) {
        std::mt19937 rng(seed++);
        std::vector<float> a(static_cast<size_t>(cs.nb * cs.m * cs.k));
        std::vector<float> b(static_cast<size_t>(cs.nb * cs.k * cs.n));
        for (float& v : a) v = uniform(rng);
        for (float& v : b) v = uniform(rng);
        for (int threads = 1; threads <= 3; ++threads) {
            fl::set_num_threads(threads);
            std::vector<float> c(static_cast<size_t>(cs.nb * cs.m * cs.n), sentinel());
            fl::gemm_batched(cs.nb, a.data(), cs.m, cs.k, b.data(), cs.n, c.data());
            int bad = 0;
            for (int64_t e = 0; e < cs.nb && bad < 5; ++e) {
                const float* ae = a.data() + e * cs.m * cs.k;
                const float* be = b.data() + e * cs.k * cs.n;
                for (int64_t i = 0; i < cs.m; ++i) {
                    for (int64_t j = 0; j < cs.n; ++j) {
                        const float want = chain(0.0f, ae + i * cs.k, 1, be + j, cs.n, cs.k);
                        const float got = c[static_cast<size_t>((e * cs.m + i) * cs.n + j)];
                        if (fltest::float_bits(got) != fltest::float_bits(want) && bad++ < 5) {
                            FLT_CHECK_MSG(false,
                                          "gemm_batched nb %lld m %lld k %lld n %lld, %d threads:"
                                          " entry %lld (%lld, %lld) %.9g, chain %.9g",
                                          (long long)cs.nb, (long long)cs.m, (long long)cs.k,
                                          (long long)cs.n, threads, (long long)e, (long long)i,
                                          (long long)j, got, want);
                        }
                    }
                }
            }
        }
    }
    fl::set_num_threads(saved);
}

// Tiny blocks and a tiny threading threshold: every KC / NC boundary and many thread chunks on
// small matrices.
void test_gemm_driver_small_blocking() {
    fl::gemm_detail::GemmConfig& cfg = fl::gemm_detail::config();
    const fl::gemm_detail::GemmConfig saved = cfg;
    uint32_t seed = 2000;
    for (int64_t kc : {1, 7, 16}) {
        for (int64_t nc : {16, 48}) {
            cfg.kc = kc;
            cfg.nc = nc;
            // nc 48: a B block of 224 floats narrows NC by the block's rows, min(K, KC): to 32
            // columns from 5 rows, to 16 from 8 (so 48 columns at KC 1, 32 at KC 7, 16 at KC 16
            // for K >= 16); nc 16: the default B block, NC unchanged.
            cfg.b_block_floats = nc == 48 ? 7 * 32 : saved.b_block_floats;
            cfg.min_macs_per_task = 1;
            // Both loop orders: row blocks outside K blocks, and column slabs (of 32 columns at
            // KC 1, 16 otherwise) with K blocks outside row blocks, for every B, there with M
            // blocks of one register block (MC rounds up to the kernel's row block).
            for (int64_t stream : {int64_t(0), int64_t(1)}) {
                cfg.b_stream_floats = stream;
                cfg.slab_floats = 32;
                cfg.mc = stream ? 1 : saved.mc;
                for (const DriverCase& dc :
                     {DriverCase{1, 100, 20}, DriverCase{7, 33, 15}, DriverCase{19, 64, 16},
                      DriverCase{40, 17, 17}, DriverCase{6, 130, 1}, DriverCase{25, 90, 0},
                      DriverCase{47, 70, 50}}) {
                    check_driver_case(dc, true, test_act, seed++);
                    check_driver_case(dc, false, nullptr, seed++);
                }
            }
        }
    }
    cfg = saved;
}

// gemm() packs a row-major B per call; pack_b_panel also takes transposed operands.
void test_gemm_convenience_and_transposed_pack() {
    std::mt19937 rng(5);
    const int64_t m = 9, k = 37, n = 45, lda = 40, ldb = 50, ldc = 47;
    std::vector<float> a(static_cast<size_t>(m * lda)), b(static_cast<size_t>(k * ldb)), bias(n);
    for (float& v : a) v = uniform(rng);
    for (float& v : b) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    std::vector<float> c(static_cast<size_t>(m * ldc), sentinel());
    fl::gemm(a.data(), m, k, lda, b.data(), n, ldb, bias.data(), c.data(), ldc);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
            if (j < n)
                FLT_CHECK(fltest::float_bits(c[i * ldc + j]) ==
                          fltest::float_bits(chain(bias[j], a.data() + i * lda, 1, b.data() + j, ldb, k)));
            else
                FLT_CHECK(fltest::float_bits(c[i * ldc + j]) == kSentinelBits);
        }

    // B = T^T with T (n, k) row-major: element (p, j) at t[j*k + p], i.e. rs = 1, cs = k.
    std::vector<float> t(static_cast<size_t>(n * k));
    for (float& v : t) v = uniform(rng);
    const int64_t np = (n + 15) / 16;
    std::vector<float> panels(static_cast<size_t>(np * 16 * k), kNaN);
    fl::pack_b_panel(t.data(), 1, k, k, n, panels.data(), 16 * k);
    for (int64_t q = 0; q < np; ++q)
        for (int64_t p = 0; p < k; ++p)
            for (int64_t jj = 0; jj < 16; ++jj) {
                const int64_t j = q * 16 + jj;
                const float want = j < n ? t[j * k + p] : 0.0f;
                FLT_CHECK(fltest::float_bits(panels[q * 16 * k + p * 16 + jj]) == fltest::float_bits(want));
            }
    // Neither stride 1 (e.g. every other element of a transposed operand): the generic copy.
    std::vector<float> g(static_cast<size_t>(n * 2 * k + 2 * k));
    for (float& v : g) v = uniform(rng);
    std::vector<float> gp(static_cast<size_t>(np * 16 * k), kNaN);
    fl::pack_b_panel(g.data(), 2, 2 * k + 1, k, n, gp.data(), 16 * k);
    for (int64_t q = 0; q < np; ++q)
        for (int64_t p = 0; p < k; ++p)
            for (int64_t jj = 0; jj < 16; ++jj) {
                const int64_t j = q * 16 + jj;
                const float want = j < n ? g[p * 2 + j * (2 * k + 1)] : 0.0f;
                FLT_CHECK(fltest::float_bits(gp[q * 16 * k + p * 16 + jj]) == fltest::float_bits(want));
            }
    std::vector<float> c2(static_cast<size_t>(m * n));
    fl::gemm_packed_raw(a.data(), m, lda, k, n, panels.data(), 16 * k, nullptr, c2.data(), n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            FLT_CHECK(fltest::float_bits(c2[i * n + j]) ==
                      fltest::float_bits(chain(0.0f, a.data() + i * lda, 1, t.data() + j * k, 1, k)));
}

using GemmRowbFn = void (*)(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                           int64_t, const float*, int, float*, int64_t);

// The row-major-B kernel per ISA against the fmaf chain: B and bias end at a guard page (so a
// read past column n - 1 of the last row faults), NaN in B's row padding, sentinels around C.
void test_gemm_rowb_kernel(fl::Isa isa, GemmRowbFn fn) {
    // m: every row group of the band loop (a last group of 1, 2, 3 or 4 rows) and each whole-k
    // tile height.
    const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    // n: each side of every whole-k tile limit (AVX2: 1 x 64 with 8 vectors from 33, 2 x 32
    // with 4 from 17, 3 x 24 with 3 from 17, 4 x 16; AVX-512: 1-2 rows x 128, 3-4 rows x 64,
    // 1-4 vectors or 8 from 65; AVX2, 2 rows of 33-64 row by row up to k x n = 16384: at
    // n = 64, k 129 in and 300 out) and of the vectors; 40: whole vectors then fully masked ones;
    // 300: 8-row bands (every n > 256). ldb: just past n, and far (B's
    // rows on different pages). k = 300: several bands for every n, and more than the 256-row
    // cap for n <= 16. k = 2, 3, 10, 11: every remainder of the band loop unrolled by 4.
    const int64_t ns[] = {1,  2,  7,  8,  9,  15, 16,  17,  23,  24,  25,  31,  32,
                          33, 40, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129, 300};
    const int64_t ks[] = {0, 1, 2, 3, 5, 10, 11, 64, 129, 300};
    std::mt19937 rng(17);
    int cases = 0;
    for (int64_t m : ms)
        for (int64_t n : ns)
            for (int64_t k : ks)
                for (int mode = 0; mode < 4; ++mode) {
                    if (fltest::case_failures() > 20) return;
                    if (mode == 3 && (k == 0 || k == 129)) continue;  // far ldb: a few k
                    const int64_t lda = k + 2, ldb = mode == 3 ? n + 4099 : n + 3, ldc = n + 5;
                    std::vector<float> a(static_cast<size_t>(m * lda + 1), kNaN);
                    for (int64_t i = 0; i < m; ++i)
                        for (int64_t p = 0; p < k; ++p) a[i * lda + p] = uniform(rng);
                    GuardedFloats b(static_cast<size_t>(k == 0 ? 1 : (k - 1) * ldb + n), kNaN);
                    for (int64_t p = 0; p < k; ++p)
                        for (int64_t j = 0; j < n; ++j) b[p * ldb + j] = uniform(rng);
                    GuardedFloats bias(static_cast<size_t>(n), 0.0f);
                    for (int64_t j = 0; j < n; ++j) bias[j] = uniform(rng);
                    std::vector<float> cbuf(static_cast<size_t>((m + 2) * ldc), sentinel());
                    float* c = cbuf.data() + ldc + 2;  // row -1 and columns -2, -1 stay sentinel
                    for (int64_t i = 0; i < m; ++i)
                        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = uniform(rng);
                    const std::vector<float> before(cbuf);
                    // mode 0: C = A.B, 1: bias + A.B, 2: C += A.B, 3: bias + A.B, far ldb
                    const bool with_bias = mode == 1 || mode == 3;
                    fn(m, n, k, a.data(), lda, b.data(), ldb, with_bias ? bias.data() : nullptr,
                       mode == 2, c, ldc);
                    for (int64_t i = 0; i < m; ++i)
                        for (int64_t j = 0; j < n; ++j) {
                            const float init = mode == 0   ? 0.0f
                                               : mode == 2 ? before[(i + 1) * ldc + 2 + j]
                                                           : bias[j];
                            const float want = chain(init, a.data() + i * lda, 1, b.data() + j, ldb, k);
                            FLT_CHECK_MSG(fltest::float_bits(c[i * ldc + j]) == fltest::float_bits(want),
                                          "%s rowb m=%" PRId64 " n=%" PRId64 " k=%" PRId64
                                          " mode=%d: c[%" PRId64 "][%" PRId64 "]",
                                          fl::isa_name(isa), m, n, k, mode, i, j);
                        }
                    for (int64_t r = 0; r < m + 2; ++r)
                        for (int64_t col = 0; col < ldc; ++col) {
                            const bool inside = r >= 1 && r <= m && col >= 2 && col < n + 2;
                            if (!inside)
                                FLT_CHECK(fltest::float_bits(cbuf[r * ldc + col]) == kSentinelBits);
                        }
                    ++cases;
                }
    std::printf("  %s: %d rowb cases\n", fl::isa_name(isa), cases);
}

using PackT16Fn = void (*)(const float*, int64_t, int64_t, int64_t, float*);

// The transposing pack per ISA: w rows of kc floats (row stride ld > kc, NaN between rows) whose
// last row ends at a guard page; the panel must hold the transpose, zeros for columns >= w, and
// nothing may be written past 16*kc floats.
void test_pack_t16_kernel(fl::Isa isa, PackT16Fn fn) {
    const int64_t kcs[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65};
    int cases = 0;
    for (int64_t w = 0; w <= 16; ++w)
        for (int64_t kc : kcs) {
            const int64_t ld = kc + 3;
            GuardedFloats src(static_cast<size_t>(w == 0 ? 1 : (w - 1) * ld + kc), kNaN);
            for (int64_t i = 0; i < w; ++i)
                for (int64_t p = 0; p < kc; ++p) src[i * ld + p] = static_cast<float>(i * 1000 + p);
            std::vector<float> dst(static_cast<size_t>(16 * kc + 5), sentinel());
            fn(src.data(), ld, w, kc, dst.data());
            for (int64_t p = 0; p < kc; ++p)
                for (int64_t i = 0; i < 16; ++i) {
                    const float want = i < w ? static_cast<float>(i * 1000 + p) : 0.0f;
                    FLT_CHECK_MSG(fltest::float_bits(dst[p * 16 + i]) == fltest::float_bits(want),
                                  "%s pack_t16 w=%" PRId64 " kc=%" PRId64 ": dst[%" PRId64
                                  "][%" PRId64 "] = %g",
                                  fl::isa_name(isa), w, kc, p, i, dst[p * 16 + i]);
                }
            for (int64_t e = 16 * kc; e < 16 * kc + 5; ++e)
                FLT_CHECK(fltest::float_bits(dst[e]) == kSentinelBits);
            ++cases;
        }
    std::printf("  %s: %d pack cases\n", fl::isa_name(isa), cases);
}

void test_dense_forward() {
    std::mt19937 rng(11);
    const int64_t m = 5, k = 20, n = 33;
    std::vector<float> x(static_cast<size_t>(m * k)), w(static_cast<size_t>(k * n)), bias(n);
    for (float& v : x) v = uniform(rng);
    for (float& v : w) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    const fl::PackedB packed = fl::pack_b(w.data(), k, n, n, bias.data());
    std::vector<float> y(static_cast<size_t>(m * n));
    fl::dense_forward(x.data(), m, k, packed, y.data(), test_act);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            float want = chain(bias[j], x.data() + i * k, 1, w.data() + j, n, k);
            test_act(&want, 1);
            FLT_CHECK(fltest::float_bits(y[i * n + j]) == fltest::float_bits(want));
        }
    // Empty batch: nothing touched.
    float s = sentinel();
    fl::dense_forward(x.data(), 0, k, packed, &s, nullptr);
    FLT_CHECK(fltest::float_bits(s) == kSentinelBits);
}

void test_packed_b_layout() {
    const int64_t k = 3, n = 18, ldk = 20;
    std::vector<float> w(static_cast<size_t>(k * ldk));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
    std::vector<float> bias(n, 7.0f);
    const fl::PackedB p = fl::pack_b(w.data(), k, n, ldk, bias.data());
    FLT_CHECK(p.panels() == 2 && p.panel_stride() == 48);
    FLT_CHECK(reinterpret_cast<uintptr_t>(p.data()) % 64 == 0);
    for (int64_t j = 0; j < 32; ++j) {
        for (int64_t r = 0; r < k; ++r) {
            const float got = p.data()[(j / 16) * 48 + r * 16 + j % 16];
            FLT_CHECK(got == (j < n ? w[r * ldk + j] : 0.0f));
        }
        FLT_CHECK(p.bias()[j] == (j < n ? 7.0f : 0.0f));
    }
    const fl::PackedB nb = fl::pack_b(w.data(), k, n, ldk, nullptr);
    FLT_CHECK(nb.bias() == nullptr && !nb.has_bias());
    const fl::PackedB empty = fl::pack_b(nullptr, 0, 0, 0, nullptr);
    FLT_CHECK(empty.k() == 0 && empty.n() == 0 && empty.panels() == 0);
}

// runtime/scratch.h: parts are aligned, disjoint and usable over their whole size; in an ASan
// build (tools/sanitize.sh) the float right after each part, and a grown buffer's floats beyond
// the current request, are poisoned, so a kernel running past its part is reported there.
bool poisoned(const float* p) {
#if defined(FL_ASAN)
    return __asan_address_is_poisoned(p) != 0;
#else
    (void)p;
    return false;
#endif
}

void test_scratch_parts() {
    const int64_t sizes[4] = {37, 0, 16, 5};
    const fl::ScratchParts<4> parts(sizes);
    for (size_t i = 0; i < 4; ++i) {
        FLT_CHECK(reinterpret_cast<uintptr_t>(parts[i]) % 64 == 0);
        for (int64_t j = 0; j < sizes[i]; ++j) parts[i][j] = static_cast<float>(i);  // usable
        if (i + 1 < 4) FLT_CHECK(parts[i] + sizes[i] <= parts[i + 1]);
        if (sizes[i] > 0) FLT_CHECK(!poisoned(parts[i] + sizes[i] - 1));
    }
    for (size_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < sizes[i]; ++j) FLT_CHECK(parts[i][j] == static_cast<float>(i));
    if (fl::kScratchRedzone > 0) {
        for (size_t i = 0; i < 4; ++i) {
            FLT_CHECK(poisoned(parts[i] + sizes[i]));  // the first float past each part
            FLT_CHECK(poisoned(parts[i] + sizes[i] + fl::kScratchRedzone - 1));
        }
    } else {  // outside ASan: the drivers' layout, parts at multiples of 16 floats
        FLT_CHECK(parts[1] == parts[0] + 48 && parts[2] == parts[1] && parts[3] == parts[2] + 16);
        FLT_CHECK(parts.total() == 48 + 16 + 16);
    }

    fl::GrowingScratch grow;
    float* a = grow.get(40);
    for (int64_t j = 0; j < 40; ++j) a[j] = 1.0f;
    float* b = grow.get(10);  // kept: the same storage, only the first 10 floats handed out
    FLT_CHECK(a == b);
    b[9] = 2.0f;
    if (fl::kScratchRedzone > 0) FLT_CHECK(poisoned(b + 10) && poisoned(b + 39));
    float* c = grow.get(40);
    FLT_CHECK(c == a && !poisoned(c + 39));
    c[39] = 3.0f;
    float* d = grow.get(100);  // grown
    for (int64_t j = 0; j < 100; ++j) d[j] = 4.0f;
    FLT_CHECK(!poisoned(d + 99));
}

}  // namespace

namespace fltest {

void register_gemm_tests() {
    add_case("scratch_parts", test_scratch_parts);
    for (const GemmIsa& g : gemm_kernels_built()) {
        const std::string isa = fl::isa_name(g.isa);
        if (!fltest::isa_supported(g.isa)) {
            std::printf("skip %s gemm kernels: not supported by this CPU\n", isa.c_str());
            continue;
        }
        add_case("gemm_kernel_grid_" + isa, [g] { test_gemm_kernel_grid(g); });
        add_case("gemm_kernel_degenerate_" + isa, [g] { test_gemm_kernel_degenerate(g); });
        add_case("gemm_kernel_special_" + isa, [g] { test_gemm_kernel_special(g); });
        if (g.isa != fl::Isa::scalar)
            add_case("gemm_kernel_vs_scalar_" + isa, [g] { test_gemm_kernel_vs_scalar(g); });
    }
    for (const IgemmIsa& g : igemm_kernels_built()) {
        if (fltest::isa_supported(g.isa))
            add_case(std::string("igemm_kernel_grid_") + fl::isa_name(g.isa),
                     [g] { test_igemm_kernel_grid(g); });
    }
    add_case("gemm_rowb_scalar",
             [] { test_gemm_rowb_kernel(fl::Isa::scalar, fl_gemm_rowb_f32_scalar); });
#if defined(FL_HAVE_AVX2)
    if (fltest::isa_supported(fl::Isa::avx2))
        add_case("gemm_rowb_avx2",
                 [] { test_gemm_rowb_kernel(fl::Isa::avx2, fl_gemm_rowb_f32_avx2); });
#endif
#if defined(FL_HAVE_AVX512)
    if (fltest::isa_supported(fl::Isa::avx512))
        add_case("gemm_rowb_avx512",
                 [] { test_gemm_rowb_kernel(fl::Isa::avx512, fl_gemm_rowb_f32_avx512); });
#endif
    add_case("pack_t16_scalar", [] { test_pack_t16_kernel(fl::Isa::scalar, fl_pack_t16_scalar); });
#if defined(FL_HAVE_AVX2)
    if (fltest::isa_supported(fl::Isa::avx2))
        add_case("pack_t16_avx2", [] { test_pack_t16_kernel(fl::Isa::avx2, fl_pack_t16_avx2); });
#endif
#if defined(FL_HAVE_AVX512)
    if (fltest::isa_supported(fl::Isa::avx512))
        add_case("pack_t16_avx512",
                 [] { test_pack_t16_kernel(fl::Isa::avx512, fl_pack_t16_avx512); });
#endif
    add_case("gemm_packed_b_layout", test_packed_b_layout);
    add_case("gemm_driver_default_blocking", test_gemm_driver_default_blocking);
    add_case("gemm_driver_small_blocking", test_gemm_driver_small_blocking);
    add_case("gemm_driver_block_boundaries", test_gemm_driver_block_boundaries);
    add_case("gemm_n_block", test_gemm_n_block);
    add_case("gemm_config_for", test_gemm_config_for);
    add_case("gemm_nested_in_parallel_region", test_gemm_nested_in_parallel_region);
    add_case("gemm_batched", test_gemm_batched);
    add_case("gemm_convenience_and_transposed_pack", test_gemm_convenience_and_transposed_pack);
    add_case("dense_forward", test_dense_forward);
}

}  // namespace fltest
