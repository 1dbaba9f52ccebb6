"""Attention layers: Attention, AdditiveAttention, MultiHeadAttention, GroupQueryAttention."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import _checks as C
from .. import _masking, _symbolic
from .. import _validation as V
from .. import functional as F
from .._cpp import pack_multi_head_attention
from .base import (
    WEIGHT_TRAINING_ARGS,
    Layer,
    Shape,
    _bool,
    _positive_int,
    _shape_tuple,
)
from .initializers import weight_spec

# ---------------------------------------------------------------------- attention


class _LuongAttention(Layer):
    """What Attention and AdditiveAttention share: the constructor, the call (on a list of
    inputs and a list of masks) and its check."""

    _check = staticmethod(V.check_attention)
    #: The layer's attributes its check_<op> takes as the op's keywords.
    call_options: tuple[str, ...] = ()
    supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """As Keras: the output keeps the query's mask (mask = [query_mask, value_mask])."""
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return np.asarray(mask[0])

    def __init__(self, use_scale: bool, dropout: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.use_scale = _bool(use_scale, type(self).__name__, "use_scale")
        self.dropout = dropout

    def call(
        self, inputs, mask=None, training=None, return_attention_scores=False, use_causal_mask=False
    ):
        owner = self._owner()
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(
                f"{owner}: inputs must be a list [query, value] or [query, value, key], got "
                f"{type(inputs).__name__}"
                + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple)) else "")
            )
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(
                f"{owner}: mask must be a list [query_mask, value_mask] (either may be "
                f"None), got {mask!r}"
            )
        query_mask, value_mask = (None, None) if mask is None else mask[:2]
        a = self._check(
            *inputs,
            query_mask=query_mask,
            value_mask=value_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
            **{name: getattr(self, name) for name in self.call_options},
            op=owner,
            build=self._ready,
        )
        return F.run_attention(a)


class Attention(_LuongAttention):
    """Dot-product (Luong) attention (Keras ``Attention``).

    Parameters
    ----------
    use_scale : bool
        Multiply the scores by a learned scalar ``scale`` (initialized to 1).
    score_mode : "dot" or "concat"
        concat: ``scores = concat_score_weight * sum_d tanh(scale * (q_d + k_d))``.
    dropout : float
        Training only; ignored.
    seed : int, optional

    Weights: ``scale`` () if use_scale, then ``concat_score_weight`` () if
    score_mode="concat"; both initialized to 1.

    Call: ``layer([query, value] or [query, value, key], mask=None,
    return_attention_scores=False, use_causal_mask=False)``, with query
    (B, Tq, dim), value (B, Tv, dv), key (B, Tv, dim) (defaults to value), and
    mask [query_mask (B, Tq), value_mask (B, Tv)] (either may be None). Returns the
    output (B, Tq, dv), or (output, scores (B, Tq, Tv)).
    """

    config_keys = ("use_scale", "score_mode", "dropout", "seed")
    call_weights = ("scale", "concat_score_weight")
    call_options = ("score_mode",)

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        owner = type(self).__name__
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{owner}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
        super().__init__(use_scale, dropout, seed, **kwargs)
        self.score_mode = score_mode

    def _weight_specs(self, input_shape):
        specs = []
        if self.use_scale:
            specs.append(weight_spec("scale", (), "ones"))
        if self.score_mode == "concat":
            specs.append(weight_spec("concat_score_weight", (), "ones"))
        return specs

    def build(self, input_shape: Any) -> None:
        """Create ``scale`` and/or ``concat_score_weight`` (scalars); input_shape unused."""
        self._create_weights(input_shape)


class AdditiveAttention(_LuongAttention):
    """Additive (Bahdanau) attention (Keras ``AdditiveAttention``).

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``; there
    are no projection matrices.

    Parameters
    ----------
    use_scale : bool
        Default True: a learned ``scale`` vector (dim,), glorot_uniform-initialized.
    dropout : float
        Training only; ignored.
    seed : int, optional

    Weights: ``scale`` (dim,) if use_scale.

    Call: as :class:`Attention`.
    """

    config_keys = ("use_scale", "dropout", "seed")
    call_weights = ("scale",)
    _check = staticmethod(V.check_additive_attention)

    def __init__(self, use_scale=True, dropout=0.0, seed=None, **kwargs):
        super().__init__(use_scale, dropout, seed, **kwargs)

    def _weight_specs(self, input_shape):
        if not self.use_scale:
            return []
        dim = None if input_shape is None else input_shape[0][-1]
        return [weight_spec("scale", (dim,), "glorot_uniform")]

    def _input_shape_from_weights(self, shapes):
        if not self.use_scale:
            return None
        dim = self._shape_of(shapes, 0, 1)[0]
        return [(None, None, dim), (None, None, None)]

    def build(self, input_shape: Any) -> None:
        """Create ``scale`` (dim,) from input_shape = [query_shape, value_shape(, key_shape)]."""
        self._create_weights([_shape_tuple(s) for s in input_shape])


def _ints(value: Any, owner: str, name: str) -> tuple[int, ...]:
    """An int or a non-empty list/tuple of ints, as a tuple of ints."""
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
               for v in items):
        raise TypeError(f"{owner}: {name} must be an int or a tuple of ints, got {value!r}")
    if not items:
        raise ValueError(f"{owner}: {name} must not be empty")
    return tuple(int(v) for v in items)


class MultiHeadAttention(Layer):
    """Multi-head attention (Keras ``MultiHeadAttention``) on rank-3 inputs.

    Parameters
    ----------
    num_heads : int
    key_dim : int
        Size of each query/key head; the query is scaled by 1/sqrt(key_dim).
    value_dim : int, optional
        Size of each value head; defaults to key_dim.
    dropout : float
        Ignored at inference, except that, as in Keras, dropout > 0 makes a fully
        masked row attend to nothing (output = output bias) instead of uniformly.
    use_bias : bool
    output_shape : int or (int,), optional
        Output features; defaults to the query's last dim.
    attention_axes : None, 1, -2, (1,) or (-2,)
        Only attention over the time axis of rank-3 inputs is supported.
    sliding_window : int, optional
        Query i attends only to keys j with |i - j| < sliding_window.
    kernel_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform" (fans from the EinsumDense input/output axes, as
        Keras) and "zeros".
    seed : int, optional
    use_gate : must be False
    flash_attention, regularizers, constraints
        Accepted and ignored.

    Weights (Keras order): query/kernel (Dq, N, key_dim), query/bias (N, key_dim),
    key/kernel (Dk, N, key_dim), key/bias, value/kernel (Dv, N, value_dim),
    value/bias (N, value_dim), attention_output/kernel (N, value_dim, Dout),
    attention_output/bias (Dout,); without the biases if use_bias=False. They are
    also attributes: ``query_kernel``, ``query_bias``, ...

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None,
    key_mask=None, attention_mask=None, return_attention_scores=False,
    use_causal_mask=False)`` with query (B, T, Dq), value (B, S, Dv), key (B, S, Dk).
    value_mask / key_mask (B, S) and attention_mask (B, T, S) are bool, True = may
    attend; attention_mask may also have any shape that broadcasts to (B, T, S), as in
    Keras: (T, S) for every batch row, (B, 1, S) (padding) for every query. As in Keras,
    an explicit query_mask is ignored. Returns the output (B, T, Dout), or (output, scores
    (B, N, T, S)).
    """

    _sublayer_variables = True  # Keras's query, key, value and output EinsumDense layers
    # Keras's call sets the masks of its query, value and key tensors to None (its own output
    # gets the query's mask): a reader of those tensors after it sees no mask
    _deletes_input_masks = True

    def _mask_deleted_inputs(self, args: tuple, kwargs: dict) -> list:
        given = [*args[:3], *(kwargs.get(k) for k in ("query", "value", "key"))]
        return [t for t in given if isinstance(t, _symbolic.SymbolicTensor)]

    config_keys = (
        "num_heads",
        "key_dim",
        "value_dim",
        "dropout",
        "use_bias",
        "output_shape",
        "attention_axes",
        "sliding_window",
        "kernel_initializer",
        "bias_initializer",
        "seed",
    )
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"use_gate": False}
    _PARTS = ("query", "key", "value", "attention_output")
    call_weights = tuple(f"{p}/kernel" for p in _PARTS) + tuple(f"{p}/bias" for p in _PARTS)

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        sliding_window: int | None = None,
        flash_attention: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_heads = _positive_int(num_heads, owner, "num_heads")
        self.key_dim = _positive_int(key_dim, owner, "key_dim")
        self.value_dim = (
            self.key_dim if value_dim is None else _positive_int(value_dim, owner, "value_dim")
        )
        if (
            isinstance(dropout, (bool, np.bool_))
            or not isinstance(dropout, numbers.Real)
            or not (0 <= dropout <= 1)
        ):
            raise ValueError(f"{owner}: dropout must be a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        if flash_attention and self.dropout > 0:
            raise ValueError(f"{owner}: dropout is not supported when flash attention is enabled")
        self.flash_attention = flash_attention
        # Wrong types and values raise TypeError / ValueError; valid Keras values fastlayers
        # does not run (several output axes, attention over other axes) NotImplementedError.
        if output_shape is not None:
            dims = [_positive_int(d, owner, "output_shape")
                    for d in _ints(output_shape, owner, "output_shape")]
            if len(dims) != 1:
                raise NotImplementedError(
                    f"{owner}: output_shape must be an int or a 1-tuple in fastlayers, got "
                    f"{output_shape!r}"
                )
            output_shape = dims[0]
        self.output_shape = output_shape
        if attention_axes is not None:
            axes = _ints(attention_axes, owner, "attention_axes")
            # 1 or -2 only: 4 (or -5) is the time axis of no rank-3 input (it was taken as 1).
            if list(axes) not in ([1], [-2]):
                raise NotImplementedError(
                    f"{owner}: only attention over the time axis of rank-3 inputs is supported "
                    f"(attention_axes None, (1,) or (-2,)), got {attention_axes!r}"
                )
            attention_axes = (1,)
        self.attention_axes = attention_axes
        if sliding_window is not None:
            sliding_window = _positive_int(sliding_window, owner, "sliding_window")
        self.sliding_window = sliding_window
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

    def _weight_specs(self, input_shape):
        dq, dv, dk = (
            (None, None, None)
            if input_shape is None
            else (input_shape[0][-1], input_shape[1][-1], input_shape[2][-1])
        )
        n, hk, hv = self.num_heads, self.key_dim, self.value_dim
        dout = self.output_shape if self.output_shape is not None else dq
        kinit, binit = self.kernel_initializer, self.bias_initializer
        specs = []
        for name, d_in, h in (("query", dq, hk), ("key", dk, hk), ("value", dv, hv)):
            # EinsumDense "btd,dnh->btnh": fan_in = d_in, fan_out = n * h
            specs.append(weight_spec(f"{name}/kernel", (d_in, n, h), kinit, (d_in, n * h)))
            if self.use_bias:
                specs.append(weight_spec(f"{name}/bias", (n, h), binit))
        # EinsumDense "btnh,nhe->bte": fan_in = n * hv, fan_out = dout
        specs.append(weight_spec("attention_output/kernel", (n, hv, dout), kinit, (n * hv, dout)))
        if self.use_bias:
            specs.append(weight_spec("attention_output/bias", (dout,), binit))
        return specs

    def _input_shape_from_weights(self, shapes):
        step = 2 if self.use_bias else 1
        dq = self._shape_of(shapes, 0, 3)[0]
        dk = self._shape_of(shapes, step, 3)[0]
        dv = self._shape_of(shapes, 2 * step, 3)[0]
        return ((None, None, dq), (None, None, dv), (None, None, dk))

    def build(self, query_shape: Shape, value_shape: Shape, key_shape: Shape | None = None):
        """Create the projections for query (B, T, Dq), value (B, S, Dv), key (B, S, Dk)."""
        shapes = [_shape_tuple(s) for s in (query_shape, value_shape, key_shape or value_shape)]
        for what, s in zip(("query", "value", "key"), shapes):
            if len(s) != 3 or s[-1] is None:
                raise ValueError(
                    f"{self._owner()}: {what}_shape must be (batch, T, dim) with a "
                    f"known dim, got {s}"
                )
        self._create_weights(tuple(shapes))

    def _pack(self):  # the four projections, biases folded in
        weights = self._call_weight_values
        return pack_multi_head_attention(weights[:4], weights[4:])

    supports_masking = True  # the output keeps the query's implicit mask (Keras)

    def call(
        self,
        query: Any,
        value: Any,
        key: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: Any = None,
        use_causal_mask: bool = False,
    ):
        return self._attend(query, value, key, query_mask, value_mask, key_mask,
                            attention_mask, return_attention_scores, training, use_causal_mask)

    def _masked_call(self, fn, args, kwargs, margs, mkwargs):
        # Keras reads the query's own (implicit) mask, whatever query_mask says, and ANDs
        # it into the attention mask; value_mask / key_mask come from the implicit masks
        # of value and key unless given (Layer.__call__'s <name>_mask rule).
        query_mask = _masking.first_mask(fn, margs, mkwargs)

        def run(*a, **k):
            return self._attend(*a, keras_query_mask=query_mask, **k)

        return _masking.masked_call(self, fn, args, kwargs, margs, mkwargs, run=run)

    def _attend(
        self,
        query: Any,
        value: Any,
        key: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: Any = None,
        use_causal_mask: bool = False,
        *,
        keras_query_mask: Any = None,
    ):
        owner = self._owner()
        want_scores = _bool(return_attention_scores, owner, "return_attention_scores")
        if keras_query_mask is not None:
            attention_mask = _with_query_mask(query, value, keras_query_mask, attention_mask,
                                              owner)
        # query_mask is ignored, as in Keras (which overwrites it with the query's Keras mask).
        # Keras takes its softmax path (fully masked rows -> zero weights) when scores are
        # returned or dropout > 0; the functional op does the same when asked for scores.
        softmax_path = want_scores or self.dropout > 0
        a = V.check_multi_head_attention(
            query,
            value,
            key,
            *[None] * 8,  # the 8 weights: build returns the layer's
            attention_mask,
            use_causal_mask,
            softmax_path,
            value_mask=value_mask,
            key_mask=key_mask,
            sliding_window=self.sliding_window,
            op=owner,
            build=self._ready,
        )
        out = F.run_multi_head_attention(a, self._packed)
        if softmax_path and not want_scores:
            return out[0]
        return out

    def _runner(self, query: Any, value: Any, key: Any = None, query_mask: Any = None,
                value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
                return_attention_scores: bool = False, training: Any = None,
                use_causal_mask: bool = False) -> Any:
        """A model's shape plan (models/shape_plan.py): what ``call(query, value[, key])``
        computes on the C++ path, with the checked arguments of the recorded shapes bound
        (a sliding window's mask too: it depends on the shapes alone); None with any mask
        (GroupQueryAttention, which inherits this, reads query_mask), a causal mask or the
        scores asked for, and off the C++ path."""
        if (query_mask is not None or value_mask is not None or key_mask is not None
                or attention_mask is not None or return_attention_scores is not False
                or use_causal_mask is not False or not F._cpp("multi_head_attention")):
            return None
        a = V.check_multi_head_attention(
            query, value, key, *[None] * 8, None, False, self.dropout > 0,
            value_mask=None, key_mask=None, sliding_window=self.sliding_window,
            op=self._owner(), build=self._ready)
        # (not the recording call's arrays: the plan must not keep them alive)
        a = a._replace(query=None, value=None, key=None)
        packed = self._packed
        scores = a.return_scores  # dropout > 0: Keras's softmax path, its weights dropped

        def run(q: np.ndarray, v: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
            b = a._replace(query=q, value=v, key=v if k is None else k)
            out = F.run_multi_head_attention(b, packed)
            return out[0] if scores else out

        return run


def _with_query_mask(query: Any, value: Any, query_mask: Any, attention_mask: Any,
                     owner: str) -> Any:
    """attention_mask (B, T, S), (T, S), a shape that broadcasts to (B, T, S), or None,
    ANDed with the query's implicit mask (B, T) as Keras's
    MultiHeadAttention._compute_attention_mask does ([B, T, 1])."""
    q_shape = np.shape(query)

    def fits(shape):
        if len(q_shape) < 2 or shape != tuple(q_shape[:2]):
            raise ValueError(
                f"{owner}: the query's mask has shape {shape}, expected (batch, T) = "
                f"{tuple(q_shape[:2])}"
            )

    m = C.bool_mask(query_mask, owner, "the query's mask", check=fits)
    v_shape = np.shape(value)
    if len(v_shape) != 3:
        return attention_mask  # the op's check reports the value
    full = (q_shape[0], q_shape[1], v_shape[1])
    rows = np.broadcast_to(m[:, :, None], full)
    if attention_mask is None:
        return np.ascontiguousarray(rows)
    a = C.bool_mask(attention_mask, owner, "attention_mask")
    if a.ndim > 3 or any(got not in (want, 1) for got, want in zip(a.shape[::-1], full[::-1])):
        return attention_mask  # the op's check reports the shape
    return np.ascontiguousarray(a & rows)


class GroupQueryAttention(MultiHeadAttention):
    """Grouped-query attention (Keras ``GroupQueryAttention`` / ``GroupedQueryAttention``):
    multi-head attention whose ``num_query_heads`` query heads share
    ``num_key_value_heads`` key and value heads, query head u reading key/value head
    u // (num_query_heads // num_key_value_heads) (docs/semantics.md §11).

    Parameters
    ----------
    head_dim : int
        Size of every head; the scores are scaled by 1/sqrt(head_dim).
    num_query_heads, num_key_value_heads : int
        The second divides the first.
    dropout, use_bias, sliding_window, flash_attention, kernel_initializer,
    bias_initializer, seed : as in :class:`MultiHeadAttention`.
    use_gate : must be False.

    Weights (Keras order): query/kernel (Dq, Nq, head_dim), query/bias (Nq, head_dim),
    key/kernel (Dk, Nkv, head_dim), key/bias (Nkv, head_dim), value/kernel
    (Dv, Nkv, head_dim), value/bias, attention_output/kernel (Nq, head_dim, Dq),
    attention_output/bias (Dq,); without the biases if use_bias=False.

    Call: as :class:`MultiHeadAttention` (masks, causal mask, attention scores
    (B, Nq, T, S)), except that an explicit ``query_mask`` (B, T) is used, as Keras's
    GroupedQueryAttention does (the query's own mask when none is given); the output has
    the query's features (B, T, Dq). It runs as MultiHeadAttention whose key and value
    projections have num_key_value_heads heads; each projected head serves its query heads
    (the NumPy path repeats it, as Keras does; the C++ path reads it in place, same values).
    """

    _deletes_input_masks = False  # (Keras's GroupedQueryAttention leaves them)
    _keras_class_name = "GroupedQueryAttention"  # (exported by Keras as GroupQueryAttention)

    config_keys = ("head_dim", "num_query_heads", "num_key_value_heads", "dropout",
                   "use_bias", "sliding_window", "kernel_initializer", "bias_initializer",
                   "seed")

    def __init__(
        self,
        head_dim: int,
        num_query_heads: int,
        num_key_value_heads: int,
        dropout: float = 0.0,
        use_bias: bool = True,
        sliding_window: int | None = None,
        flash_attention: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        mha_only = sorted(set(kwargs) & {"num_heads", "key_dim", "value_dim", "output_shape",
                                         "attention_axes"})
        if mha_only:
            raise TypeError(f"{owner}: unrecognized keyword arguments: {mha_only}")
        self.head_dim = _positive_int(head_dim, owner, "head_dim")
        self.num_query_heads = _positive_int(num_query_heads, owner, "num_query_heads")
        self.num_key_value_heads = _positive_int(num_key_value_heads, owner,
                                                 "num_key_value_heads")
        if self.num_query_heads % self.num_key_value_heads:
            raise ValueError(
                f"{owner}: num_query_heads ({self.num_query_heads}) must be divisible by "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        super().__init__(self.num_query_heads, self.head_dim, None, dropout, use_bias, None,
                         None, sliding_window, flash_attention, kernel_initializer,
                         bias_initializer, **kwargs)

    def _weight_specs(self, input_shape):
        specs = super()._weight_specs(input_shape)
        nkv, h = self.num_key_value_heads, self.head_dim
        out = []
        for name, shape, make in specs:
            if name.startswith(("key/", "value/")):
                shape = (shape[0], nkv, h) if name.endswith("kernel") else (nkv, h)
                fans = (shape[0], nkv * h) if name.endswith("kernel") else None
                init = self.kernel_initializer if name.endswith("kernel") else \
                    self.bias_initializer
                name, shape, make = weight_spec(name, shape, init, fans)
            out.append((name, shape, make))
        return out

    def _attend(self, query: Any, value: Any, key: Any = None, query_mask: Any = None,
                *args: Any, keras_query_mask: Any = None, **kwargs: Any):
        # Unlike MultiHeadAttention, Keras's GroupedQueryAttention uses an explicit
        # query_mask (the query's own mask only when none is given).
        if query_mask is not None:
            keras_query_mask = query_mask
        return super()._attend(query, value, key, None, *args,
                               keras_query_mask=keras_query_mask, **kwargs)
