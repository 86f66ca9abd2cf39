"""A batch run as two halves side by side: the same heatmaps, split only where it can help."""

import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.model import batch_halves, from_preset
from tf_hourglass.model_loader import keras_inference_model


def part_sizes(images):
    """Each image's value: the size of the batch it was computed in."""
    return tf.fill(tf.shape(images)[:1], tf.shape(images)[0])


@pytest.mark.parametrize(("batch", "expected"), [(1, [1]), (2, [1, 1]), (5, [3, 3, 3, 2, 2])])
def test_batches_of_two_or_more_run_as_two_halves_and_one_image_runs_whole(batch, expected, monkeypatch):
    monkeypatch.setattr(batch_halves, "halves_run_side_by_side", lambda: True)
    run = tf.function(
        batch_halves.in_halves(part_sizes), input_signature=[tf.TensorSpec([None, 4], tf.float32)]
    )
    assert run(tf.zeros((batch, 4))).numpy().tolist() == expected


def test_called_eagerly_the_batch_runs_whole(monkeypatch):
    monkeypatch.setattr(batch_halves, "halves_run_side_by_side", lambda: True)
    assert batch_halves.in_halves(part_sizes)(tf.zeros((4, 2))).numpy().tolist() == [4, 4, 4, 4]


def test_no_halves_on_a_gpu_or_with_one_inter_op_thread_or_one_core(monkeypatch):
    monkeypatch.setattr(batch_halves, "cpu_cores", lambda: 2)
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 0)
    assert batch_halves.halves_run_side_by_side()
    assert batch_halves.in_halves(part_sizes) is not part_sizes
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 1)
    assert not batch_halves.halves_run_side_by_side()
    assert batch_halves.in_halves(part_sizes) is part_sizes
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 0)
    monkeypatch.setattr(batch_halves, "cpu_cores", lambda: 1)
    assert not batch_halves.halves_run_side_by_side()
    monkeypatch.setattr(batch_halves, "cpu_cores", lambda: 8)
    real_devices = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: ["gpu"] if kind == "GPU" else real_devices(kind)
    )
    assert not batch_halves.halves_run_side_by_side()


def test_the_inference_model_in_halves_gives_the_whole_batchs_heatmaps_to_the_bit(monkeypatch):
    model = from_preset("hg_tiny", num_keypoints=3)
    images = tf.random.uniform((5, 64, 64, 3), seed=3)

    def heatmaps():
        inference = keras_inference_model(model)
        return tf.function(lambda batch: inference(batch))(images).numpy()

    monkeypatch.setattr(batch_halves, "halves_run_side_by_side", lambda: False)
    whole = heatmaps()
    monkeypatch.setattr(batch_halves, "halves_run_side_by_side", lambda: True)
    halves = heatmaps()
    assert whole.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(halves, whole)
