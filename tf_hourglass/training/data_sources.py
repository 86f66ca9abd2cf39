"""From a config's ``data`` section to training, validation and test sources.

One place decides what "the training data" is, for the command line, the
notebooks and the tests alike.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_hourglass.data import images, sources, tfrecord
from tf_hourglass.data.keypoint_specs import MPII
from tf_hourglass.data.pipeline import AugmentConfig, InMemorySource, check_tfrecord_images, readable_records
from tf_hourglass.data.records import KeypointSpec


@dataclasses.dataclass
class DataSources:
    spec: KeypointSpec
    train: object
    val: object
    test: object | None = None  # held-out data for the final score (synthetic only)
    num_train: int | None = None
    skipped_train_images: tuple[int, int] = (
        0,
        0,
    )  # (image files skipped when opened: missing, ..., of how many)


def augment_from_config(data_config) -> AugmentConfig:
    return AugmentConfig(
        rotation_degrees=data_config.rotation_degrees,
        rotation_probability=data_config.rotation_probability,
        scale_range=(data_config.scale_min, data_config.scale_max),
        flip_probability=data_config.flip_probability,
        color_scale_range=(data_config.color_scale_min, data_config.color_scale_max),
        center_jitter=data_config.center_jitter,
        jpeg_downscale=data_config.jpeg_downscale,
    )


def image_budget(data_config) -> images.ImageBudget:
    """``data.max_image_pixels`` and ``data.max_image_bytes`` (defaults for configs without them)."""
    return images.ImageBudget(
        max_pixels=data_config.get("max_image_pixels", images.DEFAULT_MAX_IMAGE_PIXELS),
        max_bytes=data_config.get("max_image_bytes", images.DEFAULT_MAX_IMAGE_BYTES),
    )


def synthetic_source(num_examples, start, data_config, desc):
    _, source = sources.open_source(
        sources.Source("synthetic"),
        synthetic_ranges=[(start, num_examples)],
        synthetic_image_size=(data_config.synthetic_image_size,) * 2,
        seed=data_config.seed,
        desc=desc,
    )
    return source


def load_sources(data_config) -> DataSources:
    """Builds the train/val(/test) sources named by ``config.data``."""
    fmt = data_config.format
    if fmt == "synthetic":
        n_train, n_val, n_test = data_config.num_train, data_config.num_val, data_config.num_test
        # Disjoint index ranges: train, then validation, then the held-out test set.
        return DataSources(
            spec=MPII,
            train=synthetic_source(n_train, 0, data_config, "synthetic train"),
            val=synthetic_source(n_val, n_train, data_config, "synthetic val"),
            test=synthetic_source(n_test, n_train + n_val, data_config, "synthetic test") if n_test else None,
            num_train=n_train,
        )
    if fmt == "tfrecord":
        # The spec sits beside the shards (PREFIX.spec.json), unless the config names it.
        spec_path = data_config.spec or tfrecord.spec_sidecar_path(
            tfrecord.prefix_of(data_config.train_annotations)
        )
        spec, train = sources.open_source(
            sources.Source("tfrecord", data_config.train_annotations), spec_path=spec_path
        )
        files = sorted(tf.io.gfile.glob(train))
        check_tfrecord_images(files, "image/encoded", f"data.train_annotations {train}")
        return DataSources(spec=spec, train=train, val=data_config.val_annotations)
    images_dir = data_config.images_dir or None
    train = sources.Source(fmt, data_config.train_annotations, images_dir)
    val = sources.Source(
        data_config.val_format or fmt, data_config.val_annotations, data_config.val_images_dir or images_dir
    )
    spec, train_source = sources.open_source(train)
    val_spec, val_source = sources.open_source(val)
    # Missing, damaged or oversized photos are found here, once, not by the training steps.
    budget = image_budget(data_config)
    train_records, skipped = readable_records(
        train_source.records, budget, f"data.train_annotations {data_config.train_annotations}"
    )
    val_records, _ = readable_records(
        val_source.records, budget, f"data.val_annotations {data_config.val_annotations}"
    )
    train_source, val_source = InMemorySource(train_records), InMemorySource(val_records)
    if val_spec.num_keypoints != spec.num_keypoints:
        raise ValueError(
            f"Validation data ({data_config.val_format or fmt}) has {val_spec.num_keypoints} keypoints but "
            f"training data ({fmt}) has {spec.num_keypoints}."
        )
    return DataSources(
        spec=spec,
        train=train_source,
        val=val_source,
        num_train=len(train_source),
        skipped_train_images=skipped,
    )
