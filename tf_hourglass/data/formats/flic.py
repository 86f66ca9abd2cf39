"""FLIC: the original Stacked Hourglass HDF5 layout with FLIC's 11 joints (read as MPII's HDF5)."""

from __future__ import annotations

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.formats.mpii import read_hourglass_h5
from tf_hourglass.data.records import KeypointSpec, PoseRecord


def read_flic(annotations: str, images_dir: str) -> tuple[KeypointSpec, list[PoseRecord]]:
    """Reads FLIC in the original Hourglass HDF5 layout (``flic/annot/*.h5``).

    Same layout and conventions as ``read_mpii_h5`` with 11 joints;
    ``normalizer`` holds the file's torso size (see the module docstring).
    """
    return read_hourglass_h5(annotations, images_dir, keypoint_specs.FLIC)
