"""Models: the Keras functional API (``Input``, ``Model``) and ``Sequential``.

See docs/architecture.md: a model is a graph of layers and ops recorded on symbolic
tensors; calling it replays the graph on arrays.
"""

from .base import BaseModel, InputLayer
from .functional import Input, Model
from .sequential import Sequential

__all__ = ["BaseModel", "Input", "InputLayer", "Model", "Sequential"]
