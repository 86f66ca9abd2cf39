"""The Gaussian centre map that tells a Convolutional Pose Machine which person to look at.

The original CPM feeds a second input beside the image: a Gaussian of
standard deviation 21 pixels (at 368x368) centred on the person's centre. The
input pipeline builds it from the annotated centre moved by the augmentation;
at inference the crop is centred on the person, so the map sits at the crop
centre and the predictor and exported graphs build it themselves.
"""

from __future__ import annotations

import tensorflow as tf

# The released CPM models: sigma 21 pixels at 368x368 input.
CENTER_MAP_SIGMA_FRACTION = 21.0 / 368.0


def center_map_sigma(input_size) -> float:
    """The original sigma scaled to an input of ``input_size`` (height, width) pixels."""
    return CENTER_MAP_SIGMA_FRACTION * max(int(s) for s in input_size)


def gaussian_center_maps(centers, input_size, sigma: float):
    """Centre maps (B, H, W, 1) float32 with a Gaussian of peak 1 at each (x, y) centre in input pixels."""
    centers = tf.convert_to_tensor(centers, tf.float32)
    height, width = (int(s) for s in input_size)
    xs = tf.range(width, dtype=tf.float32)
    ys = tf.range(height, dtype=tf.float32)
    gx = tf.exp(-tf.square(xs - centers[:, 0:1]) / (2.0 * sigma**2))  # (B, W)
    gy = tf.exp(-tf.square(ys - centers[:, 1:2]) / (2.0 * sigma**2))  # (B, H)
    return (gy[:, :, None] * gx[:, None, :])[..., None]


def centered_maps(batch_size, input_size, sigma: float):
    """Centre maps for crops centred on their person: the Gaussian at the crop centre."""
    height, width = (int(s) for s in input_size)
    center = tf.constant([[(width - 1) / 2.0, (height - 1) / 2.0]], tf.float32)
    return tf.tile(gaussian_center_maps(center, input_size, sigma), [batch_size, 1, 1, 1])
