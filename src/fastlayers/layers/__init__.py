"""Keras-like layer classes that hold weights and run the functional ops.

Each class mirrors a Keras 3 layer: the same constructor arguments (those that
change inference; training-only ones such as ``dropout`` or ``kernel_regularizer``
are accepted and ignored), the same weights in the same order and shapes
(``get_weights`` / ``set_weights``), the same call arguments and the same outputs
(docs/semantics.md). Unknown constructor arguments raise ``TypeError``.

A layer builds lazily, on its first call or on an explicit ``build(input_shape)``,
creating its weights with Keras's default initializers (glorot_uniform kernels,
orthogonal recurrent kernels, zero biases, ...). The values follow Keras's
distributions but not its random streams; pass ``seed=<int>`` for reproducible
values. ``set_weights`` builds an unbuilt layer from the weight shapes.

The weights a layer holds are read-only float32 C-contiguous arrays; they change
only through ``build`` and ``set_weights``, which call :meth:`Layer._on_weights_set`
once. That is where the C++ path packs the weights (``_cpp.<family>.pack_<op>``),
never per call.

One module per family: base (:class:`Layer`), initializers, core (Dense, Flatten, Softmax,
Activation), conv (Conv2D, Conv1D, Conv3D, the depthwise and separable convolutions, the
transposed convolutions), pooling (max, average, global and adaptive poolings), padding
(ZeroPadding1D/2D/3D, Cropping1D/2D/3D), recurrent (LSTM, GRU, SimpleRNN, Bidirectional),
conv_recurrent (ConvLSTM1D, ConvLSTM2D),
attention (Attention, AdditiveAttention, MultiHeadAttention, GroupQueryAttention), experts
(Experts: the expert MLPs of a mixture-of-experts block), merging
(Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot and the functional
forms ``add``, ``concatenate``, ...), reshaping (Reshape, Permute, RepeatVector), wrappers
(TimeDistributed), regularization (Dropout and the other layers that are the identity at
inference), preprocessing (Resizing, CenterCrop and the random image augmentations, the
identity at inference), categorical (Discretization, CategoryEncoding), applications (the
layers keras.applications' models define: ConvNeXt's LayerScale and StochasticDepth,
InceptionResNetV2's CustomScaleLayer). A new
family is a new module whose layers subclass :class:`Layer`, declare ``config_keys`` (and,
with weights, ``_weight_specs``, ``call_weights`` and ``_pack``), check their call with the
op's ``_validation.check_<op>`` and run ``functional.run_<op>``; then it is imported here.

>>> import numpy as np, fastlayers as fl
>>> layer = fl.layers.Dense(4, activation="relu", seed=0)
>>> layer(np.ones((2, 3))).shape
(2, 4)
>>> [w.shape for w in layer.get_weights()]
[(3, 4), (4,)]
"""

from __future__ import annotations

from .applications import (  # keras.applications' own layers
    CustomScaleLayer,
    LayerScale,
    StochasticDepth,
)
from .attention import AdditiveAttention, Attention, GroupQueryAttention, MultiHeadAttention
from .base import Layer
from .categorical import CategoryEncoding, Discretization

# convpool: Conv1D, DepthwiseConv2D, SeparableConv2D, pooling, padding and cropping
from .conv import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from .conv_recurrent import ConvLSTM1D, ConvLSTM2D
from .core import Activation, Dense, Flatten, Softmax
from .einsum_dense import EinsumDense
from .experts import Experts  # mixture-of-experts blocks (from_torch's MoE models)
from .initializers import (  # importable from here as before (not layer classes)
    INITIALIZERS as INITIALIZERS,
)
from .initializers import (
    compute_fans as compute_fans,
)
from .initializers import (
    initial_value as initial_value,
)
from .initializers import (
    weight_spec as weight_spec,
)
from .masking import Embedding, Masking  # masks (issue 12)
from .merging import (  # merge topic (issue 12): merging layers and their functional forms
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import (  # norm (issue 12): normalization, activation, preprocessing
    ELU,
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    LeakyReLU,
    Normalization,
    PReLU,
    ReLU,
    Rescaling,
    RMSNormalization,
    UnitNormalization,
)
from .padding import (  # convpool
    Cropping1D,
    Cropping2D,
    Cropping3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from .pooling import (
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from .preprocessing import (
    AugMix,
    CenterCrop,
    CutMix,
    MixUp,
    RandAugment,
    RandomBrightness,
    RandomColorDegeneration,
    RandomColorJitter,
    RandomContrast,
    RandomElasticTransform,
    RandomErasing,
    RandomFlip,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomHue,
    RandomInvert,
    RandomPerspective,
    RandomPosterization,
    RandomRotation,
    RandomSaturation,
    RandomSharpness,
    RandomShear,
    RandomTranslation,
    RandomZoom,
    Resizing,
    Solarization,
)
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN
from .regularization import (
    ActivityRegularization,
    AlphaDropout,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    Identity,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from .reshaping import Permute, RepeatVector, Reshape  # merge topic (issue 12)
from .upsampling import UpSampling1D, UpSampling2D, UpSampling3D
from .wrappers import SpectralNormalization, TimeDistributed  # merge topic (issue 12)

# Keras's other names of the same classes (keras.layers.MaxPool2D is MaxPooling2D, ...), so
# that code written for keras.layers runs with fastlayers.layers as written.
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D)
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
Convolution1DTranspose, Convolution2DTranspose, Convolution3DTranspose = (
    Conv1DTranspose, Conv2DTranspose, Conv3DTranspose)
_KERAS_ALIASES = [
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D",
    "GlobalMaxPool2D", "GlobalMaxPool3D", "Convolution1D", "Convolution2D", "Convolution3D",
    "SeparableConvolution1D", "SeparableConvolution2D", "Convolution1DTranspose",
    "Convolution2DTranspose", "Convolution3DTranspose",
]


def __getattr__(name: str):
    """``Input`` and ``InputLayer`` also from here, as ``keras.layers`` has them (they live in
    fastlayers.models, which imports this package)."""
    if name in ("Input", "InputLayer"):
        from .. import models  # noqa: PLC0415

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Layer",
    "Dense",
    "EinsumDense",
    "Experts",
    "Flatten",
    "Conv2D",
    "Conv3D",
    "Conv3DTranspose",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "Attention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "GroupQueryAttention",
    "Softmax",
    "Activation",
    "LayerScale",
    "StochasticDepth",
    "CustomScaleLayer",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    # merging, shape and wrapper layers
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "add",
    "subtract",
    "multiply",
    "average",
    "maximum",
    "minimum",
    "concatenate",
    "dot",
    "Reshape",
    "Permute",
    "RepeatVector",
    "SpectralNormalization",
    "StackedRNN",
    "TimeDistributed",
    # convolution, pooling, padding and cropping
    "Conv1D",
    "DepthwiseConv2D",
    "DepthwiseConv1D",
    "SeparableConv2D",
    "SeparableConv1D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D",
    "AdaptiveAveragePooling1D",
    "AdaptiveAveragePooling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    # decoders: transposed convolution and upsampling
    "Conv2DTranspose",
    "Conv1DTranspose",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    # masks (issue 12)
    "Embedding",
    "Masking",
    # norm
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Rescaling",
    "Normalization",
    "RMSNormalization",
    "UnitNormalization",
    # categorical preprocessing (no vocabulary)
    "Discretization",
    "CategoryEncoding",
    # image preprocessing: resizing, and the augmentations (identity at inference)
    "Resizing",
    "CenterCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
    "RandomGrayscale",
    "RandomHue",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "RandomErasing",
    "RandomGaussianBlur",
    "RandomPerspective",
    "RandomInvert",
    "RandomPosterization",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomElasticTransform",
    "Solarization",
    "AugMix",
    "RandAugment",
    "CutMix",
    "MixUp",
] + _KERAS_ALIASES
