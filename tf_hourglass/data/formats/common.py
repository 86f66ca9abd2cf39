"""What the dataset readers share: the error they raise, safe file loading, field checks, record building.

Each dataset family has its module beside this one (``mpii``, ``flic``,
``lsp``, ``coco``, ``custom``); ``data/readers.py`` is the one interface
(``read_dataset``, ``FORMATS``).
"""

from __future__ import annotations

import io
import json
import os

import h5py
import numpy as np
import scipy.io
import tensorflow as tf

from tf_hourglass.data.crop import box_center, box_scale, keypoints_box
from tf_hourglass.data.records import PoseRecord


class DatasetError(ValueError):
    """An annotation file is malformed (message names the file and record/key)."""


def matlab_to_zero_based(xy: np.ndarray) -> np.ndarray:
    """MATLAB pixel coordinates (first pixel centre = 1) to 0-based ones."""
    return np.asarray(xy, np.float64) - 1.0


def center_scale_from_keypoints(keypoints, has_gt) -> tuple[np.ndarray, float]:
    """Crop centre and scale from the bounding box of the annotated joints (``crop.keypoints_box``).

    ``center`` = middle of that box, ``scale = max(w, h) * BOX_MARGIN / 200``; NaNs
    when no joint is annotated or the joints span zero pixels.
    """
    box = keypoints_box(keypoints, has_gt)
    if box is None:
        return np.full(2, np.nan), float("nan")
    x, y, w, h = box
    return np.array(box_center(x, y, w, h), np.float64), box_scale(max(w, h))


def make_record(
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


def require_field(entry, path: str, where: str, key: str):
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{path}: {where} has no field {key!r}.")
    return entry[key]


def float_array(value, path: str, where: str, shape: tuple) -> np.ndarray:
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


def field_array(entry, path: str, where: str, key: str, shape: tuple) -> np.ndarray:
    """The required field ``entry[key]`` as a float array of exactly ``shape``."""
    return float_array(require_field(entry, path, where, key), path, f"{where} {key!r}", shape)


def join_image_path(images_dir: str | None, name: str) -> str:
    if images_dir is None or os.path.isabs(name) or "://" in name:
        return name
    return os.path.join(images_dir, name)
