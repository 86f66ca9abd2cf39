"""Skeleton drawings: predictions on images, for people who would rather look than read."""

from __future__ import annotations

import cv2
import numpy as np

from tf_hourglass.data.records import KeypointSpec

# Person's left in blue, right in orange, centre line in green (BGR-free: RGB).
LEFT, RIGHT, CENTRE = (60, 140, 255), (255, 140, 40), (60, 200, 60)


def joint_side(name: str):
    if name.startswith(("l_", "left")):
        return LEFT
    if name.startswith(("r_", "right")):
        return RIGHT
    return CENTRE


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    spec: KeypointSpec,
    scores: np.ndarray | None = None,
    min_score: float = 0.0,
    thickness: int | None = None,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 RGB; uint8 or float in [0, 1]) with the skeleton drawn.

    Joints whose score is below ``min_score`` and limbs touching them are left out.
    Limbs are coloured by body side, or all in ``colour`` (one person of several).
    """
    canvas = np.asarray(image)
    if canvas.dtype != np.uint8:
        canvas = np.clip(canvas * 255.0, 0, 255).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas.copy())
    size = max(canvas.shape[:2])
    thickness = thickness or max(1, size // 160)
    shown = np.isfinite(keypoints).all(axis=-1)
    if scores is not None:
        shown &= np.asarray(scores) >= min_score
    points = [tuple(int(round(v)) for v in p) if ok else None for p, ok in zip(keypoints, shown, strict=True)]
    names = spec.keypoint_names
    for a, b in spec.skeleton:
        if points[a] is None or points[b] is None:
            continue
        side = joint_side(names[b]) if joint_side(names[a]) == CENTRE else joint_side(names[a])
        cv2.line(canvas, points[a], points[b], colour or side, thickness, cv2.LINE_AA)
    for point, name in zip(points, names, strict=True):
        if point is not None:
            cv2.circle(canvas, point, thickness + 1, colour or joint_side(name), -1, cv2.LINE_AA)
    return canvas


# Distinct, saturated RGB colours for people, reused in turn.
PERSON_COLOURS = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (255, 225, 25),
    (0, 128, 128),
)


def draw_people(image, keypoints, spec: KeypointSpec, keypoint_scores=None, min_score: float = 1e-6):
    """``image`` with every person's skeleton (``keypoints`` (P, K, 2)), each in its own colour.

    Joints not found (score below ``min_score``, e.g. 0) are left out.
    """
    canvas = np.asarray(image)
    if canvas.dtype != np.uint8:
        canvas = np.clip(canvas * 255.0, 0, 255).astype(np.uint8)
    for index, points in enumerate(keypoints):
        scores = None if keypoint_scores is None else keypoint_scores[index]
        colour = PERSON_COLOURS[index % len(PERSON_COLOURS)]
        canvas = draw_skeleton(canvas, points, spec, scores, min_score=min_score, colour=colour)
    return canvas


def image_grid(images, columns: int = 3) -> np.ndarray:
    """Tiles equally sized (H, W, 3) uint8 images into one image."""
    images = list(images)
    rows = -(-len(images) // columns)
    h, w = images[0].shape[:2]
    grid = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return grid
