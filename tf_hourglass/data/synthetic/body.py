"""The 3-D figure: MPII joint order, body proportions, joint limits and a posed skeleton."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

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
LIMB_RADII = {
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
DEPTH_SHADING = 2.0


# ---------------------------------------------------------------------------
# 3-D skeleton.


def rot_x(degrees: float) -> np.ndarray:
    """Rotation about x; positive tips +y (up) toward +z (forward)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(degrees: float) -> np.ndarray:
    """Rotation about y (vertical); positive turns +z (forward) toward +x."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(degrees: float) -> np.ndarray:
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
    spine = rot_y(rng.uniform(-15, 15)) @ rot_x(lean) @ rot_z(rng.uniform(-15, 15))
    joints[PELVIS] = (0.0, lengths["hip_drop"] + lengths["thigh"] + lengths["shin"], 0.0)
    joints[THORAX] = joints[PELVIS] + spine @ (0.0, lengths["spine"], 0.0)
    neck = spine @ rot_x(rng.uniform(-15, 15)) @ rot_z(rng.uniform(-15, 15))
    joints[UPPER_NECK] = joints[THORAX] + neck @ (0.0, lengths["neck"], 0.0)
    head = neck @ rot_y(rng.uniform(-25, 25)) @ rot_x(rng.uniform(-20, 25))
    head = head @ rot_z(rng.uniform(-20, 20))
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
