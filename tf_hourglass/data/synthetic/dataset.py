"""The dataset: ``SyntheticFigures`` poses, draws and occludes example ``index`` of a seed."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from tf_hourglass.data.crop import box_scale
from tf_hourglass.data.records import PoseRecord
from tf_hourglass.data.synthetic.body import (
    HEAD_BOX_HEIGHT,
    HEAD_BOX_WIDTH,
    JOINT_PARTS,
    NUM_JOINTS,
    OCCLUDER,
    PCKH_HEAD_FACTOR,
    Skeleton,
    sample_skeleton,
)
from tf_hourglass.data.synthetic.camera import Camera
from tf_hourglass.data.synthetic.drawing import Canvas, Outfit, draw_background, figure_shapes, shade


@dataclasses.dataclass
class SyntheticExample:
    """One generated example with the internals tests and debugging need.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        record: the ground truth (``image_path`` names seed and index).
        part_map: (H, W) uint8; 0 background, ``OCCLUDER`` occluders, else the
            id of the body part drawn there (see ``SIDE_PARTS``).
        skeleton: the posed 3-D figure.
        projected_joints: (16, 2) pixel positions of all joints, also those
            outside the image (which have no ground truth in ``record``).
        pixels_per_unit: image pixels per body unit (before foreshortening).
        facing_camera: whether the figure's front is toward the camera.
    """

    image: np.ndarray
    record: PoseRecord
    part_map: np.ndarray
    skeleton: Skeleton
    projected_joints: np.ndarray
    pixels_per_unit: float
    facing_camera: bool


def as_height_width(image_size) -> tuple[int, int]:
    size = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    if len(size) != 2 or not all(float(v).is_integer() and v >= 32 for v in size):
        raise ValueError(
            f"image_size must be an int or (height, width) of ints >= 32; received {image_size!r}."
        )
    return int(size[0]), int(size[1])


class SyntheticFigures:
    """Random articulated figures; example ``index`` is a pure function of (seed, index).

    Args:
        image_size: int or (height, width) of the images.
        seed: non-negative int; with the index it seeds each example.
        height_range: person height (head top to ankle, standing) as a
            fraction of the image height.
        max_roll_degrees: in-plane rotation range (triangular, peaked at 0).
        large_roll_probability: chance of any rotation in [-180, 180].
        max_yaw_degrees: how far the body turns away from facing (or
            backing) the camera.
        back_view_probability: chance the figure shows its back.
        occluder_probability: chance of occluders (1 or 2) over joints.
        clutter: maximum number of background shapes.
        distractor_limbs: maximum number of limb-like background blobs.
        noise_level: standard deviation of the pixel noise.
        max_truncation: fraction of the figure box allowed outside the image.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = (256, 256),
        seed: int = 0,
        height_range: tuple[float, float] = (0.4, 0.9),
        max_roll_degrees: float = 40.0,
        large_roll_probability: float = 0.05,
        max_yaw_degrees: float = 60.0,
        back_view_probability: float = 0.1,
        occluder_probability: float = 0.35,
        clutter: int = 16,
        distractor_limbs: int = 4,
        noise_level: float = 6.0,
        max_truncation: float = 0.05,
    ):
        self.height, self.width = as_height_width(image_size)
        if not float(seed).is_integer() or seed < 0:
            raise ValueError(f"seed must be a non-negative int; received {seed!r}.")
        low, high = height_range
        if not 0 < low <= high <= 2:
            raise ValueError(f"height_range must satisfy 0 < low <= high <= 2; received {height_range!r}.")
        for name, p in (
            ("large_roll_probability", large_roll_probability),
            ("back_view_probability", back_view_probability),
            ("occluder_probability", occluder_probability),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be in [0, 1]; received {p!r}.")
        if not 0 <= max_yaw_degrees <= 90:
            raise ValueError(f"max_yaw_degrees must be in [0, 90]; received {max_yaw_degrees!r}.")
        if clutter < 0 or distractor_limbs < 0 or noise_level < 0 or not 0 <= max_truncation < 0.5:
            raise ValueError(
                "clutter, distractor_limbs and noise_level must be >= 0 and max_truncation in "
                f"[0, 0.5); received {clutter!r}, {distractor_limbs!r}, {noise_level!r}, "
                f"{max_truncation!r}."
            )
        self.seed = int(seed)
        self.height_range = (float(low), float(high))
        self.max_roll_degrees = float(max_roll_degrees)
        self.large_roll_probability = float(large_roll_probability)
        self.max_yaw_degrees = float(max_yaw_degrees)
        self.back_view_probability = float(back_view_probability)
        self.occluder_probability = float(occluder_probability)
        self.clutter = int(clutter)
        self.distractor_limbs = int(distractor_limbs)
        self.noise_level = float(noise_level)
        self.max_truncation = float(max_truncation)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.height, self.width

    def generate(self, index: int) -> tuple[np.ndarray, PoseRecord]:
        """Image (H, W, 3) uint8 RGB and its PoseRecord for example ``index``."""
        example = self.render(index)
        return example.image, example.record

    def generate_batch(self, indices: Sequence[int]) -> tuple[np.ndarray, list[PoseRecord]]:
        """Images [n, H, W, 3] uint8 and records for the given indices."""
        images = np.zeros((len(indices), self.height, self.width, 3), np.uint8)
        records = []
        for i, index in enumerate(indices):
            images[i], record = self.generate(index)
            records.append(record)
        return images, records

    def as_arrays(self, num_examples: int, start: int = 0) -> tuple[np.ndarray, list[PoseRecord]]:
        """Examples ``start .. start + num_examples - 1`` as arrays."""
        if num_examples < 0:
            raise ValueError(f"num_examples must be >= 0; received {num_examples!r}.")
        return self.generate_batch(range(start, start + num_examples))

    def iterate(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[np.ndarray, PoseRecord]]:
        """Yields (image, record) for indices start, start + 1, ... (forever if stop is None)."""
        index = start
        while stop is None or index < stop:
            yield self.generate(index)
            index += 1

    def render(self, index: int) -> SyntheticExample:
        """Generates example ``index`` with its part map and 3-D skeleton."""
        if not float(index).is_integer() or index < 0:
            raise ValueError(f"index must be a non-negative int; received {index!r}.")
        rng = np.random.default_rng([self.seed, int(index)])
        skeleton = sample_skeleton(rng)
        outfit = Outfit.sample(rng)
        camera = self.sample_camera(rng, skeleton)
        light = rng.normal(size=2)
        light /= np.linalg.norm(light) + 1e-9  # which side of the limbs is lit

        # Place the figure: mostly inside the image, up to max_truncation out.
        shapes, outline = figure_shapes(skeleton, camera, outfit, light)
        low, high = outline.min(axis=0), outline.max(axis=0)
        size = high - low
        slack = self.max_truncation * size
        image_max = np.array([self.width - 1, self.height - 1], np.float64)
        shift = np.zeros(2)
        for axis in range(2):
            lo, hi = -low[axis] - slack[axis], image_max[axis] - high[axis] + slack[axis]
            shift[axis] = rng.uniform(lo, hi) if lo < hi else 0.5 * (lo + hi)
        low, high = low + shift, high + shift

        image = draw_background(rng, self.height, self.width, self.clutter, self.distractor_limbs)
        canvas = Canvas(image)
        figure_canvas = canvas.moved(shift)
        for shape in sorted(shapes, key=lambda s: (s.depth, s.order)):
            shape.draw(figure_canvas)

        keypoints = camera.project(skeleton.joints) + shift
        inside = np.all((keypoints >= 0) & (keypoints <= image_max), axis=1)
        if rng.random() < self.occluder_probability:
            self.draw_occluders(rng, canvas, keypoints[inside], size.max())

        image = self.finish_image(rng, canvas.image)
        visible = np.zeros(NUM_JOINTS, bool)
        for j in np.flatnonzero(inside):
            x, y = np.rint(keypoints[j]).astype(int)
            visible[j] = canvas.part_map[y, x] in JOINT_PARTS[j]

        head_box_diagonal = math.hypot(HEAD_BOX_HEIGHT, HEAD_BOX_WIDTH) * skeleton.lengths["head"]
        box_low = np.maximum(low, 0)
        box_high = np.minimum(high, image_max)
        record = PoseRecord(
            image_path=f"synthetic:seed={self.seed}:index={int(index)}",
            center=0.5 * (low + high),
            scale=box_scale(float(size.max())),  # the square around the figure, as for any box
            keypoints=np.where(inside[:, None], keypoints, 0.0),
            has_gt=inside,
            visible=visible,
            normalizer=PCKH_HEAD_FACTOR * head_box_diagonal * camera.pixels_per_unit,
            box=np.concatenate([box_low, np.maximum(box_high - box_low, 0)]),
            record_id=int(index),
        )
        return SyntheticExample(
            image=image,
            record=record,
            part_map=canvas.part_map,
            skeleton=skeleton,
            projected_joints=keypoints,
            pixels_per_unit=camera.pixels_per_unit,
            facing_camera=camera.faces_camera(np.eye(3)),
        )

    def sample_camera(self, rng: np.random.Generator, skeleton: Skeleton) -> Camera:
        yaw = rng.uniform(-self.max_yaw_degrees, self.max_yaw_degrees)
        if rng.random() < self.back_view_probability:
            yaw += 180.0
        if rng.random() < self.large_roll_probability:
            roll = rng.uniform(-180, 180)
        else:
            roll = (
                rng.triangular(-self.max_roll_degrees, 0, self.max_roll_degrees)
                if self.max_roll_degrees
                else 0.0
            )
        person_height = rng.uniform(*self.height_range) * self.height
        return Camera(yaw=yaw, roll=roll, pixels_per_unit=person_height / skeleton.standing_height)

    def draw_occluders(self, rng, canvas: Canvas, joints_inside: np.ndarray, figure_size: float):
        """One or two solid shapes, each centred near a random joint."""
        if len(joints_inside) == 0:
            return
        for _ in range(1 + int(rng.random() < 0.3)):
            centre = joints_inside[rng.integers(len(joints_inside))] + rng.normal(0, 0.04 * figure_size, 2)
            half_axes = rng.uniform(0.04, 0.13, 2) * figure_size
            colour = shade(rng.integers(0, 256, 3))
            angle = rng.uniform(0, 180)
            if rng.random() < 0.5:
                corners = cv2.boxPoints((tuple(centre), tuple(2 * half_axes), angle))
                canvas.polygon(corners, colour, OCCLUDER)
            else:
                canvas.ellipse(centre, half_axes, angle, colour, OCCLUDER)

    def finish_image(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """Camera-like pixel noise and, sometimes, blur."""
        if rng.random() < 0.3:
            sigma = rng.uniform(0.5, 1.2)
            image = cv2.GaussianBlur(image, (5, 5), sigma)
        if self.noise_level > 0:
            noise = rng.standard_normal((self.height, self.width), dtype=np.float32)
            noise *= self.noise_level
            # Same noise on all channels (luminance grain); cv2.add saturates to uint8.
            image = cv2.add(image, cv2.merge([noise, noise, noise]), dtype=cv2.CV_8U)
        return image
