// The memory of the core's large float32 outputs (bindings.h, new_f32_shape): malloc'd blocks,
// and the few most recently freed ones kept for the next outputs of about their size.
//
// Why: a model's layers allocate their outputs one after another; each is written once, read
// by the next layer or two, and freed (models/shape_plan.py drops it after its last reader).
// The block malloc hands back for the next output of a size is often one that has not been
// touched for a whole forward pass, its lines evicted from L3 by the weights and activations
// streamed since, so that every store of the kernel waits for a line from DRAM
// (write-allocate). The block freed most recently was read a layer or two ago: still cached.
// Measured in docs/performance.md §12.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <mutex>

#include "bindings.h"

namespace fl {
namespace py_bindings {
namespace {

struct Block {
    void* raw;
    size_t bytes;
};

// Up to kMaxBlocks blocks and max_bytes in all, the most recently freed last; a block serves
// a request of at least half its size (so an array holds at most twice the memory it needs).
// 128 MiB by default: a block larger than the limit is freed at once, and the next output of
// its size is a fresh mmap whose every page faults on first touch, about 1 us per 4 KiB page
// on the development VMs (a 32 MiB output: ~9 ms of page faults against ~1.6 ms to write it).
// With 32 MiB, the (64, 128, 1024) output of a transformer's FFN never stayed (docs/
// performance.md §12 item 10).
constexpr int kMaxBlocks = 16;
constexpr size_t kDefaultMaxBytes = size_t{128} << 20;

// One block larger than the limit is kept apart, the one freed last, while the limit is not
// 0 (a language model's logits, 1024 x 50257 floats = 206 MB, allocated by every call: each
// fresh mapping page-faulted 87 ms of a 580 ms call on the development VM; kept, the GEMM
// behind them ran 1.15-1.2x faster, docs/performance.md §13). So what is kept when idle is
// the limit plus the largest recent output, memory the process held a moment before.
struct Cache {
    std::mutex mu;
    Block blocks[kMaxBlocks];
    int count = 0;
    size_t bytes = 0;
    size_t max_bytes = kDefaultMaxBytes;
    Block big{nullptr, 0};
};

Cache& cache() {
    static Cache* c = new Cache();  // never destroyed: arrays may be freed at interpreter exit
    return *c;
}

// Removes block i (the lock held).
Block remove_at(Cache& c, int i) {
    const Block b = c.blocks[i];
    for (int j = i; j + 1 < c.count; ++j) c.blocks[j] = c.blocks[j + 1];
    --c.count;
    c.bytes -= b.bytes;
    return b;
}

}  // namespace

void* output_block_take(size_t bytes, size_t* got) {
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mu);
        for (int i = c.count - 1; i >= 0; --i) {
            if (c.blocks[i].bytes >= bytes && c.blocks[i].bytes / 2 <= bytes) {
                const Block b = remove_at(c, i);
                *got = b.bytes;
                return b.raw;
            }
        }
        if (c.big.raw != nullptr && c.big.bytes >= bytes && c.big.bytes / 2 <= bytes) {
            const Block b = c.big;
            c.big = Block{nullptr, 0};
            *got = b.bytes;
            return b.raw;
        }
    }
    *got = bytes;
    return std::malloc(bytes);
}

void output_block_give(void* raw) {
    size_t bytes;
    std::memcpy(&bytes, raw, sizeof bytes);
    Cache& c = cache();
    void* evicted[kMaxBlocks + 2];
    int n = 0;
    {
        std::lock_guard<std::mutex> lock(c.mu);
        if (bytes > c.max_bytes) {
            if (c.max_bytes == 0) {
                evicted[n++] = raw;
            } else {  // the one oversized block kept: this one, the last freed
                if (c.big.raw != nullptr) evicted[n++] = c.big.raw;
                c.big = Block{raw, bytes};
            }
        } else {
            while (c.count == kMaxBlocks || (c.count > 0 && c.bytes + bytes > c.max_bytes))
                evicted[n++] = remove_at(c, 0).raw;  // the oldest
            c.blocks[c.count++] = Block{raw, bytes};
            c.bytes += bytes;
        }
    }
    for (int i = 0; i < n; ++i) std::free(evicted[i]);
}

size_t output_cache_limit(size_t max_bytes, size_t* held) {
    Cache& c = cache();
    void* evicted[kMaxBlocks + 1];
    int n = 0;
    size_t before;
    {
        std::lock_guard<std::mutex> lock(c.mu);
        before = c.max_bytes;
        if (max_bytes != SIZE_MAX) c.max_bytes = max_bytes;
        while (c.count > 0 && c.bytes > c.max_bytes) evicted[n++] = remove_at(c, 0).raw;
        if (c.max_bytes == 0 && c.big.raw != nullptr) {
            evicted[n++] = c.big.raw;
            c.big = Block{nullptr, 0};
        }
        *held = c.bytes + c.big.bytes;
    }
    for (int i = 0; i < n; ++i) std::free(evicted[i]);
    return before;
}

size_t output_page_offset() {
    // Multiples of 512 bytes, at least 512 from NumPy's 16, each at least 512 from the next
    // (the first comes after the last).
    static constexpr size_t kOffsets[] = {1024, 2560, 512, 3072, 1536, 3584, 2048};
    static std::atomic<unsigned> next{0};
    return kOffsets[next.fetch_add(1, std::memory_order_relaxed) % std::size(kOffsets)];
}

}  // namespace py_bindings
}  // namespace fl
