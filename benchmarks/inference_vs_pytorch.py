"""CPU inference of ours against the official PyTorch PoseNet, side by side in one run.

    .venv/bin/python benchmarks/inference_vs_pytorch.py --presets hg2,hg8 --batch_sizes 1,8 \
        --pytorch_python /path/to/venv-with-torch/bin/python

One call = the network's forward pass on a fixed batch in memory. Ours is
what the prediction path runs (``model_loader.keras_inference_model``: the
folded inference graph in a ``tf.function``, the last stack's heatmaps out),
in float32 and in the precision "auto" picks on this machine (bfloat16 on
CPUs with bfloat16 instructions); beside them, with ``--tflite``, an int8
TFLite file (post-training quantised, XNNPACK, one
image per call as ``TFLiteRunner`` runs it). PyTorch is
``benchmarks/pytorch_posenet.py`` in eval mode under ``torch.inference_mode``,
eager, in a child process of its own with its malloc tuned
(``pytorch_process.py``). Both use the same number of threads. Calls are
interleaved (one of each in turn, with a pause before each so that one
framework's spinning threads do not slow the other); the figures are medians
after warm-up calls, in ms per image, with GFLOP/s (2 x multiply-adds per
second), the fraction of this run's float32 matmul rate, and the speed as a
multiple of PyTorch's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from pytorch_process import PyTorchSteps  # noqa: E402
from timing import describe_machine, matmul_flops_per_second  # noqa: E402

from tf_hourglass.model import HOURGLASS_PRESETS, from_preset  # noqa: E402
from tf_hourglass.model.complexity import count_multiply_adds  # noqa: E402
from tf_hourglass.model_loader import keras_inference_model  # noqa: E402
from tf_hourglass.precision import resolve_inference_precision  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["hg2", "hg8"], "Hourglass presets.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Images per call.")
_THREADS = flags.DEFINE_integer("threads", 2, "Threads for each framework.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls first.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls; the median is reported.")
_PYTORCH_PYTHON = flags.DEFINE_string(
    "pytorch_python", sys.executable, "Python interpreter with torch installed, for the PyTorch process."
)
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
    "keep_freed_memory", True, "Tune the PyTorch process's malloc (see train_step_vs_pytorch.py)."
)
_PASSIVE_THREADS = flags.DEFINE_bool(
    "passive_threads",
    True,
    "Run PyTorch with OMP_WAIT_POLICY=PASSIVE (see pytorch_process.py): on a machine shared with other "
    "jobs its spinning OpenMP threads otherwise stall (15x slower on our busy 2-core VM).",
)
_TFLITE = flags.DEFINE_bool("tflite", True, "Also time an int8 TFLite file of each preset.")


def keras_call(model, batch_size, precision):
    """One forward pass of what the prediction path runs in ``precision``, waiting for its heatmaps."""
    inference = keras_inference_model(model, precision=precision)
    # Through a lambda: tf.function(inference) itself ran the InferenceModel eagerly (no trace, 350 ms for 75).
    forward = tf.function(lambda images: inference(images))
    images = tf.random.uniform((batch_size, *model.image_shape), seed=0)
    return lambda: forward(images).numpy()


def int8_tflite_runner(model):
    """An int8 TFLite file of ``model`` (calibrated on random crops: for speed only), ready to run."""
    from tf_hourglass.export import tflite
    from tf_hourglass.model_loader import TFLiteRunner

    crops = np.random.default_rng(0).uniform(size=(8, *model.image_shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        tflite.export_tflite(model, path, "int8", crops, log=lambda line: None)
        return TFLiteRunner(path, num_threads=_THREADS.value)


def tflite_call(runner, model, batch_size):
    """``batch_size`` one-image calls of a TFLite file, as ``TFLiteRunner`` makes them."""
    images = np.random.default_rng(1).uniform(size=(batch_size, *model.image_shape)).astype(np.float32)
    return lambda: runner(images)


def timed(call):
    def run():
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    return run


def race(model, preset, batch_size, auto_precision, float32_rate, torch_available, runner):
    calls = {"ours, float32": timed(keras_call(model, batch_size, "float32"))}
    if auto_precision != "float32":
        calls[f"ours, auto ({auto_precision})"] = timed(keras_call(model, batch_size, auto_precision))
    if runner is not None:
        calls["ours, TFLite int8 (XNNPACK)"] = timed(tflite_call(runner, model, batch_size))
    pytorch = None
    if torch_available:
        pytorch = PyTorchSteps(
            preset,
            batch_size,
            _THREADS.value,
            _KEEP_FREED_MEMORY.value,
            "infer",
            _PYTORCH_PYTHON.value,
            _PASSIVE_THREADS.value,
        )
        calls[f"PyTorch PoseNet {pytorch.version}, eager float32"] = pytorch.step
    for call in calls.values():
        for _ in range(_WARMUP.value):
            call()
    times = {name: [] for name in calls}
    for _ in range(_REPEATS.value):
        for name, call in calls.items():
            time.sleep(0.3)  # lets the other framework's spinning worker threads go to sleep
            times[name].append(call())
    if pytorch is not None:
        pytorch.close()
    flop_per_image = 2 * count_multiply_adds(model)
    medians = {name: float(np.median(t)) * 1e3 / batch_size for name, t in times.items()}
    reference = next((ms for name, ms in medians.items() if name.startswith("PyTorch")), None)
    for name, ms in medians.items():
        rate = flop_per_image / ms * 1e3
        ratio = f"{reference / ms:10.2f}" if reference else ""
        print(
            f"{preset:5} {batch_size:>5} {name:42} {ms:9.1f} {rate / 1e9:8.0f} {rate / float32_rate:9.0%} {ratio}",
            flush=True,
        )


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    for preset in _PRESETS.value:
        if preset not in HOURGLASS_PRESETS:
            raise app.UsageError(f"--presets: {preset!r} is not an hourglass preset")
    auto_precision, reason = resolve_inference_precision("auto")
    rates = {"float32": matmul_flops_per_second(min_seconds=3.0)}
    if auto_precision == "bfloat16":
        rates["bfloat16"] = matmul_flops_per_second(min_seconds=3.0, dtype="bfloat16")
    torch_available = _PYTORCH_PYTHON.value != sys.executable or importlib.util.find_spec("torch") is not None
    print(f"machine: {describe_machine()}, {_THREADS.value} threads each")
    print(f"precision auto: {auto_precision} ({reason})")
    print(
        f"this machine's 2048x2048 matmul: {', '.join(f'{d} {r / 1e9:.0f} GFLOP/s' for d, r in rates.items())}"
    )
    print(f"medians of {_REPEATS.value} calls after {_WARMUP.value} warm-up calls")
    print(
        f"PyTorch: malloc keeps freed memory {_KEEP_FREED_MEMORY.value}, passive threads {_PASSIVE_THREADS.value}"
    )
    if not torch_available:
        print(
            "torch is not installed here: timing ours only (--pytorch_python names an interpreter with torch)."
        )
    print(
        f"{'model':5} {'batch':>5} {'':42} {'ms/image':>9} {'GFLOP/s':>8} {'of f32 mm':>9} {'x PyTorch':>10}"
    )
    for preset in _PRESETS.value:
        model = from_preset(preset)
        runner = int8_tflite_runner(model) if _TFLITE.value else None
        for batch_size in (int(b) for b in _BATCH_SIZES.value):
            race(model, preset, batch_size, auto_precision, rates["float32"], torch_available, runner)


if __name__ == "__main__":
    app.run(main)
