"""The prediction path: person crops -> heatmaps (flip-averaged) -> decode -> image pixels.

Every prediction goes through here: the evaluator (validation metric,
``python -m tf_hourglass.evaluate``), ``prediction.estimator.PoseEstimator`` and the
exported SavedModel's signatures, so a keypoint means the same everywhere.
All of it is TensorFlow ops, for ``tf.function`` and exported graphs.

``model`` is anything ``model.keypoint_heatmaps`` takes: a pose model of this
package, or a callable ``model(images, training=False)`` returning heatmaps
(an ``model_loader.InferenceModel``, a traced network function).
"""

from __future__ import annotations

import tensorflow as tf

from tf_hourglass.data import transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.model.pose_model import keypoint_heatmaps


def flip_heatmaps_back(heatmaps, flip_permutation):
    """Heatmaps of a mirrored image -> heatmaps of the original image.

    Our mirror is exact about the input centre (u -> W - 1 - u), and heatmap
    pixels line up with input pixel edges, so the heatmap mirror is exact too
    (h -> Wh - 1 - h): no one-pixel shift is needed.
    """
    return tf.gather(tf.reverse(heatmaps, axis=[2]), flip_permutation, axis=3)


def predict_heatmaps(model, images, flip_permutation=None):
    """The last stack's K keypoint heatmaps; averaged with the mirrored image's when ``flip_permutation`` is given."""
    heatmaps = keypoint_heatmaps(model, images)
    if flip_permutation is not None:
        flipped = keypoint_heatmaps(model, tf.reverse(images, axis=[2]))
        heatmaps = 0.5 * (heatmaps + flip_heatmaps_back(flipped, flip_permutation))
    return heatmaps


def predict_keypoints(model, crops, matrices, codec: HeatmapCodec, flip_permutation=None):
    """Keypoints of person crops, in the images they were cropped from.

    Args:
        crops: float32 [N, H, W, 3] in [0, 1], at the codec's input size.
        matrices: [N, 3, 3] forward crop matrices (image pixels -> crop pixels).
        flip_permutation: when given, flip-test averaging.

    Returns:
        (keypoints [N, K, 2] in image pixels, the same in crop pixels, scores [N, K]).
    """
    heatmaps = predict_heatmaps(model, crops, flip_permutation)
    input_keypoints, scores = codec.decode(heatmaps)
    keypoints = transforms.apply_affine(transforms.invert_affine(matrices), input_keypoints)
    return keypoints, input_keypoints, scores
