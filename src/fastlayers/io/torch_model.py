"""The model ``fastlayers.from_torch`` returns (``TorchModel``: the converted graph, called with
and returning what the PyTorch module takes and returns) and the conversion's errors.

Part of the PyTorch converter: torch_fx.py (the entry, tracing and building) says how the
parts fit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _symbolic as S
from ..layers.base import Layer, _positive_int
from ..models.base import BaseModel, _Progress, _verbosity
from ..models.functional import Model


class TorchConversionError(NotImplementedError):
    """A module uses layers or calls that ``from_torch`` cannot convert (all are listed)."""


class _BatchOfOne(TorchConversionError):
    """A branch on whether the batch size is 1, taken for 1 row by the trace of 1-row
    examples: from_torch converts again from examples of 2 rows (``axes``: each example's
    batch axis, set by _convert)."""

    axes: list | None = None


# ------------------------------------------------------------------ the converted model


def _input_array(value: Any) -> Any:
    """One input of a converted model as an array: nested lists of numbers as one array (as
    for an ndarray: a list was taken for a list of inputs, (2, 3) became (1, 2, 3)), a torch
    tensor detached (one that requires grad cannot give its values to NumPy)."""
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if type(value).__module__.split(".")[0] == "torch" and callable(getattr(value, "detach",
                                                                             None)):
        return value.detach().cpu().numpy()
    return value


class TorchModel(BaseModel):
    """A model converted by :func:`from_torch`: called like the PyTorch module.

    ``model(x1, x2, ...)`` takes the module's positional tensor arguments as arrays in
    PyTorch's layouts and returns the module's structure (one array, or nested tuples and
    lists of arrays, None where the module returns None). ``model.inner`` is the
    functional :class:`~fastlayers.Model` that computes it (flat list of outputs);
    ``layers``, ``get_weights``, ``summary`` and ``predict`` come from it.

    ``get_weights`` lists the weights of the layers the conversion made (Dense, Conv, LSTM,
    Embedding, ...), not those it holds as constants of its ops (a LayerNorm's, a
    MultiheadAttention's, a standalone BatchNorm's, a PReLU's), so it is not the module's
    ``state_dict``; ``set_weights`` is refused: for new weights, load them into the PyTorch
    module and convert it again.
    """

    #: A model holding this one refuses set_weights and load_weights too (BaseModel).
    _refuses_set_weights = True

    def set_weights(self, weights: Any) -> None:
        """Refused: a converted model holds some of its module's parameters as constants of
        its ops, which set_weights would leave as they were (a concurrency audit found a
        model given another's weights 0.16 off, without a word). Load the weights into the
        PyTorch module (``load_state_dict``) and convert it again with ``fl.from_torch``."""
        raise NotImplementedError(
            f"{self._owner()}: set_weights of a converted PyTorch module is refused (it would "
            "reach only the layers the conversion made, not the parameters it holds as "
            "constants: LayerNorm, MultiheadAttention, ...); load the new weights into the "
            "module (load_state_dict) and convert it again with fl.from_torch")

    # Called as a layer of another model (``y = tm(fl.Input(...))``) it is one layer whose
    # call is the module's: it neither takes nor makes Keras masks (a nested Keras model
    # passes its inner graph's masks on; a PyTorch module has none), so Layer's masked call.
    _masked_call = Layer._masked_call

    def __init__(self, inner: Model, template: Any, input_template: tuple = (),
                 name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.inner = inner
        self.template = template
        self.input_template = input_template or tuple(range(len(inner.inputs)))
        self.built = True

    @property
    def layers(self):
        return self.inner.layers

    def _summary_rows(self):
        return self.inner._summary_rows()

    def get_config(self):
        return {"name": self.name}

    def _rebuild(self, flat: list[np.ndarray]) -> Any:
        """The module's structure (``template``: indices into ``flat``) with the arrays."""
        return S.Nested(self.template)(flat)

    def _flat_inputs(self, inputs: tuple) -> list[Any]:
        """The arguments, nested as the module takes them, as the inner model's list."""
        n = len(self.input_template)
        if len(inputs) != n:
            raise ValueError(f"{self._owner()}: expected {n} positional inputs, got "
                             f"{len(inputs)}")
        flat: list[Any] = [None] * len(self.inner.inputs)

        def walk(tmpl: Any, value: Any, where: str) -> None:
            if isinstance(tmpl, int):
                flat[tmpl] = _input_array(value)
                return
            if not isinstance(value, (tuple, list)) or len(value) != len(tmpl):
                raise ValueError(f"{self._owner()}: input {where} must be a tuple of "
                                 f"{len(tmpl)} arrays")
            for j, (t, v) in enumerate(zip(tmpl, value)):
                walk(t, v, f"{where}[{j}]")

        for i, (tmpl, value) in enumerate(zip(self.input_template, inputs)):
            walk(tmpl, value, str(i))
        return flat

    def _run_inner(self, flat_inputs: list) -> list:
        """The inner Model's outputs as a list (one output comes back alone from a Model:
        Keras's unpack_singleton; a model pickled before that was so has no opt-out flag)."""
        out = self.inner(flat_inputs)
        return [out] if len(self.inner.outputs) == 1 and not isinstance(out, list) else out

    def call(self, *inputs: Any) -> Any:
        flat = self._run_inner(self._flat_inputs(inputs))
        return self._rebuild(list(flat))

    def _check_batch_rows(self, outs: list, out_axes: list, rows: int, per_row: list) -> None:
        """predict's test of one batch's outputs: rows in a fixed whole ratio to the batch's
        (``per_row``, set by the first batch; 0: none) join as the whole call's would
        (logits.reshape(-1, V) of (B, T, V): T rows a sample); any other count means the
        module moves rows across samples (a cat, a slice along the batch). Rows folded into
        another axis join on axis 0 only: x.reshape(2, -1) of a (B, 6) x joins on axis 1,
        where its columns are not the batch's."""
        for i, (out, axis, t) in enumerate(zip(outs, out_axes, self.inner.outputs)):
            got = out.shape[axis]
            if per_row[i] is None:
                whole = got and got % rows == 0 and (axis == 0 or got == rows)
                per_row[i] = got // rows if whole else 0
            if per_row[i] == 0 or got != per_row[i] * rows:
                raise ValueError(
                    f"{self._owner()}: output {t.name!r} has {got} rows on its batch axis for "
                    f"a batch of {rows}: the module mixes the samples of a batch (a slice or "
                    "cat along it), so predict cannot run it in batches; call the model on "
                    "the whole arrays instead")

    def _check_sample_major(self, outs: list, first: list, per_row: list) -> None:
        """predict's test of outputs with k > 1 rows a sample on axis 0: they join as the
        whole call's only if each sample's k rows come together (logits.reshape(-1, V) of
        (B, T, V)); with heads first, x.permute(2, 0, 1, 3).reshape(-1, T, d), the rows of
        the samples alternate. The first batch's first k rows against the first sample's
        own call (``first``: its inputs)."""
        alone = self._run_inner(first)
        for i, (out, k, t) in enumerate(zip(outs, per_row, self.inner.outputs)):
            if k <= 1:
                continue
            want, got = alone[i], out[:k]
            # (fastlayers at two batch sizes: the same sums but for the GEMM's blocking)
            if want.shape != got.shape or not _near(got, want, 1e-4):
                raise ValueError(
                    f"{self._owner()}: output {t.name!r} has {k} rows a sample, but not one "
                    "sample's rows after another (the batch merged behind another axis, as "
                    "heads first); predict cannot join it from batches: call the model on "
                    "the whole arrays instead")

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = 0) -> Any:
        """Run in batches of ``batch_size`` (default 32) along axis 0 of every input and
        join the results along each output's batch axis (axis 1 for the (layers, B, H)
        states of recurrent layers). ``x`` is one array, or a tuple with one entry per
        positional input (or a list of as many; one input may come alone or as a tuple or list
        of one array of its whole rank). Returns the module's structure.

        As Keras's ``predict``, this takes each sample's outputs to depend on that sample
        alone. A module that computes across the batch (a softmax, cumsum, mean or flip over
        it) gives other numbers in batches: call the model on the whole arrays. Outputs with
        a fixed number of rows per sample (``logits.reshape(-1, V)``) join as the whole call's
        when each sample's rows come together (checked on the first batch against its first
        sample alone); refused: rows that do not follow the batch's (a slice along it shorter
        than a batch), rows of the samples alternating (a cat along the batch, heads merged
        in front of it), and an output with the batch on two axes ((B, B) similarities). (A
        slice of ``batch_size`` rows or more cannot be told apart: call such a model on the
        whole arrays.)

        ``verbose`` as ``Model.predict`` takes it (Keras's): 0, False, None or "silent" quiet
        (the default), 1, True or "auto" a progress bar on stderr, 2 one line at the end. ``x``
        holds arrays (or what converts to them), not batches from a generator: call the model
        on each batch for those."""
        owner = self._owner()
        mode = _verbosity(verbose, owner)
        if isinstance(x, Iterator) or (
                hasattr(x, "__iter__") and hasattr(x, "__len__") and hasattr(x, "dataset")):
            raise TypeError(
                f"{owner}: predict takes the inputs as arrays (one array, or for a model of "
                f"several inputs a tuple with one per input), got {type(x).__name__}; for "
                "batches from a generator, iterator or DataLoader, call the model on each batch")
        refusal = getattr(self, "predict_refusal", None)  # (models pickled before it: None)
        if refusal:
            raise ValueError(
                f"{owner}: predict splits every input along axis 0, but {refusal}: call the "
                "model on the whole arrays instead (or give the layer batch_first inputs with "
                "the batch on axis 0)")
        fixed = [t.name for t in self.inner.inputs if not t.shape or t.shape[0] is not None]
        if fixed:
            raise ValueError(
                f"{owner}: predict splits every input along axis 0, but the batch of "
                f"inputs {fixed} is not on axis 0 (seq-first layers, attention masks); call "
                "the model on the whole arrays instead"
            )
        batch_size = 32 if batch_size is None else _positive_int(batch_size, owner, "batch_size")
        # several inputs: a tuple, or a list of as many (Keras's predict takes a list)
        n_in = len(self.input_template)
        if n_in > 1 and isinstance(x, list) and len(x) != n_in and all(
                isinstance(a, np.ndarray) for a in x):
            raise ValueError(f"{owner}: expected {n_in} inputs, got a list of {len(x)} arrays")
        several = n_in > 1 and (isinstance(x, tuple) or isinstance(x, list) and len(x) == n_in)
        # One input given as a tuple or list of one array of the input's whole rank, as for
        # several (Keras's predict takes [x] too). Not when the one input is itself a
        # structure of one, nor for an entry of lower rank or nested Python data: [x[0]] and
        # ([1.0, 2.0],) are one sample, a batch of one, as before.
        tmpl = self.input_template[0] if n_in == 1 else None
        one = (isinstance(tmpl, int) and isinstance(x, (tuple, list)) and len(x) == 1
               and hasattr(x[0], "shape")
               and np.ndim(x[0]) == len(self.inner.inputs[tmpl].shape))
        xs = tuple(x) if several or one else (x,)
        arrays = [np.asarray(a) for a in self._flat_inputs(xs)]
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        if any(a.ndim == 0 or a.shape[0] != n for a in arrays):
            raise ValueError(f"{owner}: predict needs every input to have the same batch "
                             f"size; got shapes {[a.shape for a in arrays]}")
        starts = range(0, max(n, 1), batch_size)
        out_axes = []
        for t in self.inner.outputs:
            free = [i for i, d in enumerate(t.shape) if d is None]
            if not free:
                raise ValueError(f"{owner}: output {t.name!r} has no batch axis to join "
                                 "batches on; call the model on the whole arrays instead")
            if len(free) > 1 and len(starts) > 1:
                # CLIP's logits_per_image (B, B): every image against every text
                raise ValueError(f"{owner}: output {t.name!r} has the batch size on axes "
                                 f"{free} (its samples meet each other), so predict cannot "
                                 "join it from batches; call the model on the whole arrays")
            out_axes.append(free[0])
        bar = _Progress(len(starts), sys.stderr, one_line=mode == 2) if mode else None
        results = []
        per_row: list[Any] = [None] * len(out_axes)  # each output's rows per input row
        for step, lo in enumerate(starts):
            results.append(self._run_inner([a[lo:lo + batch_size] for a in arrays]))
            rows = min(batch_size, n - lo)
            if len(starts) > 1 and rows:  # (one call: the whole call's outputs as they are)
                self._check_batch_rows(results[-1], out_axes, rows, per_row)
                if step == 0 and rows > 1 and any(k > 1 for k in per_row):
                    self._check_sample_major(results[-1], [a[:1] for a in arrays], per_row)
            if bar is not None:
                bar.update(step + 1)
        flat = [np.concatenate([r[i] for r in results], axis=axis)
                for i, axis in enumerate(out_axes)]
        return self._rebuild(flat)


def _near(got: np.ndarray, want: np.ndarray, tol: float) -> bool:
    """Whether ``got`` is within ``tol`` times the scale of ``want`` (1 + its largest finite
    magnitude) of it everywhere, NaN where it has NaN and the same infinities."""
    finite = np.abs(want[np.isfinite(want)])
    scale = 1.0 + (float(finite.max()) if finite.size else 0.0)
    return bool(np.allclose(got, want, rtol=0.0, atol=tol * scale, equal_nan=True))
