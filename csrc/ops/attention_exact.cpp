// The exact attention row: the ±inf / NaN policy of docs/semantics.md §15, row by row.
//
// The blocked drivers (attention.cpp, attention_decode.cpp) compute p · v with the GEMM, where
// a key a row may not attend has p = 0, and 0 · NaN (or 0 · inf) in its value row is NaN; and
// their online softmax turns a +inf score into inf - inf = NaN. Both symptoms show in the row's
// result: its sum l is not a positive finite number, or its (unnormalized) output holds a value
// that is not finite. Such a row (rare: special values, or every key masked) is computed again
// here from q, k and v, with only the keys the row attends:
//
// - attended keys: those the mask and the causal rule allow, and under the subtract rule the
//   masked keys with a finite score too (Keras lowers the masked scores by 1e9 and keeps them:
//   their weight is 0 unless every allowed score is below theirs, all -inf say), whose value
//   is added only where that weight is not 0; for a row with none allowed, every key under
//   the fused rule (Keras's uniform row) and the subtract rule, no key under the
//   softmax-layer rule (zero weights);
// - a NaN logit among them makes the row NaN; else the largest logit m decides: m = +inf gives
//   the +inf logits equal shares, m = -inf (all attended logits -inf) equal shares of all,
//   otherwise e^(x - m) / sum;
// - output = sum over the attended keys, in key order, of weight · v: a NaN (or an inf times a
//   zero weight) in an attended value row reaches the row, one in a key it may not attend
//   does not.
//
// The fast drivers check each row while normalizing it (attention_normalize_row: one subtract
// and one OR per value), so rows without special values keep their bits. This code is scalar
// except the shared exp/tanh/dot kernels, which are bitwise identical across ISAs: the result
// is too.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../runtime/dispatch.h"
#include "attention_decode.h"
#include "fastlayers/ops.h"

namespace fl {

bool attention_normalize_row(float l, float* o, int64_t dv) {
    if (!(l > 0.0f) || !(l < std::numeric_limits<float>::infinity())) return true;
    // One pass: scale, and test the scaled value. l >= 1 (the largest score contributes
    // e^0 = 1), so 0 < 1/l <= 1 and o[j] / l is finite iff o[j] is (were l < 1, an overflow
    // would only send a finite row to the exact path, which is always right). t - t is +0 for
    // a finite t (also under DAZ) and NaN for an inf or a NaN, so the OR of the bits of the
    // differences is nonzero iff the row holds a special value: an integer OR-reduction that
    // the compiler vectorizes into the scaling loop (one subtract and one OR per vector; a
    // float sum would be a serial chain of adds). A separate test pass cost ~160 instructions
    // per row, 5% of attn-64 (Dv = 64) on AVX2.
    const float inv = 1.0f / l;
    uint32_t special = 0;
    for (int64_t j = 0; j < dv; ++j) {
        const float t = o[j] * inv;
        o[j] = t;
        const float d = t - t;
        uint32_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        special |= bits;
    }
    return special != 0;
}

void attention_exact_row(const AttentionArgs& a, int64_t b, int64_t h, int64_t t) {
    const KernelTable& kt = kernels();
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const int64_t S = a.s;
    std::vector<float> x(static_cast<size_t>(S)), p(static_cast<size_t>(S));
    std::vector<int64_t> att;
    att.reserve(static_cast<size_t>(S));
    const float* q = a.q.at(b, h) + t * a.q.st;
    const float* k = a.k.at(b, h);
    const float* v = a.v.at(b, h);
    float* o = a.out.at(b, h) + t * a.out.st;
    float* w = a.weights ? a.weights + ((b * a.heads + h) * a.t + t) * S : nullptr;

    // Raw scores of this row against every key.
    if (!a.additive) {
        kt.dot_rows(1, S, a.d, q, a.q.st, k, a.k.st, x.data(), S);
    } else {
        std::vector<float> u(static_cast<size_t>(a.d));
        for (int64_t j = 0; j < S; ++j) {
            const float* kj = k + j * a.k.st;
            for (int64_t e = 0; e < a.d; ++e) u[e] = a.pre * (q[e] + kj[e]);
            kt.vtanh(u.data(), u.data(), a.d);
            float acc = 0.0f;
            if (a.add_w)
                for (int64_t e = 0; e < a.d; ++e) acc += a.add_w[e] * u[e];
            else
                for (int64_t e = 0; e < a.d; ++e) acc += u[e];
            x[j] = a.post * acc;
        }
    }
    const uint8_t* keep = a.mask.data ? a.mask.at(b, h) + t * a.mask.st : nullptr;
    const auto allowed = [&](int64_t j) {
        return (keep == nullptr || keep[j] != 0) && (!a.causal || j <= t);
    };
    bool any_allowed = false;
    for (int64_t j = 0; j < S; ++j) {
        x[j] = x[j] * a.scale;
        any_allowed = any_allowed || allowed(j);
    }
    if (w)
        for (int64_t j = 0; j < S; ++j) w[j] = 0.0f;
    if (any_allowed) {
        for (int64_t j = 0; j < S; ++j) {
            if (allowed(j)) {
                att.push_back(j);
            } else if (a.rule == MaskRule::subtract && std::isfinite(x[j])) {
                // Keras's formula keeps a masked key, its score lowered by 1e9 (weight 0
                // unless every allowed score is below it); a masked NaN or inf is left out.
                x[j] = x[j] - 1e9f;
                att.push_back(j);
            }
        }
    } else {
        if (a.rule == MaskRule::softmax_layer) {  // zero weights, zero output
            for (int64_t e = 0; e < a.dv; ++e) o[e] = 0.0f;
            return;
        }
        if (a.rule == MaskRule::fused) {  // -0.7 * FLT_MAX in every logit: uniform, mean of v
            for (int64_t e = 0; e < a.dv; ++e) {
                double acc = 0.0;
                for (int64_t j = 0; j < S; ++j) acc += v[j * a.v.st + e];
                o[e] = static_cast<float>(acc / static_cast<double>(S));
            }
            if (w)
                for (int64_t j = 0; j < S; ++j) w[j] = 1.0f / static_cast<float>(S);
            return;
        }
        for (int64_t j = 0; j < S; ++j) {  // subtract: every score lowered by 1e9, all kept
            x[j] = x[j] - 1e9f;
            att.push_back(j);
        }
    }
    const int64_t n = static_cast<int64_t>(att.size());
    float m = -inf;
    bool has_nan = false;
    for (int64_t i = 0; i < n; ++i) {
        const float xi = x[att[i]];
        p[i] = xi;
        if (xi != xi) has_nan = true;
        m = xi > m ? xi : m;
    }
    float sum = 0.0f;
    if (has_nan) {
        for (int64_t i = 0; i < n; ++i) p[i] = nan;
        sum = 1.0f;
    } else if (m == inf || m == -inf) {  // equal shares of the entries at that infinity
        for (int64_t i = 0; i < n; ++i) {
            p[i] = p[i] == m ? 1.0f : 0.0f;
            sum += p[i];
        }
    } else {
        sum = kt.exp_shift_sum(p.data(), n, 1.0f, m);
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] * inv;
    // A masked key (subtract rule) reaches the row only through a weight that is not 0.
    const auto adds = [&](int64_t i) { return !any_allowed || allowed(att[i]) || p[i] != 0.0f; };
    for (int64_t e = 0; e < a.dv; ++e) {
        float acc = 0.0f;
        for (int64_t i = 0; i < n; ++i)
            if (adds(i)) acc += p[i] * v[att[i] * a.v.st + e];
        o[e] = acc;
    }
    if (w)
        for (int64_t i = 0; i < n; ++i) w[att[i]] = p[i];
}

}  // namespace fl
