"""Training step time of ours against the official PyTorch PoseNet, side by side in one run.

    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg2 --batch_size 8
    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg8 --modes graph
    .venv/bin/python benchmarks/train_step_vs_pytorch.py --preset hg2_small --batch_size 16 --no_pytorch

One training step = forward, MSE on every stack (intermediate supervision),
backward, RMSprop(2.5e-4) update, on a fixed batch in memory (the input
pipeline is measured by pipeline_speed.py). Ours runs through Keras'
``train_function`` (what ``model.fit`` runs each step), in graph mode and with
XLA (``jit_compile=True``), optionally under the mixed_bfloat16 policy (fast on
CPUs with AVX512-BF16 or AMX, emulated and slow elsewhere). The PyTorch side is ``benchmarks/pytorch_posenet.py``
(princeton-vl's architecture) in eager mode, run when torch is installed
(``pip install torch``). Both use the same number of threads. The runs are
interleaved (one step of each in turn) so that a change in the machine's speed
affects both, with a pause before each step so that one framework's
spin-waiting threads do not slow the other; the figures are medians after
warm-up steps, in ms per image.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import describe_machine  # noqa: E402

from tf_hourglass import HeatmapLoss, from_preset  # noqa: E402
from tf_hourglass.model import HOURGLASS_PRESETS  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "hg2", sorted(HOURGLASS_PRESETS), "Hourglass preset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per step.")
_THREADS = flags.DEFINE_integer("threads", 2, "Threads for each framework.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps; the median is reported.")
_MODES = flags.DEFINE_list(
    "modes", ["graph", "xla"], "Our modes: graph, xla, graph-bf16, xla-bf16 (-bf16: mixed_bfloat16 policy)."
)
_PYTORCH = flags.DEFINE_bool("pytorch", True, "Also time the PyTorch PoseNet (needs torch).")


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


def pytorch_step(preset, batch_size):
    import torch
    from pytorch_posenet import PoseNet, heatmap_loss

    config = HOURGLASS_PRESETS[preset]
    size = config["input_shape"][0]
    net = PoseNet(config["num_stacks"], config["filters"], 16, depth=config["depth"]).train()
    optimizer = torch.optim.RMSprop(net.parameters(), lr=2.5e-4)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, size, size, 3, generator=generator)
    heatmaps = torch.rand(batch_size, 16, size // 4, size // 4, generator=generator)

    def step():
        optimizer.zero_grad()
        loss = heatmap_loss(net(images), heatmaps)
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    steps = {
        f"ours, {mode}": keras_step(_PRESET.value, _BATCH_SIZE.value, mode == "xla") for mode in _MODES.value
    }
    if _PYTORCH.value:
        try:
            import torch
        except ImportError:
            print("torch is not installed: timing ours only (pip install torch for the side-by-side run).")
        else:
            torch.set_num_threads(_THREADS.value)
            steps[f"PyTorch PoseNet {torch.__version__}, eager"] = pytorch_step(
                _PRESET.value, _BATCH_SIZE.value
            )
    for step in steps.values():
        for _ in range(_WARMUP.value):
            step()
    times = {name: [] for name in steps}
    for _ in range(_REPEATS.value):
        for name, step in steps.items():
            time.sleep(0.5)  # lets the other framework's spinning worker threads go to sleep
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    print(f"machine: {describe_machine()}, {_THREADS.value} threads each")
    print(
        f"{_PRESET.value}, batch {_BATCH_SIZE.value}, median of {_REPEATS.value} after {_WARMUP.value} warm-up steps"
    )
    medians = {name: float(np.median(t)) * 1e3 / _BATCH_SIZE.value for name, t in times.items()}
    reference = next((m for name, m in medians.items() if name.startswith("PyTorch")), None)
    print(f"{'':40} {'ms/image':>9} {'x PyTorch speed':>16}")
    for name, ms in medians.items():
        ratio = f"{reference / ms:16.2f}" if reference else ""
        print(f"{name:40} {ms:9.1f} {ratio}")


if __name__ == "__main__":
    app.run(main)
