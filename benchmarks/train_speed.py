"""Training throughput (examples/s) of ``model.fit`` steps on this machine.

    .venv/bin/python benchmarks/train_speed.py [--preset hg2] [--batch_size 8] [--precisions float32]

Times full training steps (forward, loss on every stack, backward, optimizer
update) of a preset on fixed in-memory batches, so the input pipeline is not
measured (benchmarks/pipeline_speed.py does that), in graph mode and with XLA
(``jit_compile=True``), for each precision policy asked for.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_hourglass import HeatmapLoss, from_preset  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "hg2", "Model preset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Examples per step.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after 3 warm-up steps).")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32"], "Dtype policies: float32, mixed_bfloat16, ...")


def steps_per_second(preset, batch_size, jit_compile, precision, steps):
    keras.config.set_dtype_policy(precision)
    model = from_preset(preset)
    model.compile(optimizer=keras.optimizers.RMSprop(2.5e-4), loss=HeatmapLoss(), jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch_size, *model.image_shape)).astype("float32")
    heatmaps = rng.uniform(size=(batch_size, *model.heatmap_size, model.num_keypoints)).astype("float32")
    dataset = tf.data.Dataset.from_tensors((images, heatmaps)).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def main(argv):
    del argv
    print(f"machine: {os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"{'model':8} {'precision':15} {'mode':6} {'batch':>5} {'ms/step':>8} {'examples/s':>10}")
    for precision in _PRECISIONS.value:
        for mode, jit in (("graph", False), ("xla", True)):
            rate = steps_per_second(_PRESET.value, _BATCH_SIZE.value, jit, precision, _STEPS.value)
            print(
                f"{_PRESET.value:8} {precision:15} {mode:6} {_BATCH_SIZE.value:>5} {1e3 / rate:>8.0f} "
                f"{rate * _BATCH_SIZE.value:>10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
