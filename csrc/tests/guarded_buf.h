// Guarded<T> and GuardedBuf, shared by the C++ tests: buffers that end where an inaccessible
// page begins, so that a kernel reading past their end faults.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define FL_TEST_GUARD_PAGE 1
#endif

namespace fltest {

// n elements of T ending exactly where an inaccessible page begins, so that reading past the
// end faults (without AddressSanitizer too), filled with `fill`; `pre` elements before them (in
// the same mapping) hold `pre_fill`, for tests that check nothing is written before the data.
// A heap vector where there is no mmap.
template <class T>
class Guarded {
  public:
    Guarded(size_t n, T fill, size_t pre = 0, T pre_fill = T()) : n_(n), pre_(pre) {
        if (n > (size_t(1) << 32) || pre > 4096) std::abort();  // (also bounds n for -Wstringop)
#if defined(FL_TEST_GUARD_PAGE)
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        const size_t data_pages = ((n + pre) * sizeof(T) + page - 1) / page;
        bytes_ = (data_pages + 1) * page;
        void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            map_ = static_cast<char*>(p);
            mprotect(map_ + data_pages * page, page, PROT_NONE);
            data_ = reinterpret_cast<T*>(map_ + data_pages * page) - n;
        }
#endif
        if (!data_) {
            fallback_.resize(n + pre + 1);
            data_ = fallback_.data() + pre;
        }
        std::fill(data_, data_ + n, fill);
        std::fill(data_ - pre, data_, pre_fill);
    }
    ~Guarded() {
#if defined(FL_TEST_GUARD_PAGE)
        if (map_) munmap(map_, bytes_);
#endif
    }
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;
    T* data() { return data_; }
    T& operator[](size_t i) { return data_[i]; }
    T* pre_begin() { return data_ - pre_; }
    size_t size() const { return n_; }

  private:
    size_t n_, pre_;
    T* data_ = nullptr;
    char* map_ = nullptr;
    size_t bytes_ = 0;
    std::vector<T> fallback_;
};

// A float buffer ending at a guard page, NaN unless told otherwise.
class GuardedBuf : public Guarded<float> {
  public:
    explicit GuardedBuf(size_t n, float fill = std::nanf("")) : Guarded<float>(n, fill) {}
};

}  // namespace fltest
