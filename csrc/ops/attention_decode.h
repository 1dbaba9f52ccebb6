// Internal: the decode attention driver (csrc/ops/attention_decode.cpp), chosen by
// attention_forward (csrc/ops/attention.cpp) for a few queries with dot scores.
#pragma once

#include <cmath>
#include <cstdint>

#include "../runtime/dispatch.h"
#include "fastlayers/ops.h"

namespace fl {

// Up to this many query rows take the decode driver (dot scores only).
constexpr int64_t kDecodeMaxQueries = 8;
// Keys per chunk: fixed, whatever the thread count, so the bits never depend on it.
constexpr int64_t kDecodeChunk = 256;

// Whether attention_decode_forward serves these arguments: dot scores, 1 <= T <= 8, Dv >= 1.
bool attention_decode_applies(const AttentionArgs& args);

// attention_forward for those arguments (same contract, ops.h): K and V are read in place,
// no packing; the keys are split into chunks of kDecodeChunk, one partial softmax each, merged
// in chunk order. Bitwise identical for any thread count and with or without weights.
void attention_decode_forward(const AttentionArgs& args);

// The exact row (attention_exact.cpp): a row whose fast result shows a special value (sum l not
// a positive finite number, or a non-finite output in o[0..dv)) is suspect and is computed again
// by attention_exact_row, which follows docs/semantics.md §15 (NaN reaches a row only through a
// key it attends; +inf logits share the weight). attention_normalize_row divides the row's
// unnormalized output o[0..dv) by l (o[j] *= 1/l) and returns whether the row is suspect (then
// o is left for attention_exact_row to overwrite).
bool attention_normalize_row(float l, float* o, int64_t dv);
void attention_exact_row(const AttentionArgs& args, int64_t b, int64_t h, int64_t t);

// The max logit of score row x[0..n) for the exp pass (KernelTable::exp_shift_sum), in both
// drivers. With nothing to mask (no keep row, lim == n) and a positive scale it is
// scale * max(x), the row is left unscaled and *scaled_in_exp is set: the exp pass applies the
// scale (one pass over the row fewer). Its argument fma(x, scale, -max) then exceeds 0 by up to
// half an ulp of the max, at most 32 while |max| < 2^30, where the exp for x <= 0 still gives the
// full exp's bits (docs/performance.md §8); a larger finite max takes score_prep, which scales
// the row first so that every argument is <= 0 (before, a max of 2.5e9 gave exp(108) the
// weight -1.1e-30). Else score_prep masks and scales the row and returns its max.
inline float score_row_max(const KernelTable& kt, float* x, int64_t n, float scale,
                           const uint8_t* keep, int64_t lim, float masked, bool subtract,
                           bool* scaled_in_exp) {
    if (keep == nullptr && lim == n && scale > 0.0f) {
        const float mx = scale * kt.row_max(x, n);
        if (!(std::fabs(mx) >= 0x1p30f) || std::isinf(mx)) {  // NaN and +-inf as before
            *scaled_in_exp = true;
            return mx;
        }
    }
    *scaled_in_exp = false;
    return kt.score_prep(x, n, scale, keep, lim, masked, subtract ? 1 : 0);
}

}  // namespace fl
