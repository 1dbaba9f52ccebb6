// Scratch storage that AddressSanitizer can check (internal to the core and its C++ tests).
//
// ASan sees allocations, not how a driver uses them. Two kinds of scratch hide overruns from it:
//   - one allocation cut into several parts (a thread's score tile, running max and sum, ...):
//     a kernel that runs past the end of one part lands in the next one;
//   - a buffer grown on demand and kept (the per-thread A-packing buffer of the GEMM): a call
//     that asks for fewer floats than the capacity can run past what it asked for.
// ScratchParts and GrowingScratch tell ASan about both. In an ASan build (tools/sanitize.sh)
// each part is followed by a poisoned red zone of kScratchRedzone floats, the floats between a
// part's end and the next part are poisoned as well, and a grown buffer's floats beyond the
// current request are poisoned until a later request covers them: such an access is then
// reported where it happens. In any other build kScratchRedzone is 0 and nothing is poisoned,
// so the layout (and every result) is the one the drivers always had.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fastlayers/gemm.h"  // AlignedFloats, alloc_aligned_floats

#if defined(__SANITIZE_ADDRESS__)
#define FL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FL_ASAN 1
#endif
#endif
#if defined(FL_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace fl {

#if defined(FL_ASAN)
constexpr int64_t kScratchRedzone = 16;  // floats (64 bytes) after each part
#else
constexpr int64_t kScratchRedzone = 0;
#endif

// Marks n floats at p unusable / usable again (no-ops outside ASan builds).
inline void scratch_poison(const float* p, int64_t n) {
#if defined(FL_ASAN)
    if (p && n > 0) ASAN_POISON_MEMORY_REGION(p, static_cast<size_t>(n) * sizeof(float));
#else
    (void)p;
    (void)n;
#endif
}
inline void scratch_unpoison(const float* p, int64_t n) {
#if defined(FL_ASAN)
    if (p && n > 0) ASAN_UNPOISON_MEMORY_REGION(p, static_cast<size_t>(n) * sizeof(float));
#else
    (void)p;
    (void)n;
#endif
}

// N parts of sizes[i] floats (a size may be 0) in one uninitialized allocation, each part
// 64-byte aligned (parts start at multiples of 16 floats).
template <size_t N>
class ScratchParts {
  public:
    explicit ScratchParts(const int64_t (&sizes)[N]) {
        for (size_t i = 0; i < N; ++i) total_ += stride(sizes[i]);
        buf_ = alloc_aligned_floats(total_);
        float* p = buf_.get();
        for (size_t i = 0; i < N; ++i) {
            part_[i] = p;
            scratch_poison(p + sizes[i], stride(sizes[i]) - sizes[i]);
            p += stride(sizes[i]);
        }
    }
    ~ScratchParts() { scratch_unpoison(buf_.get(), total_); }  // freed as it was allocated
    ScratchParts(const ScratchParts&) = delete;
    ScratchParts& operator=(const ScratchParts&) = delete;

    float* operator[](size_t i) const { return part_[i]; }
    // Floats allocated in all (parts, padding and red zones).
    int64_t total() const { return total_; }

  private:
    static int64_t stride(int64_t n) { return (n + kScratchRedzone + 15) / 16 * 16; }

    AlignedFloats buf_;
    float* part_[N] = {};
    int64_t total_ = 0;
};

// A buffer kept between calls and grown when a call needs more (e.g. thread_local, one per
// thread). get(n) returns storage for n floats; in an ASan build the floats beyond n stay
// poisoned until a call asks for them.
class GrowingScratch {
  public:
    float* get(int64_t n) {
        if (n > cap_) {
            scratch_unpoison(buf_.get(), cap_);
            buf_ = alloc_aligned_floats(n);
            cap_ = n;
        }
        scratch_unpoison(buf_.get(), n);
        scratch_poison(buf_.get() + n, cap_ - n);
        return buf_.get();
    }
    ~GrowingScratch() { scratch_unpoison(buf_.get(), cap_); }

  private:
    AlignedFloats buf_;
    int64_t cap_ = 0;
};

}  // namespace fl
