"""COCO person_keypoints: one record per annotated person (top-down), or per image with all its people."""

from __future__ import annotations

import numpy as np

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.crop import center_scale_from_box
from tf_hourglass.data.formats.common import (
    DatasetError,
    field_array,
    float_array,
    join_image_path,
    load_json,
    make_record,
    require_field,
)
from tf_hourglass.data.records import KeypointSpec, MultiPersonRecord, PoseRecord


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
    images = require_field(data, annotations, "the file", "images")
    anns = require_field(data, annotations, "the file", "annotations")
    file_names = {}
    for i, image in enumerate(images):
        image_id = require_field(image, annotations, f"images[{i}]", "id")
        file_names[image_id] = require_field(image, annotations, f"images[{i}]", "file_name")

    records = []
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{annotations}: {where} is not an object: {ann!r:.80}.")
        if ann.get("iscrowd", 0):
            continue
        raw = field_array(ann, annotations, where, "keypoints", (3 * k,)).reshape(k, 3)
        flags = raw[:, 2]
        num_keypoints = float_array(
            ann.get("num_keypoints", np.count_nonzero(flags > 0)), annotations, f"{where} 'num_keypoints'", ()
        )
        if num_keypoints <= 0:
            continue
        image_id = require_field(ann, annotations, where, "image_id")
        if image_id not in file_names:
            raise DatasetError(f"{annotations}: {where} refers to unknown image_id {image_id!r}.")
        box = field_array(ann, annotations, where, "bbox", (4,))
        center, scale = center_scale_from_box(box)
        records.append(
            make_record(
                image_path=join_image_path(images_dir, str(file_names[image_id])),
                keypoints=raw[:, :2],
                has_gt=flags > 0,
                visible=flags == 2,
                center=center,
                scale=scale,
                box=box,
                record_id=int(require_field(ann, annotations, where, "id")),
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
    images = require_field(data, annotations, "the file", "images")
    anns = require_field(data, annotations, "the file", "annotations")
    people, areas, ignored = {}, {}, {}
    for i, image in enumerate(images):
        image_id = require_field(image, annotations, f"images[{i}]", "id")
        people[image_id], areas[image_id], ignored[image_id] = [], [], []
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{annotations}: {where} is not an object: {ann!r:.80}.")
        image_id = require_field(ann, annotations, where, "image_id")
        if image_id not in people:
            raise DatasetError(f"{annotations}: {where} refers to unknown image_id {image_id!r}.")
        raw = field_array(ann, annotations, where, "keypoints", (3 * k,)).reshape(k, 3)
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
            int(require_field(image, annotations, where, "height")),
            int(require_field(image, annotations, where, "width")),
        )
        records.append(
            MultiPersonRecord(
                image_path=join_image_path(
                    images_dir, str(require_field(image, annotations, where, "file_name"))
                ),
                image_size=size,
                keypoints=np.array(people[image_id], np.float32).reshape(-1, k, 3),
                ignore_segmentations=[s for s in ignored[image_id] if s],
                areas=np.array(areas[image_id], np.float32),
                image_id=int(image_id),
            )
        )
    return spec, records
