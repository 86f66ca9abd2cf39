"""Distributed training: two workers on localhost (MultiWorkerMirroredStrategy, the custom loop) and
MirroredStrategy over two logical CPUs (model.fit).

Every run is a subprocess, because TF_CONFIG and logical devices take effect
only before TensorFlow initialises.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import tensorboard_tags, write_tiny_config

import tf_hourglass  # noqa: F401  (registers StackedHourglass for load_model)
from tf_hourglass.training.losses import HeatmapLoss, per_example_heatmap_loss

pytestmark = pytest.mark.e2e  # every test here trains, exports or starts processes

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 360

# Two logical CPUs stand in for two GPUs; they must be configured before TensorFlow initialises.
MIRRORED_SCRIPT = """
import importlib.util
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tf_hourglass.training import trainer

spec = importlib.util.spec_from_file_location("tiny_config", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
config = module.get_config()
config.runtime.strategy = "mirrored"
trainer.train_and_evaluate(config, sys.argv[2])
"""


def test_replica_shares_of_the_loss_add_up_to_the_heatmap_loss():
    rng = np.random.default_rng(0)
    targets = rng.random((4, 8, 8, 3), np.float32)
    predictions = rng.random((4, 8, 8, 3), np.float32)
    weights = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]], np.float32)
    # Two replicas with two examples each, every share divided by the global batch of 4.
    shares = [
        tf.nn.compute_average_loss(
            per_example_heatmap_loss(targets[half], predictions[half], weights[half]), global_batch_size=4
        )
        for half in (slice(0, 2), slice(2, 4))
    ]
    expected = HeatmapLoss()(targets, predictions, sample_weight=weights)
    np.testing.assert_allclose(float(sum(shares)), float(expected), rtol=1e-6)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_processes(commands, envs, log_paths):
    """Runs the commands side by side; returns their exit codes and outputs. Kills them all on timeout."""
    processes = []
    try:
        for command, env, log_path in zip(commands, envs, log_paths, strict=True):
            # Output to files, not pipes: a full pipe would stall a worker and with it the collectives.
            with open(log_path, "w") as log:
                processes.append(
                    subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
                )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [p.returncode for p in processes], [Path(path).read_text() for path in log_paths]


def test_two_workers_train_in_step_and_leave_the_fit_paths_workdir(tmp_path):
    config_path = write_tiny_config(tmp_path)
    workdir = tmp_path / "run"  # shared by both workers, as on a shared file system
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    command = [
        sys.executable,
        "-m",
        "tf_hourglass.train",
        f"--config={config_path}",
        f"--workdir={workdir}",
        "--config.runtime.strategy=multi_worker",
    ]
    envs = [
        {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        for index in (0, 1)
    ]
    codes, outputs = run_processes(
        [command] * 2, envs, [tmp_path / "worker_0.log", tmp_path / "worker_1.log"]
    )

    for index, (code, output) in enumerate(zip(codes, outputs, strict=True)):
        assert code == 0, output
        assert "Strategy 'multi_worker' (CollectiveAllReduceStrategy): 2 replica(s) in sync." in output
        assert f"worker_{index}: 6 training steps done." in output
    # Only the chief writes the run's files; the other worker only its final weights.
    assert sorted(os.listdir(workdir)) == [
        "best.json",
        "best.weights.h5",
        "checkpoints",
        "config.json",
        "final.keras",
        "inference.json",
        "metrics.csv",
        "results.json",
        "tensorboard",
        "worker_1.weights.h5",
    ]
    results = json.loads((workdir / "results.json").read_text())
    assert results["epochs_completed"] == 2 and results["num_persons"] == 8
    rows = list(csv.DictReader((workdir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "heatmaps_1_loss", "heatmaps_2_loss", "val_pck", "learning_rate"} <= set(rows[0])
    assert float(rows[0]["loss"]) == pytest.approx(
        float(rows[0]["heatmaps_1_loss"]) + float(rows[0]["heatmaps_2_loss"]), rel=1e-5
    )
    assert "ckpt-2.index" in os.listdir(workdir / "checkpoints")
    tags = tensorboard_tags(workdir / "tensorboard")
    assert {"epoch_heatmaps_1_loss", "epoch_heatmaps_2_loss", "epoch_pck", "epoch_learning_rate"} <= tags

    # Same updates on both workers: the same weights, BatchNormalization statistics included.
    model = keras.saving.load_model(workdir / "final.keras")
    assert int(model.optimizer.iterations.numpy()) == 6
    chief_weights = model.get_weights()
    model.load_weights(workdir / "worker_1.weights.h5")
    for chief, worker in zip(chief_weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(chief, worker)


def test_mirrored_strategy_fits_on_two_logical_cpus(tmp_path):
    config_path = write_tiny_config(tmp_path)
    script = tmp_path / "train_mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    workdir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(script), str(config_path), str(workdir)]
    (code,), (output,) = run_processes([command], [env], [tmp_path / "mirrored.log"])

    assert code == 0, output
    assert "Strategy 'mirrored' (MirroredStrategy): 2 replica(s) in sync." in output
    results = json.loads((workdir / "results.json").read_text())
    assert results["epochs_completed"] == 2 and results["num_persons"] == 8
