"""Model size, compute and CPU inference speed of the model presets (hourglass and CPM).

    .venv/bin/python benchmarks/model_speed.py [--presets hg1,hg2,hg8,cpm6] [--batch_sizes 1,8]

For each preset: trainable parameters, multiply-adds per image, and inference
latency / throughput at each batch size in graph mode (tf.function) and with
XLA (tf.function(jit_compile=True)). It first measures the machine's float32
matrix-multiply rate (2048x2048 matmul) and prints each model's achieved
FLOP/s (2 x multiply-adds / second) as a fraction of it. Results go in
BENCHMARKS.md with the command and the machine.
"""

from __future__ import annotations

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from timing import describe_machine, matmul_flops_per_second, time_call  # noqa: E402

from tf_hourglass.model import from_preset, model_inputs  # noqa: E402
from tf_hourglass.model.complexity import count_multiply_adds, count_trainable_parameters  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["hg1", "hg2", "hg8"], "Presets to measure.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Time each measurement at least this long.")


def main(argv):
    del argv
    min_seconds = _MIN_SECONDS.value
    print(f"machine: {describe_machine()}")
    peak = matmul_flops_per_second(min_seconds)
    print(f"float32 matmul 2048x2048: {peak / 1e9:.1f} GFLOP/s")
    print()
    header = f"{'model':9} {'params':>11} {'GMACs/img':>10} {'mode':6} {'batch':>5} {'ms/batch':>9} {'img/s':>7} {'GFLOP/s':>8} {'of matmul':>9}"
    print(header)
    for preset in _PRESETS.value:
        model = from_preset(preset)
        params = count_trainable_parameters(model)
        macs = count_multiply_adds(model)
        for mode, jit in (("graph", False), ("xla", True)):
            # model_inputs adds a CPM's centre map (built in the graph, as in the exports).
            forward = tf.function(lambda x, m=model: m(model_inputs(m, x), training=False), jit_compile=jit)
            for batch_size in (int(b) for b in _BATCH_SIZES.value):
                images = tf.random.uniform((batch_size, *model.image_shape))
                seconds = time_call(
                    lambda f=forward, x=images: [o.numpy() for o in tf.nest.flatten(f(x))], min_seconds
                )
                flops = 2 * macs * batch_size / seconds
                print(
                    f"{preset:9} {params:>11,} {macs / 1e9:>10.2f} {mode:6} {batch_size:>5} {seconds * 1e3:>9.1f} "
                    f"{batch_size / seconds:>7.2f} {flops / 1e9:>8.1f} {flops / peak:>8.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
