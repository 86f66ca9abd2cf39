"""The one record type every dataset reader produces, and per-dataset keypoint specs.

Conventions (shared by readers, the input pipeline, evaluation and inference):

* Coordinates are 0-based image pixels with pixel centres at integer
  coordinates: the centre of the top-left pixel is (0, 0). Datasets that use
  1-based (MATLAB) coordinates are converted by their reader, once.
* ``center`` and ``scale`` describe the person's square crop the way the
  original Stacked Hourglass code does: the crop is ``200 * scale`` pixels on a
  side, centred on ``center``.
* ``has_gt[k]`` says whether joint k is annotated at all; ``visible[k]`` is the
  dataset's own visibility/occlusion flag, normalised so that True = visible.
  A joint without ground truth never contributes to the loss or the metrics.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# The original code defines the person crop as 200 * scale pixels.
PIXELS_PER_SCALE = 200.0


@dataclasses.dataclass
class KeypointSpec:
    """What a dataset's keypoints are: names, left/right pairs and skeleton.

    Attributes:
        name: dataset name, e.g. ``"mpii"``.
        keypoint_names: one name per joint, in the dataset's order.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        skeleton: (a, b) index pairs drawn as limbs.
        pck_normalizer: ``"head"`` (PCKh: the record's ``normalizer``) or
            ``"torso"`` (PCK: distance between ``torso_joints``).
        torso_joints: the two joint indices whose distance is the torso size
            (used when ``pck_normalizer == "torso"``).
        excluded_from_total: joint indices left out of the pooled "Total"
            score (MPII's protocol leaves out pelvis and thorax).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    pck_normalizer: str = "head"
    torso_joints: tuple[int, int] | None = None
    excluded_from_total: tuple[int, ...] = ()

    def __post_init__(self):
        self.keypoint_names = tuple(self.keypoint_names)
        self.flip_pairs = tuple(tuple(int(i) for i in p) for p in self.flip_pairs)
        self.skeleton = tuple(tuple(int(i) for i in p) for p in self.skeleton)
        self.excluded_from_total = tuple(int(i) for i in self.excluded_from_total)
        k = len(self.keypoint_names)
        if k == 0:
            raise ValueError(f"KeypointSpec {self.name!r}: keypoint_names is empty.")
        for what, pairs in (("flip_pairs", self.flip_pairs), ("skeleton", self.skeleton)):
            for pair in pairs:
                if len(pair) != 2 or not all(0 <= i < k for i in pair):
                    raise ValueError(
                        f"KeypointSpec {self.name!r}: {what} entry {pair} must be two "
                        f"joint indices in [0, {k}); received {pairs}."
                    )
        if self.pck_normalizer not in ("head", "torso"):
            raise ValueError(
                f"KeypointSpec {self.name!r}: pck_normalizer must be 'head' or "
                f"'torso'; received {self.pck_normalizer!r}."
            )
        if self.pck_normalizer == "torso" and self.torso_joints is None:
            raise ValueError(f"KeypointSpec {self.name!r}: pck_normalizer='torso' needs torso_joints.")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def flip_permutation(self) -> np.ndarray:
        """Index array p such that flipped_keypoints = keypoints[p] after mirroring."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


@dataclasses.dataclass
class PoseRecord:
    """One annotated person in one image.

    Attributes:
        image_path: path of the photo (any ``tf.io.gfile`` path).
        center: (2,) person centre (x, y), 0-based pixels.
        scale: crop side / 200 pixels (the original code's convention).
        keypoints: (K, 2) float32 (x, y), 0-based pixels; rows without
            ground truth hold zeros.
        has_gt: (K,) bool, joint is annotated.
        visible: (K,) bool, dataset's visibility flag (True = visible).
        normalizer: PCKh head size (0.6 x head-box diagonal) or NaN.
        box: (4,) person box (x, y, w, h) in pixels, or None.
        record_id: a stable identifier within its dataset (row index, ann id).
    """

    image_path: str
    center: np.ndarray
    scale: float
    keypoints: np.ndarray
    has_gt: np.ndarray
    visible: np.ndarray
    normalizer: float = float("nan")
    box: np.ndarray | None = None
    record_id: int = -1

    def __post_init__(self):
        self.center = np.asarray(self.center, np.float32).reshape(2)
        self.scale = float(self.scale)
        self.keypoints = np.asarray(self.keypoints, np.float32).reshape(-1, 2)
        k = self.keypoints.shape[0]
        self.has_gt = np.asarray(self.has_gt, bool).reshape(k)
        self.visible = np.asarray(self.visible, bool).reshape(k)
        self.normalizer = float(self.normalizer)
        if self.box is not None:
            self.box = np.asarray(self.box, np.float32).reshape(4)

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[0]


@dataclasses.dataclass
class MultiPersonRecord:
    """One whole image with all its people, for bottom-up (multi-person) training and evaluation.

    Attributes:
        image_path: path of the photo (any ``tf.io.gfile`` path), or a name
            when the pixels are held elsewhere (synthetic scenes).
        image_size: (height, width) in pixels, or None when unknown (the
            pipeline reads it from the image; ignored segments need it).
        keypoints: (P, K, 3) float32 ``(x, y, v)``, 0-based pixels (pixel
            centres at integers, as ``PoseRecord``); v is COCO's flag: 0 not
            labelled (x = y = 0), 1 labelled but hidden, 2 visible. P may be 0.
        ignore_segmentations: COCO segmentations (polygon lists or RLE dicts)
            of the regions the loss ignores: crowds and people annotated
            without keypoints.
        areas: (P,) float32 segment areas (COCO's ``area``, for OKS).
        image_id: a stable identifier within its dataset (COCO image id).
    """

    image_path: str
    image_size: tuple[int, int] | None
    keypoints: np.ndarray
    ignore_segmentations: tuple = ()
    areas: np.ndarray | None = None
    image_id: int = -1

    def __post_init__(self):
        # An image without people still has (0, K, 3) keypoints, so K is always known.
        if self.image_size is not None:
            self.image_size = tuple(int(v) for v in self.image_size)
        keypoints = np.asarray(self.keypoints, np.float32)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
            raise ValueError(
                f"MultiPersonRecord {self.image_path!r}: keypoints must have shape (people, K, 3); "
                f"received shape {keypoints.shape}."
            )
        self.keypoints = keypoints
        self.ignore_segmentations = tuple(self.ignore_segmentations)
        areas = np.zeros(len(keypoints), np.float32) if self.areas is None else self.areas
        self.areas = np.asarray(areas, np.float32).reshape(len(keypoints))
        self.image_id = int(self.image_id)

    @property
    def num_people(self) -> int:
        return self.keypoints.shape[0]
