// Attention driver: softmax(scores(q, k) masked) · v for every (batch, head), blocked.
// (Dot scores with T <= 8 queries go to the decode driver, attention_decode.cpp, instead.)
//
// Work is split into tasks of (batch, head, block of 48 query rows, or all T <= 96); tasks write
// disjoint output rows, so results do not depend on the thread count. The keys are visited in
// blocks of kKeyBlock with an online softmax per row (running max m, running sum l, output
// rescaled by exp(m_old - m_new) when the max grows), so no T x S buffer exists: per thread
// only a query-block x kKeyBlock score tile. With a causal mask the key blocks right of the
// diagonal are never visited and the last visited block is cut at the diagonal. When the
// weights are requested, the score tiles live in the weights output instead and are rescaled
// to the final max and sum at the end; the output is the same either way.
//
// Dot scores use the GEMM micro-kernel: a thread packs the k of the head it works on into 16-key
// panels (K^T as a packed B operand) and v into 16-column panels, once per head it visits.
// Additive scores (Bahdanau, Keras concat) are post * sum_d w[d] * tanh(pre * (q[d] + k[d])),
// computed with the vector tanh. Threads take runs of tasks from a shared counter (guided).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "../runtime/dispatch.h"
#include "../runtime/scratch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/ops.h"
#include "fastlayers/runtime.h"

#include "attention_decode.h"

namespace fl {
namespace {

constexpr int64_t kQueryBlock = 48;  // 8 micro-kernel row blocks of 6
// Up to this many query rows run as one block (T = 64: one block instead of 48 + 16).
constexpr int64_t kMaxQueryBlock = 2 * kQueryBlock;
// Keys per online-softmax block: 512 x D keys (128 KiB at D = 64) and the score tile (48 x 512,
// 96 KiB; 96 x 512 when T <= 96 runs as one block) stay in L2. Each block costs every row a
// rescale of its output and the P.V GEMM a load of C; 512 against 256 keys: T = S = 512 to
// 2048 2-3 % faster on one core, 2-6 % on two, causal too (docs/performance.md, section 7).
constexpr int64_t kKeyBlock = 512;
constexpr int64_t kAdditiveKeys = 64;  // keys per vector-tanh call in the additive scores
constexpr int64_t kNR = kGemmNR;       // packed panel width (16)
// Short sequences prefetch the next head's rows when q, k, v and out of a head take at most
// kPrefetchBytes, and those of all heads more than kPrefetchMinTotal: below that the rows are
// in cache after the first call, and the prefetch loop is pure cost (a fifth of the driver's
// instructions at B 4, H 1, T 16, S 1, D 4). Longer sequences (several query blocks per head)
// prefetch the next head's k and v alone, when they take at most kPrefetchBytes.
constexpr int64_t kPrefetchBytes = 256 * 1024;
constexpr int64_t kPrefetchMinTotal = 1024 * 1024;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Software prefetch of the rows a thread will read (and write) for its next head, spread over
// the steps of the current one. With short sequences a head computes in ~14 us; when the
// inputs exceed the caches its q, k, v and out rows (64 KiB at T = S = D = 64) come from DRAM,
// and the hardware prefetchers restart at every 4 KiB page (16 rows of 64 floats). add() the
// row ranges, plan() the number of step() calls to come; each step() asks for an equal share
// of the rows, a whole row at a time.
class Prefetcher {
  public:
    void add(const float* base, int64_t rows, int64_t stride, int64_t width, bool write) {
        if (n_ == kMaxRanges || rows <= 0 || width <= 0) return;
        r_[n_++] = Range{base, rows, stride, width, write};
        total_ += rows;
    }
    void plan(int64_t steps) { per_step_ = steps > 0 ? (total_ + steps - 1) / steps : total_; }
    void step() {
        for (int64_t i = 0; i < per_step_ && range_ < n_; ++i) {
            const Range& g = r_[range_];
            const float* row = g.base + row_ * g.stride;
            if (g.write) {
                for (int64_t j = 0; j < g.width; j += 16) __builtin_prefetch(row + j, 1);
            } else {
                for (int64_t j = 0; j < g.width; j += 16) __builtin_prefetch(row + j, 0);
            }
            if (++row_ == g.rows) {
                row_ = 0;
                ++range_;
            }
        }
    }

  private:
    static constexpr int kMaxRanges = 4;
    struct Range {
        const float* base;
        int64_t rows, stride, width;  // in floats
        bool write;
    };
    Range r_[kMaxRanges] = {};
    int n_ = 0, range_ = 0;
    int64_t row_ = 0, per_step_ = 0, total_ = 0;
};

struct Head {
    const float* q;     // row t at q + t*q_st
    const float* k;     // row s at k + s*k_st (additive scores)
    const float* kp;    // packed K^T (dot scores)
    const float* vp;    // packed v
    const uint8_t* mask;  // row t at mask + t*a.mask.st, or nullptr
    float* out;           // row t at out + t*out_st
    float* weights;       // row t at weights + t*S, or nullptr
    int64_t b, h;         // batch and head (for the exact row)
};

class Runner {
  public:
    explicit Runner(const AttentionArgs& a) : a_(a), kt_(kernels()) {
        d16_ = round_up(a.s, kNR) * a.d;
        tile_ld_ = std::min(kKeyBlock, round_up(a.s, kNR));
        qrows_ = a.t <= kMaxQueryBlock ? std::max<int64_t>(1, a.t) : kQueryBlock;
        v16_ = round_up(a.dv, kNR) * a.s;
        // One query block per head, and the next head's rows fit in L2 beside this one's.
        const int64_t head_bytes = (a.s + a.t) * (a.d + a.dv) * int64_t{sizeof(float)};
        prefetch_next_ = a.t <= kMaxQueryBlock && !a.additive && head_bytes <= kPrefetchBytes &&
                         static_cast<double>(head_bytes) * static_cast<double>(a.batch) *
                                 static_cast<double>(a.heads) >
                             static_cast<double>(kPrefetchMinTotal);
        // Several query blocks per head: the next head's k and v, while they fit in L2 beside
        // this head's packed copy.
        const int64_t kv_bytes = a.s * (a.d + a.dv) * int64_t{sizeof(float)};
        prefetch_kv_ = a.t > kMaxQueryBlock && !a.additive && kv_bytes <= kPrefetchBytes;
        // Several query blocks per head: the next task's q and output rows, unless all of
        // them fit in cache anyway (as prefetch_next_).
        const double qo_bytes = static_cast<double>(a.batch) * static_cast<double>(a.heads) *
                                static_cast<double>(a.t) * static_cast<double>(a.d + a.dv) *
                                sizeof(float);
        prefetch_q_ = a.t > kMaxQueryBlock && !a.additive && qo_bytes > kPrefetchMinTotal;
    }

    void run() {
        const AttentionArgs& a = a_;
        const int64_t heads = a.batch * a.heads;
        const int64_t qblocks = (a.t + qrows_ - 1) / qrows_;
        // Larger per-task work for short sequences: a task is at least ~64k multiply-adds.
        const int64_t macs = std::max<int64_t>(1, qrows_ * a.s * (a.d + a.dv));
        const int64_t min_tasks = std::max<int64_t>(1, 65536 / macs);
        const int64_t tasks = heads * qblocks;
        const int64_t workers =
            std::max<int64_t>(1, std::min<int64_t>(num_threads(), tasks / min_tasks));
        // Guided self-scheduling (fl::GuidedRuns): workers take shrinking runs of tasks from a
        // shared counter. Tasks write disjoint rows, so who computes which does not change a
        // bit of the result.
        GuidedRuns runs(tasks, workers);
        parallel_for(workers, 1, [&](int64_t, int64_t) {
            Scratch sc(a, tile_ld_);
            // k (dot scores only) and v of the current head, packed by this thread when its
            // tasks reach the head: they stay in L2 for all its query blocks, and for the next
            // query heads that share them (grouped-query k and v, Rows4::group).
            const int64_t per_head = (a.additive ? 0 : d16_) + v16_;
            AlignedFloats packed = alloc_aligned_floats(std::max<int64_t>(1, per_head));
            int64_t packed_kv = -1;
            int64_t t0 = 0, t1 = 0;
            while (runs.claim(&t0, &t1)) {
                for (int64_t task = t0; task < t1; ++task) {
                    const int64_t bh = task / qblocks;
                    int64_t qb = task % qblocks;
                    // Causal work grows with the query block: order a head's blocks 0, n-1, 1,
                    // n-2, ... so that contiguous chunks of tasks carry about equal work.
                    if (a.causal) qb = qb % 2 == 0 ? qb / 2 : qblocks - 1 - qb / 2;
                    const int64_t b = bh / a.heads, h = bh % a.heads;
                    float* pk = packed.get();
                    // The stored k/v head: one for `group` consecutive query heads.
                    const int64_t kv = b * a.heads + h / a.k.group;
                    if (kv != packed_kv) {
                        // K^T (D x S, key s at k + s*st) into d16_ floats of 16-key
                        // panels; v (S x Dv) into 16-column panels of S rows.
                        if (!a.additive)
                            pack_b_panel(a.k.at(b, h), 1, a.k.st, a.d, a.s, pk, kNR * a.d);
                        pack_b_panel(a.v.at(b, h), a.v.st, 1, a.s, a.dv,
                                     pk + (a.additive ? 0 : d16_), a.s * kNR);
                        packed_kv = kv;
                    }
                    Head hd;
                    hd.q = a.q.at(b, h);
                    hd.k = a.k.at(b, h);
                    hd.kp = a.additive ? nullptr : pk;
                    hd.vp = pk + (a.additive ? 0 : d16_);
                    hd.mask = a.mask.data ? a.mask.at(b, h) : nullptr;
                    hd.out = a.out.at(b, h);
                    hd.b = b;
                    hd.h = h;
                    hd.weights = a.weights ? a.weights + bh * a.t * a.s : nullptr;
                    const int64_t r0 = qb * qrows_;
                    const int64_t rows = std::min(qrows_, a.t - r0);
                    // Short sequences: one task per head, packed anew each time. Prefetch
                    // the next head's rows while this one computes (measured in-process, on
                    // and off interleaved, T = S = D = 64: 8 x 16 heads 18% faster on 1 thread,
                    // 16 x 16 heads 17-22% on 1 and 2; 0-3% slower when all fits in cache).
                    Prefetcher next;
                    const bool ahead = prefetch_next_ && task + 1 < t1 && bh + 1 < heads;
                    if (ahead) {
                        const int64_t nb = (bh + 1) / a.heads, nh = (bh + 1) % a.heads;
                        next.add(a.k.at(nb, nh), a.s, a.k.st, a.d, false);
                        next.add(a.v.at(nb, nh), a.s, a.v.st, a.dv, false);
                        next.add(a.q.at(nb, nh), a.t, a.q.st, a.d, false);
                        next.add(a.out.at(nb, nh), a.t, a.out.st, a.dv, true);
                    }
                    // Several query blocks per head: each block prefetches its share of the
                    // next head's k and v rows, which this thread packs when its run reaches
                    // that head; the packing read them from L3 or memory (its two packs were
                    // 7.7 % of attn-256's time; with this 1.05-1.06x faster on 1 and 2 threads,
                    // 1.02x at T = S = 512 and causal, Zen 4).
                    const bool kv_ahead =
                        prefetch_kv_ && bh + 1 < heads && t1 > (bh + 1) * qblocks;
                    if (kv_ahead) {
                        const int64_t nb = (bh + 1) / a.heads, nh = (bh + 1) % a.heads;
                        const int64_t s0 = qb * a.s / qblocks, s1 = (qb + 1) * a.s / qblocks;
                        next.add(a.k.at(nb, nh) + s0 * a.k.st, s1 - s0, a.k.st, a.d, false);
                        next.add(a.v.at(nb, nh) + s0 * a.v.st, s1 - s0, a.v.st, a.dv, false);
                    }
                    // Several query blocks per head: the next task's q rows, and its output
                    // rows for writing. (ahead is for T <= 96 only, kv_ahead and q_ahead for
                    // longer T: at most 4 ranges, the Prefetcher's limit.) Without, each task's first GEMM met its q rows in L3
                    // or memory (12 KiB at 48 x 64) and its output's first stores missed: on
                    // one Zen 4 core, alternating processes, 1.03x at attn-256 (B 8, H 8,
                    // T = S = 256, D 64), 1.02-1.03x at T = 512 and 1024, causal too, 1.05x
                    // at B 32, H 4, T 128; 2 threads 1.01-1.03x.
                    const bool q_ahead = prefetch_q_ && task + 1 < t1;
                    if (q_ahead) {
                        const int64_t nbh = (task + 1) / qblocks;
                        int64_t nqb = (task + 1) % qblocks;
                        if (a.causal) nqb = nqb % 2 == 0 ? nqb / 2 : qblocks - 1 - nqb / 2;
                        const int64_t nb = nbh / a.heads, nh = nbh % a.heads;
                        const int64_t nr0 = nqb * qrows_;
                        const int64_t nrows = std::min(qrows_, a.t - nr0);
                        next.add(a.q.at(nb, nh) + nr0 * a.q.st, nrows, a.q.st, a.d, false);
                        next.add(a.out.at(nb, nh) + nr0 * a.out.st, nrows, a.out.st, a.dv, true);
                    }
                    flash(hd, r0, rows, sc, ahead || kv_ahead || q_ahead ? &next : nullptr,
                          ahead);
                }
            }
        });
    }

  private:
    // Per-thread scratch, one uninitialized allocation (parts 64-byte aligned, with poisoned
    // red zones between them under ASan: runtime/scratch.h): the score tile (rows of ld_
    // floats), running max and sum per row, the max each key block used, the additive-score
    // tanh buffer.
    struct Scratch {
        ScratchParts<5> buf;
        float *scores, *m, *l, *block_max, *tanh_buf;
        Scratch(const AttentionArgs& a, int64_t ld)
            : buf({a.weights ? 0 : kMaxQueryBlock * ld, kMaxQueryBlock, kMaxQueryBlock,
                   kMaxQueryBlock * ((a.s + kKeyBlock - 1) / kKeyBlock),
                   a.additive ? kAdditiveKeys * a.d : 0}),
              scores(buf[0]),
              m(buf[1]),
              l(buf[2]),
              block_max(buf[3]),
              tanh_buf(buf[4]) {}
    };

    // Raw scores of query rows [r0, r0+rows) against keys [s0, s0+n) into sc (row stride ld).
    void scores(const Head& hd, int64_t r0, int64_t rows, int64_t s0, int64_t n, float* sc,
                int64_t ld, Scratch& scr) const {
        const AttentionArgs& a = a_;
        if (!a.additive) {
            kt_.gemm(rows, n, a.d, hd.q + r0 * a.q.st, a.q.st, 1, hd.kp + s0 * a.d, kNR * a.d,
                     nullptr, 0, sc, ld);
            return;
        }
        float* u = scr.tanh_buf;
        for (int64_t r = 0; r < rows; ++r) {
            const float* q = hd.q + (r0 + r) * a.q.st;
            for (int64_t j0 = 0; j0 < n; j0 += kAdditiveKeys) {
                const int64_t nj = std::min(kAdditiveKeys, n - j0);
                for (int64_t j = 0; j < nj; ++j) {
                    const float* k = hd.k + (s0 + j0 + j) * a.k.st;
                    float* uj = u + j * a.d;
                    for (int64_t e = 0; e < a.d; ++e) uj[e] = a.pre * (q[e] + k[e]);
                }
                kt_.vtanh(u, u, nj * a.d);
                for (int64_t j = 0; j < nj; ++j) {
                    const float* uj = u + j * a.d;
                    float acc = 0.0f;
                    if (a.add_w)
                        for (int64_t e = 0; e < a.d; ++e) acc += a.add_w[e] * uj[e];
                    else
                        for (int64_t e = 0; e < a.d; ++e) acc += uj[e];
                    sc[r * ld + j0 + j] = a.post * acc;
                }
            }
        }
    }

    // Keys at or beyond this column of row t are causally masked (relative to key s0).
    int64_t limit(int64_t t, int64_t s0, int64_t n) const {
        if (!a_.causal) return n;
        return std::max<int64_t>(0, std::min(n, t + 1 - s0));
    }

    const uint8_t* keep_row(const Head& hd, int64_t t, int64_t s0) const {
        return hd.mask ? hd.mask + t * a_.mask.st + s0 : nullptr;
    }

    // Query rows [r0, r0+rows) of one head: key blocks with an online softmax. With weights
    // requested, each block's tile lives in the weights rows instead of the scratch tile and is
    // rescaled to the final max and sum at the end, so the output is bitwise the same with and
    // without weights. pf: rows to prefetch meanwhile, a share per step; pf_gemm_steps: steps
    // between GEMM calls of kGemmMR rows too (short sequences: the whole head's rows), else
    // one step per query row of the softmax passes, the GEMMs whole.
    void flash(const Head& hd, int64_t r0, int64_t rows, Scratch& scr, Prefetcher* pf,
               bool pf_gemm_steps) const {
        const AttentionArgs& a = a_;
        if (pf) pf->plan(pf_gemm_steps ? 2 * ((rows + kGemmMR - 1) / kGemmMR) + rows : rows);
        const float neg_inf = -std::numeric_limits<float>::infinity();
        // Subtracting 1e9 keeps masked keys in the softmax (Keras Attention); the other rules
        // drop them (-inf) and treat a row with no key left at the end.
        const bool subtract = a.rule == MaskRule::subtract;
        const float masked = subtract ? 1e9f : neg_inf;
        float* w = hd.weights ? hd.weights + r0 * a.s : nullptr;
        const int64_t ld = w ? a.s : tile_ld_;
        float* m = scr.m;
        float* l = scr.l;
        float* mb = scr.block_max;  // (rows, key blocks): the max each block used
        const int64_t nblocks = (a.s + kKeyBlock - 1) / kKeyBlock;
        float* out = hd.out + r0 * a.out.st;
        std::fill(m, m + rows, neg_inf);
        std::fill(l, l + rows, 0.0f);
        const int64_t t_last = r0 + rows - 1;
        int64_t visited = 0;  // keys [0, visited) were scored
        for (int64_t s0 = 0; s0 < a.s; s0 += kKeyBlock) {
            int64_t n = std::min(kKeyBlock, a.s - s0);
            if (a.causal && !subtract) {
                if (s0 > t_last) break;  // the whole block is right of the diagonal
                n = std::min(n, t_last + 1 - s0);
            }
            const bool first = s0 == 0;
            float* sc = w ? w + s0 : scr.scores;
            // On the diagonal block of a causal mask each group of kGemmMR rows is scored only
            // up to its last row's limit (the rest of the tile is masked anyway).
            const bool diagonal = a.causal && !subtract && r0 < s0 + n - 1;
            auto width = [&](int64_t r) {  // columns scored for row r of the block
                if (!diagonal) return n;
                const int64_t last = std::min(r - r % kGemmMR + kGemmMR, rows) - 1;
                return limit(r0 + last, s0, n);
            };
            // Rows per GEMM call: groups of kGemmMR on the diagonal (their widths differ) and
            // while prefetching (a step between calls), else the whole block at once.
            const int64_t gs = diagonal || (pf && pf_gemm_steps) ? kGemmMR : rows;
            for (int64_t g = 0; g < rows; g += gs) {
                scores(hd, r0 + g, std::min(gs, rows - g), s0, width(g), sc + g * ld, ld, scr);
                if (pf) pf->step();
            }
            for (int64_t r = 0; r < rows; ++r) {
                if (pf) pf->step();
                float* x = sc + r * ld;
                const uint8_t* keep = keep_row(hd, r0 + r, s0);
                const int64_t nr = width(r);
                if (w && nr < n) std::fill(x + nr, x + n, 0.0f);  // weights right of the cut
                const int64_t lim = limit(r0 + r, s0, nr);
                bool plain = false;  // the scale applied in the exp pass (score_row_max)
                const float mx =
                    score_row_max(kt_, x, nr, a.scale, keep, lim, masked, subtract, &plain);
                const float m_new = std::max(m[r], mx);
                mb[r * nblocks + s0 / kKeyBlock] = m_new;
                if (m_new == neg_inf) {  // no key of this row kept so far
                    // A NaN score is kept (masked ones are -inf) but skipped by the max: make
                    // the row NaN, as in NumPy, rather than let it look fully masked.
                    for (int64_t j = 0; j < nr; ++j)
                        if (x[j] != x[j]) l[r] = std::numeric_limits<float>::quiet_NaN();
                    std::fill(x, x + nr, 0.0f);
                    continue;
                }
                const float sum = kt_.exp_shift_sum(x, nr, plain ? a.scale : 1.0f, m_new);
                // 0 when m[r] = -inf (always on the first block: no exp call there).
                const float alpha = first ? 0.0f : std::exp(m[r] - m_new);
                l[r] = l[r] * alpha + sum;
                m[r] = m_new;
                if (!first && alpha != 1.0f) {
                    float* o = out + r * a.out.st;
                    for (int64_t j = 0; j < a.dv; ++j) o[j] *= alpha;
                }
            }
            for (int64_t g = 0; g < rows; g += gs) {
                kt_.gemm(std::min(gs, rows - g), a.dv, width(g), sc + g * ld, ld, 1,
                         hd.vp + s0 * kNR, a.s * kNR, nullptr, first ? 0 : 1, out + g * a.out.st,
                         a.out.st);
                if (pf) pf->step();
            }
            visited = s0 + n;
        }
        for (int64_t r = 0; r < rows; ++r) {
            float* o = out + r * a.out.st;
            // A special value (NaN, inf, or no key kept: l = 0) shows in l or in the output:
            // that row is computed again by the exact path (attention_exact.cpp, §15).
            if (attention_normalize_row(l[r], o, a.dv)) {
                attention_exact_row(a, hd.b, hd.h, r0 + r);
                continue;
            }
            float* wr = w ? w + r * a.s : nullptr;
            const float inv = 1.0f / l[r];
            if (wr) {
                // Block b was exponentiated against its own max: weight = p * e^(m_b - m) / l.
                for (int64_t s0 = 0; s0 < visited; s0 += kKeyBlock) {
                    const float mbr = mb[r * nblocks + s0 / kKeyBlock];
                    const float f = mbr == m[r] ? inv : std::exp(mbr - m[r]) * inv;
                    const int64_t e = std::min(visited, s0 + kKeyBlock);
                    for (int64_t j = s0; j < e; ++j) wr[j] *= f;
                }
                std::fill(wr + visited, wr + a.s, 0.0f);  // right of the diagonal
            }
        }
    }

    const AttentionArgs& a_;
    const KernelTable& kt_;
    int64_t d16_ = 0, v16_ = 0;
    int64_t tile_ld_ = 0;  // row stride of the score tile: min(kKeyBlock, S rounded up)
    int64_t qrows_ = 0;    // query rows per task: T up to kMaxQueryBlock, else kQueryBlock
    bool prefetch_next_ = false;  // see the constructor
    bool prefetch_kv_ = false;    // the next head's k and v, a share per query block
    bool prefetch_q_ = false;     // the next task's q and output rows
};

}  // namespace

void attention_forward(const AttentionArgs& args) {
    if (args.k.group < 1 || args.v.group != args.k.group || args.q.group != 1 ||
        args.out.group != 1 || args.mask.group != 1 ||
        (args.heads > 0 && args.heads % args.k.group != 0)) {
        throw std::invalid_argument(
            "attention_forward: k and v must share one head group dividing the heads (got " +
            std::to_string(args.k.group) + " and " + std::to_string(args.v.group) + " for " +
            std::to_string(args.heads) + " heads); q, out and the mask have none");
    }
    if (args.batch <= 0 || args.heads <= 0 || args.t <= 0) return;
    // Dv = 0: the output is empty, but asked-for weights must still be computed.
    if (args.dv <= 0 && args.weights == nullptr) return;
    // A few queries with dot scores: the decode driver (attention_decode.cpp, K and V in place).
    if (attention_decode_applies(args)) return attention_decode_forward(args);
    Runner(args).run();
}

}  // namespace fl
