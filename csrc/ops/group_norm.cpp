// GroupNormalization over NHWC data (Keras GroupNormalization; PyTorch GroupNorm on
// channels-last tensors): the statistics of each (sample, group of consecutive channels) over
// all its pixels. Plain C++ compiled once with the baseline flags and -ffp-contract=off, as
// layer_norm.cpp: every ISA runs the same instructions and gives the same bits.
//
// Three passes over each sample, each split into fixed chunks of kChunk pixels that the
// threads share:
//   1. per chunk, per channel: the sum of its pixels in double, in pixel order;
//   2. per sample, per group: the chunks' sums added in chunk order, then the group's channels
//      in channel order -> mean (in double, then rounded to float32: a constant group's mean
//      is that constant; with a large offset the mean is off by at most half a float32 step
//      of it, which x - mean keeps); the same for the squares, in double, of (x - mean) -> the
//      biased variance (two passes over x, as for LayerNormalization);
//   3. y = (x - mean) * (inv * gamma[c]) + beta[c], inv = 1 / sqrt(var + epsilon).
// The chunks do not depend on the thread count, and their sums are merged in a fixed order,
// so the bits do not either. Extra memory: samples x chunks x C doubles of partial sums.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

constexpr int64_t kChunk = 256;  // pixels per work item

// partial[item * c + ch]: over the chunk's pixels, in pixel order, the double sum of
// x[p, ch] (center nullptr) or of (x[p, ch] - center[s * c + ch])^2 (the difference in float,
// its square in double).
void chunk_sums(const float* x, int64_t n, int64_t pixels, int64_t c, int64_t chunks,
                const float* center, double* partial) {
    const int64_t min_items = std::max<int64_t>(1, 16384 / (kChunk * c));
    parallel_for(n * chunks, min_items, [=](int64_t i0, int64_t i1) {
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t s = item / chunks;
            const int64_t p0 = (item % chunks) * kChunk;
            const int64_t p1 = std::min(pixels, p0 + kChunk);
            double* acc = partial + item * c;
            std::fill(acc, acc + c, 0.0);
            for (int64_t p = p0; p < p1; ++p) {
                const float* row = x + (s * pixels + p) * c;
                if (center == nullptr) {
                    for (int64_t ch = 0; ch < c; ++ch) acc[ch] += row[ch];
                } else {
                    const float* mc = center + s * c;
                    for (int64_t ch = 0; ch < c; ++ch) {
                        const double d = row[ch] - mc[ch];
                        acc[ch] += d * d;
                    }
                }
            }
        }
    });
}

// Per sample and group: the partial sums of its channels over all chunks (in chunk order,
// in double), then over its channels, / count; written once per channel of the group:
// out[s * c + ch] (each channel gets its group's value).
void group_values(const double* partial, int64_t n, int64_t c, int64_t groups, int64_t chunks,
                  double count, float* out) {
    const int64_t size = c / groups;
    std::vector<double> per_channel(static_cast<size_t>(c));
    for (int64_t s = 0; s < n; ++s) {
        std::fill(per_channel.begin(), per_channel.end(), 0.0);
        for (int64_t k = 0; k < chunks; ++k) {
            const double* row = partial + (s * chunks + k) * c;
            for (int64_t ch = 0; ch < c; ++ch) per_channel[static_cast<size_t>(ch)] += row[ch];
        }
        for (int64_t g = 0; g < groups; ++g) {
            double sum = 0.0;
            for (int64_t ch = g * size; ch < (g + 1) * size; ++ch)
                sum += per_channel[static_cast<size_t>(ch)];
            std::fill(out + s * c + g * size, out + s * c + (g + 1) * size,
                      static_cast<float>(sum / count));
        }
    }
}

}  // namespace

void group_norm_nhwc(const float* x, const float* gamma, const float* beta, float* y,
                     int64_t n, int64_t pixels, int64_t c, int64_t groups, float epsilon) {
    if (n <= 0 || pixels <= 0 || c <= 0) return;
    const int64_t chunks = (pixels + kChunk - 1) / kChunk;
    const double count = static_cast<double>(pixels) * static_cast<double>(c / groups);
    std::vector<double> partial(static_cast<size_t>(n * chunks * c));
    std::vector<float> mean(static_cast<size_t>(n * c)), scale(mean.size());
    chunk_sums(x, n, pixels, c, chunks, nullptr, partial.data());
    group_values(partial.data(), n, c, groups, chunks, count, mean.data());
    chunk_sums(x, n, pixels, c, chunks, mean.data(), partial.data());
    group_values(partial.data(), n, c, groups, chunks, count, scale.data());  // the variance
    for (int64_t s = 0; s < n; ++s) {
        for (int64_t ch = 0; ch < c; ++ch) {
            float& v = scale[static_cast<size_t>(s * c + ch)];
            const float inv = 1.0f / std::sqrt(v + epsilon);
            v = gamma ? inv * gamma[ch] : inv;
        }
    }
    const float* mc = mean.data();
    const float* sc = scale.data();
    const int64_t min_items = std::max<int64_t>(1, 16384 / (kChunk * c));
    parallel_for(n * chunks, min_items, [=](int64_t i0, int64_t i1) {
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t s = item / chunks;
            const int64_t p0 = (item % chunks) * kChunk;
            const int64_t p1 = std::min(pixels, p0 + kChunk);
            for (int64_t p = p0; p < p1; ++p) {
                const float* row = x + (s * pixels + p) * c;
                float* out = y + (s * pixels + p) * c;
                for (int64_t ch = 0; ch < c; ++ch) {
                    float v = (row[ch] - mc[s * c + ch]) * sc[s * c + ch];
                    if (beta) v = v + beta[ch];
                    out[ch] = v;
                }
            }
        }
    });
}

}  // namespace fl
