"""Models that tf.keras 2 (TensorFlow 2.15) wrote, as .h5 and as its .keras zip, against
TensorFlow's own outputs (tests/golden/tf_keras2/README.md says how they were made)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")

import fastlayers as fl  # noqa: E402

FILES = Path(__file__).parent / "golden" / "tf_keras2"
MATCHING = ["nested_seq_once", "nested_seq_noinput_once", "siamese_seq_subtract", "mha_ln",
            "convnet_bn", "r2_conv1d_transpose", "r2_noise_reg"]


def _data(name):
    meta = json.loads((FILES / name / "meta.json").read_text())
    data = np.load(FILES / name / "data.npz")
    xs = [data[f"x{k}"] for k in range(meta["nx"])]
    ys = [data[f"y{k}"] for k in range(meta["ny"])]
    return (xs[0] if len(xs) == 1 else xs), ys


@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("name", MATCHING)
def test_tf_keras2_files_match_tensorflow(any_backend, name, fmt):
    x, ys = _data(name)
    model = fl.load_model(FILES / name / f"m.{fmt}")
    for got in (model(x), model.predict(x)):
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(ys)
        for g, y in zip(got, ys):
            assert isinstance(g, np.ndarray)  # one output listed by tf.keras: the array
            assert g.shape == y.shape
            np.testing.assert_allclose(g, y, rtol=1e-5, atol=1e-5 * (1 + np.abs(y).max()))


@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("name,key", [("mlp_hard_sigmoid", "activation"),
                                      ("lstm_hard_sigmoid", "recurrent_activation")])
def test_keras2_hard_sigmoid_is_refused(name, key, fmt):
    """Keras 2's hard_sigmoid is clip(0.2 x + 0.5, 0, 1), Keras 3's clip(x / 6 + 0.5, 0, 1):
    loading computed Keras 3's, silently different from what the file's writer computed."""
    with pytest.raises(NotImplementedError, match=rf"{key}='hard_sigmoid' in a file Keras 2 "
                                                  r"wrote: Keras 2 computes it as clip\(0\.2"):
        fl.load_model(FILES / name / f"m.{fmt}")
