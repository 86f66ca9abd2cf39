"""Shared by the tests/test_export_*.py files: one briefly fitted tiny model per test session.

Random weights give heatmaps without peaks, where any rounding moves the
arg-max; a few dozen steps on synthetic figures give each joint a peak, as a
trained model has, so quantised exports can be held to their tolerances.
"""

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tf_hourglass
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.keypoint_specs import MPII
from tf_hourglass.data.pipeline import InMemorySource, make_dataset
from tf_hourglass.data.synthetic import SyntheticFigures

PEAK = 10.0  # target peak of the fit (a larger peak gets off the all-zero plateau fast)
INPUT_SIZE = (64, 64)


def codec() -> HeatmapCodec:
    return HeatmapCodec(input_size=INPUT_SIZE, heatmap_size=(16, 16), sigma=1.0, peak=PEAK)


@functools.lru_cache(maxsize=1)
def tiny_model_path() -> str:
    """A ``hg_tiny`` model fitted for 48 steps on 128 synthetic figures, saved as .keras."""
    keras.utils.set_random_seed(0)
    images, records = SyntheticFigures(image_size=INPUT_SIZE, seed=0).as_arrays(128)
    dataset = make_dataset(InMemorySource(records, images), MPII, codec(), batch_size=8, training=False)
    model = tf_hourglass.from_preset("hg_tiny")
    loss = tf_hourglass.HeatmapLoss()
    optimizer = keras.optimizers.Adam(3e-3)
    optimizer.build(model.trainable_variables)

    # A plain training step: tracing it takes a third of model.fit's first call.
    @tf.function
    def train_step(crops, heatmaps, weights):
        with tf.GradientTape() as tape:
            outputs = model(crops, training=True)
            total = tf.add_n([loss(heatmaps, output, sample_weight=weights) for output in outputs])
        optimizer.apply_gradients(
            zip(tape.gradient(total, model.trainable_variables), model.trainable_variables, strict=True)
        )

    for _ in range(3):
        for crops, heatmaps, weights in dataset:
            train_step(crops, heatmaps, weights)
    directory = tempfile.mkdtemp(prefix="tf_hourglass_export_tests_")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = os.path.join(directory, "tiny.keras")
    model.save(path)
    return path


@functools.lru_cache(maxsize=1)
def tiny_model() -> keras.Model:
    return keras.saving.load_model(tiny_model_path(), compile=False)


def run_export_cli(*args, timeout=600):
    """``python -m tf_hourglass.export ARGS`` in a fresh process (exit code, stdout, stderr)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "tf_hourglass.export", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def random_photo(height, width, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
