"""Child script of tests/test_runtime.py::test_isas_give_identical_bits: runs every C++ op
family on fixed inputs under the ISA chosen by FASTLAYERS_ISA (set by the parent) and writes
the results as an .npz to stdout. Not a test module (no test_ prefix)."""

import io
import math
import sys

import numpy as np

import fastlayers as f
from fastlayers import _core

F32 = np.float32


def randn(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(F32)


def main():
    f.set_backend("cpp")
    f.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    rng = np.random.default_rng(15)
    out = {"isa": np.array(f.runtime_info()["isa"])}

    # Every elementwise activation kernel on special values and a dense sweep (tails: 1031).
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 0.7071068, 1.5, -1.5, 3.0, -3.0, 20.0,
         -20.0, 87.34, -87.34, 88.73, -88.0, 1e30, -1e30, 3.4e38],
        F32,
    )
    sweep = np.concatenate([special, np.linspace(-30, 30, 1011, dtype=F32)])
    for name, i in sorted(_core.activation_ids().items()):
        out[f"act_{name}"] = _core.activate(np.ascontiguousarray(sweep), i)

    # dense: every activation the layer op accepts by name (GEMM, then the act kernel; the
    # C++-only gelu_tanh kernel is covered by the act_ entries above).
    x = randn(rng, 37, 129)
    w = randn(rng, 129, 67, scale=0.2)
    b = randn(rng, 67)
    for name in sorted(set(_core.activation_ids()) & set(f.activations.NAMES)):
        out[f"dense_{name}"] = f.dense(x, w, b, activation=name)

    # 8-14 rows of A 4 KiB apart against a B of more than 1 MiB: packed into one block on
    # AVX-512 (csrc/gemm/gemm.cpp run_block), read in place elsewhere.
    for m in (8, 11, 14):
        out[f"dense_aliased_{m}"] = f.dense(randn(rng, m, 1024), randn(rng, 1024, 600, scale=0.05),
                                            randn(rng, 600))

    # Few rows read B in place (gemm_rowb: whole-k tiles, bands; tile widths per ISA), and
    # batched products (gemm_batched: the matrix-vector path through A^T, direct rows).
    for m in (1, 2, 3, 5):
        for n in (1, 20, 33, 64, 100, 130, 300):
            out[f"dense_rowb_{m}_{n}"] = f.dense(randn(rng, m, 100), randn(rng, 100, n), None)
    for a_shape, b_shape in (((7, 16, 4), (7, 4, 1)), ((5, 32, 32), (5, 32, 1)),
                             ((6, 5, 20), (6, 20, 70)), ((3, 2, 300), (3, 300, 129))):
        out[f"matmul_{a_shape}_{b_shape}"] = f.matmul(randn(rng, *a_shape), randn(rng, *b_shape))

    # conv2d with activations.
    xi = randn(rng, 2, 11, 13, 5)
    out["conv_gelu"] = f.conv2d(xi, randn(rng, 3, 3, 5, 7, scale=0.3), randn(rng, 7),
                                padding="same", activation="gelu")
    out["conv_silu_s2"] = f.conv2d(xi, randn(rng, 3, 3, 5, 19, scale=0.3), None, strides=2,
                                   activation="silu")

    # conv2d_transpose: the per-tap products on the GEMM (tile edges: 3*3*19 = 171 columns).
    out["convT_s2_same"] = f.conv2d_transpose(xi, randn(rng, 3, 3, 19, 5, scale=0.3),
                                              randn(rng, 19), strides=2, padding="same",
                                              activation="relu")
    # kernel == strides: one 1x1 GEMM per kernel row writing whole output rows (kw * F = 38).
    out["convT_k2_s2"] = f.conv2d_transpose(xi, randn(rng, 2, 2, 19, 5, scale=0.3),
                                            randn(rng, 19), strides=2, activation="gelu")

    # LSTM / GRU (fused gate kernels for tanh/sigmoid; other activations gate by gate) and
    # SimpleRNN (the act kernels on the step's tile). Batches
    # 13 and 29 cut into register blocks of different sizes per ISA (6-row kernels 6 + 4 + 3 and
    # 6 x 4 + 5; AVX-512 7 + 6 and 12 + 9 + 8: recurrent.h block_rows).
    for bsz, units in ((1, 37), (3, 48), (2, 16), (13, 20), (29, 33)):
        xs = randn(rng, bsz, 20, 17)
        k = randn(rng, 17, 4 * units, scale=0.3)
        r = randn(rng, units, 4 * units, scale=0.3)
        bb = randn(rng, 4 * units)
        seq, h, c = f.lstm(xs, k, r, bb, return_sequences=True, return_state=True)
        out[f"lstm_{bsz}_{units}"] = np.concatenate([seq.ravel(), h.ravel(), c.ravel()])
        out[f"lstm_relu_{bsz}_{units}"] = f.lstm(xs, k, r, bb, activation="relu",
                                                 recurrent_activation="hard_sigmoid")
        kg = randn(rng, 17, 3 * units, scale=0.3)
        rg = randn(rng, units, 3 * units, scale=0.3)
        bg = randn(rng, 2, 3 * units)
        out[f"gru_{bsz}_{units}"] = f.gru(xs, kg, rg, bg, return_sequences=True)
        out[f"gru_gelu_{bsz}_{units}"] = f.gru(xs, kg, rg, bg, activation="gelu")
        out[f"gru_before_{bsz}_{units}"] = f.gru(xs, kg, rg, bg[0], reset_after=False)
        ks = randn(rng, 17, units, scale=0.3)
        rs = randn(rng, units, units, scale=0.3)
        seq, h = f.simple_rnn(xs, ks, rs, randn(rng, units), return_sequences=True,
                              return_state=True)
        out[f"simple_rnn_{bsz}_{units}"] = np.concatenate([seq.ravel(), h.ravel()])
        out[f"simple_rnn_gelu_{bsz}_{units}"] = f.simple_rnn(xs, ks, rs, None, activation="gelu",
                                                             go_backwards=True)
        hn, cn = f.lstm_cell(xs[:, 0], randn(rng, bsz, units), randn(rng, bsz, units), k, r, bb)
        out[f"lstm_cell_{bsz}_{units}"] = np.concatenate([hn.ravel(), cn.ravel()])

    # softmax: plain rows of many lengths, several axes, masked.
    for n in (1, 7, 15, 16, 17, 33, 64, 133, 1000):
        out[f"softmax_{n}"] = f.softmax(randn(rng, 5, n, scale=3.0))
    out["softmax_axes"] = f.softmax(randn(rng, 3, 7, 11), axis=(1, 2))
    xm = randn(rng, 9, 45, scale=2.0)
    out["softmax_masked"] = f.softmax(xm, mask=rng.random((9, 45)) > 0.3)

    # layer_norm (the rownorm kernels): row lengths around the 32 lanes, gamma/beta or not,
    # several axes (moved last), an offset mean.
    for n in (1, 7, 31, 32, 33, 65, 768):
        xl = randn(rng, 6, n, scale=2.0) + F32(3.0)
        out[f"layer_norm_{n}"] = f.layer_norm(xl, randn(rng, n), randn(rng, n), epsilon=1e-5)
    out["layer_norm_plain"] = f.layer_norm(randn(rng, 4, 45))
    out["layer_norm_axes"] = f.layer_norm(randn(rng, 3, 7, 11), axis=[0, 2])
    # RMSNormalization and UnitNormalization (the rownorm kernels, double sums): rows around
    # the 32 lanes, a scale or not, a non-trailing unit axis (moved last).
    for n in (1, 7, 31, 32, 33, 65, 768):
        rms = f.layers.RMSNormalization(epsilon=1e-5)
        rms.build((5, n))
        rms.set_weights([randn(rng, n)])
        xr = randn(rng, 5, n, scale=2.0)
        out[f"rms_norm_{n}"] = rms(xr)
        out[f"unit_norm_{n}"] = f.layers.UnitNormalization()(xr)
    out["unit_norm_axes"] = f.layers.UnitNormalization(axis=[0, 2])(randn(rng, 3, 7, 11))
    # Resizing's taps (one plain C++ resampler): channel counts 1-4 (unrolled) and 5, bilinear
    # and antialiased, shrinking and enlarging.
    for c in (1, 3, 4, 5):
        xi = randn(rng, 2, 13, 17, c, scale=3.0)
        for aa in (False, True):
            out[f"resize_{c}_{aa}"] = f.layers.Resizing(7, 29, antialias=aa)(xi)
    # GroupNormalization (one plain C++ driver for every ISA): pixels around its 256-pixel
    # chunks, channels first too.
    for pixels in (1, 255, 257):
        gn = f.layers.GroupNormalization(3, epsilon=1e-5)
        gn.build((2, pixels, 12))
        gn.set_weights([randn(rng, 12), randn(rng, 12)])
        out[f"group_norm_{pixels}"] = gn(randn(rng, 2, pixels, 12) + F32(3.0))
    out["group_norm_axis1"] = f.layers.GroupNormalization(2, axis=1)(randn(rng, 2, 4, 5, 3))

    # pool2d (the per-ISA window kernels): max and average, valid and padded, with channel
    # counts around the vector and block widths (8, 32) and 3x3 windows (a count of 9 divides,
    # 4 and 6 at the corners and edges).
    xp = randn(rng, 2, 13, 11, 17)
    for average in (False, True):
        out[f"pool_{average}"] = _core.pool2d(xp, (3, 2), (2, 3), (1, 1, 0, 1), average)
        out[f"pool_valid_{average}"] = _core.pool2d(xp, (2, 2), (2, 2), (0, 0, 0, 0), average)
        for c in (1, 7, 8, 9, 31, 33, 64, 65):
            out[f"pool_3x3_c{c}_{average}"] = _core.pool2d(randn(rng, 1, 6, 5, c), (3, 3),
                                                           (1, 1), (1, 1, 1, 1), average)

    # Adaptive pooling (the average's windows on the per-ISA window kernel): dividing and
    # uneven windows, 1-D as a width of 1, channel counts around the vector and block widths.
    xa = randn(rng, 2, 13, 14, 5)
    for average in (False, True):
        out[f"adaptive_{average}"] = _core.adaptive_pool2d(xa, (5, 7), average)
        out[f"adaptive_1d_{average}"] = _core.adaptive_pool2d(xa[:, :, :1].copy(), (4, 1),
                                                             average)
    for c in (7, 65, 131):
        out[f"adaptive_avg_c{c}"] = _core.adaptive_pool2d(randn(rng, 2, 9, 10, c), (4, 3), True)
    # The max's column kernel: ties of -0 and +0 (which one a window keeps shows in the bits).
    xz = np.where(randn(rng, 2, 9, 10, 19) > 0, F32(0.0), F32(-0.0)).astype(F32)
    xz[0, ::3, ::2, ::5] = -1.0
    out["adaptive_max_zeros"] = _core.adaptive_pool2d(xz, (4, 3), False)

    # Attention ops.
    q, v, kk = randn(rng, 2, 9, 24), randn(rng, 2, 37, 24), randn(rng, 2, 37, 24)
    qm, vm = rng.random((2, 9)) > 0.2, rng.random((2, 37)) > 0.2
    o, s = f.attention(q, v, kk, return_attention_scores=True)
    out["luong"], out["luong_w"] = o, s
    o, s = f.attention(q, v, kk, scale=0.7, query_mask=qm, value_mask=vm,
                       return_attention_scores=True)
    out["luong_masked"], out["luong_masked_w"] = o, s
    out["luong_concat"] = f.attention(q, v, kk, score_mode="concat", concat_score_weight=0.5)
    qc = randn(rng, 2, 37, 24)
    out["luong_causal"] = f.attention(qc, v, kk, use_causal_mask=True)
    o, s = f.additive_attention(q, v, kk, scale=randn(rng, 24), value_mask=vm,
                                return_attention_scores=True)
    out["additive"], out["additive_w"] = o, s
    qs, ks, vs = randn(rng, 2, 3, 40, 16), randn(rng, 2, 3, 300, 16), randn(rng, 2, 3, 300, 16)
    out["sdpa"] = f.scaled_dot_product_attention(qs, ks, vs)
    out["sdpa_causal"] = f.scaled_dot_product_attention(qs, ks[:, :, :40], vs[:, :, :40],
                                                        is_causal=True)
    out["sdpa_mask"] = f.scaled_dot_product_attention(qs, ks, vs,
                                                      mask=rng.random((40, 300)) > 0.5)
    out["sdpa_decode"] = f.scaled_dot_product_attention(qs[:, :, :1], ks, vs)
    # Decode with a 64-wide head over 3 chunks of keys, 1 to 8 queries (dot_rows tiles).
    kd, vd = randn(rng, 1, 2, 600, 64), randn(rng, 1, 2, 600, 64)
    for t in (1, 2, 3, 8):
        out[f"sdpa_decode64_{t}"] = f.scaled_dot_product_attention(randn(rng, 1, 2, t, 64), kd, vd)
    # Special values: rows redone by the exact path (csrc/ops/attention_exact.cpp) - a NaN value
    # in a key some rows may not attend, a +inf logit, fully masked rows - keep their bits too.
    vn, kn = vs.copy(), ks.copy()
    vn[:, :, 7, 3] = np.nan
    kn[:, 1, 11, :] = np.inf
    special_mask = rng.random((40, 300)) > 0.5
    special_mask[5] = False
    out["sdpa_special_causal"] = f.scaled_dot_product_attention(qs, kn, vn, is_causal=True)
    out["sdpa_special_mask"] = f.scaled_dot_product_attention(qs, kn, vn, mask=special_mask)
    out["sdpa_special_decode"] = f.scaled_dot_product_attention(qs[:, :, :4], kn, vn,
                                                                mask=special_mask[:4])
    o, s = f.attention(qs[0], vn[0], kn[0], use_causal_mask=True, return_attention_scores=True)
    out["luong_special"], out["luong_special_w"] = o, s
    sx = randn(rng, 30, 70)
    sx[3, 5] = np.inf
    sx[4, :] = -np.inf
    sx[7, 9] = np.nan
    out["softmax_special"] = f.softmax(sx)
    dq, n, hk = 24, 3, 8
    kw = dict(
        query_kernel=randn(rng, dq, n, hk, scale=1 / math.sqrt(dq)),
        key_kernel=randn(rng, dq, n, hk, scale=1 / math.sqrt(dq)),
        value_kernel=randn(rng, dq, n, hk, scale=1 / math.sqrt(dq)),
        output_kernel=randn(rng, n, hk, 20, scale=1 / math.sqrt(n * hk)),
        query_bias=randn(rng, n, hk), key_bias=randn(rng, n, hk),
        value_bias=randn(rng, n, hk), output_bias=randn(rng, 20),
    )
    o, s = f.multi_head_attention(q, v, kk, attention_mask=rng.random((2, 9, 37)) > 0.3,
                                  return_attention_scores=True, **kw)
    out["mha"], out["mha_w"] = o, s
    out["mha_causal"] = f.multi_head_attention(qc, v, kk, use_causal_mask=True, **kw)

    # BatchNormalization's channel affine (the rownorm row pass, no FMA), alone and with an
    # activation in its pass; channel counts around the vector widths, special values.
    for c in (1, 15, 16, 17, 33):
        xb = np.resize(sweep, (41, c)).astype(F32)
        sb, hb = randn(rng, c), randn(rng, c)
        out[f"channel_affine_{c}"] = _core.channel_affine_lastdim(xb, sb, hb)
        out[f"channel_affine_gelu_{c}"] = _core.channel_affine_lastdim(
            xb, sb, hb, _core.activation_ids()["gelu"])
    # Depthwise convs (the dwconv and dwconv_row kernels): multipliers 1 and 2, strides 1
    # and 2, channel counts around the vector widths; Conv3D (the depth-stacked indirect
    # GEMM); global pools (the column kernels); 2-D matmul; the batched transpose.
    for c, m, s in ((7, 1, 1), (16, 1, 2), (33, 2, 1), (80, 1, 1)):
        out[f"depthwise_{c}_{m}_{s}"] = f.depthwise_conv2d(
            randn(rng, 2, 9, 11, c), randn(rng, 3, 3, c, m, scale=0.3), randn(rng, c * m),
            strides=s, padding="same", activation="relu6")
    conv3d = f.layers.Conv3D(5, 3, padding="same", seed=4)
    out["conv3d"] = conv3d(randn(rng, 2, 5, 6, 7, 17))
    xg = randn(rng, 3, 5, 7, 37)
    out["global_avg"] = f.layers.GlobalAveragePooling2D()(xg)
    out["global_max"] = f.layers.GlobalMaxPooling2D()(xg)
    out["matmul_2d"] = f.matmul(randn(rng, 37, 45), randn(rng, 45, 29))
    out["transpose"] = _core.transpose_batched(randn(rng, 3, 37, 45))

    # layers.Experts: each expert's rows through two packed GEMMs and the silu / gelu gate
    # (tokens 37 over 5 experts: row counts around the register blocks of every ISA).
    for act in ("silu", "gelu"):
        experts = f.layers.Experts(5, 21, activation=act, use_bias=True, seed=3)
        experts.build((None, 33))
        index = np.stack([rng.permutation(5)[:2] for _ in range(37)])
        out[f"experts_{act}"] = experts(randn(rng, 37, 33), index,
                                        rng.random((37, 2)).astype(F32))

    buf = io.BytesIO()
    np.savez(buf, **out)
    sys.stdout.buffer.write(buf.getvalue())


if __name__ == "__main__":
    main()
