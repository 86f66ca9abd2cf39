"""Quantisation-aware training (QAT) with the TensorFlow Model Optimization toolkit (tfmot).

tfmot 0.8 quantises tf-keras (Keras 2) models only, so the export:

1. rebuilds the Keras 3 graph layer by layer with ``tf_keras`` and copies the
   weights (and checks that both give the same heatmaps);
2. annotates every layer for tfmot's default 8-bit scheme, except the
   standalone BatchNormalizations: the default scheme only knows BatchNorm
   folded into a preceding convolution, and our pre-activation residual module
   puts BatchNorm *before* its convolutions. Those get ``BatchNormQuantizeConfig``:
   parameters left in float (TFLite turns an unfolded BatchNorm into a
   per-channel MUL and ADD and quantises those), output quantised;
3. starts every activation's fake-quant range at the float model's range on
   the calibration crops: the default moving averages (decay 0.999) start at
   +-6 and would need thousands of steps to settle;
4. fine-tunes briefly to reproduce the float model's heatmaps (all stacks) on
   the calibration crops: self-distillation needs no labels and no knowledge
   of the training run's target sigma and peak, and it aims at exactly what
   QAT is for, undoing the quantisation error. BatchNorm statistics stay frozen;
5. saves the batch-1 network, input pinned to [0, 1] as in ``tflite``, for
   the int8 converter.

Import this module only when QAT is asked for: importing tfmot makes
``tf.keras`` refer to tf-keras for the rest of the process (our Keras 3 code
imports ``keras`` directly and is unaffected).
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tf_hourglass.export import saved_model
from tf_hourglass.export.errors import ExportError
from tf_hourglass.model import as_stack_list

quantize = tfmot.quantization.keras
# Relative heatmap difference beyond which the tf-keras rebuild is not the same network.
REBUILD_TOLERANCE = 1e-4


# ----- 1. the same graph in tf-keras ----------------------------------------------


def _tf_keras_layer(layer):
    """A tf-keras layer configured like the Keras 3 ``layer`` (weights not yet copied)."""
    kind = type(layer).__name__
    layers = tf_keras.layers
    if kind in ("Conv2D", "PointwiseConv2D"):  # the same layer at inference
        if layer.groups != 1 or layer.data_format != "channels_last":
            raise ValueError(
                f"Conv2D {layer.name!r}: only groups=1, channels_last convolutions are supported."
            )
        return layers.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            use_bias=layer.use_bias,
            activation=tf_keras.activations.get(_activation_name(layer.activation)),
            name=layer.name,
        )
    if kind in ("BatchNormalization", "FusedBatchNormalization"):  # the same layer at inference
        return layers.BatchNormalization(
            axis=layer.axis,
            momentum=layer.momentum,
            epsilon=layer.epsilon,
            center=layer.center,
            scale=layer.scale,
            name=layer.name,
        )
    if kind == "ReLU":
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise ValueError(f"ReLU {layer.name!r}: only the plain ReLU is supported.")
        return layers.ReLU(name=layer.name)
    if kind == "Activation":
        return layers.Activation(_activation_name(layer.activation), name=layer.name)
    if kind == "Add":
        return layers.Add(name=layer.name)
    if kind == "MaxPooling2D":
        return layers.MaxPooling2D(
            layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name
        )
    if kind == "UpSampling2D":
        return layers.UpSampling2D(layer.size, interpolation=layer.interpolation, name=layer.name)
    if kind == "NearestUpsampling2D":  # the same values; tf-keras resizes without TILE ops
        return layers.UpSampling2D(2, interpolation="nearest", name=layer.name)
    if kind == "ZeroPadding2D":
        return layers.ZeroPadding2D(layer.padding, name=layer.name)
    raise ValueError(f"Layer {layer.name!r} of type {kind} has no tf-keras counterpart here.")


def _activation_name(activation) -> str:
    import keras

    return keras.activations.serialize(activation)


def _source_name(tensor) -> str:
    # Keras 3 has no public graph walk for a subclassed functional model (its
    # get_config lists constructor arguments); every KerasTensor records the
    # layer that made it.
    return tensor._keras_history.operation.name


def to_tf_keras(model) -> tf_keras.Model:
    """The Keras 3 functional ``model`` rebuilt in tf-keras with the same weights."""
    tensors = {}
    input_names = {_source_name(t) for t in model.inputs}
    for layer in model.layers:
        if layer.name in input_names:
            tensors[layer.name] = tf_keras.Input(shape=tuple(layer.batch_shape[1:]), name=layer.name)
            continue
        if len(layer._inbound_nodes) != 1:
            raise ValueError(
                f"Layer {layer.name!r} is used {len(layer._inbound_nodes)} times; shared layers are not supported."
            )
        clone = _tf_keras_layer(layer)
        inputs = [tensors[_source_name(t)] for t in layer._inbound_nodes[0].input_tensors]
        tensors[layer.name] = clone(inputs if len(inputs) > 1 else inputs[0])
        clone.set_weights(layer.get_weights())
    inputs = [tensors[_source_name(t)] for t in model.inputs]
    outputs = [tensors[_source_name(t)] for t in as_stack_list(model.outputs)]
    return tf_keras.Model(inputs[0], outputs if len(outputs) > 1 else outputs[0], name=model.name)


def check_rebuild(model, rebuilt, crops) -> float:
    """Relative heatmap difference between the two; raises ``ExportError`` beyond ``REBUILD_TOLERANCE``."""
    crops = np.asarray(crops[:4], np.float32)
    expected = [np.asarray(x) for x in as_stack_list(model(crops, training=False))]
    actual = [np.asarray(x) for x in as_stack_list(rebuilt(crops, training=False))]
    peak = max(float(np.max(np.abs(x))) for x in expected) or 1.0
    difference = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected, strict=True)) / peak
    if difference > REBUILD_TOLERANCE:
        raise ExportError(f"The tf-keras rebuild differs from the model by {difference:.2e} of the peak.")
    return difference


# ----- 2. annotation ------------------------------------------------------------------


class BatchNormQuantizeConfig(quantize.QuantizeConfig):
    """A BatchNormalization that does not follow a convolution: float parameters, 8-bit output."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}


def quantization_aware_model(rebuilt: tf_keras.Model) -> tf_keras.Model:
    """``rebuilt`` with fake-quant ops (tfmot default 8-bit scheme + BatchNormQuantizeConfig), BN frozen."""
    for layer in rebuilt.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            # Frozen statistics: a short fine-tuning on small batches would only add noise to them.
            layer.trainable = False

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            return quantize.quantize_annotate_layer(layer, BatchNormQuantizeConfig())
        return quantize.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(rebuilt, clone_function=annotate)
    with quantize.quantize_scope({"BatchNormQuantizeConfig": BatchNormQuantizeConfig}):
        return quantize.quantize_apply(annotated)


# ----- 3. ranges ------------------------------------------------------------------------


def _input_range_variables(qat_model):
    # tfmot's QuantizeLayer (quantises the model input) is not in its public API.
    layer = next(layer for layer in qat_model.layers if type(layer).__name__ == "QuantizeLayer")
    return [v for v in layer.variables if re.search(r"_(min|max):0$", v.name)]


def pin_input_range(qat_model) -> None:
    """The input quantiser's range is [0, 1], like the image crops (and ``tflite``'s input)."""
    for variable in _input_range_variables(qat_model):
        variable.assign(0.0 if variable.name.endswith("min:0") else 1.0)


def initialize_ranges(qat_model, rebuilt, crops, batch_size: int = 16) -> int:
    """Sets each activation fake-quant range to the float layer's output range; returns how many."""
    ranges = {}
    for variable in qat_model.variables:
        match = re.fullmatch(r"quant_(.+)/(?:output|post_activation)_(min|max):0", variable.name)
        if match:
            ranges.setdefault(match.group(1), {})[match.group(2)] = variable
    names = sorted(n for n in ranges if n in {layer.name for layer in rebuilt.layers})
    probe = tf_keras.Model(rebuilt.input, [rebuilt.get_layer(n).output for n in names])
    low = dict.fromkeys(names, 0.0)  # quantised ranges must contain 0
    high = dict.fromkeys(names, 0.0)
    for start in range(0, len(crops), batch_size):
        outputs = probe(np.asarray(crops[start : start + batch_size], np.float32), training=False)
        for name, output in zip(names, outputs, strict=True):
            low[name] = min(low[name], float(np.min(output)))
            high[name] = max(high[name], float(np.max(output)))
    for name in names:
        ranges[name]["min"].assign(low[name])
        ranges[name]["max"].assign(high[name])
    pin_input_range(qat_model)
    return len(names)


# ----- 4. fine-tuning ----------------------------------------------------------------------


def distillation_error(qat_model, targets, crops) -> float:
    """Mean squared difference from the float heatmaps, all stacks, in inference mode."""
    outputs = as_stack_list(qat_model(np.asarray(crops, np.float32), training=False))
    return float(np.mean([np.mean((np.asarray(o) - t) ** 2) for o, t in zip(outputs, targets, strict=True)]))


def fine_tune(qat_model, model, crops, steps: int, batch_size: int, learning_rate: float, log=print) -> None:
    """``steps`` Adam steps towards the float model's heatmaps on the calibration crops."""
    crops = np.asarray(crops, np.float32)
    targets = [
        np.concatenate(parts)
        for parts in zip(
            *(
                [np.asarray(x) for x in as_stack_list(model(crops[i : i + 16], training=False))]
                for i in range(0, len(crops), 16)
            ),
            strict=True,
        )
    ]
    probe = slice(0, min(len(crops), 32))
    before = distillation_error(qat_model, [t[probe] for t in targets], crops[probe])
    labels = tuple(targets) if len(targets) > 1 else targets[0]
    dataset = (
        tf.data.Dataset.from_tensor_slices((crops, labels))
        .shuffle(len(crops), seed=0)
        .repeat()
        .batch(batch_size)
    )
    qat_model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=["mse"] * len(targets))
    qat_model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    pin_input_range(qat_model)  # the moving average drifted with the batches
    after = distillation_error(qat_model, [t[probe] for t in targets], crops[probe])
    log(
        f"QAT: fine-tuned {steps} steps (batch {batch_size}, lr {learning_rate:g}); heatmap MSE to the float model {before:.4g} -> {after:.4g}"
    )


# ----- 5. the network to convert ------------------------------------------------------------


def save_quantization_aware_network(
    model,
    path: str,
    crops,
    steps: int = 300,
    batch_size: int = 8,
    learning_rate: float = 1e-5,
    log=print,
) -> None:
    """Runs steps 1-4 on ``model`` (Keras 3) and saves the batch-1 QAT network as a SavedModel."""
    if crops is None or len(crops) == 0:
        raise ValueError("QAT needs calibration crops to fine-tune on; received none.")
    if steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(
            "QAT needs steps >= 1, batch_size >= 1 and learning_rate > 0. Received: "
            f"steps={steps}, batch_size={batch_size}, learning_rate={learning_rate}"
        )
    rebuilt = to_tf_keras(model)
    difference = check_rebuild(model, rebuilt, crops)
    qat_model = quantization_aware_model(rebuilt)
    num_ranges = initialize_ranges(qat_model, rebuilt, crops)
    log(
        f"QAT: rebuilt in tf-keras (difference {difference:.1e} of the peak); {num_ranges} activation ranges from calibration"
    )
    fine_tune(qat_model, model, crops, steps, batch_size, learning_rate, log=log)

    height, width = saved_model.fixed_input_size(model)

    def heatmaps(images):
        images = tf.quantization.fake_quant_with_min_max_args(images, min=0.0, max=1.0, num_bits=8)
        return {"heatmaps": as_stack_list(qat_model(images, training=False))[-1]}

    function = tf.function(
        heatmaps,
        input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name="images")],
        autograph=False,
    )
    module = tf.Module(name="tf_hourglass_qat_network")
    module.heatmaps = function
    saved_model.track_captured_variables(module, [function])
    tf.saved_model.save(module, path, signatures={"serving_default": function})
