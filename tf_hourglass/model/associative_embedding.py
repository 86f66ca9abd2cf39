"""Associative Embedding (Newell, Huang, Deng, NeurIPS 2017) as a Keras 3 functional model.

The multi-person, bottom-up hourglass: every stack predicts, per keypoint, a
detection heatmap and a tag map; the joints of one person get similar tags.
The topology is the official PyTorch code's ``PoseNet(nstack=4, inp_dim=256,
oup_dim=68, increase=128, bn=False)`` (princeton-vl/pose-ae-train,
``models/posenet.py`` and ``models/layers.py``), layer for layer, so that its
checkpoints load and the parameter counts match:

* every convolution has a bias, "same" padding ((k - 1) // 2) and a ReLU,
  except the 1x1 output and merge convolutions; there is no BatchNorm
  (``batch_norm=True`` is the official ``bn=True``: a BatchNorm after the
  ReLU of the stem's convolutions and of each hourglass level's ``up1``,
  ``low1`` and bottom convolution, as its ``Conv`` does; its ``low3`` is built
  without ``bn``);
* stem: 7x7 stride-2 conv to 64, 3x3 conv to 128, 2x2 max-pool, 3x3 conv to
  128, 3x3 conv to ``filters`` (64 and 128 are ``stem_filters``);
* hourglass of order n on f channels: upper branch a 3x3 conv f->f; lower
  branch 2x2 max-pool, 3x3 conv f->f+increase, the order n-1 hourglass on
  f+increase channels (a 3x3 conv at the bottom), 3x3 conv back to f, nearest
  x2 upsampling; the branches added. Widths grow by ``increase`` per level
  (256, 384, 512, 640, 768 in the official network). The official code passes
  ``increase`` to the outer hourglass only and its inner ones use their
  default, 128: the same network for the official 128; here every level
  grows by ``increase``;
* after each hourglass two 3x3 convs, then a 1x1 conv to the outputs; the next
  stack's input is x + 1x1conv(outputs) + 1x1conv(features).

Channel layout of each output, K = ``num_keypoints``, D = ``tag_dim``:

* [0, K): detection heatmaps, keypoint k in channel k;
* [K, K + K*D): tags, keypoint-major: tag component d of keypoint k in
  channel K + k*D + d (for D = 1, keypoint k's tag in channel K + k);
* [K + K*D, K + K*D + ``extra_channels``): channels the official network
  computes (its ``oup_dim`` is 68 = 4 x 17) and neither trains nor reads.
  They only feed the next stack's merge convolution; the official model has
  34 and keeps them here so that its checkpoints load.

``split_outputs`` (and ``detection_heatmaps``, ``tag_maps``) take one stack's
output apart.

Input: float RGB images in [0, 1] without mean subtraction (as the official
code's ``image / 255``), NHWC, sides multiples of 4 * 2**depth (64). Outputs:
one tensor per stack at 1/4 of the input resolution (512x512 -> 128x128),
``heatmaps_1`` ... ``heatmaps_{num_stacks}``, always float32. As for any Keras
functional model, a one-stack model returns a tensor rather than a list of
one; ``as_stack_list`` gives a list either way.

Initialisation is what the official training starts from: PyTorch's default
``nn.Conv2d`` init, U(+-1/sqrt(fan_in)) for kernels and biases (its
``weights_init`` is defined but never applied).
"""

from __future__ import annotations

import keras
from keras import layers

from tf_hourglass.model.hourglass import FusedBatchNormalization, NearestUpsampling2D, apply_conv
from tf_hourglass.model.info import MULTI_PERSON
from tf_hourglass.model.pose_model import (
    IMAGES_INPUT,
    PoseModel,
    check_input_sides,
    check_integers,
    output_name,
)

OUTPUT_STRIDES = (4, 2)  # 4: the official stem; 2: without its max-pool, maps twice as fine


def apply_conv_relu(x, filters, kernel_size, name, strides=1, padding="same", batch_norm=False):
    """The official ``Conv``: convolution with bias, ReLU, then (``bn=True``) BatchNorm after the ReLU."""
    x = apply_conv(x, filters, kernel_size, name, strides=strides, padding=padding, torch_bias=True)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if batch_norm:
        # PyTorch's BatchNorm2d defaults: epsilon 1e-5, running averages with momentum 0.1.
        x = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    return x


def apply_stem(x, filters, stem_filters=(64, 128), batch_norm=False, output_stride=4):
    first, second = stem_filters
    # The official 7x7 stride-2 convolution pads 3 on every side; Keras' "same"
    # would pad 2 before and 3 after, shifting every output by a pixel.
    x = layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = apply_conv_relu(x, first, 7, "stem_conv1", strides=2, padding="valid", batch_norm=batch_norm)
    x = apply_conv_relu(x, second, 3, "stem_conv2", batch_norm=batch_norm)
    if output_stride == 4:
        x = layers.MaxPooling2D(2, strides=2, name="stem_pool")(x)
    x = apply_conv_relu(x, second, 3, "stem_conv3", batch_norm=batch_norm)
    return apply_conv_relu(x, filters, 3, "stem_conv4", batch_norm=batch_norm)


def apply_hourglass(x, order, increase, name, batch_norm=False):
    """Hourglass of order ``order`` on ``x``'s channels, each level ``increase`` wider (the official ``Hourglass``)."""
    width = x.shape[-1]
    upper = apply_conv_relu(x, width, 3, f"{name}_up", batch_norm=batch_norm)
    lower = layers.MaxPooling2D(2, strides=2, name=f"{name}_pool")(x)
    lower = apply_conv_relu(lower, width + increase, 3, f"{name}_low1", batch_norm=batch_norm)
    if order > 1:
        lower = apply_hourglass(lower, order - 1, increase, f"{name}_inner", batch_norm)
    else:
        lower = apply_conv_relu(lower, width + increase, 3, f"{name}_bottom", batch_norm=batch_norm)
    # The official Hourglass builds low3 as Conv(nf, f, 3): without its bn, also under bn=True.
    lower = apply_conv_relu(lower, width, 3, f"{name}_low3")
    lower = NearestUpsampling2D(name=f"{name}_upsample")(lower)
    return layers.Add(name=f"{name}_add")([upper, lower])


def validate_arguments(
    num_stacks,
    filters,
    increase,
    depth,
    num_keypoints,
    tag_dim,
    extra_channels,
    input_shape,
    stem_filters,
    output_stride,
):
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride must be one of {OUTPUT_STRIDES}. Received: output_stride={output_stride!r}"
        )
    if len(tuple(stem_filters)) != 2:
        raise ValueError(
            f"stem_filters must be two channel counts (first, second). Received: {stem_filters!r}"
        )
    check_integers(
        ("stem_filters[0]", stem_filters[0], 1),
        ("stem_filters[1]", stem_filters[1], 1),
        ("num_stacks", num_stacks, 1),
        ("filters", filters, 1),
        ("increase", increase, 0),
        ("depth", depth, 1),
        ("num_keypoints", num_keypoints, 1),
        ("tag_dim", tag_dim, 1),
        ("extra_channels", extra_channels, 0),
    )
    check_input_sides(input_shape, depth)


@keras.saving.register_keras_serializable(package="tf_hourglass")
class AssociativeEmbedding(PoseModel):
    """Associative Embedding hourglass: per stack, detection heatmaps, tags and extra channels.

    Args:
        num_stacks: number of hourglasses (4 in the official model).
        filters: channels between hourglasses (the official ``inp_dim``, 256).
        increase: channels added at each lower hourglass level (128).
        depth: order of each hourglass, i.e. number of 2x downsamplings (4).
        num_keypoints: keypoints K (17, COCO's joints in COCO's order).
        tag_dim: tag components per keypoint D (1).
        extra_channels: unused output channels kept for the official
            checkpoints (34 in the official model; 0 for a new model).
        input_shape: (height, width, 3); height and width multiples of
            4 * 2**depth, or None for any such size.
        stem_filters: channels of the stem's first convolution and of its
            next two ((64, 128) in the official model; smaller for CPU presets).
        batch_norm: the official ``bn=True``: a BatchNorm after the ReLU of
            every stem convolution and of each hourglass level's ``up``,
            ``low1`` and bottom convolution (not ``low3``, the two head
            convolutions, the outputs or the merges, as the official code).
            The released model has none (``bn=False``, the default).
        output_stride: input pixels per output pixel: 4 as the official
            network, or 2 for a stem without its max-pool (maps twice as fine
            at four times the hourglass's cost; not an official layout, for
            small inputs where 1/4 is too coarse to place joints).

    Outputs a list of ``num_stacks`` float32 tensors of shape
    (batch, height/output_stride, width/output_stride, K*(1 + D) + extra_channels), named
    ``heatmaps_1`` ...; the channel layout is in the module docstring.
    """

    model_kind = MULTI_PERSON  # its outputs are grouped into people, not decoded per crop

    config_overrides = ("num_stacks", "filters", "depth")

    def __init__(
        self,
        num_stacks=4,
        filters=256,
        increase=128,
        depth=4,
        num_keypoints=17,
        tag_dim=1,
        extra_channels=34,
        input_shape=(512, 512, 3),
        stem_filters=(64, 128),
        batch_norm=False,
        output_stride=4,
        name="associative_embedding",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        stem_filters = tuple(stem_filters)
        validate_arguments(
            num_stacks,
            filters,
            increase,
            depth,
            num_keypoints,
            tag_dim,
            extra_channels,
            input_shape,
            stem_filters,
            output_stride,
        )
        num_channels = num_keypoints * (1 + tag_dim) + extra_channels

        images = keras.Input(shape=input_shape, name=IMAGES_INPUT)
        x = apply_stem(images, filters, stem_filters, batch_norm, output_stride)
        outputs = []
        for i in range(1, num_stacks + 1):
            prefix = f"stack{i}"
            features = apply_hourglass(x, depth, increase, f"{prefix}_hg", batch_norm)
            features = apply_conv_relu(features, filters, 3, f"{prefix}_head_conv1")
            features = apply_conv_relu(features, filters, 3, f"{prefix}_head_conv2")
            preds = apply_conv(features, num_channels, 1, f"{prefix}_output_conv", torch_bias=True)
            # Outputs (and the losses on them) stay float32 under mixed precision.
            outputs.append(layers.Activation("linear", dtype="float32", name=output_name(i))(preds))
            if i < num_stacks:
                preds_back = apply_conv(preds, filters, 1, f"{prefix}_preds_back_conv", torch_bias=True)
                features_back = apply_conv(
                    features, filters, 1, f"{prefix}_features_back_conv", torch_bias=True
                )
                x = layers.Add(name=f"{prefix}_merge")([x, preds_back, features_back])

        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)

        self.num_stacks = num_stacks
        self.filters = filters
        self.increase = increase
        self.depth = depth
        self.num_keypoints = num_keypoints
        self.tag_dim = tag_dim
        self.extra_channels = extra_channels
        self.image_shape = input_shape
        self.stem_filters = stem_filters
        self.batch_norm = bool(batch_norm)
        self.output_stride = output_stride

    @property
    def heatmap_stride(self) -> int:
        """Input pixels per output pixel (``output_stride``)."""
        return self.output_stride

    @property
    def num_output_channels(self) -> int:
        """Channels of each output: K heatmaps, K*tag_dim tags, the extra channels."""
        return self.num_keypoints * (1 + self.tag_dim) + self.extra_channels

    def get_config(self):
        return self.with_pose_info(
            {
                "num_stacks": self.num_stacks,
                "filters": self.filters,
                "increase": self.increase,
                "depth": self.depth,
                "num_keypoints": self.num_keypoints,
                "tag_dim": self.tag_dim,
                "extra_channels": self.extra_channels,
                "input_shape": self.image_shape,
                "stem_filters": self.stem_filters,
                "batch_norm": self.batch_norm,
                "output_stride": self.output_stride,
                "name": self.name,
                "trainable": self.trainable,
            }
        )


def _check_channels(outputs, num_keypoints, tag_dim):
    needed = num_keypoints * (1 + tag_dim)
    if outputs.shape[-1] is not None and outputs.shape[-1] < needed:
        raise ValueError(
            f"An output with K={num_keypoints} keypoints and tag_dim={tag_dim} has at least {needed} "
            f"channels. Received: shape {tuple(outputs.shape)}"
        )


def detection_heatmaps(outputs, num_keypoints=17):
    """The detection heatmaps (N, H, W, K) of one stack's output (N, H, W, C)."""
    _check_channels(outputs, num_keypoints, 1)
    return outputs[..., :num_keypoints]


def tag_maps(outputs, num_keypoints=17, tag_dim=1):
    """The tags (N, H, W, K, tag_dim) of one stack's output (N, H, W, C); keypoint-major channels."""
    _check_channels(outputs, num_keypoints, tag_dim)
    tags = outputs[..., num_keypoints : num_keypoints * (1 + tag_dim)]
    shape = keras.ops.shape(tags)
    return keras.ops.reshape(tags, (shape[0], shape[1], shape[2], num_keypoints, tag_dim))


def split_outputs(outputs, num_keypoints=17, tag_dim=1):
    """(detection heatmaps (N, H, W, K), tags (N, H, W, K, tag_dim)) of one stack's output."""
    return detection_heatmaps(outputs, num_keypoints), tag_maps(outputs, num_keypoints, tag_dim)
