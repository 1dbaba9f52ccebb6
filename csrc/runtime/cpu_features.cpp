// CPU feature detection: CPUID + XGETBV on x86-64, compile-time facts on AArch64.
//
// Runs once (function-local static). The result decides which micro-kernels dispatch.cpp may
// select, so a feature is reported only if both the CPU has it and the OS preserves the register
// state it needs: AVX-family code on a kernel that does not save ymm registers would corrupt
// them silently on a context switch.
#include "fastlayers/runtime.h"

#if defined(__x86_64__) || defined(_M_X64)
#define FL_X86_64 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <immintrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace fl {
namespace {

#if defined(FL_X86_64)

struct CpuidRegs {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
    CpuidRegs r;
#if defined(_MSC_VER) && !defined(__clang__)
    int v[4];
    __cpuidex(v, static_cast<int>(leaf), static_cast<int>(subleaf));
    r.eax = static_cast<unsigned>(v[0]);
    r.ebx = static_cast<unsigned>(v[1]);
    r.ecx = static_cast<unsigned>(v[2]);
    r.edx = static_cast<unsigned>(v[3]);
#else
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
    return r;
}

// XCR0: which register states the OS saves on context switch. Only valid when CPUID reports
// OSXSAVE; XGETBV raises #UD otherwise.
unsigned long long xgetbv0() {
#if defined(_MSC_VER) && !defined(__clang__)
    return _xgetbv(0);
#else
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

CpuFeatures detect() {
    CpuFeatures f;
    const unsigned max_leaf = cpuid(0, 0).eax;
    if (max_leaf < 1) return f;

    const CpuidRegs l1 = cpuid(1, 0);
    f.sse2 = (l1.edx >> 26) & 1;
    f.sse41 = (l1.ecx >> 19) & 1;
    const bool osxsave = (l1.ecx >> 27) & 1;
    const bool cpu_avx = (l1.ecx >> 28) & 1;
    const bool cpu_fma = (l1.ecx >> 12) & 1;
    const bool cpu_f16c = (l1.ecx >> 29) & 1;

    bool cpu_avx2 = false, cpu_avx512f = false, cpu_avx512dq = false, cpu_avx512bw = false,
         cpu_avx512vl = false;
    if (max_leaf >= 7) {
        const CpuidRegs l7 = cpuid(7, 0);
        cpu_avx2 = (l7.ebx >> 5) & 1;
        cpu_avx512f = (l7.ebx >> 16) & 1;
        cpu_avx512dq = (l7.ebx >> 17) & 1;
        cpu_avx512bw = (l7.ebx >> 30) & 1;
        cpu_avx512vl = (l7.ebx >> 31) & 1;
    }

    if (osxsave) {
        const unsigned long long xcr0 = xgetbv0();
        f.os_ymm = (xcr0 & 0x6) == 0x6;    // SSE (bit 1) + AVX (bit 2) state
        f.os_zmm = (xcr0 & 0xE6) == 0xE6;  // + opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7)
    }
    f.avx = cpu_avx && f.os_ymm;
    f.avx2 = cpu_avx2 && f.avx;
    f.fma = cpu_fma && f.avx;
    f.f16c = cpu_f16c && f.avx;
    f.avx512f = cpu_avx512f && f.os_zmm;
    f.avx512dq = cpu_avx512dq && f.avx512f;
    f.avx512bw = cpu_avx512bw && f.avx512f;
    f.avx512vl = cpu_avx512vl && f.avx512f;
    return f;
}

#else  // not x86-64

CpuFeatures detect() {
    CpuFeatures f;
#if defined(__aarch64__) || defined(_M_ARM64)
    f.neon = true;  // Advanced SIMD is mandatory in AArch64
#endif
    return f;
}

#endif

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

}  // namespace fl
