"""Multi-person scenes: 1 to 8 synthetic figures per image, COCO's 17 keypoints, for bottom-up training.

Scene ``index`` is a pure function of ``(seed, index)``. Its figures are the
single-figure generator's (``SyntheticFigures``: skeleton, outfit, camera,
drawing, occluders, noise) placed anywhere in the image at different sizes.
Smaller figures count as farther away and are drawn first, so nearer (larger)
figures overlap and occlude them.

Keypoints are ``(P, 17, 3)`` ``(x, y, visibility)`` in image pixels (pixel
centres at integers, as ``PoseRecord``), in COCO's order
(``keypoint_specs.COCO``). Visibility follows COCO's flags:

* 2: the pixel under the joint shows the figure's own part meeting there.
* 1: inside the image but hidden by the figure itself (a far elbow behind the
  torso, eyes on the back of the head) or by an occluder shape; COCO
  annotators label such joints, and the AE losses train on them.
* 0: outside the image, or covered by another figure; coordinates are 0.

People left with no joint of visibility > 0 are dropped from ``keypoints``
and their pixels go to ``ignore_mask`` (COCO's ``num_keypoints == 0``
people, masked from the loss).

Joint mapping from the figure's MPII skeleton: shoulders, elbows, wrists,
hips, knees and ankles are its joints. The face joints, which the skeleton
lacks, are points of the drawn head (head frame, units of head length, origin
at the upper neck, x to the person's left, y up, z forward): the eyes are the
centres of the drawn eyes ``(+-0.15, 0.5, 0.36)``, the nose is the tip of the
drawn nose ``(0, 0.34, 0.5)``, the ears are on the skull's side
``(+-0.36, 0.45, 0)``. Eyes and nose are visible only on a face turned to the
camera, an ear only unless turned well away (its outward direction more than
``EAR_HIDDEN_DEPTH`` away from the camera).

OKS: ``SYNTHETIC_OKS_SIGMAS`` are COCO's per-joint sigmas. The synthetic
joints are exact, but COCO's sigmas measure how far annotators disagree on
each joint and so set how much error OKS tolerates; keeping them makes
synthetic OKS AP read like COCO's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.data.synthetic import body
from tf_hourglass.data.synthetic.body import HEAD, JOINT_PARTS, OCCLUDER, sample_skeleton
from tf_hourglass.data.synthetic.camera import Camera
from tf_hourglass.data.synthetic.dataset import SyntheticFigures, as_height_width
from tf_hourglass.data.synthetic.drawing import Canvas, Outfit, draw_background, figure_shapes

# COCO keypoint -> MPII joint of the figure (-1: a point of the drawn head, see FACE_POINTS).
COCO_FROM_MPII = (
    -1, -1, -1, -1, -1,
    body.L_SHOULDER, body.R_SHOULDER, body.L_ELBOW, body.R_ELBOW, body.L_WRIST, body.R_WRIST,
    body.L_HIP, body.R_HIP, body.L_KNEE, body.R_KNEE, body.L_ANKLE, body.R_ANKLE,
)  # fmt: skip
# Face keypoints in the head frame (units of head length); x points to the person's left.
FACE_POINTS = {
    0: (0.0, 0.34, 0.5),  # nose: the drawn nose's tip
    1: (0.15, 0.5, 0.36),  # left eye
    2: (-0.15, 0.5, 0.36),  # right eye
    3: (0.36, 0.45, 0.0),  # left ear, just inside the skull's side (half-width 0.4)
    4: (-0.36, 0.45, 0.0),  # right ear
}
# An ear is hidden when its outward direction points this far away from the camera (sin 30 degrees).
EAR_HIDDEN_DEPTH = -0.5
# COCO's per-keypoint OKS sigmas (cocoapi's COCOeval), in COCO order.
SYNTHETIC_OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0  # fmt: skip
NUM_KEYPOINTS = 17
_NOBODY = -1  # owner map: background
_OCCLUDER_OWNER = -2  # owner map: an occluder shape


@dataclasses.dataclass
class SceneExample:
    """One generated scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        keypoints: (P, 17, 3) float32 ``(x, y, visibility)`` in image pixels, COCO order.
        projected_keypoints: (P, 17, 2) pixel positions of all joints, also
            the unlabelled ones (covered or outside the image).
        ignore_mask: (H, W) bool, True on figures without labelled joints.
        owner_map: (H, W) int16; the index into ``keypoints`` of the person
            drawn at each pixel, -1 background, -2 occluder, -3 a dropped person.
        areas: (P,) float32 pixels each person shows (COCO's ``area``).
        image_id: the scene index.
    """

    image: np.ndarray
    keypoints: np.ndarray
    projected_keypoints: np.ndarray
    ignore_mask: np.ndarray
    owner_map: np.ndarray
    areas: np.ndarray
    image_id: int


class SyntheticScenes:
    """Random scenes of several figures; scene ``index`` is a pure function of (seed, index).

    Args:
        image_size: int or (height, width) of the images.
        num_people: (low, high), the inclusive range of figures per scene.
        height_range: figure height (head top to ankle, standing) as a
            fraction of the image height; each figure draws its own.
        max_truncation: fraction of a figure's box allowed outside the image.
        spec: the keypoint spec; only ``keypoint_specs.COCO`` (the figures'
            joints are mapped to COCO's 17).
        seed: non-negative int.
        figure_options: further ``SyntheticFigures`` settings (yaw, roll,
            back views, occluders, clutter, noise) for every figure.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = (256, 256),
        num_people: tuple[int, int] = (1, 8),
        height_range: tuple[float, float] = (0.25, 0.85),
        max_truncation: float = 0.2,
        spec: KeypointSpec = keypoint_specs.COCO,
        seed: int = 0,
        **figure_options,
    ):
        self.height, self.width = as_height_width(image_size)
        low, high = num_people
        if not (float(low).is_integer() and float(high).is_integer() and 1 <= low <= high):
            raise ValueError(
                f"num_people must be integers (low, high) with 1 <= low <= high; received {num_people!r}."
            )
        if spec.keypoint_names != keypoint_specs.COCO.keypoint_names:
            raise ValueError(
                f"SyntheticScenes draws COCO's 17 keypoints; received the spec {spec.name!r} "
                f"with {spec.num_keypoints} keypoints."
            )
        if not 0 <= max_truncation < 0.5:
            raise ValueError(f"max_truncation must be in [0, 0.5); received {max_truncation!r}.")
        # The figure generator validates its own settings (seed, height range, probabilities, ...).
        self.figures = SyntheticFigures(
            image_size=(self.height, self.width), seed=seed, height_range=height_range, **figure_options
        )
        self.num_people = (int(low), int(high))
        self.max_truncation = float(max_truncation)
        self.spec = spec
        self.seed = self.figures.seed

    @property
    def image_size(self) -> tuple[int, int]:
        return self.height, self.width

    def coco_ground_truth(self, indices) -> tuple[dict, list[tuple[int, np.ndarray]]]:
        """Scenes ``indices`` as a COCO person_keypoints document (image id = scene index) and their pixels.

        Returns:
            (document, [(image_id, (H, W, 3) uint8 image), ...]); each person's
            ``bbox`` is the box of its labelled joints, ``area`` the pixels it shows.
        """
        images, annotations, photos = [], [], []
        for index in indices:
            scene = self.render(index)
            height, width = scene.image.shape[:2]
            images.append(
                {"id": int(index), "width": width, "height": height, "file_name": f"scene_{index}.png"}
            )
            photos.append((int(index), scene.image))
            for person, area in zip(scene.keypoints, scene.areas, strict=True):
                labelled = person[:, 2] > 0
                if not labelled.any():
                    continue
                x0, y0 = person[labelled, :2].min(axis=0)
                x1, y1 = person[labelled, :2].max(axis=0)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": int(index),
                        "category_id": 1,
                        "keypoints": [float(v) for v in person.reshape(-1)],
                        "num_keypoints": int(labelled.sum()),
                        "area": float(area),
                        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                        "iscrowd": 0,
                    }
                )
        document = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(self.spec.keypoint_names)}],
        }
        return document, photos

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image (H, W, 3) uint8 and keypoints (P, 17, 3) of scene ``index``."""
        scene = self.render(index)
        return scene.image, scene.keypoints

    def render(self, index: int) -> SceneExample:
        """Generates scene ``index`` with its ignore mask and owner map."""
        if not float(index).is_integer() or index < 0:
            raise ValueError(f"index must be a non-negative int; received {index!r}.")
        # A stream of its own: scene i is not figure example i of the same seed.
        rng = np.random.default_rng([self.seed, int(index), 1])
        figures = self.figures
        image = draw_background(rng, self.height, self.width, figures.clutter, figures.distractor_limbs)
        num_people = int(rng.integers(self.num_people[0], self.num_people[1] + 1))
        people = [self._sample_person(rng) for _ in range(num_people)]
        people.sort(key=lambda person: person["camera"].pixels_per_unit)  # far (small) first

        owner = np.full((self.height, self.width), _NOBODY, np.int16)
        part_map = np.zeros((self.height, self.width), np.uint8)
        for p, person in enumerate(people):
            canvas = Canvas(image, np.zeros_like(part_map)).moved(person["shift"])
            for shape in sorted(person["shapes"], key=lambda s: (s.depth, s.order)):
                shape.draw(canvas)
            drawn = canvas.part_map > 0
            owner[drawn] = p
            part_map[drawn] = canvas.part_map[drawn]

        points = [self._keypoints(person) for person in people]
        image_max = np.array([self.width - 1, self.height - 1], np.float64)
        inside = [np.all((xy >= 0) & (xy <= image_max), axis=1) for xy in points]
        if people and rng.random() < figures.occluder_probability:
            scene_canvas = Canvas(image, part_map)
            joints_inside = np.concatenate([xy[ok] for xy, ok in zip(points, inside, strict=True)])
            sizes = [person["size"] for person in people]
            figures.draw_occluders(rng, scene_canvas, joints_inside, float(np.median(sizes)))
            owner[part_map == OCCLUDER] = _OCCLUDER_OWNER
        image = figures.finish_image(rng, image)

        keypoints = np.zeros((num_people, NUM_KEYPOINTS, 3), np.float32)
        for p, person in enumerate(people):
            visibility = self._visibility(person, points[p], inside[p], p, owner, part_map)
            keypoints[p] = np.where(
                (visibility > 0)[:, None], np.concatenate([points[p], visibility[:, None]], 1), 0.0
            )
        labelled = np.any(keypoints[:, :, 2] > 0, axis=1)
        # Renumber owners to the kept people; dropped people's pixels are ignored by the loss.
        renumber = np.full(num_people, -3, np.int16)
        renumber[labelled] = np.arange(np.count_nonzero(labelled), dtype=np.int16)
        drawn = owner >= 0
        owner[drawn] = renumber[owner[drawn]]
        keypoints = keypoints[labelled]
        areas = np.bincount(owner[owner >= 0].ravel(), minlength=len(keypoints)).astype(np.float32)
        return SceneExample(
            image=image,
            keypoints=keypoints,
            projected_keypoints=np.array(points, np.float32).reshape(-1, NUM_KEYPOINTS, 2)[labelled],
            ignore_mask=owner == -3,
            owner_map=owner,
            areas=areas,
            image_id=int(index),
        )

    def _sample_person(self, rng: np.random.Generator) -> dict:
        """A posed figure, its shapes and its placement (the shift from its origin to image pixels)."""
        figures = self.figures
        skeleton = sample_skeleton(rng)
        outfit = Outfit.sample(rng)
        camera = figures.sample_camera(rng, skeleton)
        light = rng.normal(size=2)
        light /= np.linalg.norm(light) + 1e-9
        shapes, outline = figure_shapes(skeleton, camera, outfit, light)
        low, high = outline.min(axis=0), outline.max(axis=0)
        size = high - low
        slack = self.max_truncation * size
        image_max = np.array([self.width - 1, self.height - 1], np.float64)
        shift = np.zeros(2)
        for axis in range(2):
            lo, hi = -low[axis] - slack[axis], image_max[axis] - high[axis] + slack[axis]
            shift[axis] = rng.uniform(lo, hi) if lo < hi else 0.5 * (lo + hi)
        return dict(skeleton=skeleton, camera=camera, shapes=shapes, shift=shift, size=float(size.max()))

    @staticmethod
    def _keypoints(person: dict) -> np.ndarray:
        """(17, 2) image pixels of every COCO keypoint, also those outside the image."""
        skeleton, camera = person["skeleton"], person["camera"]
        points = np.zeros((NUM_KEYPOINTS, 3))
        for k, joint in enumerate(COCO_FROM_MPII):
            if joint >= 0:
                points[k] = skeleton.joints[joint]
        head_length = skeleton.lengths["head"]
        for k, point in FACE_POINTS.items():
            points[k] = skeleton.joints[body.UPPER_NECK] + skeleton.head_rotation @ (
                np.array(point) * head_length
            )
        return camera.project(points) + person["shift"]

    @staticmethod
    def _visibility(person, xy, inside, p, owner, part_map) -> np.ndarray:
        """(17,) COCO flags of person ``p`` (module docstring)."""
        camera: Camera = person["camera"]
        rotation = person["skeleton"].head_rotation
        facing = camera.faces_camera(rotation)
        flags = np.zeros(NUM_KEYPOINTS, np.float32)
        for k in np.flatnonzero(inside):
            x, y = np.rint(xy[k]).astype(int)
            if owner[y, x] >= 0 and owner[y, x] != p:
                continue  # another figure covers it: 0
            joint = COCO_FROM_MPII[k]
            if joint >= 0:
                seen = owner[y, x] == p and part_map[y, x] in JOINT_PARTS[joint]
            elif k in (3, 4):  # ears: hidden when turned well away
                outward = rotation[:, 0] * np.sign(FACE_POINTS[k][0])
                seen = owner[y, x] == p and part_map[y, x] == HEAD
                seen = seen and float(camera.depth(outward)) > EAR_HIDDEN_DEPTH
            else:  # nose and eyes: on the face
                seen = owner[y, x] == p and part_map[y, x] == HEAD and facing
            flags[k] = 2.0 if seen else 1.0
        return flags
