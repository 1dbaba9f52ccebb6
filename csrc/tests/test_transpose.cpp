// Tests of transpose_batched (csrc/ops/transpose.cpp), the NCHW <-> NHWC copies at a converted
// model's edges: every value moved bit for bit (NaN payloads too) for sizes around its 8 x 8
// tile and 64-row band, 1 and 2 threads, nothing written outside dst.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"
#include "test_framework.h"

namespace {

std::vector<float> randn(std::mt19937& g, int64_t n) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(g);
    return v;
}

// transpose_batched against the naive loop, bit for bit (NaN payloads included), for sizes
// around the 8 x 8 tile and the 64-row band, 1 and 2 threads; the values around dst untouched.
void test_transpose_batched() {
    std::mt19937 g(11);
    const int saved = fl::num_threads();
    for (int threads : {1, 2}) {
        fl::set_num_threads(threads);
        for (int64_t batch : {1, 3})
            for (int64_t rows : {1, 7, 8, 9, 63, 64, 65, 130})
                for (int64_t cols : {1, 3, 8, 9, 17, 64}) {
                    std::vector<float> src = randn(g, batch * rows * cols);
                    src[0] = std::nanf("7");
                    const float sentinel = -3.5f;
                    std::vector<float> dst(static_cast<size_t>(batch * rows * cols + 2),
                                           sentinel);
                    fl::transpose_batched(src.data(), dst.data() + 1, batch, rows, cols);
                    FLT_CHECK(dst.front() == sentinel && dst.back() == sentinel);
                    int bad = 0;
                    for (int64_t b = 0; b < batch && bad < 3; ++b)
                        for (int64_t r = 0; r < rows; ++r)
                            for (int64_t c = 0; c < cols; ++c) {
                                const float want = src[(b * rows + r) * cols + c];
                                const float got = dst[1 + (b * cols + c) * rows + r];
                                if (std::memcmp(&want, &got, sizeof(float)) != 0 && bad++ < 3)
                                    FLT_CHECK_MSG(false, "b %lld r %lld c %lld (%lld x %lld)",
                                                  static_cast<long long>(b),
                                                  static_cast<long long>(r),
                                                  static_cast<long long>(c),
                                                  static_cast<long long>(rows),
                                                  static_cast<long long>(cols));
                            }
                }
    }
    fl::set_num_threads(saved);
}

}  // namespace

namespace fltest {

void register_transpose_tests() { add_case("transpose_batched", test_transpose_batched); }

}  // namespace fltest
