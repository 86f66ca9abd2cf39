"""What every pose network here shares, and how the rest of the package calls one.

Both families (``StackedHourglass``, ``ConvolutionalPoseMachine``) are Keras
functional models with one heatmap output per stack or stage, all supervised
by the same target (intermediate supervision). They differ in what training,
inference and export must know, and each model says it through attributes:

* ``image_shape``, ``heatmap_stride`` (input pixels per heatmap pixel) and
  ``heatmap_size``;
* ``num_keypoints`` K, and ``background_channel``: CPM outputs K+1 maps, the
  last one the background, which is trained but never decoded;
* ``center_map_sigma``: CPM takes a second input, a Gaussian centre map
  (None for models that take only images);
* ``pose_info``: the ``ModelInfo`` saved with the model (keypoint spec, codec
  settings, kind; ``model/info.py``), None until training or a conversion
  sets it. It is part of the config, so ``.keras`` files carry it.

``model_inputs`` and ``keypoint_heatmaps`` turn images into what the model
takes and its last output into K keypoint heatmaps, so predictors and
exported graphs need only images.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_hourglass.data.center_map import centered_maps
from tf_hourglass.model.info import SINGLE_PERSON, ModelInfo

IMAGES_INPUT = "images"
CENTER_MAP_INPUT = "center_map"


def output_name(stack_index: int) -> str:
    """Name of the heatmap output of stack or stage ``stack_index`` (1-based)."""
    return f"heatmaps_{stack_index}"


def as_stack_list(outputs) -> list:
    """The model's output(s) as a list with one heatmap tensor per stack."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


class PoseModel(keras.Model):
    """Base of the pose networks: intermediate supervision and the attributes above."""

    background_channel = False
    center_map_sigma = None
    heatmap_stride = 4
    model_kind = SINGLE_PERSON
    pose_info: ModelInfo | None = None
    # Constructor arguments a training config may override (model.num_stacks, ...).
    config_overrides: tuple[str, ...] = ()

    @property
    def heatmap_size(self):
        """(height, width) of every heatmap output."""
        return tuple(None if s is None else s // self.heatmap_stride for s in self.image_shape[:2])

    @property
    def num_output_channels(self) -> int:
        """Channels of each output: K, plus one for a background map."""
        return self.num_keypoints + int(self.background_channel)

    def with_pose_info(self, config: dict) -> dict:
        """``config`` (the architecture's arguments) plus the saved ``pose_info``, for ``get_config``."""
        if self.pose_info is not None:
            config["pose_info"] = self.pose_info.to_dict()
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        info = config.pop("pose_info", None)
        model = cls(**config)
        if info is not None:
            model.pose_info = ModelInfo.from_dict(info, f"the saved {cls.__name__}'s pose_info")
        return model

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Intermediate supervision: one target heatmap tensor supervises every
        # stack, so users fit with (images, heatmaps[, joint_weights]) and no glue.
        if isinstance(y_pred, (list, tuple)) and y is not None and not isinstance(y, (list, tuple, dict)):
            y = [y] * len(y_pred)
            if sample_weight is not None and not isinstance(sample_weight, (list, tuple, dict)):
                sample_weight = [sample_weight] * len(y_pred)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)


def check_integers(*checks) -> None:
    """Raises a ValueError repeating the value for each ``(name, value, minimum)`` that is no integer >= minimum."""
    for name, value, minimum in checks:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")


def check_image_shape(input_shape) -> None:
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"`input_shape` must be (height, width, 3). Received: input_shape={input_shape}")


def check_input_sides(input_shape, depth) -> None:
    """Hourglasses of order ``depth`` halve the quarter-size features ``depth`` times: sides are multiples of
    4 * 2**depth (or None, any such size)."""
    check_image_shape(input_shape)
    divisor = 4 * 2**depth
    for size in input_shape[:2]:
        if size is not None and (not isinstance(size, int) or size <= 0 or size % divisor):
            raise ValueError(
                f"`input_shape` height and width must be positive multiples of 4 * 2**depth = "
                f"{divisor} (depth={depth}), or None. Received: input_shape={input_shape}"
            )


def uses_center_map(model) -> bool:
    return getattr(model, "center_map_sigma", None) is not None


def model_inputs(model, images):
    """What ``model`` takes for a batch of person-centred crops: the images, plus centre maps for CPM."""
    if not uses_center_map(model):
        return images
    images = tf.convert_to_tensor(images, tf.float32)  # Keras takes no numpy/tensor mix in a dict
    maps = centered_maps(tf.shape(images)[0], model.image_shape[:2], model.center_map_sigma)
    return {IMAGES_INPUT: images, CENTER_MAP_INPUT: maps}


def keypoint_heatmaps(model, images, training=False, network=None):
    """The last stack's (or stage's) K keypoint heatmaps, float32, for a batch of crops.

    ``model`` is a pose model from this package (centre maps are supplied and
    a background map dropped), or any callable from images to heatmap
    tensor(s), such as a loaded export; then its last output is used as is.
    ``network``: the Keras model to run in place of ``model``, with its inputs
    and outputs (its inference graph, ``folding.fold_batch_norms``).
    """
    if isinstance(model, keras.Model):
        network = model if network is None else network
        heatmaps = as_stack_list(network(model_inputs(model, images), training=training))[-1]
        if getattr(model, "background_channel", False):
            heatmaps = heatmaps[..., : model.num_keypoints]
    else:
        heatmaps = as_stack_list(model(images, training=training))[-1]
    return tf.cast(heatmaps, tf.float32)
