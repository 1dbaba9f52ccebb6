"""Reading Keras model and weights files (``.keras``, legacy ``.h5``, ``.weights.h5``).

``fastlayers.load_model(path)`` returns a fastlayers model; ``model.load_weights(path)``
sets the weights of a model built in code; ``fastlayers.models.model_from_json(text)``
makes a model from a Keras model's JSON (``to_json()``). HDF5 needs the optional h5py
(``pip install "fastlayers[keras]"``), imported only when a file is read.
"""

from .keras_files import load_model, load_weights, model_from_json

__all__ = ["load_model", "load_weights", "model_from_json"]
