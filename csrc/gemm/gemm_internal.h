// Internal to the GEMM engine and its tests: the blocking parameters.
//
// Tests shrink them to hit every blocking boundary with small matrices, and benchmarks sweep
// them; nothing else should touch them. Not synchronized: change them only while no GEMM runs.
#pragma once

#include <cstdint>

namespace fl {
namespace gemm_detail {

struct GemmConfig {
    int64_t kc;                 // K block, at most (floats of a panel row block kept hot per pass)
    int64_t nc;                 // N block, at most (multiple of 16)
    int64_t b_block_floats;     // the B block KC' x NC' that stays in L2 (see n_block)
    int64_t mc;                 // M block (rounded to the kernel's row block, 6 or 14)
    bool pack_a;                // pack A blocks that are reused over more than nc columns
    int64_t b_stream_floats;    // a packed B larger than this is walked in column slabs, K
                                // blocks outside M blocks (0: never; see run_block)
    int64_t slab_floats;        // such a slab's K block x columns (rounded to 16 columns)
    int64_t min_macs_per_task;  // below this much work per thread, fewer threads
};

GemmConfig& config();
// The blocking for a per-core L2 of l2 bytes (0: unknown) and kernels of mr-row register blocks
// (KernelTable::gemm_mr); default_config() asks it for this machine's.
GemmConfig config_for(int64_t l2, int64_t mr);
GemmConfig default_config();

// The configured N block in whole 16-column panels (at least one).
int64_t nc_columns(const GemmConfig& cfg);

// The N block of a product with inner size k: the widest multiple of 16 columns, at most
// cfg.nc (and at least 16), whose B block (min(k, kc) rows) fits in cfg.b_block_floats.
int64_t n_block(const GemmConfig& cfg, int64_t k);

}  // namespace gemm_detail
}  // namespace fl
