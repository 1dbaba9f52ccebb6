// Dense driver: y = act(x · W + b) with W (and b) pre-packed once per layer (fl::PackedB).
//
// x (M, K) row-major contiguous, y (M, N) row-major contiguous, W packed from a Keras kernel
// (K, N). The GEMM engine does the work: bias starts the accumulation chains, the activation
// runs on each finished row segment while it is hot in L1, and small batches take the
// small-M path (no packing of x, weights streamed once, split over N between threads).
#include <stdexcept>
#include <string>

#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"

namespace fl {

void dense_forward(const float* x, int64_t m, int64_t k, const PackedB& w, float* y, ActFn act) {
    if (k != w.k()) {
        throw std::invalid_argument("dense_forward: x has " + std::to_string(k) +
                                    " features, the packed kernel expects " +
                                    std::to_string(w.k()));
    }
    if (m <= 0 || w.n() == 0) return;
    gemm_packed(x, m, k, w, y, w.n(), Epilogue{act});
}

}  // namespace fl
