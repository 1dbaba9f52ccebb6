"""fastlayers: fast CPU inference for Keras and PyTorch models and their layers.

Keras 3 semantics and weight layouts, float32, batch first, NHWC images. Each op
runs on compiled C++ kernels when they serve the call and on a readable NumPy
reference path otherwise; :func:`set_backend` chooses.

>>> import numpy as np, fastlayers as fl
>>> y = fl.dense(np.ones((2, 3)), np.ones((3, 4)), activation="relu")
>>> y.shape
(2, 4)
"""

from __future__ import annotations

from . import activations, layers
from ._backend import (
    core_available,
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    set_output_cache_limit,
    use_backend,
)
from ._runtime import runtime_info, show_runtime
from .functional import (
    additive_attention,
    attention,
    conv1d,  # convpool
    conv2d,
    conv2d_transpose,
    dense,
    depthwise_conv2d,  # convpool
    flatten,
    get_item,
    gru,
    layer_norm,
    lstm,
    lstm_cell,
    matmul,
    multi_head_attention,
    scaled_dot_product_attention,
    simple_rnn,
    softmax,
)
from .io import load_model
from .io.torch_fx import from_torch
from .models import Input, Model, Sequential

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Input",
    "Model",
    "Sequential",
    "activations",
    "additive_attention",
    "attention",
    "conv2d",
    "conv2d_transpose",
    "core_available",
    "dense",
    "flatten",
    "from_torch",
    "get_backend",
    "get_item",
    "get_num_threads",
    "gru",
    "layers",
    "layer_norm",
    "load_model",
    "lstm",
    "lstm_cell",
    "matmul",
    "multi_head_attention",
    "runtime_info",
    "scaled_dot_product_attention",
    "set_backend",
    "set_num_threads",
    "set_output_cache_limit",
    "show_runtime",
    "simple_rnn",
    "softmax",
    "use_backend",
    # convpool
    "conv1d",
    "depthwise_conv2d",
]
