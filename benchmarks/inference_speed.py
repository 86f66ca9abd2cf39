"""CPU inference speed of the ways a model can run: Keras' predict_on_batch, graph, XLA; as trained or folded; float32 or bfloat16.

    .venv/bin/python benchmarks/inference_speed.py [--presets hg2,hg8] [--batch_sizes 1,8] [--min_seconds 5]

For each preset, network (``trained``: the Keras model as trained;
``folded``: ``model.folding.fold_batch_norms``, BatchNorms after convolutions
folded into them; ``folded_bf16``: the same in bfloat16, as precision "auto"
runs it on CPUs with bfloat16 instructions) and batch size: milliseconds per
batch through ``model.predict_on_batch`` (Keras' own path; trained float32
only), a ``tf.function`` (graph) and ``tf.function(jit_compile=True)`` (XLA);
and, at batch 1, ``PoseEstimator.predict`` on a 256x256 photo (network
``estimator``, mode its precision: crop, network, decoding, as users call it).
The calls of one batch size are interleaved (one call of each in turn) and
their medians reported, with GFLOP/s (2 x multiply-adds / s) and the fraction
of the float32 matmul rate measured in the same run. This is how the
prediction path's choices were made (BENCHMARKS.md, "Inference precision and
graph").
"""

from __future__ import annotations

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import describe_machine, interleaved_medians, matmul_flops_per_second  # noqa: E402

from tf_hourglass.model import from_preset  # noqa: E402
from tf_hourglass.model.complexity import count_multiply_adds  # noqa: E402
from tf_hourglass.model.folding import fold_batch_norms  # noqa: E402
from tf_hourglass.prediction.estimator import PoseEstimator  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["hg2"], "Presets to measure.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1"], "Batch sizes.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Time each way at least this long.")
_WAYS = flags.DEFINE_list(
    "ways",
    [
        "trained:predict_on_batch",
        "trained:graph",
        "trained:xla",
        "folded:graph",
        "folded:xla",
        "folded_bf16:graph",
        "folded_bf16:xla",
        "estimator:float32",
        "estimator:bfloat16",
    ],
    "network:mode pairs to time.",
)


def main(argv):
    del argv
    print(f"machine: {describe_machine()}")
    peak = matmul_flops_per_second(_MIN_SECONDS.value)
    print(f"float32 matmul 2048x2048: {peak / 1e9:.1f} GFLOP/s\n")
    print(
        f"{'model':6} {'network':12} {'mode':17} {'batch':>5} {'ms/batch':>9} {'GFLOP/s':>8} {'of matmul':>9}"
    )
    for preset in _PRESETS.value:
        model = from_preset(preset)
        macs = count_multiply_adds(model)
        networks = {
            "trained": model,
            "folded": fold_batch_norms(model),
            "folded_bf16": fold_batch_norms(model, "bfloat16"),
        }
        for batch_size in (int(b) for b in _BATCH_SIZES.value):
            images = tf.random.uniform((batch_size, *model.image_shape))
            calls = {}
            for way in _WAYS.value:
                network_name, mode = way.split(":")
                if network_name == "estimator":
                    if batch_size == 1:
                        estimator = PoseEstimator(model, precision=mode)
                        photo = np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8)
                        calls[way] = lambda e=estimator, x=photo: e.predict(x)
                    continue
                network = networks[network_name]
                if mode == "predict_on_batch":
                    calls[way] = lambda n=network, x=images: n.predict_on_batch(x)
                    continue
                forward = tf.function(lambda x, n=network: n(x, training=False), jit_compile=mode == "xla")
                calls[way] = lambda f=forward, x=images: [o.numpy() for o in tf.nest.flatten(f(x))]
            for way, seconds in interleaved_medians(calls, _MIN_SECONDS.value).items():
                network_name, mode = way.split(":")
                flops = 2 * macs * batch_size / seconds
                print(
                    f"{preset:6} {network_name:12} {mode:17} {batch_size:>5} {seconds * 1e3:>9.1f} "
                    f"{flops / 1e9:>8.1f} {flops / peak:>8.0%}",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
