"""Procedurally drawn human figures with exact ground truth: the built-in dataset.

Each example is a pure function of ``(seed, index)``: a 3-D kinematic skeleton
with human proportions and joint limits is posed at random, turned (yaw),
projected orthographically, rotated in the image plane and drawn with OpenCV
over a cluttered background, then partly covered by occluders. The 16 joints
follow MPII's order and conventions (0-based pixels, ``PoseRecord``).

How left and right can be told apart (as on real people, never by a fixed
colour): the figure has a front and a back.

* Front: a face (eyes, nose, mouth) under a hair cap, a neckline and buttons
  on the shirt, feet pointing forward. A front-facing person's right side is
  on the image left (before the in-plane rotation).
* Back: the head is all hair, the shirt is plain and the feet point away, so
  the person's right side is on the image right. ``back_view_probability``
  sets how often this happens.
* Turned figures (yaw up to ``max_yaw_degrees``): face, neckline and feet
  shift toward the facing direction; limbs on the far side are drawn darker
  (depth shading) and behind the torso, near limbs lighter and in front.

Mirroring an example and swapping its left/right labels gives another example
of the same distribution, so the usual flip augmentation stays consistent.

Visibility: a joint is ``visible`` when the pixel under it shows one of the
body parts that meet at that joint; occluders and self-occlusion (e.g. a hand
over the chest, a far elbow behind the torso) make it not visible while
``has_gt`` stays True, as in MPII. Joints outside the image have no ground
truth.

Command line (writes JPEGs plus a ``tf_hourglass.custom.v1`` annotation file)::

    python -m tf_hourglass.data.synthetic --output DIR --num-examples N --seed S --image-size 256
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np

from tf_hourglass import atomic_files
from tf_hourglass.data.crop import box_scale
from tf_hourglass.data.keypoint_specs import MPII
from tf_hourglass.data.readers import CUSTOM_FORMAT
from tf_hourglass.data.records import PoseRecord

# MPII joint order.
(
    R_ANKLE,
    R_KNEE,
    R_HIP,
    L_HIP,
    L_KNEE,
    L_ANKLE,
    PELVIS,
    THORAX,
    UPPER_NECK,
    HEAD_TOP,
    R_WRIST,
    R_ELBOW,
    R_SHOULDER,
    L_SHOULDER,
    L_ELBOW,
    L_WRIST,
) = range(16)
NUM_JOINTS = 16

# Joints of each side's limbs. Body x points to the person's left, so the
# right side has lateral sign -1.
SIDES = {
    "right": dict(sign=-1.0, shoulder=R_SHOULDER, elbow=R_ELBOW, wrist=R_WRIST,
                  hip=R_HIP, knee=R_KNEE, ankle=R_ANKLE),
    "left": dict(sign=1.0, shoulder=L_SHOULDER, elbow=L_ELBOW, wrist=L_WRIST,
                 hip=L_HIP, knee=L_KNEE, ankle=L_ANKLE),
}  # fmt: skip

# Segment lengths and offsets as fractions of a nominal standing height
# (anthropometric tables, Drillis & Contini). ``head`` is upper_neck -> head_top.
NOMINAL_PROPORTIONS = {
    "head": 0.12,
    "neck": 0.06,  # thorax -> upper_neck
    "spine": 0.28,  # pelvis -> thorax
    "shoulder_half_width": 0.13,
    "hip_half_width": 0.095,
    "hip_drop": 0.03,  # pelvis sits this far above the hip joints
    "upper_arm": 0.186,
    "forearm": 0.146,
    "hand": 0.075,
    "thigh": 0.245,
    "shin": 0.246,
    "foot": 0.11,
}
# Each figure scales every length by its own factor in [1 - v, 1 + v]
# (left and right alike); the head gets a wider, larger-leaning range.
PROPORTION_VARIATION = 0.08
HEAD_SIZE_RANGE = (0.92, 1.15)

# Joint limits in degrees. Limbs are parameterised by flexion (swing forward
# in the sagittal plane) then abduction (swing sideways away from the body).
ARM_FLEXION_RANGE = (-40.0, 95.0)  # overhead arms come from abduction
ARM_ABDUCTION_RANGE = (-30.0, 170.0)
ELBOW_FLEXION_RANGE = (0.0, 145.0)  # the forearm only bends toward the front
HUMERAL_ROTATION_RANGE = (-30.0, 90.0)  # positive turns the elbow bend inward
HIP_FLEXION_RANGE = (-30.0, 120.0)
HIP_ABDUCTION_RANGE = (-15.0, 45.0)
KNEE_FLEXION_RANGE = (0.0, 145.0)  # the shin only bends backward
HIP_ROTATION_RANGE = (-15.0, 15.0)

# Head box (MPII's head rectangle) in units of the head length: from head top
# to upper neck plus a margin, and as wide as the skull plus a margin. Its
# diagonal is sqrt(1.2^2 + 1.1^2) = 1.63 head lengths, as on real MPII data.
HEAD_BOX_HEIGHT = 1.2
HEAD_BOX_WIDTH = 1.1
PCKH_HEAD_FACTOR = 0.6  # PCKh head size = 0.6 x head-box diagonal

# Ids in the part map; a joint is visible if its pixel shows one of its parts.
TORSO, NECK, HEAD = 1, 2, 3
SIDE_PARTS = {
    "right": dict(upper_arm=4, forearm=5, hand=6, thigh=7, shin=8, foot=9),
    "left": dict(upper_arm=10, forearm=11, hand=12, thigh=13, shin=14, foot=15),
}
OCCLUDER = 255


def _parts_meeting_at_joints() -> list[frozenset[int]]:
    parts = [set() for _ in range(NUM_JOINTS)]
    for side, joint in SIDES.items():
        part = SIDE_PARTS[side]
        parts[joint["shoulder"]] |= {part["upper_arm"], TORSO}
        parts[joint["elbow"]] |= {part["upper_arm"], part["forearm"]}
        parts[joint["wrist"]] |= {part["forearm"], part["hand"]}
        parts[joint["hip"]] |= {part["thigh"], TORSO}
        parts[joint["knee"]] |= {part["thigh"], part["shin"]}
        parts[joint["ankle"]] |= {part["shin"], part["foot"]}
        parts[PELVIS] |= {part["thigh"]}
    parts[PELVIS] |= {TORSO}
    parts[THORAX] |= {TORSO, NECK}
    parts[UPPER_NECK] |= {NECK, HEAD}
    parts[HEAD_TOP] |= {HEAD}
    return [frozenset(p) for p in parts]


JOINT_PARTS = _parts_meeting_at_joints()

# Limb radii (start, end) as fractions of the nominal height, before "build".
_LIMB_RADII = {
    "upper_arm": (0.034, 0.027),
    "forearm": (0.027, 0.020),
    "hand": (0.022, 0.018),
    "thigh": (0.052, 0.037),
    "shin": (0.037, 0.025),
    "foot": (0.022, 0.018),
    "neck": (0.028, 0.028),
}
# Depth shading: brightness factor per unit of depth (nominal heights) toward
# the camera, so a near shoulder of a figure turned 60 degrees is ~20% lighter.
_DEPTH_SHADING = 2.0


# ---------------------------------------------------------------------------
# 3-D skeleton.


def _rot_x(degrees: float) -> np.ndarray:
    """Rotation about x; positive tips +y (up) toward +z (forward)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(degrees: float) -> np.ndarray:
    """Rotation about y (vertical); positive turns +z (forward) toward +x."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(degrees: float) -> np.ndarray:
    """Rotation about z (toward the camera); positive tips +y toward -x."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _limb_direction(flexion: float, abduction: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction of a limb hanging from a left-side joint, and its hinge axis.

    Flexion swings the limb forward from hanging down, abduction then swings
    it sideways (about the forward axis). The hinge axis is the lateral axis
    carried along by the abduction; it is perpendicular to the direction.
    """
    fl, ab = math.radians(flexion), math.radians(abduction)
    direction = np.array([math.cos(fl) * math.sin(ab), -math.cos(fl) * math.cos(ab), math.sin(fl)])
    hinge = np.array([math.cos(ab), math.sin(ab), 0.0])
    return direction, hinge


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is ~20x slower on tiny inputs)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _twist(vector: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotates ``vector`` (perpendicular to unit ``axis``) about ``axis``."""
    a = math.radians(degrees)
    return math.cos(a) * vector + math.sin(a) * _cross(axis, vector)


@dataclasses.dataclass
class Skeleton:
    """A posed 3-D figure in body coordinates (units of nominal height).

    Body axes: x = the person's left, y = up, z = the person's forward.

    Attributes:
        joints: (16, 3) MPII joints.
        lengths: per-figure segment lengths (keys of ``NOMINAL_PROPORTIONS``).
        build: width factor (slim < 1 < stocky).
        spine_rotation: (3, 3) orientation of the upper body.
        head_rotation: (3, 3) orientation of the head.
        hand_tips, foot_tips: {"right"/"left": (3,)} ends of hands and feet.
        elbow_flexion, knee_flexion: {"right"/"left": degrees} sampled angles.
    """

    joints: np.ndarray
    lengths: dict[str, float]
    build: float
    spine_rotation: np.ndarray
    head_rotation: np.ndarray
    hand_tips: dict[str, np.ndarray]
    foot_tips: dict[str, np.ndarray]
    elbow_flexion: dict[str, float]
    knee_flexion: dict[str, float]

    @property
    def standing_height(self) -> float:
        """Head top to ankle when standing straight (the figure's size)."""
        n = self.lengths
        return n["head"] + n["neck"] + n["spine"] + n["hip_drop"] + n["thigh"] + n["shin"]


def _sample_leg_angles(rng: np.random.Generator) -> tuple[dict, dict, dict, float]:
    """Hip flexion / abduction and knee flexion per side, plus torso lean.

    A few pose families (standing, striding, crouching, free) give a more
    human distribution than independent uniform angles.
    """
    mode = rng.choice(4, p=[0.35, 0.25, 0.15, 0.25])
    flexion, abduction, knee = {}, {}, {}
    lean = rng.uniform(-10, 20)
    sides = ["right", "left"]
    rng.shuffle(sides)  # which leg leads when striding
    for i, side in enumerate(sides):
        if mode == 0:  # standing
            flexion[side], abduction[side], knee[side] = (
                rng.uniform(-10, 20),
                rng.uniform(-8, 25),
                rng.uniform(0, 25),
            )
        elif mode == 1:  # walking / running: one leg forward, one back
            if i == 0:
                flexion[side], knee[side] = rng.uniform(10, 60), rng.uniform(0, 60)
            else:
                flexion[side], knee[side] = rng.uniform(-30, 0), rng.uniform(10, 100)
            abduction[side] = rng.uniform(-5, 15)
        elif mode == 2:  # crouching / sitting
            flexion[side], abduction[side], knee[side] = (
                rng.uniform(50, 115),
                rng.uniform(0, 40),
                rng.uniform(50, 140),
            )
            lean = rng.uniform(10, 40)
        else:  # anything within the limits
            flexion[side] = rng.uniform(*HIP_FLEXION_RANGE)
            abduction[side] = rng.uniform(*HIP_ABDUCTION_RANGE)
            knee[side] = rng.uniform(*KNEE_FLEXION_RANGE)
    return flexion, abduction, knee, lean


def sample_skeleton(rng: np.random.Generator) -> Skeleton:
    """Draws proportions and a pose within the joint limits; returns 3-D joints."""
    lengths = {
        name: value * rng.uniform(1 - PROPORTION_VARIATION, 1 + PROPORTION_VARIATION)
        for name, value in NOMINAL_PROPORTIONS.items()
    }
    lengths["head"] = NOMINAL_PROPORTIONS["head"] * rng.uniform(*HEAD_SIZE_RANGE)
    build = rng.uniform(0.85, 1.2)
    joints = np.zeros((NUM_JOINTS, 3))

    hip_flexion, hip_abduction, knee_flexion, lean = _sample_leg_angles(rng)
    # Upper body: forward lean, sideways bend and a twist against the hips.
    spine = _rot_y(rng.uniform(-15, 15)) @ _rot_x(lean) @ _rot_z(rng.uniform(-15, 15))
    joints[PELVIS] = (0.0, lengths["hip_drop"] + lengths["thigh"] + lengths["shin"], 0.0)
    joints[THORAX] = joints[PELVIS] + spine @ (0.0, lengths["spine"], 0.0)
    neck = spine @ _rot_x(rng.uniform(-15, 15)) @ _rot_z(rng.uniform(-15, 15))
    joints[UPPER_NECK] = joints[THORAX] + neck @ (0.0, lengths["neck"], 0.0)
    head = neck @ _rot_y(rng.uniform(-25, 25)) @ _rot_x(rng.uniform(-20, 25))
    head = head @ _rot_z(rng.uniform(-20, 20))
    joints[HEAD_TOP] = joints[UPPER_NECK] + head @ (0.0, lengths["head"], 0.0)

    hand_tips, foot_tips, elbow_flexion = {}, {}, {}
    for side, joint in SIDES.items():
        # Limbs are built for a left side; the right side mirrors x.
        mirror = np.array([joint["sign"], 1.0, 1.0])

        # Arm: shoulder is a ball joint, elbow a hinge bending forward, whose
        # plane turns inward with the humeral rotation.
        low, high = ARM_FLEXION_RANGE
        flexion = low + (high - low) * rng.random() ** 1.5  # arms mostly low, sometimes forward
        upper, hinge = _limb_direction(flexion, rng.uniform(*ARM_ABDUCTION_RANGE))
        hinge = _twist(hinge, upper, rng.uniform(*HUMERAL_ROTATION_RANGE))
        bend = _cross(upper, hinge)  # forward when the arm hangs down
        elbow_flexion[side] = rng.uniform(*ELBOW_FLEXION_RANGE)
        e = math.radians(elbow_flexion[side])
        fore = math.cos(e) * upper + math.sin(e) * bend
        w = math.radians(rng.uniform(-20, 30))  # wrist bend, same plane
        hand = math.cos(w) * fore + math.sin(w) * _cross(fore, hinge)
        shoulder_offset = np.array([lengths["shoulder_half_width"] * build, -0.01, 0.0])
        joints[joint["shoulder"]] = joints[THORAX] + spine @ (mirror * shoulder_offset)
        joints[joint["elbow"]] = joints[joint["shoulder"]] + spine @ (mirror * upper * lengths["upper_arm"])
        joints[joint["wrist"]] = joints[joint["elbow"]] + spine @ (mirror * fore * lengths["forearm"])
        hand_tips[side] = joints[joint["wrist"]] + spine @ (mirror * hand * lengths["hand"])

        # Leg: hip is a ball joint, knee a hinge bending backward.
        thigh, hinge = _limb_direction(hip_flexion[side], hip_abduction[side])
        hinge = _twist(hinge, thigh, rng.uniform(*HIP_ROTATION_RANGE))
        k = math.radians(knee_flexion[side])
        shin = math.cos(k) * thigh + math.sin(k) * _cross(hinge, thigh)
        # The foot points forward, perpendicular to the shin, with some ankle play.
        a = math.radians(rng.uniform(-15, 25))
        forward = _cross(shin, hinge)
        foot = math.cos(a) * forward + math.sin(a) * shin
        hip_offset = np.array([lengths["hip_half_width"] * build**0.5, -lengths["hip_drop"], 0])
        joints[joint["hip"]] = joints[PELVIS] + mirror * hip_offset
        joints[joint["knee"]] = joints[joint["hip"]] + mirror * thigh * lengths["thigh"]
        joints[joint["ankle"]] = joints[joint["knee"]] + mirror * shin * lengths["shin"]
        foot_tips[side] = joints[joint["ankle"]] + mirror * foot * lengths["foot"]

    return Skeleton(
        joints=joints,
        lengths=lengths,
        build=build,
        spine_rotation=spine,
        head_rotation=head,
        hand_tips=hand_tips,
        foot_tips=foot_tips,
        elbow_flexion=elbow_flexion,
        knee_flexion=knee_flexion,
    )


# ---------------------------------------------------------------------------
# Camera: yaw, orthographic projection, in-plane rotation and scale. Pixel
# positions are relative to the body origin until the canvas places them.


@dataclasses.dataclass
class _Camera:
    yaw: float  # degrees; 0 = the figure faces the camera
    roll: float  # degrees, in-plane rotation
    pixels_per_unit: float

    def __post_init__(self):
        self.turn = _rot_y(self.yaw)
        c, s = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        # Image y points down, body y up.
        self.to_image = self.pixels_per_unit * np.array([[c, -s], [s, c]]) @ np.diag([1.0, -1.0])

    def depth(self, points: np.ndarray) -> np.ndarray:
        """Distance toward the camera (body units) of (..., 3) points."""
        return np.asarray(points) @ self.turn[2]

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) body points -> (..., 2) pixel coordinates."""
        turned = np.asarray(points) @ self.turn[:2].T
        return turned @ self.to_image.T

    def project_direction(self, vectors: np.ndarray) -> np.ndarray:
        """(..., 3) body vectors -> (..., 2) pixel vectors."""
        return (np.asarray(vectors) @ self.turn[:2].T) @ self.to_image.T

    def faces_camera(self, rotation: np.ndarray) -> bool:
        """Whether the forward (+z) axis of a body-frame rotation points at us."""
        return float(self.turn[2] @ rotation[:, 2]) > 0


# ---------------------------------------------------------------------------
# Drawing primitives. Every body shape is drawn twice: anti-aliased in colour
# and as its part id into the part map.

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _colour(rgb, factor: float = 1.0, lighten: float = 0.0) -> tuple[int, int, int]:
    """Scales a colour by ``factor`` then moves it ``lighten`` of the way to white."""
    out = []
    for value in rgb:
        v = float(value) * factor
        out.append(int(min(max(v + (255.0 - v) * lighten, 0.0), 255.0)))
    return tuple(out)


class _Canvas:
    """The colour image and the part map, drawn together.

    Shapes with ``part=None`` (shading, face marks) only change the colours.
    Pure-Python arithmetic here: these run ~100 times per figure.
    """

    def __init__(self, image: np.ndarray, part_map: np.ndarray | None = None, offset=(0.0, 0.0)):
        self.image = image
        self.part_map = np.zeros(image.shape[:2], np.uint8) if part_map is None else part_map
        # Added to every coordinate: figures are built around their own origin.
        self.offset_x, self.offset_y = float(offset[0]), float(offset[1])

    def moved(self, offset) -> _Canvas:
        """The same image and part map, drawn ``offset`` pixels further."""
        return _Canvas(self.image, self.part_map, offset)

    def _point(self, point) -> tuple[int, int]:
        """An (x, y) point, offset, in OpenCV's fixed-point form (``_SHIFT`` bits)."""
        x, y = float(point[0]) + self.offset_x, float(point[1]) + self.offset_y
        return int(round(x * _ONE)), int(round(y * _ONE))

    def _points(self, points) -> np.ndarray:
        offset = (self.offset_x, self.offset_y)
        return np.round((np.asarray(points, np.float64) + offset) * _ONE).astype(np.int32)

    def _targets(self, colour, part):
        yield self.image, colour, cv2.LINE_AA
        if part is not None:
            yield self.part_map, int(part), cv2.LINE_8

    def capsule(self, a, b, radius_a, radius_b, colour, part=None):
        """Tapered capsule (limb) from a to b: two end circles and the band between."""
        ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
        length = math.hypot(bx - ax, by - ay)
        quad = None
        if length > 1e-6:
            nx, ny = (ay - by) / length, (bx - ax) / length
            quad = self._points(
                [
                    (ax + nx * radius_a, ay + ny * radius_a),
                    (bx + nx * radius_b, by + ny * radius_b),
                    (bx - nx * radius_b, by - ny * radius_b),
                    (ax - nx * radius_a, ay - ny * radius_a),
                ]
            )
        ends = [
            (self._point(a), max(int(round(radius_a * _ONE)), _ONE // 2)),
            (self._point(b), max(int(round(radius_b * _ONE)), _ONE // 2)),
        ]
        for canvas, value, line in self._targets(colour, part):
            for centre, radius in ends:
                cv2.circle(canvas, centre, radius, value, -1, line, _SHIFT)
            if quad is not None:
                cv2.fillConvexPoly(canvas, quad, value, line, _SHIFT)

    def polygon(self, points, colour, part=None):
        fixed = [self._points(points)]
        for canvas, value, line in self._targets(colour, part):
            cv2.fillPoly(canvas, fixed, value, line, _SHIFT)

    def ellipse(self, centre, half_axes, angle_degrees, colour, part=None):
        axes = tuple(max(int(round(float(v) * _ONE)), 1) for v in half_axes)
        for canvas, value, line in self._targets(colour, part):
            cv2.ellipse(
                canvas,
                self._point(centre),
                axes,
                float(angle_degrees),
                0,
                360,
                value,
                -1,
                line,
                _SHIFT,
            )

    def line(self, a, b, thickness, colour):
        cv2.line(
            self.image,
            self._point(a),
            self._point(b),
            colour,
            max(int(thickness), 1),
            cv2.LINE_AA,
            _SHIFT,
        )


def _ellipse_extent(half_axes, angle_degrees) -> np.ndarray:
    """Half-width and half-height of the box around a rotated ellipse."""
    a, b = half_axes
    t = math.radians(angle_degrees)
    return np.array(
        [math.hypot(a * math.cos(t), b * math.sin(t)), math.hypot(a * math.sin(t), b * math.cos(t))]
    )


# ---------------------------------------------------------------------------
# Colours.

_SKIN_LIGHT = np.array([238, 200, 170])
_SKIN_DARK = np.array([88, 56, 38])
_HAIR_COLOURS = np.array(
    [[22, 17, 14], [58, 38, 24], [105, 70, 40], [190, 155, 95], [150, 150, 145], [135, 60, 30]]
)


def _random_skin(rng: np.random.Generator) -> np.ndarray:
    t = rng.random()
    return np.clip(_SKIN_LIGHT * (1 - t) + _SKIN_DARK * t + rng.uniform(-12, 12, 3), 0, 255)


def _random_cloth(rng: np.random.Generator) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.9), rng.uniform(0.15, 0.95))
    return np.array([r, g, b]) * 255


def _random_body_colour(rng: np.random.Generator) -> np.ndarray:
    """Skin or cloth: what background distractors wear, so colour is no cue."""
    return _random_skin(rng) if rng.random() < 0.4 else _random_cloth(rng)


@dataclasses.dataclass
class _Outfit:
    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    shoes: np.ndarray
    sleeve: float  # covered length in segments: 0 sleeveless, <1 short, 2 long
    trouser_leg: float  # same for trouser legs: <1 shorts, 2 long
    neckline: str  # "v" or "round", shown on the front only

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Outfit:
        skin = _random_skin(rng)
        hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.uniform(-10, 10, 3), 0, 255)
        shoes = _random_cloth(rng) * 0.6 if rng.random() < 0.5 else np.full(3, rng.uniform(15, 70))
        return cls(
            skin=skin,
            hair=hair,
            shirt=_random_cloth(rng),
            trousers=_random_cloth(rng),
            shoes=shoes,
            sleeve=float(rng.choice([0.0, rng.uniform(0.3, 0.7), 2.0], p=[0.15, 0.45, 0.4])),
            trouser_leg=float(rng.choice([rng.uniform(0.6, 1.3), 2.0], p=[0.3, 0.7])),
            neckline=str(rng.choice(["v", "round"])),
        )


# ---------------------------------------------------------------------------
# Background.


def _draw_background(
    rng: np.random.Generator, height: int, width: int, clutter: int, distractor_limbs: int
) -> np.ndarray:
    """Smooth colour field + random shapes, lines, stripes and limb-like blobs."""
    # Smooth colour field: a few random colours, pulled toward their mean by a
    # random amount (muted to garish), interpolated across the image.
    grid = rng.uniform(0, 255, (4, 4, 3))
    grid = grid.mean() + (grid - grid.mean()) * rng.uniform(0.2, 1.0)
    image = cv2.resize(grid.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    canvas = _Canvas(image)
    size = float(min(height, width))

    def random_point(margin=0.1):
        return rng.uniform(-margin, 1 + margin, 2) * (width, height)

    if rng.random() < 0.3:  # a band of stripes (fence, blinds, shirt pattern)
        angle = rng.uniform(0, math.pi)
        d = np.array([math.cos(angle), math.sin(angle)])
        n = np.array([-d[1], d[0]])
        start, spacing = random_point(0), rng.uniform(0.02, 0.08) * size
        colour = _colour(rng.integers(0, 256, 3))
        for k in range(int(rng.integers(4, 14))):
            c = start + n * spacing * k
            canvas.line(c - d * 2 * size, c + d * 2 * size, spacing * rng.uniform(0.2, 0.5), colour)

    for _ in range(int(rng.integers(clutter // 2, clutter + 1))):
        colour = _colour(rng.integers(0, 256, 3))
        kind = rng.integers(5)
        if kind == 0:
            rect = (
                tuple(random_point()),
                tuple(rng.uniform(0.05, 0.4, 2) * size),
                rng.uniform(0, 180),
            )
            canvas.polygon(cv2.boxPoints(rect), colour)
        elif kind == 1:
            canvas.ellipse(random_point(), rng.uniform(0.02, 0.15, 2) * size, rng.uniform(0, 180), colour)
        elif kind == 2:
            canvas.line(random_point(), random_point(), rng.uniform(1, 0.03 * size), colour)
        elif kind == 3:
            centre = random_point()
            points = centre + rng.uniform(-0.15, 0.15, (int(rng.integers(3, 7)), 2)) * size
            canvas.polygon(points, colour)
        else:  # hollow ring / outline
            centre = tuple(int(v) for v in random_point())
            radius = int(rng.uniform(0.03, 0.15) * size)
            cv2.circle(image, centre, radius, colour, int(rng.integers(1, 5)), cv2.LINE_AA)

    # Limb-like distractors: one or two tapered segments in body colours.
    for _ in range(int(rng.integers(0, distractor_limbs + 1))):
        colour = _random_body_colour(rng)
        length = rng.uniform(0.08, 0.25) * size
        radius = rng.uniform(0.015, 0.05) * size
        a = random_point()
        angle = rng.uniform(0, 2 * math.pi)
        for _segment in range(int(rng.integers(1, 3))):
            b = a + length * np.array([math.cos(angle), math.sin(angle)])
            canvas.capsule(a, b, radius, radius * 0.75, _colour(colour))
            canvas.capsule(a, b, radius * 0.4, radius * 0.3, _colour(colour, lighten=0.2))
            a, radius, angle = b, radius * 0.75, angle + rng.uniform(-2.5, 2.5)
    return image


# ---------------------------------------------------------------------------
# Figure.


@dataclasses.dataclass
class _Shape:
    """One body part to paint: depth decides the order (far first)."""

    depth: float
    order: int  # tie-breaker
    draw: Callable[[_Canvas], None]


def _figure_shapes(
    skeleton: Skeleton, camera: _Camera, outfit: _Outfit, light: np.ndarray
) -> tuple[list[_Shape], np.ndarray]:
    """Paint operations for every part, and the (N, 2) outline points of the figure.

    ``light`` is the 2-D unit direction of the highlight on limbs.
    """
    px = camera.pixels_per_unit
    shapes: list[_Shape] = []
    outline: list[np.ndarray] = []

    def limb(start, end, radii, base, order, part, cover=0.0, cover_colour=None, depth_offset=0.0):
        """A shaded limb segment from 3-D ``start`` to ``end`` (joint index or point).

        The first ``cover`` (fraction, from ``start``) is clothed in ``cover_colour``.
        """
        points = [skeleton.joints[p] if isinstance(p, int) else p for p in (start, end)]
        a, b = camera.project(np.array(points))
        ra, rb = radii[0] * px * skeleton.build, radii[1] * px * skeleton.build
        outline.extend([a - ra, a + ra, b - rb, b + rb])
        z = float(camera.depth(0.5 * (points[0] + points[1]))) + depth_offset
        # Depth shading: near limbs lighter, far limbs darker.
        brightness = float(np.clip(1.0 + _DEPTH_SHADING * z, 0.55, 1.3))

        def shaded_capsule(canvas, p, q, rp, rq, colour, part_id):
            canvas.capsule(p, q, rp, rq, _colour(colour, brightness), part_id)
            offset = light * 0.3 * (rp + rq) / 2
            canvas.capsule(p + offset, q + offset, rp * 0.35, rq * 0.35, _colour(colour, brightness, 0.18))

        def draw(canvas):
            shaded_capsule(canvas, a, b, ra, rb, base, part)
            if cover > 0:
                c = min(cover, 1.0)
                sleeve_end = a + (b - a) * c
                sleeve_radius = ra + (rb - ra) * c
                shaded_capsule(canvas, a, sleeve_end, ra * 1.08, sleeve_radius * 1.08, cover_colour, part)

        return _Shape(z, order, draw)

    skin, shirt, trousers = outfit.skin, outfit.shirt, outfit.trousers
    for side, joint in SIDES.items():
        part = SIDE_PARTS[side]
        s, e, w = joint["shoulder"], joint["elbow"], joint["wrist"]
        h, k, a = joint["hip"], joint["knee"], joint["ankle"]
        hand, foot = skeleton.hand_tips[side], skeleton.foot_tips[side]
        radii = _LIMB_RADII
        shapes += [
            limb(s, e, radii["upper_arm"], skin, 3, part["upper_arm"], outfit.sleeve, shirt),
            limb(e, w, radii["forearm"], skin, 4, part["forearm"], outfit.sleeve - 1, shirt),
            limb(w, hand, radii["hand"], skin, 5, part["hand"]),
            # Thighs count as slightly behind the torso so the hips cover their tops.
            limb(h, k, radii["thigh"], skin, 1, part["thigh"], outfit.trouser_leg, trousers, -0.08),
            limb(k, a, radii["shin"], skin, 2, part["shin"], outfit.trouser_leg - 1, trousers),
            limb(a, foot, radii["foot"], outfit.shoes, 3, part["foot"]),
        ]

    torso_shape, torso_outline = _torso(skeleton, camera, outfit)
    shapes.append(torso_shape)
    outline.extend(torso_outline)
    # The neck is painted by the head's shape, just before the skull, so it
    # never covers the chin (its own depth is not used).
    neck = limb(THORAX, UPPER_NECK, _LIMB_RADII["neck"], skin, 7, NECK)
    head_shape, head_outline = _head(skeleton, camera, outfit, neck.draw)
    shapes.append(head_shape)
    outline.extend(head_outline)
    return shapes, np.array(outline)


def _torso(skeleton: Skeleton, camera: _Camera, outfit: _Outfit) -> tuple[_Shape, list]:
    """Shirt and hips as cross-sections (ellipses) projected to a silhouette."""
    n = skeleton.lengths
    joints = skeleton.joints
    spine, pelvis_frame = skeleton.spine_rotation, np.eye(3)
    build = skeleton.build
    shoulder = n["shoulder_half_width"] * build
    hip = n["hip_half_width"] * build**0.5
    # (frame, origin joint, height above it, half-width, half-depth), top to bottom.
    shirt_levels = [
        (spine, THORAX, 0.015, shoulder + 0.02 * build, 0.06),
        (spine, THORAX, -0.07, shoulder * 0.95, 0.09),
        (spine, PELVIS, 0.11, hip + 0.02, 0.08),
        (pelvis_frame, PELVIS, 0.02, hip + 0.035 * build, 0.085),
    ]
    trouser_levels = [
        (pelvis_frame, PELVIS, 0.04, hip + 0.03 * build, 0.085),
        (pelvis_frame, PELVIS, -n["hip_drop"], hip + 0.045 * build, 0.09),
        (pelvis_frame, PELVIS, -n["hip_drop"] - 0.06, hip + 0.02 * build, 0.08),
    ]
    spine2d = camera.project(joints[THORAX]) - camera.project(joints[PELVIS])
    if np.linalg.norm(spine2d) < 1e-6 * camera.pixels_per_unit:
        spine2d = camera.project_direction(spine[:, 1])
    spine2d /= np.linalg.norm(spine2d) + 1e-12
    normal = np.array([-spine2d[1], spine2d[0]])

    def silhouette(levels):
        left, right = [], []
        for frame, origin, up, half_width, half_depth in levels:
            c = camera.project(joints[origin] + frame @ (0.0, up, 0.0))
            ex = camera.project_direction(frame[:, 0]) @ normal
            ez = camera.project_direction(frame[:, 2]) @ normal
            extent = math.hypot(half_width * ex, half_depth * ez)
            left.append(c + normal * extent)
            right.append(c - normal * extent)
        return np.array(left + right[::-1])

    shirt, trousers = silhouette(shirt_levels), silhouette(trouser_levels)
    front = camera.faces_camera(spine)
    depth = float(camera.depth(0.5 * (joints[THORAX] + joints[PELVIS])))
    # Front marks sit on the chest surface, so they slide toward the facing side.
    collar = [joints[THORAX] + spine @ p for p in ((-0.045, 0.015, 0.06), (0.045, 0.015, 0.06))]
    v_tip = joints[THORAX] + spine @ (0.0, -0.06 if outfit.neckline == "v" else -0.025, 0.075)
    buttons = [joints[THORAX] + spine @ (0.0, y, 0.09) for y in (-0.09, -0.14, -0.19)]
    px = camera.pixels_per_unit

    def draw(canvas):
        canvas.polygon(trousers, _colour(outfit.trousers), TORSO)
        canvas.polygon(shirt, _colour(outfit.shirt), TORSO)
        if front:
            neck = camera.project(np.array(collar + [v_tip]))
            if outfit.neckline == "v":
                canvas.polygon(neck, _colour(outfit.skin))
            else:
                middle = 0.5 * (neck[0] + neck[1])
                canvas.ellipse(middle, (0.045 * px, 0.025 * px), 0, _colour(outfit.skin))
            for b in camera.project(np.array(buttons)):
                canvas.ellipse(b, (0.008 * px, 0.008 * px), 0, _colour(outfit.shirt, 0.55))

    # Order 0: at equal depth, limbs are drawn over the torso.
    return _Shape(depth, 0, draw), list(shirt) + list(trousers)


def _head(skeleton: Skeleton, camera: _Camera, outfit: _Outfit, draw_neck) -> tuple[_Shape, list]:
    """Neck, skull ellipse, hair, and a face on the front: the facing-direction cue."""
    px = camera.pixels_per_unit
    head_length = skeleton.lengths["head"]
    rotation = skeleton.head_rotation
    neck = skeleton.joints[UPPER_NECK]

    def at(x, y, z):  # head-frame point (units of head length) -> image
        return camera.project(neck + rotation @ (np.array([x, y, z]) * head_length))

    centre = at(0, 0.5, 0)
    up2d = camera.project_direction(rotation[:, 1])
    if np.linalg.norm(up2d) < 0.3 * px:  # head tipped toward the camera: use its side axis
        side2d = camera.project_direction(rotation[:, 0])
        up2d = np.array([side2d[1], -side2d[0]])
    angle = math.degrees(math.atan2(up2d[0], -up2d[1]))  # ellipse's first axis horizontal
    # Half-axes: the skull reaches a little past head top (hair) and to the chin.
    skull = (0.40 * head_length * px, 0.56 * head_length * px)
    extent = _ellipse_extent(skull, angle)
    outline = [centre - extent, centre + extent]
    facing = camera.faces_camera(rotation)
    depth = float(camera.depth(neck + rotation @ (0, 0.5 * head_length, 0))) + 0.01

    # A face turned sideways looks narrower (cosine of the turn).
    turn = max(float(camera.turn[2] @ rotation[:, 2]), 0.3)

    def draw(canvas):
        draw_neck(canvas)
        canvas.ellipse(centre, skull, angle, _colour(outfit.skin), HEAD)
        hair, skin = _colour(outfit.hair), _colour(outfit.skin)
        if not facing:  # the back of the head is hair
            canvas.ellipse(at(0, 0.52, -0.05), (skull[0] * 1.02, skull[1] * 0.97), angle, hair, HEAD)
            return
        canvas.ellipse(at(0, 0.62, -0.25), (skull[0] * 1.02, skull[1] * 0.8), angle, hair, HEAD)
        # The face sits on the front of the skull: it moves with the head's yaw.
        canvas.ellipse(at(0, 0.4, 0.22), (skull[0] * 0.72 * turn, skull[1] * 0.62), angle, skin, HEAD)
        eye_size = max(0.055 * head_length * px, 0.6)
        for x in (-0.15, 0.15):
            canvas.ellipse(at(x, 0.5, 0.36), (eye_size, eye_size), 0, _colour(outfit.hair, 0.4))
        thickness = max(0.04 * head_length * px, 1)
        canvas.line(at(0, 0.46, 0.4), at(0, 0.34, 0.5), thickness, _colour(outfit.skin, 0.7))
        canvas.line(at(-0.09, 0.22, 0.36), at(0.09, 0.22, 0.36), thickness, (150, 60, 60))

    return _Shape(depth, 8, draw), outline


# ---------------------------------------------------------------------------
# The dataset.


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


def _as_height_width(image_size) -> tuple[int, int]:
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
        self.height, self.width = _as_height_width(image_size)
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
        outfit = _Outfit.sample(rng)
        camera = self._sample_camera(rng, skeleton)
        light = rng.normal(size=2)
        light /= np.linalg.norm(light) + 1e-9  # which side of the limbs is lit

        # Place the figure: mostly inside the image, up to max_truncation out.
        shapes, outline = _figure_shapes(skeleton, camera, outfit, light)
        low, high = outline.min(axis=0), outline.max(axis=0)
        size = high - low
        slack = self.max_truncation * size
        image_max = np.array([self.width - 1, self.height - 1], np.float64)
        shift = np.zeros(2)
        for axis in range(2):
            lo, hi = -low[axis] - slack[axis], image_max[axis] - high[axis] + slack[axis]
            shift[axis] = rng.uniform(lo, hi) if lo < hi else 0.5 * (lo + hi)
        low, high = low + shift, high + shift

        image = _draw_background(rng, self.height, self.width, self.clutter, self.distractor_limbs)
        canvas = _Canvas(image)
        figure_canvas = canvas.moved(shift)
        for shape in sorted(shapes, key=lambda s: (s.depth, s.order)):
            shape.draw(figure_canvas)

        keypoints = camera.project(skeleton.joints) + shift
        inside = np.all((keypoints >= 0) & (keypoints <= image_max), axis=1)
        if rng.random() < self.occluder_probability:
            self._draw_occluders(rng, canvas, keypoints[inside], size.max())

        image = self._finish(rng, canvas.image)
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

    def _sample_camera(self, rng: np.random.Generator, skeleton: Skeleton) -> _Camera:
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
        return _Camera(yaw=yaw, roll=roll, pixels_per_unit=person_height / skeleton.standing_height)

    def _draw_occluders(self, rng, canvas: _Canvas, joints_inside: np.ndarray, figure_size: float):
        """One or two solid shapes, each centred near a random joint."""
        if len(joints_inside) == 0:
            return
        for _ in range(1 + int(rng.random() < 0.3)):
            centre = joints_inside[rng.integers(len(joints_inside))] + rng.normal(0, 0.04 * figure_size, 2)
            half_axes = rng.uniform(0.04, 0.13, 2) * figure_size
            colour = _colour(rng.integers(0, 256, 3))
            angle = rng.uniform(0, 180)
            if rng.random() < 0.5:
                corners = cv2.boxPoints((tuple(centre), tuple(2 * half_axes), angle))
                canvas.polygon(corners, colour, OCCLUDER)
            else:
                canvas.ellipse(centre, half_axes, angle, colour, OCCLUDER)

    def _finish(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------
# Writing a dataset to disk.

ANNOTATIONS_FILENAME = "annotations.json"
IMAGES_DIRNAME = "images"
# Quality 95 without chroma subsampling: thin saturated limbs and stripes
# would otherwise bleed colour (mean error 2-3 instead of up to 11 levels).
_JPEG_PARAMS = [
    cv2.IMWRITE_JPEG_QUALITY, 95,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
]  # fmt: skip


def _annotation_entry(image_path: str, record: PoseRecord) -> dict:
    """One custom.v1 annotation; v: 0 = not annotated, 1 = occluded, 2 = visible."""
    keypoints = []
    for (x, y), has_gt, visible in zip(record.keypoints, record.has_gt, record.visible, strict=True):
        flag = 0 if not has_gt else (2 if visible else 1)
        keypoints.append([round(float(x), 3), round(float(y), 3), flag])
    return {
        "image": image_path,
        "keypoints": keypoints,
        "box": [round(float(v), 3) for v in record.box],
        "center": [round(float(v), 3) for v in record.center],
        "scale": round(record.scale, 6),
        "normalizer": round(record.normalizer, 4),
    }


def write_custom_dataset(
    output_dir: str,
    num_examples: int,
    seed: int = 0,
    image_size: int | tuple[int, int] = 256,
    start: int = 0,
    **figure_options,
) -> str:
    """Writes examples ``start .. start + num_examples - 1`` as a custom.v1 dataset.

    Layout: ``output_dir/images/00000000.jpg`` (JPEG quality 95, 4:4:4,
    named by index) and ``output_dir/annotations.json``, written to a temporary file
    and renamed so a reader never sees half a file.

    Args:
        output_dir: folder to create or fill.
        num_examples: how many examples.
        seed, image_size, **figure_options: passed to ``SyntheticFigures``.
        start: index of the first example (split datasets by index range).

    Returns:
        The path of the annotation file.
    """
    from tqdm import tqdm

    if num_examples < 0 or start < 0:
        raise ValueError(f"num_examples and start must be >= 0; received {num_examples!r}, {start!r}.")
    figures = SyntheticFigures(image_size=image_size, seed=seed, **figure_options)
    os.makedirs(os.path.join(output_dir, IMAGES_DIRNAME), exist_ok=True)
    annotations = []
    for index in tqdm(range(start, start + num_examples), desc="synthetic figures", unit="image"):
        image, record = figures.generate(index)
        relative_path = f"{IMAGES_DIRNAME}/{index:08d}.jpg"
        path = os.path.join(output_dir, relative_path)
        if not cv2.imwrite(path, image[:, :, ::-1], _JPEG_PARAMS):
            raise OSError(f"Could not write {path}.")
        annotations.append(_annotation_entry(relative_path, record))

    document = {
        "format": CUSTOM_FORMAT,
        "keypoint_names": list(MPII.keypoint_names),
        "flip_pairs": [list(p) for p in MPII.flip_pairs],
        "skeleton": [list(p) for p in MPII.skeleton],
        "pck_normalizer": "head",
        "annotations": annotations,
    }
    annotations_path = os.path.join(output_dir, ANNOTATIONS_FILENAME)
    atomic_files.write_text(annotations_path, json.dumps(document))
    return annotations_path


def main(argv: list[str] | None = None) -> int:
    """``python -m tf_hourglass.data.synthetic --output DIR [--num-examples N]``: writes a custom-format dataset.

    Follows the command convention of ``tf_hourglass/cli.py``; returns the exit status.
    """
    from absl import flags

    from tf_hourglass.cli import fail, parse_flags

    flag_values = flags.FlagValues()
    flags.DEFINE_string("output", None, "Output folder.", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_examples", 1000, "Number of examples to write.", lower_bound=1, flag_values=flag_values
    )
    flags.DEFINE_integer("seed", 0, "Dataset seed.", flag_values=flag_values)
    flags.DEFINE_integer(
        "image_size", 256, "Side of the square images, in pixels.", lower_bound=16, flag_values=flag_values
    )
    flags.DEFINE_integer("start", 0, "Index of the first example.", lower_bound=0, flag_values=flag_values)
    flags.mark_flag_as_required("output", flag_values=flag_values)
    doc = "Writes synthetic figures as a custom-format dataset (annotations.json and images)."
    status = parse_flags("synthetic", flag_values, list(sys.argv if argv is None else argv), doc)
    if status is not None:
        return status
    try:
        path = write_custom_dataset(
            flag_values.output,
            num_examples=flag_values.num_examples,
            seed=flag_values.seed,
            image_size=flag_values.image_size,
            start=flag_values.start,
        )
    except (ValueError, OSError) as error:
        return fail("synthetic", error)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
