"""Convolutional Pose Machines (Wei, Ramakrishna, Kanade, Sheikh, CVPR 2016) as a Keras 3 functional model.

The topology is the released Caffe model of the paper (``pose_deploy_centerMap``
for LSP, FLIC and MPII), layer for layer:

* stage 1, on the image alone: three 9x9 convolutions of ``filters`` channels,
  each followed by a 3x3 stride-2 max-pool (stride 8 in all), a 5x5
  convolution to filters/4, a 9x9 convolution to 4*filters, a 1x1 convolution
  to 4*filters and a 1x1 convolution to K+1 belief maps (keypoints and
  background);
* a second image trunk of the same three conv + pool blocks, shared by every
  later stage;
* stage t >= 2: its own 5x5 convolution to filters/4 on the shared trunk,
  concatenated with stage t-1's belief maps and the centre map (average-pooled
  9x9 stride 8 to the belief maps' resolution), then three
  ``stage_kernel_size`` convolutions (11x11 in the paper: the receptive field
  that lets a stage see the whole body), a 1x1 convolution and a 1x1
  convolution to K+1 belief maps.

Every convolution is followed by ReLU except the belief-map outputs. Max-pools
use "same" padding, which for these sizes equals Caffe's ceil-mode pooling
(windows start at the first pixel), so a 368x368 input gives 46x46 maps.

Inputs: ``images`` float in [0, 1] (shifted to [-0.5, 0.5] inside, as the
original's x/256 - 0.5), and with ``use_center_map`` a ``center_map`` of shape
(H, W, 1) (see ``tf_hourglass.data.center_map``). Outputs: one tensor of K+1
belief maps per stage at 1/8 of the input, ``heatmaps_1`` ... , float32.
"""

from __future__ import annotations

import keras
from keras import layers

from tf_hourglass.data.center_map import center_map_sigma
from tf_hourglass.model.pose_model import (
    CENTER_MAP_INPUT,
    IMAGES_INPUT,
    PoseModel,
    check_image_shape,
    check_integers,
    output_name,
)


def relu_conv_initializer():
    # He initialisation keeps the activations' scale through the deep plain
    # ReLU stacks (the original started from Gaussians and trained for days).
    return keras.initializers.HeNormal()


def apply_conv(x, filters, kernel_size, name, relu=True):
    x = layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        kernel_initializer=relu_conv_initializer() if relu else "glorot_uniform",
        name=name,
    )(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def apply_image_trunk(images, filters, name):
    """Three 9x9 convolutions, each followed by a 3x3 stride-2 max-pool: features at stride 8."""
    x = images
    for i in range(1, 4):
        x = apply_conv(x, filters, 9, f"{name}_conv{i}")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool{i}")(x)
    return x


def apply_belief_head(x, filters, num_maps, kernel_sizes, name):
    """Convolutions of ``kernel_sizes`` with ``filters`` channels, then 1x1 to ``num_maps`` belief maps."""
    for i, kernel_size in enumerate(kernel_sizes, start=1):
        x = apply_conv(x, filters, kernel_size, f"{name}_conv{i}")
    return apply_conv(x, num_maps, 1, f"{name}_beliefs", relu=False)


def validate_arguments(num_stages, num_keypoints, filters, stage_kernel_size, input_shape):
    check_integers(
        ("num_stages", num_stages, 1),
        ("num_keypoints", num_keypoints, 1),
        ("filters", filters, 4),
        ("stage_kernel_size", stage_kernel_size, 1),
    )
    if filters % 4:
        raise ValueError(
            f"`filters` must be a multiple of 4 (stages use filters/4). Received: filters={filters}"
        )
    check_image_shape(input_shape)
    for size in input_shape[:2]:
        if not isinstance(size, int) or size <= 0 or size % 8:
            raise ValueError(
                f"`input_shape` height and width must be positive multiples of 8 (the belief maps' "
                f"stride). Received: input_shape={input_shape}"
            )


@keras.saving.register_keras_serializable(package="tf_hourglass")
class ConvolutionalPoseMachine(PoseModel):
    """Convolutional Pose Machine with one belief-map output per stage.

    Args:
        num_stages: stages (6 in the paper).
        num_keypoints: keypoints K; every stage outputs K+1 maps, the last the
            background.
        input_shape: (height, width, 3), multiples of 8 (368x368 in the paper).
        use_center_map: take the Gaussian centre map as a second input (the
            paper's model); without it the stages see only image features and
            beliefs.
        filters: channels of the image trunks and stage convolutions (128);
            the stage-1 head uses 4*filters and the per-stage image features
            filters/4, as the original's 512 and 32.
        stage_kernel_size: kernel of the stage convolutions (11 in the paper).

    Fit it with (inputs, target maps with K+1 channels, weights with K+1
    entries), as ``make_dataset`` yields for it; every stage is supervised.
    """

    heatmap_stride = 8
    background_channel = True

    config_overrides = ("num_stages", "filters")

    def __init__(
        self,
        num_stages=6,
        num_keypoints=16,
        input_shape=(368, 368, 3),
        use_center_map=True,
        filters=128,
        stage_kernel_size=11,
        name="convolutional_pose_machine",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        validate_arguments(num_stages, num_keypoints, filters, stage_kernel_size, input_shape)
        num_maps = num_keypoints + 1

        images = keras.Input(shape=input_shape, name=IMAGES_INPUT)
        inputs = {IMAGES_INPUT: images}  # a dict only with a centre map beside the images
        centered = layers.Rescaling(1.0, offset=-0.5, name="center_pixels")(images)
        context = []
        if use_center_map:
            center_map = keras.Input(shape=(*input_shape[:2], 1), name=CENTER_MAP_INPUT)
            inputs[CENTER_MAP_INPUT] = center_map
            context.append(
                layers.AveragePooling2D(9, strides=8, padding="same", name="center_pool")(center_map)
            )

        x = apply_image_trunk(centered, filters, "stage1_trunk")
        x = apply_conv(x, filters // 4, 5, "stage1_features")
        beliefs = apply_belief_head(x, 4 * filters, num_maps, (9, 1), "stage1_head")
        outputs = [layers.Activation("linear", dtype="float32", name=output_name(1))(beliefs)]

        shared = apply_image_trunk(centered, filters, "shared_trunk") if num_stages > 1 else None
        for t in range(2, num_stages + 1):
            features = apply_conv(shared, filters // 4, 5, f"stage{t}_features")
            x = layers.Concatenate(name=f"stage{t}_concat")([features, beliefs, *context])
            kernels = (stage_kernel_size,) * 3 + (1,)
            beliefs = apply_belief_head(x, filters, num_maps, kernels, f"stage{t}_head")
            # Belief maps (and the loss on them) stay float32 under mixed precision.
            outputs.append(layers.Activation("linear", dtype="float32", name=output_name(t))(beliefs))

        super().__init__(inputs=inputs if use_center_map else images, outputs=outputs, name=name, **kwargs)

        self.num_stages = num_stages
        self.num_keypoints = num_keypoints
        self.image_shape = input_shape
        self.use_center_map = use_center_map
        self.filters = filters
        self.stage_kernel_size = stage_kernel_size
        self.center_map_sigma = center_map_sigma(input_shape[:2]) if use_center_map else None

    def get_config(self):
        return self.with_pose_info(
            {
                "num_stages": self.num_stages,
                "num_keypoints": self.num_keypoints,
                "input_shape": self.image_shape,
                "use_center_map": self.use_center_map,
                "filters": self.filters,
                "stage_kernel_size": self.stage_kernel_size,
                "name": self.name,
                "trainable": self.trainable,
            }
        )
