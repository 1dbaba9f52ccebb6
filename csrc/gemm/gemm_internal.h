// Internal to the GEMM engine and its tests: the blocking parameters.
//
// Tests shrink them to hit every blocking boundary with small matrices, and benchmarks sweep
// them; nothing else should touch them. Not synchronized: change them only while no GEMM runs.
#pragma once

#include <cstdint>

namespace fl {
namespace gemm_detail {

struct GemmConfig {
    int64_t kc;                 // K block (floats of a panel row block kept hot per pass)
    int64_t nc;                 // N block (multiple of 16): kc x nc of B stays in L2
    int64_t mc;                 // M block (rounded to the kernel's row block, 6 or 14)
    bool pack_a;                // pack A blocks that are reused over several N blocks
    int64_t min_macs_per_task;  // below this much work per thread, fewer threads
};

GemmConfig& config();
GemmConfig default_config();

}  // namespace gemm_detail
}  // namespace fl
