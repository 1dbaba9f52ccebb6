// GroupNormalization over NHWC data (Keras GroupNormalization; PyTorch GroupNorm on
// channels-last tensors): the statistics of each (sample, group of consecutive channels) over
// all its pixels. Plain C++ compiled once with the baseline flags and -ffp-contract=off, as
// layer_norm.cpp: every ISA runs the same instructions and gives the same bits.
//
// Three passes over each sample, each split into fixed chunks of kChunk pixels that the
// threads share:
//   1. per chunk, per channel: the sum of its pixels in double, in pixel order;
//   2. per sample, per group: the chunks' sums added in chunk order, then the group's channels
//      in channel order -> the mean in double, held as two floats hi + lo (hi its float32
//      rounding): (x - hi) - lo is x - mean rounded once, since x - hi is exact for the x
//      within a factor 2 of hi, so a large offset costs no accuracy (a constant group gives
//      0); the same for the squares, in double, of those differences -> the biased variance
//      (two passes over x, as for LayerNormalization, layer_norm.cpp);
//   3. y = ((x - hi) - lo) * (inv * gamma[c]) + beta[c], inv = 1 / sqrt(var + epsilon) in
//      double (a float32 variance overflowed for deviations above ~1.8e19), then float32.
// The chunks do not depend on the thread count, and their sums are merged in a fixed order,
// so the bits do not either. Extra memory: samples x chunks x C doubles of partial sums.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

constexpr int64_t kChunk = 256;  // pixels per work item

// partial[item * c + ch]: over the chunk's pixels, in pixel order, the double sum of
// x[p, ch] (hi nullptr) or of ((x[p, ch] - hi[s * c + ch]) - lo[s * c + ch])^2 (the
// difference in float, its square in double).
void chunk_sums(const float* x, int64_t n, int64_t pixels, int64_t c, int64_t chunks,
                const float* hi, const float* lo, double* partial) {
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
                if (hi == nullptr) {
                    for (int64_t ch = 0; ch < c; ++ch) acc[ch] += row[ch];
                } else {
                    const float* mh = hi + s * c;
                    const float* ml = lo + s * c;
                    for (int64_t ch = 0; ch < c; ++ch) {
                        const double d = (row[ch] - mh[ch]) - ml[ch];
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
                  double count, double* out) {
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
            std::fill(out + s * c + g * size, out + s * c + (g + 1) * size, sum / count);
        }
    }
}

}  // namespace

void group_norm_nhwc(const float* x, const float* gamma, const float* beta, float* y,
                     int64_t n, int64_t pixels, int64_t c, int64_t groups, double epsilon) {
    if (n <= 0 || pixels <= 0 || c <= 0) return;
    const int64_t chunks = (pixels + kChunk - 1) / kChunk;
    const double count = static_cast<double>(pixels) * static_cast<double>(c / groups);
    std::vector<double> partial(static_cast<size_t>(n * chunks * c));
    std::vector<double> stat(static_cast<size_t>(n * c));  // the mean, then the variance
    std::vector<float> hi(stat.size()), lo(stat.size()), scale(stat.size());
    chunk_sums(x, n, pixels, c, chunks, nullptr, nullptr, partial.data());
    group_values(partial.data(), n, c, groups, chunks, count, stat.data());
    for (size_t i = 0; i < stat.size(); ++i) {
        hi[i] = static_cast<float>(stat[i]);
        lo[i] = static_cast<float>(stat[i] - static_cast<double>(hi[i]));
    }
    chunk_sums(x, n, pixels, c, chunks, hi.data(), lo.data(), partial.data());
    group_values(partial.data(), n, c, groups, chunks, count, stat.data());
    // A sample with an inv, or an inv * gamma[c], below the smallest normal float (deviations
    // near float32's max; with a small gamma from about 1e34 on) multiplies in double: as a
    // float32 denormal, FTZ would flush it to zero and the output would be beta
    // (layer_norm.cpp).
    std::vector<double> inv_d(stat.size());
    std::vector<char> wide(static_cast<size_t>(n), 0);
    for (int64_t s = 0; s < n; ++s) {
        for (int64_t ch = 0; ch < c; ++ch) {
            const size_t i = static_cast<size_t>(s * c + ch);
            inv_d[i] = 1.0 / std::sqrt(stat[i] + epsilon);
            const float inv = static_cast<float>(inv_d[i]);
            const double factor =
                std::fabs(static_cast<double>(inv) * (gamma ? double{gamma[ch]} : 1.0));
            const double smallest = static_cast<double>(std::numeric_limits<float>::min());
            if (inv_d[i] < smallest || (factor != 0.0 && factor < smallest))
                wide[static_cast<size_t>(s)] = 1;
            scale[i] = gamma ? inv * gamma[ch] : inv;
        }
    }
    const float* mh = hi.data();
    const float* ml = lo.data();
    const float* sc = scale.data();
    const double* id = inv_d.data();
    const char* wd = wide.data();
    const int64_t min_items = std::max<int64_t>(1, 16384 / (kChunk * c));
    parallel_for(n * chunks, min_items, [=](int64_t i0, int64_t i1) {
        for (int64_t item = i0; item < i1; ++item) {
            const int64_t s = item / chunks;
            const int64_t p0 = (item % chunks) * kChunk;
            const int64_t p1 = std::min(pixels, p0 + kChunk);
            for (int64_t p = p0; p < p1; ++p) {
                const float* row = x + (s * pixels + p) * c;
                float* out = y + (s * pixels + p) * c;
                if (wd[s]) {
                    for (int64_t ch = 0; ch < c; ++ch) {
                        const double f = gamma ? id[s * c + ch] * double{gamma[ch]}
                                               : id[s * c + ch];
                        const float d = (row[ch] - mh[s * c + ch]) - ml[s * c + ch];
                        float v = static_cast<float>(static_cast<double>(d) * f);
                        if (beta) v = v + beta[ch];
                        out[ch] = v;
                    }
                    continue;
                }
                for (int64_t ch = 0; ch < c; ++ch) {
                    float v = ((row[ch] - mh[s * c + ch]) - ml[s * c + ch]) * sc[s * c + ch];
                    if (beta) v = v + beta[ch];
                    out[ch] = v;
                }
            }
        }
    });
}

}  // namespace fl
