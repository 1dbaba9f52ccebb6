// Softmax driver: threads over rows, the row kernel of the active ISA does the math.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

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
    bool limits;  // special_row for the rows the kernel made NaN, else they stay NaN
};

// The ±inf policy (docs/semantics.md §15) for a row the kernel made NaN (its sum was NaN: the
// row holds a NaN, a +inf, or only -inf): a row holding a kept NaN stays NaN; otherwise the
// entries at the largest value m = ±inf share the weight equally (the limit of the softmax),
// the others get 0. keep (nullptr: all kept) marks the entries that take part; y of the others
// is 0. Plain scalar code: the same bits on every ISA.
void special_row(const float* x, const uint8_t* keep, float* y, int64_t n) {
    float m = -std::numeric_limits<float>::infinity();
    bool nan = false;
    for (int64_t j = 0; j < n; ++j) {
        if (keep && keep[j] == 0) continue;
        if (x[j] != x[j]) nan = true;
        m = x[j] > m ? x[j] : m;
    }
    if (nan) {  // a kept NaN: the row is NaN (masked entries 0)
        for (int64_t j = 0; j < n; ++j)
            y[j] = keep == nullptr || keep[j] != 0 ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
        return;
    }
    float count = 0.0f;
    for (int64_t j = 0; j < n; ++j)
        if ((keep == nullptr || keep[j] != 0) && x[j] == m) count += 1.0f;
    if (count == 0.0f) return;  // no kept entry (cannot happen: a fully masked row is finite)
    const float share = 1.0f / count;
    for (int64_t j = 0; j < n; ++j)
        y[j] = (keep == nullptr || keep[j] != 0) && x[j] == m ? share : 0.0f;
}

void softmax_task(void* ctx, int64_t row_begin, int64_t row_end) {
    const SoftmaxArgs* a = static_cast<const SoftmaxArgs*>(ctx);
    const int64_t n = a->n;
    if (n == 1) {
        // A row of one: exp(x - x) / exp(x - x) is exactly 1 (also the limit at +-inf, under
        // the policy of special_row), NaN for NaN - what the row kernel gives, at a tenth of
        // the cost (attention over a single key: the seed article's model).
        const float nan = std::numeric_limits<float>::quiet_NaN();
        for (int64_t r = row_begin; r < row_end; ++r) {
            const float v = a->x[r];
            a->y[r] = v != v || (!a->limits && (v == std::numeric_limits<float>::infinity() ||
                                                v == -std::numeric_limits<float>::infinity()))
                          ? nan
                          : 1.0f;
        }
        return;
    }
    if (a->x != a->y) {
        a->rows_kernel(a->x + row_begin * n, a->y + row_begin * n, row_end - row_begin, n, n, n);
        // A NaN sum makes the whole row NaN, so y[0] tells (one compare per row).
        if (!a->limits) return;  // (PyTorch's rule: such a row is NaN)
        for (int64_t r = row_begin; r < row_end; ++r)
            if (a->y[r * n] != a->y[r * n]) special_row(a->x + r * n, nullptr, a->y + r * n, n);
        return;
    }
    // In place: each row goes through a copy, so x is still there for special_row.
    std::vector<float> row(static_cast<size_t>(n));
    for (int64_t r = row_begin; r < row_end; ++r) {
        float* yr = a->y + r * n;
        a->rows_kernel(yr, row.data(), 1, n, n, n);
        if (a->limits && row[0] != row[0]) special_row(yr, nullptr, row.data(), n);
        std::copy(row.begin(), row.end(), yr);
    }
}

}  // namespace

// x (rows, n) row-major -> y (rows, n) row-major; each row is independent, so rows are split
// across threads and the result does not depend on the thread count.
void softmax_lastdim(const float* x, float* y, int64_t rows, int64_t n, bool limits) {
    if (rows <= 0 || n <= 0) return;
    SoftmaxArgs args{x, y, n, kernels().softmax_rows, limits};
    const int64_t min_rows = std::max<int64_t>(1, (kMinElementsPerTask + n - 1) / n);
    // The callable overload: the in-place path allocates a row buffer per task, and a
    // std::bad_alloc thrown on a pool worker must reach the caller, not std::terminate.
    parallel_for(rows, min_rows, [&](int64_t r0, int64_t r1) { softmax_task(&args, r0, r1); });
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
            if (mx == std::numeric_limits<float>::infinity() ||
                mx == -std::numeric_limits<float>::infinity()) {  // the limit at ±inf
                special_row(yr, kr, yr, n);
                continue;
            }
            const float inv = 1.0f / kt.exp_shift_sum(yr, n, 1.0f, mx);
            for (int64_t j = 0; j < n; ++j) yr[j] = kr[j] ? yr[j] * inv : 0.0f;
        }
    });
}

}  // namespace fl
