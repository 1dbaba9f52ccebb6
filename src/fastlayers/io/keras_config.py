"""A fastlayers model from a Keras model config (the ``config.json`` of a ``.keras`` file,
or the ``model_config`` attribute of a legacy ``.h5`` file).

The graph is rebuilt as Keras rebuilds it: layers are made from their configs in the
order listed, then each layer is called, node by node (``inbound_nodes``), on the
symbolic tensors its arguments name (``keras_history = [layer_name, node_index,
tensor_index]``); ``input_layers`` and ``output_layers`` name the model's inputs and
outputs. Nested ``Functional`` and ``Sequential`` models are rebuilt the same way and
called as layers. Keras ops recorded in the graph (``keras.ops.matmul`` and friends)
become the fastlayers ops that compute the same thing.

Everything that fastlayers cannot run is collected first and reported in one
``NotImplementedError``: layer classes it does not have (Lambda, custom classes, ...),
and arguments that would change the result.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import weakref
from typing import Any, Callable

import numpy as np

from .. import functional as F
from .. import layers as L
from .._numpy.activations import ACTIVATIONS
from .._symbolic import symbolic_op
from ..models import Input, Model, Sequential
from ..models.functional import flatten_structure
from . import keras_ops
from ._einsum import matmul_form

# Keras class name -> fastlayers layer class.
LAYER_CLASSES: dict[str, type] = {
    "Dense": L.Dense,
    "EinsumDense": L.EinsumDense,
    "Flatten": L.Flatten,
    "Conv2D": L.Conv2D,
    "Convolution2D": L.Conv2D,  # the Keras 2 alias
    "LSTM": L.LSTM,
    "GRU": L.GRU,
    "SimpleRNN": L.SimpleRNN,
    "Bidirectional": L.Bidirectional,
    "ConvLSTM1D": L.ConvLSTM1D,
    "ConvLSTM2D": L.ConvLSTM2D,
    "Attention": L.Attention,
    "AdditiveAttention": L.AdditiveAttention,
    "MultiHeadAttention": L.MultiHeadAttention,
    "GroupQueryAttention": L.GroupQueryAttention,
    "GroupedQueryAttention": L.GroupQueryAttention,
    "Softmax": L.Softmax,
    "Dropout": L.Dropout,
    "SpatialDropout1D": L.SpatialDropout1D,
    "SpatialDropout2D": L.SpatialDropout2D,
    "SpatialDropout3D": L.SpatialDropout3D,
    "AlphaDropout": L.AlphaDropout,
    "Identity": L.Identity,
    "GaussianNoise": L.GaussianNoise,
    "GaussianDropout": L.GaussianDropout,
    "ActivityRegularization": L.ActivityRegularization,
    "Activation": L.Activation,
    # ---- merge topic (issue 12): merging, shape and wrapper layers ----
    "Add": L.Add,
    "Subtract": L.Subtract,
    "Multiply": L.Multiply,
    "Average": L.Average,
    "Maximum": L.Maximum,
    "Minimum": L.Minimum,
    "Concatenate": L.Concatenate,
    "Dot": L.Dot,
    "Reshape": L.Reshape,
    "Permute": L.Permute,
    "RepeatVector": L.RepeatVector,
    "TimeDistributed": L.TimeDistributed,
    "SpectralNormalization": L.SpectralNormalization,
    # convpool: Conv1D, depthwise/separable convolutions, pooling, padding, cropping
    "Conv1D": L.Conv1D,
    "Convolution1D": L.Conv1D,
    "DepthwiseConv2D": L.DepthwiseConv2D,
    "SeparableConv2D": L.SeparableConv2D,
    "SeparableConvolution2D": L.SeparableConv2D,
    "DepthwiseConv1D": L.DepthwiseConv1D,
    "SeparableConv1D": L.SeparableConv1D,
    "SeparableConvolution1D": L.SeparableConv1D,
    "MaxPooling1D": L.MaxPooling1D,
    "MaxPool1D": L.MaxPooling1D,
    "MaxPooling2D": L.MaxPooling2D,
    "MaxPool2D": L.MaxPooling2D,
    "AveragePooling1D": L.AveragePooling1D,
    "AvgPool1D": L.AveragePooling1D,
    "AveragePooling2D": L.AveragePooling2D,
    "AvgPool2D": L.AveragePooling2D,
    "GlobalMaxPooling1D": L.GlobalMaxPooling1D,
    "GlobalMaxPool1D": L.GlobalMaxPooling1D,
    "GlobalMaxPooling2D": L.GlobalMaxPooling2D,
    "GlobalMaxPool2D": L.GlobalMaxPooling2D,
    "GlobalAveragePooling1D": L.GlobalAveragePooling1D,
    "GlobalAvgPool1D": L.GlobalAveragePooling1D,
    "GlobalAveragePooling2D": L.GlobalAveragePooling2D,
    "GlobalAvgPool2D": L.GlobalAveragePooling2D,
    "AdaptiveMaxPooling1D": L.AdaptiveMaxPooling1D,
    "AdaptiveMaxPooling2D": L.AdaptiveMaxPooling2D,
    "AdaptiveAveragePooling1D": L.AdaptiveAveragePooling1D,
    "AdaptiveAveragePooling2D": L.AdaptiveAveragePooling2D,
    "ZeroPadding1D": L.ZeroPadding1D,
    "ZeroPadding2D": L.ZeroPadding2D,
    "Cropping1D": L.Cropping1D,
    "Cropping2D": L.Cropping2D,
    # decoders: transposed convolution and upsampling
    "Conv2DTranspose": L.Conv2DTranspose,
    "Convolution2DTranspose": L.Conv2DTranspose,
    "Conv1DTranspose": L.Conv1DTranspose,
    "Convolution1DTranspose": L.Conv1DTranspose,
    "UpSampling1D": L.UpSampling1D,
    "UpSampling2D": L.UpSampling2D,
    # volumes: the 3D convolution, pooling, padding, cropping and upsampling
    "Conv3D": L.Conv3D,
    "Convolution3D": L.Conv3D,
    "Conv3DTranspose": L.Conv3DTranspose,
    "Convolution3DTranspose": L.Conv3DTranspose,
    "MaxPooling3D": L.MaxPooling3D,
    "MaxPool3D": L.MaxPooling3D,
    "AveragePooling3D": L.AveragePooling3D,
    "AvgPool3D": L.AveragePooling3D,
    "GlobalMaxPooling3D": L.GlobalMaxPooling3D,
    "GlobalMaxPool3D": L.GlobalMaxPooling3D,
    "GlobalAveragePooling3D": L.GlobalAveragePooling3D,
    "GlobalAvgPool3D": L.GlobalAveragePooling3D,
    "ZeroPadding3D": L.ZeroPadding3D,
    "Cropping3D": L.Cropping3D,
    "UpSampling3D": L.UpSampling3D,
    # masks (issue 12): the layers that make Keras's implicit masks
    "Embedding": L.Embedding,
    "Masking": L.Masking,
    # ---- norm (issue 12): normalization, activation and preprocessing layers ----
    "BatchNormalization": L.BatchNormalization,
    "LayerNormalization": L.LayerNormalization,
    "GroupNormalization": L.GroupNormalization,
    "ReLU": L.ReLU,
    "LeakyReLU": L.LeakyReLU,
    "PReLU": L.PReLU,
    "ELU": L.ELU,
    "Rescaling": L.Rescaling,
    "Normalization": L.Normalization,
    "RMSNormalization": L.RMSNormalization,
    "UnitNormalization": L.UnitNormalization,
    # image preprocessing: Resizing, CenterCrop, the augmentations (identity at inference)
    **{name: getattr(L, name) for name in L.preprocessing.__all__},
    # categorical preprocessing without a vocabulary: Discretization, CategoryEncoding
    **{name: getattr(L, name) for name in L.categorical.__all__},
    # keras.applications' own layers (ConvNeXt, InceptionResNetV2); see _APPLICATION_MODULES
    "LayerScale": L.LayerScale,
    "StochasticDepth": L.StochasticDepth,
    "CustomScaleLayer": L.CustomScaleLayer,
}
# The classes above that keras.applications defines outside keras.layers: only the module
# that defines them (or none, in a legacy .h5 file) names them, not a user's class that
# happens to share the name.
_APPLICATION_MODULES = {
    "LayerScale": "keras.src.applications.convnext",
    "StochasticDepth": "keras.src.applications.convnext",
    "CustomScaleLayer": "keras.src.applications.inception_resnet_v2",
}
MODEL_CLASSES = ("Functional", "Model", "Sequential")

# Config keys that do not change what a loaded layer computes (the weights come from the
# file): dropped when the fastlayers class does not take them.
_INFERENCE_IRRELEVANT = {
    "dtype", "autocast", "activity_regularizer", "seed",
    "kernel_initializer", "bias_initializer", "recurrent_initializer",
    "kernel_regularizer", "bias_regularizer", "recurrent_regularizer",
    "kernel_constraint", "bias_constraint", "recurrent_constraint",
    "beta_initializer", "gamma_initializer", "embeddings_initializer",
    "dropout", "recurrent_dropout", "unroll", "use_cudnn", "implementation",
    "build_config", "input_shape", "batch_input_shape", "batch_shape", "input_dim",
    "query_shape", "key_shape", "value_shape", "flash_attention", "optional",
}
# convpool: the training-only arguments of the depthwise and separable convolutions
_INFERENCE_IRRELEVANT |= {
    "depthwise_initializer", "pointwise_initializer", "depthwise_regularizer",
    "pointwise_regularizer", "depthwise_constraint", "pointwise_constraint",
}
# ... except where they matter: in MultiHeadAttention, dropout > 0 makes a fully masked
# row attend to nothing (as in Keras).
_KEEP: dict[type, tuple[str, ...]] = {
    L.MultiHeadAttention: ("dropout",),  # and its subclass GroupQueryAttention
    L.Embedding: ("input_dim",),  # masks (issue 12): the vocabulary size, not Keras 2's
}
# Keys that must keep their default value (they change the result).
_MUST_BE = {"time_major": False, "causal": False, "sparse": False, "ragged": False}
# Arguments tf.keras 2 writes into layers that do not take them in Keras 3, at values that
# change nothing: groups=1 (DepthwiseConv2D, SeparableConv1D/2D, Conv1D/2DTranspose: every
# tf.keras MobileNet, Xception, EfficientNet), noise_shape=None (SpatialDropout1D).
_KERAS2_NO_OPS = {"groups": 1, "noise_shape": None}


class Unsupported(Exception):
    """One reason a model cannot be loaded (collected, then reported together)."""


class Malformed(ValueError):
    """A config of the wrong structure (what Keras never writes)."""

    def __init__(self, what: str):
        super().__init__(f"malformed Keras config: {what}")


def _object(value: Any, what: str) -> dict:
    """``value``, checked to be a JSON object (a dict)."""
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be an object, got {value!r:.80}")
    return value


def _keras_name(cfg: dict) -> str:
    config = cfg.get("config")
    return (config.get("name") if isinstance(config, dict) else None) or cfg.get("name") or "?"


def _is_tensor(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def _is_constant(obj: Any) -> bool:
    """A constant argument of a graph node: Keras serializes a backend tensor as
    {"class_name": "__tensor__"} and a NumPy array as "__numpy__", each with "value" and
    "dtype" (the result of an eager call baked into the graph, e.g. a positional
    embedding's ``Embedding(T, D)(ops.arange(T)[None])``)."""
    return isinstance(obj, dict) and obj.get("class_name") in ("__tensor__", "__numpy__")


def _constant(obj: dict) -> np.ndarray:
    """The array of a constant argument (_is_constant): numeric and boolean dtypes only."""
    config = _object(obj.get("config"), f"a {obj['class_name']} constant's config")
    dtype = config.get("dtype")
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except TypeError:
        kind = None
    if kind not in ("b", "i", "u", "f"):
        raise Malformed(f"a constant tensor argument has dtype {dtype!r}; numeric or bool "
                        "dtypes are read")
    try:
        return np.asarray(config.get("value"), dtype=dtype)
    except (TypeError, ValueError) as e:
        raise Malformed(f"a constant tensor argument's value is not a {dtype} array: {e}") from e


def _plain_activation(value: Any) -> Any:
    """A Keras activation as stored in a config: a name, or {"class_name": "function",
    "config": name} (some Keras versions), or a serialized object (unsupported)."""
    if isinstance(value, dict):
        inner = value.get("config")
        if value.get("class_name") in ("function", "builtin_function") and isinstance(inner, str):
            return inner
        if "class_name" not in value and "value" in value:  # a lambda, as its bytecode
            raise Unsupported("activation: a Python lambda (saved as its bytecode), which "
                              "fastlayers does not run; give the layer a Keras activation "
                              "by name ('gelu', 'swish', ...)")
        what = ".".join(str(p) for p in (value.get("module"), value.get("class_name")) if p)
        raise Unsupported(f"activation {what or value!r}: a serialized object, not one of "
                          "Keras's activations by name")
    return value


def _custom_activation(value: Any, key: str) -> Any:
    """An activation by a name that is not Keras's: the function load_model's custom_objects
    gives for it (its registered name "package>name" or the name alone; a NumPy port of the
    user's Keras function), else refused with that said. Keras's own names pass as they are."""
    if not isinstance(value, str):
        return value
    custom = _CUSTOM.get() or {}
    for name in (value, value.split(">")[-1]):
        fn = custom.get(name)
        if fn is not None:
            if isinstance(fn, type) or not callable(fn):
                raise Unsupported(f"{key}={value!r}: custom_objects gives {fn!r} for it, not a "
                                  "function")
            return fn
    if value.strip().lower() not in ACTIVATIONS:
        raise Unsupported(
            f"{key}={value!r} is not an activation fastlayers has (docs/semantics.md §2 lists "
            "them; for a function of your own, pass load_model custom_objects="
            f"{{{value.split('>')[-1]!r}: a function computing it with NumPy}})")
    return value


# Mixed precision keeps the variables in float32 and computes in half precision; fastlayers
# computes such layers in float32 (docs/semantics.md §29).
_FLOAT32_VARIABLES = ("float32", "mixed_float16", "mixed_bfloat16", None)


def _dtype_name(value: Any) -> Any:
    """A layer's dtype as its name: a DTypePolicy's, or the value itself."""
    if isinstance(value, dict):  # a DTypePolicy
        return _object(value.get("config", {}), f"the config of dtype {value!r:.80}").get("name")
    return value


def _dtype_ok(value: Any) -> bool:
    return _dtype_name(value) in _FLOAT32_VARIABLES


def _check_origin(cfg: dict) -> str | None:
    """Why this layer config is not a built-in Keras layer fastlayers has, or None."""
    cls = cfg.get("class_name")
    module = cfg.get("module")
    registered = cfg.get("registered_name")
    if module is not None and not str(module).startswith("keras"):
        return f"custom class from module {module!r}"
    if registered not in (None, cls):
        return f"custom class registered as {registered!r}"
    if ">" in str(cls):  # a legacy .h5 file writes the registered name as the class name
        return f"custom class registered as {cls!r}"
    if cls in MODEL_CLASSES or cls == "InputLayer":
        return None
    if cls == "RNN" and module in (None, "keras.layers"):
        cell = (cfg.get("config") or {}).get("cell")
        name = cell.get("class_name") if isinstance(cell, dict) else None
        if name == "StackedRNNCells" and cell.get("module") in (None, "keras.layers"):
            cells = (cell.get("config") or {}).get("cells")
            if not isinstance(cells, list) or not cells:
                return "a StackedRNNCells cell without cells"
            for inner in cells:
                inner_name = inner.get("class_name") if isinstance(inner, dict) else None
                if inner_name not in _RNN_CELLS:
                    return (f"a StackedRNNCells of a {inner_name or 'custom'} cell (fastlayers "
                            f"stacks {', '.join(_RNN_CELLS)})")
                if inner.get("module") not in (None, "keras.layers"):
                    return _check_origin(inner)
            return None
        if name not in _RNN_CELLS:
            return (f"an RNN over a {name or 'custom'} cell (fastlayers has the RNN of "
                    f"{', '.join(_RNN_CELLS)}: the LSTM, GRU and SimpleRNN layers)")
        return _check_origin(cell) if cell.get("module") not in (None, "keras.layers") \
            else None
    if _is_op(cfg):
        return None if cls in OPS else "Keras op without a fastlayers equivalent"
    if cls not in LAYER_CLASSES:
        if module is None:  # Keras 3 saves its own layers with their module
            return ("no such layer in fastlayers (if it is a class of your own, saved without "
                    "registration, pass load_model custom_objects={"
                    f"{str(cls)!r}: a subclass of fastlayers.layers.Layer computing its call "
                    "with NumPy})")
        return "no such layer in fastlayers"
    if cls in _APPLICATION_MODULES and module not in (None, _APPLICATION_MODULES[cls]):
        return f"a {cls} from module {module!r} (fastlayers has {_APPLICATION_MODULES[cls]}'s)"
    return None


def _is_op(cfg: dict) -> bool:
    module = cfg.get("module") or ""
    if module:
        return module.startswith("keras.src.ops")
    # Legacy .h5 configs have no module. Concatenate, Add, Multiply, Maximum, Reshape, ... are
    # both a layer and an op: a layer's config always holds "trainable", an op's never does.
    # (Softmax stays the layer, which computes what the op does.)
    cls = cfg.get("class_name")
    if cls not in OPS:
        return False
    return cls not in LAYER_CLASSES or (cls != "Softmax"
                                        and "trainable" not in cfg.get("config", {}))


# ---- layers ---------------------------------------------------------------------------


def _layer_kwargs(cls: type, cfg: dict) -> dict[str, Any]:
    """Keras config -> the keyword arguments of the fastlayers class ``cls``."""
    config = dict(cfg.get("config", {}))
    params = inspect.signature(cls.__init__).parameters
    accepted = {
        p for p in params if params[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                    inspect.Parameter.VAR_POSITIONAL)
    } | {"name", "trainable"}
    # Arguments a layer takes through **kwargs: those it declares it ignores at inference, and
    # those it supports only at their default (it raises for any other value itself).
    accepted |= set(getattr(cls, "ignored_args", ())) | set(getattr(cls, "unsupported_args", {}))
    accepted |= set(getattr(cls, "config_keys", ()))  # what the layer declares it takes
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key in _MUST_BE:
            if value not in (_MUST_BE[key], None):
                raise Unsupported(f"{key}={value!r} (only {_MUST_BE[key]!r})")
            continue
        if key == "dtype":
            if not _dtype_ok(value):
                raise Unsupported(f"dtype={_dtype_name(value)!r} (fastlayers computes in float32 "
                                  "and reads float32 variables; mixed precision loads)")
            continue
        if key in ("lora_rank", "lora_alpha") and value is not None and "lora_rank" in getattr(
                cls, "unsupported_args", {}):
            if _LORA_MERGED.get():
                continue  # a .keras file: Keras saved the kernel with LoRA's update merged
            raise Unsupported(
                f"{key}={value!r} outside a .keras file (a legacy .h5 file, a JSON config or "
                "from_config): those weights (the .h5 file's, Keras's get_weights()) keep LoRA's "
                "factors apart from the kernel; save the model as .keras, where Keras merges "
                "them into the kernel, and load that file")
        if key.endswith("activation"):
            value = _custom_activation(_plain_activation(value), key)
            if value == "hard_sigmoid" and _KERAS2_FILE.get():
                raise Unsupported(
                    f"{key}='hard_sigmoid' in a file Keras 2 wrote: Keras 2 computes it as "
                    "clip(0.2 x + 0.5, 0, 1), Keras 3 and fastlayers as clip(x / 6 + 0.5, 0, "
                    "1), so the results would differ")
        keep = key not in _INFERENCE_IRRELEVANT or any(
            key in names for kept, names in _KEEP.items() if issubclass(cls, kept))
        if key in accepted and keep:
            kwargs[key] = value
        elif not keep:
            continue  # no effect on inference once the weights are loaded
        elif key in _KERAS2_NO_OPS and value == _KERAS2_NO_OPS[key]:
            continue
        else:
            raise Unsupported(f"argument {key}={value!r} is not supported by fastlayers")
    return kwargs


# Keras's RNN(cell) of a built-in cell is that cell's layer: the same weights (saved under
# the same "cell" path), the same arguments (the cell's and the RNN's).
_RNN_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}


def _rnn_as_layer(cfg: dict) -> dict:
    """An ``RNN(cell)`` config as the config of the cell's recurrent layer."""
    config = dict(cfg.get("config") or {})
    cell = config.pop("cell")
    merged = {**_object(cell.get("config", {}), "the RNN's cell config"), **config}
    return {"class_name": _RNN_CELLS[cell["class_name"]], "config": merged}


def _stacked_rnn(cfg: dict) -> Any:
    """An ``RNN(StackedRNNCells([...]))`` config as a StackedRNN of the cells' layers."""
    config = dict(cfg.get("config") or {})
    cell = config.pop("cell")
    if config.get("stateful"):
        raise Unsupported("stateful=True")
    cells = [make_layer({"class_name": _RNN_CELLS[c["class_name"]],
                         "config": _object(c.get("config", {}), "a stacked cell's config")})
             for c in cell["config"]["cells"]]
    try:
        return L.StackedRNN(cells, name=config.get("name"),
                            **{k: bool(config.get(k, False)) for k in (
                                "return_sequences", "return_state", "go_backwards",
                                "zero_output_for_mask")})
    except (NotImplementedError, ValueError, TypeError) as e:
        raise Unsupported(str(e)) from None


def make_layer(cfg: dict) -> Any:
    """A fastlayers layer (unbuilt) from one Keras layer config."""
    if cfg["class_name"] == "RNN" and (cfg.get("config") or {}).get("cell", {}).get(
            "class_name") == "StackedRNNCells":
        return _stacked_rnn(cfg)
    if cfg["class_name"] == "RNN":
        cfg = _rnn_as_layer(cfg)
    cls = LAYER_CLASSES[cfg["class_name"]]
    kwargs = _layer_kwargs(cls, cfg)
    if cls is L.Bidirectional:
        kwargs["layer"] = make_layer(cfg["config"]["layer"])
        if isinstance(cfg["config"].get("backward_layer"), dict):
            kwargs["backward_layer"] = make_layer(cfg["config"]["backward_layer"])
    if cls is L.TimeDistributed:  # merge topic: the wrapped layer's config is nested
        kwargs["layer"] = _wrapped_layer(cfg["config"].get("layer"))
    if cls is L.SpectralNormalization:
        inner = cfg["config"].get("layer")
        why = _check_origin(inner) if isinstance(inner, dict) else "not a layer config"
        if why is not None or inner.get("class_name") not in LAYER_CLASSES:
            what = inner.get("class_name") if isinstance(inner, dict) else repr(inner)
            raise Unsupported(f"wraps {what} ({why or 'a layer fastlayers does not have'})")
        kwargs["layer"] = make_layer(inner)
    try:
        return cls(**kwargs)
    except (NotImplementedError, ValueError, TypeError) as e:
        raise Unsupported(str(e)) from None


def _wrapped_layer(inner: Any) -> Any:
    """The layer a TimeDistributed config wraps: a layer fastlayers has, or a model (a
    frame encoder applied to every frame of a video, a sentence encoder to every sentence)."""
    if not isinstance(inner, dict):
        raise Unsupported(f"wraps {inner!r} (not a layer config)")
    why = _check_origin(inner)
    if (why or "").startswith("custom class") or _custom_class(inner) is not None:
        return _custom_layer(inner, why or "a custom class")  # (load_model's custom_objects)
    if why is None and (inner.get("class_name") == "InputLayer" or _is_op(inner)):
        why = "fastlayers wraps layers and models only"
    if why is None and inner.get("class_name") in MODEL_CLASSES:
        problems: list[str] = []
        model = _build(inner, problems)
        if problems:
            why = "; ".join(problems)
        else:
            return model
    if why is not None:
        raise Unsupported(f"wraps {inner.get('class_name')} {_keras_name(inner)!r}: {why}")
    return make_layer(inner)


# ---- Keras ops in the graph -----------------------------------------------------------


def _einsum(subscripts: str) -> Callable:
    """A fastlayers op for an einsum that is a (batched) matrix product: "...ik,...kj->...ij"
    or "...ik,...jk->...ij" with the same batch letters everywhere."""
    transposed = matmul_form(subscripts)
    if transposed is None:
        raise Unsupported(f"einsum {subscripts!r} (only batched matrix products)")
    return lambda x, y: F.matmul(x, y, transpose_b=transposed)


def _op_matmul(cfg: dict) -> Callable:
    return keras_ops.keras_matmul


def _op_softmax(cfg: dict) -> Callable:
    axis = cfg.get("config", {}).get("axis", -1)
    return lambda x: F.softmax(x, axis=axis)


def _op_einsum(cfg: dict) -> Callable:
    return _einsum(cfg.get("config", {}).get("subscripts", ""))


# Masks (issue 12): Keras records the ops that computed a layer's implicit mask on
# symbolic tensors (Embedding: not_equal(x, 0); Masking: any(not_equal(x, v), axis=-1))
# and passes their result as the next layer's ``mask`` keyword; these rebuild them.
@symbolic_op
def keras_not_equal(x: Any, y: Any) -> np.ndarray:
    """Keras's ``ops.not_equal`` as recorded in a graph: a bool array."""
    return np.not_equal(np.asarray(x), np.asarray(y))


@symbolic_op
def keras_any(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Keras's ``ops.any`` as recorded in a graph: a bool array."""
    if isinstance(axis, list):
        axis = tuple(axis)
    return np.asarray(np.any(np.asarray(x), axis=axis, keepdims=bool(keepdims)))


def _op_not_equal(cfg: dict) -> Callable:
    return keras_not_equal


def _op_any(cfg: dict) -> Callable:
    config = cfg.get("config", {})
    axis, keepdims = config.get("axis"), config.get("keepdims", False)
    return lambda x: keras_any(x, axis=axis, keepdims=keepdims)


# integ (issue 12): the ops of the masks that merging layers make (Merge and Concatenate's
# compute_mask: expand_dims, zeros_like / ones_like, logical_or, concatenate, any) and
# Attention's (convert_to_tensor of the query's mask), recorded the same way.
@symbolic_op
def keras_expand_dims(x: Any, axis: int) -> np.ndarray:
    """Keras's ``ops.expand_dims`` as recorded in a graph."""
    return np.expand_dims(np.asarray(x), axis)


@symbolic_op
def keras_logical_or(x: Any, y: Any) -> np.ndarray:
    """Keras's ``ops.logical_or`` as recorded in a graph: a bool array."""
    return np.logical_or(np.asarray(x), np.asarray(y))


@symbolic_op
def keras_full_like(x: Any, fill: bool, dtype: Any = None) -> np.ndarray:
    """Keras's ``ops.zeros_like`` (fill False) / ``ops.ones_like`` (fill True)."""
    x = np.asarray(x)
    return np.full(x.shape, fill, dtype=x.dtype if dtype is None else np.dtype(dtype))


@symbolic_op
def keras_concatenate(xs: Any, axis: int = 0) -> np.ndarray:
    """Keras's ``ops.concatenate`` as recorded in a graph (not the Concatenate layer): float32
    when any input is a float."""
    arrays = [np.asarray(x) for x in xs]
    if any(a.dtype.kind == "f" for a in arrays):
        arrays = [a.astype(np.float32, copy=False) for a in arrays]
    return np.concatenate(arrays, axis=axis)


@symbolic_op
def keras_convert_to_tensor(x: Any, dtype: Any = None) -> np.ndarray:
    """Keras's ``ops.convert_to_tensor`` as recorded in a graph."""
    return np.asarray(x, dtype=None if dtype is None else np.dtype(dtype))


def _op_expand_dims(cfg: dict) -> Callable:
    axis = cfg.get("config", {}).get("axis")
    if not isinstance(axis, int):
        raise Unsupported(f"expand_dims with axis {axis!r}")
    return lambda x: keras_expand_dims(x, axis)


def _op_logical_or(cfg: dict) -> Callable:
    return keras_logical_or


def _op_full_like(fill: bool) -> Callable[[dict], Callable]:
    def make(cfg: dict) -> Callable:
        dtype = cfg.get("config", {}).get("dtype")
        return lambda x: keras_full_like(x, fill, dtype)
    return make


def _op_concatenate(cfg: dict) -> Callable:
    axis = cfg.get("config", {}).get("axis", 0)
    return lambda xs: keras_concatenate(xs, axis=axis)


def _op_convert_to_tensor(cfg: dict) -> Callable:
    config = cfg.get("config", {})
    if config.get("sparse") or config.get("ragged"):
        raise Unsupported("convert_to_tensor to a sparse or ragged tensor")
    dtype = config.get("dtype")
    return lambda x: keras_convert_to_tensor(x, dtype)


OPS: dict[str, Callable[[dict], Callable]] = {
    "Matmul": _op_matmul,
    "Softmax": _op_softmax,
    "Einsum": _op_einsum,
    "NotEqual": _op_not_equal,  # masks (issue 12)
    "Any": _op_any,  # masks (issue 12)
    # integ (issue 12): the masks of merging layers and Attention
    "ExpandDims": _op_expand_dims,
    "LogicalOr": _op_logical_or,
    "ZerosLike": _op_full_like(False),
    "OnesLike": _op_full_like(True),
    "Concatenate": _op_concatenate,
    "ConvertToTensor": _op_convert_to_tensor,
    # the numpy-like ops a model's code calls on its tensors (x + y, x[:, 0], ops.mean, ...)
    **{name: (lambda cfg, name=name: _keras_op(name, cfg)) for name in keras_ops.OPS},
}


def _keras_op(name: str, cfg: dict) -> Callable:
    config = {k: v for k, v in cfg.get("config", {}).items() if k != "name"}
    bad = keras_ops.problem(name, config)
    if bad is not None:
        raise Unsupported(bad)
    return lambda *args, **kwargs: keras_ops.keras_op(name, config, *args, **kwargs)


class _Op:
    """A Keras op node: called like a layer, it applies the fastlayers op (which records a
    node itself when given symbolic tensors)."""

    def __init__(self, cfg: dict):
        self.name = _keras_name(cfg)
        self.fn = OPS[cfg["class_name"]](cfg)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


# ---- models ---------------------------------------------------------------------------


# Whether the config being built comes from a file Keras 2 (tf.keras) wrote (build_model).
_KERAS2_FILE: contextvars.ContextVar[bool] = contextvars.ContextVar("keras2_file", default=False)
# Whether its weights hold the kernels of LoRA layers merged (a .keras file: build_model).
_LORA_MERGED: contextvars.ContextVar[bool] = contextvars.ContextVar("lora_merged", default=False)
# load_model's custom_objects: a custom class's name -> the fastlayers Layer subclass to make.
_CUSTOM: contextvars.ContextVar[dict | None] = contextvars.ContextVar("custom_objects",
                                                                      default=None)


def build_model(cfg: dict, keras_version: Any = None, lora_merged: bool = False,
                custom_objects: dict | None = None) -> Any:
    """A fastlayers Model or Sequential from a Keras model config (``keras_version``: the
    file's, when it says). Raises one NotImplementedError listing everything fastlayers
    cannot run. ``lora_merged``: the weights come from a .keras file, whose kernels of
    layers with ``lora_rank`` Keras saved with the LoRA update merged (``kernel +
    lora_alpha / lora_rank · A·B``), so those layers load as plain ones; a legacy .h5 file
    stores the factors apart (refused). ``custom_objects``: load_model's (_custom_layer)."""
    if isinstance(keras_version, bytes):
        keras_version = keras_version.decode(errors="replace")
    major = str(keras_version or "3").split(".")[0]
    token = _KERAS2_FILE.set(major.isdigit() and int(major) < 3)
    lora = _LORA_MERGED.set(bool(lora_merged))
    custom = _CUSTOM.set(dict(custom_objects) if custom_objects else None)
    from ..layers.base import Layer  # noqa: PLC0415 (keeps the module's imports as they were)

    for key, cls in (custom_objects or {}).items():
        # (ports a custom layer makes itself, held in a list, are named by Keras's class too)
        if isinstance(cls, type) and issubclass(cls, Layer) and isinstance(key, str):
            PORT_NAMES[cls] = key.split(">")[-1]
    try:
        return _build_model(cfg)
    finally:
        _CUSTOM.reset(custom)
        _LORA_MERGED.reset(lora)
        _KERAS2_FILE.reset(token)


def _build_model(cfg: dict) -> Any:
    if isinstance(cfg, dict) and cfg.get("class_name") not in MODEL_CLASSES and (
        _check_origin(cfg) or "").startswith("custom class"):
        inner = cfg.get("config")
        graph = isinstance(inner, dict) and {"layers", "input_layers", "output_layers"} <= set(
            inner)
        why = ("a subclassed model made with the functional constructor: its config holds a "
               "graph of layers, but its own call, which may differ from the graph, is Python "
               "code; a model that does not override call loads when built as "
               "keras.Model(inputs, outputs)" if graph else
               "a subclassed model's config holds no graph of layers")
        raise NotImplementedError(
            f"fastlayers cannot load this model: {cfg.get('class_name')} {_keras_name(cfg)!r} "
            f"is a {_check_origin(cfg)} ({why})"
        )
    if not isinstance(cfg, dict) or cfg.get("class_name") not in MODEL_CLASSES:
        raise ValueError(
            "not a Keras model config: expected class_name Functional, Model or Sequential, "
            f"got {cfg.get('class_name') if isinstance(cfg, dict) else type(cfg).__name__!r}"
        )
    problems: list[str] = []
    model = _build(cfg, problems)
    if problems:
        lines = "\n  ".join(problems)
        raise NotImplementedError(
            f"fastlayers cannot load this model ({len(problems)} problem(s)):\n  {lines}\n"
            "What loads is listed in docs/semantics.md §29. A Lambda written with keras.ops "
            "calls can be replaced by those calls (the graph records them); a model "
            "can also be built in code with fastlayers' layers and functions, and its "
            "weights set with set_weights."
        )
    return model


def _build(cfg: dict, problems: list[str]) -> Any:
    """Make every layer (collecting what cannot be made), then wire the graph; None when
    anything (here or before) could not be made."""
    inner = _object(cfg.get("config"), f"the config of {cfg.get('class_name')} "
                    f"{_keras_name(cfg)!r}")
    layers = inner.get("layers")
    if not isinstance(layers, list):
        raise Malformed(f"{cfg.get('class_name')} {_keras_name(cfg)!r} needs 'layers', a list "
                        f"of layer configs, got {layers!r:.80}")
    for sub in layers:
        _object(sub, "a layer entry in 'layers'")
        _object(sub.get("config", {}), f"the config of layer {sub.get('class_name')!r}")
    made: dict[str, Any] = {}
    for sub in layers:
        name = _keras_name(sub)
        why = _check_origin(sub)
        if sub.get("class_name") not in MODEL_CLASSES and (
                (why or "").startswith("custom class") or _custom_class(sub) is not None):
            try:
                made[name] = _custom_layer(sub, why or "a custom class")
            except Unsupported as e:
                problems.append(f"{sub.get('class_name')} {name!r}: {e}")
            continue
        if why is not None:
            problems.append(f"{sub.get('class_name')} {name!r}: {why}")
            continue
        try:
            made[name] = _make_any(sub, problems)
        except Unsupported as e:
            problems.append(f"{sub.get('class_name')} {name!r}: {e}")
    if problems:
        return None
    model = _sequential(inner, made) if cfg["class_name"] == "Sequential" else _functional(
        inner, made)
    # The config it was made from (a nested model's too): get_config / to_json give it back
    # while its layers are those it names (a model built in code has none; semantics §29).
    model.__dict__["_keras_config"] = copy.deepcopy(cfg)
    model.__dict__["_keras_config_layers"] = model._layer_names_deep()
    return model


def _custom_class(sub: dict) -> Any:
    """What load_model's custom_objects gives for this layer config: by its registered name
    ("package>Name"), its class name (a legacy .h5 file writes the registered name there), or
    the class name alone; None if nothing."""
    custom = _CUSTOM.get()
    if not custom:
        return None
    name, registered = str(sub.get("class_name")), sub.get("registered_name")
    for key in (registered, name, name.split(">")[-1]):
        if key in custom:
            return custom[key]
    return None


#: The Keras class name of each port class load_model was given (custom_objects): a .keras
#: file names the groups of a port's instances by it (io/keras_files.py, _keras_class).
PORT_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _custom_layer(sub: dict, why: str) -> Any:
    """A custom Keras layer made from load_model's ``custom_objects``: the fastlayers Layer
    subclass given for its registered name or its class name (a port of its call to NumPy,
    with Keras's build and add_weight), constructed from the config's arguments; its weights
    are then read from the file in the order of its add_weight calls, as Keras saved them."""
    from ..layers.base import Layer  # noqa: PLC0415 (keeps the module's imports as they were)

    cls = _custom_class(sub)
    if cls is None:
        name = str(sub.get("class_name")).split(">")[-1]
        raise Unsupported(f"{why} (pass load_model custom_objects={{{name!r}: a subclass of "
                          "fastlayers.layers.Layer computing its call with NumPy})")
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise Unsupported(f"custom_objects gives {cls!r} for it, not a subclass of "
                          "fastlayers.layers.Layer (fastlayers runs no Keras or TensorFlow code: "
                          "port its call to NumPy, with build and add_weight as in Keras)")
    config = dict(sub.get("config") or {})
    dtype = config.pop("dtype", None)
    if dtype is not None and not _dtype_ok(dtype):
        raise Unsupported(f"dtype={_dtype_name(dtype)!r} (fastlayers computes in float32)")
    # Every argument the port's __init__ takes (all of them through **kwargs): the config is
    # the custom class's own, so none is known to be irrelevant (input_dim, dropout, seed
    # may be its own arguments); Keras's base arguments go to Layer, which takes them.
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        config = {k: v for k, v in config.items() if k in params}
    try:
        layer = cls(**config)
    except (NotImplementedError, ValueError, TypeError) as e:
        raise Unsupported(f"{cls.__name__}(**its config) failed: {e}") from None
    # Keras's class name (the port's may differ): a .keras file names the layer's group by it
    # when the config has no name (io/keras_files.py, _keras_class)
    layer.__dict__["_keras_class_loaded"] = str(sub.get("class_name")).split(">")[-1]
    return layer


def _make_any(sub: dict, problems: list[str]) -> Any:
    cls = sub["class_name"]
    if cls in MODEL_CLASSES:
        return _build(sub, problems)
    if cls == "InputLayer":
        return _input(sub)
    if _is_op(sub):
        return _Op(sub)
    if cls == "Bidirectional":
        for key in ("layer", "backward_layer"):
            wrapped = sub.get("config", {}).get(key)
            if isinstance(wrapped, dict) and (
                wrapped.get("class_name") not in ("LSTM", "GRU", "SimpleRNN", "RNN")
                or _check_origin(wrapped)
            ):
                why = _check_origin(wrapped) if wrapped.get("class_name") == "RNN" else None
                raise Unsupported(
                    f"wraps {wrapped.get('class_name')} {_keras_name(wrapped)!r} (" + (
                        why or "fastlayers wraps its LSTM, GRU and SimpleRNN only, or an RNN "
                        "of their cells") + ")"
                )
    return make_layer(sub)


def _input(sub: dict) -> Any:
    config = sub.get("config", {})
    for key, want in _MUST_BE.items():
        if config.get(key, want) not in (want, None):
            raise Unsupported(f"{key}={config[key]!r} (only {want!r})")
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is None:
        raise Unsupported("an InputLayer without batch_shape")
    # The batch size is left open: Keras records the first batch a model without an Input saw
    # (or keras.Input's batch_size), and runs the loaded model on any batch all the same.
    return Input(shape=tuple(shape[1:]), dtype=config.get("dtype"), name=config.get("name"))


def _sequential(inner: dict, made: dict[str, Any]) -> Any:
    stack = []
    layers_cfg = inner.get("layers", [])
    for i, sub in enumerate(layers_cfg):
        obj = made[_keras_name(sub)]
        shape = sub.get("config", {}).get("batch_input_shape")
        if i == 0 and sub["class_name"] != "InputLayer" and shape is not None:
            stack.append(Input(shape=tuple(shape[1:])))  # Keras 2 form; any batch, as _input
        if isinstance(obj, _Op):
            raise NotImplementedError(f"Sequential: op {obj.name!r} inside a Sequential model")
        stack.append(obj)
    return Sequential(stack, name=inner.get("name"))


def _functional(inner: dict, made: dict[str, Any]) -> Any:
    outputs: dict[tuple[str, int], Any] = {}  # (layer name, node index) -> call result
    pending = []  # (layer name, node index, node data), Keras's order
    nested: set[str] = set()  # nested functional models
    sequential: set[str] = set()  # nested Sequential models
    keras2 = False  # Keras 2 stores nodes as lists of [layer, node, tensor, kwargs]
    for sub in inner.get("layers", []):
        name = _keras_name(sub)
        obj = made[name]
        if sub["class_name"] == "InputLayer":
            outputs[(name, 0)] = [obj]
            continue
        if sub["class_name"] in ("Functional", "Model"):
            nested.add(name)
        elif sub["class_name"] == "Sequential":
            sequential.add(name)
        nodes = sub.get("inbound_nodes", [])
        if not isinstance(nodes, (list, tuple)):
            raise Malformed(f"the inbound_nodes of {name!r} must be a list, got {nodes!r:.80}")
        for k, node in enumerate(nodes):
            keras2 = keras2 or not isinstance(node, dict)
            pending.append((name, k, node))

    def tensor(history: Any, endpoint: bool = False) -> Any:
        name, node_index, tensor_index = _history(history)
        if (name in nested and (endpoint or keras2)) or (name in sequential and keras2):
            # A functional model's node 0 is the one its construction made, so Keras
            # counts its calls from 1 in input_layers / output_layers (and, in Keras 2
            # configs, in the nodes too; Keras 3 nodes count only the calls). tf.keras 2
            # counts a nested Sequential's calls from 1 too.
            node_index -= 1
        if (name, node_index) not in outputs:
            if endpoint:
                raise Malformed(f"input_layers / output_layers name {history}, a node the "
                                "config does not make")
            raise KeyError(name)  # not made yet: the node waits
        made_here = outputs[(name, node_index)]
        if tensor_index >= len(made_here):
            raise Malformed(f"{history} names output {tensor_index} of a node with "
                            f"{len(made_here)} output(s)")
        return made_here[tensor_index]

    def resolve(obj: Any) -> Any:
        if _is_tensor(obj):
            return tensor(obj["config"]["keras_history"])
        if _is_constant(obj):
            return _constant(obj)
        if isinstance(obj, list):
            return [resolve(o) for o in obj]
        if isinstance(obj, tuple):
            return tuple(resolve(o) for o in obj)
        if isinstance(obj, dict):
            return {k: resolve(v) for k, v in obj.items()}
        return obj

    while pending:  # a node waits until the nodes it reads are done (shared layers)
        progress = False
        for item in list(pending):
            name, k, node = item
            if any((name, j) not in outputs for j in range(k)):
                continue  # a layer's nodes are called in their order
            try:
                args, kwargs = _node_call(node, resolve)
            except KeyError:
                continue
            out = _call(made[name], name, args, kwargs)
            # (a nested model's outputs, nested lists and dicts by sorted key, in the order
            # in which Keras's tree.flatten numbers them in keras_history)
            outputs[(name, k)] = flatten_structure(out, name)
            pending.remove(item)
            progress = True
        if not progress:
            raise ValueError(
                f"Keras config: cannot connect the nodes of {sorted({p[0] for p in pending})} "
                "(they read tensors no layer makes)"
            )
    if inner.get("input_layers") is None or inner.get("output_layers") is None:
        raise ValueError("Keras config: a functional model needs input_layers and output_layers")
    ins = _endpoints(inner["input_layers"], functools.partial(tensor, endpoint=True))
    outs = _endpoints(inner["output_layers"], functools.partial(tensor, endpoint=True))
    if isinstance(outs, list) and len(outs) == 1:
        outs = outs[0]  # one output, listed (as tf.keras 2 lists every one): Keras returns it
    model = Model(ins, outs, name=inner.get("name"))
    if not keras2:
        # Keras 3's MultiHeadAttention deletes its inputs' masks when it runs (tf.keras 2's
        # does not). A Keras 3 config holds the masks its single-argument calls recorded as
        # explicit mask ops, so the deletion reaches the same readers as in Keras
        # (docs/semantics.md §22; models/functional.py, _run_with_masks). The mark is on the
        # nodes, so that a model built over these tensors (feature extraction) keeps it.
        for node in model._nodes:
            if node.layer is not None and node.layer._deletes_input_masks:
                node.deletes_masks = True
    return model


def _history(history: Any) -> tuple[str, int, int]:
    """A tensor reference (keras_history, an endpoint): [layer_name, node_index,
    tensor_index], checked."""
    if not (isinstance(history, (list, tuple)) and len(history) == 3
            and isinstance(history[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                    for i in history[1:])):
        raise Malformed(f"a tensor reference is [layer_name, node_index, tensor_index], got "
                        f"{history!r:.80}")
    return history[0], history[1], history[2]


def _node_call(node: Any, resolve: Callable) -> tuple[list, dict]:
    """The arguments of one inbound node: Keras 3 {"args", "kwargs"}, or Keras 2's list of
    [layer_name, node_index, tensor_index, kwargs] entries."""
    if isinstance(node, dict):
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        if not isinstance(args, (list, tuple)):
            raise Malformed(f"an inbound node's args must be a list, got {args!r:.80}")
        args, kwargs = resolve(args), resolve(_object(kwargs, "an inbound node's kwargs"))
    else:
        if not isinstance(node, (list, tuple)) or not all(isinstance(e, (list, tuple))
                                                          for e in node):
            raise Malformed(f"a Keras 2 inbound node is a list of [layer_name, node_index, "
                            f"tensor_index, kwargs] lists, got {node!r:.80}")
        entries = node
        tensors = [resolve({"class_name": "__keras_tensor__",
                            "config": {"keras_history": e[:3]}}) for e in entries]
        kwargs = {}
        if entries and len(entries[0]) > 3 and isinstance(entries[0][3], dict):
            kwargs = {k: (resolve({"class_name": "__keras_tensor__",
                                   "config": {"keras_history": v}})
                          if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str)
                          else v)
                      for k, v in entries[0][3].items()}
        args = [tensors[0] if len(tensors) == 1 else tensors]
    kwargs = {k: v for k, v in kwargs.items()
              if k != "training" and not (k == "mask" and v is None)}
    return args, kwargs


def _call(obj: Any, name: str, args: list, kwargs: dict) -> Any:
    try:
        return obj(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Keras config: calling {name!r} failed: {e}") from e


def _endpoints(spec: Any, tensor: Callable) -> Any:
    """input_layers / output_layers: one [name, node, tensor], a list of them, or a dict."""
    if isinstance(spec, dict):
        return {k: _endpoints(v, tensor) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], str):
        return tensor(spec)  # one [name, node, tensor] (checked there)
    if isinstance(spec, (list, tuple)):
        return [_endpoints(s, tensor) for s in spec]
    raise Malformed(f"input_layers / output_layers hold [layer_name, node_index, "
                    f"tensor_index] lists, got {spec!r:.80}")
