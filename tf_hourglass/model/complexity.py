"""Model size and compute: trainable parameters and multiply-adds per image."""

from __future__ import annotations

import keras
import numpy as np


def count_trainable_parameters(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass for one image (convolutions and dense layers).

    Element-wise layers (BatchNorm, ReLU, additions, pooling) are left out, as
    is customary: they are a fraction of a percent of the convolutions here.
    Needs a model with a static input height and width.
    """
    return sum(layer_multiply_adds(layer) for layer in _all_layers(model))


def layer_multiply_adds(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one layer's forward pass for one image: convolutions and dense layers, else 0."""
    if isinstance(layer, keras.layers.Conv2D):
        _, out_h, out_w, out_c = layer.output.shape
        kh, kw = layer.kernel_size
        in_c = layer.input.shape[-1]
        if None in (out_h, out_w):
            raise ValueError(
                f"count_multiply_adds needs static spatial shapes; layer {layer.name!r} has {layer.output.shape}"
            )
        return int(out_h * out_w * kh * kw * (in_c // layer.groups) * out_c)
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(layer.output.shape[1:-1] or [1])) * layer.input.shape[-1] * layer.units
    return 0


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
