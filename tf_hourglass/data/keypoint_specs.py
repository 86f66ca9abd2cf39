"""Keypoint specs of the supported datasets, a lookup by name, and their JSON form.

Flip pairs are written (left, right); skeletons list limbs as (a, b) joint
indices. The dict form (``spec_to_dict`` / ``spec_from_dict``) is what the converter
writes next to its TFRecords as ``PREFIX.spec.json`` (see ``tfrecord.py``), so
the input pipeline knows joint names and flip pairs without knowing the dataset.
"""

from __future__ import annotations

from tf_hourglass.data.records import KeypointSpec

MPII = KeypointSpec(
    name="mpii",
    keypoint_names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
    ),
    flip_pairs=((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (7, 13),
        (13, 14),
        (14, 15),
    ),  # fmt: skip
    pck_normalizer="head",
    # The official MPII protocol leaves pelvis and thorax out of "Total".
    excluded_from_total=(6, 7),
)

# LSP and LSPET share this joint order. PCK@0.2 normalises by the torso size,
# taken as the distance from the right shoulder to the left hip.
LSP = KeypointSpec(
    name="lsp",
    keypoint_names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "neck",
        "head_top",
    ),
    flip_pairs=((5, 0), (4, 1), (3, 2), (11, 6), (10, 7), (9, 8)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 5),
        (2, 8),
        (3, 9),
        (6, 7),
        (7, 8),
        (8, 12),
        (12, 9),
        (9, 10),
        (10, 11),
        (12, 13),
    ),  # fmt: skip
    pck_normalizer="torso",
    # The official LSP kit (getDistPCK.m): joint 10 - joint 3, i.e. l_shoulder - r_hip.
    torso_joints=(9, 2),
)

# FLIC's upper-body joints (the HDF5 calls them l_sho, l_elb, l_wri, ...).
# Torso = left shoulder to right hip, the definition of Toshev et al. (DeepPose).
# Note: the `normalize` stored in flic/annot/*.h5 is NOT this distance; for 95%
# of the rows it equals right shoulder to left hip (see readers.read_flic).
FLIC = KeypointSpec(
    name="flic",
    keypoint_names=(
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
        "l_hip",
        "r_hip",
        "l_eye",
        "r_eye",
        "nose",
    ),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 7), (8, 9)),
    skeleton=(
        (0, 1),
        (1, 2),
        (3, 4),
        (4, 5),
        (0, 3),
        (0, 6),
        (3, 7),
        (6, 7),
        (8, 10),
        (9, 10),
    ),  # fmt: skip
    pck_normalizer="torso",
    # r_sho - l_hip: the file's own `normalize` is this distance for 968 of
    # its 1,016 validation rows (l_sho - r_hip for the rest).
    torso_joints=(3, 6),
)

# COCO is scored with OKS, not PCK; "head" with a NaN normaliser is a placeholder.
COCO = KeypointSpec(
    name="coco",
    keypoint_names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own skeleton, converted from 1-based to 0-based indices.
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),  # fmt: skip
    pck_normalizer="head",
)

# LSPET uses LSP's joints, so "lspet" is an alias.
_SPECS = {"mpii": MPII, "lsp": LSP, "lspet": LSP, "flic": FLIC, "coco": COCO}


def get_spec(name: str) -> KeypointSpec:
    """Returns the KeypointSpec of a known dataset (case-insensitive name)."""
    spec = _SPECS.get(str(name).lower())
    if spec is None:
        raise ValueError(f"Unknown keypoint spec {name!r}; known names: {sorted(_SPECS)}.")
    return spec


def spec_to_dict(spec: KeypointSpec) -> dict:
    """The JSON-ready form of a spec (lists instead of tuples)."""
    return {
        "name": spec.name,
        "keypoint_names": list(spec.keypoint_names),
        "flip_pairs": [list(p) for p in spec.flip_pairs],
        "skeleton": [list(p) for p in spec.skeleton],
        "pck_normalizer": spec.pck_normalizer,
        "torso_joints": list(spec.torso_joints) if spec.torso_joints is not None else None,
        "excluded_from_total": list(spec.excluded_from_total),
    }


def spec_from_dict(data: dict) -> KeypointSpec:
    """Inverse of ``spec_to_dict``; extra keys are ignored.

    Raises:
        ValueError: a required key is missing or the spec is inconsistent.
    """
    if "keypoint_names" not in data:
        raise ValueError(f"Spec dict has no 'keypoint_names'; received keys {sorted(data)}.")
    torso = data.get("torso_joints")
    return KeypointSpec(
        name=str(data.get("name", "custom")),
        keypoint_names=tuple(str(n) for n in data["keypoint_names"]),
        flip_pairs=tuple(tuple(p) for p in data.get("flip_pairs", ())),
        skeleton=tuple(tuple(p) for p in data.get("skeleton", ())),
        pck_normalizer=str(data.get("pck_normalizer", "head")),
        torso_joints=tuple(int(i) for i in torso) if torso is not None else None,
        excluded_from_total=tuple(data.get("excluded_from_total", ())),
    )
