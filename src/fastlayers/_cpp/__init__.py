"""The C++ path: every call into the compiled core ``fastlayers._core`` (csrc/bindings/).

One module per op family, mirroring fastlayers/_numpy/. Functions here take the
checked arguments of fastlayers/_validation.py (C-contiguous float32 arrays and
normalised options) and return float32 arrays. The ``pack_<op>`` functions pack a
layer's weights once, when they are set (fastlayers/layers/); the ops take the
packed weights or, for a functional call, the raw ones.

Only these modules (and _backend/_runtime, which import and describe the core) touch
``_core``.
"""
