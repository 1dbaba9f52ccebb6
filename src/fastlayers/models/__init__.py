"""Models: the Keras functional API (``Input``, ``Model``) and ``Sequential``.

See docs/architecture.md: a model is a graph of layers and ops recorded on symbolic
tensors; calling it replays the graph on arrays.
"""

from .base import BaseModel, InputLayer
from .functional import Input, Model
from .sequential import Sequential

__all__ = ["BaseModel", "Input", "InputLayer", "Model", "Sequential", "load_model",
           "model_from_json"]


def __getattr__(name: str):
    """``load_model`` and ``model_from_json`` also from here, as ``keras.models`` has them
    (they live in fastlayers.io, which imports this package)."""
    if name in ("load_model", "model_from_json"):
        from .. import io  # noqa: PLC0415

        return getattr(io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
