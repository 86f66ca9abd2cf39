"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def time_call(fn, min_seconds, warmup=2):
    """Median seconds per call of ``fn`` over at least ``min_seconds`` (and 3 calls)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def interleaved_medians(calls: dict, min_seconds: float, warmup: int = 2) -> dict:
    """Median seconds per call of each function, calling them in turn until each had ``min_seconds``."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in calls}
    while min(sum(t) for t in times.values()) < min_seconds or min(len(t) for t in times.values()) < 3:
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def matmul_flops_per_second(min_seconds, dtype="float32", n=2048):
    """The machine's n x n matrix-multiply rate in FLOP/s (2 x multiply-adds per second)."""
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype=dtype)
    b = tf.random.uniform((n, n), dtype=dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    seconds = time_call(lambda: matmul().numpy(), min_seconds)
    return 2 * n**3 / seconds


def describe_machine():
    """CPU model and core count, for the results' header."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from tf_hourglass.precision import native_bfloat16_cpu_flags

    bfloat16 = ", ".join(native_bfloat16_cpu_flags()) or "none"
    return f"{cpu}, {os.cpu_count()} cores (bfloat16 instructions: {bfloat16}), TensorFlow {tf.__version__}"
