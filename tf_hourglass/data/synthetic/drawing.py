"""Drawing a figure with OpenCV: canvas, colours, outfit, background and body shapes.

Every body shape is drawn twice: anti-aliased in colour and as its part id into
the part map.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from collections.abc import Callable

import cv2
import numpy as np

from tf_hourglass.data.synthetic.body import (
    DEPTH_SHADING,
    HEAD,
    LIMB_RADII,
    NECK,
    PELVIS,
    SIDE_PARTS,
    SIDES,
    THORAX,
    TORSO,
    UPPER_NECK,
    Skeleton,
)
from tf_hourglass.data.synthetic.camera import Camera

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def shade(rgb, factor: float = 1.0, lighten: float = 0.0) -> tuple[int, int, int]:
    """Scales a colour by ``factor`` then moves it ``lighten`` of the way to white."""
    out = []
    for value in rgb:
        v = float(value) * factor
        out.append(int(min(max(v + (255.0 - v) * lighten, 0.0), 255.0)))
    return tuple(out)


class Canvas:
    """The colour image and the part map, drawn together.

    Shapes with ``part=None`` (shading, face marks) only change the colours.
    Pure-Python arithmetic here: these run ~100 times per figure.
    """

    def __init__(self, image: np.ndarray, part_map: np.ndarray | None = None, offset=(0.0, 0.0)):
        self.image = image
        self.part_map = np.zeros(image.shape[:2], np.uint8) if part_map is None else part_map
        # Added to every coordinate: figures are built around their own origin.
        self.offset_x, self.offset_y = float(offset[0]), float(offset[1])

    def moved(self, offset) -> Canvas:
        """The same image and part map, drawn ``offset`` pixels further."""
        return Canvas(self.image, self.part_map, offset)

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
class Outfit:
    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    shoes: np.ndarray
    sleeve: float  # covered length in segments: 0 sleeveless, <1 short, 2 long
    trouser_leg: float  # same for trouser legs: <1 shorts, 2 long
    neckline: str  # "v" or "round", shown on the front only

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Outfit:
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


def draw_background(
    rng: np.random.Generator, height: int, width: int, clutter: int, distractor_limbs: int
) -> np.ndarray:
    """Smooth colour field + random shapes, lines, stripes and limb-like blobs."""
    # Smooth colour field: a few random colours, pulled toward their mean by a
    # random amount (muted to garish), interpolated across the image.
    grid = rng.uniform(0, 255, (4, 4, 3))
    grid = grid.mean() + (grid - grid.mean()) * rng.uniform(0.2, 1.0)
    image = cv2.resize(grid.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    canvas = Canvas(image)
    size = float(min(height, width))

    def random_point(margin=0.1):
        return rng.uniform(-margin, 1 + margin, 2) * (width, height)

    if rng.random() < 0.3:  # a band of stripes (fence, blinds, shirt pattern)
        angle = rng.uniform(0, math.pi)
        d = np.array([math.cos(angle), math.sin(angle)])
        n = np.array([-d[1], d[0]])
        start, spacing = random_point(0), rng.uniform(0.02, 0.08) * size
        colour = shade(rng.integers(0, 256, 3))
        for k in range(int(rng.integers(4, 14))):
            c = start + n * spacing * k
            canvas.line(c - d * 2 * size, c + d * 2 * size, spacing * rng.uniform(0.2, 0.5), colour)

    for _ in range(int(rng.integers(clutter // 2, clutter + 1))):
        colour = shade(rng.integers(0, 256, 3))
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
            canvas.capsule(a, b, radius, radius * 0.75, shade(colour))
            canvas.capsule(a, b, radius * 0.4, radius * 0.3, shade(colour, lighten=0.2))
            a, radius, angle = b, radius * 0.75, angle + rng.uniform(-2.5, 2.5)
    return image


# ---------------------------------------------------------------------------
# Figure.


@dataclasses.dataclass
class _Shape:
    """One body part to paint: depth decides the order (far first)."""

    depth: float
    order: int  # tie-breaker
    draw: Callable[[Canvas], None]


def figure_shapes(
    skeleton: Skeleton, camera: Camera, outfit: Outfit, light: np.ndarray
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
        brightness = float(np.clip(1.0 + DEPTH_SHADING * z, 0.55, 1.3))

        def shaded_capsule(canvas, p, q, rp, rq, colour, part_id):
            canvas.capsule(p, q, rp, rq, shade(colour, brightness), part_id)
            offset = light * 0.3 * (rp + rq) / 2
            canvas.capsule(p + offset, q + offset, rp * 0.35, rq * 0.35, shade(colour, brightness, 0.18))

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
        radii = LIMB_RADII
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
    neck = limb(THORAX, UPPER_NECK, LIMB_RADII["neck"], skin, 7, NECK)
    head_shape, head_outline = _head(skeleton, camera, outfit, neck.draw)
    shapes.append(head_shape)
    outline.extend(head_outline)
    return shapes, np.array(outline)


def _torso(skeleton: Skeleton, camera: Camera, outfit: Outfit) -> tuple[_Shape, list]:
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
        canvas.polygon(trousers, shade(outfit.trousers), TORSO)
        canvas.polygon(shirt, shade(outfit.shirt), TORSO)
        if front:
            neck = camera.project(np.array(collar + [v_tip]))
            if outfit.neckline == "v":
                canvas.polygon(neck, shade(outfit.skin))
            else:
                middle = 0.5 * (neck[0] + neck[1])
                canvas.ellipse(middle, (0.045 * px, 0.025 * px), 0, shade(outfit.skin))
            for b in camera.project(np.array(buttons)):
                canvas.ellipse(b, (0.008 * px, 0.008 * px), 0, shade(outfit.shirt, 0.55))

    # Order 0: at equal depth, limbs are drawn over the torso.
    return _Shape(depth, 0, draw), list(shirt) + list(trousers)


def _head(skeleton: Skeleton, camera: Camera, outfit: Outfit, draw_neck) -> tuple[_Shape, list]:
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
        canvas.ellipse(centre, skull, angle, shade(outfit.skin), HEAD)
        hair, skin = shade(outfit.hair), shade(outfit.skin)
        if not facing:  # the back of the head is hair
            canvas.ellipse(at(0, 0.52, -0.05), (skull[0] * 1.02, skull[1] * 0.97), angle, hair, HEAD)
            return
        canvas.ellipse(at(0, 0.62, -0.25), (skull[0] * 1.02, skull[1] * 0.8), angle, hair, HEAD)
        # The face sits on the front of the skull: it moves with the head's yaw.
        canvas.ellipse(at(0, 0.4, 0.22), (skull[0] * 0.72 * turn, skull[1] * 0.62), angle, skin, HEAD)
        eye_size = max(0.055 * head_length * px, 0.6)
        for x in (-0.15, 0.15):
            canvas.ellipse(at(x, 0.5, 0.36), (eye_size, eye_size), 0, shade(outfit.hair, 0.4))
        thickness = max(0.04 * head_length * px, 1)
        canvas.line(at(0, 0.46, 0.4), at(0, 0.34, 0.5), thickness, shade(outfit.skin, 0.7))
        canvas.line(at(-0.09, 0.22, 0.36), at(0.09, 0.22, 0.36), thickness, (150, 60, 60))

    return _Shape(depth, 8, draw), outline
