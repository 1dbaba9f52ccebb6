// Internal: the decode attention driver (csrc/ops/attention_decode.cpp), chosen by
// attention_forward (csrc/ops/attention.cpp) for a few queries with dot scores.
#pragma once

#include <cstdint>

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

}  // namespace fl
