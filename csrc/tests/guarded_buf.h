// GuardedBuf, shared by the C++ tests: a float buffer that ends where an inaccessible page
// begins, so that a kernel reading past its end faults.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define FL_TEST_GUARD_PAGE 1
#endif

namespace fltest {

// n floats ending exactly where an inaccessible page begins (a heap vector where there is no
// mmap), so that reading past the end faults (without AddressSanitizer too); filled with
// `fill` (NaN by default).
class GuardedBuf {
  public:
    explicit GuardedBuf(size_t n, float fill = std::nanf("")) : n_(n) {
#if defined(FL_TEST_GUARD_PAGE)
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        const size_t data_pages = (n * sizeof(float) + page - 1) / page;
        bytes_ = (data_pages + 1) * page;
        void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            map_ = static_cast<char*>(p);
            mprotect(map_ + data_pages * page, page, PROT_NONE);
            data_ = reinterpret_cast<float*>(map_ + data_pages * page) - n;
        }
#endif
        if (!data_) {
            fallback_.resize(n + 1);
            data_ = fallback_.data();
        }
        std::fill(data_, data_ + n, fill);
    }
    ~GuardedBuf() {
#if defined(FL_TEST_GUARD_PAGE)
        if (map_) munmap(map_, bytes_);
#endif
    }
    GuardedBuf(const GuardedBuf&) = delete;
    GuardedBuf& operator=(const GuardedBuf&) = delete;
    float* data() { return data_; }
    float& operator[](size_t i) { return data_[i]; }
    size_t size() const { return n_; }

  private:
    size_t n_;
    float* data_ = nullptr;
    char* map_ = nullptr;
    size_t bytes_ = 0;
    std::vector<float> fallback_;
};

}  // namespace fltest
