"""From a config's ``data`` section to training, validation and test sources.

One place decides what "the training data" is, for the command line, the
notebooks and the tests alike. A config names each split with one string,
the spelling ``evaluate --data`` and ``export --calibration`` take
(``sources.parse_source``)::

    data.train = "mpii_h5:/data/mpii/annot/train.h5:/data/mpii/images"   # or "synthetic", "tfrecord:PATTERN"
    data.val = "mpii_h5:/data/mpii/annot/valid.h5:/data/mpii/images"
    data.test = ""                      # optional held-out set for the final score ("" = score on val)

The older spelling (``data.format`` with ``data.train_annotations``,
``data.val_annotations``, ``data.images_dir``, ``data.val_format``,
``data.val_images_dir``) still works and means the same; ``data_splits`` maps
either to :class:`DataSplits`, which the single- and multi-person loops open.
Synthetic splits take consecutive index ranges: ``[0, num_train)`` train,
the next ``num_val`` validate, the next ``num_test`` test.
"""

from __future__ import annotations

import dataclasses

from tf_hourglass.data import images, readers, sources, tfrecord
from tf_hourglass.data.pipeline import AugmentConfig, InMemorySource, check_tfrecord_images, readable_records
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.data.sources import Source

SPLITS = ("train", "val", "test")
# The older spelling's fields and their defaults (base_config).
OLD_FIELDS = {
    "format": "synthetic",
    "train_annotations": "",
    "val_annotations": "",
    "images_dir": "",
    "val_format": "",
    "val_images_dir": "",
}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Where each split comes from, in the one spelling; ``test`` is None without a held-out set."""

    train: Source
    val: Source
    test: Source | None = None

    def items(self):
        """(name, source) of each split there is: train, val, then test if given."""
        return [(name, getattr(self, name)) for name in SPLITS if getattr(self, name) is not None]


@dataclasses.dataclass
class DataSources:
    spec: KeypointSpec
    train: object
    val: object
    test: object | None = None  # held-out data for the final score
    # (training image files skipped when the data was opened, of how many)
    skipped_train_images: tuple[int, int] = (0, 0)


def _old_spelling(data) -> DataSplits:
    """The splits ``data.format`` and its annotation and image fields name."""

    def check(ok, field, expected):
        if not ok:
            raise ValueError(f"config.data.{field} must be {expected}. Received: {field}={data.get(field)!r}")

    fmt = data.get("format", "synthetic")
    check(fmt in sources.KINDS, "format", f"one of {sources.KINDS}")
    val_format = data.get("val_format", "")
    check(
        not val_format or (fmt in readers.FORMATS and val_format in readers.FORMATS),
        "val_format",
        f"empty or, with a reader data.format, one of {readers.FORMATS}",
    )
    if fmt == "synthetic":
        test = Source("synthetic") if data.get("num_test", 0) else None
        return DataSplits(Source("synthetic"), Source("synthetic"), test)
    for field in ("train_annotations", "val_annotations"):
        check(bool(data.get(field)), field, "a path (or file pattern for tfrecord)")
    if fmt == "tfrecord":
        return DataSplits(
            Source(fmt, data.get("train_annotations")), Source(fmt, data.get("val_annotations"))
        )
    images_dir = data.get("images_dir") or None
    return DataSplits(
        Source(fmt, data.get("train_annotations"), images_dir),
        Source(val_format or fmt, data.get("val_annotations"), data.get("val_images_dir") or images_dir),
    )


def _old_fields_of(data, split) -> list[tuple[str, str, str]]:
    """(old field, its value, the Source part it names) for the old fields of ``split`` that are set."""
    fmt = data.get("format", "synthetic")
    if split == "train":
        named = [("format", "kind"), ("train_annotations", "annotations"), ("images_dir", "images_dir")]
    elif split == "val":
        kind_field = "val_format" if data.get("val_format") else "format"
        images_field = "val_images_dir" if data.get("val_images_dir") else "images_dir"
        named = [(kind_field, "kind"), ("val_annotations", "annotations"), (images_field, "images_dir")]
    else:
        return []  # the old spelling has no test files
    return [
        (field, data.get(field), part)
        for field, part in named
        # "synthetic" is the default data.format: set or not, it names nothing else.
        if data.get(field) and not (field == "format" and fmt == "synthetic")
    ]


def data_splits(data) -> DataSplits:
    """The splits ``config.data`` names, in either spelling (the module docstring); the one mapping.

    ``data`` is a ConfigDict or a plain dict (a ``config.json`` read back).

    Raises:
        ValueError: one line naming the field: a malformed ``data.train``/``val``/``test``
            (with the form it takes), ``data.train`` or ``data.val`` missing when the other
            is given, or an old field set to something else than the new field says.
    """
    given = {split: data.get(split, "") for split in SPLITS}
    if not any(given.values()):
        return _old_spelling(data)
    named = {}
    for split, text in given.items():
        if not text:
            continue
        source = sources.parse_source(text, f"config.data.{split}")
        for field, value, part in _old_fields_of(data, split):
            new = getattr(source, part) or ""
            if part == "images_dir" and source.kind not in readers.FORMATS:
                continue  # the old spelling reads no images for synthetic or TFRecord data
            if value != new:
                raise ValueError(
                    f"config.data.{split}={text!r} and config.data.{field}={value!r} disagree: name the "
                    f"{SPLIT_NAMES[split]} data once, in config.data.{split} (or in the old fields alone)."
                )
        named[split] = source
    for split in ("train", "val"):
        if split not in named:
            other = next(iter(named))
            raise ValueError(
                f"config.data.{split} must be given with config.data.{other}, as {sources.FORMS}."
            )
    return DataSplits(named["train"], named["val"], named.get("test"))


def canonical_data_fields(config: dict) -> dict:
    """``config`` (config.json's dict) with its data named in the one spelling, so both spellings compare equal.

    The old fields are dropped and ``data.train``, ``data.val``, ``data.test``
    hold what they resolve to. A data section that does not resolve is left as it is.
    """
    data = config.get("data")
    if not isinstance(data, dict):
        return config
    try:
        splits = data_splits(data)
    except (ValueError, AttributeError, TypeError):
        return config
    canonical = {key: value for key, value in data.items() if key not in OLD_FIELDS}
    canonical.update(train=str(splits.train), val=str(splits.val), test=str(splits.test or ""))
    return {**config, "data": canonical}


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


def load_sources(data_config) -> DataSources:
    """Opens the train/val(/test) sources ``config.data`` names (``data_splits``) through ``sources.open_source``."""
    splits = data_splits(data_config)
    get = data_config.get  # base_config's fields; a config without synthetic splits may leave them out
    n_train, n_val = get("num_train", 0), get("num_val", 0)
    first = {"train": 0, "val": n_train, "test": n_train + n_val}
    count = {"train": n_train, "val": n_val, "test": get("num_test", 0)}
    opened = {}
    for split, source in splits.items():
        opened[split] = sources.open_source(
            source,
            synthetic_ranges=[(first[split], count[split])],
            synthetic_image_size=(get("synthetic_image_size", 256),) * 2,
            seed=get("seed", 0),
            spec_path=data_config.get("spec", ""),  # tfrecord: "" = PREFIX.spec.json beside the shards
            desc=f"synthetic {split}",
        )
    spec = opened["train"][0]
    for split, (split_spec, _) in opened.items():
        if split_spec.num_keypoints != spec.num_keypoints:
            raise ValueError(
                f"The {SPLIT_NAMES[split]} data ({getattr(splits, split)}) has {split_spec.num_keypoints} "
                f"keypoints but the training data ({splits.train}) has {spec.num_keypoints}."
            )
    # Missing, damaged or oversized photos are found here, once, not by the training steps.
    budget = image_budget(data_config)
    skipped = (0, 0)
    checked = {}
    for split, (_, source) in opened.items():
        what = f"data.{split} {getattr(splits, split)}"
        if isinstance(source, str):  # TFRecord file pattern: a shard must hold a decodable image
            if split == "train":
                check_tfrecord_images(tfrecord.matching_files(source), "image/encoded", what, budget)
            checked[split] = source
        elif getattr(splits, split).kind in readers.FORMATS:
            records, split_skipped = readable_records(source.records, budget, what)
            checked[split] = InMemorySource(records)
            if split == "train":
                skipped = split_skipped
        else:
            checked[split] = source
    return DataSources(
        spec=spec,
        train=checked["train"],
        val=checked["val"],
        test=checked.get("test"),
        skipped_train_images=skipped,
    )
