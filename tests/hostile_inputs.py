"""Shared by the hostile-input tests: a small PNG claiming a huge size, TFRecord shards holding given images."""

import os
import struct
import zlib

import tensorflow as tf

from tf_hourglass.data import readers, tfrecord
from tf_hourglass.data.synthetic import write_custom_dataset


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def black_png(width: int, height: int) -> bytes:
    """A valid 8-bit RGB PNG of ``width`` x ``height`` black pixels: 10000 x 10000 is about 290 KB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_pose_shards(prefix, num_good: int, planted: dict[int, bytes], image_size: int = 128) -> str:
    """One single-person TFRecord shard: ``num_good`` synthetic figures (JPEG), with ``planted`` images
    inserted at their positions (each labelled as a figure); returns its file pattern."""
    figures = write_custom_dataset(f"{prefix}_src", max(num_good, 1), seed=3, image_size=image_size)
    spec, records = readers.read_dataset("custom", figures, None)
    examples = [(open(r.image_path, "rb").read(), r) for r in records[:num_good]]
    for position, data in sorted(planted.items()):
        examples.insert(position, (data, records[max(min(position, num_good) - 1, 0)]))
    path = tfrecord.shard_path(str(prefix), 0, 1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for data, record in examples:
            writer.write(tfrecord.serialize_example(data, record, height=image_size, width=image_size))
    tfrecord.write_spec_sidecar(
        str(prefix), spec, num_examples=len(examples), shards=[os.path.basename(path)]
    )
    return f"{prefix}-*-of-*.tfrecord"
