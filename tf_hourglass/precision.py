"""Which precision a network runs in on this machine: the CPU's bfloat16 instructions, one check for all.

Training's ``runtime.precision="auto"`` (``training.trainer.resolve_precision``)
and inference's ``precision="auto"`` (``resolve_inference_precision``: the
``PoseEstimator``, ``predict``, ``evaluate --model``) both ask
``native_bfloat16_cpu_flags`` whether the CPU computes bfloat16 itself
(AVX512-BF16 or AMX). Where it does, oneDNN's bfloat16 convolutions take
about 0.6x the float32 time; elsewhere bfloat16 would be emulated, slower.

Inference in bfloat16 means the network's weights and activations
(``model.folding.fold_batch_norms(model, "bfloat16")``); its heatmap outputs,
the decoding and everything after stay float32.
"""

from __future__ import annotations

import tensorflow as tf

# CPU flags (as /proc/cpuinfo spells them) of instructions that compute bfloat16 natively.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16_cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The CPU's bfloat16 instruction flags; none where the file is missing (not Linux)."""
    try:
        with open(cpuinfo) as file:
            flags = next((line.split(":", 1)[1].split() for line in file if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]


def resolve_inference_precision(precision: str = "auto") -> tuple[str, str]:
    """("float32" or "bfloat16", why) for running a network; "auto" picks bfloat16 on CPUs that compute it.

    With a GPU, "auto" is float32 (its speed there is a matter of TensorRT and
    float16 exports, not of this choice).

    Raises:
        ValueError: ``precision`` is not one of ``INFERENCE_PRECISIONS``.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(
            f"precision must be one of {INFERENCE_PRECISIONS}. Received: precision={precision!r}"
        )
    if precision != "auto":
        return precision, "asked for"
    if tf.config.list_physical_devices("GPU"):
        return "float32", "auto: a GPU is in use"
    flags = native_bfloat16_cpu_flags()
    if flags:
        return "bfloat16", f"auto: this CPU computes bfloat16 natively ({', '.join(flags)})"
    return "float32", "auto: this CPU has no bfloat16 instructions"
