"""Where examples come from, named one way: ``synthetic | tfrecord:PATTERN | FORMAT:ANNOTATIONS[:IMAGES]``.

The training config (``data.format`` with ``data.train_annotations`` and
``data.images_dir``), ``export --calibration`` and ``evaluate --model`` all
name their data with a :class:`Source`; this module parses the text form and
finds the keypoint spec of TFRecord shards. Annotation files themselves are
only ever opened by ``readers``.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_hourglass.data import readers, tfrecord
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
        annotations, _, images_dir = rest.partition(":")
        return Source(kind, annotations, images_dir or None)
    raise ValueError(f"{what} must be {FORMS} with FORMAT one of {list(readers.FORMATS)}. Received: {text!r}")


def tfrecord_spec(pattern: str, spec_path: str = "") -> KeypointSpec:
    """The keypoint spec of the shards ``pattern`` matches: ``spec_path``, else ``PREFIX.spec.json``."""
    if spec_path:
        return tfrecord.read_spec_sidecar(spec_path)
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    return tfrecord.read_spec_sidecar(tfrecord.prefix_of(files[0]))


def read_records(source: Source):
    """(spec, records) of a source in a reader format, through ``readers.read_dataset``."""
    if source.kind not in readers.FORMATS:
        raise ValueError(f"{source} is not in a reader format ({', '.join(readers.FORMATS)}).")
    return readers.read_dataset(source.kind, source.annotations, source.images_dir)
