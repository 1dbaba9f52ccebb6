"""The C++ path: every call into the compiled core ``fastlayers._core`` (csrc/bindings/).

One module per op family, mirroring fastlayers/_numpy/. Functions here take the
checked arguments of fastlayers/_validation.py (C-contiguous float32 arrays and
normalised options, as a named tuple) and return float32 arrays. The ``pack_<op>``
functions pack a layer's weights once, when they are set (fastlayers/layers/); the
ops take the packed weights or, for a functional call, the raw ones.

Only these modules (and _backend/_runtime, which import and describe the core) touch
``_core``. Importing them is safe without the core: they reach it only when called.
"""

from .attention import pack_multi_head_attention as pack_multi_head_attention
from .conv2d import pack_conv2d as pack_conv2d
from .dense import pack_dense as pack_dense
from .recurrent import pack_gru as pack_gru
from .recurrent import pack_lstm as pack_lstm
from .recurrent import pack_simple_rnn as pack_simple_rnn
