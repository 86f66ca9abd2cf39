"""The TFRecord schema of one person example, its sidecar spec and shard names.

Whole images with all their people (bottom-up training) have their own
schema, at the end of this module.

One ``tf.train.Example`` per PoseRecord. The stored image may be a crop of the
original photo: keypoints, centre and box always stay in ORIGINAL image
coordinates, and ``image/crop_offset`` is where the stored image's pixel
(0, 0) sits in the original, so

    stored_xy = original_xy - crop_offset      (input pipeline)
    original_xy = stored_xy + crop_offset      (evaluation, mapping back)

Features (K = number of keypoints):

    image/encoded           bytes        JPEG or PNG bytes, 8-bit RGB
    image/height            int64        stored image height
    image/width             int64        stored image width
    image/original_height   int64        height of the original photo
    image/original_width    int64        width of the original photo
    image/crop_offset       float (2)    (x0, y0); (0, 0) for a full image
    image/path              bytes        the original photo's path
    num_keypoints           int64        K
    center                  float (2)    crop centre (x, y)
    scale                   float        crop side / 200 px
    keypoints               float (2K)   x0, y0, x1, y1, ...; zeros without gt
    has_gt                  int64 (K)    1 = joint annotated
    visible                 int64 (K)    1 = visible (dataset's flag)
    normalizer              float        PCKh head size, or NaN
    box                     float (4)    person box (x, y, w, h); zeros if none
    has_box                 int64        1 = box present
    record_id               int64        row index / annotation id

Next to the shards ``PREFIX-00000-of-0000N.tfrecord`` the converter writes
``PREFIX.spec.json``: the KeypointSpec (``keypoint_specs.spec_to_dict``) plus
``format``, ``num_examples``, ``shards`` and how the images were stored.
"""

from __future__ import annotations

import json
import re

import numpy as np
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.records import KeypointSpec, MultiPersonRecord, PoseRecord

SPEC_SIDECAR_FORMAT = "tf_hourglass.spec.v1"


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values).tolist()))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(values).astype(np.int64).tolist()))


def serialize_example(
    image_bytes: bytes,
    record: PoseRecord,
    *,
    height: int,
    width: int,
    crop_offset=(0.0, 0.0),
    original_height: int | None = None,
    original_width: int | None = None,
) -> bytes:
    """One person as a serialized ``tf.train.Example``.

    Args:
        image_bytes: encoded JPEG or PNG (8-bit RGB) of the stored image.
        record: the person, in original image coordinates.
        height, width: size of the stored image.
        crop_offset: (x0, y0) of the stored image in the original photo.
        original_height, original_width: size of the original photo
            (default: the stored size, i.e. a full image).
    """
    k = record.num_keypoints
    has_box = record.box is not None
    feature = {
        "image/encoded": _bytes(image_bytes),
        "image/height": _ints(height),
        "image/width": _ints(width),
        "image/original_height": _ints(height if original_height is None else original_height),
        "image/original_width": _ints(width if original_width is None else original_width),
        "image/crop_offset": _floats(np.asarray(crop_offset, np.float32).reshape(2)),
        "image/path": _bytes(record.image_path.encode("utf-8")),
        "num_keypoints": _ints(k),
        "center": _floats(record.center),
        "scale": _floats(record.scale),
        "keypoints": _floats(record.keypoints),
        "has_gt": _ints(record.has_gt),
        "visible": _ints(record.visible),
        "normalizer": _floats(record.normalizer),
        "box": _floats(record.box if has_box else np.zeros(4, np.float32)),
        "has_box": _ints(has_box),
        "record_id": _ints(record.record_id),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def _feature_spec(num_keypoints: int | None) -> dict:
    """Parsing spec; per-joint features are VarLen when K is not given."""

    def per_joint(size, dtype):
        if num_keypoints is None:
            return tf.io.VarLenFeature(dtype)
        return tf.io.FixedLenFeature([size * num_keypoints], dtype)

    scalar_int = tf.io.FixedLenFeature([], tf.int64)
    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/height": scalar_int,
        "image/width": scalar_int,
        "image/original_height": scalar_int,
        "image/original_width": scalar_int,
        "image/crop_offset": tf.io.FixedLenFeature([2], tf.float32),
        "image/path": tf.io.FixedLenFeature([], tf.string),
        "num_keypoints": scalar_int,
        "center": tf.io.FixedLenFeature([2], tf.float32),
        "scale": tf.io.FixedLenFeature([], tf.float32),
        "keypoints": per_joint(2, tf.float32),
        "has_gt": per_joint(1, tf.int64),
        "visible": per_joint(1, tf.int64),
        "normalizer": tf.io.FixedLenFeature([], tf.float32),
        "box": tf.io.FixedLenFeature([4], tf.float32),
        "has_box": scalar_int,
        "record_id": scalar_int,
    }


def parse_example(serialized: tf.Tensor, num_keypoints: int | None = None) -> dict:
    """Parses one serialized example into a dict of tensors (pure TF, tf.data-safe).

    Keys are the feature names above; ``keypoints`` comes back as (K, 2)
    float32, ``has_gt`` / ``visible`` / ``has_box`` as bool, other ints as
    int64. The image stays encoded (``images.decode_image`` decodes it). Pass
    ``num_keypoints`` to get static shapes for the per-joint features.
    """
    parsed = tf.io.parse_single_example(serialized, _feature_spec(num_keypoints))
    for key in ("keypoints", "has_gt", "visible"):
        if isinstance(parsed[key], tf.SparseTensor):
            parsed[key] = tf.sparse.to_dense(parsed[key])
    parsed["keypoints"] = tf.reshape(parsed["keypoints"], [-1, 2])
    parsed["has_gt"] = tf.cast(parsed["has_gt"], tf.bool)
    parsed["visible"] = tf.cast(parsed["visible"], tf.bool)
    parsed["has_box"] = tf.cast(parsed["has_box"], tf.bool)
    return parsed


def example_to_record(parsed: dict) -> PoseRecord:
    """A PoseRecord from an eagerly parsed example (original image coordinates)."""
    values = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in parsed.items()}
    return PoseRecord(
        image_path=values["image/path"].decode("utf-8"),
        center=values["center"],
        scale=float(values["scale"]),
        keypoints=values["keypoints"],
        has_gt=values["has_gt"],
        visible=values["visible"],
        normalizer=float(values["normalizer"]),
        box=values["box"] if bool(values["has_box"]) else None,
        record_id=int(values["record_id"]),
    )


# ---------------------------------------------------------------------------
# Shard names and the sidecar spec.


def shard_path(prefix: str, index: int, num_shards: int) -> str:
    """``PREFIX-00000-of-00004.tfrecord``."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


SHARD_NAME_PATTERN = r"-\d{5}-of-\d{5}\.tfrecord"  # what follows PREFIX in a shard's name


def files_of_prefix(prefix: str, name_pattern: str) -> list[str]:
    """The existing files ``PREFIX + x`` where ``x`` matches the regex ``name_pattern``, sorted.

    PREFIX is taken literally, not as a glob: an output ``data/exp[1]/train``
    must never match ``data/exp1/train-...``.
    """
    stem = prefix.rsplit("/", 1)[-1]
    folder = prefix[: len(prefix) - len(stem)]  # with its trailing slash, or empty
    try:
        names = tf.io.gfile.listdir(folder or ".")
    except tf.errors.NotFoundError:
        return []
    matcher = re.compile(re.escape(stem) + name_pattern)
    return sorted(folder + name for name in names if matcher.fullmatch(name))


def list_shards(prefix: str) -> list[str]:
    """The existing shards of ``prefix`` (taken literally), sorted."""
    return files_of_prefix(prefix, SHARD_NAME_PATTERN)


def matching_files(patterns) -> list[str]:
    """The sorted files one pattern (a str) or several match; FileNotFoundError naming them if none."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(
            f"No TFRecord files match {patterns if len(patterns) > 1 else patterns[0]!r}."
        )
    return files


def prefix_of(pattern: str) -> str:
    """The PREFIX of a shard file or pattern; dashes inside PREFIX are kept.

    'out/lspet-train-*-of-*.tfrecord', 'out/lspet-train-00000-of-00004.tfrecord',
    'out/lspet-train-?????-of-?????.tfrecord', 'out/lspet-train-*.tfrecord' and
    'out/lspet-train*' -> 'out/lspet-train'.
    """
    stem = re.sub(r"-(\d{5}|\?{5}|\*)-of-(\d{5}|\?{5}|\*)\.tfrecord$", "", pattern)
    if stem != pattern:
        return stem
    return pattern.removesuffix(".tfrecord").rstrip("*").removesuffix("-")


def spec_sidecar_path(prefix: str) -> str:
    return f"{prefix}.spec.json"


def write_spec_sidecar(prefix: str, spec: KeypointSpec, **extra) -> str:
    """Writes ``PREFIX.spec.json`` (spec plus JSON-ready ``extra``); returns its path."""
    path = spec_sidecar_path(prefix)
    data = {"format": SPEC_SIDECAR_FORMAT, **keypoint_specs.spec_to_dict(spec), **extra}
    atomic_files.write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def read_spec_sidecar(prefix_or_path: str) -> KeypointSpec:
    """Reads the KeypointSpec from ``PREFIX.spec.json`` (give the prefix or the path)."""
    from tf_hourglass.data.readers import load_json  # readers is heavier; only this needs it

    path = prefix_or_path
    if not path.endswith(".spec.json"):
        path = spec_sidecar_path(path)
    data = load_json(path, "spec sidecar")
    try:
        return keypoint_specs.spec_from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # any JSON value may come here
        raise ValueError(f"{path}: not a keypoint spec ({type(e).__name__}: {e}).") from None


# ---------------------------------------------------------------------------
# Whole images with all their people (bottom-up training).
#
# One ``tf.train.Example`` per MultiPersonRecord; the photo is stored whole,
# keypoints in its pixels (P people, K keypoints):
#
#     image/encoded       bytes         JPEG or PNG bytes, 8-bit RGB
#     image/height        int64         image height
#     image/width         int64         image width
#     image/path          bytes         the original photo's path
#     image/id            int64         image id (COCO's)
#     num_keypoints       int64         K
#     num_people          int64         P (may be 0)
#     keypoints           float (3PK)   x, y, v per joint per person; v COCO's 0 / 1 / 2
#     areas               float (P)     segment areas (OKS)
#     mask/encoded        bytes         PNG loss mask (255 keep, 0 ignore); empty: nothing ignored


def serialize_image_example(
    image_bytes: bytes, record: MultiPersonRecord, *, height: int, width: int, mask_png: bytes = b""
) -> bytes:
    """One whole image (a ``MultiPersonRecord``) as a serialized ``tf.train.Example``."""
    feature = {
        "image/encoded": _bytes(image_bytes),
        "image/height": _ints(height),
        "image/width": _ints(width),
        "image/path": _bytes(record.image_path.encode("utf-8")),
        "image/id": _ints(record.image_id),
        "num_keypoints": _ints(record.keypoints.shape[1]),
        "num_people": _ints(record.num_people),
        "keypoints": _floats(record.keypoints),
        "areas": _floats(record.areas),
        "mask/encoded": _bytes(mask_png),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_image_example(serialized: tf.Tensor, num_keypoints: int) -> dict:
    """Parses a whole-image example (pure TF); ``keypoints`` come back as (P, K, 3) float32."""
    scalar_int = tf.io.FixedLenFeature([], tf.int64)
    parsed = tf.io.parse_single_example(
        serialized,
        {
            "image/encoded": tf.io.FixedLenFeature([], tf.string),
            "image/height": scalar_int,
            "image/width": scalar_int,
            "image/path": tf.io.FixedLenFeature([], tf.string),
            "image/id": scalar_int,
            "num_keypoints": scalar_int,
            "num_people": scalar_int,
            "keypoints": tf.io.VarLenFeature(tf.float32),
            "areas": tf.io.VarLenFeature(tf.float32),
            "mask/encoded": tf.io.FixedLenFeature([], tf.string),
        },
    )
    parsed["keypoints"] = tf.reshape(tf.sparse.to_dense(parsed["keypoints"]), [-1, num_keypoints, 3])
    parsed["areas"] = tf.sparse.to_dense(parsed["areas"])
    return parsed
