// The GEMM driver: blocking, threading and the epilogue around the micro-kernels.
//
// C (M, N) = act(A (M, K) · B (K, N) + bias); A row-major with lda, B packed in 16-wide
// K-major panels (fl::PackedB), C row-major with ldc.
//
// Loop nest per thread, over its own rows [m0, m1) and columns [n0, n1) (BLIS's five loops,
// reordered because B is packed once, ahead of time, and A is not):
//   for ic0 in M by MC             A block MC x KC (packed, see below), in L2 if it fits
//     for pc in K by KC
//       for jc in N by NC          B block KC x NC streams from L3 into L2, once per ic0
//                                  (MC, KC, NC from the L2 size: config_for, n_block)
//         for ic in MC by MR       micro-kernel: MR rows x NC columns x KC; its MR x KC slice
//                                  of A stays in L1 while 16-wide B panels stream from L2
//                                  (MR = KernelTable::gemm_mr: 6, 14 on AVX-512; remainders
//                                  are split as in gemm_block_rows)
//           after the last K block: act() on the MR finished row segments (hot in L1)
// A packed B too large to stay in L3 between row blocks (GemmConfig::b_stream_floats) is walked
// in column slabs instead, K blocks outside row blocks (see run_block):
//   for jc0 in N by slab           a KC x slab block of B (4 MiB) stays in L3
//     for pc in K by KC
//       for ic0 in M by MC         the same A packing and inner loops as above
// A is packed (one k-major micro-panel per register block) only when its block is reused over
// more than the configured NC (256) columns: the copy then costs ~16/N of the arithmetic and
// removes the cache-set aliasing of a power-of-two lda (2048^3: 92 -> 96 GFLOP/s). A thread
// that owns a single row block (small batches) skips K and N blocking altogether: B is used
// once, so blocking would only add C round trips; the kernel then streams the weights once with
// the widest register tile for the row count (strip_width).
//
// Summation order: the kernel starts each element's chain from the bias (first K block) or
// from the value stored in C (later K blocks), so C[i][j] is one FMA chain over p = 0..K-1
// whatever KC, NC, the tile shape or the thread split. Threads own disjoint blocks of C.
//
// Threads: columns are split (in multiples of the widest tile for the row count) when N > M -
// for small batches each core then streams its own share of the weights, which may stay in its
// L2 across calls - else rows (in multiples of MR, MR/2 on AVX-512; both cores share B through
// L3 and pack their own A). At most one task per 64K multiply-adds. The split is a pure function of the shape
// and the thread count. (fl::gemm's few-row path, gemm_row_major_b, splits rows or columns by
// its own rule, which may also depend on C's address; results never depend on the split.)
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "../runtime/dispatch.h"
#include "../runtime/scratch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/runtime.h"
#include "gemm_internal.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // sysconf
#endif

namespace fl {
namespace gemm_detail {

// Per-core L2 size in bytes, 0 if unknown: sysconf where the C library reports it (glibc),
// else the Linux sysfs cache description (musl's sysconf has no cache entries).
int64_t l2_cache_bytes() {
    int64_t l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = static_cast<int64_t>(sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
#if defined(__linux__)
    for (int idx = 0; l2 <= 0 && idx < 8; ++idx) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx);
        std::ifstream level(dir + "/level"), size(dir + "/size");
        int lv = 0;
        std::string sz;
        if (!(level >> lv) || lv != 2 || !(size >> sz) || sz.empty()) continue;
        const int64_t unit = sz.back() == 'K' ? 1024 : sz.back() == 'M' ? 1024 * 1024 : 1;
        l2 = std::atoll(sz.c_str()) * unit;
    }
#endif
    return l2 > 0 ? l2 : 0;
}

// Blocking from the per-core L2 size. Swept on the development machine (AMD EPYC, Zen 4
// guest: 32 KiB L1d, 1 MiB L2): KC = 512, MC = 240, NC = 256 ran 1024^3 and 2048^3 at 100-106
// GFLOP/s on one core, against 89-100 with BLIS's Zen 3 values KC = 256, MC = 144; larger
// blocks mean fewer C round trips (K/KC) and fewer B re-reads from L3 (M/MC). NC = 128..1024
// made little difference; 256 keeps the B block (KC x NC = 512 KiB) within L2.
// MC is a multiple of the kernel's row block (KernelTable::gemm_mr): 240 with 6-row blocks,
// 238 with the 14-row AVX-512 blocks. For those (Zen 5, 48 KiB L1d, 1 MiB L2) a sweep of
// KC = 256..1024, MC = 112..1022, NC = 128..1024 on 1024^3 stayed within the noise of the
// shared machine (160-193 GFLOP/s per core by thread CPU time; the 14 x 512 A micro-panel
// stays in L1 and the B block in L2 as before; only KC = 256 was consistently lower, by
// 5-10%), so the same KC and NC apply.
// With a smaller L2 (512 KiB on Zen 2/3 and many Intel cores) the B block is 256 KiB, and its
// shape matters. Every K block after the first starts each C tile's chains from C itself, which
// by then has left L2 (an MC x N strip of C is larger than it), and the kernel's FMAs wait on
// those loads. So with 6-row blocks K is blocked as little as the L1 allows (KC up to 1024: a
// 6 x 1024 A micro-panel is 24 KiB) and N is blocked instead, NC = 256 KiB of B / KC' (64
// columns at K >= 1024, 256 at K <= 256); the A block (288 x 1024) then streams from L3.
// Measured on a Zen 3 guest (512 KiB L2), one core, thread CPU time, in one process with the
// blockings alternating (16-30 rounds; median of the per-round ratios old time / new time,
// lower quartile in brackets), against KC = 256, MC = 144, NC = 256: 1024^3 1.05-1.06x (1.04),
// 2048^3 1.04x (1.02), 256 x 1024 x 1024 1.04x (1.04) and 1.06x on 2 threads, 64 x 784 x 512
// 1.05x (1.04), 64 x 512 x 2048 1.03x (1.02). NC = 64 also for K = 64 measured 0.95x on
// 3200 x 64 x 512, hence NC from the B block, not fixed. MC = 24..144 measured alike at
// 1024^3; MC = 48 lost 17 % at 2048^3: the B blocks are re-read from L3 (or memory: B is 16
// MiB) for every MC rows, and the first row block of each waits on them. So MC is 288 with
// this blocking: against 144, in-process alternation as above, 2048^3 1.03-1.07x on one core
// (four runs) and 1.02x on two, 1024^3 1.02-1.03x (1.02x on two, one run 0.98x), 256 x 1024
// x 1024 1.03x, 3200 x 256 x 2048, 3200 x 64 x 512, 6272 x 576 x 64 and 1024 x 1024 x 256
// 0.99-1.01x (ties); MC = 432 tied at 2048^3 and lost 2 % on 1024 x 1024 x 256. AVX-512's
// 14-row blocks (16-row A panels: 64 KiB at KC = 1024, more than its L1) keep KC = 256 and
// MC = 140 with a small L2 (and NC 256); not measured there. (The scalar and NEON kernels have
// 6-row blocks too and take the same values; measured only on AVX2.)
GemmConfig config_for(int64_t l2, int64_t mr) {
    GemmConfig c;
    const bool big_l2 = l2 >= (int64_t(1) << 20);
    const bool tall_blocks = mr > 8;  // AVX-512's 14-row register blocks
    c.kc = big_l2 ? 512 : tall_blocks ? 256 : 1024;
    c.mc = std::max<int64_t>(1, (big_l2 ? 240 : tall_blocks ? 144 : 288) / mr) * mr;
    c.nc = 256;
    c.b_block_floats = big_l2 ? 512 * 256 : 65536;  // 512 KiB, 256 KiB
    c.pack_a = true;
    // Column slabs for a B that leaves the L3 between row blocks (run_block), measured only on
    // an Intel Xeon guest with 2 MiB of L2 (docs/performance.md §2), so enabled there alone.
    c.b_stream_floats = l2 >= (int64_t(2) << 20) ? int64_t(3) << 20 : 0;  // 12 MiB of B
    c.slab_floats = int64_t(1) << 20;  // 4 MiB: 2048 columns at KC 512
    c.min_macs_per_task = int64_t(1) << 16;
    return c;
}

GemmConfig default_config() { return config_for(l2_cache_bytes(), kernels().gemm_mr); }

int64_t nc_columns(const GemmConfig& cfg) {
    return std::max<int64_t>(cfg.nc / kGemmNR, 1) * kGemmNR;
}

int64_t n_block(const GemmConfig& cfg, int64_t k) {
    const int64_t nc = nc_columns(cfg);
    const int64_t rows = std::max<int64_t>(1, std::min(k, std::max<int64_t>(cfg.kc, 1)));
    const int64_t fit = cfg.b_block_floats / rows / kGemmNR * kGemmNR;
    return std::max<int64_t>(kGemmNR, std::min(nc, fit));
}

GemmConfig& config() {
    static GemmConfig c = default_config();
    return c;
}

}  // namespace gemm_detail

namespace {

using GemmKernel = void (*)(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                            int64_t cs_a, const float* b, int64_t b_panel_stride, const float* bias,
                            int load_c, float* c, int64_t ldc);

struct GemmJob {
    const float* a;
    int64_t lda;
    int64_t m, k, n;
    const float* b;
    int64_t ps;
    const float* bias;
    float* c;
    int64_t ldc;
    ActFn act;
    GemmKernel kernel;
    int64_t mr;  // rows per register block (KernelTable::gemm_mr)
    int64_t kc, nc, mc;
    int64_t nc_max;  // the configured N block before n_block narrows it for a long K
    int64_t reread_floats;  // a B larger than this is not read twice by one row block
    int64_t stream_floats;  // a B larger than this is walked in column slabs (0: never)
    int64_t slab_floats;    // a slab's KC x columns
    bool pack_a;
    bool split_n;
    int64_t unit;  // rows (split_n false) or columns (split_n true) per unit of the split
};

// Packs rows [i0, i1) x columns [p0, p0 + kc) of A into micro-panels, one per register block
// (gemm_block_rows), back to back in block order, each `pitch * kc` floats: row i, column p of a
// block at offset p*pitch + i - k-major, as the kernel reads it (rs_a = 1, cs_a = pitch).
// pitch is the block height (6 on AVX2) or 16 for blocks of up to 16 rows (AVX-512's 14-row
// blocks): then the ISA's transposing B-panel pack does the copy with 16x16 register
// transposes. The scalar strided copy took ~9% of a 1024^3 product on AVX-512 (about 4 cycles
// per element); the 16-row pitch costs 16/14 of the L1 space of a 14 x KC panel (32 KiB).
int64_t a_panel_pitch(int64_t block_mr) { return block_mr > 8 ? kGemmNR : 0; }

void pack_a_block(const float* a, int64_t lda, int64_t i0, int64_t i1, int64_t p0, int64_t kc,
                  int64_t block_mr, float* dst) {
    const int64_t pitch = a_panel_pitch(block_mr);
    for (int64_t ic = i0; ic < i1;) {
        const int64_t mr = gemm_block_rows(i1 - ic, block_mr);
        const float* src = a + ic * lda + p0;
        if (pitch) {
            kernels().pack_t16(src, lda, mr, kc, dst);
            dst += pitch * kc;
        } else {
            // Column by column: the writes are sequential, the mr rows mr read streams. Row by
            // row (every write mr floats after the last) it took 5.7 % of the samples of a
            // 1024^3 product on AVX2 (Zen 3), this order 2.9 % (6 rows unrolled: no better).
            for (int64_t p = 0; p < kc; ++p)
                for (int64_t i = 0; i < mr; ++i) dst[p * mr + i] = src[i * lda + p];
            dst += mr * kc;
        }
        ic += mr;
    }
}

// A per-thread packing buffer, grown on demand and kept (pool threads live for the process).
// Under ASan the floats beyond this call's request are poisoned (runtime/scratch.h).
float* a_pack_buffer(int64_t floats) {
    thread_local GrowingScratch buf;
    return buf.get(floats);
}

// C[m0:m1, n0:n1]; n0 is a multiple of 16.
void run_block(const GemmJob& j, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    // One row block: B is used once, so K/N blocking would only add C round trips.
    const bool one_row_block = m1 - m0 <= j.mr;
    const int64_t kc_step = one_row_block ? j.k : j.kc;
    const int64_t nc_step = one_row_block ? n1 - n0 : j.nc;
    // Pack A when its block is reused over more than nc_max columns (several N blocks): the copy
    // then costs ~16/N of the work, and a contiguous block cannot alias in L1/L2 (lda = 2048
    // floats put every row of A in the same cache sets). (nc_max, not the N block: with a small
    // L2 and a long K the N block is 64, and packing A for every N over 64 measured 0.84-0.96x
    // on 1024 x 1024 x 256, 256 x 1024 x 128 and 64 x 1024 x 256.)
    // A block of 8-14 rows of A read in place 4 KiB apart (K = 1024, 2048, ...) would run as
    // two (the AVX-512 kernel cuts such strides into blocks of at most 7 rows, which keep
    // their lines in L1), each streaming all of B: packed, it is one block and B is read once.
    // Worth it when B is too large to stay in L2 between the two (docs/performance.md §2).
    const bool aliased_rows = one_row_block && j.mr > 8 && m1 - m0 > j.mr / 2 &&
                              j.lda % 1024 == 0 && j.k * (n1 - n0) > j.reread_floats;
    const bool pack_a =
        j.pack_a && (aliased_rows || (!one_row_block && n1 - n0 > j.nc_max));
    const int64_t pitch = a_panel_pitch(j.mr);
    // Blocks of an MC block: at most mc/mr + 1 (gemm_block_rows splits the last one in two).
    // (Sized for the K block actually used: KC = 1024 would otherwise reserve 1.1 MiB per thread
    // for a K = 64 product.)
    const int64_t kc_max = std::max<int64_t>(1, std::min(kc_step, j.k));
    const int64_t rows = std::min(j.mc, m1 - m0);
    const int64_t a_floats = pitch ? (rows / j.mr + 2) * pitch * kc_max : rows * kc_max;
    float* abuf = pack_a ? a_pack_buffer(a_floats) : nullptr;
    // One unit of work: rows [ic0, ic1) x columns [jc0, jc1) over the K block [pc, pc + kc):
    // A's block packed once, then each N block of B (KC x NC, in L2) swept by every register
    // block of rows (its MR x KC slice of A in L1).
    const auto unit = [&](int64_t ic0, int64_t ic1, int64_t pc, int64_t kc, int64_t jc0,
                          int64_t jc1) {
        const bool first = pc == 0;
        const bool last = pc + kc >= j.k;
        if (pack_a) pack_a_block(j.a, j.lda, ic0, ic1, pc, kc, j.mr, abuf);
        for (int64_t jc = jc0; jc < jc1; jc += nc_step) {
            const int64_t nc = std::min(nc_step, jc1 - jc);
            const float* bj = j.b + (jc / kGemmNR) * j.ps + pc * kGemmNR;
            const float* bias = first && j.bias ? j.bias + jc : nullptr;
            const float* apanel = abuf;  // the blocks' panels, in pack_a_block's order
            for (int64_t ic = ic0; ic < ic1; ic += gemm_block_rows(ic1 - ic, j.mr)) {
                const int64_t mr = gemm_block_rows(ic1 - ic, j.mr);
                float* c = j.c + ic * j.ldc + jc;
                if (pack_a) {
                    const int64_t cs = pitch ? pitch : mr;
                    j.kernel(mr, nc, kc, apanel, 1, cs, bj, j.ps, bias, first ? 0 : 1, c, j.ldc);
                    apanel += cs * kc;
                } else {
                    j.kernel(mr, nc, kc, j.a + ic * j.lda + pc, j.lda, 1, bj, j.ps, bias,
                             first ? 0 : 1, c, j.ldc);
                }
                if (last && j.act) {
                    if (nc == j.ldc) {
                        j.act(c, mr * nc);  // whole rows: one contiguous run (narrow C)
                    } else {
                        for (int64_t r = 0; r < mr; ++r) j.act(c + r * j.ldc, nc);
                    }
                }
            }
        }
    };
    // Every K block at least once: K == 0 still writes act(bias).
    const auto k_blocks = [&](auto&& body) {
        int64_t pc = 0;
        do {
            const int64_t kc = std::min(kc_step, j.k - pc);
            body(pc, kc);
            pc += kc;
        } while (pc < j.k);
    };
    // Order of the loops. Row blocks outside K blocks (the default) keep an MC x N strip of C
    // near the core between its K blocks, but read all of B once per row block: a B too large
    // for the L3 then comes from memory each time, and the first register block of every
    // B block waits on it. Such a B is walked in column slabs instead (KC x slab columns of it,
    // 4 MiB, read from L3 by every row block), K blocks outside row blocks: C then makes the
    // round trips, prefetched a tile ahead by the kernel. On the Xeon guest, one thread,
    // alternating in one process (medians of per-round ratios; docs/performance.md §2):
    // 2048^3 1.017x, 3072^3 1.037x, 2048 x 1024 x 4096 1.03x, 4096 x 4096 x 1024 1.04x; but
    // 1536^3 (a 9 MiB B) 0.98x, hence the threshold.
    // Either order computes every chain in the same order: the same bits.
    const bool slabs = !one_row_block && j.stream_floats > 0 && j.k * (n1 - n0) > j.stream_floats;
    if (!slabs) {
        for (int64_t ic0 = m0; ic0 < m1; ic0 += j.mc) {
            const int64_t ic1 = std::min(ic0 + j.mc, m1);
            k_blocks([&](int64_t pc, int64_t kc) { unit(ic0, ic1, pc, kc, n0, n1); });
        }
        return;
    }
    const int64_t slab_cols = std::max<int64_t>(
        kGemmNR, j.slab_floats / std::max<int64_t>(1, std::min(kc_step, j.k)) / kGemmNR * kGemmNR);
    for (int64_t jc0 = n0; jc0 < n1; jc0 += slab_cols) {
        const int64_t jc1 = std::min(jc0 + slab_cols, n1);
        k_blocks([&](int64_t pc, int64_t kc) {
            for (int64_t ic0 = m0; ic0 < m1; ic0 += j.mc)
                unit(ic0, std::min(ic0 + j.mc, m1), pc, kc, jc0, jc1);
        });
    }
}

void gemm_task(void* ctx, int64_t begin, int64_t end) {
    const GemmJob& j = *static_cast<const GemmJob*>(ctx);
    if (j.split_n) {
        run_block(j, 0, j.m, begin * j.unit, std::min(end * j.unit, j.n));
    } else {
        run_block(j, begin * j.unit, std::min(end * j.unit, j.m), 0, j.n);
    }
}

// Widest register tile of the micro-kernels for a given row count (columns), so that a column
// split never cuts a strip. mr = 6 (scalar, AVX2, NEON): 1 row -> 64, 2 -> 48, 3 -> 32, else
// 16. mr = 14 (AVX-512, see csrc/ukernels/gemm/avx512.cpp): 1 -> 64, 2 -> 96, 3..6 -> 64,
// 7..9 -> 48, else 32 (a block of more than 14 rows is cut into tiles of at least 7 rows).
int64_t strip_width(int64_t m, int64_t mr) {
    if (mr == 6) {
        if (m == 1) return 64;
        if (m == 2) return 48;
        if (m == 3) return 32;
        return 16;
    }
    if (m == 2) return 96;
    if (m <= 6) return 64;
    if (m <= 9) return 48;
    return 32;
}

}  // namespace

void gemm_packed_raw(const float* a, int64_t m, int64_t lda, int64_t k, int64_t n,
                     const float* b_panels, int64_t b_panel_stride, const float* bias_padded,
                     float* c, int64_t ldc, Epilogue ep) {
    if (m <= 0 || n <= 0 || k < 0) return;
    const gemm_detail::GemmConfig& cfg = gemm_detail::config();
    GemmJob j;
    j.a = a;
    j.lda = lda;
    j.m = m;
    j.k = k;
    j.n = n;
    j.b = b_panels;
    j.ps = b_panel_stride;
    j.bias = bias_padded;
    j.c = c;
    j.ldc = ldc;
    j.act = ep.act;
    j.kernel = kernels().gemm;
    j.mr = kernels().gemm_mr;
    j.kc = std::max<int64_t>(cfg.kc, 1);
    j.nc = gemm_detail::n_block(cfg, k);
    j.nc_max = gemm_detail::nc_columns(cfg);
    j.mc = std::max<int64_t>(cfg.mc / j.mr, 1) * j.mr;
    j.pack_a = cfg.pack_a;
    j.stream_floats = cfg.b_stream_floats;
    j.slab_floats = cfg.slab_floats;
    j.reread_floats = 2 * cfg.b_block_floats;  // 1 MiB with a big L2, 512 KiB with a small one

    // Split over columns for short, wide problems (each core streams its share of B), over
    // rows otherwise (both cores share B from L3, each keeps its own rows of A hot).
    j.split_n = n > m;
    int64_t units, macs_per_unit;
    if (j.split_n) {
        j.unit = strip_width(m, j.mr);
        units = (n + j.unit - 1) / j.unit;
        macs_per_unit = m * std::max<int64_t>(k, 1) * j.unit;
    } else {
        // Half blocks on AVX-512: with 14-row units two threads would split 64 rows 42 + 22;
        // with 7-row units 35 + 29 (gemm_block_rows maps any remainder to tiles of >= 7 rows).
        j.unit = j.mr > 6 ? j.mr / 2 : j.mr;
        units = (m + j.unit - 1) / j.unit;
        macs_per_unit = n * std::max<int64_t>(k, 1) * j.unit;
    }
    const int64_t min_units =
        std::max<int64_t>(1, (cfg.min_macs_per_task + macs_per_unit - 1) / macs_per_unit);
    // The callable overload: a task may grow its thread's A-pack buffer, and a std::bad_alloc
    // thrown on a pool worker must reach the caller, not std::terminate.
    parallel_for(units, min_units, [&](int64_t u0, int64_t u1) { gemm_task(&j, u0, u1); });
}

void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                 Epilogue ep) {
    gemm_packed_raw(a, m, lda, b.k(), b.n(), b.data(), b.panel_stride(), b.bias(), c, ldc, ep);
}

namespace {

struct PackJob {
    const float* b;
    int64_t ldb, k, n;
    float* dst;
    int64_t ps;
};

void pack_task(void* ctx, int64_t begin, int64_t end) {
    const PackJob& j = *static_cast<const PackJob*>(ctx);
    const int64_t n0 = begin * kGemmNR;
    const int64_t n1 = std::min(end * kGemmNR, j.n);
    pack_b_panel(j.b + n0, j.ldb, 1, j.k, n1 - n0, j.dst + begin * j.ps, j.ps);
}

}  // namespace

namespace {

// Few rows: B is read in place (KernelTable::gemm_rowb), streamed once in bands of rows, each
// thread over its own blocks of columns: up to 1024 wide (long runs of B's rows in address
// order, a band in L1) while the C block stays under kRowbCFloats (L2). Packing B costs about as
// much as the product with tens of rows (it reads and writes all of B, into a fresh buffer whose
// pages fault in): x (1, 2048) @ W (2048, 2048) on one thread took 3.7 ms with packing, 0.33 ms
// in place (NumPy 0.31 ms); (8, 2048) 4.4 -> 1.2 ms (NumPy 2.4). The chains are those of the
// packed path (bias, then p in order), hence the same bits.
// fl::gemm reads B in place up to kRowbGemmMaxM rows (from 9 rows it packs B block by block,
// gemm_blockwise_b); a batched product's entry of up to kRowbMaxM rows whose C fits one column
// block calls the kernel directly (gemm_batched).
constexpr int64_t kRowbGemmMaxM = 8;
constexpr int64_t kRowbMaxM = 32;
constexpr int64_t kRowbCFloats = 16384;  // 64 KiB of C per block
// Matrix-vector products of up to this many elements of A go through A^T (gemm_batched).
constexpr int64_t kSmallMatvec = 256;

// Widest column block of C for m rows (a multiple of 64, 64..1024).
inline int64_t rowb_column_cap(int64_t m) {
    return std::max<int64_t>(64, std::min<int64_t>(1024, kRowbCFloats / m) / 64 * 64);
}

void gemm_row_major_b(const float* a, int64_t m, int64_t k, int64_t lda, const float* b, int64_t n,
                      int64_t ldb, const float* bias, float* c, int64_t ldc, Epilogue ep) {
    const KernelTable& kt = kernels();
    const int64_t threads = std::max<int64_t>(1, num_threads());
    // Column block: a band of B (the kernel's: at most 32 KiB) stays in L1, the C block in L2.
    const int64_t cap = rowb_column_cap(m);
    // Columns [n0, n0 + w) of rows [i0, i1).
    const auto block = [&](int64_t i0, int64_t i1, int64_t n0, int64_t w) {
        kt.gemm_rowb(i1 - i0, w, k, a + i0 * lda, lda, b + n0, ldb, bias ? bias + n0 : nullptr, 0,
                     c + i0 * ldc + n0, ldc);
        if (ep.act && w == ldc) {
            ep.act(c + i0 * ldc, (i1 - i0) * w);  // whole rows: one contiguous run
        } else if (ep.act) {
            for (int64_t i = i0; i < i1; ++i) ep.act(c + i * ldc + n0, w);
        }
    };
    if (threads > 1 && k * n < (int64_t(1) << 20) && m >= 8 && m * k * n >= 2 * 65536) {
        // A B under 4 MiB stays in cache: threads split the rows (groups of 4), each reading all
        // of B. Split by columns instead, the two threads' C blocks met inside 64-byte lines or
        // left masked tiles at their edges, and 2 threads ran 1.3-4x slower than one.
        parallel_for((m + 3) / 4, 1, [&](int64_t g0, int64_t g1) {
            for (int64_t n0 = 0; n0 < n; n0 += cap) block(4 * g0, std::min(m, 4 * g1), n0, std::min(cap, n - n0));
        });
        return;
    }
    // Otherwise threads (if any) split the columns, for a B of 4 MiB or more whose streaming is
    // then what the time goes to; block edges fall on 64-byte lines of C (when ldc keeps rows
    // aligned alike), so that two threads never store into one line.
    const int64_t nt = k * n >= (int64_t(1) << 20) ? threads : 1;
    const int64_t shift = static_cast<int64_t>((reinterpret_cast<uintptr_t>(c) / sizeof(float)) % 16);
    const int64_t per_thread = (n + shift + nt - 1) / nt;
    const int64_t nc = std::min(cap, std::max<int64_t>(64, (per_thread + 15) / 16 * 16));
    const int64_t blocks = (n + shift + nc - 1) / nc;
    parallel_for(blocks, nt == 1 ? blocks : 1, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q) {
            const int64_t n0 = std::max<int64_t>(0, q * nc - shift);
            const int64_t w = std::min(n, (q + 1) * nc - shift) - n0;
            if (w > 0) block(0, m, n0, w);
        }
    });
}

// One-shot products (B row-major, in place) of kRowbGemmMaxM + 1 rows up to an M block: B is
// packed one block at a time (K block x N block, the size the packed path keeps in L2) into a
// buffer of the thread's, and every row block of A runs over it before the next block is packed.
// So B is read once, its copy stays in L2 and no fresh buffer faults in, where packing all of B
// first wrote K x N floats to new pages and read them back; and the packed micro-kernel replaces
// the row-major-B kernel, whose 4-row tiles store and reload C every 8 rows of B.
// fl.dense(x, W, b) with W (1024, 1024) on one thread, Zen 3, thread CPU time, medians of 9
// rounds alternating in one process (before -> after): 9 rows 0.67 -> 0.54 ms, 24 rows 1.90 ->
// 1.04, 32 rows 2.37 -> 1.31, 64 rows 3.03 -> 2.60 (the layer, W packed ahead: 2.16; NumPy
// 2.38); (16, 128) @ (128, 1000) 0.136 -> 0.094 ms; (48, 2048) @ (2048, 2048) 11.1 -> 8.7 ms.
// Up to 8 rows the row-major-B kernel stays: there B streams from memory and the copy costs more
// than it saves ((8, 4096) @ (4096, 4096): 15 ms in place, 19-22 ms packed block by block).
// Threads split the column blocks (as evenly as 16-column panels allow), each packing its own;
// A is packed once, ahead of them, when a row block is reused over more than the configured N
// block (as in run_block). The chains are the packed path's (bias, then p in order, C stored
// between K blocks): the same bits.
void gemm_blockwise_b(const float* a, int64_t m, int64_t k, int64_t lda, const float* b, int64_t n,
                      int64_t ldb, const float* bias, float* c, int64_t ldc, Epilogue ep,
                      int64_t nc) {
    const gemm_detail::GemmConfig& cfg = gemm_detail::config();
    const KernelTable& kt = kernels();
    const int64_t mr_max = kt.gemm_mr;
    // The K block: the rows of an nc-wide block that fill cfg.b_block_floats.
    const int64_t kc_max =
        std::max<int64_t>(1, std::min(k, std::max<int64_t>(kGemmNR, cfg.b_block_floats / nc)));
    const int64_t blocks = (n + nc - 1) / nc;
    const int64_t k_blocks = std::max<int64_t>(1, (k + kc_max - 1) / kc_max);
    // A's micro-panels (pack_a_block), K block after K block, each a_stride floats.
    const int64_t pitch = a_panel_pitch(mr_max);
    const int64_t a_stride = (pitch ? ((m + mr_max - 1) / mr_max + 2) * pitch : m) * kc_max;
    AlignedFloats a_buf;
    if (k > 0 && n > gemm_detail::nc_columns(cfg)) {
        a_buf = alloc_aligned_floats(k_blocks * a_stride);
        for (int64_t q = 0; q < k_blocks; ++q) {
            const int64_t pc = q * kc_max;
            pack_a_block(a, lda, 0, m, pc, std::min(kc_max, k - pc), mr_max,
                         a_buf.get() + q * a_stride);
        }
    }
    AlignedFloats bias_buf;  // the bias padded to whole blocks: the kernel reads whole panels
    if (bias) {
        bias_buf = alloc_aligned_floats(blocks * nc);
        std::fill(bias_buf.get(), bias_buf.get() + blocks * nc, 0.0f);
        std::copy(bias, bias + n, bias_buf.get());
    }
    const float* a_panels = a_buf.get();
    const float* bias_padded = bias_buf.get();
    const int64_t macs_per_block = m * std::max<int64_t>(k, 1) * nc;
    const int64_t min_blocks =
        std::max<int64_t>(1, (cfg.min_macs_per_task + macs_per_block - 1) / macs_per_block);
    // The callable overload: growing the buffer may throw std::bad_alloc on a worker.
    parallel_for(blocks, min_blocks, [&](int64_t q0, int64_t q1) {
        thread_local GrowingScratch b_pack;
        float* panels = b_pack.get(kc_max * nc);
        for (int64_t q = q0; q < q1; ++q) {
            const int64_t jc = q * nc;
            const int64_t w = std::min(nc, n - jc);
            int64_t pc = 0;
            do {  // every K block at least once: K == 0 still writes act(bias)
                const int64_t kc = std::min(kc_max, k - pc);
                const bool first = pc == 0;
                const bool last = pc + kc >= k;
                const int64_t ps = kc * kGemmNR;
                if (kc > 0) pack_b_panel(b + pc * ldb + jc, ldb, 1, kc, w, panels, ps);
                const float* bj = first && bias_padded ? bias_padded + jc : nullptr;
                const float* apanel = a_panels ? a_panels + (pc / kc_max) * a_stride : nullptr;
                for (int64_t ic = 0; ic < m; ic += gemm_block_rows(m - ic, mr_max)) {
                    const int64_t mr = gemm_block_rows(m - ic, mr_max);
                    float* ci = c + ic * ldc + jc;
                    // A's panel (rows 1 apart, columns pitch or mr apart), or A in place
                    const float* ai = apanel ? apanel : a + ic * lda + pc;
                    const int64_t rs = apanel ? 1 : lda, cs = !apanel ? 1 : pitch ? pitch : mr;
                    kt.gemm(mr, w, kc, ai, rs, cs, panels, ps, bj, first ? 0 : 1, ci, ldc);
                    if (apanel) apanel += cs * kc;
                    if (last && ep.act) {
                        for (int64_t r = 0; r < mr; ++r) ep.act(ci + r * ldc, w);
                    }
                }
                pc += kc;
            } while (pc < k);
        }
    });
}

}  // namespace

// A batch of products (fastlayers.matmul with batch axes). Entries are split over the threads
// unless they are few and each large enough to split by itself: a split of the batch needs no
// synchronization inside it, where fl::gemm per entry opened a region (and, under 32 rows,
// walked its column blocks) for every product (docs/performance.md §3). Inside a chunk of a
// multi-threaded region each product is computed by one thread: few-row products whose C fits
// one column block go straight to the row-major-B kernel (the block gemm_row_major_b would
// make), the others through fl::gemm (serial there; a region of one chunk may still let it use
// the pool). Either way each output is the chain fl::gemm computes, so the bits do not depend
// on the split.
void gemm_batched(int64_t batch, const float* a, int64_t m, int64_t k, const float* b, int64_t n,
                  float* c) {
    if (batch <= 0 || m <= 0 || n <= 0 || k < 0) return;
    // Multiply-adds per product (a double: no overflow for any shape that fits in memory).
    const double macs = static_cast<double>(m) * static_cast<double>(n) *
                        static_cast<double>(std::max<int64_t>(k, 1));
    const int64_t threads = std::max<int64_t>(1, num_threads());
    // Few large products (each >= 1M multiply-adds and fewer than 4 per thread): one at a time,
    // each split by fl::gemm (a split of 3 products over 2 threads would leave one idle).
    if (batch < 4 * threads && macs >= 1048576.0) {
        for (int64_t i = 0; i < batch; ++i)
            gemm(a + i * m * k, m, k, k, b + i * k * n, n, n, nullptr, c + i * m * n, n);
        return;
    }
    const KernelTable& kt = kernels();
    const bool direct = m <= kRowbMaxM && n <= rowb_column_cap(m);
    // Tasks of at least 64K multiply-adds (a thread's wake-up costs more than a smaller one),
    // an entry counted as at least 512: its calls cost ~50-100 ns however small it is, and
    // (1000, 8, 8) @ (1000, 8, 1) (57 us) ran as one task with 64 per entry.
    const double cost = std::max(macs, 512.0);
    const int64_t grain = cost >= 65536.0 ? 1 : static_cast<int64_t>(65536.0 / cost);
    if (n == 1 && m * k <= kSmallMatvec) {
        // Matrix times vector: C_i (m x 1) is also the row b_i^T (1 x k) times A_i^T (k x m), the
        // same products in the same order (fma(x, y, c) == fma(y, x, c)), so the same bits -
        // NaN payloads aside: with two NaN factors the hardware keeps the first one's payload.
        // A_i^T is copied out up to 64 rows of A_i at a time, as a k x 32 or k x 64 row-major
        // block, for the one-row kernel: on AVX2 its whole-k tile holds those outputs as 4 or 8
        // independent 8-lane chains of full vectors (AVX-512: 2 or 4 chains of 16 lanes;
        // results the same either way) (the padding columns, zero or left from an
        // earlier block, only feed outputs that are dropped), stored to a scratch row and the
        // w real ones copied out. Down the other way a tile held 1 useful column of 16 behind
        // masked loads and stores, slow on AMD (docs/performance.md §3). The copy is scalar: past
        // kSmallMatvec elements of A_i it cost more than it saved ((256, 32, 32) @ (256, 32, 1):
        // 1.3x slower; (64, 16, 4) @ (64, 4, 1) 3.5x faster, one thread, Zen 3).
        constexpr int64_t kCols = 64;
        parallel_for(batch, grain, [&](int64_t i0, int64_t i1) {
            AlignedFloats buf = alloc_aligned_floats(k * kCols + kCols);
            float* t = buf.get();
            float* row = t + k * kCols;
            std::fill(t, t + k * kCols + kCols, 0.0f);
            for (int64_t i = i0; i < i1; ++i) {
                for (int64_t r0 = 0; r0 < m; r0 += kCols) {
                    const int64_t w = std::min(kCols, m - r0);
                    const int64_t ld = w <= kCols / 2 ? kCols / 2 : kCols;
                    const float* src = a + (i * m + r0) * k;
                    for (int64_t r = 0; r < w; ++r)
                        for (int64_t p = 0; p < k; ++p) t[p * ld + r] = src[r * k + p];
                    kt.gemm_rowb(1, ld, k, b + i * k, k, t, ld, nullptr, 0, row, ld);
                    std::copy(row, row + w, c + i * m + r0);
                }
            }
        });
        return;
    }
    parallel_for(batch, grain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            const float* ai = a + i * m * k;
            const float* bi = b + i * k * n;
            float* ci = c + i * m * n;
            if (direct)
                kt.gemm_rowb(m, n, k, ai, k, bi, n, nullptr, 0, ci, n);
            else
                gemm(ai, m, k, k, bi, n, n, nullptr, ci, n);
        }
    });
}

void gemm(const float* a, int64_t m, int64_t k, int64_t lda, const float* b, int64_t n, int64_t ldb,
          const float* bias, float* c, int64_t ldc, Epilogue ep) {
    if (m <= 0 || n <= 0 || k < 0) return;
    if (m <= kRowbGemmMaxM) {
        gemm_row_major_b(a, m, k, lda, b, n, ldb, bias, c, ldc, ep);
        return;
    }
    const gemm_detail::GemmConfig& cfg = gemm_detail::config();
    if (m <= cfg.mc) {
        // Column blocks of up to 256 (16-column panels), as many as a multiple of the threads.
        const int64_t threads = std::max<int64_t>(1, num_threads());
        const int64_t blocks =
            (std::max<int64_t>(threads, (n + 255) / 256) + threads - 1) / threads * threads;
        const int64_t nc = ((n + blocks - 1) / blocks + kGemmNR - 1) / kGemmNR * kGemmNR;
        // (A B too narrow for a block per thread: the rows are split below instead.)
        if ((n + nc - 1) / nc >= threads) {
            gemm_blockwise_b(a, m, k, lda, b, n, ldb, bias, c, ldc, ep, nc);
            return;
        }
    }
    const int64_t panels = (n + kGemmNR - 1) / kGemmNR;
    const int64_t ps = k * kGemmNR;
    // Panels, then the padded bias.
    AlignedFloats buf = alloc_aligned_floats(panels * ps + panels * kGemmNR);
    float* packed = buf.get();
    float* bias_padded = nullptr;
    if (bias) {
        bias_padded = packed + panels * ps;
        std::fill(bias_padded, bias_padded + panels * kGemmNR, 0.0f);
        std::copy(bias, bias + n, bias_padded);
    }
    if (k > 0) {
        PackJob pj{b, ldb, k, n, packed, ps};
        // ~64 KiB of B per task at least: below that a wake-up costs more than the copy.
        const int64_t min_panels = std::max<int64_t>(1, 16384 / (ps > 0 ? ps : 1));
        parallel_for(panels, min_panels, pack_task, &pj);
    }
    gemm_packed_raw(a, m, lda, k, n, packed, ps, bias_padded, c, ldc, ep);
}

}  // namespace fl
