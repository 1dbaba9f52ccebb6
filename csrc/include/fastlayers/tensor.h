// A non-owning view of a float32 tensor, for drivers that need more than (pointer, sizes).
//
// Shapes and strides are in elements (not bytes), outermost axis first, like NumPy's after
// dividing its byte strides by sizeof(float). The view never frees `data`.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace fl {

struct TensorView {
    float* data = nullptr;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;

    int64_t ndim() const { return static_cast<int64_t>(shape.size()); }

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t s : shape) n *= s;
        return n;
    }

    // Row-major contiguous: strides are the suffix products of the shape (size-1 axes and
    // empty tensors are contiguous whatever their strides say, as in NumPy).
    bool is_contiguous() const {
        if (numel() == 0) return true;
        int64_t expected = 1;
        for (int64_t i = ndim() - 1; i >= 0; --i) {
            if (shape[i] != 1 && strides[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }
};

// A row-major contiguous view of `data` with the given shape.
inline TensorView contiguous_view(float* data, std::vector<int64_t> shape) {
    TensorView v;
    v.data = data;
    v.strides.assign(shape.size(), 1);
    for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
        v.strides[i] = v.strides[i + 1] * shape[i + 1];
    v.shape = std::move(shape);
    return v;
}

}  // namespace fl
