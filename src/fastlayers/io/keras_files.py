"""Reading Keras model files: ``.keras`` (Keras 3), legacy ``.h5`` (Keras 2 / tf.keras and
Keras 3's legacy writer) and ``.weights.h5`` (Keras 3 weights only).

HDF5 needs h5py, an optional dependency (``pip install "fastlayers[keras]"``); it is
imported only when a file is read.

How weights find their layers (as Keras finds them):

* Keras 3 files (``model.weights.h5`` inside a ``.keras`` zip, or ``.weights.h5``) store
  each layer's variables in ``<path>/vars/0, 1, ...`` in the layer's weight order. The
  path is Keras's object walk: ``layers/<snake_case class name>`` with a counter per
  class name in ``model.layers`` order (``dense``, ``dense_1``; input layers count),
  recurrent layers under ``.../cell/vars``, Bidirectional under
  ``.../forward_layer/cell`` and ``.../backward_layer/cell``, MultiHeadAttention under
  ``.../query_dense``, ``key_dense``, ``value_dense``, ``output_dense``, and nested
  models under ``.../layers/...`` again. Recent Keras versions also write the layer's
  name as the ``name`` attribute of each ``vars`` group: when the names in the file are
  exactly the names of the model's layers (a model rebuilt from the same file), layers
  are matched by name, otherwise by path (a model built in code with other names).
* Legacy HDF5 files (``model_weights`` group, or the root of a legacy weights file) hold
  one group per top-level layer, named after it, with the arrays listed in order by the
  ``weight_names`` attribute (trainable weights first, as Keras's legacy writer does; a
  nested model's group holds all its layers' weights: the trainable ones of every layer,
  then the non-trainable ones - a frozen layer's, and the statistics of a trainable one,
  ``Layer.non_trainable_weight_names``; which layers count as trainable is read from the
  weight names, ``<layer>/.../<variable>``, where they say: ``_leaves_as_named``). Layers
  are matched by name when every name is found, otherwise in order, as Keras does.

Optimizer state is skipped.
"""

from __future__ import annotations

import contextlib
import io as _stdio
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import layers as L
from ..models import Model, Sequential
from ..models.base import BaseModel, InputLayer
from .keras_config import PORT_NAMES, Malformed, build_model

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "reading Keras .keras/.h5 files needs h5py, an optional dependency of fastlayers: "
            'pip install "fastlayers[keras]"'
        ) from e
    return h5py


def _path(path: Any, what: str = "a file path (str or os.PathLike)") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected {what}, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        if all(os.path.isfile(os.path.join(path, m)) for m in ("config.json", "model.weights.h5")):
            return path  # what model.save(path, zipped=False) writes: a .keras file's members
        raise IsADirectoryError(f"{path!r} is a directory, not a Keras model or weights file "
                                "(nor one that model.save(path, zipped=False) writes, holding "
                                "config.json and model.weights.h5)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file (a Keras model or weights file)")
    return path


# What a damaged or foreign file makes the readers raise below the clear checks: the zip
# reader's BadZipFile / zlib.error / EOFError, h5py's OSError, RuntimeError and KeyError,
# and KeyError, IndexError, AttributeError, TypeError, RecursionError from a config of the
# wrong structure, OverflowError from an integer too large for C (an axis of 2**31).
# NotImplementedError and RecursionError are RuntimeErrors; the first is a clear error, passed
# on with ValueError, ImportError (no h5py) and PermissionError.
_LOW_LEVEL = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, KeyError,
              IndexError, AttributeError, TypeError, OverflowError)


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn the low-level errors of reading ``path`` into one ValueError naming the file
    (chained from the original); the clear errors pass through unchanged."""
    try:
        yield
    except Malformed as exc:  # found where the config is read: it gets the file's name
        raise ValueError(f"{path!r}: {exc}") from exc
    except (ValueError, NotImplementedError, PermissionError):
        raise
    except _LOW_LEVEL as exc:
        raise ValueError(
            f"{path!r} is not a valid Keras file (corrupt, or a malformed config): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _json(raw: bytes | str, path: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; too deep
        raise ValueError(f"{path!r}: {what} is not valid JSON ({exc})") from exc


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == _HDF5_SIGNATURE


def load_model(path: Any, custom_objects: Any = None, compile: Any = True,  # noqa: A002
               safe_mode: Any = True) -> BaseModel:
    """A fastlayers ``Model`` or ``Sequential`` from a Keras model file, or from a Keras
    model object (which Keras saves to a temporary ``.keras`` file, read as any other).

    ``custom_objects`` maps the name of a custom Keras layer class (its class name or its
    registered name) to a subclass of ``fastlayers.layers.Layer`` that computes its call with
    NumPy, written as a Keras layer is (``build`` making its weights with ``add_weight``, in the
    order the Keras layer makes them; ``__init__`` taking the config's arguments): the layer
    is made from the file's config and its weights read from the file. Other custom classes
    are refused. A custom activation function's name (or registered name) maps to a NumPy
    function of a float32 array that returns an array of its shape. ``compile`` and
    ``safe_mode`` are Keras's arguments, accepted so that
    ``keras.models.load_model(path, compile=False)`` works as written, and change nothing:
    fastlayers compiles nothing (the training config is not read) and never runs code from a
    file (Lambda layers are refused, as Keras's safe mode does).

    Reads ``.keras`` files (a zip of config.json and model.weights.h5, or the directory of
    them that ``model.save(path, zipped=False)`` writes) and legacy ``.h5`` files (written
    by Keras 2 / tf.keras, or by Keras 3 for ``model.save("x.h5")``). The graph is rebuilt
    from the file's config with fastlayers layers and ops, and the weights are set from the
    file.

    A model with layers fastlayers cannot run (Lambda, custom classes, layers it does not
    have) or with arguments that change the result and are not supported raises one
    ``NotImplementedError`` that lists every such layer; nothing is loaded partly.
    Needs h5py (``pip install "fastlayers[keras]"``). A file that is damaged or whose
    config has the wrong structure raises ValueError naming the file.
    """
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("load_model: custom_objects must be a dict (a class name -> a "
                        "fastlayers Layer subclass, or an activation's name -> a NumPy "
                        f"function), got {type(custom_objects).__name__}")
    if _is_keras_model(path):
        return _load_live(path, custom_objects)
    path = _path(path, "a file path (str or os.PathLike) or a Keras model")
    with _reading(path):
        return _load_model(path, custom_objects)


def _is_keras_model(obj: Any) -> bool:
    """Whether obj is a Keras (3, or tf.keras 2) model object, subclassed ones included."""
    return callable(getattr(obj, "save", None)) and any(
        (getattr(klass, "__module__", None) or "").split(".")[0] in ("keras", "tf_keras")
        and klass.__name__ in ("Model", "Sequential", "Functional")
        for klass in type(obj).__mro__)


def _load_live(model: Any, custom_objects: dict | None = None) -> BaseModel:
    """load_model of a Keras model object: saved by Keras to a .keras file in a temporary
    directory, then read from it (the path every test of the loader takes)."""
    if not getattr(model, "built", True):
        raise ValueError(f"load_model: the Keras {type(model).__name__} given is not built (it "
                         "has no weights yet): give it an Input, or call it on data, first")
    with tempfile.TemporaryDirectory(prefix="fastlayers-") as tmp:
        path = os.path.join(tmp, "model.keras")
        try:
            model.save(path)
        except Exception as e:  # noqa: BLE001 (Keras's own error, reported as such)
            raise ValueError(f"load_model: Keras could not save the {type(model).__name__} "
                             f"given ({type(e).__name__}: {e})") from e
        with _reading(path):
            return _load_model(path, custom_objects)


def _keras_members(path: str) -> dict[str, bytes]:
    """config.json, model.weights.h5 and (if there) metadata.json of a .keras file, or of the
    directory Keras writes for ``model.save(path, zipped=False)``: the same members."""
    wanted = ("config.json", "model.weights.h5", "metadata.json")
    members: dict[str, bytes] = {}
    if os.path.isdir(path):
        names, what = sorted(os.listdir(path)), "a directory"
        for name in wanted:
            if os.path.isfile(os.path.join(path, name)):
                with open(os.path.join(path, name), "rb") as member:
                    members[name] = member.read()
    else:
        with zipfile.ZipFile(path) as zf:
            names, what = sorted(zf.namelist()), "a zip file"
            members = {name: zf.read(name) for name in wanted if name in names}
    if "config.json" not in members or "model.weights.h5" not in members:
        raise ValueError(f"{path!r} is {what} but not a Keras model: it needs config.json and "
                         f"model.weights.h5, it has {names}")
    return members


def _load_model(path: str, custom_objects: dict | None = None) -> BaseModel:
    if zipfile.is_zipfile(path) or os.path.isdir(path):
        members = _keras_members(path)
        config = _json(members["config.json"], path, "its config.json")
        meta = (_json(members["metadata.json"], path, "its metadata.json")
                if "metadata.json" in members else {})
        weights = members["model.weights.h5"]
        h5py = _h5py()
        model = build_model(config, meta.get("keras_version") if isinstance(meta, dict)
                            else None, lora_merged=True, custom_objects=custom_objects)
        with h5py.File(_stdio.BytesIO(weights), "r") as f:
            _load_keras3(model, f)
        return model
    if _is_hdf5(path):
        h5py = _h5py()
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ValueError(
                    f"{path!r} holds no model config (a weights-only file?); build the model "
                    "and call model.load_weights(path)"
                )
            model = build_model(_json(raw, path, "its model_config"),
                                f.attrs.get("keras_version"), custom_objects=custom_objects)
            _load_legacy(model, f["model_weights"] if "model_weights" in f else f)
        return model
    raise ValueError(f"{path!r} is neither a .keras (zip) file nor an HDF5 (.h5) file")


def model_from_json(json_string: Any, custom_objects: Any = None) -> BaseModel:
    """A fastlayers ``Model`` or ``Sequential`` from a Keras model's JSON (``to_json()`` of a
    Keras 3 or tf.keras 2 model, or of a model loaded here), as Keras's
    ``keras.models.model_from_json``: the architecture only; the weights come after, with
    ``model.load_weights(path)`` (a ``.weights.h5`` or legacy ``.h5`` file) or
    ``set_weights``. ``custom_objects`` as in :func:`load_model`. What cannot be made raises
    as there (NotImplementedError, listing it); text that is not a model's JSON raises
    ValueError."""
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json takes the JSON text of a model (str), got "
                        f"{type(json_string).__name__}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("model_from_json: custom_objects must be a dict (a class name -> a "
                        "fastlayers Layer subclass, or an activation's name -> a NumPy "
                        f"function), got {type(custom_objects).__name__}")
    config = _json(json_string, "model_from_json", "the text")
    version = config.get("keras_version") if isinstance(config, dict) else None
    return build_model(config, version, custom_objects=custom_objects)


def load_weights(model: BaseModel, path: Any) -> None:
    """Set the weights of ``model`` from a Keras weights file: ``.weights.h5`` (Keras 3),
    a legacy ``.h5`` weights or model file, or the weights inside a ``.keras`` file (or the
    directory ``model.save(path, zipped=False)`` writes). Keras's sharded weights
    (``.weights.json``) are refused."""
    model._refuse_converted()  # (a model holding a converted PyTorch module)
    path = _path(path)
    with _reading(path):
        _load_weights(model, path)


def _load_weights(model: BaseModel, path: str) -> None:
    if zipfile.is_zipfile(path) or os.path.isdir(path):  # a .keras file, zipped or not
        with _h5py().File(_stdio.BytesIO(_keras_members(path)["model.weights.h5"]), "r") as f:
            _load_keras3(model, f)
        return
    if str(path).endswith(".weights.json"):
        raise ValueError(f"{path!r}: Keras's sharded weights (save_weights with "
                         "max_shard_size), which fastlayers does not read; save them unsharded "
                         "to a .weights.h5 file")
    if not _is_hdf5(path):
        raise ValueError(f"{path!r} is not an HDF5 weights file")
    with _h5py().File(path, "r") as f:
        if "layer_names" in f.attrs:
            _load_legacy(model, f)
        elif "model_weights" in f:
            _load_legacy(model, f["model_weights"])
        else:
            _load_keras3(model, f)


# ---- Keras 3 files: the object-path walk ---------------------------------------------


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_class(layer: Any) -> str:
    if isinstance(layer, Model):
        return "Functional"
    return (layer.__dict__.get("_keras_class_loaded")  # a custom layer's port: Keras's class
            or PORT_NAMES.get(type(layer))
            or type(layer).__dict__.get("_keras_class_name") or type(layer).__name__)


def _vars(f: Any, path: str, used: set[str]) -> list[np.ndarray]:
    """The arrays of ``<path>/vars`` in order (none if the group is absent)."""
    key = f"{path}/vars" if path else "vars"
    if key not in f:
        return []
    group = f[key]
    used.add(group.name)
    out = []
    for i in range(len(group)):
        if str(i) not in group:
            raise ValueError(f"weights file: {group.name} has no array {i}")
        out.append(_array(group[str(i)]))
    return out


def _array(dataset: Any) -> np.ndarray:
    if dataset.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
        raise NotImplementedError(
            f"weights file: {dataset.name} is bfloat16; fastlayers reads float32 weights"
        )
    return np.asarray(dataset)


def _group_names(f: Any, path: str) -> dict[str, str]:
    """For each child group of ``<path>/layers`` whose vars carry a ``name`` attribute:
    that name -> the child's path."""
    key = f"{path}/layers" if path else "layers"
    found: dict[str, str] = {}
    if key not in f:
        return found
    for child in f[key]:
        sub = f"{key}/{child}"
        vars_key = f"{sub}/vars"
        if vars_key in f and "name" in f[vars_key].attrs:
            name = f[vars_key].attrs["name"]
            found[name.decode() if isinstance(name, bytes) else str(name)] = sub
    return found


def _layer_paths(model: BaseModel, f: Any, path: str) -> list[tuple[Any, str]]:
    """(layer, its group path) for the layers of ``model`` saved under ``path``."""
    layers = list(model.layers)
    prefix = f"{path}/layers" if path else "layers"
    by_name = _group_names(f, path)
    if by_name and set(by_name) == {layer.name for layer in layers}:
        return [(layer, by_name[layer.name]) for layer in layers]
    return _class_paths(layers, prefix)


def _class_paths(layers: list[Any], prefix: str) -> list[tuple[Any, str]]:
    """(layer, its group path) as Keras's object walk names the layers of a list: the class
    in snake case, counted per class (``prefix/dense``, ``prefix/dense_1``, ...)."""
    counts: dict[str, int] = {}
    out = []
    for layer in layers:
        base = _snake_case(_keras_class(layer))
        n = counts.get(base, -1) + 1
        counts[base] = n
        out.append((layer, f"{prefix}/{base}" if n == 0 else f"{prefix}/{base}_{n}"))
    return out


def _held_paths(layer: Any, path: str) -> dict[int, str]:
    """Where a .keras file keeps the layers a custom layer holds ({id: group path}), as
    Keras's object walk saves them: the layer's attribute names in sorted order, the private
    ones (``_name``) last, properties included (``@property def proj``), each layer under the
    first name that reaches it (``<path>/<name>``; a container's layers under
    ``<path>/<name>/<class, snake case, counted per class>``, nested containers as
    _container_paths says)."""
    tracked = layer.__dict__.get("_tracked", {})
    names = [n for n in dir(layer) if not n.startswith("_") or n in tracked]
    where: dict[int, str] = {}
    for attr in sorted(names, key=lambda n: (n.startswith("_"), n)):
        try:
            value = tracked[attr] if attr in tracked else getattr(layer, attr)
        except Exception:  # noqa: BLE001 (a property that cannot be read now: not a layer)
            continue
        if isinstance(value, L.Layer):
            where.setdefault(id(value), f"{path}/{attr}")
        elif isinstance(value, (list, tuple, dict)) and not isinstance(value, str):
            for item, sub in _container_paths(value, f"{path}/{attr}"):
                where.setdefault(id(item), sub)
    return where


def _container_paths(container: Any, prefix: str) -> list[tuple[Any, str]]:
    """(layer, its group path) for the layers of a list, tuple or dict (its values) that a
    custom layer holds, as Keras's walk of a container names them: each layer by its class in
    snake case, each container inside by "container", counted together in one level
    (``prefix/dense``, ``prefix/dense_1``, ``prefix/container``, ``prefix/container_1``), a
    nested container's layers under its own name."""
    items = container.values() if isinstance(container, dict) else container
    used: dict[str, int] = {}
    out: list[tuple[Any, str]] = []

    def unique(base: str) -> str:
        n = used.get(base, -1) + 1
        used[base] = n
        return base if n == 0 else f"{base}_{n}"

    for item in items:
        if isinstance(item, L.Layer):
            out.append((item, f"{prefix}/{unique(_snake_case(_keras_class(item)))}"))
        elif isinstance(item, (list, tuple, dict)):
            out += _container_paths(item, f"{prefix}/{unique('container')}")
    return out


def _held_arrays(layer: Any, f: Any, path: str, used: set[str]) -> list[np.ndarray]:
    """The arrays of a custom layer holding layers (Layer._tracked_layers), in its weights
    order: its own under ``<path>/vars``, then each held layer's where Keras's object walk
    saved it (_held_paths); a held model's arrays are read as a nested model's."""
    arrays = _vars(f, path, used)
    where = _held_paths(layer, path)
    for item in layer._tracked_layers():
        sub = where.get(id(item))
        if sub is None:  # tracked, but no longer reached from an attribute: not saved
            if item.weights:
                raise ValueError(
                    f"weights file: {_owner(layer)} held {_owner(item)}, which no attribute "
                    "holds any more: a .keras file does not keep its weights (Keras's walk of "
                    "the attributes does not reach it); load the model's .h5 file instead")
            continue
        if isinstance(item, (Model, Sequential)):
            plan: list[tuple[Any, list[np.ndarray]]] = []
            _assign_keras3(item, f, sub, used, plan)
            by_layer = {id(leaf): values for leaf, values in plan}
            arrays += [a for leaf in item._weight_layers() for a in by_layer.get(id(leaf), [])]
        else:
            arrays += _layer_arrays(item, f, sub, used)
    return arrays


def _layer_arrays(layer: Any, f: Any, path: str, used: set[str]) -> list[np.ndarray]:
    if layer.__dict__.get("_tracked"):
        return _held_arrays(layer, f, path, used)
    if isinstance(layer, (L.LSTM, L.GRU, L.SimpleRNN, L.ConvLSTM1D, L.ConvLSTM2D)):
        return _vars(f, f"{path}/cell", used)
    if isinstance(layer, L.StackedRNN):
        # RNN(StackedRNNCells): each cell's vars under cells/<its class, snake case, counted
        # per class as Keras's object walk names them>: lstm_cell, lstm_cell_1, gru_cell ...
        counts: dict[str, int] = {}
        arrays = []
        for c in layer.cells:
            base = _snake_case(type(c).__name__ + "Cell")
            n = counts[base] = counts.get(base, -1) + 1
            arrays += _vars(f, f"{path}/cell/cells/{base}" + (f"_{n}" if n else ""), used)
        return arrays
    if isinstance(layer, L.Bidirectional):
        return (_vars(f, f"{path}/forward_layer/cell", used)
                + _vars(f, f"{path}/backward_layer/cell", used))
    if isinstance(layer, L.TimeDistributed):  # merge topic: the wrapped layer's own path
        return _layer_arrays(layer.layer, f, f"{path}/layer", used)
    if isinstance(layer, L.SpectralNormalization):
        # the wrapped layer's own path; the wrapper's vars are [its kernel again, vector_u]
        inner = _layer_arrays(layer.layer, f, f"{path}/layer", used)
        own = _vars(f, path, used)
        if not inner:
            return []
        k = layer._kernel_index()
        return inner[:k + 1] + own[-1:] + inner[k + 1:]
    if isinstance(layer, L.MultiHeadAttention):
        # Keras's GroupedQueryAttention names its sub-layers with a leading underscore, and
        # so does tf.keras 2.13-2.15's MultiHeadAttention in the .keras files it writes.
        group = f.get(path)
        prefix = "_" if isinstance(layer, L.GroupQueryAttention) or (
            group is not None and "query_dense" not in group and "_query_dense" in group) else ""
        return [a for part in ("query_dense", "key_dense", "value_dense", "output_dense")
                for a in _vars(f, f"{path}/{prefix}{part}", used)]
    return _vars(f, path, used)


def _assign_keras3(model: BaseModel, f: Any, path: str, used: set[str],
                   plan: list[tuple[Any, list[np.ndarray]]], seen: set | None = None) -> None:
    # seen: the ids of the layers read already. A layer shared with a nested model read
    # earlier is read there alone (Keras saves a layer once; BaseModel._weight_layers).
    seen = set() if seen is None else seen
    for layer, sub in _layer_paths(model, f, path):
        if isinstance(layer, InputLayer):
            continue
        if isinstance(layer, (Model, Sequential)):
            _assign_keras3(layer, f, sub, used, plan, seen)
            continue
        if isinstance(layer, L.TimeDistributed) and isinstance(layer.layer, (Model, Sequential)):
            _assign_keras3(layer.layer, f, f"{sub}/layer", used, plan, seen)  # a wrapped model
            continue
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        want = len(layer._weight_names())
        twin = _saved_twin(layer, plan) if want and sub not in f else None
        if twin is not None:
            plan.append((layer, [a.copy() for a in twin]))
            continue
        arrays = _layer_arrays(layer, f, sub, used)
        if len(arrays) != want:
            raise ValueError(
                f"weights file: {_owner(layer)} has {want} weights, the file has "
                f"{len(arrays)} under {sub!r}"
            )
        if want:
            plan.append((layer, arrays))


def _saved_twin(layer: Any, plan: list[tuple[Any, list[np.ndarray]]]) -> Any:
    """The arrays read for the one layer of ``plan`` that ``layer``, whose group the file
    lacks, is a copy of (same class, name and config), or None.

    A Keras layer shared by a nested model and its outer model is one object in Keras, but
    the config lists it in both (as two layers: Keras's own from_config makes two, and
    cannot read its file back), and the weights file holds it once, under the nested model
    read first: Keras's object walk counts the second use's group name and skips it. So the
    outer copy takes those weights (docs/semantics.md §29)."""
    config = layer.get_config()
    twins = [arrays for other, arrays in plan
             if type(other) is type(layer) and other.name == layer.name
             and other.get_config() == config]
    return twins[0] if len(twins) == 1 else None


def _owner(layer: Any) -> str:
    return f"{type(layer).__name__} {layer.name!r}"


def _load_keras3(model: BaseModel, f: Any) -> None:
    if "_layer_checkpoint_dependencies" in f and "layers" not in f:
        raise NotImplementedError(
            "weights file: written by Keras 2.13-2.15 (.keras of that era), which fastlayers "
            "does not read; save the model again as .h5, or with Keras 3"
        )
    if "layers" not in f:
        raise ValueError("weights file: not a Keras 3 weights file (no 'layers' group)")
    plan: list[tuple[Any, list[np.ndarray]]] = []
    used: set[str] = set()
    _assign_keras3(model, f, "", used, plan)
    unused = []

    def visit(name: str, obj: Any) -> None:
        if name.endswith("/vars") and len(obj) and obj.name not in used:
            unused.append(obj.name)

    f["layers"].visititems(visit)
    if unused:
        raise ValueError(
            f"weights file: arrays that no layer of the model takes: {sorted(unused)} (a file "
            "for another model?)"
        )
    _apply(plan)


def _apply(plan: list[tuple[Any, list[np.ndarray]]]) -> None:
    """Check every shape first, then set: a failure leaves the model as it was."""
    for layer, arrays in plan:
        current = layer.get_weights() if layer.built else None
        if current is not None:
            for name, have, new in zip(layer._weight_names(), current, arrays):
                if have.shape != new.shape:
                    raise ValueError(
                        f"weights file: {_owner(layer)} weight {name!r} has shape {have.shape}, "
                        f"the file has {new.shape}"
                    )
    for layer, arrays in plan:
        layer.set_weights(list(arrays))


# ---- legacy HDF5: one group per top-level layer, weights in order --------------------


def _names(attrs: Any, key: str) -> list[str]:
    if key in attrs:
        raw = list(attrs[key])
    else:
        raw, i = [], 0
        while f"{key}{i}" in attrs:  # long lists are split in chunks
            raw.extend(attrs[f"{key}{i}"])
            i += 1
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in raw]


def _leaves(layer: Any, trainable: bool = True) -> list[tuple[Any, bool]]:
    """The weight-holding layers inside ``layer`` with whether Keras counts their weights
    as trainable (a frozen model freezes all its layers)."""
    trainable = trainable and bool(getattr(layer, "trainable", True))
    if isinstance(layer, L.TimeDistributed) and isinstance(layer.layer, (Model, Sequential)):
        layer = layer.layer  # a wrapped model: its layers' weights, as a nested model's
    if isinstance(layer, (Model, Sequential)):
        return [leaf for sub in layer.layers if not isinstance(sub, InputLayer)
                for leaf in _leaves(sub, trainable)]
    return [(layer, trainable)] if layer._weight_names() else []


def _legacy_slots(leaves: list[tuple[Any, bool]]) -> list[tuple[int, int]]:
    """(leaf, weight index) in Keras's legacy order (layer.trainable_weights +
    layer.non_trainable_weights): the trainable weights of every leaf, then the others - a
    trainable leaf's statistics (BatchNormalization's moving mean and variance) and all of a
    frozen leaf's, each leaf's in its own order."""
    slots: list[tuple[int, int]] = []
    for trainable_pass in (True, False):
        for i, (leaf, t) in enumerate(leaves):
            # (a custom layer holding layers: each weight's own flag, its layers' included)
            flags = (leaf._trainable_mask() if leaf.__dict__.get("_tracked") else
                     [wname not in leaf.non_trainable_weight_names
                      for wname in leaf._weight_names()])
            for w, flag in enumerate(flags):
                if (t and flag) == trainable_pass:
                    slots.append((i, w))
    return slots


def _leaves_as_named(leaves: list[tuple[Any, bool]],
                     weight_names: list[str]) -> list[tuple[Any, bool]] | None:
    """The leaves of a nested model's group with whether Keras counted each one's weights as
    trainable, read from the file's weight names (``[<models>/]<leaf layer>/.../<variable>``),
    or None when the names do not say (other names, or an order no flags give).

    The config's ``trainable`` is not always what Keras counted: it counts each variable by
    its own flag, and a layer built with ``trainable=False`` passes that to the variables it
    makes itself but not to its sublayers'. So a MultiHeadAttention, Bidirectional or
    TimeDistributed constructed frozen holds trainable variables (its inner Dense and LSTM
    layers'), listed with the trainable ones, where ``layer.trainable = False`` set after it
    was built freezes them all: the same config, two orders."""
    # The owner of a weight is a part of its name that is a leaf's name: Keras writes
    # "<container>/<leaf>/.../<variable>" ("inner/pre/kernel" in a Sequential, "frozen/query/
    # kernel" for a wrapper's inner layer). Which part, when several are leaves' names, the
    # names alone cannot say: both the first and the last are tried, and used only when the
    # flags they give put the leaves in exactly the file's order, and agree if both do.
    names = {leaf.name for leaf, _ in leaves}

    def owner(weight: str, last: bool) -> str:
        parts = [p for p in weight.split("/")[:-1] if p in names]
        return (parts[-1] if last else parts[0]) if parts else weight.split("/", 1)[0]

    found = []
    for last in (False, True):
        named = _flags_in_order(leaves, [owner(w, last) for w in weight_names])
        if named is not None:
            found.append(named)
    if not found or any([t for _, t in f] != [t for _, t in found[0]] for f in found):
        return None
    return found[0]


def _flags_in_order(leaves: list[tuple[Any, bool]],
                    owners: list[str]) -> list[tuple[Any, bool]] | None:
    """The leaves with the trainable flags that give the file's order of owners (a leaf
    counted trainable when its next weights in the trainable part are its own), or None."""
    flags: list[bool] = []
    p = 0
    for leaf, _ in leaves:
        k = sum(1 for w in leaf._weight_names() if w not in leaf.non_trainable_weight_names)
        counted = k > 0 and owners[p:p + k] == [leaf.name] * k
        flags.append(counted)
        p += k if counted else 0
    named = [(leaf, t) for (leaf, _), t in zip(leaves, flags)]
    order = [named[i][0].name for i, _ in _legacy_slots(named)]
    return named if order == owners else None


def _load_legacy(model: BaseModel, group: Any) -> None:
    saved = [n for n in _names(group.attrs, "layer_names")
             if _names(group[n].attrs, "weight_names")]
    layers = [layer for layer in model.layers
              if not isinstance(layer, InputLayer) and _leaves(layer)]
    if len(saved) != len(layers):
        raise ValueError(
            f"weights file: the model has {len(layers)} layers with weights, the file has "
            f"{len(saved)} ({saved})"
        )
    if {layer.name for layer in layers} == set(saved):
        pairs = [(layer, layer.name) for layer in layers]
    else:
        pairs = list(zip(layers, saved))  # in order, as Keras does
    plan: list[tuple[Any, list[np.ndarray]]] = []
    for layer, name in pairs:
        g = group[name]
        weight_names = _names(g.attrs, "weight_names")
        arrays = [_array(g[w]) for w in weight_names]
        leaves = _leaves(layer)
        if len(leaves) > 1:  # a nested model's group: the names settle what counts trainable
            leaves = _leaves_as_named(leaves, weight_names) or leaves
        slots = _legacy_slots(leaves)
        if len(arrays) != len(slots):
            raise ValueError(
                f"weights file: {_owner(layer)} has {len(slots)} weights, the file's group "
                f"{name!r} has {len(arrays)}"
            )
        per_leaf: list[list[Any]] = [[None] * len(leaf._weight_names()) for leaf, _ in leaves]
        for (i, w), arr in zip(slots, arrays):
            per_leaf[i][w] = arr
        plan.extend((leaf, values) for (leaf, _), values in zip(leaves, per_leaf))
    _apply(plan)
