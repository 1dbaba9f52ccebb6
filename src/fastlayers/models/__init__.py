"""Models: the Keras functional API (``Input``, ``Model``) and ``Sequential``.

See docs/architecture.md: a model is a graph of layers and ops recorded on symbolic
tensors; calling it replays the graph on arrays.
"""

from .base import BaseModel, InputLayer
from .functional import Input, Model
from .sequential import Sequential

__all__ = ["BaseModel", "Input", "InputLayer", "Model", "Sequential", "load_model"]


def __getattr__(name: str):
    """``load_model`` also from here, as ``keras.models`` has it (it lives in
    fastlayers.io, which imports this package)."""
    if name == "load_model":
        from ..io import load_model  # noqa: PLC0415

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
