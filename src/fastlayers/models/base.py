"""What every model has: weights over its layers, ``predict``, ``summary``, ``get_layer``.

``InputLayer`` also lives here: the layer behind ``fastlayers.Input``, which checks the
arrays a model is called with.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _checks as C
from .. import _masking
from .. import _symbolic as S
from ..layers.base import Layer, _positive_int

# The widest summary table (characters per line) summary() makes.
MAX_LINE_LENGTH = 10_000


class InputLayer(Layer):
    """The layer behind ``fastlayers.Input``: it owns the input's symbolic tensor and
    checks the rank and the fixed dimensions of the arrays given for it."""

    def __init__(self, shape: tuple, dtype: Any = None, name: str | None = None,
                 batch_size: int | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if batch_size is not None:
            batch_size = _positive_int(batch_size, "Input", "batch_size")
            C.elements(batch_size, "Input", f"batch_size {batch_size}")
        self.shape = (batch_size,) + tuple(shape)
        self.input_dtype = np.dtype(np.float32 if dtype is None else dtype)
        if self.input_dtype.kind not in "fiub":
            raise TypeError(f"Input: dtype must be a real numeric dtype, got {dtype!r}")
        node = S.Node(self.check, self, (), {}, self.name)
        node.outputs = [S.SymbolicTensor(self.shape, self.input_dtype, self.name, node, 0)]
        self.__dict__["_first_node"] = node  # its output: the input's tensor; its input: []
        self.built = True

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_first_node"] = self.__dict__["_first_node"]  # its own, made with it
        return state

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape[1:], "dtype": self.input_dtype.name,
                "batch_size": self.shape[0]}

    def check(self, x: Any) -> np.ndarray:
        """x as an array of this input's dtype, with its rank and fixed dimensions checked."""
        if isinstance(x, S.SymbolicTensor):
            raise TypeError(f"input {self.name!r}: expected an array, got {x!r}")
        a = C.real_array(x, f"input {self.name!r}", "x")
        if a.ndim != len(self.shape) and not self.__dict__.get("_accepted_kinds"):
            a = _keras_rank_adjusted(a, self.shape)
        if a.ndim != len(self.shape) or any(
            want is not None and got != want for got, want in zip(a.shape, self.shape)
        ):
            raise ValueError(
                f"input {self.name!r}: expected shape {self.shape} (None = any), got {a.shape}"
            )
        kinds = self.__dict__.get("_accepted_kinds")
        if kinds is not None and a.dtype.kind not in kinds:
            raise TypeError(
                f"input {self.name!r}: the model was converted with a {self.input_dtype} example "
                f"for it, got {a.dtype} (PyTorch computes something else for another kind of "
                "dtype: a bool mask blocks where a float one is added, float ids are refused); "
                "convert with an example of this dtype")
        return a.astype(self.input_dtype, copy=False)

    def accept_same_kind_only(self) -> None:
        """Refuse arrays of another kind than the input's dtype (from_torch's inputs, whose
        meaning depends on it): a float input takes floats and ints (cast), an integer one
        ints, a bool one bools. Such an input also takes its own rank only (no Keras rank
        adjustment: PyTorch would compute something else)."""
        self.__dict__["_accepted_kinds"] = {"f": "fiu", "i": "iu", "u": "iu",
                                            "b": "b"}[self.input_dtype.kind]

    def call(self, x: Any) -> np.ndarray:
        return self.check(x)


def _keras_rank_adjusted(a: np.ndarray, shape: tuple) -> np.ndarray:
    """An array of one rank more or less than the input's, adjusted as Keras 3's functional
    models do: a last axis of 1 squeezed (token ids of shape (B, T, 1) for Input((None,))), or
    added where the input's last dimension is 1 (a column of shape (B,) for Input((1,)),
    such as a DataFrame's column); any other rank is left for the shape check to refuse."""
    if a.ndim == len(shape) + 1 and a.shape[-1] == 1:
        return a[..., 0]
    if a.ndim == len(shape) - 1 and shape[-1] == 1:
        return a[..., None]
    return a


def _not_the_callers(out: Any, inputs: Any) -> Any:
    """``out`` with every output array that may share memory with one of the caller's input
    arrays copied: an output that is an input (``Model(x, [x, f(x)])``, an identity layer
    between them) or a view of one (a Reshape) was the caller's own array, so writing to the
    result wrote to the input (a Keras-user audit). Keras returns new tensors there."""
    # (the common forms without the general walk: it cost 4.5 us a call, a third of a small
    # model's; np.may_share_memory compares the arrays' bounds only)
    if type(inputs) is np.ndarray:
        given = [inputs]
    elif type(inputs) in (list, tuple) and all(type(a) is np.ndarray for a in inputs):
        given = list(inputs)
    else:
        given = [a for a in _leaves(inputs) if isinstance(a, np.ndarray)]
    if not given:
        return out
    if type(out) is np.ndarray:
        return out.copy() if any(np.may_share_memory(out, g) for g in given) else out
    if type(out) in (list, tuple) and all(type(a) is np.ndarray for a in out):
        if not any(np.may_share_memory(a, g) for a in out for g in given):
            return out
    leaves = _leaves(out)
    fixed = [a.copy() if isinstance(a, np.ndarray) and any(
        np.may_share_memory(a, g) for g in given) else a for a in leaves]
    if all(f is a for f, a in zip(fixed, leaves)):
        return out
    return fixed[0] if not _is_container(out) else _rebuild(out, fixed)


def _unpack_single(out: Any) -> Any:
    """A model's outputs as Keras 3 returns them: one output given in a list or tuple
    (``Model(i, [y])``) alone (its unpack_singleton)."""
    return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out


class BaseModel(Layer):
    """Shared by ``Model`` and ``Sequential``. Subclasses provide ``layers``, ``call`` and
    ``_summary_rows``."""

    @property
    def layers(self) -> list[Layer]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _layer_names_deep(self) -> list[Any]:
        """What its layers are, as a Keras config describes them: each one's name, class,
        config and trainable flag, nested models' as nested lists (a layer renamed, replaced,
        or reconfigured changes it)."""
        def described(layer: Any) -> Any:
            if isinstance(layer, BaseModel):
                return [layer.name, layer._layer_names_deep()]
            try:
                config = repr(layer.get_config())
            except Exception:  # noqa: BLE001 (a custom layer without one: its class says)
                config = None
            return (layer.name, type(layer).__name__, config, bool(layer.trainable))

        return [described(layer) for layer in self.layers]

    def _current_keras_config(self) -> dict[str, Any] | None:
        """The Keras config the model was made from (io/keras_config.py keeps it), under the
        model's current name, or None: none kept (a model built in code), or it no longer
        describes the model (a layer renamed, replaced, reconfigured, added or removed since)."""
        keras_config = self.__dict__.get("_keras_config")
        if keras_config is None or (
                self.__dict__.get("_keras_config_layers") != self._layer_names_deep()):
            return None
        config = copy.deepcopy(keras_config.get("config", {}))
        config["name"] = self.name
        return config

    def to_json(self, **kwargs: Any) -> str:
        """The model's Keras config as JSON, as Keras's ``to_json``: ``{"module": "keras",
        "class_name", "config": get_config(), "registered_name", ...}`` (``kwargs`` go to
        ``json.dumps``). ``fastlayers.models.model_from_json`` and Keras's
        ``keras.models.model_from_json`` read it back, without the weights.

        Only a model made from a Keras config has one (``load_model``, ``model_from_json``,
        ``from_config`` of a Keras config), while its layers are those it was made with; a
        model built in code, or one whose layers were renamed, replaced, reconfigured, added
        or removed since, raises NotImplementedError (its graph is not written as a Keras
        config: copy it with ``pickle``)."""
        config = self._current_keras_config()
        if config is None:
            changed = self.__dict__.get("_keras_config") is not None
            raise NotImplementedError(
                f"{self._owner()}: to_json needs a Keras config, which only a model loaded from "
                "a Keras file, JSON or config has (load_model, model_from_json, from_config)"
                + (", and only while its layers are those it was made with (one was renamed, "
                   "replaced, reconfigured, added or removed since)" if changed else "")
                + "; the graph of a model built in code is not written as one: copy the model "
                "with pickle, its weights with get_weights")
        out = copy.deepcopy(self.__dict__["_keras_config"])
        out["config"] = config
        # Keras 3 locates the class by these (a nested model's config, or one given to
        # from_config, may come without them)
        if out.get("module") is None:  # (Keras 3's own modules of the model classes)
            out["module"] = {"Functional": "keras.src.models.functional", "Model":
                             "keras.src.models.model", "Sequential": "keras"}.get(
                                 out.get("class_name"), "keras")
        if out.get("registered_name") is None:
            out["registered_name"] = out.get("class_name")
        return json.dumps(out, **kwargs)

    # ---- masks: a nested model passes on the masks its own graph computes ----------------
    def _run_with_masks(self, inputs: Any, mask: Any = None) -> tuple[Any, list[Any]]:
        """The outputs and their implicit masks (one per output)."""
        raise NotImplementedError  # pragma: no cover - Model and Sequential define it

    def _masked_call(self, fn: Any, args: tuple, kwargs: dict, margs: tuple,
                     mkwargs: dict) -> tuple[Any, list[Any]]:
        # As a Keras Functional called as a layer: ``mask`` gets the masks of the inputs,
        # and the outputs keep the masks the inner graph gave them (Keras's Functional has
        # supports_masking False, but its inner layers have set the outputs' masks).
        result: list[Any] = []

        def run(inputs: Any, mask: Any = None, training: Any = None) -> Any:
            # (training: Keras's transfer-learning call, inner(x, training=False); inference)
            out, masks = self._run_with_masks(inputs, mask)
            result.append(masks)
            return _unpack_single(out)  # as call returns it (the graph recorded that)

        out, _ = _masking.masked_call(self, fn, args, kwargs, margs, mkwargs, run=run)
        masks = result[0] if result else []
        struct = self.__dict__.get("_output_struct")
        if isinstance(out, dict) or (isinstance(out, (list, tuple)) and any(
                isinstance(o, (list, tuple, dict)) for o in out)):
            # nested outputs (Model(i, [a, [b, c]])): the masks come in the order of
            # self.outputs (tree.flatten's: dicts by sorted key), the node lists the outputs
            # in the order of S.Nested.of (dicts in their keys' order)
            by_id = {t.id: m for t, m in zip(self.outputs, masks)}
            return out, [by_id.get(t.id) for t in S.Nested.of(struct)[0]]
        n = len(out) if isinstance(out, (list, tuple)) else 1
        return out, (list(masks) + [None] * n)[:n]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name``, or at position ``index`` of ``layers``."""
        if (name is None) == (index is None):
            raise ValueError(f"{self._owner()}: get_layer needs exactly one of name, index")
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"{self._owner()}: index {index} out of range for {len(layers)} layers"
                )
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"{self._owner()}: no layer named {name!r}; layers: {[x.name for x in layers]}"
        )

    # ---- shapes and one-batch prediction, as Keras's models have them -----------------
    def _symbolic_ends(self) -> tuple[list, list]:
        """The model's symbolic inputs and outputs (empty before a Sequential knows them; a
        converted PyTorch model's are its inner graph's)."""
        graph = getattr(self, "inner", self)
        return (list(getattr(graph, "inputs", []) or []),
                list(getattr(graph, "outputs", []) or []))

    def _end_shapes(self, which: int, what: str) -> Any:
        """The shape of the model's one input (which 0) or output (1), or a list of them."""
        tensors = self._symbolic_ends()[which]
        if not tensors:
            raise AttributeError(f"{self._owner()}: no {what} shape yet (start a Sequential "
                                 "with an Input, or build it)")
        shapes = [t.shape for t in tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_shape(self) -> Any:
        """The input's shape (None for the batch and other free axes), or a list of them."""
        return self._end_shapes(0, "input")

    @property
    def output_shape(self) -> Any:
        """The output's shape, or a list of them."""
        return self._end_shapes(1, "output")

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for ``x`` in one call, as arrays (Keras's ``predict_on_batch``)."""
        return self(x)

    # ---- weights: the layers' weights, layer by layer, in Keras order -----------------
    def _unique_weight_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if not isinstance(layer, InputLayer)]

    def _weight_layers(self, seen: set | None = None) -> list[Layer]:
        """The layers holding this model's weights, in ``layers`` order with nested models
        opened, each once: a layer used both inside a nested model and in this one has its
        weights where it first comes, as Keras's ``weights`` (which skips the variables it
        has listed) orders them."""
        seen = set() if seen is None else seen
        out: list[Layer] = []
        for layer in self._unique_weight_layers():
            if isinstance(layer, BaseModel):
                out += layer._weight_layers(seen)
            elif id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    @property
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self._weight_layers() for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, layer by layer in ``layers`` order (Keras's order)."""
        return [w for layer in self._weight_layers() for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set every weight from arrays in the order of ``get_weights``."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"{self._owner()}: set_weights expects a list of arrays, got "
                f"{type(weights).__name__}"
            )
        self._refuse_converted()
        layers = self._weight_layers()
        counts = [len(layer.weights) for layer in layers]
        if sum(counts) != len(weights):
            raise ValueError(
                f"{self._owner()}: set_weights expected {sum(counts)} arrays, got {len(weights)}"
            )
        start = 0
        for layer, n in zip(layers, counts):
            if n:
                layer.set_weights(list(weights[start:start + n]))
            start += n

    def _refuse_converted(self) -> None:
        """set_weights / load_weights of a model holding a converted PyTorch module (a
        TorchModel, anywhere inside): refused, as TorchModel.set_weights is, since the
        module's parameters held as op constants would stay as they were. (A layer taken
        from a converted model into another is that layer alone: not refused.)"""
        if any(getattr(part, "_refuses_set_weights", False) for part in S._parts(self)):
            raise NotImplementedError(
                f"{self._owner()}: holds a module converted from PyTorch, whose weights are "
                "set by converting the module again (load_state_dict, then fl.from_torch): "
                "set_weights would leave the parameters it holds as op constants (LayerNorm, "
                "MultiheadAttention, ...) as they were")

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def _sublayers(self) -> list[Layer]:
        return self._unique_weight_layers()

    def _trainable_mask(self) -> list[bool]:
        """Its layers' flags (Layer._trainable_mask), in ``weights`` order."""
        return [t for layer in self._weight_layers() for t in layer._trainable_mask()]

    def load_weights(self, path: Any) -> None:
        """Set the weights from a Keras weights file: ``.weights.h5`` (Keras 3, matched
        to the layers as Keras matches them: by layer name when the file's names are
        this model's, else by Keras's object path), a legacy ``.h5`` file, or the
        weights in a ``.keras`` file. All shapes are checked before any weight changes.
        Needs h5py (``pip install "fastlayers[keras]"``)."""
        from ..io import load_weights

        load_weights(self, path)

    # ---- predict ----------------------------------------------------------------------
    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = 0,
                steps: int | None = None, callbacks: Any = None) -> Any:
        """Run the model over ``x`` in batches of ``batch_size`` (32 by default, as in
        Keras) and concatenate the results along the batch axis.

        ``steps`` (an int >= 1, or None for all), as Keras's: the number of batches to run,
        so the first ``steps * batch_size`` rows; without a ``batch_size``, the batches are
        ``ceil(rows / steps)`` rows, all rows (Keras's array adapter). ``callbacks`` must be
        None or empty:
        fastlayers runs no Keras callbacks (a TypeError otherwise).

        ``x`` has the structure ``model(x)`` takes, or is a source of batches as Keras's
        predict takes one: a ``keras.utils.PyDataset`` (or any object with ``__len__`` and
        ``__getitem__`` giving batches), a generator or iterator, or another iterable such as
        a ``torch.utils.data.DataLoader``. Each batch is unpacked as Keras does (a tuple or
        list ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` gives ``x``; anything else is
        ``x``), and ``batch_size`` is then not used. ``verbose``, as Keras's: 0, False,
        None or "silent" (the default 0) print nothing; 1, True or "auto" a progress bar to
        stderr (batches done, elapsed time and an estimate of the time left, redrawn at most
        ten times a second); 2 one line when done. The input is converted one batch at a
        time (an ``np.memmap`` larger than memory streams through), but the outputs are
        kept: after the first batch, a ValueError if their total for all rows, projected
        from that batch, would exceed 2**36 elements (docs/semantics.md §1).
        """
        # a Python int: a NumPy one (np.uint64(2**63)) would overflow in the step arithmetic
        given_batch = batch_size is not None
        batch_size = 32 if batch_size is None else _positive_int(batch_size, self._owner(),
                                                                  "batch_size")
        if steps is not None:
            steps = _positive_int(steps, self._owner(), "steps")
        if callbacks is not None and (not isinstance(callbacks, (list, tuple)) or callbacks):
            raise TypeError(f"{self._owner()}: predict runs no Keras callbacks; got "
                            f"callbacks={callbacks!r} (pass None)")
        source = _batch_source(x)
        if source is not None:
            return self._predict_batches(*source, steps, _verbosity(verbose, self._owner()))
        n_inputs = len(self.inputs)
        if isinstance(x, (list, tuple)) and n_inputs > 1 and len(x) == n_inputs:
            # one entry per input, some given as nested lists of numbers (the call takes it so)
            x = _same_kind(x, [np.asarray(e) if isinstance(e, (list, tuple)) and numbers_only(e)
                               else e for e in x])
        if isinstance(x, (list, tuple)) and numbers_only(x):
            x = np.asarray(x)  # one input given as nested lists of numbers
        arrays = _leaves(x)
        if not arrays:
            raise ValueError(f"{self._owner()}: predict got no input arrays")
        given = arrays
        arrays = [np.asarray(a) for a in arrays]
        for a, g in zip(arrays, given):
            if a.dtype.kind not in "biuf":  # (as the call would refuse it, before slicing)
                raise TypeError(f"{self._owner()}: predict takes arrays of real numbers, got "
                                f"{type(g).__name__}" + (f" of dtype {a.dtype}"
                                                         if isinstance(g, np.ndarray) else ""))
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        for a in arrays:
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(
                    f"{self._owner()}: predict needs every input to have the same batch size; "
                    f"got shapes {[b.shape for b in arrays]}"
                )
        mode = _verbosity(verbose, self._owner())
        if steps is not None and not given_batch:
            batch_size = max(1, -(-n // steps))
        if steps is not None:
            n = min(n, steps * batch_size)
        steps = max(1, -(-n // batch_size))
        bar = _Progress(steps, sys.stderr, one_line=mode == 2) if mode else None
        results: list[list[np.ndarray]] = []
        structure: Any = None
        for step in range(steps):
            lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
            chunk = _rebuild(x, [a[lo:hi] for a in arrays])
            out = self(chunk)
            structure = out
            results.append(_leaves(out))
            if step == 0 and hi > lo:
                # The outputs all batches will have made, projected from the first: the input
                # streams (a dataset in an np.memmap), but the results are kept (semantics §1).
                per_row = sum(r.size for r in results[0]) / (hi - lo)
                C.elements(math.ceil(per_row * n), f"{self._owner()}.predict",
                           f"the output of {n} input rows")
            if bar is not None:
                bar.update(step + 1)
        merged = [np.concatenate([r[i] for r in results], axis=0)
                  for i in range(len(results[0]))]
        return _rebuild(structure, merged)

    def _predict_batches(self, batches: Any, total: int | None, steps: int | None,
                         mode: int) -> Any:
        """predict over a source of batches (_batch_source): the outputs of each batch's
        ``x``, concatenated along the batch axis."""
        if steps is not None:
            total = steps if total is None else min(total, steps)
        bar = _Progress(total, sys.stderr, one_line=mode == 2) if mode else None
        results: list[list[np.ndarray]] = []
        structure: Any = None
        kept = 0
        for batch in batches:
            out = self(_unpack_x(batch, self._owner()))
            structure = out
            results.append(_leaves(out))
            kept += sum(np.size(r) for r in results[-1])
            C.elements(kept, f"{self._owner()}.predict", "the outputs of the batches so far")
            if bar is not None:
                bar.update(len(results))
            if total is not None and len(results) >= total:
                break
        if not results:
            raise ValueError(f"{self._owner()}: predict got no batches from the "
                             f"{type(batches).__name__} given")
        if bar is not None:
            bar.finish(len(results))
        merged = [np.concatenate([r[i] for r in results], axis=0)
                  for i in range(len(results[0]))]
        return _rebuild(structure, merged)

    # ---- summary ----------------------------------------------------------------------
    def _summary_rows(self) -> list[tuple[str, str, int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self, print_fn: Any = None, line_length: int | None = None, *,
                positions: Any = None, expand_nested: bool = False,
                show_trainable: bool = False, layer_range: Any = None) -> None:
        """Print a Keras-like table: each layer with its output shape and parameter count,
        then the totals. ``print_fn`` (default ``print``) receives the whole text;
        ``line_length`` (an int in [1, MAX_LINE_LENGTH]) widens the first column to make
        lines that long. An int first argument is taken as ``line_length``, Keras's first
        (``model.summary(100)``). Keras's other arguments (``positions``, ``expand_nested``,
        ``show_trainable``, ``layer_range``) are accepted, so that Keras code runs as written,
        and do not change the table."""
        if isinstance(print_fn, (int, np.integer)) and not isinstance(print_fn, bool):
            # Keras's first positional argument is line_length: model.summary(100)
            print_fn, line_length = line_length if callable(line_length) else None, print_fn
        rows = self._summary_rows()
        heads = ("Layer (type)", "Output Shape", "Param #")
        w0 = max([len(heads[0])] + [len(r[0]) for r in rows]) + 2
        w1 = max([len(heads[1])] + [len(r[1]) for r in rows]) + 2
        w2 = max([len(heads[2])] + [len(f"{r[2]:,}") for r in rows]) + 2
        if line_length is not None:
            line_length = _positive_int(line_length, self._owner(), "line_length")
            if line_length > MAX_LINE_LENGTH:
                raise ValueError(f"{self._owner()}: line_length must be <= {MAX_LINE_LENGTH}, "
                                 f"got {line_length}")
            w0 = max(w0, line_length - w1 - w2)
        rule = "-" * (w0 + w1 + w2)
        lines = [f'Model: "{self.name}"', rule,
                 f"{heads[0]:<{w0}}{heads[1]:<{w1}}{heads[2]:>{w2}}", "=" * len(rule)]
        for name, shape, params in rows:
            lines.append(f"{name:<{w0}}{shape:<{w1}}{params:>{w2},}")
        lines.append(rule)
        total = self.count_params()
        trainable = self._count_trainable_params()
        lines += [f" Total params: {total:,}", f" Trainable params: {trainable:,}",
                  f" Non-trainable params: {total - trainable:,}", rule]
        (print_fn or print)("\n".join(lines))


def input_masks(mask: Any, inputs: Sequence[Any], owner: str) -> list[Any]:
    """The ``mask`` argument of a model call as one mask (or None) per input: Keras
    flattens it and pairs it with the inputs in order. Each mask is checked to be a
    boolean-like array whose shape starts the input's shape (a mask has no feature axis)."""
    n = len(inputs)
    if mask is None:
        return [None] * n
    if n == 1:
        one = isinstance(mask, (list, tuple)) and len(mask) == 1 and (
            mask[0] is None or isinstance(mask[0], np.ndarray))
        flat = [mask[0]] if one else [mask]  # [m], or m itself (an array or nested bools)
    else:
        flat = _masking.flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask]
    if len(flat) != n:
        raise ValueError(f"{owner}: mask must hold one mask (or None) per input ({n}), got "
                         f"{len(flat)}")
    out = []
    for m, x in zip(flat, inputs):
        if m is None:
            out.append(None)
            continue
        if np.ndim(m) == 0 and not isinstance(m, (str, bytes)):
            raise ValueError(f"{owner}: a mask needs a batch axis, got {m!r}")
        shape = getattr(x, "shape", None)

        def fits(mask_shape, shape=shape):
            if shape is not None and (len(mask_shape) > len(shape) or any(
                    want is not None and got != want for got, want in zip(mask_shape, shape))):
                raise ValueError(f"{owner}: mask has shape {mask_shape}, which does not fit an "
                                 f"input of shape {tuple(shape)} (expected its leading dimensions)")

        out.append(C.bool_mask(m, owner, "mask", check=fits))
    return out


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number, np.bool_))


def _first_leaf_is_number(x: Any) -> bool:
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return _number(x)


def numbers_only(x: Any) -> bool:
    """Whether x is (nested lists of) numbers - one input given as lists - rather than a
    list of inputs (arrays, or lists of numbers next to arrays): each of its entries is a
    number or a list whose first leaf is one."""
    return isinstance(x, (list, tuple)) and bool(x) and all(
        _number(e) or (isinstance(e, (list, tuple)) and _first_leaf_is_number(e)) for e in x)


def _is_container(obj: Any) -> bool:
    """A dict, or a list or tuple of inputs or outputs (not one input given as numbers)."""
    return isinstance(obj, dict) or (isinstance(obj, (list, tuple)) and bool(obj)
                                     and not numbers_only(obj))


def _same_kind(seq: Any, items: list) -> Any:
    """``items`` as a list, tuple or namedtuple like ``seq`` (a namedtuple takes its fields as
    arguments, not one iterable)."""
    if isinstance(seq, tuple) and hasattr(seq, "_fields"):
        return type(seq)(*items)
    return type(seq)(items)


def _batch_source(x: Any) -> tuple[Any, int | None] | None:
    """(an iterator of batches, their number or None) when ``x`` is a source of batches for
    predict, as Keras's predict takes them: an indexable dataset (``__len__`` and
    ``__getitem__``: keras.utils.PyDataset, Sequence), a generator or iterator, or another
    iterable (a torch DataLoader); None for arrays, array-likes (a torch tensor: ``shape``
    or ``__array__``), lists, tuples and dicts, which predict cuts into batches itself."""
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, range)) or hasattr(x, "shape") or (
            hasattr(x, "__array__")):
        return None
    if hasattr(x, "__len__") and hasattr(x, "__getitem__"):
        n = len(x)
        return (x[i] for i in range(n)), n
    if hasattr(x, "__next__"):
        return x, None
    if hasattr(x, "__iter__"):
        try:
            n = len(x) if hasattr(x, "__len__") else None
        except TypeError:  # a DataLoader of an IterableDataset: no length
            n = None
        return iter(x), n
    return None


def _unpack_x(batch: Any, owner: str) -> Any:
    """A batch's inputs, as Keras's predict unpacks a batch (``unpack_x_y_sample_weight``): a
    list is a tuple, and a tuple of 1 to 3 is (x,), (x, y) or (x, y, sample_weight)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"{owner}: predict takes batches x, (x,), (x, y) or (x, y, "
                         f"sample_weight), as Keras does; got a tuple of {len(batch)} (give "
                         "several inputs as a tuple inside the batch: ((a, b),))")
    return batch[0]


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [v for k in obj for v in _leaves(obj[k])]
    if _is_container(obj):
        return [v for o in obj for v in _leaves(o)]
    return [obj]


def _rebuild(template: Any, values: list[Any]) -> Any:
    it = iter(values)

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: walk(obj[k]) for k in obj}
        if _is_container(obj):
            return _same_kind(obj, [walk(o) for o in obj])
        return next(it)

    return walk(template)


def _verbosity(verbose: Any, owner: str) -> int:
    """predict's ``verbose`` as Keras takes it: 0 (0, False, None, "silent"), 1 (1, True,
    "auto": the bar) or 2 (one line at the end); anything else is a ValueError."""
    if verbose is None or isinstance(verbose, (bool, np.bool_)):
        return int(bool(verbose))
    if isinstance(verbose, str) and verbose in ("silent", "auto"):
        return 0 if verbose == "silent" else 1
    if isinstance(verbose, (int, np.integer)) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(f"{owner}: predict's verbose must be 0, 1, 2, True, False, None, "
                     f"'auto' or 'silent', got {verbose!r}")


class _Progress:
    """A one-line progress bar, ``3/10 [=====>......] 0.4s, ETA 0.9s``, redrawn at most every
    ``interval`` seconds (and at the end); with ``one_line``, only the final ``10/10 - 1.3s``.
    With ``total`` None (a generator's batches) a count, ``12 batches - 0.4s``, ended by
    :meth:`finish`."""

    def __init__(self, total: int | None, stream: Any, width: int = 30, interval: float = 0.1,
                 one_line: bool = False):
        self.total, self.stream, self.width = total, stream, width
        self.interval, self.one_line = interval, one_line
        self.start = time.perf_counter()
        self.drawn = -float("inf")
        self.width_drawn = 0  # characters of the line drawn last (a shorter one pads them)

    def finish(self, done: int) -> None:
        """The final line, unless ``update`` drew it (the total was not known, or fewer
        batches came than it said)."""
        if self.total is None or done < self.total:
            self.update(done, last=True)

    def update(self, done: int, last: bool | None = None) -> None:
        now = time.perf_counter()
        if last is None:
            last = done == self.total
        if not last and (self.one_line or now - self.drawn < self.interval):
            return
        self.drawn = now
        elapsed = now - self.start
        if self.total is None:  # a count of batches, no bar
            end = "\n" if last else ""
            self.stream.write(("" if self.one_line else "\r") + f"{done} batches - "
                              f"{elapsed:.1f}s{end}")
        elif self.one_line:
            self.stream.write(f"{done}/{self.total} - {elapsed:.1f}s\n")
        else:
            filled = int(self.width * done / self.total)
            arrow = ">" if not last else "="
            bar = ("=" * max(0, filled - 1) + (arrow if filled else "")
                   + "." * (self.width - filled))
            eta = "" if last or done == 0 else f", ETA {elapsed * (self.total - done) / done:.1f}s"
            line = f"{done}/{self.total} [{bar}] {elapsed:.1f}s{eta}"
            pad = " " * max(0, self.width_drawn - len(line))  # (over the longer line before)
            self.width_drawn = len(line)
            self.stream.write(f"\r{line}{pad}" + ("\n" if last else ""))
        self.stream.flush()
