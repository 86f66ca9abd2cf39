"""Person crops from boxes: box (x, y, w, h) -> centre and scale -> crop matrix.

A person box is padded to a square of side ``max(w, h)`` (the crop's 1:1
aspect ratio) centred on the box, and enlarged by ``BOX_MARGIN``; its scale is
that side over ``PIXELS_PER_SCALE`` (200 pixels, the original code's unit, see
records.py). Readers use it to make a record's centre and scale; the
estimator, the exported SavedModel and the export checks use it to crop a
photo for the network, through ``transforms.crop_matrix``.

``box_center_scale`` and ``box_crop_matrices`` are TensorFlow ops (eager and
in graphs); ``center_scale_from_box`` is the readers' float64 entry for one
box, with the same formulas (``box_center``, ``box_scale``).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tf_hourglass.data import transforms
from tf_hourglass.data.records import PIXELS_PER_SCALE

# A person crop is the square around the person's box enlarged by this factor
# (the same 1.25 the original code applies to MPII's scale).
BOX_MARGIN = 1.25
# A box given for inference must have at least this fraction of its width and of
# its height on the image (``prediction.estimator.check_box``, the SavedModel's box check):
# a box barely touching the image, or 1e30 pixels wide, crops only padding.
MIN_BOX_OVERLAP = 0.01


def box_center(x, y, w, h):
    """The centre (x, y) of a box; numbers, arrays or tensors."""
    return x + w / 2.0, y + h / 2.0


def box_scale(side):
    """The scale of the crop around a box whose longer side is ``side`` (a number, array or tensor)."""
    return side * BOX_MARGIN / PIXELS_PER_SCALE


def keypoints_box(keypoints, found) -> tuple[float, float, float, float] | None:
    """The bounding box (x, y, w, h) of the joints where ``found`` is True, or None when they span no
    pixel (none found, or all at one point): then there is no crop. One of w, h may be 0 (a line of
    joints): the crop's side is the longer one."""
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
    found = np.asarray(found, bool) & np.isfinite(keypoints).all(axis=1)
    if not found.any():
        return None
    low, high = keypoints[found].min(axis=0), keypoints[found].max(axis=0)
    if float(max(high - low)) <= 0:
        return None
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def center_scale_from_box(box) -> tuple[np.ndarray, float]:
    """Crop centre (float64) and scale of one person box (x, y, w, h), for readers.

    A box with a non-positive or non-finite side gives ``scale = nan``.
    """
    x, y, w, h = (float(v) for v in box)
    center = np.array(box_center(x, y, w, h), np.float64)
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        return center, float("nan")
    return center, box_scale(max(w, h))


def box_center_scale(boxes):
    """Crop centres [..., 2] and scales [...] (float32) of valid boxes [..., 4] (x, y, w, h)."""
    x, y, w, h = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    return tf.stack(box_center(x, y, w, h), axis=-1), box_scale(tf.maximum(w, h))


def box_crop_matrix(box, input_size):
    """Forward crop matrix [3, 3] (image pixels -> input pixels) of one valid box [4]."""
    center, scale = box_center_scale(box)
    return transforms.crop_matrix(center, scale, input_size)


def box_crop_matrices(boxes, input_size):
    """Forward crop matrices [N, 3, 3] (image pixels -> input pixels) of valid boxes [N, 4]."""
    centers, scales = box_center_scale(boxes)
    return tf.map_fn(
        lambda center_scale: transforms.crop_matrix(center_scale[0], center_scale[1], input_size),
        (centers, scales),
        fn_output_signature=tf.TensorSpec([3, 3], tf.float32),
    )


def whole_image_box(image_width: int, image_height: int) -> tuple[float, float, float, float]:
    """The box (0, 0, W, H): the person fills the image."""
    return (0.0, 0.0, float(image_width), float(image_height))
