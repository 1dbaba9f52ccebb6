"""The cross-layer models of the integration topic (issue 12), written once for both APIs.

Each builder takes a namespace ``ns`` with ``Input``, ``Model``, ``Sequential`` and
``layers``: the ``keras`` module (tests/golden/make_models_integ.py builds the Keras
reference with it) or the ``fastlayers`` module (tests/test_integration_models.py builds
the same graph). The models mix the merging, shape, wrapper, convolution, pooling, padding
and mask layers, with masks from Embedding(mask_zero=True) and Masking flowing through the
others. Not a test module (no test_ prefix).
"""

from __future__ import annotations

from typing import Any

VOCAB = 11


def integ_emb_pool(ns: Any):
    """Embedding(mask_zero) -> GlobalAveragePooling1D (masked mean) -> Dense; the same
    through Dense (which passes the mask on); Conv1D (no mask support: the mask stops)
    -> GlobalMaxPooling1D; a causal Conv1D and a MaxPooling1D before LSTMs (unmasked)."""
    L = ns.layers
    inp = ns.Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 4, mask_zero=True)(inp)
    avg = L.Dense(3)(L.GlobalAveragePooling1D()(e))
    avg2 = L.GlobalAveragePooling1D()(L.Dense(3, activation="tanh")(e))
    c = L.Conv1D(5, 3, padding="same", activation="relu")(e)
    mx = L.Dense(2)(L.GlobalMaxPooling1D()(c))
    causal = L.LSTM(2)(L.Conv1D(3, 2, padding="causal")(e))
    pooled = L.LSTM(2)(L.MaxPooling1D(2, padding="same")(e))
    return ns.Model(inp, [avg, avg2, mx, causal, pooled])


def integ_merge_lstm(ns: Any):
    """Two masked Embedding branches merged along time and along features, by Add,
    Average, Maximum and Multiply, each into an LSTM/GRU (the merged mask reaches it);
    a merge of a masked and an unmasked input (its mask is all True)."""
    L = ns.layers
    a_in = ns.Input(shape=(7,), dtype="int32", name="a")
    b_in = ns.Input(shape=(7,), dtype="int32", name="b")
    ea = L.Embedding(VOCAB, 4, mask_zero=True)(a_in)
    eb = L.Embedding(VOCAB, 4, mask_zero=True)(b_in)
    time = L.LSTM(3)(L.Concatenate(axis=1)([ea, eb]))
    feat = L.LSTM(3)(L.Concatenate()([ea, eb]))
    add = L.LSTM(3)(L.Add()([ea, eb]))
    avg = L.GlobalAveragePooling1D()(L.GRU(3, return_sequences=True)(L.Average()([ea, eb])))
    mx = L.LSTM(2)(L.Maximum()([ea, eb]))
    mul = L.LSTM(2)(L.Multiply()([ea, eb]))
    unmasked = L.Conv1D(4, 1)(eb)  # Conv1D drops the mask
    mixed_time = L.LSTM(2)(L.Concatenate(axis=1)([ea, unmasked]))
    mixed_feat = L.LSTM(2)(L.Concatenate()([ea, unmasked]))
    return ns.Model([a_in, b_in], [time, feat, add, avg, mx, mul, mixed_time, mixed_feat])


def integ_td(ns: Any):
    """Embedding(mask_zero) -> TimeDistributed(Dense) -> LSTM (TimeDistributed passes the
    mask on); a 4-D token input whose (B, T, S) mask TimeDistributed hands, step by step,
    to the LSTM it wraps."""
    L = ns.layers
    inp = ns.Input(shape=(7,), dtype="int32", name="ids")
    grid = ns.Input(shape=(3, 5), dtype="int32", name="grid")
    e = L.Embedding(VOCAB, 4, mask_zero=True)(inp)
    h = L.LSTM(3)(L.TimeDistributed(L.Dense(4, activation="tanh"))(e))
    g = L.Embedding(VOCAB, 3, mask_zero=True)(grid)  # (B, 3, 5, 3), mask (B, 3, 5)
    per_row = L.TimeDistributed(L.LSTM(2))(g)  # (B, 3, 2)
    flat = L.Dense(2)(L.Flatten()(per_row))
    return ns.Model([inp, grid], [h, per_row, flat])


def integ_seq_masking_td_gru(ns: Any):
    """A Sequential: Masking -> TimeDistributed(Dense) -> GRU."""
    L = ns.layers
    return ns.Sequential([ns.Input(shape=(6, 3)), L.Masking(),
                          L.TimeDistributed(L.Dense(4, activation="relu")), L.GRU(3)])


def integ_bilstm_attention(ns: Any):
    """Embedding -> Bidirectional(LSTM, return_sequences) -> Attention([x, x]) ->
    GlobalAveragePooling1D -> Dense; the query's mask reaches the pooling."""
    L = ns.layers
    inp = ns.Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 3, mask_zero=True)(inp)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(e)
    a = L.Attention()([x, x])
    return ns.Model(inp, L.Dense(2)(L.GlobalAveragePooling1D()(a)))


def integ_shape_drop(ns: Any):
    """Reshape, Permute and RepeatVector inside a masked model: they drop the mask, so
    the LSTMs after them run unmasked; an identity Reshape too."""
    L = ns.layers
    inp = ns.Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 4, mask_zero=True)(inp)
    same = L.LSTM(2)(L.Reshape((7, 4))(e))
    halves = L.LSTM(2)(L.Reshape((14, 2))(e))
    perm = L.LSTM(2)(L.Permute((2, 1))(e))
    avg = L.GlobalAveragePooling1D()(e)
    rep = L.LSTM(2)(L.RepeatVector(3)(avg))
    masked = L.LSTM(2)(e)  # the same tensor still carries its mask
    return ns.Model(inp, [same, halves, perm, rep, masked])


def integ_multi_nested(ns: Any):
    """Three inputs, three outputs: a shared Embedding on two token inputs, a nested
    Sequential encoder (TimeDistributed(Dense) -> LSTM) used twice, a nested functional
    head with two outputs on the time-concatenated encodings, a Masking -> GRU branch on
    a float input, and merges of all of them."""
    L = ns.layers
    a_in = ns.Input(shape=(7,), dtype="int32", name="a")
    b_in = ns.Input(shape=(7,), dtype="int32", name="b")
    x_in = ns.Input(shape=(5, 3), name="x")
    shared = L.Embedding(VOCAB, 4, mask_zero=True, name="shared_emb")
    encoder = ns.Sequential([ns.Input(shape=(7, 4)), L.TimeDistributed(L.Dense(4)),
                             L.LSTM(3, return_sequences=True)], name="encoder")
    head_in = ns.Input(shape=(14, 3))
    head = ns.Model(head_in, [L.GlobalAveragePooling1D()(head_in), L.LSTM(2)(head_in)],
                    name="head")
    ha, hb = encoder(shared(a_in)), encoder(shared(b_in))
    pooled, last = head(L.Concatenate(axis=1)([ha, hb]))
    g = L.GRU(2)(L.Masking()(x_in))
    out = L.Dense(2)(L.Concatenate()([pooled, g]))
    diff = L.GlobalAveragePooling1D()(L.Subtract()([ha, hb]))
    return ns.Model([a_in, b_in, x_in], [last, out, diff])


def integ_cnn(ns: Any):
    """A CNN (ZeroPadding2D, DepthwiseConv2D, MaxPooling2D, SeparableConv2D,
    AveragePooling2D, Cropping2D) nested as a Sequential inside a two-input, three-output
    model, with a Conv1D / pooling branch on a sequence input."""
    L = ns.layers
    img = ns.Input(shape=(9, 8, 3), name="img")
    seq = ns.Input(shape=(10, 2), name="seq")
    cnn = ns.Sequential([
        ns.Input(shape=(9, 8, 3)),
        L.ZeroPadding2D(((1, 0), (2, 1))),
        L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
        L.MaxPooling2D(2, padding="same"),
        L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="tanh"),
        L.AveragePooling2D(2, strides=1),
        L.Cropping2D(((0, 1), (1, 0))),
    ], name="cnn")
    f = cnn(img)
    a = L.Dense(3)(L.GlobalAveragePooling2D()(f))
    s = L.Conv1D(3, 3, strides=2, dilation_rate=1, padding="valid")(L.ZeroPadding1D(2)(seq))
    s = L.GlobalMaxPooling1D()(L.AveragePooling1D(2)(s))
    both = L.Dense(2)(L.Concatenate()([L.GlobalMaxPooling2D()(f), s]))
    return ns.Model([img, seq], [a, both, L.Flatten()(f)])


def integ_more_merges(ns: Any):
    """Merges whose masks are partial or dropped: Average and Subtract of masked and
    unmasked inputs (no output mask unless every input has one), Minimum, a time
    Concatenate with an unmasked RepeatVector, Dot (no output mask), Bidirectional with
    merge_mode=None into a Concatenate, and MultiHeadAttention on a merged mask."""
    L = ns.layers
    a_in = ns.Input(shape=(6,), dtype="int32", name="a")
    b_in = ns.Input(shape=(6,), dtype="int32", name="b")
    ea = L.Embedding(VOCAB, 4, mask_zero=True)(a_in)
    eb = L.Embedding(VOCAB, 4, mask_zero=True)(b_in)
    plain = L.Dense(4)(L.Conv1D(4, 1)(eb))  # unmasked
    avg_mixed = L.LSTM(2)(L.Average()([ea, plain]))
    sub = L.LSTM(2)(L.Subtract()([ea, eb]))
    mn = L.GRU(2)(L.Minimum()([ea, eb, L.Dropout(0.5)(ea)]))
    vec = L.RepeatVector(2)(L.GlobalAveragePooling1D()(ea))
    joined = L.LSTM(2, go_backwards=True)(L.Concatenate(axis=1)([vec, eb, ea]))
    dot = L.LSTM(2)(L.Dot(axes=2)([ea, eb]))  # (B, 6, 6), unmasked
    fwd, bwd = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None)(ea)
    bi = L.LSTM(2)(L.Concatenate()([fwd, L.SpatialDropout1D(0.1)(bwd)]))
    both = L.Concatenate(axis=1)([ea, eb])
    att = L.MultiHeadAttention(num_heads=2, key_dim=2)(both, both)
    pooled = L.GlobalAveragePooling1D()(att)
    return ns.Model([a_in, b_in], [avg_mixed, sub, mn, joined, dot, bi, pooled])


def integ_seq_text(ns: Any):
    """A Sequential text model: Embedding(mask_zero) -> Dropout -> Bidirectional(GRU,
    return_sequences, concat) -> TimeDistributed(Dense) -> GlobalAveragePooling1D ->
    Dense."""
    L = ns.layers
    return ns.Sequential([ns.Input(shape=(7,), dtype="int32"),
                          L.Embedding(VOCAB, 3, mask_zero=True), L.Dropout(0.3),
                          L.Bidirectional(L.GRU(2, return_sequences=True)),
                          L.TimeDistributed(L.Dense(3, activation="relu")),
                          L.GlobalAveragePooling1D(), L.Dense(2)])


def integ_td_embedding(ns: Any):
    """TimeDistributed around mask makers: TimeDistributed(Embedding(mask_zero)) and
    TimeDistributed(Masking): the wrapper keeps its input's mask (None here), not the
    wrapped layer's, so the LSTMs after them are unmasked in Keras."""
    L = ns.layers
    grid = ns.Input(shape=(4, 5), dtype="int32", name="grid")
    x_in = ns.Input(shape=(4, 5, 2), name="x")
    e = L.TimeDistributed(L.Embedding(VOCAB, 3, mask_zero=True))(grid)  # (B, 4, 5, 3)
    rows = L.TimeDistributed(L.LSTM(2))(e)
    m = L.TimeDistributed(L.Masking())(x_in)
    rows2 = L.TimeDistributed(L.GRU(2))(m)
    return ns.Model([grid, x_in], [rows, rows2])


def integ_mask_ops(ns: Any):
    """A small model whose Keras graph holds every mask op the merging layers and
    Attention record (loader coverage): Concatenate's ones_like / expand_dims /
    zeros_like / logical_or / concatenate / any, Add's logical_or, Attention's
    convert_to_tensor."""
    L = ns.layers
    a_in = ns.Input(shape=(6,), dtype="int32", name="a")
    b_in = ns.Input(shape=(6,), dtype="int32", name="b")
    ea = L.Embedding(VOCAB, 3, mask_zero=True)(a_in)
    eb = L.Embedding(VOCAB, 3, mask_zero=True)(b_in)
    joined = L.LSTM(2)(L.Concatenate(axis=1)([ea, L.Reshape((6, 3))(eb), eb]))
    att = L.Attention()([L.Add()([ea, eb]), ea])
    return ns.Model([a_in, b_in], [joined, L.GlobalAveragePooling1D()(att)])


def integ_mha_merges(ns: Any):
    """MultiHeadAttention between two masked branches (query, value and key masks), its
    output multiplied by a Dense branch, concatenated along features and time, into a GRU;
    the attention output pooled with the query's mask."""
    L = ns.layers
    a_in = ns.Input(shape=(6,), dtype="int32", name="a")
    b_in = ns.Input(shape=(6,), dtype="int32", name="b")
    ea = L.Embedding(VOCAB, 3, mask_zero=True)(a_in)
    eb = L.Embedding(VOCAB, 3, mask_zero=True)(b_in)
    # Keras's MultiHeadAttention deletes the masks of the tensors it reads, when it runs
    # (docs/semantics.md §22, not copied): it reads tensors no other layer reads.
    q, v = L.Dense(3)(ea), L.Dense(3)(eb)
    m = L.MultiHeadAttention(num_heads=1, key_dim=2)(q, v, v)
    s = L.LSTM(2, return_sequences=True)(L.Multiply()([m, L.Dense(3)(eb)]))
    c = L.Concatenate(axis=1)([L.Concatenate()([s, L.Dense(2)(ea)]), L.Dense(4)(eb)])
    return ns.Model([a_in, b_in], [L.GRU(2)(c), L.GlobalAveragePooling1D()(m)])


def integ_masking_merges(ns: Any):
    """Masking merged with unmasked Dense chains (Average: no mask) and with masked ones
    (Maximum of three), Bidirectional(merge_mode=None) whose two outputs carry the mask,
    and TimeDistributed(Dense) as an output."""
    L = ns.layers
    x = ns.Input(shape=(5, 2))
    m = L.Masking()(x)
    d = L.Dense(2)(L.Dense(2)(L.Dense(2)(x)))
    y = L.Average()([m, d])
    z = L.Maximum()([m, L.Dense(2)(m), L.Dense(2)(L.Dense(2)(m))])
    f, b = L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode=None)(z)
    return ns.Model(x, [L.LSTM(2)(y), L.GRU(2)(f), L.LSTM(1)(b),
                        L.TimeDistributed(L.Dense(1))(z)])


CASES = {f.__name__: f for f in (integ_emb_pool, integ_merge_lstm, integ_td,
                                   integ_seq_masking_td_gru, integ_bilstm_attention,
                                   integ_shape_drop, integ_multi_nested, integ_cnn,
                                   integ_more_merges, integ_seq_text, integ_td_embedding,
                                   integ_mask_ops, integ_mha_merges, integ_masking_merges)}
# The cases also saved as Keras model files (models_integ.npz: the loader tests read them
# too): their graphs hold the mask ops of merging layers and Attention. The others go to
# integ.npz and are only built in code (the fixtures stay under 300 KB).
FILE_CASES = ("integ_mask_ops",)
