"""Where a training step's time goes: TensorFlow profiler trace of ours, summed per phase and op.

    .venv/bin/python benchmarks/profile_train_step.py --preset hg2 --batch_size 8

Traces ``--steps`` training steps (graph mode: XLA fuses ops into clusters that
carry no layer names) of the same step as benchmarks/train_step_vs_pytorch.py
and sums the TensorFlow op events of the trace. Op time is CPU time of the op
kernels, on all threads, so the phases add up to more than the step's wall time
when ops run side by side. Phases come from the op's name: the optimizer's
update ops, gradient ops (backward), the loss, and the rest (forward);
BatchNorm is every op of a BatchNormalization layer, forward and backward.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402
from timing import describe_machine  # noqa: E402

# Its flags (--preset, --batch_size, --threads, ...) are this script's too.
from train_step_vs_pytorch import _BATCH_SIZE, _PRESET, _THREADS, keras_step  # noqa: E402

from tf_hourglass import from_preset  # noqa: E402
from tf_hourglass.model.complexity import layer_multiply_adds  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 3, "Traced steps (after 2 warm-up steps).")
_TOP = flags.DEFINE_integer("top", 15, "Op types listed.")
_INTER_OP_THREADS = flags.DEFINE_integer(
    "inter_op_threads",
    None,
    "Ops run side by side (default: --threads). With 1, ops run one at a time, so each op's "
    "time is its own and not shared with a concurrent op.",
)
_BY_CONVOLUTION = flags.DEFINE_bool(
    "by_convolution",
    False,
    "Also list the convolution ops by pass and shape with their GFLOP/s (best with --inter_op_threads 1). "
    "Ops of custom gradients carry no layer name and are counted apart.",
)


def op_events(logdir):
    """(op name, op type, seconds) of every TensorFlow op in the trace under ``logdir``."""
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = metadata[event.metadata_id].name
                # Op events are "<scope>/<op name>:<OpType>"; runtime events have no "/...:".
                if ":" not in name or "/" not in name.split(":", 1)[0] or "::" in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                yield op_name, op_type, event.duration_ps * 1e-12


def phase(op_name, op_type):
    lowered = op_name.lower()
    if "/rm_sprop/" in lowered or "/adam/" in lowered or "optimizer" in lowered:
        return "optimizer update"
    if "gradient" in lowered or op_type.endswith(("Grad", "Backprop", "BackpropInput", "BackpropFilter")):
        return "backward"
    if "loss" in lowered:
        return "loss"
    return "forward"


def convolution_pass(op_type):
    """forward, input gradient or weight gradient for TensorFlow's (and oneDNN's) convolution ops."""
    name = op_type.removeprefix("_MklNative").removeprefix("_Mkl")
    if name.startswith("Conv2DBackpropFilter"):
        return "weight gradient"
    if name.startswith("Conv2DBackpropInput"):
        return "input gradient"
    if name in ("Conv2D", "FusedConv2D"):
        return "forward"
    return None


def print_convolutions(events, preset, batch_size, steps):
    """Op time and GFLOP/s of the convolutions, per pass and shape (resolution, kernel, channels)."""
    shapes = {}
    for layer in from_preset(preset).layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, _, out_channels = layer.output.shape
            kernel_height, kernel_width, in_channels, _ = layer.kernel.shape
            shape = (height, f"{kernel_height}x{kernel_width}", f"{in_channels}->{out_channels}")
            shapes[layer.name] = (shape, 2 * batch_size * layer_multiply_adds(layer))
    seconds, flops, unattributed = collections.Counter(), collections.Counter(), 0.0
    for op_name, op_type, duration in events:
        conv_pass = convolution_pass(op_type)
        if conv_pass is None:
            continue
        parts = [re.sub(r"_\d+$", "", part) for part in op_name.split("/")] + op_name.split("/")
        layer = next((part for part in parts if part in shapes), None)
        if layer is None:
            unattributed += duration
            continue
        shape, flop = shapes[layer]
        seconds[(conv_pass, *shape)] += duration
        flops[(conv_pass, *shape)] += flop
    print(
        f"\n{'convolution pass':16} {'size':>5} {'kernel':>6} {'channels':>9} {'ms/step':>8} {'GFLOP/s':>8}"
    )
    for key, duration in seconds.most_common(_TOP.value):
        conv_pass, size, kernel, channels = key
        rate = flops[key] / duration / 1e9
        print(f"{conv_pass:16} {size:>5} {kernel:>6} {channels:>9} {1e3 * duration / steps:8.1f} {rate:8.0f}")
    rest = sum(seconds.values()) - sum(d for _, d in seconds.most_common(_TOP.value))
    print(
        f"(the other shapes: {1e3 * rest / steps:.0f} ms; convolution ops without a layer name: "
        f"{1e3 * unattributed / steps:.0f} ms)"
    )


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    inter_op_threads = _INTER_OP_THREADS.value or _THREADS.value
    tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    step = keras_step(_PRESET.value, _BATCH_SIZE.value, jit_compile=False)
    for _ in range(2):
        step()
    logdir = tempfile.mkdtemp(prefix="profile_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(_STEPS.value):
        step()
    wall = (time.perf_counter() - start) / _STEPS.value
    tf.profiler.experimental.stop()

    phases, types, batch_norm = collections.Counter(), collections.Counter(), 0.0
    events = list(op_events(logdir))
    for op_name, op_type, seconds in events:
        phases[phase(op_name, op_type)] += seconds
        types[op_type] += seconds
        # Our BatchNormalization layers are named *_bn (their ops *_bn_1/... inside a call).
        if re.search(r"_bn(_\d+)?/", op_name) or op_type.startswith("FusedBatchNorm"):
            batch_norm += seconds
    total = sum(phases.values())
    per_step = lambda s: 1e3 * s / _STEPS.value  # noqa: E731
    print(f"machine: {describe_machine()}, {_THREADS.value} threads, {inter_op_threads} op(s) at a time")
    print(f"{_PRESET.value}, batch {_BATCH_SIZE.value}, graph mode: {wall * 1e3:.0f} ms per step (wall)")
    print(f"op time {per_step(total):.0f} ms per step (CPU time of op kernels, all threads)\n")
    print(f"{'phase':20} {'ms/step':>8} {'share':>6}")
    for name, seconds in phases.most_common():
        print(f"{name:20} {per_step(seconds):8.0f} {100 * seconds / total:5.1f}%")
    print(f"{'(BatchNorm, fwd+bwd)':20} {per_step(batch_norm):8.0f} {100 * batch_norm / total:5.1f}%\n")
    print(f"{'op type':28} {'ms/step':>8} {'share':>6}")
    for op_type, seconds in types.most_common(_TOP.value):
        print(f"{op_type:28} {per_step(seconds):8.0f} {100 * seconds / total:5.1f}%")
    print(
        f"(trace: {logdir}; the other op types: {per_step(total - sum(s for _, s in types.most_common(_TOP.value))):.0f} ms)"
    )
    if _BY_CONVOLUTION.value:
        print_convolutions(events, _PRESET.value, _BATCH_SIZE.value, _STEPS.value)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    app.run(main)
