"""Writing synthetic figures or scenes to disk as a ``tf_hourglass.custom.v1`` dataset."""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from tf_hourglass.data import readers
from tf_hourglass.data.keypoint_specs import COCO, MPII
from tf_hourglass.data.records import PoseRecord
from tf_hourglass.data.synthetic.dataset import SyntheticFigures
from tf_hourglass.data.synthetic.scenes import SyntheticScenes

ANNOTATIONS_FILENAME = "annotations.json"
IMAGES_DIRNAME = "images"
# Quality 95 without chroma subsampling: thin saturated limbs and stripes
# would otherwise bleed colour (mean error 2-3 instead of up to 11 levels).
_JPEG_PARAMS = [
    cv2.IMWRITE_JPEG_QUALITY, 95,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
]  # fmt: skip


def write_custom_dataset(
    output_dir: str,
    num_examples: int,
    seed: int = 0,
    image_size: int | tuple[int, int] = 256,
    start: int = 0,
    **figure_options,
) -> str:
    """Writes examples ``start .. start + num_examples - 1`` as a custom.v1 dataset.

    Layout: ``output_dir/images/00000000.jpg`` (JPEG quality 95, 4:4:4,
    named by index) and ``output_dir/annotations.json``, written by
    ``readers.write_custom`` (temporary file, then rename: a reader never sees half a file).

    Args:
        output_dir: folder to create or fill.
        num_examples: how many examples.
        seed, image_size, **figure_options: passed to ``SyntheticFigures``.
        start: index of the first example (split datasets by index range).

    Returns:
        The path of the annotation file.
    """
    from tqdm import tqdm

    if num_examples < 0 or start < 0:
        raise ValueError(f"num_examples and start must be >= 0; received {num_examples!r}, {start!r}.")
    figures = SyntheticFigures(image_size=image_size, seed=seed, **figure_options)
    os.makedirs(os.path.join(output_dir, IMAGES_DIRNAME), exist_ok=True)
    records = []
    for index in tqdm(range(start, start + num_examples), desc="synthetic figures", unit="image"):
        image, record = figures.generate(index)
        path = _write_jpeg(output_dir, index, image)
        records.append(dataclasses.replace(record, image_path=path))
    annotations_path = os.path.join(output_dir, ANNOTATIONS_FILENAME)
    readers.write_custom(annotations_path, MPII, records)
    return annotations_path


def write_custom_scenes(
    output_dir: str,
    num_images: int,
    seed: int = 0,
    image_size: int | tuple[int, int] = 256,
    start: int = 0,
    **scene_options,
) -> str:
    """Writes scenes ``start .. start + num_images - 1`` as a custom.v1 dataset with COCO's keypoints.

    The layout of ``write_custom_dataset``; each person is one annotation, so
    ``readers.read_custom_images`` (and ``convert --multi-person --format
    custom``) gives the images back with all their people. Annotation ids are
    ``index * 100 + person``. Ignore masks (figures hidden entirely) are not
    written: the custom format has no ignored regions.

    Args:
        output_dir: folder to create or fill.
        num_images: how many scenes.
        seed, image_size, **scene_options: passed to ``SyntheticScenes``.
        start: index of the first scene.

    Returns:
        The path of the annotation file.
    """
    from tqdm import tqdm

    if num_images < 0 or start < 0:
        raise ValueError(f"num_images and start must be >= 0; received {num_images!r}, {start!r}.")
    scenes = SyntheticScenes(image_size=image_size, seed=seed, **scene_options)
    os.makedirs(os.path.join(output_dir, IMAGES_DIRNAME), exist_ok=True)
    records = []
    for index in tqdm(range(start, start + num_images), desc="synthetic scenes", unit="image"):
        scene = scenes.render(index)
        path = _write_jpeg(output_dir, index, scene.image)
        for p, (person, projected) in enumerate(zip(scene.keypoints, scene.projected_keypoints, strict=True)):
            has_gt = person[:, 2] > 0
            # The crop around the whole figure, also its hidden joints (one labelled joint has no extent).
            center, scale = readers.center_scale_from_keypoints(projected, np.ones(len(projected), bool))
            records.append(
                PoseRecord(
                    image_path=path,
                    center=center,
                    scale=scale,
                    keypoints=person[:, :2],
                    has_gt=has_gt,
                    visible=person[:, 2] == 2,
                    record_id=index * 100 + p,
                )
            )
    annotations_path = os.path.join(output_dir, ANNOTATIONS_FILENAME)
    readers.write_custom(annotations_path, COCO, records)
    return annotations_path


def _write_jpeg(output_dir: str, index: int, image: np.ndarray) -> str:
    path = os.path.join(output_dir, IMAGES_DIRNAME, f"{index:08d}.jpg")
    if not cv2.imwrite(path, image[:, :, ::-1], _JPEG_PARAMS):
        raise OSError(f"Could not write {path}.")
    return path
