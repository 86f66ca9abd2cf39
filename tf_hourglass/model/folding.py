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
follows an addition and stays. CPMs have no BatchNorm: folding returns them
as they are.

Associative Embedding's ``batch_norm=True`` (the official ``bn=True``) puts
the BatchNorm after the convolution's ReLU: ``s * relu(z) + t`` with ``t =
beta - mean * s``. For ``s > 0`` that is ``max(s * z + t, t)``: the whole
affine map goes into the convolution and the ReLU and the BatchNorm become one
per-channel maximum with ``t``, the ``FoldedReluBatchNorm`` layer. A channel
with ``s < 0`` is computed negated, ``max(|s| * z - t, -t)``, and flipped back
(the layer then holds a sign of +-1 per channel). This is what lets the network
quantise to int8: a BatchNorm's multiplier spans 0.4 to 300 across the channels
of a trained stem, and TFLite quantises a multiplier with one scale per tensor
(the convolution's kernel gets one per channel); and a maximum keeps its
input's int8 scale, where an addition after the ReLU would round every
activation a second time.

``fold_batch_norms`` builds a new Keras functional model with the same inputs,
outputs and layer names, the folded BatchNorms (and the ReLUs before folded ones)
replaced by pass-through layers (``FoldedBatchNormalization``); the trained model is not changed (it keeps training and saving as
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
    """Where a folded BatchNorm was, or a ReLU now inside a ``FoldedReluBatchNorm``: passes its input through.

    Unlike ``layers.Identity`` it takes the ``mask`` argument the BatchNorm was called with.
    """

    def call(self, inputs, mask=None):
        del mask
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_hourglass")
class FoldedReluBatchNorm(layers.Layer):
    """Where a ReLU and the BatchNorm after it were: ``maximum(inputs, floor) * sign`` per channel.

    The convolution before holds the BatchNorm's affine map (see the module docstring).

    Args:
        flips_channels: whether some channel's BatchNorm scale was negative (then
            the layer holds a ``sign`` of +-1 per channel; otherwise it is only the maximum).
    """

    def __init__(self, flips_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.flips_channels = bool(flips_channels)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if self.flips_channels:
            self.sign = self.add_weight(name="sign", shape=(channels,), initializer="ones", trainable=False)
        self.floor = self.add_weight(name="floor", shape=(channels,), initializer="zeros", trainable=False)

    def call(self, inputs, mask=None):
        del mask
        outputs = keras.ops.maximum(inputs, keras.ops.cast(self.floor, inputs.dtype))
        return outputs * keras.ops.cast(self.sign, inputs.dtype) if self.flips_channels else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "flips_channels": self.flips_channels}


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
        if _plain_conv(conv):
            pairs[layer.name] = conv.name
    return pairs


def _plain_conv(layer) -> bool:
    """A channels-last, ungrouped, linear ``Conv2D`` called once whose output one layer reads."""
    return (
        isinstance(layer, layers.Conv2D)
        and type(layer).__name__ != "DepthwiseConv2D"
        and layer.data_format == "channels_last"
        and layer.groups == 1
        and layer.activation in (None, keras.activations.linear)
        and len(layer._inbound_nodes) == 1
        and len(layer._outbound_nodes) == 1
    )


def _is_plain_relu(layer) -> bool:
    return (
        isinstance(layer, layers.ReLU)
        and layer.max_value is None
        and float(layer.negative_slope) == 0.0
        and float(layer.threshold) == 0.0
    )


def foldable_relu_triples(model: keras.Model) -> dict[str, tuple[str, str]]:
    """{BatchNorm layer name: (its ReLU, the convolution before)} for every conv -> ReLU -> BatchNorm chain
    that folds: each layer called once and read only by the next, as ``foldable_pairs``."""
    triples = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        relu = _single_producer(layer)
        if relu is None or not _is_plain_relu(relu) or len(relu._outbound_nodes) != 1:
            continue
        conv = _single_producer(relu)
        if _plain_conv(conv):
            triples[layer.name] = (relu.name, conv.name)
    return triples


def _batch_norm_affine(batch_norm) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per channel of ``batch_norm`` at inference, in float64."""
    channels = int(batch_norm.moving_mean.shape[-1])
    gamma = np.asarray(batch_norm.gamma, np.float64) if batch_norm.scale else np.ones(channels)
    beta = np.asarray(batch_norm.beta, np.float64) if batch_norm.center else np.zeros(channels)
    mean = np.asarray(batch_norm.moving_mean, np.float64)
    variance = np.asarray(batch_norm.moving_variance, np.float64)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    return scale, beta - mean * scale


def folded_relu_weights(conv, batch_norm) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the convolution's weights, the ``FoldedReluBatchNorm``'s weights) of conv -> ReLU -> ``batch_norm``."""
    scale, shift = _batch_norm_affine(batch_norm)
    sign = np.where(scale < 0, -1.0, 1.0)
    # Channel c computes sign * (s * z + t) = |s| * z + sign * t, then the maximum with sign * t.
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    conv_weights = [kernel * np.abs(scale), bias * np.abs(scale) + sign * shift]
    layer_weights = [sign * shift]
    if np.any(scale < 0):
        layer_weights.insert(0, sign)
    as_float32 = lambda arrays: [a.astype(np.float32) for a in arrays]  # noqa: E731
    return as_float32(conv_weights), as_float32(layer_weights)


def folded_conv_weights(conv, batch_norm) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of ``conv`` followed by ``batch_norm`` at inference, in float32 (float64 inside)."""
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    scale, shift = _batch_norm_affine(batch_norm)
    return (kernel * scale).astype(np.float32), (bias * scale + shift).astype(np.float32)


def fold_batch_norms(model: keras.Model, dtype: str | None = None) -> keras.Model:
    """``model``'s inference graph: BatchNorms after convolutions (or after a convolution's ReLU) folded
    into them (see the module docstring).

    Args:
        model: a built Keras functional model (a ``StackedHourglass``, any pose model).
        dtype: None to keep each layer's dtype policy, else the policy for
            every layer except those producing the outputs (e.g. ``"bfloat16"``).

    Returns:
        A new functional model computing ``model(x, training=False)`` to float
        rounding; ``model`` itself when there is nothing to fold and no dtype to change.
    """
    pairs = foldable_pairs(model)
    triples = foldable_relu_triples(model)
    if not pairs and not triples and dtype is None:
        return model
    folded_convs = {conv: batch_norm for batch_norm, conv in pairs.items()}
    relu_convs = {conv: batch_norm for batch_norm, (_, conv) in triples.items()}
    folded_relus = {relu for relu, _ in triples.values()}
    relu_weights = {
        batch_norm: folded_relu_weights(model.get_layer(conv), model.get_layer(batch_norm))
        for batch_norm, (_, conv) in triples.items()
    }
    output_layers = {tensor._keras_history.operation.name for tensor in keras.tree.flatten(model.outputs)}

    def clone(layer):
        if layer.name in pairs or layer.name in folded_relus:
            return FoldedBatchNormalization(name=layer.name)
        if layer.name in triples:
            flips = len(relu_weights[layer.name][1]) == 2
            policy = dtype if dtype is not None and layer.name not in output_layers else layer.dtype_policy
            return FoldedReluBatchNorm(flips_channels=flips, name=layer.name, dtype=policy)
        config = layer.get_config()
        if dtype is not None and layer.name not in output_layers:
            config["dtype"] = dtype
        if (layer.name in folded_convs or layer.name in relu_convs) and not config.get("use_bias", True):
            config["use_bias"] = True  # the folded BatchNorm's shift becomes (part of) the bias
        return layer.__class__.from_config(config)

    inference = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        target = inference.get_layer(layer.name)
        if layer.name in folded_convs:
            target.set_weights(folded_conv_weights(layer, model.get_layer(folded_convs[layer.name])))
        elif layer.name in relu_convs:
            target.set_weights(relu_weights[relu_convs[layer.name]][0])
        elif layer.name in triples:
            target.set_weights(relu_weights[layer.name][1])
        else:
            target.set_weights(layer.get_weights())
    return inference
