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

``SyntheticScenes`` (scenes.py) puts 1 to 8 such figures of different sizes
in one image, nearer ones occluding farther ones, with COCO's 17 keypoints:
the built-in data of bottom-up (Associative Embedding) training.

Command line (writes JPEGs plus a ``tf_hourglass.custom.v1`` annotation file;
``--scenes`` for multi-person scenes)::

    python -m tf_hourglass.data.synthetic --output DIR --num-examples N --seed S --image-size 256
"""

from tf_hourglass.data.readers import CUSTOM_FORMAT
from tf_hourglass.data.synthetic.body import (
    HEAD_TOP,
    JOINT_PARTS,
    L_HIP,
    NOMINAL_PROPORTIONS,
    OCCLUDER,
    PELVIS,
    PROPORTION_VARIATION,
    R_HIP,
    SIDES,
    THORAX,
    UPPER_NECK,
    Skeleton,
    sample_skeleton,
)
from tf_hourglass.data.synthetic.dataset import SyntheticExample, SyntheticFigures
from tf_hourglass.data.synthetic.scenes import SYNTHETIC_OKS_SIGMAS, SceneExample, SyntheticScenes
from tf_hourglass.data.synthetic.writer import write_custom_dataset, write_custom_scenes

__all__ = [
    "CUSTOM_FORMAT",
    "HEAD_TOP",
    "JOINT_PARTS",
    "L_HIP",
    "NOMINAL_PROPORTIONS",
    "OCCLUDER",
    "PELVIS",
    "PROPORTION_VARIATION",
    "R_HIP",
    "SIDES",
    "SYNTHETIC_OKS_SIGMAS",
    "THORAX",
    "UPPER_NECK",
    "SceneExample",
    "Skeleton",
    "SyntheticExample",
    "SyntheticFigures",
    "SyntheticScenes",
    "sample_skeleton",
    "write_custom_dataset",
    "write_custom_scenes",
]
