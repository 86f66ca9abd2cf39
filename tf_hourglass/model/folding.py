"""The inference graph of a trained model: BatchNorms that follow a convolution folded into it.

At inference a BatchNormalization is a per-channel affine map,
``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta``. When ``x`` is a
convolution's output used by nothing else, the map goes into the convolution
itself: with ``s = gamma / sqrt(variance + epsilon)`` per output channel, the
kernel becomes ``kernel * s`` and the bias ``(bias - mean) * s + beta``. The
network then reads its activations once less per folded BatchNorm.

In a Stacked Hourglass these are the residual module's second and third
BatchNorms (after its 1x1 and 3x3 convolutions), the stem's (after the 7x7)
and each stack head's (after its 1x1); the residual module's first BatchNorm
follows an addition and stays. CPMs and Associative Embedding networks have
no BatchNorm: folding returns them as they are.

``fold_batch_norms`` builds a new Keras functional model with the same inputs,
outputs and layer names, the folded BatchNorms replaced by pass-through
layers (``FoldedBatchNormalization``); the trained model is not changed (it keeps training and saving as
before). ``dtype`` also builds it in another compute dtype (``"bfloat16"``:
weights and activations in bfloat16, rounded once from the float32 folded
weights), keeping the dtype of the layers that make the model's outputs
(float32 heatmaps).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


@keras.saving.register_keras_serializable(package="tf_hourglass")
class FoldedBatchNormalization(layers.Layer):
    """Where a folded BatchNorm was: passes its input through (its affine map is in the convolution before).

    Unlike ``layers.Identity`` it takes the ``mask`` argument the BatchNorm was called with.
    """

    def call(self, inputs, mask=None):
        del mask
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _single_producer(layer):
    """The layer whose output is ``layer``'s only input, when ``layer`` is called once on one tensor."""
    if len(layer._inbound_nodes) != 1:
        return None
    parents = layer._inbound_nodes[0].parent_nodes
    if len(parents) != 1 or len(layer._inbound_nodes[0].arguments.keras_tensors) != 1:
        return None
    return parents[0].operation


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """{BatchNorm layer name: the convolution it folds into} for every BatchNorm that can fold.

    A BatchNorm folds when it normalises the channels (last axis) of a
    channels-last, ungrouped ``Conv2D`` called once whose output only it reads.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        conv = _single_producer(layer)
        if (
            isinstance(conv, layers.Conv2D)
            and type(conv).__name__ != "DepthwiseConv2D"
            and conv.data_format == "channels_last"
            and conv.groups == 1
            and conv.activation in (None, keras.activations.linear)
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
        ):
            pairs[layer.name] = conv.name
    return pairs


def folded_conv_weights(conv, batch_norm) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of ``conv`` followed by ``batch_norm`` at inference, in float32 (float64 inside)."""
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    channels = kernel.shape[-1]
    gamma = np.asarray(batch_norm.gamma, np.float64) if batch_norm.scale else np.ones(channels)
    beta = np.asarray(batch_norm.beta, np.float64) if batch_norm.center else np.zeros(channels)
    mean = np.asarray(batch_norm.moving_mean, np.float64)
    variance = np.asarray(batch_norm.moving_variance, np.float64)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    return (kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)


def fold_batch_norms(model: keras.Model, dtype: str | None = None) -> keras.Model:
    """``model``'s inference graph: BatchNorms after convolutions folded into them (see the module docstring).

    Args:
        model: a built Keras functional model (a ``StackedHourglass``, any pose model).
        dtype: None to keep each layer's dtype policy, else the policy for
            every layer except those producing the outputs (e.g. ``"bfloat16"``).

    Returns:
        A new functional model computing ``model(x, training=False)`` to float
        rounding; ``model`` itself when there is nothing to fold and no dtype to change.
    """
    pairs = foldable_pairs(model)
    if not pairs and dtype is None:
        return model
    folded_convs = {conv: batch_norm for batch_norm, conv in pairs.items()}
    output_layers = {tensor._keras_history.operation.name for tensor in keras.tree.flatten(model.outputs)}

    def clone(layer):
        if layer.name in pairs:
            return FoldedBatchNormalization(name=layer.name)
        config = layer.get_config()
        if dtype is not None and layer.name not in output_layers:
            config["dtype"] = dtype
        if layer.name in folded_convs and not config.get("use_bias", True):
            config["use_bias"] = True  # the folded BatchNorm's shift becomes the bias
        return layer.__class__.from_config(config)

    inference = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        target = inference.get_layer(layer.name)
        if layer.name in folded_convs:
            target.set_weights(folded_conv_weights(layer, model.get_layer(folded_convs[layer.name])))
        else:
            target.set_weights(layer.get_weights())
    return inference
