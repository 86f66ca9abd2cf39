"""Input pipeline throughput (examples/s) on this machine.

    .venv/bin/python benchmarks/pipeline_speed.py [--data_dir ../shared/data] [--seconds 20]

Two sources, each converted to TFRecords first (not timed), then read through
``make_dataset`` at 256x256 crops with 16-joint heatmaps (64x64), batch 32,
with and without augmentation, as training reads them (the header check of
every image against the image budget, skipped examples counted):

* person crops: the LSPET sample (400 real photos) converted with the default
  crop margin, i.e. what training reads after ``tf_hourglass.data.convert``;
* full 1280x720 photos: synthetic figures drawn at 1280x720 and stored whole
  (``--full-image``), so every example decodes from a large JPEG (only the
  window the warp needs).

Goals on 2 cores: >= 400 augmented examples/s from crops, >= 280 from full
720p photos.
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_hourglass.data import convert, tfrecord  # noqa: E402
from tf_hourglass.data.codec import HeatmapCodec  # noqa: E402
from tf_hourglass.data.keypoint_specs import MPII  # noqa: E402
from tf_hourglass.data.pipeline import AugmentConfig, SkippedExamples, make_dataset  # noqa: E402
from tf_hourglass.data.synthetic import write_custom_dataset  # noqa: E402

_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"), "The shared data."
)
_SECONDS = flags.DEFINE_float("seconds", 20.0, "Time each measurement this long.")
_NUM_PHOTOS = flags.DEFINE_integer("num_photos", 300, "Synthetic 1280x720 photos to convert.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.")


def examples_per_second(dataset, batch_size, seconds):
    iterator = iter(dataset)
    for _ in range(5):  # warm up: tracing, autotuning, file caches
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += batch_size
    return count / (time.perf_counter() - start)


# Shuffled, repeated crops with no random transform: the cost of decode + warp + targets alone.
NO_AUGMENTATION = AugmentConfig(
    rotation_degrees=0.0, scale_range=(1.0, 1.0), flip_probability=0.0, color_scale_range=(1.0, 1.0)
)


def measure(name, pattern, spec, seconds, batch_size):
    codec = HeatmapCodec(input_size=(256, 256), heatmap_size=(64, 64), sigma=1.0)
    for label, augment in (("augmented", AugmentConfig()), ("no augment", NO_AUGMENTATION)):
        dataset = make_dataset(
            pattern,
            spec,
            codec,
            batch_size=batch_size,
            training=True,
            augment=augment,
            seed=0,
            skipped=SkippedExamples(),  # as training reads: images over the budget and failed decodes counted
        )
        rate = examples_per_second(dataset, batch_size, seconds)
        print(f"{name:34} {label:11} {rate:8.0f} examples/s", flush=True)


def main(argv):
    del argv
    data_dir = os.path.abspath(_DATA_DIR.value)
    print(f"machine: {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        lspet = os.path.join(data_dir, "lspet")
        summary = convert.convert_dataset(
            "lspet",
            os.path.join(lspet, "joints.mat"),
            os.path.join(lspet, "images"),
            f"{tmp}/lspet",
            num_shards=4,
            progress=False,
        )
        print(f"LSPET crops: {summary.written} examples")
        lsp_spec = tfrecord.read_spec_sidecar(summary.spec_path)
        measure(
            "LSPET person crops (TFRecord)",
            f"{tmp}/lspet-*.tfrecord",
            lsp_spec,
            _SECONDS.value,
            _BATCH_SIZE.value,
        )

        photos = write_custom_dataset(f"{tmp}/photos", _NUM_PHOTOS.value, seed=0, image_size=(720, 1280))
        summary = convert.convert_dataset(
            "custom", photos, None, f"{tmp}/photos_tfr", num_shards=4, full_image=True, progress=False
        )
        print(f"synthetic 1280x720 photos: {summary.written} examples")
        measure(
            "1280x720 full photos (TFRecord)",
            f"{tmp}/photos_tfr-*.tfrecord",
            MPII,
            _SECONDS.value,
            _BATCH_SIZE.value,
        )


if __name__ == "__main__":
    app.run(main)
