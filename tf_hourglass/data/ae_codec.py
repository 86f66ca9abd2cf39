"""Associative Embedding codec: the one object that turns people into training targets and maps back into people.

Training targets (``encode``) and decoding (``decode``) both go through
``AssociativeEmbeddingCodec``, so their conventions cannot drift apart, as
``HeatmapCodec`` does for single-person heatmaps.

Coordinates, as the official code (pose-ae-train): input pixels ``u`` are
heatmap pixels ``u / stride``, where heatmap pixel ``i`` covers ``[i, i + 1)``
(``multi_person_targets``); decoding returns the official parser's
coordinates, pixel index + 0.5 with the quarter-pixel adjustment, and
``to_input_pixels`` multiplies them by the stride, as the official test does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_hourglass.data import grouping, multi_person_targets


@dataclasses.dataclass(frozen=True)
class AssociativeEmbeddingCodec:
    """Encodes people as detection heatmaps and tag references; decodes heatmaps and tags into people.

    Args:
        input_size: (height, width) of the network input in pixels.
        heatmap_size: (height, width) of its outputs; the same integer stride along both axes.
        num_keypoints: K.
        tag_dim: tag components per keypoint D.
        sigma: the targets' Gaussian in heatmap pixels (None: the official heatmap side / 64).
        peak: the targets' value at a joint (1, as the official code; a larger peak makes the
            all-zero output costly, which a small model on a CPU needs to leave that plateau).
            Decoding divides the network's heatmaps by it (``unit_heatmaps``), so the grouping's
            thresholds keep their official meaning.
        max_people: people the tag loss takes per image (30, as the official code).
        grouping_options: ``grouping.group_people`` options of ``decode`` (default: the
            official test settings, ``grouping.TEST_SETTINGS``).
    """

    input_size: tuple[int, int] = (512, 512)
    heatmap_size: tuple[int, int] = (128, 128)
    num_keypoints: int = 17
    tag_dim: int = 1
    sigma: float | None = None
    peak: float = 1.0
    max_people: int = multi_person_targets.MAX_PEOPLE
    grouping_options: tuple = tuple(sorted(grouping.TEST_SETTINGS.items()))

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(s) for s in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(s) for s in self.heatmap_size))
        if isinstance(self.grouping_options, dict):
            object.__setattr__(self, "grouping_options", tuple(sorted(self.grouping_options.items())))
        strides = {i / h for i, h in zip(self.input_size, self.heatmap_size, strict=True)}
        if len(strides) != 1 or not float(next(iter(strides))).is_integer():
            raise ValueError(
                "input_size must be the same integer multiple of heatmap_size along both axes. "
                f"Received input_size={self.input_size}, heatmap_size={self.heatmap_size}"
            )
        for name in ("num_keypoints", "tag_dim", "max_people"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1. Received {name}={getattr(self, name)!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be positive or None. Received sigma={self.sigma!r}")
        if not self.peak > 0:
            raise ValueError(f"peak must be positive. Received peak={self.peak!r}")

    @property
    def stride(self) -> int:
        return self.input_size[0] // self.heatmap_size[0]

    @property
    def target_sigma(self) -> float:
        return multi_person_targets.official_sigma(self.heatmap_size) if self.sigma is None else self.sigma

    def encode(self, keypoints) -> dict:
        """Targets of one image: ``keypoints`` (P, K, 3) x, y in input pixels and visibility.

        Returns ``{"heatmaps": (h, w, K) float32, "keypoint_refs": (max_people, K, 2) int32}``
        (TensorFlow ops, usable in ``tf.data``); the loss mask is the pipeline's
        (``multi_person_targets.coco_loss_mask``, warped as the image).
        """
        keypoints = tf.convert_to_tensor(keypoints, tf.float32)
        scale = tf.constant([1.0 / self.stride, 1.0 / self.stride, 1.0])
        heatmap_keypoints = keypoints * scale
        heatmaps = multi_person_targets.multi_person_heatmaps(
            heatmap_keypoints, self.heatmap_size, self.target_sigma
        )
        return {
            "heatmaps": heatmaps * self.peak if self.peak != 1.0 else heatmaps,
            "keypoint_refs": multi_person_targets.keypoint_refs(
                heatmap_keypoints, self.heatmap_size, self.max_people
            ),
        }

    def unit_heatmaps(self, heatmaps):
        """The network's heatmaps in the official scale (a joint is 1): divided by ``peak``."""
        return heatmaps if self.peak == 1.0 else heatmaps / np.float32(self.peak)

    def decode(self, heatmaps, tags) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """People in heatmap pixels from (N, h, w, K) heatmaps (``unit_heatmaps``) and (N, h, w, K[, D]) tags.

        Returns per image the people (P, K, 3 + D): x, y, detection value, tags
        (``grouping.group_people``), and their scores (P,).
        """
        return grouping.group_people(heatmaps, tags, return_scores=True, **dict(self.grouping_options))

    def to_input_pixels(self, points) -> np.ndarray:
        """Decoded heatmap coordinates (..., 2) in input pixels, as the official test (times the stride)."""
        return np.asarray(points, np.float64) * self.stride
