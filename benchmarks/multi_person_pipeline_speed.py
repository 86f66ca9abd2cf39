"""Bottom-up (Associative Embedding) input pipeline throughput (images/s) on this machine.

    .venv/bin/python benchmarks/multi_person_pipeline_speed.py [--data_dir ../shared/data] [--seconds 10]

Measures, at 256x256 inputs with 17-joint targets at 64x64 (heatmaps, loss
mask, keypoint references), batch 32, augmentation on (``MULTI_PERSON_AUGMENT``):

* scene generation: ``SyntheticScenes`` renders per second (one process);
* synthetic scenes in memory: ``MultiPersonSource.from_scenes``;
* synthetic scenes as whole-image TFRecords (``--scenes`` custom dataset
  converted with ``convert --multi-person``: 256x256 JPEGs);
* the COCO sample (4 photos of ~640x420, crowd/no-keypoint masks) as
  whole-image TFRecords, repeated.
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_hourglass.data import convert  # noqa: E402
from tf_hourglass.data.keypoint_specs import COCO  # noqa: E402
from tf_hourglass.data.multi_person_pipeline import MultiPersonSource, make_multi_person_dataset  # noqa: E402
from tf_hourglass.data.synthetic import SyntheticScenes, write_custom_scenes  # noqa: E402

_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"), "The shared data."
)
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Time each measurement this long.")
_NUM_SCENES = flags.DEFINE_integer("num_scenes", 300, "Synthetic scenes to render.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.")


def images_per_second(dataset, batch_size, seconds):
    iterator = iter(dataset)
    for _ in range(5):  # warm up: tracing, XLA compilation, autotuning, file caches
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += batch_size
    return count / (time.perf_counter() - start)


def measure(name, source):
    dataset = make_multi_person_dataset(source, COCO, batch_size=_BATCH_SIZE.value, training=True, seed=0)
    rate = images_per_second(dataset, _BATCH_SIZE.value, _SECONDS.value)
    print(f"{name:44} {rate:8.0f} images/s", flush=True)


def main(argv):
    del argv
    data_dir = os.path.abspath(_DATA_DIR.value)
    print(f"machine: {os.cpu_count()} cores")
    scenes = SyntheticScenes(image_size=256, seed=0)
    start = time.perf_counter()
    source = MultiPersonSource.from_scenes(scenes, _NUM_SCENES.value)
    rate = _NUM_SCENES.value / (time.perf_counter() - start)
    print(f"{'scene generation (256x256, 1-8 people)':44} {rate:8.0f} scenes/s", flush=True)
    measure("synthetic scenes in memory", source)
    with tempfile.TemporaryDirectory() as tmp:
        annotations = write_custom_scenes(f"{tmp}/scenes", _NUM_SCENES.value, seed=0, image_size=256)
        convert.convert_multi_person_dataset(
            "custom", annotations, None, f"{tmp}/scenes_tfr", 4, progress=False
        )
        measure("synthetic scenes (whole-image TFRecord)", f"{tmp}/scenes_tfr-*.tfrecord")
        coco = os.path.join(data_dir, "coco")
        convert.convert_multi_person_dataset(
            "coco",
            os.path.join(coco, "person_keypoints_sample.json"),
            os.path.join(coco, "images"),
            f"{tmp}/coco",
            progress=False,
        )
        measure("COCO sample photos (whole-image TFRecord)", f"{tmp}/coco-*.tfrecord")


if __name__ == "__main__":
    app.run(main)
