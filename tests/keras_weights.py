"""Random weights for Keras models in the tests that compare fastlayers with Keras: every
weight away from its initial value, so that a weight read into the wrong slot (or a layer
skipped) changes the outputs. Imported by test files that need keras (this module does not
import it)."""

from __future__ import annotations

import numpy as np


def randomize(model, seed=0, scaled=False):
    """Set every weight of ``model`` (nested models too) at random, in place.

    BatchNormalization's moving variance uniform in [0.5, 2] and moving mean normal(0.3,
    0.5); a Normalization layer's statistics kept (a variance must stay positive). The other
    weights normal(0, 0.3), or with ``scaled`` (deep models, whose activations would
    otherwise explode) normal(0, 1/sqrt(fan-in)), with gamma, scale and ConvNeXt's
    LayerScale uniform in [0.3, 1.5] (LayerScale starts at 1e-6, which would hide a wrong
    branch)."""
    import keras  # (the callers have it)

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize(layer, seed + 1, scaled)
            continue
        new = []
        for w in layer.weights:
            name = w.path.split("/")[-1]
            if name == "moving_variance":
                new.append(rng.uniform(0.5, 2.0, w.shape))
            elif name == "moving_mean":
                new.append(rng.normal(0.3, 0.5, w.shape))
            elif type(layer).__name__ == "Normalization":
                new.append(np.asarray(w))
            elif not scaled:
                new.append(rng.normal(0.0, 0.3, w.shape))
            elif type(layer).__name__ == "LayerScale" or name in ("gamma", "scale"):
                new.append(rng.uniform(0.3, 1.5, w.shape))
            else:
                fan_in = int(np.prod(w.shape[:-1])) if len(w.shape) > 1 else 16
                new.append(rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), w.shape))
        layer.set_weights([np.asarray(a, np.float32) for a in new])
