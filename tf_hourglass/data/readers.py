"""Dataset readers: each annotation format in, ``(KeypointSpec, list[PoseRecord])`` out; the one interface.

Each dataset family is one module of ``data/formats/`` (``mpii``, ``flic``,
``lsp``, ``coco``, ``custom``, and ``common`` for what they share); this module
names the formats (``FORMATS``), dispatches to them (``read_dataset``,
``read_multi_person_dataset``) and reads the official evaluation kits' ground
truth (``read_ground_truth``).

Every reader converts its dataset's conventions to the ones of ``records.py``
(0-based pixels, ``200 * scale`` crops, ``has_gt`` / ``visible``) right here, so
nothing downstream needs to know where a record came from.

Coordinate conventions found in the data (see the tests for the checks):

* MPII HDF5 (``annot/valid.h5``, Tompson / original Hourglass): ``part`` and
  ``center`` are 1-based MATLAB pixels; a joint is unannotated exactly when it
  is stored as (0, 0). This matches the official kit's ``jnt_missing`` for all
  2,958 persons; 32 annotated joints have a *negative* coordinate (e.g. a head
  top above the frame), and they are kept as ground truth. ``visible`` is the
  occlusion flag. ``scale`` is already 1.25 x MPII's s.
* MPII JSON (mmpose / HRNet): ``joints`` hold the same 1-based numbers as the
  HDF5 ``part`` except that the HDF5 truncated the non-integer head joints
  (upper neck, head top) to integers (floor), so the two readers agree within
  1 px. ``center`` / ``scale`` are MPII's raw objpos / s; the HDF5 values are
  ``center_y + 15 s`` and ``1.25 s``, and this reader applies the same shift.
  ``joints_vis`` is the *annotated* flag, not occlusion (row 2 of the sample:
  wrist and elbow have joints_vis 1 but HDF5 visible 0), so ``visible`` equals
  ``has_gt`` here and the JSON has no head-size normaliser (NaN).
* LSP / LSPET ``joints.mat``: annotated in MATLAB, taken as 1-based like MPII
  (coordinates are sub-pixel floats, so the data cannot prove it; the effect
  is one pixel). In LSPET every flag-0 joint has a non-positive coordinate,
  i.e. flag 0 there means "outside the image / not annotated".
* FLIC HDF5: the original Hourglass layout with 1-based coordinates (same
  code path as MPII). Its ``normalize`` is a torso size, stored as the
  record's ``normalizer``: for 968 of the 1,016 valid rows it is the distance
  right shoulder - left hip, for the other 48 left shoulder - right hip.
* COCO: integer 0-based pixel indices, used as-is (as mmpose / HRNet and the
  OKS evaluation do).

``read_ground_truth`` reads the same files for the official evaluation kits,
keeping their raw coordinates (``evaluate --predictions``). Malformed files
raise ``DatasetError`` naming the file and the record or key.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.formats.coco import read_coco, read_coco_images
from tf_hourglass.data.formats.common import (
    DatasetError,
    center_scale_from_keypoints,
    load_h5,
    load_json,
    load_mat,
    require_array,
)
from tf_hourglass.data.formats.custom import CUSTOM_FORMAT, read_custom, read_custom_images, write_custom
from tf_hourglass.data.formats.flic import read_flic
from tf_hourglass.data.formats.lsp import lsp_has_gt, read_lsp, read_lspet
from tf_hourglass.data.formats.mpii import hourglass_has_gt, read_mpii_h5, read_mpii_json
from tf_hourglass.data.records import KeypointSpec, MultiPersonRecord, PoseRecord

FORMATS = ("mpii_h5", "mpii_json", "lsp", "lspet", "flic", "coco", "custom")

# The readers' names, for code that reads one format directly (readers.read_coco, ...).
__all__ = [
    "CUSTOM_FORMAT",
    "FORMATS",
    "MULTI_PERSON_FORMATS",
    "DatasetError",
    "GroundTruth",
    "center_scale_from_keypoints",
    "load_json",
    "read_coco",
    "read_coco_images",
    "read_custom",
    "read_custom_images",
    "read_dataset",
    "read_flic",
    "read_ground_truth",
    "read_lsp",
    "read_lspet",
    "read_mpii_h5",
    "read_mpii_json",
    "read_multi_person_dataset",
    "write_custom",
]


# ---------------------------------------------------------------------------
# Ground truth as the official evaluation kits read it: raw file coordinates.


@dataclasses.dataclass
class GroundTruth:
    """Annotated keypoints of N persons in the file's own coordinates (MPII's are 1-based).

    The official MPII kit compares predictions with these raw numbers, so
    ``evaluate --predictions`` does too; records (0-based) are for everything else.
    """

    path: str
    spec: KeypointSpec
    keypoints: np.ndarray  # (N, K, 2)
    has_gt: np.ndarray  # (N, K) bool
    head_size: np.ndarray | None = None  # (N,): valid.h5's normalize
    head_boxes: np.ndarray | None = None  # (N, 2, 2) [[x1, y1], [x2, y2]]: gt_valid.mat's headboxes_src

    @property
    def num_persons(self) -> int:
        return self.keypoints.shape[0]


def read_ground_truth(path: str) -> GroundTruth:
    """Reads an MPII/FLIC ``.h5``, the MPII kit's ``gt_valid.mat`` or an LSP/LSPET ``joints.mat``.

    Keypoints stay in the file's coordinates; ``has_gt`` follows the same rules
    as the record readers (and, for ``gt_valid.mat``, its ``jnt_missing``).
    """
    what = "ground-truth file"
    extension = os.path.splitext(path)[1].lower()
    if extension in (".h5", ".hdf5"):
        data = load_h5(path, what)
        part = require_array(data, path, "part", (None, None, 2))
        specs = {spec.num_keypoints: spec for spec in (keypoint_specs.MPII, keypoint_specs.FLIC)}
        if part.shape[1] not in specs:
            raise DatasetError(
                f"{path}: key 'part' has shape {part.shape}, expected (N, 16, 2) for MPII or (N, 11, 2) for FLIC."
            )
        spec = specs[part.shape[1]]
        head_size = None
        if spec is keypoint_specs.MPII:
            head_size = require_array(data, path, "normalize", (part.shape[0],)).astype(np.float64)
        return GroundTruth(path, spec, part.astype(np.float64), hourglass_has_gt(part), head_size=head_size)
    if extension == ".mat":
        data = load_mat(path, what)
        if "pos_gt_src" in data:  # the official MPII kit's gt_valid.mat
            gt = require_array(data, path, "pos_gt_src", (16, 2, None))
            n = gt.shape[2]
            missing = require_array(data, path, "jnt_missing", (16, n))
            boxes = require_array(data, path, "headboxes_src", (2, 2, n))
            return GroundTruth(
                path,
                keypoint_specs.MPII,
                np.transpose(gt, (2, 0, 1)).astype(np.float64),
                missing.T == 0,
                head_boxes=np.transpose(boxes, (2, 0, 1)).astype(np.float64),
            )
        joints = require_array(data, path, "joints", (None, None, None))
        if joints.shape[:2] == (3, 14):  # LSP
            joints = np.transpose(joints, (2, 1, 0))
        elif joints.shape[:2] == (14, 3):  # LSPET
            joints = np.transpose(joints, (2, 0, 1))
        else:
            raise DatasetError(
                f"{path}: key 'joints' has shape {joints.shape}, expected (3, 14, N) (LSP) or (14, 3, N) (LSPET)."
            )
        xy = joints[..., :2].astype(np.float64)
        return GroundTruth(path, keypoint_specs.LSP, xy, lsp_has_gt(xy))
    raise DatasetError(
        f"{path}: unsupported ground-truth file; expected .h5 (MPII valid.h5 / FLIC layout), .mat (MPII "
        "gt_valid.mat, LSP/LSPET joints.mat) or .json (COCO person_keypoints)."
    )


# ---------------------------------------------------------------------------
# Dispatch.

_READERS = {
    "mpii_h5": read_mpii_h5,
    "mpii_json": read_mpii_json,
    "lsp": read_lsp,
    "lspet": read_lspet,
    "flic": read_flic,
    "coco": read_coco,
    "custom": read_custom,
}


# Formats that can be read as whole images with all their people (bottom-up training).
MULTI_PERSON_FORMATS = ("coco", "custom")


def read_multi_person_dataset(
    format: str, annotations: str, images_dir: str | None = None
) -> tuple[KeypointSpec, list[MultiPersonRecord]]:
    """Reads ``annotations`` as whole images (``read_coco_images`` or ``read_custom_images``)."""
    if format == "coco":
        if images_dir is None:
            raise ValueError("Format 'coco' needs images_dir; received None.")
        return read_coco_images(annotations, images_dir)
    if format == "custom":
        return read_custom_images(annotations, images_dir)
    raise ValueError(
        f"Format {format!r} cannot be read as whole images; formats with several people per image: "
        f"{list(MULTI_PERSON_FORMATS)}."
    )


def read_dataset(
    format: str, annotations: str, images_dir: str | None = None
) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads ``annotations`` with the reader named by ``format`` (one of FORMATS).

    ``images_dir`` is required except for ``custom`` (default: the JSON's folder).
    """
    reader = _READERS.get(format)
    if reader is None:
        raise ValueError(f"Unknown dataset format {format!r}; valid formats: {list(FORMATS)}.")
    if format == "custom":
        return reader(annotations, images_dir)
    if images_dir is None:
        raise ValueError(f"Format {format!r} needs images_dir; received None.")
    return reader(annotations, images_dir)
