"""MPII: the original Stacked Hourglass HDF5 layout (``annot/valid.h5``) and mmpose's JSON.

Conventions: see ``data/readers.py``.
"""

from __future__ import annotations

import numpy as np

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.formats.common import (
    DatasetError,
    center_scale_from_keypoints,
    field_array,
    join_image_path,
    load_h5,
    load_json,
    make_record,
    matlab_to_zero_based,
    require_array,
    require_field,
)
from tf_hourglass.data.records import KeypointSpec, PoseRecord


def hourglass_has_gt(part: np.ndarray) -> np.ndarray:
    # (0, 0) is the file's "not annotated"; other values, even negative ones
    # (a joint just outside the frame), are ground truth.
    return ~np.all(part == 0, axis=-1)


def read_hourglass_h5(
    path: str, images_dir: str, spec: KeypointSpec
) -> tuple[KeypointSpec, list[PoseRecord]]:
    data = load_h5(path)
    k = spec.num_keypoints
    names = require_array(data, path, "imgname", (None,))
    n = names.shape[0]
    part = require_array(data, path, "part", (n, k, 2), numeric=True).astype(np.float64)
    visible = require_array(data, path, "visible", (n, k), numeric=True)
    center = require_array(data, path, "center", (n, 2), numeric=True).astype(np.float64)
    scale = require_array(data, path, "scale", (n,), numeric=True).astype(np.float64)
    normalize = require_array(data, path, "normalize", (n,), numeric=True).astype(np.float64)

    has_gt = hourglass_has_gt(part)
    keypoints = matlab_to_zero_based(part)
    center = matlab_to_zero_based(center)
    records = []
    for i in range(n):
        name = names[i].decode("utf-8") if isinstance(names[i], bytes) else str(names[i])
        records.append(
            make_record(
                image_path=join_image_path(images_dir, name),
                keypoints=keypoints[i],
                has_gt=has_gt[i],
                visible=visible[i] > 0,
                center=center[i],
                scale=scale[i],
                normalizer=normalize[i],
                record_id=i,
            )
        )
    return spec, records


def read_mpii_h5(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads MPII in the original Hourglass HDF5 layout (e.g. ``annot/valid.h5``).

    One record per row, ``record_id`` = row index; ``normalizer`` = the file's
    ``normalize`` (0.6 x head-box diagonal); ``scale`` as stored (1.25 x s).
    """
    return read_hourglass_h5(annotations, images_dir, keypoint_specs.MPII)


def read_mpii_json(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads MPII in the mmpose / HRNet JSON layout.

    Entries ``{image, center, scale, joints[16][2], joints_vis[16]}``, 1-based
    coordinates, missing joints (-1, -1). The centre is moved down by 15 s and
    the scale multiplied by 1.25 as the original code (and the HDF5) does,
    unless the centre is (-1, -1), in which case it comes from the joints.
    """
    spec = keypoint_specs.MPII
    k = spec.num_keypoints
    entries = load_json(annotations)
    if not isinstance(entries, list):
        raise DatasetError(f"{annotations}: expected a JSON list of persons, got {type(entries)}.")
    records = []
    for i, entry in enumerate(entries):
        where = f"record {i}"
        image = require_field(entry, annotations, where, "image")
        joints = field_array(entry, annotations, where, "joints", (k, 2))
        joints_vis = field_array(entry, annotations, where, "joints_vis", (k,))
        center = field_array(entry, annotations, where, "center", (2,))
        s = float(field_array(entry, annotations, where, "scale", ()))
        has_gt = (joints_vis > 0) & ~np.all(joints == -1, axis=-1)
        keypoints = matlab_to_zero_based(joints)
        if center[0] == -1:
            center, scale = center_scale_from_keypoints(keypoints, has_gt)
        else:
            center = matlab_to_zero_based(center + np.array([0.0, 15.0 * s]))
            scale = 1.25 * s
        records.append(
            make_record(
                image_path=join_image_path(images_dir, str(image)),
                keypoints=keypoints,
                has_gt=has_gt,
                # joints_vis is the annotated flag; the JSON has no occlusion flag.
                visible=has_gt,
                center=center,
                scale=scale,
                record_id=i,
            )
        )
    return spec, records
