// Tests of the layer_norm driver (csrc/ops/layer_norm.cpp): close to a float64 reference for
// row lengths around the 32 sum lanes (1, 7, 31, 32, 33, 65, 100) and a large offset; the same
// bits for 1 and 2 threads, in place (x == y), and for a row alone or in a batch; without
// gamma/beta it is gamma = 1, beta = 0 exactly. The cross-ISA identity is checked from Python
// (tests/test_runtime.py::test_isas_give_identical_bits runs this driver under every ISA).
// Also the group_norm driver (csrc/ops/group_norm.cpp), the same kind of plain C++.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "test_framework.h"

namespace {

std::vector<float> randn(std::mt19937& g, int64_t n, float scale, float offset) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * d(g);
    return v;
}

void test_layer_norm_reference() {
    std::mt19937 g(7);
    const int64_t rows = 5;
    for (int64_t n : {1, 7, 31, 32, 33, 65, 100}) {
        for (float offset : {0.0f, 100.0f, 1e4f}) {
            const std::vector<float> x = randn(g, rows * n, 2.0f, offset);
            const std::vector<float> gamma = randn(g, n, 0.3f, 1.0f);
            const std::vector<float> beta = randn(g, n, 1.0f, 0.0f);
            std::vector<float> y(x.size());
            const float eps = 1e-5f;
            fl::layer_norm_lastdim(x.data(), gamma.data(), beta.data(), y.data(), rows, n, eps);
            for (int64_t r = 0; r < rows; ++r) {
                double mean = 0, var = 0;
                for (int64_t j = 0; j < n; ++j) mean += x[r * n + j];
                mean /= static_cast<double>(n);
                for (int64_t j = 0; j < n; ++j) {
                    const double d = x[r * n + j] - mean;
                    var += d * d;
                }
                var /= static_cast<double>(n);
                for (int64_t j = 0; j < n; ++j) {
                    const double want =
                        (x[r * n + j] - mean) / std::sqrt(var + eps) * gamma[j] + beta[j];
                    const double got = y[r * n + j];
                    // x - mean is rounded once (the mean as hi + lo floats), so the offset
                    // costs no accuracy
                    const double tol = 2e-5 * (1.0 + std::fabs(want));
                    FLT_CHECK_MSG(std::fabs(got - want) <= tol, "n=%lld offset=%g: %g vs %g",
                                  static_cast<long long>(n), offset, got, want);
                }
            }
        }
    }
}

void test_layer_norm_bitwise() {
    std::mt19937 g(8);
    const int64_t rows = 301, n = 257;
    const std::vector<float> x = randn(g, rows * n, 1.5f, 0.5f);
    const std::vector<float> gamma = randn(g, n, 0.3f, 1.0f);
    const std::vector<float> beta = randn(g, n, 1.0f, 0.0f);
    const int before = fl::num_threads();
    std::vector<float> one(x.size()), two(x.size()), inplace(x), alone(static_cast<size_t>(n));
    fl::set_num_threads(1);
    fl::layer_norm_lastdim(x.data(), gamma.data(), beta.data(), one.data(), rows, n, 1e-3f);
    fl::set_num_threads(2);
    fl::layer_norm_lastdim(x.data(), gamma.data(), beta.data(), two.data(), rows, n, 1e-3f);
    fl::layer_norm_lastdim(inplace.data(), gamma.data(), beta.data(), inplace.data(), rows, n,
                           1e-3f);
    fl::layer_norm_lastdim(x.data() + 200 * n, gamma.data(), beta.data(), alone.data(), 1, n,
                           1e-3f);
    fl::set_num_threads(before);
    int differ = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        differ += fltest::float_bits(one[i]) != fltest::float_bits(two[i]);
        differ += fltest::float_bits(one[i]) != fltest::float_bits(inplace[i]);
    }
    for (int64_t j = 0; j < n; ++j)
        differ += fltest::float_bits(alone[j]) != fltest::float_bits(one[200 * n + j]);
    FLT_CHECK_MSG(differ == 0, "%d values differ", differ);

    // No gamma / beta is exactly gamma = 1, beta = 0.
    const std::vector<float> ones(static_cast<size_t>(n), 1.0f), zeros(static_cast<size_t>(n));
    std::vector<float> plain(x.size()), unit(x.size());
    fl::layer_norm_lastdim(x.data(), nullptr, nullptr, plain.data(), rows, n, 1e-3f);
    fl::layer_norm_lastdim(x.data(), ones.data(), zeros.data(), unit.data(), rows, n, 1e-3f);
    differ = 0;
    for (size_t i = 0; i < x.size(); ++i)
        differ += fltest::float_bits(plain[i]) != fltest::float_bits(unit[i]);
    FLT_CHECK_MSG(differ == 0, "%d values differ without gamma/beta", differ);
    fl::layer_norm_lastdim(nullptr, nullptr, nullptr, nullptr, 0, n, 1e-3f);  // no-op
}

// group_norm_nhwc (csrc/ops/group_norm.cpp): close to a float64 reference around its 256-pixel
// chunks, with an offset mean, one and all channels per group; the same bits for 1, 2 and 3
// threads.
void test_group_norm_reference_and_threads() {
    std::mt19937 g(9);
    struct Case {
        int64_t n, pixels, c, groups;
    };
    // (the last case is large enough for the driver to split it over threads)
    for (const Case& k : {Case{2, 1, 6, 3}, Case{1, 255, 8, 2}, Case{3, 256, 5, 5},
                          Case{2, 257, 12, 1}, Case{1, 600, 7, 7}, Case{1, 2048, 32, 4}}) {
        const int64_t size = k.n * k.pixels * k.c;
        const std::vector<float> x = randn(g, size, 2.0f, 40.0f);
        const std::vector<float> gamma = randn(g, k.c, 0.3f, 1.0f);
        const std::vector<float> beta = randn(g, k.c, 1.0f, 0.0f);
        const int before = fl::num_threads();
        std::vector<std::vector<float>> ys;
        for (int threads : {1, 2, 3}) {
            fl::set_num_threads(threads);
            ys.emplace_back(static_cast<size_t>(size));
            fl::group_norm_nhwc(x.data(), gamma.data(), beta.data(), ys.back().data(), k.n,
                                k.pixels, k.c, k.groups, 1e-5f);
        }
        fl::set_num_threads(before);
        int differ = 0;
        for (int64_t i = 0; i < size; ++i)
            for (size_t t = 1; t < ys.size(); ++t)
                differ += fltest::float_bits(ys[0][i]) != fltest::float_bits(ys[t][i]);
        FLT_CHECK_MSG(differ == 0, "%d values differ between thread counts", differ);
        const int64_t per = k.c / k.groups;
        for (int64_t s = 0; s < k.n; ++s) {
            for (int64_t grp = 0; grp < k.groups; ++grp) {
                double mean = 0, var = 0;
                const double count = static_cast<double>(k.pixels * per);
                for (int64_t p = 0; p < k.pixels; ++p)
                    for (int64_t ch = grp * per; ch < (grp + 1) * per; ++ch)
                        mean += x[(s * k.pixels + p) * k.c + ch];
                mean /= count;
                for (int64_t p = 0; p < k.pixels; ++p)
                    for (int64_t ch = grp * per; ch < (grp + 1) * per; ++ch) {
                        const double d = x[(s * k.pixels + p) * k.c + ch] - mean;
                        var += d * d;
                    }
                var /= count;
                for (int64_t p = 0; p < k.pixels; ++p)
                    for (int64_t ch = grp * per; ch < (grp + 1) * per; ++ch) {
                        const int64_t i = (s * k.pixels + p) * k.c + ch;
                        const double want =
                            (x[i] - mean) / std::sqrt(var + 1e-5) * gamma[ch] + beta[ch];
                        // (float32 output: a few ulps of it, and of gamma times the
                        // normalized value, which beta may cancel)
                        const double tol =
                            4e-6 * (1.0 + std::fabs(want) + 4.0 * std::fabs(gamma[ch]));
                        FLT_CHECK_MSG(std::fabs(ys[0][i] - want) <= tol, "%g vs %g",
                                      static_cast<double>(ys[0][i]), want);
                    }
            }
        }
    }
}

}  // namespace

namespace fltest {

void register_layer_norm_tests() {
    add_case("layer_norm_reference", test_layer_norm_reference);
    add_case("layer_norm_bitwise", test_layer_norm_bitwise);
    add_case("group_norm_reference_and_threads", test_group_norm_reference_and_threads);
}

}  // namespace fltest
