"""Inference speed, size and accuracy of the deployment exports, on this machine's CPU.

    .venv/bin/python benchmarks/export_speed.py [--model runs/mpii_hg2] [--preset hg2] \\
        [--batch_sizes 1,8] [--min_seconds 5] [--calibration synthetic]
    .venv/bin/python benchmarks/export_speed.py --preset hg_tiny --quick      # smoke test, ~2 minutes

For one model (a trained ``--model``, or ``--preset`` with random weights):
latency and throughput of the Keras model with XLA, the SavedModel (network
signature, and the whole ``serving_default`` on 640x480 photos), TFLite
float32 / float16 / int8 with XNNPACK on ``--threads`` threads (batch 1, as on
a phone) and ONNX Runtime; each file's size on disk; and PCK/PCKh of the int8
and QAT files against the float model on held-out data (``--calibration``,
as for ``python -m tf_hourglass.export``). Accuracy numbers mean something
only for a trained model. Nothing is checked or failed here: the export
command does that; this script measures. Results go in BENCHMARKS.md with the
command and the machine.
"""

from __future__ import annotations

import os
import tempfile

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import describe_machine, time_call  # noqa: E402

from tf_hourglass.data.codec import HeatmapCodec  # noqa: E402
from tf_hourglass.export import calibration, onnx, saved_model, tflite, verify  # noqa: E402
from tf_hourglass.model import StackedHourglass, as_stack_list, from_preset, keypoint_heatmaps  # noqa: E402
from tf_hourglass.model_loader import TFLiteRunner, load_keras_model, numpy_inference_model  # noqa: E402

_MODEL = flags.DEFINE_string(
    "model", None, "A trained .keras file or workdir (default: --preset, random weights)."
)
_PRESET = flags.DEFINE_string("preset", "hg2", "Preset to build when --model is not given.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes (TFLite always runs batch 1).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Time each measurement at least this long.")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for TFLite (XNNPACK) and ONNX Runtime.")
_CALIBRATION = flags.DEFINE_string(
    "calibration", "synthetic", "Calibration and held-out data (as the export command)."
)
_NUM_CALIBRATION = flags.DEFINE_integer("num_calibration", 200, "People to calibrate / fine-tune on.")
_NUM_HELDOUT = flags.DEFINE_integer("num_heldout", 200, "Held-out people for PCK.")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", 300, "QAT fine-tuning steps (0: skip QAT).")
_PEAK = flags.DEFINE_float("peak", 1.0, "Training target peak (scores only).")
_QUICK = flags.DEFINE_bool(
    "quick", False, "Smoke mode: short timings, 32 calibration / held-out people, 10 QAT steps."
)


def row(name, batch_size, seconds, size_bytes=None):
    size = verify.format_size(size_bytes) if size_bytes is not None else ""
    print(
        f"{name:34} {batch_size:>5} {seconds * 1e3:>10.2f} {batch_size / seconds:>8.1f} {size:>10}",
        flush=True,
    )


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # app.run's INFO level floods the table with SavedModel notes
    quick = _QUICK.value
    min_seconds = 0.2 if quick else _MIN_SECONDS.value
    num_calibration = 32 if quick else _NUM_CALIBRATION.value
    num_heldout = 32 if quick else _NUM_HELDOUT.value
    qat_steps = min(_QAT_STEPS.value, 10) if quick else _QAT_STEPS.value
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
    threads = _THREADS.value

    keras.utils.set_random_seed(0)  # the same random weights on every run
    model = load_keras_model(_MODEL.value) if _MODEL.value else from_preset(_PRESET.value)
    name = _MODEL.value or f"{_PRESET.value} (random weights: accuracy rows are meaningless)"
    height, width = saved_model.fixed_input_size(model)
    heatmap_shape = as_stack_list(model.outputs)[-1].shape
    codec = HeatmapCodec(input_size=(height, width), heatmap_size=heatmap_shape[1:3], peak=_PEAK.value)
    print(f"machine: {describe_machine()}")
    print(f"model: {name}, input {height}x{width}, {threads} threads for TFLite / ONNX Runtime\n")
    print(f"{'runtime':34} {'batch':>5} {'ms/batch':>10} {'img/s':>8} {'size':>10}")

    with tempfile.TemporaryDirectory(prefix="export_speed_") as work:
        measure(
            model, codec, work, batch_sizes, min_seconds, threads, num_calibration, num_heldout, qat_steps
        )


def measure(model, codec, work, batch_sizes, min_seconds, threads, num_calibration, num_heldout, qat_steps):
    height, width = codec.input_size
    keras_path = os.path.join(work, "model.keras")
    model.save(keras_path)
    keras_size = verify.size_on_disk(keras_path)

    xla = tf.function(lambda x: keypoint_heatmaps(model, x), jit_compile=True)
    for batch_size in batch_sizes:
        crops = tf.random.uniform((batch_size, height, width, 3))
        row("Keras, XLA", batch_size, time_call(lambda c=crops: xla(c).numpy(), min_seconds), keras_size)

    serving_dir = os.path.join(work, "saved_model")
    saved_model.export_saved_model(model, codec, serving_dir)
    loaded = tf.saved_model.load(serving_dir)
    serving_size = verify.size_on_disk(serving_dir)
    for batch_size in batch_sizes:
        crops = tf.random.uniform((batch_size, height, width, 3))
        row(
            "SavedModel heatmaps",
            batch_size,
            time_call(lambda c=crops: loaded.signatures["heatmaps"](images=c), min_seconds),
            serving_size,
        )
        photos = tf.cast(tf.random.uniform((batch_size, 480, 640, 3), maxval=256, dtype=tf.int32), tf.uint8)
        row(
            "SavedModel serving_default 640x480",
            batch_size,
            time_call(lambda p=photos: loaded.signatures["serving_default"](images=p), min_seconds),
        )

    data = calibration.load_calibration(
        _CALIBRATION.value,
        codec,
        int(as_stack_list(model.outputs)[-1].shape[-1]) - int(getattr(model, "background_channel", False)),
        num_calibration,
        num_heldout,
    )
    tflite_files = {}
    for quantize in ("none", "float16", "int8"):
        path = os.path.join(work, f"model_{quantize}.tflite")
        tflite.export_tflite(model, path, quantize, data.crops, log=lambda line: None)
        tflite_files[quantize] = path
    for quantize, path in tflite_files.items():
        runner = TFLiteRunner(path, num_threads=threads)
        crop = np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32)
        label = {"none": "float32", "float16": "float16", "int8": "int8"}[quantize]
        row(
            f"TFLite {label} (XNNPACK)",
            1,
            time_call(lambda r=runner, c=crop: r(c), min_seconds),
            verify.size_on_disk(path),
        )

    onnx_path = os.path.join(work, "model.onnx")
    onnx.export_onnx(model, onnx_path)
    onnx_runner = onnx.OnnxRunner(onnx_path, num_threads=threads)
    for batch_size in batch_sizes:
        crops = np.random.default_rng(0).random((batch_size, height, width, 3), dtype=np.float32)
        row(
            "ONNX Runtime (CPU)",
            batch_size,
            time_call(lambda c=crops: onnx_runner(c), min_seconds),
            verify.size_on_disk(onnx_path),
        )

    # Accuracy last: QAT imports tfmot, which rewires tf.keras for the process.
    print(
        f"\naccuracy on {data.num_heldout} held-out people of {data.name!r} (calibration: {len(data.crops)} people)"
    )
    exported = {"int8": tflite_files["int8"]}
    if qat_steps > 0 and isinstance(model, StackedHourglass):  # QAT rebuilds hourglasses only
        qat_path = os.path.join(work, "model_qat.tflite")
        qat_options = {"steps": qat_steps, "batch_size": 8, "learning_rate": 1e-5}
        tflite.export_tflite(model, qat_path, "qat", data.crops, qat_options, log=lambda line: None)
        exported["qat"] = qat_path
    for label, path in exported.items():
        runner = TFLiteRunner(path, num_threads=threads)
        comparison = verify.compare_accuracy(
            model,
            numpy_inference_model(
                runner, codec.input_size, codec.heatmap_size, data.spec.num_keypoints, label
            ),
            data.heldout,
            codec,
            data.spec,
        )
        print(
            f"{comparison.metric}: Keras float {comparison.keras:.2f}%, TFLite {label} {comparison.exported:.2f}% "
            f"(drop {comparison.drop:+.2f} points), {verify.format_size(verify.size_on_disk(path))}",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
