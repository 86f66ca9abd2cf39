"""Where examples come from, named one way: ``synthetic | tfrecord:PATTERN | FORMAT:ANNOTATIONS[:IMAGES]``.

The training config (``data.train``, ``data.val``, ``data.test``, or its older
spelling ``data.format`` with ``data.train_annotations`` and ``data.images_dir``:
``training.data_sources.data_splits``), ``export --calibration`` and
``evaluate --data`` (or its older spelling ``--format/--annotations/--images``)
all name their data with a :class:`Source`; ``open_source`` is the one
function that opens any of them for the input pipeline. This module parses the text form and finds the
keypoint spec of TFRecord shards. Annotation files themselves are only ever
opened by ``readers``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from tf_hourglass.data import keypoint_specs, readers, tfrecord
from tf_hourglass.data.pipeline import InMemorySource
from tf_hourglass.data.records import KeypointSpec

KINDS = ("synthetic", "tfrecord", *readers.FORMATS)
FORMS = "'synthetic', 'tfrecord:PATTERN' or 'FORMAT:ANNOTATIONS[:IMAGES_DIR]'"


@dataclasses.dataclass(frozen=True)
class Source:
    """``kind`` is "synthetic", "tfrecord" or a reader format (``readers.FORMATS``)."""

    kind: str
    annotations: str | None = None  # the annotation file, or the TFRecord file pattern
    images_dir: str | None = None  # reader formats ("custom": default the JSON's folder)

    def __str__(self) -> str:
        return ":".join(part for part in (self.kind, self.annotations, self.images_dir) if part)


def parse_source(text: str, what: str = "data source") -> Source:
    """The :class:`Source` of its text form; a ValueError naming ``what`` and the text otherwise."""
    if text == "synthetic":
        return Source("synthetic")
    kind, _, rest = text.partition(":")
    if kind == "tfrecord" and rest:
        return Source("tfrecord", rest)
    if kind in readers.FORMATS and rest:
        # ANNOTATIONS ends at the first colon that does not start "://" (gs://, s3://, https:// paths).
        annotations, images_dir = (re.split(r":(?!//)", rest, maxsplit=1) + [""])[:2]
        if annotations:
            return Source(kind, annotations, images_dir or None)
    raise ValueError(f"{what} must be {FORMS} with FORMAT one of {list(readers.FORMATS)}. Received: {text!r}")


def tfrecord_spec(pattern: str, spec_path: str = "") -> KeypointSpec:
    """The keypoint spec of the shards ``pattern`` matches: ``spec_path``, else ``PREFIX.spec.json``."""
    if spec_path:
        return tfrecord.read_spec_sidecar(spec_path)
    return tfrecord.read_spec_sidecar(tfrecord.prefix_of(tfrecord.matching_files(pattern)[0]))


def read_records(source: Source):
    """(spec, records) of a source in a reader format, through ``readers.read_dataset``."""
    if source.kind not in readers.FORMATS:
        raise ValueError(f"{source} is not in a reader format ({', '.join(readers.FORMATS)}).")
    return readers.read_dataset(source.kind, source.annotations, source.images_dir)


def synthetic_people(
    ranges: Sequence[tuple[int, int]], image_size, seed: int = 0, desc: str | None = None
) -> tuple[KeypointSpec, InMemorySource]:
    """(spec, source) of the built-in synthetic figures ``start .. start + count - 1`` of each (start, count)."""
    from tf_hourglass.data.synthetic import SyntheticFigures  # drawing code, loaded only when used

    figures = SyntheticFigures(image_size=tuple(image_size), seed=seed)
    indices = [index for start, count in ranges for index in range(start, start + count)]
    images, records = [], []
    for index in tqdm(indices, desc=desc, unit="figure", leave=False, disable=desc is None):
        image, record = figures.generate(index)
        images.append(image)
        records.append(record)
    return keypoint_specs.MPII, InMemorySource(records, np.stack(images))  # the figures follow MPII


def open_source(
    source: Source,
    *,
    synthetic_ranges: Sequence[tuple[int, int]] = ((0, 0),),
    synthetic_image_size=(256, 256),
    seed: int = 0,
    spec_path: str = "",
    desc: str | None = None,
):
    """(keypoint spec, what ``pipeline.make_dataset`` takes) for any source; the one dispatch over kinds.

    Args:
        source: a :class:`Source` (``parse_source`` makes one from text).
        synthetic_ranges, synthetic_image_size, seed: which synthetic figures
            (``(start, count)`` index ranges), their size and seed.
        spec_path: a TFRecord source's spec file (default ``PREFIX.spec.json``).
        desc: a progress bar's label while synthetic figures are drawn (None: no bar).

    Raises:
        ValueError: an unknown kind, or annotations that hold no people.
        FileNotFoundError: no TFRecord file matches, or a missing annotation file.
    """
    if source.kind == "synthetic":
        return synthetic_people(synthetic_ranges, synthetic_image_size, seed, desc)
    if source.kind == "tfrecord":
        return tfrecord_spec(source.annotations, spec_path), source.annotations
    spec, records = read_records(source)
    if not records:
        raise ValueError(f"{source.annotations}: holds no people ({source.kind}).")
    return spec, InMemorySource(records)
