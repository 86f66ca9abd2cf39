"""Dataset readers: each annotation format in, ``(KeypointSpec, list[PoseRecord])`` out.

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
import io
import json
import math
import os

import h5py
import numpy as np
import scipy.io
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.crop import box_scale, center_scale_from_box
from tf_hourglass.data.records import KeypointSpec, MultiPersonRecord, PoseRecord

CUSTOM_FORMAT = "tf_hourglass.custom.v1"

FORMATS = ("mpii_h5", "mpii_json", "lsp", "lspet", "flic", "coco", "custom")


class DatasetError(ValueError):
    """An annotation file is malformed (message names the file and record/key)."""


# ---------------------------------------------------------------------------
# Shared helpers.


def matlab_to_zero_based(xy: np.ndarray) -> np.ndarray:
    """MATLAB pixel coordinates (first pixel centre = 1) to 0-based ones."""
    return np.asarray(xy, np.float64) - 1.0


def center_scale_from_keypoints(keypoints, has_gt) -> tuple[np.ndarray, float]:
    """Crop centre and scale from the bounding box of the annotated joints.

    ``center`` = middle of that box, ``scale = max(w, h) * BOX_MARGIN / 200``; NaNs
    when no joint is annotated or the joints span zero pixels.
    """
    keypoints = np.asarray(keypoints, np.float64)
    has_gt = np.asarray(has_gt, bool)
    if not has_gt.any():
        return np.full(2, np.nan), float("nan")
    lo = keypoints[has_gt].min(axis=0)
    hi = keypoints[has_gt].max(axis=0)
    side = float(max(hi - lo))
    scale = box_scale(side) if side > 0 else float("nan")
    return (lo + hi) / 2.0, scale


def _make_record(
    image_path, keypoints, has_gt, visible, center, scale, normalizer=float("nan"), box=None, record_id=-1
) -> PoseRecord:
    """Builds a PoseRecord enforcing the shared invariants.

    Joints with non-finite coordinates have no ground truth; rows without
    ground truth hold zeros; a joint without ground truth is never visible.
    """
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
    has_gt = np.asarray(has_gt, bool) & np.isfinite(keypoints).all(axis=1)
    visible = np.asarray(visible, bool) & has_gt
    keypoints = np.where(has_gt[:, None], keypoints, 0.0)
    return PoseRecord(
        image_path=image_path,
        center=center,
        scale=scale,
        keypoints=keypoints,
        has_gt=has_gt,
        visible=visible,
        normalizer=normalizer,
        box=box,
        record_id=record_id,
    )


def read_bytes(path: str, what: str = "annotation file") -> bytes:
    """The whole file (any ``tf.io.gfile`` path); FileNotFoundError names it as ``what``."""
    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{what[0].upper() + what[1:]} not found: {path!r}.")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def load_json(path: str, what: str = "annotation file"):
    """The file's JSON value; DatasetError naming the file for anything that is not JSON we can read."""
    try:
        return json.loads(read_bytes(path, what))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e}).") from e
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to read.") from None


def load_h5(path: str, what: str = "annotation file") -> dict[str, np.ndarray]:
    """All datasets of a flat HDF5 file as numpy arrays (read via gfile)."""
    data = read_bytes(path, what)
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            return {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e}).") from e


def load_mat(path: str, what: str = "annotation file") -> dict[str, np.ndarray]:
    """The variables of a MATLAB .mat file up to v7 (v7.3 is HDF5: save with -v7)."""
    data = read_bytes(path, what)
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except (ValueError, TypeError, OSError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise DatasetError(
            f"{path}: not a readable MATLAB .mat file ({e}); MATLAB v7.3 files need saving with -v7."
        ) from e


def require_array(data: dict, path: str, key: str, shape: tuple, numeric: bool = False) -> np.ndarray:
    """``data[key]`` as an array whose shape matches ``shape`` (None = any size); of numbers if ``numeric``."""
    if key not in data:
        present = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(f"{path}: missing key {key!r}; present keys: {present}.")
    array = np.asarray(data[key])
    if numeric and array.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: key {key!r} holds {array.dtype} values, not numbers.")
    if array.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, array.shape, strict=True)
    ):
        wanted = tuple("N" if s is None else s for s in shape)
        raise DatasetError(f"{path}: key {key!r} has shape {array.shape}, expected {wanted}.")
    return array


def _require_field(entry, path: str, where: str, key: str):
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{path}: {where} has no field {key!r}.")
    return entry[key]


def _float_array(value, path: str, where: str, shape: tuple) -> np.ndarray:
    """A JSON value as a float array of exactly ``shape``, else DatasetError."""
    if isinstance(value, str) or (isinstance(value, list) and any(isinstance(v, str) for v in value)):
        raise DatasetError(f"{path}: {where} is not numeric (a string, {value!r:.40}).")
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an integer like 10**400
        raise DatasetError(f"{path}: {where} is not numeric ({e}).") from e
    if array.shape != shape:
        raise DatasetError(f"{path}: {where} has shape {array.shape}, expected {shape}.")
    return array


def _field_array(entry, path: str, where: str, key: str, shape: tuple) -> np.ndarray:
    """The required field ``entry[key]`` as a float array of exactly ``shape``."""
    return _float_array(_require_field(entry, path, where, key), path, f"{where} {key!r}", shape)


def _join(images_dir: str | None, name: str) -> str:
    if images_dir is None or os.path.isabs(name) or "://" in name:
        return name
    return os.path.join(images_dir, name)


# ---------------------------------------------------------------------------
# MPII and FLIC (the original Stacked Hourglass HDF5 layout).


def _hourglass_has_gt(part: np.ndarray) -> np.ndarray:
    # (0, 0) is the file's "not annotated"; other values, even negative ones
    # (a joint just outside the frame), are ground truth.
    return ~np.all(part == 0, axis=-1)


def _read_hourglass_h5(
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

    has_gt = _hourglass_has_gt(part)
    keypoints = matlab_to_zero_based(part)
    center = matlab_to_zero_based(center)
    records = []
    for i in range(n):
        name = names[i].decode("utf-8") if isinstance(names[i], bytes) else str(names[i])
        records.append(
            _make_record(
                image_path=_join(images_dir, name),
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
    return _read_hourglass_h5(annotations, images_dir, keypoint_specs.MPII)


def read_flic(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads FLIC in the original Hourglass HDF5 layout (``flic/annot/*.h5``).

    Same layout and conventions as ``read_mpii_h5`` with 11 joints;
    ``normalizer`` holds the file's torso size (see the module docstring).
    """
    return _read_hourglass_h5(annotations, images_dir, keypoint_specs.FLIC)


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
        image = _require_field(entry, annotations, where, "image")
        joints = _field_array(entry, annotations, where, "joints", (k, 2))
        joints_vis = _field_array(entry, annotations, where, "joints_vis", (k,))
        center = _field_array(entry, annotations, where, "center", (2,))
        s = float(_field_array(entry, annotations, where, "scale", ()))
        has_gt = (joints_vis > 0) & ~np.all(joints == -1, axis=-1)
        keypoints = matlab_to_zero_based(joints)
        if center[0] == -1:
            center, scale = center_scale_from_keypoints(keypoints, has_gt)
        else:
            center = matlab_to_zero_based(center + np.array([0.0, 15.0 * s]))
            scale = 1.25 * s
        records.append(
            _make_record(
                image_path=_join(images_dir, str(image)),
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


# ---------------------------------------------------------------------------
# LSP and LSPET.


def _lsp_has_gt(xy: np.ndarray) -> np.ndarray:
    # Non-positive (or NaN) raw coordinates mark joints outside the image,
    # which LSPET leaves unannotated.
    return np.all(np.isfinite(xy) & (xy > 0), axis=-1)


def _lsp_records(joints: np.ndarray, flag_visible: int, images_dir: str, name_format: str):
    """Records from an (N, 14, 3) array of 1-based (x, y, flag)."""
    records = []
    for i in range(joints.shape[0]):
        xy, flag = joints[i, :, :2], joints[i, :, 2]
        has_gt = _lsp_has_gt(xy)
        keypoints = matlab_to_zero_based(xy)
        center, scale = center_scale_from_keypoints(keypoints, has_gt)
        records.append(
            _make_record(
                image_path=_join(images_dir, name_format % (i + 1)),
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


# ---------------------------------------------------------------------------
# COCO.


def read_coco(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads a COCO person_keypoints JSON for top-down training/evaluation.

    One record per annotation with ``num_keypoints > 0`` and not ``iscrowd``;
    ``record_id`` = annotation id; the box is kept and gives centre / scale
    (``center_scale_from_box``). Keypoint flag v: 0 = not annotated,
    1 = annotated but occluded, 2 = visible.
    """
    spec = keypoint_specs.COCO
    k = spec.num_keypoints
    data = load_json(annotations)
    if not isinstance(data, dict):
        raise DatasetError(f"{annotations}: expected a COCO JSON object, got {type(data)}.")
    images = _require_field(data, annotations, "the file", "images")
    anns = _require_field(data, annotations, "the file", "annotations")
    file_names = {}
    for i, image in enumerate(images):
        image_id = _require_field(image, annotations, f"images[{i}]", "id")
        file_names[image_id] = _require_field(image, annotations, f"images[{i}]", "file_name")

    records = []
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{annotations}: {where} is not an object: {ann!r:.80}.")
        if ann.get("iscrowd", 0):
            continue
        raw = _field_array(ann, annotations, where, "keypoints", (3 * k,)).reshape(k, 3)
        flags = raw[:, 2]
        num_keypoints = _float_array(
            ann.get("num_keypoints", np.count_nonzero(flags > 0)), annotations, f"{where} 'num_keypoints'", ()
        )
        if num_keypoints <= 0:
            continue
        image_id = _require_field(ann, annotations, where, "image_id")
        if image_id not in file_names:
            raise DatasetError(f"{annotations}: {where} refers to unknown image_id {image_id!r}.")
        box = _field_array(ann, annotations, where, "bbox", (4,))
        center, scale = center_scale_from_box(box)
        records.append(
            _make_record(
                image_path=_join(images_dir, str(file_names[image_id])),
                keypoints=raw[:, :2],
                has_gt=flags > 0,
                visible=flags == 2,
                center=center,
                scale=scale,
                box=box,
                record_id=int(_require_field(ann, annotations, where, "id")),
            )
        )
    return spec, records


def read_coco_images(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[MultiPersonRecord]]:
    """Reads a COCO person_keypoints JSON for bottom-up training: one record per image, all its people.

    Every image of the file gets a record (also one without people). Its
    ``keypoints`` are the annotations with ``num_keypoints > 0`` and not
    ``iscrowd``, in file order, with COCO's flags (0 / 1 / 2); crowds and
    people without keypoints go to ``ignore_segmentations`` (the loss mask,
    ``multi_person_targets.coco_loss_mask``). ``image_id`` is COCO's.
    """
    spec = keypoint_specs.COCO
    k = spec.num_keypoints
    data = load_json(annotations)
    if not isinstance(data, dict):
        raise DatasetError(f"{annotations}: expected a COCO JSON object, got {type(data)}.")
    images = _require_field(data, annotations, "the file", "images")
    anns = _require_field(data, annotations, "the file", "annotations")
    people, areas, ignored = {}, {}, {}
    for i, image in enumerate(images):
        image_id = _require_field(image, annotations, f"images[{i}]", "id")
        people[image_id], areas[image_id], ignored[image_id] = [], [], []
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{annotations}: {where} is not an object: {ann!r:.80}.")
        image_id = _require_field(ann, annotations, where, "image_id")
        if image_id not in people:
            raise DatasetError(f"{annotations}: {where} refers to unknown image_id {image_id!r}.")
        raw = _field_array(ann, annotations, where, "keypoints", (3 * k,)).reshape(k, 3)
        num_keypoints = int(ann.get("num_keypoints", np.count_nonzero(raw[:, 2] > 0)))
        if ann.get("iscrowd", 0) or num_keypoints <= 0:
            ignored[image_id].append(ann.get("segmentation") or [])
            continue
        people[image_id].append(np.where(raw[:, 2:] > 0, raw, 0.0))
        areas[image_id].append(float(ann.get("area", 0.0)))

    records = []
    for i, image in enumerate(images):
        where = f"images[{i}]"
        image_id = image["id"]
        size = (
            int(_require_field(image, annotations, where, "height")),
            int(_require_field(image, annotations, where, "width")),
        )
        records.append(
            MultiPersonRecord(
                image_path=_join(images_dir, str(_require_field(image, annotations, where, "file_name"))),
                image_size=size,
                keypoints=np.array(people[image_id], np.float32).reshape(-1, k, 3),
                ignore_segmentations=[s for s in ignored[image_id] if s],
                areas=np.array(areas[image_id], np.float32),
                image_id=int(image_id),
            )
        )
    return spec, records


# ---------------------------------------------------------------------------
# Our custom JSON format (docs/custom_format.md).


def read_custom(annotations: str, images_dir: str | None = None) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads a ``tf_hourglass.custom.v1`` JSON file (see docs/custom_format.md).

    Relative image paths are resolved against ``images_dir`` (default: the
    JSON file's folder). A missing centre / scale comes from ``box`` if given,
    else from the annotated keypoints' bounds.
    """
    path = annotations
    images_dir = os.path.dirname(path) if images_dir is None else images_dir
    data = load_json(path)
    if not isinstance(data, dict) or data.get("format") != CUSTOM_FORMAT:
        received = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path}: 'format' must be {CUSTOM_FORMAT!r}; received {received!r}.")
    try:
        spec = keypoint_specs.spec_from_dict({"name": "custom", **data})
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: invalid keypoint definition ({e}).") from e
    k = spec.num_keypoints
    entries = _require_field(data, path, "the file", "annotations")
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: 'annotations' must be a list, got {type(entries).__name__}.")

    records = []
    for i, entry in enumerate(entries):
        where = f"annotations[{i}]"
        image = _require_field(entry, path, where, "image")
        raw = _field_array(entry, path, where, "keypoints", (k, 3))
        keypoints, v = raw[:, :2], raw[:, 2]
        if not np.isin(v, (0, 1, 2)).all():
            raise DatasetError(f"{path}: {where} has visibility flags {v.tolist()}, expected 0/1/2.")
        has_gt = (v > 0) & np.isfinite(keypoints).all(axis=1)

        box = entry.get("box")
        if box is not None:
            box = _field_array(entry, path, where, "box", (4,))
            center, scale = center_scale_from_box(box)
        else:
            center, scale = center_scale_from_keypoints(keypoints, has_gt)
        if "center" in entry:
            center = _field_array(entry, path, where, "center", (2,))
        if "scale" in entry:
            scale = float(_field_array(entry, path, where, "scale", ()))
        normalizer = entry.get("normalizer")
        records.append(
            _make_record(
                image_path=_join(images_dir, str(image)),
                keypoints=keypoints,
                has_gt=has_gt,
                visible=v == 2,
                center=center,
                scale=scale,
                normalizer=float("nan") if normalizer is None else float(normalizer),
                box=box,
                record_id=int(entry.get("id", i)),
            )
        )
    return spec, records


def read_custom_images(
    annotations: str, images_dir: str | None = None
) -> tuple[KeypointSpec, list[MultiPersonRecord]]:
    """A ``tf_hourglass.custom.v1`` file as whole images: its annotations grouped by ``image``.

    Several annotations of one image are its people (in file order); image
    ids number the images in order of first appearance. The format has no
    image size or ignored regions: ``image_size`` is None (the pipeline reads
    it from the image) and nothing is masked.
    """
    spec, people = read_custom(annotations, images_dir)
    by_image: dict[str, list[PoseRecord]] = {}
    for person in people:
        by_image.setdefault(person.image_path, []).append(person)
    records = []
    for image_id, (path, persons) in enumerate(by_image.items()):
        keypoints = np.zeros((len(persons), spec.num_keypoints, 3), np.float32)
        for p, person in enumerate(persons):
            keypoints[p, :, :2] = np.where(person.has_gt[:, None], person.keypoints, 0.0)
            keypoints[p, :, 2] = np.where(person.has_gt, np.where(person.visible, 2, 1), 0)
        records.append(
            MultiPersonRecord(
                image_path=path,
                image_size=None,
                keypoints=keypoints,
                image_id=image_id,
            )
        )
    return spec, records


def write_custom(
    path: str, spec: KeypointSpec, records: list[PoseRecord], images_dir: str | None = None
) -> None:
    """Writes records as ``tf_hourglass.custom.v1`` JSON (temp file + rename).

    Image paths under ``images_dir`` (default: the JSON file's folder) are
    written relative to it, others as given. Centre and scale are always
    written, so ``read_custom`` gives the records back exactly.
    """
    images_dir = os.path.dirname(path) if images_dir is None else images_dir
    prefix = images_dir.rstrip("/") + "/" if images_dir else ""
    entries = []
    for r in records:
        image = r.image_path
        if prefix and image.startswith(prefix):
            image = image[len(prefix) :]
        flags = np.where(r.has_gt, np.where(r.visible, 2, 1), 0)
        entry = {
            "image": image,
            "keypoints": [
                [float(x), float(y), int(v)] for (x, y), v in zip(r.keypoints.tolist(), flags, strict=True)
            ],
            "center": [float(c) for c in r.center],
            "scale": r.scale,
            "id": int(r.record_id),
        }
        if r.box is not None:
            entry["box"] = [float(b) for b in r.box]
        if math.isfinite(r.normalizer):
            entry["normalizer"] = r.normalizer
        entries.append(entry)
    spec_dict = keypoint_specs.spec_to_dict(spec)
    data = {
        "format": CUSTOM_FORMAT,
        "keypoint_names": spec_dict["keypoint_names"],
        "flip_pairs": spec_dict["flip_pairs"],
        "skeleton": spec_dict["skeleton"],
        "pck_normalizer": spec_dict["pck_normalizer"],
    }
    if spec.torso_joints is not None:
        data["torso_joints"] = spec_dict["torso_joints"]
    data["annotations"] = entries
    atomic_files.write_text(path, json.dumps(data, indent=1) + "\n")


def make_output_folder(folder: str, output: str | None = None) -> str | None:
    """Creates ``folder``; returns the topmost folder this created (None when it existed).

    Raises:
        OSError: naming ``--output`` (``output``, default ``folder``) when the folder
            cannot be created (under a file, no permission).
    """
    top = None
    parent = folder
    while parent and parent != os.path.dirname(parent) and not tf.io.gfile.exists(parent):
        top, parent = parent, os.path.dirname(parent)
    if folder:
        try:
            tf.io.gfile.makedirs(folder)
        except tf.errors.OpError as e:
            raise OSError(f"--output {output or folder!r}: cannot write there ({e.message}).") from None
    return top


def remove_empty_folders(folder: str, created: str | None) -> None:
    """Undoes ``make_output_folder`` after a failed run: removes what it created, while empty."""
    if created is None:
        return
    while True:
        try:
            os.rmdir(folder)  # only ever removes an empty folder
        except OSError:
            return
        if folder == created:
            return
        folder = os.path.dirname(folder)


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
        return GroundTruth(path, spec, part.astype(np.float64), _hourglass_has_gt(part), head_size=head_size)
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
        return GroundTruth(path, keypoint_specs.LSP, xy, _lsp_has_gt(xy))
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
