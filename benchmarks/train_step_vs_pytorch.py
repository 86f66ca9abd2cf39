"""Training step time of ours against the official PyTorch PoseNet, side by side in one run.

    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg2 --batch_size 8
    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg8 --modes graph
    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg2_small --batch_size 16 --nopytorch

One training step = forward, MSE on every stack (intermediate supervision),
backward, RMSprop(2.5e-4) update, on a fixed batch in memory (the input
pipeline is measured by pipeline_speed.py). Ours runs through Keras'
``train_function`` (what ``model.fit`` runs each step), in graph mode and with
XLA (``jit_compile=True``), optionally under the mixed_bfloat16 policy (fast on
CPUs with AVX512-BF16 or AMX, emulated and slow elsewhere). The PyTorch side is ``benchmarks/pytorch_posenet.py``
(princeton-vl's architecture) in eager mode, in a child process of its own
(no TensorFlow threads or allocator beside it), run when torch is installed
(``pip install torch``). Both use the same number of threads. The runs are
interleaved (one step of each in turn) so that a change in the machine's speed
affects both, with a pause before each step so that one framework's
spin-waiting threads do not slow the other; the figures are medians after
warm-up steps, in ms per image.

By default the PyTorch process's glibc malloc is told to keep freed memory
(``--keep_freed_memory``: MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_).
PyTorch's eager CPU allocator frees every activation after use, and glibc gives
large blocks back to the OS, so each step page-faults them in again: on our
2-core VM that doubled PyTorch's step and made it swing by 2x from step to step.
TensorFlow keeps its own buffers and is unaffected. Timing PyTorch as its CPU
tuning guide advises (jemalloc/tcmalloc, or these thresholds) is the fair race.
"""

from __future__ import annotations

import importlib.util
import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from pytorch_process import PyTorchSteps  # noqa: E402
from timing import describe_machine, matmul_flops_per_second  # noqa: E402

from tf_hourglass import HeatmapLoss, from_preset  # noqa: E402
from tf_hourglass.model import HOURGLASS_PRESETS  # noqa: E402
from tf_hourglass.model.complexity import count_multiply_adds  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "hg2", sorted(HOURGLASS_PRESETS), "Hourglass preset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per step.")
_THREADS = flags.DEFINE_integer("threads", 2, "Threads for each framework.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps; the median is reported.")
_MODES = flags.DEFINE_list(
    "modes", ["graph", "xla"], "Our modes: graph, xla, graph-bf16, xla-bf16 (-bf16: mixed_bfloat16 policy)."
)
_PYTORCH = flags.DEFINE_bool("pytorch", True, "Also time the PyTorch PoseNet (needs torch).")
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
    "keep_freed_memory",
    True,
    "Tell glibc's malloc to keep freed memory for reuse instead of returning it to the OS "
    "(PyTorch's CPU tuning guide gets the same from jemalloc or tcmalloc). Without it, PyTorch's "
    "eager step page-faults its activation buffers in again every step.",
)

# mode -> (jit_compile, Keras dtype policy)
MODES = {
    "graph": (False, "float32"),
    "xla": (True, "float32"),
    "graph-bf16": (False, "mixed_bfloat16"),
    "xla-bf16": (True, "mixed_bfloat16"),
}


def keras_step(preset, batch_size, jit_compile, precision="float32"):
    """A function running one training step of ours (as model.fit does)."""
    keras.config.set_dtype_policy(precision)
    model = from_preset(preset)
    model.compile(optimizer=keras.optimizers.RMSprop(2.5e-4), loss=HeatmapLoss(), jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch_size, *model.image_shape)).astype("float32")
    heatmaps = rng.uniform(size=(batch_size, *model.heatmap_size, model.num_keypoints)).astype("float32")
    iterator = iter(tf.data.Dataset.from_tensors((images, heatmaps)).repeat())
    model.make_train_function()
    train_function = model.train_function
    keras.config.set_dtype_policy("float32")

    def step():
        logs = train_function(iterator)
        return float(logs["loss"])  # waits for the step to finish

    return step


def timed(step):
    def run():
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    return run


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    for mode in _MODES.value:
        if mode not in MODES:
            raise app.UsageError(f"--modes: unknown mode {mode!r}; expected some of {', '.join(MODES)}")
    # The machine's matmul rates first: a capped oneDNN (ONEDNN_MAX_CPU_ISA) has no bfloat16 matmul.
    rates = {"float32": matmul_flops_per_second(min_seconds=3.0)}
    if any(MODES[mode][1] == "mixed_bfloat16" for mode in _MODES.value):
        rates["bfloat16"] = matmul_flops_per_second(min_seconds=3.0, dtype="bfloat16")
    float32_rate = rates["float32"]
    steps = {}
    for mode in _MODES.value:
        jit_compile, precision = MODES[mode]
        steps[f"ours, {mode}"] = timed(keras_step(_PRESET.value, _BATCH_SIZE.value, jit_compile, precision))
    pytorch = None
    if _PYTORCH.value:
        if importlib.util.find_spec("torch") is None:
            print("torch is not installed: timing ours only (pip install torch for the side-by-side run).")
        else:
            pytorch = PyTorchSteps(_PRESET.value, _BATCH_SIZE.value, _THREADS.value, _KEEP_FREED_MEMORY.value)
            steps[f"PyTorch PoseNet {pytorch.version}, eager"] = pytorch.step
    for step in steps.values():
        for _ in range(_WARMUP.value):
            step()
    times = {name: [] for name in steps}
    for _ in range(_REPEATS.value):
        for name, step in steps.items():
            time.sleep(0.5)  # lets the other framework's spinning worker threads go to sleep
            times[name].append(step())
    if pytorch is not None:
        pytorch.close()
    print(f"machine: {describe_machine()}, {_THREADS.value} threads each")
    print(f"malloc keeps freed memory: {_KEEP_FREED_MEMORY.value}")
    print(
        f"{_PRESET.value}, batch {_BATCH_SIZE.value}, median of {_REPEATS.value} after {_WARMUP.value} warm-up steps"
    )
    medians = {name: float(np.median(t)) * 1e3 / _BATCH_SIZE.value for name, t in times.items()}
    reference = next((m for name, m in medians.items() if name.startswith("PyTorch")), None)
    # A training step computes each convolution three times over: forward, input
    # gradients, weight gradients (the first one's input gradient is skipped: 0.6% here).
    flop_per_image = 3 * 2 * count_multiply_adds(from_preset(_PRESET.value))
    print(f"convolution arithmetic of a training step: {flop_per_image / 1e9:.1f} GFLOP per image")
    print(
        f"this machine's 2048x2048 matmul: {', '.join(f'{d} {r / 1e9:.0f} GFLOP/s' for d, r in rates.items())}"
    )
    print(f"{'':40} {'ms/image':>9} {'GFLOP/s':>8} {'of f32 matmul':>13} {'x PyTorch speed':>16}")
    for name, ms in medians.items():
        rate = flop_per_image / ms * 1e3
        ratio = f"{reference / ms:16.2f}" if reference else ""
        print(f"{name:40} {ms:9.1f} {rate / 1e9:8.0f} {rate / float32_rate:13.0%} {ratio}")
    floor = flop_per_image / float32_rate * 1e3
    print(f"a step running entirely at the float32 matmul rate: {floor:.1f} ms/image")
    if reference:
        target = reference / 1.5
        print(
            f"1.5x PyTorch's speed: {target:.1f} ms/image, i.e. the whole step at "
            f"{flop_per_image / target * 1e3 / float32_rate:.0%} of the float32 matmul rate"
        )


if __name__ == "__main__":
    app.run(main)
