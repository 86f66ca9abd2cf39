"""LSP and LSPET: ``joints.mat`` (LSP: (3, 14, N), flag 0 visible; LSPET: (14, 3, N), flag 1 visible)."""

from __future__ import annotations

import numpy as np

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.formats.common import (
    center_scale_from_keypoints,
    join_image_path,
    load_mat,
    make_record,
    matlab_to_zero_based,
    require_array,
)
from tf_hourglass.data.records import KeypointSpec, PoseRecord


def lsp_has_gt(xy: np.ndarray) -> np.ndarray:
    # Non-positive (or NaN) raw coordinates mark joints outside the image,
    # which LSPET leaves unannotated.
    return np.all(np.isfinite(xy) & (xy > 0), axis=-1)


def _lsp_records(joints: np.ndarray, flag_visible: int, images_dir: str, name_format: str):
    """Records from an (N, 14, 3) array of 1-based (x, y, flag)."""
    records = []
    for i in range(joints.shape[0]):
        xy, flag = joints[i, :, :2], joints[i, :, 2]
        has_gt = lsp_has_gt(xy)
        keypoints = matlab_to_zero_based(xy)
        center, scale = center_scale_from_keypoints(keypoints, has_gt)
        records.append(
            make_record(
                image_path=join_image_path(images_dir, name_format % (i + 1)),
                keypoints=keypoints,
                has_gt=has_gt,
                visible=flag == flag_visible,
                center=center,
                scale=scale,
                record_id=i,
            )
        )
    return records


def read_lsp(joints_mat: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads the original LSP ``joints.mat``: ``joints (3, 14, N)``, flag 0 = visible.

    Images are ``im0001.jpg`` ...; ``record_id`` = row index (image number - 1);
    centre / scale from the annotated joints' bounding box
    (``center_scale_from_keypoints``).
    """
    joints = require_array(load_mat(joints_mat), joints_mat, "joints", (3, 14, None))
    return keypoint_specs.LSP, _lsp_records(
        np.transpose(joints, (2, 1, 0)).astype(np.float64), 0, images_dir, "im%04d.jpg"
    )


def read_lspet(joints_mat: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads LSPET ``joints.mat``: ``joints (14, 3, N)``, flag 1 = visible.

    Images are ``im00001.jpg`` ...; otherwise as ``read_lsp``.
    """
    joints = require_array(load_mat(joints_mat), joints_mat, "joints", (14, 3, None))
    return keypoint_specs.LSP, _lsp_records(
        np.transpose(joints, (2, 0, 1)).astype(np.float64), 1, images_dir, "im%05d.jpg"
    )
