// Decode attention driver: softmax(scale * q . k masked) · v for a few query rows (T <= 8,
// dot scores) over a possibly long key sequence, per (batch, head). attention_forward
// (attention.cpp) hands such calls here.
//
// K and V are read in place (row s of a head at k + s*k.st, v + s*v.st), never packed: with so
// few queries every key and value row is used T times at most, so a packed copy would cost as
// much memory traffic as the product itself. The keys are cut into chunks of kDecodeChunk
// (256) keys - a fixed size, whatever the thread count - and a task is one (batch, head, chunk):
//   scores   x[t][j] = q_t . k_{s0+j} (dot_rows micro-kernel, keys in place),
//   softmax  m_c[t] = max_j scale * x[t][j] over the kept keys (masked: -inf, or score - 1e9
//            under the subtract rule), p[t][j] = exp(scale * x[t][j] - m_c[t]) (the table's
//            score_prep / row_max / exp_shift_sum), l_c[t] = sum_j p[t][j],
//   values   o_c[t][e] = sum_j p[t][j] * v_{s0+j}[e] (gemm_rowb, values in place: one FMA
//            chain per element in key order, from 0).
// The partials (m_c, l_c, o_c) of a head are merged by whichever thread finishes its last
// chunk, always in chunk order c = 0, 1, 2, ..., so every output follows this chain whatever
// the number of threads and whoever computed what:
//   m = max_c m_c; f_c = 1 if m_c == m, else exp(m_c - m) (std::exp, float);
//   l = l_0 * f_0, then l = l + l_c * f_c for c = 1, 2, ...;
//   o[e] = f_0 * o_0[e], then o[e] = o[e] + f_c * o_c[e] for c = 1, 2, ...;
//   out[e] = o[e] * (1 / l).
// With a single chunk (S <= 256, or a causal mask) f_0 = 1 and o_0 is written straight to the
// output row (the same bits). The weights, when requested, are p written into the weights rows
// and scaled by f_c * (1 / l) at the end, so the output is the same with or without them.
//
// Masks, the NaN rule and fully masked rows are those of the blocked driver (attention.cpp):
// causal means key s <= t (top-left aligned), so under the fused and Softmax-layer rules only
// keys [0, T) are visited. A row whose sum or output shows a special value (NaN, inf, no key
// kept) is computed again by attention_exact_row (attention_exact.cpp): the ±inf/NaN policy and
// the fully masked rows. docs/semantics.md states the rules, docs/performance.md the design.
#include "attention_decode.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "../runtime/dispatch.h"
#include "../runtime/scratch.h"
#include "fastlayers/gemm.h"
#include "fastlayers/runtime.h"

namespace fl {
namespace {

constexpr int64_t kChunk = kDecodeChunk;
// A worker gets at least this many multiply-adds (fewer workers for small problems): 4 chunks
// of T = 1, D = Dv = 64 (~6-14 us, memory-bound). Waking a second thread for less measured
// slower on the shared 2-core host (B1 H1 T1 S1024: ~6 us on 1 thread, 50-60 us on 2 when
// 2 chunks each).
constexpr int64_t kMinWorkerMacs = 262144;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

class Decoder {
  public:
    explicit Decoder(const AttentionArgs& a) : a_(a), kt_(kernels()) {
        subtract_ = a.rule == MaskRule::subtract;
        masked_ = subtract_ ? 1e9f : -std::numeric_limits<float>::infinity();
        // Under a causal mask (not the subtract rule, which keeps masked keys in the softmax)
        // row t sees keys s <= t: keys [0, T) at most.
        visible_ = a.causal && !subtract_ ? std::min(a.s, a.t) : a.s;
        chunks_ = (visible_ + kChunk - 1) / kChunk;
        slot_ = round_up(a.t * (a.dv + 2), 16);  // one chunk's o_c (T x Dv), m_c, l_c
    }

    void run() {
        const AttentionArgs& a = a_;
        const int64_t heads = a.batch * a.heads;
        const int64_t tasks = heads * chunks_;
        // Partials of every (head, chunk) when a head has several chunks, and per head the
        // count of chunks done (the thread that completes the last one merges).
        AlignedFloats parts;
        std::unique_ptr<std::atomic<int64_t>[]> done;
        if (chunks_ > 1) {
            parts = alloc_aligned_floats(tasks * slot_);
            done.reset(new std::atomic<int64_t>[static_cast<size_t>(heads)]);
            for (int64_t i = 0; i < heads; ++i) done[i].store(0, std::memory_order_relaxed);
        }
        const int64_t macs = std::max<int64_t>(
            1, a.t * std::min(kChunk, visible_) * (a.d + a.dv));
        const int64_t workers = std::max<int64_t>(
            1, std::min<int64_t>(num_threads(), tasks * macs / kMinWorkerMacs));
        // Guided self-scheduling (fl::GuidedRuns): workers take shrinking runs of tasks. Which
        // worker computes which chunk does not change a bit (see the chain above).
        GuidedRuns runs(tasks, workers);
        parallel_for(workers, 1, [&](int64_t, int64_t) {
            // Scratch: the score tile (T x kChunk, unless the weights rows hold the scores),
            // m and l of a single-chunk head and the merge factors f_c (parts 64-byte
            // aligned, with poisoned red zones between them under ASan: runtime/scratch.h).
            const ScratchParts<3> buf({a.weights ? 0 : a.t * kChunk, 2 * a.t, chunks_});
            float* tile = buf[0];
            float* ml = buf[1];
            float* f = buf[2];
            int64_t t0 = 0, t1 = 0;
            while (runs.claim(&t0, &t1)) {
                for (int64_t task = t0; task < t1; ++task) {
                    const int64_t bh = task / chunks_, c = task % chunks_;
                    if (chunks_ == 1) {
                        // o_0 straight into the output rows; f_0 = 1.
                        const int64_t b = bh / a.heads, h = bh % a.heads;
                        chunk(bh, 0, tile, a.out.at(b, h), a.out.st, ml, ml + a.t);
                        f[0] = 1.0f;
                        for (int64_t r = 0; r < a.t; ++r)
                            finish(bh, r, ml[a.t + r], f);
                        continue;
                    }
                    float* slot = parts.get() + task * slot_;
                    chunk(bh, c, tile, slot, a.dv, slot + a.t * a.dv, slot + a.t * (a.dv + 1));
                    if (done[bh].fetch_add(1, std::memory_order_acq_rel) + 1 == chunks_)
                        merge(bh, parts.get() + bh * chunks_ * slot_, f);
                }
            }
        });
    }

  private:
    // Chunk c of head bh: o_c (T x Dv at o, row stride ldo), m_c and l_c (T each).
    void chunk(int64_t bh, int64_t c, float* tile, float* o, int64_t ldo, float* mc,
               float* lc) const {
        const AttentionArgs& a = a_;
        const int64_t b = bh / a.heads, h = bh % a.heads;
        const int64_t s0 = c * kChunk;
        const int64_t n = std::min(kChunk, visible_ - s0);
        float* x = a.weights ? a.weights + bh * a.t * a.s + s0 : tile;
        const int64_t ld = a.weights ? a.s : kChunk;
        kt_.dot_rows(a.t, n, a.d, a.q.at(b, h), a.q.st, a.k.at(b, h) + s0 * a.k.st, a.k.st, x,
                     ld);
        const uint8_t* mask = a.mask.data ? a.mask.at(b, h) + s0 : nullptr;
        for (int64_t r = 0; r < a.t; ++r) {
            float* xr = x + r * ld;
            const uint8_t* keep = mask ? mask + r * a.mask.st : nullptr;
            // Keys at or beyond lim are causally masked (row r sees keys s <= r).
            const int64_t lim = a.causal ? std::max<int64_t>(0, std::min(n, r + 1 - s0)) : n;
            bool plain = false;  // the scale applied in the exp pass (score_row_max)
            const float mx = score_row_max(kt_, xr, n, a.scale, keep, lim, masked_,
                                           subtract_, &plain);
            mc[r] = mx;
            if (mx == -std::numeric_limits<float>::infinity()) {  // no key of the chunk kept
                // A NaN score is kept (masked ones are -inf) but skipped by the max: the row
                // is NaN, as in NumPy, rather than fully masked.
                // (A flag, not `if (x != x) l = NaN` on a local float: GCC 12 at -O3
                // vectorizes that into a loop that loses the NaN.)
                bool nan = false;
                for (int64_t j = 0; j < n; ++j) nan = nan || xr[j] != xr[j];
                lc[r] = nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
                std::fill(xr, xr + n, 0.0f);
                continue;
            }
            lc[r] = kt_.exp_shift_sum(xr, n, plain ? a.scale : 1.0f, mx);
        }
        kt_.gemm_rowb(a.t, a.dv, n, x, ld, a.v.at(b, h) + s0 * a.v.st, a.v.st, nullptr, 0, o,
                      ldo);
    }

    // Merges the chunks of head bh (slots of slot_ floats from p) into its output rows, in
    // chunk order (the chain in the file comment).
    void merge(int64_t bh, const float* p, float* f) const {
        const AttentionArgs& a = a_;
        const int64_t b = bh / a.heads, h = bh % a.heads;
        const int64_t mo = a.t * a.dv, lo = a.t * (a.dv + 1);  // m_c, l_c within a slot
        for (int64_t r = 0; r < a.t; ++r) {
            float m = -std::numeric_limits<float>::infinity();
            for (int64_t c = 0; c < chunks_; ++c) m = std::max(m, p[c * slot_ + mo + r]);
            float* o = a.out.at(b, h) + r * a.out.st;
            float l = 0.0f;
            for (int64_t c = 0; c < chunks_; ++c) {
                const float* s = p + c * slot_;
                const float mc = s[mo + r];
                const float fc = mc == m ? 1.0f : std::exp(mc - m);
                f[c] = fc;
                const float* oc = s + r * a.dv;
                if (c == 0) {
                    l = s[lo + r] * fc;
                    for (int64_t e = 0; e < a.dv; ++e) o[e] = fc * oc[e];
                } else {
                    l = l + s[lo + r] * fc;
                    for (int64_t e = 0; e < a.dv; ++e) o[e] = o[e] + fc * oc[e];
                }
            }
            finish(bh, r, l, f);
        }
    }

    // Row r of head bh, whose output row holds the merged o and l its sum: normalise (and the
    // weights, chunk c scaled by f[c] / l), or hand the row to the exact path.
    void finish(int64_t bh, int64_t r, float l, const float* f) const {
        const AttentionArgs& a = a_;
        const int64_t b = bh / a.heads, h = bh % a.heads;
        float* o = a.out.at(b, h) + r * a.out.st;
        // A special value (NaN, inf, or no key kept: l = 0) shows in l or in the output: that
        // row is computed again by the exact path (attention_exact.cpp, §15).
        if (attention_normalize_row(l, o, a.dv)) return attention_exact_row(a, b, h, r);
        float* w = a.weights ? a.weights + (bh * a.t + r) * a.s : nullptr;
        const float inv = 1.0f / l;
        if (w) {
            for (int64_t c = 0; c < chunks_; ++c) {
                const float fc = f[c] * inv;
                const int64_t e = std::min(visible_, (c + 1) * kChunk);
                for (int64_t j = c * kChunk; j < e; ++j) w[j] *= fc;
            }
            std::fill(w + visible_, w + a.s, 0.0f);  // right of the causal diagonal
        }
    }

    const AttentionArgs& a_;
    const KernelTable& kt_;
    bool subtract_ = false;
    float masked_ = 0.0f;     // the score_prep mask value: -inf, or 1e9 to subtract
    int64_t visible_ = 0;     // keys [0, visible_) are visited
    int64_t chunks_ = 0;      // chunks of kChunk keys in [0, visible_)
    int64_t slot_ = 0;        // floats per (head, chunk) partial
};

// Grouped-query decode: the query heads that share a key/value head (Rows4::group) run as one
// head of m*T query rows, m heads at a time (the largest divisor of the group with m*T <= 8),
// so each chunk of keys and values is read once for the m of them instead of m times. Every
// step of this driver works row by row with per-row chains (dot_rows, the softmax steps,
// gemm_rowb, the merge, the exact row), so the bits are those of separate heads. It needs the
// m heads' rows of q, of the output and of the mask, if any, at one stride (a head's rows
// right after the previous head's: sh == T*st, or T == 1, where a mask shared by the heads has
// sh == 0) and no causal limit (the only use of a row's index as its position); otherwise the
// heads run apart. (B 1, H 32, G 8, T 1, S 4096, D 128, Xeon, one thread: 4.7 ms with the
// heads apart, 1.4 ms together; PyTorch 4.7 ms.)
AttentionArgs merged_query_heads(const AttentionArgs& a) {
    const int64_t g = a.k.group;
    if (g <= 1 || a.causal) return a;
    int64_t m = 1;
    for (int64_t d = 2; d <= g && d * a.t <= kDecodeMaxQueries; ++d)
        if (g % d == 0) m = d;
    const auto rows_follow = [&](int64_t sh, int64_t st) { return a.t == 1 || sh == a.t * st; };
    if (m == 1 || !rows_follow(a.q.sh, a.q.st) || !rows_follow(a.out.sh, a.out.st) ||
        (a.mask.data != nullptr && !rows_follow(a.mask.sh, a.mask.st)))
        return a;
    AttentionArgs r = a;
    r.heads = a.heads / m;
    r.t = a.t * m;
    const auto merge = [&](auto& view) {  // m heads' rows as one head's m*T rows
        if (a.t == 1) view.st = view.sh;
        view.sh *= m;
    };
    merge(r.q);
    merge(r.out);
    merge(r.mask);
    r.k.group = r.v.group = g / m;
    return r;
}

}  // namespace

bool attention_decode_applies(const AttentionArgs& args) {
    // dv >= 1: with Dv = 0 there is no output to compute, only the weights the caller may have
    // asked for; the blocked kernel (attention.cpp) writes those.
    return !args.additive && args.t >= 1 && args.t <= kDecodeMaxQueries && args.s >= 1 &&
           args.dv >= 1;
}

void attention_decode_forward(const AttentionArgs& args) {
    if (args.batch <= 0 || args.heads <= 0 || args.t <= 0 || args.dv <= 0) return;
    const AttentionArgs merged = merged_query_heads(args);  // Decoder keeps a reference
    Decoder(merged).run();
}

}  // namespace fl
