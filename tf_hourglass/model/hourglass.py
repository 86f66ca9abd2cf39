"""Stacked Hourglass Network (Newell, Yang, Deng, ECCV 2016) as a Keras 3 functional model.

The topology follows the original Torch code (umich-vl/pose-hg-train, ``hg.lua``
and ``Residual.lua``) layer for layer, so that trainable parameter counts and
outputs match it:

* residual module: pre-activation bottleneck BN-ReLU-Conv1x1(N/2)-BN-ReLU-
  Conv3x3(N/2)-BN-ReLU-Conv1x1(N), convolutions with bias, a 1x1 skip
  convolution only when input and output channels differ;
* hourglass of order n: upper branch of residual modules at the current scale;
  lower branch of 2x2 max-pool, residual modules, the order n-1 hourglass (or
  residual modules at the bottom), residual modules, nearest x2 upsampling;
  the two branches added;
* stem: 7x7 stride-2 conv to 64 + BN + ReLU, residual 64->128, max-pool,
  residual 128->128, residual 128->filters (``stem="bearpaw"``: 128->256,
  256->filters, as bearpaw/pytorch-pose);
* head of each stack: residual modules, 1x1 conv + BN + ReLU, 1x1 conv to K
  heatmaps; the next stack's input is x + 1x1conv(features) + 1x1conv(heatmaps).

Two layers train faster than Keras' own on CPUs and compute the same thing:
``FusedBatchNormalization`` and ``PointwiseConv2D`` (1x1 convolutions). At
inference both run Keras' code, so exported graphs are plain Keras layers.

Input: float images in [0, 1] (as the original code), shape ``input_shape``.
Outputs: one heatmap tensor per stack at 1/4 of the input resolution, named
``heatmaps_1`` ... ``heatmaps_{num_stacks}``, always float32. As for any Keras
functional model, a one-stack model returns a tensor rather than a list of
one; ``as_stack_list`` gives a list either way.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from tf_hourglass.model.pose_model import (  # noqa: F401 (as_stack_list re-exported)
    PoseModel,
    as_stack_list,
    check_input_sides,
    check_integers,
    output_name,
)

# Torch7's BatchNormalization: eps 1e-5, running-average momentum 0.1, which is
# Keras' momentum 0.9 (Keras weighs the old value).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def torch_conv_initializer():
    """Torch7's default convolution init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    That uniform distribution has variance 1 / (3 fan_in), i.e. VarianceScaling
    with scale 1/3 in fan_in mode.
    """
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_bias_initializer(fan_in):
    """PyTorch's default ``nn.Conv2d`` bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of its kernel's fan_in.

    A Keras bias initializer sees only the bias' shape, so the bound is fixed
    when the layer is made (the kernel's fan_in is known then).
    """
    bound = 1.0 / float(fan_in) ** 0.5
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="tf_hourglass")
class PointwiseConv2D(layers.Conv2D):
    """Keras' 1x1 Conv2D, whose training gradients are computed as matrix products.

    A 1x1 convolution over NHWC activations is a matrix product of the
    (N*H*W, C_in) activations with the kernel. oneDNN's convolution kernels
    computed its weight gradient at 106-229 GFLOP/s in an hg2 training step
    (21% of a float32 step; benchmarks/profile_train_step.py --by_convolution),
    its matmul computes the same product at 330-360. The forward pass and the
    input gradient stay TensorFlow's convolution, and inference is Keras' own
    code: exported graphs do not change. Gradients equal Keras' to float
    rounding (tested).
    """

    def __init__(self, filters, kernel_size=1, strides=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, **kwargs)
        if self.kernel_size != (1, 1) or self.strides != (1, 1):
            raise ValueError(
                f"PointwiseConv2D is a 1x1, stride-1 convolution; received kernel_size={kernel_size!r}, "
                f"strides={strides!r}."
            )

    def call(self, inputs, training=None):
        matmul_gradients = (
            training is True and self.use_bias and self.groups == 1 and self.data_format == "channels_last"
        )
        if not matmul_gradients:
            return super().call(inputs)
        # Tensors, not variables, into the custom gradient (and cast as Keras casts them).
        kernel = tf.cast(self.kernel, self.compute_dtype)
        bias = tf.cast(self.bias, self.compute_dtype)
        outputs = _pointwise_conv(inputs, kernel, bias)
        return self.activation(outputs) if self.activation is not None else outputs


@tf.custom_gradient
def _pointwise_conv(inputs, kernel, bias):
    outputs = tf.nn.bias_add(tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID"), bias)

    def gradients(output_gradients):
        with tf.name_scope("pointwise_conv_gradients"):  # names the ops as gradients in profiles
            in_channels, out_channels = kernel.shape[2], kernel.shape[3]
            flat_inputs = tf.reshape(inputs, [-1, in_channels])
            flat_gradients = tf.reshape(output_gradients, [-1, out_channels])
            input_gradients = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(inputs),
                filter=kernel,
                out_backprop=output_gradients,
                strides=[1, 1, 1, 1],
                padding="VALID",
            )
            kernel_gradients = tf.matmul(flat_inputs, flat_gradients, transpose_a=True)
            # Column sums as a matrix product too: oneDNN's matmul reads the
            # gradients about 3x faster than TensorFlow's Sum reduction.
            ones = tf.ones([1, tf.shape(flat_gradients)[0]], flat_gradients.dtype)
            bias_gradients = tf.matmul(ones, flat_gradients)[0]
            return input_gradients, tf.reshape(kernel_gradients, tf.shape(kernel)), bias_gradients

    return outputs, gradients


def apply_conv(x, filters, kernel_size, name, strides=1, padding="same", torch_bias=False):
    """Convolution with bias, Torch's kernel init; ``torch_bias`` also draws the bias as PyTorch does (else 0)."""
    conv = PointwiseConv2D if kernel_size == 1 and strides == 1 else layers.Conv2D
    fan_in = kernel_size * kernel_size * x.shape[-1]
    return conv(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=True,
        kernel_initializer=torch_conv_initializer(),
        bias_initializer=torch_bias_initializer(fan_in) if torch_bias else "zeros",
        name=name,
    )(x)


@keras.saving.register_keras_serializable(package="tf_hourglass")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization, trained with TensorFlow's fused kernel.

    Keras 3 normalises a training batch with separate moments, subtract,
    multiply and add ops, each a pass over the activations, and as many again
    in the backward pass: 22% of an hg2 training step on a CPU
    (benchmarks/profile_train_step.py). ``FusedBatchNormV3`` does each
    direction in one oneDNN (or cuDNN) kernel, which makes the step 10-15%
    faster. Inference runs Keras' own code, so exported graphs do not change.

    The moving variance is updated with the unbiased batch variance, as in
    Torch7 and PyTorch (Keras' layer uses the biased one); the outputs are the
    same. Masks, renormalisation and other layouts fall back to Keras' code.
    """

    def call(self, inputs, training=None, mask=None):
        fused = (
            isinstance(training, bool)
            and training
            and self.trainable
            and mask is None
            and not self.renorm
            and self.center
            and self.scale
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        empty = tf.zeros([0], tf.float32)
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=tf.cast(inputs, tf.float32),  # statistics in float32 under mixed precision, as Keras does
            scale=tf.cast(self.gamma, tf.float32),
            offset=tf.cast(self.beta, tf.float32),
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)


def apply_bn_relu(x, name):
    x = FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def apply_residual(x, filters, name):
    """Pre-activation bottleneck residual module (``Residual.lua``)."""
    in_channels = x.shape[-1]
    y = apply_bn_relu(x, f"{name}_1")
    y = apply_conv(y, filters // 2, 1, f"{name}_1_conv")
    y = apply_bn_relu(y, f"{name}_2")
    y = apply_conv(y, filters // 2, 3, f"{name}_2_conv")
    y = apply_bn_relu(y, f"{name}_3")
    y = apply_conv(y, filters, 1, f"{name}_3_conv")
    skip = x if in_channels == filters else apply_conv(x, filters, 1, f"{name}_skip_conv")
    return layers.Add(name=f"{name}_add")([skip, y])


@keras.saving.register_keras_serializable(package="tf_hourglass")
class NearestUpsampling2D(layers.Layer):
    """x2 nearest-neighbour upsampling written as two concatenations and reshapes.

    The same values as ``UpSampling2D(2, interpolation="nearest")``, whose
    repeat becomes TILE ops in TFLite: XNNPACK does not take those, so the
    graph splits into a delegated part per upsampling. Concatenation and
    reshape are delegated by XNNPACK and plain in ONNX and TensorRT.
    """

    def call(self, x):
        dynamic = keras.ops.shape(x)
        height, width = (x.shape[i] if x.shape[i] is not None else dynamic[i] for i in (1, 2))
        channels = x.shape[-1]
        # (.., W, 2C) read as (.., 2W, C) repeats each column; the same on rows.
        x = keras.ops.reshape(keras.ops.concatenate([x, x], axis=-1), (-1, height, 2 * width, channels))
        return keras.ops.reshape(keras.ops.concatenate([x, x], axis=2), (-1, 2 * height, 2 * width, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, channels)


@keras.saving.register_keras_serializable(package="tf_hourglass")
class SubtractMean(layers.Layer):
    """Subtracts a per-channel constant (a dataset mean) from the input.

    The mean is a constant made inside ``call``, so every export holds it in
    the graph (Keras' Normalization keeps it outside, which ONNX turns into
    extra required inputs).
    """

    def __init__(self, mean, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]

    def call(self, x):
        return x - keras.ops.cast(keras.ops.convert_to_tensor(self.mean), x.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean}


def apply_residual_stack(x, filters, num_modules, name):
    for i in range(1, num_modules + 1):
        x = apply_residual(x, filters, f"{name}_res{i}")
    return x


def apply_hourglass(x, order, filters, num_residual_modules, name):
    """Recursive hourglass of order ``order`` (``hourglass`` in ``hg.lua``)."""
    upper = apply_residual_stack(x, filters, num_residual_modules, f"{name}_up")
    lower = layers.MaxPooling2D(2, strides=2, name=f"{name}_pool")(x)
    lower = apply_residual_stack(lower, filters, num_residual_modules, f"{name}_low1")
    if order > 1:
        lower = apply_hourglass(lower, order - 1, filters, num_residual_modules, f"{name}_inner")
    else:
        lower = apply_residual_stack(lower, filters, num_residual_modules, f"{name}_bottom")
    lower = apply_residual_stack(lower, filters, num_residual_modules, f"{name}_low3")
    lower = NearestUpsampling2D(name=f"{name}_upsample")(lower)
    return layers.Add(name=f"{name}_add")([upper, lower])


# Output channels of the stem's residual modules after the max-pool ("filters"
# stands for the hourglass width). "original": the Torch code and the official
# PyTorch port (princeton-vl); "bearpaw": bearpaw/pytorch-pose, whose second
# module always widens to 256 (its width is fixed at 256).
STEMS = {
    "original": (128, "filters"),
    "bearpaw": (256, "filters"),
}


def apply_stem(x, filters, stem="original"):
    # The original pads the 7x7 stride-2 convolution by 3 on every side; Keras'
    # "same" would pad 2 before and 3 after, shifting every heatmap by a pixel.
    x = layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = apply_conv(x, 64, 7, "stem_conv", strides=2, padding="valid")
    x = apply_bn_relu(x, "stem")
    x = apply_residual(x, 128, "stem_res1")
    x = layers.MaxPooling2D(2, strides=2, name="stem_pool")(x)
    for i, width in enumerate(STEMS[stem], start=2):
        x = apply_residual(x, filters if width == "filters" else width, f"stem_res{i}")
    return x


def validate_arguments(num_stacks, num_keypoints, filters, depth, num_residual_modules, input_shape, stem):
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {sorted(STEMS)}. Received: stem={stem!r}")
    check_integers(
        ("num_stacks", num_stacks, 1),
        ("num_keypoints", num_keypoints, 1),
        ("filters", filters, 2),
        ("depth", depth, 1),
        ("num_residual_modules", num_residual_modules, 1),
    )
    if filters % 2:
        raise ValueError(
            f"`filters` must be even (the bottleneck uses filters/2). Received: filters={filters}"
        )
    check_input_sides(input_shape, depth)


@keras.saving.register_keras_serializable(package="tf_hourglass")
class StackedHourglass(PoseModel):
    """Stacked Hourglass Network with one heatmap output per stack.

    Args:
        num_stacks: number of hourglasses (the paper's main model has 8).
        num_keypoints: heatmap channels K (16 for MPII).
        filters: feature channels inside the hourglasses (256 in the paper).
        depth: order of each hourglass, i.e. number of 2x downsamplings (4).
        num_residual_modules: residual modules per branch (1 in the paper).
        input_shape: (height, width, 3); height and width multiples of
            4 * 2**depth, or None for any such size.
        input_mean: None, or a per-channel (R, G, B) value the model subtracts
            from its [0, 1] input first (bearpaw/pytorch-pose trains on
            mean-subtracted images); None for the original network.
        stem: "original" (the Torch code and the official PyTorch port:
            residual modules 128->128 then 128->filters after the max-pool) or
            "bearpaw" (bearpaw/pytorch-pose: 128->256 then 256->filters), so
            that both projects' weights load exactly.

    Outputs a list of ``num_stacks`` float32 tensors of shape
    (batch, height/4, width/4, num_keypoints), named ``heatmaps_1`` ...
    Fit it with a single target heatmap tensor: the model compares it with
    every stack's output (intermediate supervision), see ``compute_loss``.
    """

    config_overrides = ("num_stacks", "filters", "depth")

    def __init__(
        self,
        num_stacks=8,
        num_keypoints=16,
        filters=256,
        depth=4,
        num_residual_modules=1,
        input_shape=(256, 256, 3),
        stem="original",
        input_mean=None,
        name="stacked_hourglass",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        validate_arguments(num_stacks, num_keypoints, filters, depth, num_residual_modules, input_shape, stem)

        images = keras.Input(shape=input_shape, name="images")
        x = images
        if input_mean is not None:
            input_mean = [float(v) for v in input_mean]
            if len(input_mean) != input_shape[-1]:
                raise ValueError(
                    f"`input_mean` needs one value per input channel ({input_shape[-1]}). "
                    f"Received: input_mean={input_mean}"
                )
            x = SubtractMean(input_mean, name="input_mean")(x)
        x = apply_stem(x, filters, stem)
        outputs = []
        for i in range(1, num_stacks + 1):
            prefix = f"stack{i}"
            features = apply_hourglass(x, depth, filters, num_residual_modules, f"{prefix}_hg")
            features = apply_residual_stack(features, filters, num_residual_modules, f"{prefix}_head")
            features = apply_conv(features, filters, 1, f"{prefix}_lin_conv")
            features = apply_bn_relu(features, f"{prefix}_lin")
            heatmaps = apply_conv(features, num_keypoints, 1, f"{prefix}_heatmap_conv")
            # Heatmaps (and the loss on them) stay float32 under mixed precision.
            outputs.append(layers.Activation("linear", dtype="float32", name=output_name(i))(heatmaps))
            if i < num_stacks:
                features_back = apply_conv(features, filters, 1, f"{prefix}_features_back_conv")
                heatmaps_back = apply_conv(heatmaps, filters, 1, f"{prefix}_heatmaps_back_conv")
                x = layers.Add(name=f"{prefix}_merge")([x, features_back, heatmaps_back])

        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)

        self.num_stacks = num_stacks
        self.num_keypoints = num_keypoints
        self.filters = filters
        self.depth = depth
        self.num_residual_modules = num_residual_modules
        self.image_shape = input_shape
        self.stem = stem
        self.input_mean = input_mean

    def get_config(self):
        return self.with_pose_info(
            {
                "num_stacks": self.num_stacks,
                "num_keypoints": self.num_keypoints,
                "filters": self.filters,
                "depth": self.depth,
                "num_residual_modules": self.num_residual_modules,
                "input_shape": self.image_shape,
                "stem": self.stem,
                "input_mean": self.input_mean,
                "name": self.name,
                "trainable": self.trainable,
            }
        )
