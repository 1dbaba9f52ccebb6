// C++ tests of the conv2d driver (csrc/ops/conv2d*.cpp).
//
// The reference is the summation-order contract: y = bias[f], then y = fmaf(xp, K, y) over the
// patch in (a, b, c) order with zeros in the padding, so the driver (every algorithm it can pack
// a kernel for, the 1x1 no-copy path, any K/M/N blocking, any thread count) must match it BIT
// FOR BIT.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastlayers/conv2d.h"
#include "fastlayers/runtime.h"
#include "gemm/gemm_internal.h"
#include "ops/conv2d_internal.h"
#include "runtime/dispatch.h"
#include "guarded_buf.h"
#include "test_framework.h"
#include "ukernels/ukernels.h"


namespace {

using fltest::GuardedBuf;

struct Case {
    int64_t n, h, w, c, kh, kw, f, groups, sh, sw, dh, dw, pt, pb, pl, pr;
};

fl::Conv2dShape shape_of(const Case& k) {
    fl::Conv2dShape s;
    s.n = k.n;
    s.h = k.h;
    s.w = k.w;
    s.c = k.c;
    s.kh = k.kh;
    s.kw = k.kw;
    s.f = k.f;
    s.groups = k.groups;
    s.sh = k.sh;
    s.sw = k.sw;
    s.dh = k.dh;
    s.dw = k.dw;
    s.pad_top = k.pt;
    s.pad_left = k.pl;
    s.oh = (k.h + k.pt + k.pb - ((k.kh - 1) * k.dh + 1)) / k.sh + 1;
    s.ow = (k.w + k.pl + k.pr - ((k.kw - 1) * k.dw + 1)) / k.sw + 1;
    return s;
}

std::vector<float> reference(const std::vector<float>& x, const std::vector<float>& ker,
                             const float* bias, const fl::Conv2dShape& s) {
    const int64_t cg = s.c / s.groups, fg = s.f / s.groups;
    std::vector<float> y(static_cast<size_t>(s.n * s.oh * s.ow * s.f));
    for (int64_t nb = 0; nb < s.n; ++nb)
        for (int64_t i = 0; i < s.oh; ++i)
            for (int64_t j = 0; j < s.ow; ++j)
                for (int64_t f = 0; f < s.f; ++f) {
                    const int64_t g = f / fg;
                    float acc = bias ? bias[f] : 0.0f;
                    for (int64_t a = 0; a < s.kh; ++a)
                        for (int64_t b = 0; b < s.kw; ++b)
                            for (int64_t c = 0; c < cg; ++c) {
                                const int64_t r = i * s.sh + a * s.dh - s.pad_top;
                                const int64_t q = j * s.sw + b * s.dw - s.pad_left;
                                const float xv =
                                    (r < 0 || r >= s.h || q < 0 || q >= s.w)
                                        ? 0.0f
                                        : x[static_cast<size_t>(((nb * s.h + r) * s.w + q) * s.c +
                                                                g * cg + c)];
                                const float kv =
                                    ker[static_cast<size_t>(((a * s.kw + b) * cg + c) * s.f + f)];
                                acc = std::fmaf(xv, kv, acc);
                            }
                    y[static_cast<size_t>(((nb * s.oh + i) * s.ow + j) * s.f + f)] = acc;
                }
    return y;
}

// The algorithms a kernel of this case can be packed for: the automatic choice, then each one
// forced (depthwise needs cg == 1, indirect an ISA with an indirect kernel).
std::vector<fl::ConvAlgo> algos_for(const Case& k) {
    std::vector<fl::ConvAlgo> v{fl::ConvAlgo::automatic, fl::ConvAlgo::tiles};
    if (k.c == k.groups) v.push_back(fl::ConvAlgo::depthwise);
    if (fl::kernels().igemm) v.push_back(fl::ConvAlgo::indirect);
    return v;
}

const char* algo_name(fl::ConvAlgo a) {
    switch (a) {
        case fl::ConvAlgo::automatic:
            return "automatic";
        case fl::ConvAlgo::depthwise:
            return "depthwise";
        case fl::ConvAlgo::indirect:
            return "indirect";
        case fl::ConvAlgo::tiles:
            return "tiles";
    }
    return "?";
}

void run_case(const Case& k, bool with_bias, std::mt19937& rng) {
    const fl::Conv2dShape s = shape_of(k);
    const int64_t cg = k.c / k.groups;
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(k.n * k.h * k.w * k.c));
    std::vector<float> ker(static_cast<size_t>(k.kh * k.kw * cg * k.f));
    std::vector<float> bias(static_cast<size_t>(k.f));
    for (float& v : x) v = dist(rng);
    for (float& v : ker) v = dist(rng);
    for (float& v : bias) v = dist(rng);
    const float* bp = with_bias ? bias.data() : nullptr;
    const std::vector<float> want = reference(x, ker, bp, s);
    const int saved = fl::num_threads();
    for (fl::ConvAlgo algo : algos_for(k)) {
        const fl::PackedConv w(ker.data(), k.kh, k.kw, cg, k.f, k.groups, bp, algo);
        FLT_CHECK(algo == fl::ConvAlgo::automatic || w.algo() == algo);
        for (int threads : {1, 2, 3}) {
            fl::set_num_threads(threads);
            std::vector<float> y(want.size() + 1, -7.0f);  // + a sentinel
            fl::conv2d_forward(x.data(), s, w, y.data(), nullptr);
            FLT_CHECK_MSG(y.back() == -7.0f, "sentinel overwritten");
            const bool same =
                want.empty() ||  // memcmp may not take the null data() of empty
                std::memcmp(y.data(), want.data(), want.size() * sizeof(float)) == 0;
            FLT_CHECK_MSG(same,
                          "conv %lldx%lldx%lld k%lldx%lld f%lld g%lld s%lld,%lld d%lld,%lld "
                          "threads %d bias %d algo %s differs from the fmaf chain",
                          (long long)k.h, (long long)k.w, (long long)k.c, (long long)k.kh,
                          (long long)k.kw, (long long)k.f, (long long)k.groups, (long long)k.sh,
                          (long long)k.sw, (long long)k.dh, (long long)k.dw, threads, with_bias,
                          algo_name(algo));
        }
    }
    fl::set_num_threads(saved);
}

const std::vector<Case>& cases() {
    //                         n  h   w   c  kh kw  f  g sh sw dh dw pt pb pl pr
    static const std::vector<Case> v = {
        {2, 7, 7, 3, 3, 3, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0},       // valid
        {1, 13, 11, 4, 3, 3, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1},     // same
        {1, 8, 9, 2, 4, 4, 3, 1, 1, 1, 1, 1, 1, 2, 1, 2},       // even kernel, TF split
        {2, 9, 8, 3, 3, 3, 4, 1, 2, 2, 1, 1, 0, 1, 1, 1},       // stride 2
        {1, 11, 12, 2, 3, 3, 3, 1, 1, 1, 2, 3, 2, 2, 3, 3},     // dilation
        {2, 7, 7, 4, 3, 3, 6, 2, 1, 1, 1, 1, 1, 1, 1, 1},       // groups
        {2, 7, 7, 5, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1},       // depthwise
        {2, 9, 10, 45, 3, 3, 45, 45, 2, 2, 1, 1, 0, 1, 0, 1},   // depthwise 32 + 8 + 5 channels
        {1, 12, 11, 40, 5, 5, 40, 40, 1, 1, 1, 1, 2, 2, 2, 2},  // depthwise 5x5, > 64 pixels
        {1, 9, 9, 16, 3, 3, 16, 16, 1, 1, 2, 2, 2, 2, 2, 2},    // depthwise dilated
        // Depthwise row kernel: output rows of 17 (groups of 8, the last shifted back), 14 (7
        // on AVX-512), 5 (one short group, rows cut by the tiles at 2 and 3 threads); 5x5
        // stride 2; one row of 300 (a 1-D conv: cut into tiles, no padding rows); multiplier
        // 2 with rows of 7 cut by the tiles.
        {2, 5, 17, 24, 3, 3, 24, 24, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 4, 14, 40, 3, 3, 40, 40, 1, 1, 1, 1, 1, 1, 1, 1},
        {3, 6, 5, 33, 3, 3, 33, 33, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 7, 5, 20, 3, 3, 20, 20, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 9, 28, 16, 5, 5, 16, 16, 2, 2, 1, 1, 2, 2, 2, 2},
        {1, 7, 60, 8, 3, 3, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 1, 300, 16, 1, 3, 16, 16, 1, 1, 1, 1, 0, 0, 1, 1},
        {1, 5, 7, 12, 3, 3, 24, 12, 1, 1, 1, 1, 1, 1, 1, 1},
        // The per-pixel kernel: more channels than any ISA's row kernel takes; 72 channels,
        // strided (stride 2, and dilation 2 with multiplier 2: the pointer shifts of interior
        // pixels); multiplier 2 over 300 channels (per pixel on AVX2, rows on AVX-512).
        {2, 5, 6, 520, 3, 3, 520, 520, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 9, 12, 72, 3, 3, 72, 72, 2, 2, 1, 1, 0, 1, 0, 1},
        {1, 9, 10, 72, 3, 3, 144, 72, 1, 2, 2, 2, 2, 2, 2, 2},
        {1, 6, 7, 300, 3, 3, 600, 300, 2, 1, 1, 1, 1, 1, 0, 1},
        {1, 8, 8, 6, 3, 3, 12, 6, 1, 1, 1, 1, 1, 1, 1, 1},      // depthwise multiplier 2 (GEMM)
        {1, 9, 10, 8, 3, 3, 16, 8, 1, 1, 1, 1, 1, 1, 1, 1},     // multiplier 2, direct planes
        {2, 11, 9, 45, 3, 3, 135, 45, 2, 1, 1, 1, 1, 1, 0, 1},  // multiplier 3, 32 + 8 + 5 ch
        {1, 12, 11, 9, 5, 3, 36, 9, 1, 2, 2, 1, 4, 4, 1, 1},    // multiplier 4, dilated, tiles
        {1, 7, 7, 1, 3, 3, 32, 1, 1, 1, 1, 1, 1, 1, 1, 1},      // 1 channel, 32 filters (GEMM)
        {1, 2, 3, 3, 7, 7, 5, 1, 1, 1, 1, 1, 3, 3, 3, 3},       // kernel larger than input
        {3, 11, 13, 12, 1, 1, 9, 3, 1, 1, 1, 1, 0, 0, 0, 0},    // 1x1 (indirect), groups
        {1, 3, 5, 4100, 1, 1, 7, 1, 1, 1, 1, 1, 0, 0, 0, 0},    // 1x1, K > 4096: GEMM, no copy
        {2, 3, 4, 8200, 1, 1, 6, 2, 1, 1, 1, 1, 0, 0, 0, 0},    // the same with 2 groups
        {2, 17, 19, 33, 1, 1, 70, 1, 2, 2, 1, 1, 0, 0, 0, 0},   // 1x1 stride 2 (patches)
        {1, 24, 24, 64, 3, 3, 40, 1, 1, 1, 1, 1, 1, 1, 1, 1},   // K = 576, several tiles
        {1, 13, 37, 57, 3, 3, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1},   // K = 513 > KC
        {5, 9, 11, 8, 3, 3, 24, 1, 1, 1, 1, 1, 1, 1, 1, 1},     // tiles across images
        {0, 5, 6, 4, 3, 3, 6, 2, 1, 1, 1, 1, 1, 1, 1, 1},       // empty batch
        // Indirect path: kernel-row chunks (C < 16), rows clipped at the left/right edges.
        {1, 10, 11, 3, 3, 3, 32, 1, 2, 2, 1, 1, 0, 1, 0, 1},  // RGB stem: stride 2, right pad
        {4, 12, 13, 3, 3, 3, 8, 1, 1, 1, 1, 1, 0, 0, 0, 0},   // 8 filters: 12 x 8 tiles
        {2, 10, 17, 2, 3, 5, 9, 1, 3, 3, 1, 1, 2, 2, 3, 3},   // stride 3, left pad 3
        {1, 8, 9, 15, 3, 3, 6, 1, 1, 1, 2, 1, 2, 2, 1, 1},    // row chunks, row dilation
        {1, 1, 500, 3, 1, 3, 5, 1, 1, 1, 1, 1, 0, 0, 1, 1},   // one long row, tiles of 240
        {1, 2, 3, 3, 3, 7, 4, 1, 1, 1, 1, 1, 1, 1, 3, 3},     // kernel row wider than x
        // Tap chunks (C >= 16 or dilation or groups).
        {1, 15, 13, 16, 3, 3, 17, 1, 2, 2, 1, 1, 1, 1, 1, 1},  // stride 2
        {1, 14, 13, 20, 3, 3, 10, 1, 1, 1, 2, 2, 2, 2, 2, 2},  // dilation 2
        {1, 11, 14, 16, 3, 5, 9, 1, 3, 3, 1, 1, 1, 1, 2, 2},   // stride 3, left pad
        {1, 9, 8, 64, 3, 3, 130, 1, 1, 1, 1, 1, 1, 1, 1, 1},   // K*F > 64K: column blocks
        // Column blocks rounded to the main tile's width (16, or 32 on AVX-512): K = 2304 with
        // 72 filters (blocks of 16, or 32 + 32 + 8); K = 1152 with 80 (blocks of 48 + 32, or
        // 32 + 32 + 16); K = 3600 with 48 (16s, or 32 + 16), 26 pixels.
        {1, 5, 6, 256, 3, 3, 72, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 7, 6, 128, 3, 3, 80, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 2, 13, 400, 3, 3, 48, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 5, 4, 520, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1},    // K = 4680: im2col fallback
        // AVX-512 igemm tiles (row blocks of 12, 24 when F <= 16) through the driver.
        {1, 11, 9, 16, 3, 3, 16, 1, 1, 1, 1, 1, 1, 1, 1, 1},   // 99 px, 16 filters: 24 x 16
        {2, 7, 9, 24, 3, 3, 96, 1, 1, 1, 1, 1, 0, 0, 1, 1},    // 96 filters: 12 x 32 strips
        {1, 13, 7, 3, 3, 3, 23, 1, 2, 1, 1, 1, 1, 1, 1, 1},    // 23 filters, row chunks
        {3, 9, 9, 17, 3, 3, 33, 1, 2, 2, 1, 1, 1, 1, 1, 1},    // 33 filters, stride 2
        {1, 9, 8, 64, 1, 3, 129, 1, 1, 1, 1, 1, 0, 0, 1, 1},   // 129 filters: 1-lane tail
        // Input pixels 4 KiB apart (sw * C = 1024): the kernel is called on 6 rows at a time.
        {1, 6, 30, 512, 1, 1, 20, 1, 2, 2, 1, 1, 0, 0, 0, 0},  // 1x1 stride 2, 45 pixels
        {1, 5, 9, 1024, 2, 2, 9, 1, 1, 1, 1, 1, 0, 0, 0, 0},   // 2x2, K = 4096, 9 filters
        {1, 5, 9, 1024, 2, 2, 20, 1, 1, 1, 1, 1, 0, 0, 0, 0},  // 20 filters: 16 + 4 (AVX2)
        // 2 KiB apart (sw * C = 512): calls of 12 rows instead of the 24 x 16 tile.
        {1, 5, 9, 512, 2, 2, 9, 1, 1, 1, 1, 1, 0, 0, 0, 0},    // 32 pixels: 12 + 12 + 8
        {1, 5, 9, 512, 2, 2, 20, 1, 1, 1, 1, 1, 0, 0, 0, 0},   // 20 filters: 16 + 4 (AVX2)
        {2, 9, 11, 256, 3, 3, 12, 1, 2, 2, 1, 1, 1, 1, 1, 1},  // stride 2, 256 ch, 60 pixels
        // K = 4680 (tiles under automatic): 243 pixels in 6 tiles of 41 and 40 pixels (48 is
        // the tile size K asks for; the count is a multiple of the threads), across images.
        {3, 9, 9, 520, 3, 3, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    };
    return v;
}

void test_conv2d_matches_fma_chain() {
    std::mt19937 rng(1234);
    for (const Case& k : cases()) {
        run_case(k, true, rng);
        run_case(k, false, rng);
    }
}

// The automatic plan: depthwise for cg == 1 with multiplier 1 or C >= 8, else indirect up to
// K = 4096 where the ISA has the kernel, else tiles; forcing an impossible plan throws.
void test_conv2d_plan() {
    std::vector<float> ker(3 * 3 * 520 * 16, 0.5f);
    const bool has_igemm = fl::kernels().igemm != nullptr;
    const auto algo = [&](int64_t kh, int64_t kw, int64_t cg, int64_t f, int64_t groups) {
        return fl::PackedConv(ker.data(), kh, kw, cg, f, groups, nullptr).algo();
    };
    FLT_CHECK(algo(3, 3, 1, 5, 5) == fl::ConvAlgo::depthwise);
    FLT_CHECK(algo(3, 3, 1, 16, 8) == fl::ConvAlgo::depthwise);  // multiplier 2, C = 8
    const fl::ConvAlgo gemm_algo = has_igemm ? fl::ConvAlgo::indirect : fl::ConvAlgo::tiles;
    FLT_CHECK(algo(3, 3, 1, 12, 6) == gemm_algo);   // multiplier 2, C = 6
    FLT_CHECK(algo(3, 3, 3, 16, 1) == gemm_algo);
    FLT_CHECK(algo(1, 1, 64, 16, 1) == gemm_algo);  // 1x1: the GEMM on x is chosen per call
    FLT_CHECK(algo(8, 8, 64, 16, 1) == gemm_algo);  // K = 4096
    FLT_CHECK(algo(3, 3, 520, 16, 1) == fl::ConvAlgo::tiles);  // K = 4680
    bool threw = false;
    try {
        fl::PackedConv(ker.data(), 3, 3, 2, 4, 2, nullptr, fl::ConvAlgo::depthwise);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    FLT_CHECK(threw);
    if (!has_igemm) {
        threw = false;
        try {
            fl::PackedConv(ker.data(), 3, 3, 3, 4, 1, nullptr, fl::ConvAlgo::indirect);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        FLT_CHECK(threw);
    }
}

void test_conv2d_small_gemm_blocking() {
    fl::gemm_detail::GemmConfig& cfg = fl::gemm_detail::config();
    const fl::gemm_detail::GemmConfig saved = cfg;
    cfg.kc = 7;
    cfg.mc = 12;
    cfg.nc = 32;
    cfg.min_macs_per_task = 64;
    std::mt19937 rng(99);
    for (const Case& k : cases()) run_case(k, true, rng);
    cfg = saved;
}

// ---------------------------------------------------------------------------------------------
// Depthwise micro-kernels: fl_dwconv_f32_<isa> (per pixel) and fl_dwconv_row_f32_<isa>
// ---------------------------------------------------------------------------------------------

using DwFn = void (*)(int64_t, int64_t, int64_t, const float* const*, const float*, const float*,
                      float*, int64_t);

struct DwIsa {
    fl::Isa isa;
    DwFn fn;
};

std::vector<DwIsa> dwconv_kernels_built() {
    std::vector<DwIsa> v{{fl::Isa::scalar, fl_dwconv_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_dwconv_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_dwconv_f32_avx512});
#endif
    return v;
}

using DwRowFn = void (*)(const FlDwRow*);

struct DwRowIsa {
    fl::Isa isa;
    DwRowFn fn;
};

std::vector<DwRowIsa> dwrow_kernels_built() {
    std::vector<DwRowIsa> v{{fl::Isa::scalar, fl_dwconv_row_f32_scalar}};
#if defined(FL_HAVE_AVX2)
    v.push_back({fl::Isa::avx2, fl_dwconv_row_f32_avx2});
#endif
#if defined(FL_HAVE_AVX512)
    v.push_back({fl::Isa::avx512, fl_dwconv_row_f32_avx512});
#endif
    return v;
}


// One kernel call: m pixels x taps rows of ch floats. The rows lie in one buffer, a NaN gap of 3
// floats between them; every fifth pointer (and all of the last pixel's) points at the buffer's
// last row, which ends at the guard page (as the driver's shared zero row may), and so do the
// kernel taps and the bias; y has NaN sentinels around every row (ldy = ch + 3) and before it.
// Every output must equal the fmaf chain bit for bit, and so the scalar kernel's.
void check_dwconv_case(const DwIsa& g, int64_t m, int64_t ch, int64_t taps, bool with_bias,
                       std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t stride = ch + 3;
    const int64_t nrows = m * taps + 1;  // + the shared last row
    GuardedBuf x(static_cast<size_t>((nrows - 1) * stride + ch));
    for (int64_t r = 0; r < nrows; ++r)
        for (int64_t c = 0; c < ch; ++c) x.data()[r * stride + c] = dist(rng);
    const float* shared = x.data() + (nrows - 1) * stride;
    std::vector<const float*> rows(static_cast<size_t>(m * taps));
    for (int64_t i = 0; i < m * taps; ++i)
        rows[i] = (i % 5 == 0 || i >= (m - 1) * taps) ? shared : x.data() + i * stride;
    GuardedBuf k(static_cast<size_t>(taps * ch));
    for (int64_t i = 0; i < taps * ch; ++i) k.data()[i] = dist(rng);
    GuardedBuf bias(static_cast<size_t>(ch));
    for (int64_t c = 0; c < ch; ++c) bias.data()[c] = dist(rng) * 2.0f;
    const float* bp = with_bias ? bias.data() : nullptr;

    const int64_t ldy = ch + 3;
    const float sentinel = -1234.5f;
    std::vector<float> ybuf(static_cast<size_t>((m + 2) * ldy), sentinel);  // + a row after
    std::vector<float> yref(ybuf);
    float* y = ybuf.data() + ldy;
    g.fn(m, ch, taps, rows.data(), k.data(), bp, y, ldy);
    fl_dwconv_f32_scalar(m, ch, taps, rows.data(), k.data(), bp, yref.data() + ldy, ldy);
    int bad = 0;
    for (int64_t p = 0; p < m && bad < 3; ++p)
        for (int64_t c = 0; c < ch && bad < 3; ++c) {
            float acc = bp ? bp[c] : 0.0f;
            for (int64_t t = 0; t < taps; ++t) acc = std::fmaf(rows[p * taps + t][c], k.data()[t * ch + c], acc);
            const float got = y[p * ldy + c];
            if (fltest::float_bits(got) != fltest::float_bits(acc) ||
                fltest::float_bits(got) != fltest::float_bits(yref[(p + 1) * ldy + c])) {
                ++bad;
                FLT_CHECK_MSG(false,
                              "%s dwconv m=%lld ch=%lld taps=%lld bias=%d: y[%lld][%lld] = %.9g, "
                              "chain = %.9g",
                              fl::isa_name(g.isa), (long long)m, (long long)ch, (long long)taps,
                              with_bias ? 1 : 0, (long long)p, (long long)c, got, acc);
            }
        }
    for (int64_t i = 0; i < (m + 2) * ldy; ++i) {
        const bool inside = i >= ldy && i < (m + 1) * ldy && (i % ldy) < ch;
        if (!inside && ybuf[i] != sentinel) {
            FLT_CHECK_MSG(false, "%s dwconv m=%lld ch=%lld taps=%lld: wrote outside y at %lld",
                          fl::isa_name(g.isa), (long long)m, (long long)ch, (long long)taps,
                          (long long)i);
            return;
        }
    }
}

// Pixels around the pixel groups (2 on AVX2, 4 on AVX-512), channels around the 16/32/64-wide
// blocks and their tails, tap counts of 1x1, 1x2, 3x3, 5x5.
void test_dwconv_kernel_grid(const DwIsa& g) {
    std::mt19937 rng(4321);
    const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};
    // Tails of 1-8 channels (a ymm in the AVX-512 kernel) and of 9-15 (a masked zmm), after
    // 0, 16, 32 and 64-channel blocks.
    const int64_t chs[] = {1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 63, 64, 65, 72,
                           79, 80, 96, 112, 127, 128, 129, 200};
    const int64_t tapss[] = {1, 2, 9, 25};
    int cases = 0;
    for (int64_t m : ms)
        for (int64_t ch : chs)
            for (int64_t taps : tapss)
                for (int b = 0; b < 2; ++b) {
                    if (fltest::case_failures() > 20) return;
                    check_dwconv_case(g, m, ch, taps, b != 0, rng);
                    ++cases;
                }
    // m == 0 or ch == 0 writes nothing.
    float y = -1.0f;
    const float one = 1.0f;
    const float* p = &one;
    g.fn(0, 4, 1, &p, &one, nullptr, &y, 4);
    const float* const three[3] = {&one, &one, &one};
    g.fn(3, 0, 1, three, &one, nullptr, &y, 0);
    FLT_CHECK(y == -1.0f);
    std::printf("  %s: %d dwconv kernel cases\n", fl::isa_name(g.isa), cases);
}

// Geometry of one row-kernel call (FlDwRow): kh x kw taps, column stride and dilation.
struct DwGeom {
    int64_t kh, kw, sw, dw;
};

// One kernel call: w outputs from input column col0 over rows of `width` pixels, ch channels.
// Pixels are ldx = ch + 3 floats apart (the gap NaN), each row starts after a pixel's worth of
// NaN and ends at a guard page after its last pixel's ch channels; with `shared`, kernel row 1
// reads the same row as row 0 (the driver points every padding row at one zero row). The taps
// (ldk = ch + 5, gaps NaN) and the bias end at guard pages too; y has sentinels around every
// row (ldy = ch + 2) and before it. Every output must equal the contract's fmaf chain (columns
// outside [0, width) read as 0) bit for bit, and so the scalar kernel's; nothing outside y's
// w x ch block may be written.
void check_dwrow_case(const DwRowIsa& g, const DwGeom& geo, int64_t w, int64_t col0, int64_t width,
                      int64_t ch, bool with_bias, bool shared, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t ldx = ch + 3, ldk = ch + 5, ldy = ch + 2;
    const size_t row_floats = static_cast<size_t>(ldx + (width - 1) * ldx + ch);
    std::vector<std::unique_ptr<GuardedBuf>> bufs;
    std::vector<const float*> rows(static_cast<size_t>(geo.kh));
    for (int64_t a = 0; a < geo.kh; ++a) {
        if (shared && a == 1) {
            rows[1] = rows[0];
            continue;
        }
        bufs.emplace_back(new GuardedBuf(row_floats));
        float* r = bufs.back()->data() + ldx;  // a pixel of NaN before column 0
        for (int64_t q = 0; q < width; ++q)
            for (int64_t c = 0; c < ch; ++c) r[q * ldx + c] = dist(rng);
        rows[static_cast<size_t>(a)] = r;
    }
    const int64_t taps = geo.kh * geo.kw;
    GuardedBuf k(static_cast<size_t>((taps - 1) * ldk + ch));
    for (int64_t t = 0; t < taps; ++t)
        for (int64_t c = 0; c < ch; ++c) k.data()[t * ldk + c] = dist(rng);
    GuardedBuf bias(static_cast<size_t>(ch));
    for (int64_t c = 0; c < ch; ++c) bias.data()[c] = dist(rng) * 2.0f;
    const float* bp = with_bias ? bias.data() : nullptr;

    const float sentinel = -1234.5f;
    std::vector<float> ybuf(static_cast<size_t>((w + 2) * ldy), sentinel);  // + a row after
    std::vector<float> yref(ybuf);
    FlDwRow args{w,     col0,          width, ch,   geo.kh, geo.kw, geo.sw, geo.dw,
                 rows.data(), ldx, k.data(), ldk, bp,   ybuf.data() + ldy, ldy};
    g.fn(&args);
    args.y = yref.data() + ldy;
    fl_dwconv_row_f32_scalar(&args);
    const float* y = ybuf.data() + ldy;
    int bad = 0;
    for (int64_t o = 0; o < w && bad < 3; ++o)
        for (int64_t c = 0; c < ch && bad < 3; ++c) {
            float acc = bp ? bp[c] : 0.0f;
            for (int64_t a = 0; a < geo.kh; ++a)
                for (int64_t b = 0; b < geo.kw; ++b) {
                    const int64_t q = col0 + o * geo.sw + b * geo.dw;
                    const float xv = q >= 0 && q < width ? rows[a][q * ldx + c] : 0.0f;
                    acc = std::fmaf(xv, k.data()[(a * geo.kw + b) * ldk + c], acc);
                }
            const float got = y[o * ldy + c];
            if (fltest::float_bits(got) != fltest::float_bits(acc) ||
                fltest::float_bits(got) != fltest::float_bits(yref[(o + 1) * ldy + c])) {
                ++bad;
                FLT_CHECK_MSG(false,
                              "%s dwconv_row %lldx%lld s%lld d%lld w=%lld col0=%lld width=%lld "
                              "ch=%lld bias=%d: y[%lld][%lld] = %.9g, chain = %.9g",
                              fl::isa_name(g.isa), (long long)geo.kh, (long long)geo.kw,
                              (long long)geo.sw, (long long)geo.dw, (long long)w,
                              (long long)col0, (long long)width, (long long)ch, with_bias ? 1 : 0,
                              (long long)o, (long long)c, got, acc);
            }
        }
    for (int64_t i = 0; i < (w + 2) * ldy; ++i) {
        const bool inside = i >= ldy && i < (w + 1) * ldy && (i % ldy) < ch;
        if (!inside && ybuf[static_cast<size_t>(i)] != sentinel) {
            FLT_CHECK_MSG(false, "%s dwconv_row w=%lld ch=%lld: wrote outside y at %lld",
                          fl::isa_name(g.isa), (long long)w, (long long)ch, (long long)i);
            return;
        }
    }
}

// Segments around the output groups (8, 4, then single outputs below 4), channels around the
// vector blocks (8 on AVX2; 16 and 32 on AVX-512) and their masked tails, the kernels with a
// column walk of their own (3 and 5 wide, stride 1 and 2; 7 wide, stride 1) and others (1x1, a
// dilated 2x3, 3x7 of strides 3 and 2, 1x2 of stride 2), each with the segment inside the input,
// reaching into the left padding, and into the right padding.
void test_dwrow_kernel_grid(const DwRowIsa& g) {
    std::mt19937 rng(4321);
    const int64_t ws[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23};
    const int64_t chs[] = {1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 63, 64, 65, 72};
    const DwGeom geos[] = {{3, 3, 1, 1}, {3, 3, 2, 1}, {5, 5, 1, 1}, {5, 5, 2, 1},
                           {7, 7, 1, 1}, {2, 7, 1, 1}, {1, 1, 1, 1}, {2, 3, 1, 2},
                           {3, 7, 3, 1}, {1, 2, 2, 1}, {3, 7, 2, 1}};
    int cases = 0;
    for (const DwGeom& geo : geos)
        for (int64_t w : ws)
            for (int64_t ch : chs)
                for (int pad = 0; pad < 3; ++pad) {
                    if (fltest::case_failures() > 20) return;
                    // The columns the segment's taps span: [col0, col0 + span).
                    const int64_t span = (w - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1;
                    const int64_t left = pad == 1 ? (geo.kw - 1) * geo.dw / 2 + 1 : 0;
                    const int64_t right = pad == 2 ? (geo.kw - 1) * geo.dw / 2 + 1 : 0;
                    const int64_t col0 = pad == 0 ? 1 : -left;  // pad 0: column 0 unused
                    const int64_t width = std::max<int64_t>(1, col0 + span - right + (pad == 0));
                    check_dwrow_case(g, geo, w, col0, width, ch, cases % 2 == 0,
                                     geo.kh > 1 && cases % 3 == 0, rng);
                    ++cases;
                }
    // w == 0 or ch == 0 writes nothing.
    float y[16];
    std::fill(y, y + 16, -1.0f);
    const float ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const float* r = ones;
    FlDwRow none{0, 0, 4, 4, 1, 1, 1, 1, &r, 4, ones, 4, nullptr, y, 4};
    g.fn(&none);
    none.w = 3;
    none.ch = 0;
    g.fn(&none);
    FLT_CHECK(std::all_of(y, y + 16, [](float v) { return v == -1.0f; }));
    std::printf("  %s: %d dwconv row kernel cases\n", fl::isa_name(g.isa), cases);
}

}  // namespace

namespace fltest {

// PixelTiles (ops/conv2d_internal.h): the tiles cover [0, pixels) in order, without gaps or
// overlaps; sizes are whole units but for the last tile and differ by at most one unit; the
// count is a multiple of the threads unless min_pixels capped it; no tile exceeds largest(),
// and none is larger than the target (in units) or smaller than min_pixels where possible; with
// the count a multiple of the threads, each thread's run of count / threads tiles holds the
// same number of units give or take one (the last run may end in a partial unit). Units of 28
// are the row kernel's whole 28-pixel rows.
void test_pixel_tiles() {
    for (int64_t unit : {1, 4, 6, 28})
        for (int64_t threads = 1; threads <= 9; ++threads)
            for (int64_t target : {12, 48, 64, 128, 240})
                for (int64_t pixels = 0; pixels <= 700; ++pixels) {
                    // The drivers' minimum: 8 pixels (both depthwise paths; the row kernel's
                    // units are whole rows), else two units.
                    const int64_t min_pixels = unit == 28 || unit == 4 ? 8 : 2 * unit;
                    const fl::conv_detail::PixelTiles pt(pixels, target, threads, min_pixels, unit);
                    if (pixels == 0) {
                        FLT_CHECK(pt.count == 0);
                        continue;
                    }
                    FLT_CHECK(pt.count >= 1 && pt.start(0) == 0 && pt.start(pt.count) == pixels);
                    const int64_t units = (pixels + unit - 1) / unit;
                    const int64_t tu = std::max<int64_t>(1, target / unit);
                    const int64_t min_units = (min_pixels + unit - 1) / unit;
                    const bool capped =
                        pt.count == std::max((units + tu - 1) / tu, units / min_units);
                    FLT_CHECK_MSG(pt.count == 1 || pt.count % threads == 0 || capped,
                                  "count %lld, threads %lld", (long long)pt.count,
                                  (long long)threads);
                    int64_t lo = INT64_MAX, hi = 0;
                    for (int64_t t = 0; t < pt.count; ++t) {
                        const int64_t m = pt.start(t + 1) - pt.start(t);
                        FLT_CHECK(m >= 1 && m <= pt.largest());
                        if (t + 1 < pt.count) {
                            FLT_CHECK(m % unit == 0);
                            lo = std::min(lo, m);
                        }
                        hi = std::max(hi, m);
                    }
                    if (pt.count > 2) FLT_CHECK(hi - lo <= unit);
                    FLT_CHECK(pt.largest() <= std::max(unit, target / unit * unit));
                    if (pt.count % threads == 0) {
                        const int64_t k = pt.count / threads;
                        int64_t run_lo = INT64_MAX, run_hi = 0;
                        for (int64_t r = 0; r < threads; ++r) {
                            const int64_t len = pt.start((r + 1) * k) - pt.start(r * k);
                            if (r + 1 < threads) run_lo = std::min(run_lo, len);
                            run_hi = std::max(run_hi, len);
                        }
                        if (threads > 1)
                            FLT_CHECK_MSG(run_hi - run_lo <= unit,
                                          "runs of %lld to %lld pixels (unit %lld, %lld tiles, "
                                          "%lld threads, %lld pixels)",
                                          (long long)run_lo, (long long)run_hi, (long long)unit,
                                          (long long)pt.count, (long long)threads,
                                          (long long)pixels);
                    }
                    if (pt.count > 1 && pt.count > (units + tu - 1) / tu)  // not at the target
                        FLT_CHECK(lo >= min_pixels || pt.count == 2);
                }
}

// Conv3D read in place (fl::conv3d_forward) with the packed kernel of its depth-stacked
// conv2d, (kh, kw, kd*cg, F): every output is the chain bias, then fmaf over the patch in
// (a, b, e, c) order (kernel row, column, depth tap, channel) with zeros in the padding - the
// stacked conv2d's order - bit for bit, at 1 and 3 threads. Refused: a kernel that does not
// match, a bad geometry, and (where the ISA has no indirect kernel) any kernel.
void test_conv3d_in_place() {
    struct C3 {
        int64_t n, d, h, w, c, kd, kh, kw, f, groups, sd, sh, sw, dd, dh, dw, pf, pt, pl, od,
            oh, ow;
    };
    const C3 cases[] = {
        {2, 5, 6, 7, 16, 3, 3, 3, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 6, 7},   // same
        {1, 7, 8, 9, 32, 3, 2, 3, 20, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1, 4, 4, 5},   // strides, groups
        {1, 9, 7, 8, 17, 2, 3, 2, 31, 1, 1, 1, 1, 2, 1, 3, 0, 0, 0, 7, 5, 5},   // dilated, valid
        {3, 4, 5, 6, 3, 4, 2, 2, 7, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0, 4, 3, 6},     // 3 channels
        {1, 1, 4, 30, 40, 1, 1, 3, 33, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 4, 30}, // > one tile
        {1, 3, 2, 2, 2, 5, 3, 3, 6, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 3, 2, 2},     // kernel > x
    };
    std::mt19937 rng(77);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (const C3& q : cases) {
        const int64_t cg = q.c / q.groups, fg = q.f / q.groups;
        std::vector<float> x(q.n * q.d * q.h * q.w * q.c), k5(q.kd * q.kh * q.kw * cg * q.f),
            bias(q.f);
        for (float& v : x) v = u(rng);
        for (float& v : k5) v = u(rng);
        for (float& v : bias) v = u(rng);
        // The stacked conv2d's kernel: row (a, b, e*cg + c) = the Conv3D kernel's (e, a, b, c).
        std::vector<float> k4(k5.size());
        for (int64_t e = 0; e < q.kd; ++e)
            for (int64_t a = 0; a < q.kh; ++a)
                for (int64_t b = 0; b < q.kw; ++b)
                    for (int64_t c = 0; c < cg; ++c)
                        for (int64_t o = 0; o < q.f; ++o)
                            k4[(((a * q.kw + b) * q.kd + e) * cg + c) * q.f + o] =
                                k5[(((e * q.kh + a) * q.kw + b) * cg + c) * q.f + o];
        const fl::PackedConv w(k4.data(), q.kh, q.kw, q.kd * cg, q.f, q.groups, bias.data());
        fl::Conv3dShape s;
        s.n = q.n, s.d = q.d, s.h = q.h, s.w = q.w, s.c = q.c;
        s.kd = q.kd, s.kh = q.kh, s.kw = q.kw, s.f = q.f, s.groups = q.groups;
        s.sd = q.sd, s.sh = q.sh, s.sw = q.sw, s.dd = q.dd, s.dh = q.dh, s.dw = q.dw;
        s.pad_front = q.pf, s.pad_top = q.pt, s.pad_left = q.pl;
        s.od = q.od, s.oh = q.oh, s.ow = q.ow;
        std::vector<float> want(q.n * q.od * q.oh * q.ow * q.f);
        for (int64_t i = 0; i < q.n * q.od * q.oh * q.ow; ++i) {
            const int64_t nb = i / (q.od * q.oh * q.ow), oz = i / (q.oh * q.ow) % q.od,
                          oy = i / q.ow % q.oh, ox = i % q.ow;
            for (int64_t o = 0; o < q.f; ++o) {
                const int64_t g = o / fg;
                float acc = bias[o];
                for (int64_t a = 0; a < q.kh; ++a)
                    for (int64_t b = 0; b < q.kw; ++b)
                        for (int64_t e = 0; e < q.kd; ++e)
                            for (int64_t c = 0; c < cg; ++c) {
                                const int64_t z = oz * q.sd + e * q.dd - q.pf,
                                              y = oy * q.sh + a * q.dh - q.pt,
                                              xx = ox * q.sw + b * q.dw - q.pl;
                                const bool in = z >= 0 && z < q.d && y >= 0 && y < q.h &&
                                                xx >= 0 && xx < q.w;
                                const float xv =
                                    in ? x[(((nb * q.d + z) * q.h + y) * q.w + xx) * q.c +
                                           g * cg + c]
                                       : 0.0f;
                                acc = std::fmaf(
                                    xv, k5[(((e * q.kh + a) * q.kw + b) * cg + c) * q.f + o],
                                    acc);
                            }
                want[i * q.f + o] = acc;
            }
        }
        const auto refused = [&](const fl::Conv3dShape& shape) {
            try {
                fl::conv3d_forward(x.data(), shape, w, want.data(), nullptr);
            } catch (const std::invalid_argument&) {
                return true;
            }
            return false;
        };
        if (w.algo() != fl::ConvAlgo::indirect) {  // NEON: no indirect kernel, refused
            FLT_CHECK(refused(s));
            continue;
        }
        for (int threads : {1, 3}) {
            const int saved = fl::num_threads();
            fl::set_num_threads(threads);
            std::vector<float> got(want.size(), -7.0f);
            fl::conv3d_forward(x.data(), s, w, got.data(), nullptr);
            fl::set_num_threads(saved);
            FLT_CHECK_MSG(std::memcmp(got.data(), want.data(), want.size() * 4) == 0,
                          "conv3d case n %lld d %lld c %lld f %lld, %d threads",
                          (long long)q.n, (long long)q.d, (long long)q.c, (long long)q.f,
                          threads);
        }
        // Refused: a kernel whose kd*cg no longer matches, an output whose index arithmetic
        // overflows int64, a stride of 0, a negative pad.
        fl::Conv3dShape bad[4] = {s, s, s, s};
        bad[0].kd += 1;
        bad[1].od = INT64_MAX / 2;
        bad[2].sh = 0;
        bad[3].pad_front = -1;
        for (const fl::Conv3dShape& b : bad) FLT_CHECK(refused(b));
    }
}

void register_conv2d_tests() {
    add_case("pixel_tiles", test_pixel_tiles);
    add_case("conv2d_matches_fma_chain", test_conv2d_matches_fma_chain);
    add_case("conv2d_small_gemm_blocking", test_conv2d_small_gemm_blocking);
    add_case("conv2d_plan", test_conv2d_plan);
    add_case("conv3d_in_place", test_conv3d_in_place);
    for (const DwIsa& g : dwconv_kernels_built()) {
        if (fltest::isa_supported(g.isa))
            add_case(std::string("dwconv_kernel_grid_") + fl::isa_name(g.isa),
                     [g] { test_dwconv_kernel_grid(g); });
    }
    for (const DwRowIsa& g : dwrow_kernels_built()) {
        if (fltest::isa_supported(g.isa))
            add_case(std::string("dwrow_kernel_grid_") + fl::isa_name(g.isa),
                     [g] { test_dwrow_kernel_grid(g); });
    }
}

}  // namespace fltest
