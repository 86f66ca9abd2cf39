"""Training runs: config checks, workdir contents, custom data, overrides, mixed precision.

Interrupted and failed runs are in tests/test_training_resume.py."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from training_helpers import load_config, tensorboard_tags, write_tiny_config

from tf_hourglass.prediction.estimator import PoseEstimator
from tf_hourglass.training import trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.py"))


def tiny_config(tmp_path, epochs=2):
    return write_tiny_config(tmp_path, epochs)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid_and_documents_its_command(path):
    config = load_config(path)
    trainer.validate_config(config)
    docstring = path.read_text().split('"""')[1]
    assert f"--config configs/{path.name}" in docstring
    assert "Expect" in docstring or "expect" in docstring


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "train.batch_size",
            0,
            "config.train.batch_size must be an integer >= 1. Received: train.batch_size=0",
        ),
        ("data.format", "imagenet", "config.data.format must be one of"),
        ("runtime.strategy", "gpu", "Received: runtime.strategy='gpu'"),
        ("model.preset", "hg3", "Received: model.preset='hg3'"),
        ("train.schedule", "linear", "Received: train.schedule='linear'"),
        ("runtime.precision", "float16", "Received: runtime.precision='float16'"),
        ("runtime.jit_compile", "yes", "Received: runtime.jit_compile='yes'"),
    ],
)
def test_invalid_config_fails_before_any_work_naming_the_field(tmp_path, field, value, message):
    config = load_config(tiny_config(tmp_path))
    section, name = field.split(".")
    config[section][name] = value
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        trainer.train_and_evaluate(config, str(workdir))
    assert message in str(error.value)
    assert not workdir.exists()


def test_reader_format_without_annotations_is_rejected(tmp_path):
    config = load_config(tiny_config(tmp_path))
    config.data.format = "mpii_h5"
    with pytest.raises(ValueError, match="config.data.train_annotations"):
        trainer.validate_config(config)


@pytest.mark.e2e
def test_training_run_writes_checkpoints_logs_metrics_and_final_model(tmp_path):
    workdir = tmp_path / "run"
    results = trainer.train_and_evaluate(load_config(tiny_config(tmp_path)), str(workdir))

    assert results["metric"] == "PCKh@0.5" and 0.0 <= results["score"] <= 100.0
    assert results["epochs_completed"] == 2 and results["num_persons"] == 8
    assert json.loads((workdir / "results.json").read_text())["score"] == results["score"]
    model = keras.saving.load_model(workdir / "final.keras")
    assert model.num_stacks == 2 and model.num_keypoints == 16
    # final.keras carries what inference needs itself, not only inference.json beside it.
    assert model.pose_info.spec.name == "mpii" and model.pose_info.peak == 5.0
    assert model.pose_info.decode_method == "quarter" and model.pose_info.input_size == (64, 64)
    assert (workdir / "best.weights.h5").exists()
    assert json.loads((workdir / "best.json").read_text())["epoch"] in (1, 2)
    rows = list(csv.DictReader((workdir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "heatmaps_1_loss", "heatmaps_2_loss", "val_pck", "learning_rate"} <= set(rows[0])
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    assert sorted(os.listdir(workdir / "checkpoints"))[0] == "checkpoint"
    estimator = PoseEstimator(str(workdir))  # finds the run's spec and target peak
    assert estimator.spec.name == "mpii" and estimator.codec.peak == 5.0
    tags = tensorboard_tags(workdir / "tensorboard")
    # Keras writes val_* metrics to the validation run without the prefix.
    assert {"epoch_heatmaps_1_loss", "epoch_heatmaps_2_loss", "epoch_pck", "epoch_learning_rate"} <= tags
    assert "predicted_skeletons" in tags


@pytest.mark.e2e
def test_the_recipe_trains_on_a_custom_format_dataset_written_elsewhere(tmp_path):
    from tf_hourglass.data.synthetic import write_custom_dataset

    train = write_custom_dataset(str(tmp_path / "train"), 24, seed=11, image_size=128)
    val = write_custom_dataset(str(tmp_path / "val"), 8, seed=12, image_size=128)
    config = load_config(tiny_config(tmp_path, epochs=1))
    config.data.format = "custom"
    config.data.train_annotations = train
    config.data.val_annotations = val
    results = trainer.train_and_evaluate(config, str(tmp_path / "run"))
    assert results["metric"] == "PCKh@0.5"
    assert results["evaluated_on"] == "val" and results["num_persons"] == 8


def run_train_command(tmp_path, *flags):
    """Runs `python -m tf_hourglass.train` on the tiny config with `flags`."""
    return subprocess.run(
        [sys.executable, "-m", "tf_hourglass.train", f"--config={tiny_config(tmp_path)}", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.mark.e2e
def test_command_line_override_is_applied_and_checked_before_any_work(tmp_path):
    workdir = tmp_path / "run"
    process = run_train_command(tmp_path, f"--workdir={workdir}", "--config.train.batch_size=0")
    assert process.returncode != 0
    assert "config.train.batch_size must be an integer >= 1. Received: train.batch_size=0" in process.stderr
    assert not workdir.exists()


@pytest.mark.e2e
def test_mixed_bfloat16_with_xla_trains_keeps_float32_heatmaps_and_leaves_the_policy_float32(tmp_path):
    config = load_config(tiny_config(tmp_path, epochs=1))
    config.runtime.precision = "mixed_bfloat16"
    config.runtime.jit_compile = True
    results = trainer.train_and_evaluate(config, str(tmp_path / "run"))
    # The run set the policy for itself only: the model loads in float32 for export.
    assert keras.config.dtype_policy().name == "float32"
    model = keras.saving.load_model(tmp_path / "run" / "final.keras")
    assert model.get_layer("stack1_heatmap_conv").compute_dtype == "float32"
    try:  # under the training policy the same file computes in bfloat16
        keras.config.set_dtype_policy("mixed_bfloat16")
        bfloat16_model = keras.saving.load_model(tmp_path / "run" / "final.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    assert 0.0 <= results["score"] <= 100.0
    assert bfloat16_model.get_layer("stack1_heatmap_conv").compute_dtype == "bfloat16"
    assert all(output.dtype == "float32" for output in bfloat16_model.outputs)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert all(float(row["loss"]) > 0 for row in rows)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--config.train.unknown=3",
            "train: error: --config.train.unknown: no field 'unknown' in config.train",
        ),
        ("--config.train.batch_size=0", "train: error: config.train.batch_size must be an integer >= 1"),
        ("--workdir={file}", "train: error: --workdir {file!r} is a file, not a directory"),
        (
            "--config.data.train=mpii_h5",
            "train: error: config.data.train must be 'synthetic', 'tfrecord:PATTERN'",
        ),
    ],
)
@pytest.mark.e2e
def test_bad_flags_fail_with_one_line_and_no_traceback(tmp_path, flag, message):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    flag, message = flag.format(file=a_file), message.format(file=str(a_file))
    process = run_train_command(tmp_path, f"--workdir={tmp_path / 'run'}", flag)
    assert process.returncode != 0
    assert "Traceback" not in process.stderr
    assert message in process.stderr.strip().splitlines()[-1]
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "strategy", "expected"),
    [
        ("fpu sse2 avx512f avx512_bf16 avx512_vnni", "default", "mixed_bfloat16"),
        ("fpu sse2 avx512f amx_bf16 amx_tile", "mirrored", "mixed_bfloat16"),
        ("fpu sse2 avx2 fma", "default", "float32"),
        ("fpu sse2 avx512f avx512_bf16", "tpu", "float32"),
    ],
)
def test_auto_precision_is_bfloat16_only_on_cpus_that_compute_it_natively(
    tmp_path, monkeypatch, flags, strategy, expected
):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    read_flags = trainer.native_bfloat16_cpu_flags
    monkeypatch.setattr(trainer, "native_bfloat16_cpu_flags", lambda: read_flags(cpuinfo))
    config = load_config(tiny_config(tmp_path))
    config.runtime.strategy = strategy
    assert config.runtime.precision == "auto"
    precision, reason = trainer.resolve_precision(config.runtime)
    assert precision == expected
    assert reason.startswith("auto: ")
    config.runtime.precision = "float32"
    assert trainer.resolve_precision(config.runtime) == ("float32", "set in the config")


def test_cpu_flags_of_a_missing_cpuinfo_are_none(tmp_path):
    assert trainer.native_bfloat16_cpu_flags(tmp_path / "no_such_file") == []


AE_TINY_CONFIG = """
from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.num_train = 12
    config.data.num_val = 3
    config.data.num_test = 3
    config.data.synthetic_image_size = 64
    config.model.preset = "ae_tiny"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "constant"
    config.train.epochs = {epochs}
    config.train.steps_per_epoch = 2
    config.train.batch_size = 4
    config.eval.flip_test = False
    config.runtime.jit_compile = False
    config.runtime.verbose = 2
    return config
"""


@pytest.mark.e2e
def test_a_multi_person_preset_trains_on_synthetic_scenes_and_reports_coco_ap(tmp_path, capsys):
    path = tmp_path / "ae_tiny.py"
    path.write_text(AE_TINY_CONFIG.format(epochs=1))
    workdir = tmp_path / "run"
    results = trainer.train_and_evaluate(load_config(path), str(workdir))
    assert results["metric"] == "AP" and 0.0 <= results["score"] <= 100.0
    assert results["evaluated_on"] == "test" and results["num_images"] == 3
    assert set(results["coco_keypoints"]) >= {"AP", "AP50", "AP75", "APm", "APl", "AR"}
    assert "AP = " in capsys.readouterr().out
    model = keras.saving.load_model(workdir / "final.keras")
    assert model.pose_info.kind == "multi_person" and model.pose_info.spec.name == "coco"
    rows = list(csv.DictReader((workdir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0] and "val_ap" in rows[0]
    ground_truth = json.loads((workdir / "test_people.json").read_text())
    assert [image["id"] for image in ground_truth["images"]] == [15, 16, 17]
    # Resumed with one more epoch: it continues from the checkpoint.
    path.write_text(AE_TINY_CONFIG.format(epochs=2))
    assert trainer.train_and_evaluate(load_config(path), str(workdir))["epochs_completed"] == 2
    # The trained model finds people in a photo through the estimator.
    people = PoseEstimator(str(workdir)).predict(np.zeros((48, 64, 3), np.uint8))
    assert people["keypoints"].shape[1:] == (17, 2)
