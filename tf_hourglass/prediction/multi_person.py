"""Multi-person pose on whole photos: an Associative Embedding network's outputs -> people in photo pixels.

The official evaluation (pose-ae-train ``test.py``, ``multiperson``), step for step:

1. The photo is fitted into a square network input of side ``input_side x scale``
   rounded up to a multiple of 64 (the official 512 at scale 1) by the official
   transform (``letterbox_matrix``: ``utils/misc.py``'s ``get_transform`` with the
   photo's centre and its longer side), and warped bilinearly.
2. The network runs on the input and its mirror; the last stack's detection
   heatmaps of the two are averaged (the mirror's unflipped, left and right
   joints swapped) and its tags stacked (D = 2), the scales merged
   (``grouping.combine_test_outputs``: heatmaps resized to the first scale and
   averaged, tags from scale 1), heatmaps clipped at 1.
3. People are grouped by the model's ``AssociativeEmbeddingCodec`` with the
   official test settings (``grouping.TEST_SETTINGS``:
   detection threshold 0.1, tag threshold 1, up to 30 people, quarter-pixel
   adjustment), scored by their mean detection value, then their missing joints
   refined from the person's mean tag.
4. Heatmap coordinates times the stride are input pixels; the inverse of the
   input transform takes them back to the photo.

Without the flip test, step 2 uses the input alone (tags D = 1).
``predict_people`` takes any function from input batches to the last stack's
output, so Keras models and exported files decode with the same code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tf_hourglass.data import grouping, transforms
from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.model.associative_embedding import split_outputs
from tf_hourglass.model.info import model_info

INPUT_SIDE = 512  # the official input at scale 1
SIDE_MULTIPLE = 64  # the network's input sides are multiples of 4 * 2**depth
OFFICIAL_SCALES = (2.0, 1.0, 0.5)  # test.py's multi-scale mode


@dataclasses.dataclass
class People:
    """The people found in one photo, strongest first.

    Attributes:
        keypoints: (P, K, 2) float32 (x, y) photo pixels.
        keypoint_scores: (P, K) float32: each joint's detection value (1 for a
            joint filled in by refinement, as the official code sets it; 0 for a
            joint not found).
        scores: (P,) float32: each person's mean detection value before refinement.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, num_keypoints: int) -> People:
        return cls(
            np.zeros((0, num_keypoints, 2), np.float32),
            np.zeros((0, num_keypoints), np.float32),
            np.zeros((0,), np.float32),
        )


def input_side(scale: float, base_side: int = INPUT_SIDE) -> int:
    """The official input side at ``scale``: ``scale * base`` rounded up to a multiple of 64."""
    return int((scale * base_side + SIDE_MULTIPLE - 1) // SIDE_MULTIPLE * SIDE_MULTIPLE)


def letterbox_matrix(image_height: int, image_width: int, side: int) -> np.ndarray:
    """The official photo -> input matrix (3, 3) float64: the photo's longer side spans the square input.

    pose-ae-train's ``get_transform(center=(w / 2, h / 2), scale=max(h, w) / 200, res=(side, side))``.
    """
    crop_side = max(image_height, image_width)  # scale * 200 px
    zoom = side / crop_side
    matrix = np.eye(3)
    matrix[0, 0] = matrix[1, 1] = zoom
    matrix[0, 2] = side * (-(image_width / 2) / crop_side + 0.5)
    matrix[1, 2] = side * (-(image_height / 2) / crop_side + 0.5)
    return matrix


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(input (side, side, 3) float32, matrix (3, 3)): the photo fitted into the square network input
    by ``letterbox_matrix`` and warped bilinearly, as ``predict_people`` feeds it to the network.

    Args:
        image: float32 (H, W, 3) RGB in [0, 1].
    """
    matrix = letterbox_matrix(*image.shape[:2], side)
    warped = transforms.warp_image(image, tf.constant(matrix, tf.float32), (side, side)).numpy()
    return warped, matrix


def _network_maps(network: Callable, inputs: np.ndarray, num_keypoints: int, tag_dim: int):
    """(heatmaps (N, h, w, K), tags (N, h, w, K, D)) of the network's last stack, as NumPy."""
    outputs = network(tf.convert_to_tensor(inputs, tf.float32))
    heatmaps, tags = split_outputs(tf.convert_to_tensor(outputs, tf.float32), num_keypoints, tag_dim)
    return np.asarray(heatmaps), np.asarray(tags)


def codec_for_model(model) -> AssociativeEmbeddingCodec:
    """The codec of a multi-person model (Keras, or ``model_loader.ExportedPeopleNetwork``): its input
    size at scale 1, its keypoints, tags and targets."""
    info = model_info(model)
    input_size = info.input_size or (INPUT_SIDE, INPUT_SIDE)
    stride = model.heatmap_stride
    return AssociativeEmbeddingCodec(
        input_size=input_size,
        heatmap_size=(input_size[0] // stride, input_size[1] // stride),
        num_keypoints=model.num_keypoints,
        tag_dim=model.tag_dim,
        sigma=info.sigma,
        peak=info.peak,
    )


def predict_people(
    network: Callable,
    image: np.ndarray,
    codec: AssociativeEmbeddingCodec,
    flip_permutation: Sequence[int],
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = True,
) -> People:
    """Every person in one photo (see the module docstring).

    Args:
        network: float32 inputs (N, S, S, 3) in [0, 1] -> the last stack's output
            (N, S / stride, S / stride, C), for every side S used (``input_side``).
        image: float32 (H, W, 3) RGB in [0, 1].
        codec: the model's ``AssociativeEmbeddingCodec`` (``codec_for_model``): its
            input side at scale 1, channel layout, stride and grouping settings.
        flip_permutation: the joints' mirror permutation (COCO: ``COCO.flip_permutation()``).
        scales: input scales; the official multi-scale test is ``OFFICIAL_SCALES``.
            Scale 1 must be among them (its tags are used).
        flip: also run the mirrored input (the official test always does).
    """
    num_keypoints, tag_dim, base_side = codec.num_keypoints, codec.tag_dim, codec.input_size[0]
    scales = [float(s) for s in scales]
    if not any(abs(s - 1.0) < 0.5 for s in scales):
        raise ValueError(f"scales must include 1 (its tags are used); received {scales}.")
    heatmaps, flipped_heatmaps, tags, flipped_tags, matrix = [], [], None, None, None
    tag_scale = next(i for i, s in enumerate(scales) if abs(s - 1.0) < 0.5)
    for index, scale in enumerate(scales):
        side = input_side(scale, base_side)
        warped, scale_matrix = letterbox(image, side)
        batch = np.stack([warped, warped[:, ::-1]]) if flip else warped[None]
        maps, tag_maps = _network_maps(network, batch, num_keypoints, tag_dim)
        maps = codec.unit_heatmaps(maps)
        if matrix is None:
            matrix = scale_matrix  # the first scale's maps set the output size
        heatmaps.append(maps[:1])
        if flip:
            flipped_heatmaps.append(maps[1:])
        if index == tag_scale:
            tags = tag_maps[:1, ..., 0]
            flipped_tags = tag_maps[1:, ..., 0] if flip else None
    if flip:
        merged, merged_tags = grouping.combine_test_outputs(
            heatmaps, flipped_heatmaps, tags, flipped_tags, flip_permutation, tag_scale_index=tag_scale
        )
    else:
        size = heatmaps[0].shape[1:3]
        merged = sum(grouping.resize_maps(h, *size) for h in heatmaps) / len(heatmaps)
        merged = np.minimum(merged, 1.0).astype(np.float32)
        merged_tags = grouping.resize_maps(tags, *size)[..., None]
    (people,), (scores,) = codec.decode(merged, merged_tags)
    if len(people) == 0:
        return People.empty(num_keypoints)
    # Heatmap -> input pixels (times the stride) -> photo pixels (the inverse input transform).
    inverse = np.linalg.inv(matrix)
    points = codec.to_input_pixels(people[..., :2])
    photo = points @ inverse[:2, :2].T + inverse[:2, 2]
    order = np.argsort(-scores, kind="stable")
    return People(
        keypoints=photo[order].astype(np.float32),
        keypoint_scores=people[order, :, 2].astype(np.float32),
        scores=scores[order].astype(np.float32),
    )


def coco_results(people: People, image_id: int, category_id: int = 1) -> list[dict]:
    """People as COCO keypoint results, as the official ``genDtByPred``.

    Each found joint is (x, y, 1); a joint not found gets the person's mean
    found position (COCO scores every joint). The score is the person's.
    """
    results = []
    for keypoints, values, score in zip(people.keypoints, people.keypoint_scores, people.scores, strict=True):
        found = values > 0
        if not found.any():
            continue
        filled = np.where(found[:, None], keypoints, keypoints[found].mean(axis=0))
        flat = np.concatenate([filled, np.ones((len(filled), 1))], axis=1).reshape(-1)
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [float(v) for v in flat],
                "score": float(score),
            }
        )
    return results
