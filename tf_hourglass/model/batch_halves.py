"""Inference on a multi-core CPU: a batch run as two halves side by side, the same numbers sooner.

TensorFlow splits each convolution of a graph across the CPU's cores. With
thousands of small ops per image that split is costly: on a 2-core Xeon, hg8
runs at 85% of the matmul rate on one thread and at 70-75% on two. Two halves
of a batch are independent, so TensorFlow's executor runs their ops at the
same time on its inter-op threads and the cores stay busy. Measured there
(BENCHMARKS.md, "Inference precision and the fused graph"): batch 2 runs
11-15% faster, batch 8 1-12%; a batch of one runs whole, as fast as before.

Inference only: every image is computed on its own, so the results are the
same to the bit. (In training, a BatchNorm would see two half batches.) On a
GPU the halves would only add kernel launches, and with one inter-op thread
they would run one after the other, so there the batch runs whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf


def cpu_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def halves_run_side_by_side() -> bool:
    """Whether two halves of a batch would run at the same time here (see the module docstring)."""
    if tf.config.list_physical_devices("GPU"):
        return False
    return cpu_cores() >= 2 and tf.config.threading.get_inter_op_parallelism_threads() != 1


def in_halves(forward: Callable) -> Callable:
    """``forward`` (images (B, ...) -> one tensor (B, ...)) run on the two halves of batches of 2 or more.

    Inside ``tf.function`` (the batch size may be unknown until run); called
    eagerly, the batch runs whole. Where ``halves_run_side_by_side`` is false,
    ``forward`` itself.
    """
    if not halves_run_side_by_side():
        return forward

    def run(images):
        if tf.executing_eagerly():
            return forward(images)  # eager ops run one after the other: nothing to gain
        batch = tf.shape(images)[0]

        def halves():
            half = (batch + 1) // 2
            return tf.concat([forward(images[:half]), forward(images[half:])], axis=0)

        return tf.cond(batch >= 2, halves, lambda: forward(images))

    return run
