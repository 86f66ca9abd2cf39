"""Our custom JSON format (docs/custom_format.md): its reader (per person or per image) and its writer."""

from __future__ import annotations

import json
import math
import os

import numpy as np

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.crop import center_scale_from_box
from tf_hourglass.data.formats.common import (
    DatasetError,
    center_scale_from_keypoints,
    field_array,
    join_image_path,
    load_json,
    make_record,
    require_field,
)
from tf_hourglass.data.records import KeypointSpec, MultiPersonRecord, PoseRecord

CUSTOM_FORMAT = "tf_hourglass.custom.v1"


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
    entries = require_field(data, path, "the file", "annotations")
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: 'annotations' must be a list, got {type(entries).__name__}.")

    records = []
    for i, entry in enumerate(entries):
        where = f"annotations[{i}]"
        image = require_field(entry, path, where, "image")
        raw = field_array(entry, path, where, "keypoints", (k, 3))
        keypoints, v = raw[:, :2], raw[:, 2]
        if not np.isin(v, (0, 1, 2)).all():
            raise DatasetError(f"{path}: {where} has visibility flags {v.tolist()}, expected 0/1/2.")
        has_gt = (v > 0) & np.isfinite(keypoints).all(axis=1)

        box = entry.get("box")
        if box is not None:
            box = field_array(entry, path, where, "box", (4,))
            center, scale = center_scale_from_box(box)
        else:
            center, scale = center_scale_from_keypoints(keypoints, has_gt)
        if "center" in entry:
            center = field_array(entry, path, where, "center", (2,))
        if "scale" in entry:
            scale = float(field_array(entry, path, where, "scale", ()))
        normalizer = entry.get("normalizer")
        records.append(
            make_record(
                image_path=join_image_path(images_dir, str(image)),
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
