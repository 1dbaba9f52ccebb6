// Softmax driver: threads over rows, the row kernel of the active ISA does the math.
#include <algorithm>
#include <cstdint>

#include "../runtime/dispatch.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

// A task should carry at least this many elements: below that, waking a worker costs more than
// it saves (softmax runs at roughly 1-2 ns per element on one core).
constexpr int64_t kMinElementsPerTask = 16384;

struct SoftmaxArgs {
    const float* x;
    float* y;
    int64_t n;
    void (*rows_kernel)(const float*, float*, int64_t, int64_t, int64_t, int64_t);
};

void softmax_task(void* ctx, int64_t row_begin, int64_t row_end) {
    const SoftmaxArgs* a = static_cast<const SoftmaxArgs*>(ctx);
    a->rows_kernel(a->x + row_begin * a->n, a->y + row_begin * a->n, row_end - row_begin, a->n,
                   a->n, a->n);
}

}  // namespace

// x (rows, n) row-major -> y (rows, n) row-major; each row is independent, so rows are split
// across threads and the result does not depend on the thread count.
void softmax_lastdim(const float* x, float* y, int64_t rows, int64_t n) {
    if (rows <= 0 || n <= 0) return;
    SoftmaxArgs args{x, y, n, kernels().softmax_rows};
    const int64_t min_rows = std::max<int64_t>(1, (kMinElementsPerTask + n - 1) / n);
    parallel_for(rows, min_rows, softmax_task, &args);
}

// Keras Softmax layer with a mask: masked logits become -1e9, the row is normalized, and masked
// entries are then set to 0 (a fully masked row is all zeros). keep (rows, n), nonzero = keep.
void softmax_masked_lastdim(const float* x, const uint8_t* keep, float* y, int64_t rows,
                            int64_t n) {
    if (rows <= 0 || n <= 0) return;
    const KernelTable& kt = kernels();
    const int64_t min_rows = std::max<int64_t>(1, (kMinElementsPerTask + n - 1) / n);
    parallel_for(rows, min_rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            float* yr = y + r * n;
            const uint8_t* kr = keep + r * n;
            if (yr != x + r * n) std::copy(x + r * n, x + (r + 1) * n, yr);
            const float mx = kt.score_prep(yr, n, 1.0f, kr, n, -1e9f, 0);
            const float inv = 1.0f / kt.exp_shift_sum(yr, n, 1.0f, mx);
            for (int64_t j = 0; j < n; ++j) yr[j] = kr[j] ? yr[j] * inv : 0.0f;
        }
    });
}

}  // namespace fl
