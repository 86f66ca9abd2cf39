"""Interrupted and failed training runs: resuming after SIGKILL, NaN loss, an incompatible workdir.

Apart from tests/test_training.py so that two pytest workers can run them side by side.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_helpers import load_config, write_tiny_config

from tf_hourglass.training import run_setup, trainer
from tf_hourglass.training.losses import HeatmapLoss
from tf_hourglass.training.workdir import WorkdirInUseError, workdir_lock

pytestmark = pytest.mark.e2e  # every test here trains, exports or starts processes

ROOT = Path(__file__).resolve().parents[1]


def run_training(config_path, workdir):
    return subprocess.Popen(
        [sys.executable, "-m", "tf_hourglass.train", f"--config={config_path}", f"--workdir={workdir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def saved_epochs(workdir):
    state = workdir / "checkpoints" / "checkpoint"
    if not state.exists():
        return 0
    line = state.read_text().splitlines()[0]  # model_checkpoint_path: "ckpt-N"
    return int(line.rsplit("-", 1)[1].rstrip('"'))


def test_sigkilled_run_resumes_from_the_last_saved_epoch(tmp_path):
    config_path = write_tiny_config(tmp_path, epochs=40)
    workdir = tmp_path / "run"
    process = run_training(config_path, workdir)
    deadline = time.monotonic() + 240
    while saved_epochs(workdir) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = saved_epochs(workdir)
    assert 2 <= killed_at < 40, "the run should have been killed mid-training"

    finish = write_tiny_config(tmp_path, epochs=killed_at + 2)
    # Same config but two more epochs, so the resumed run is short.
    process = run_training(finish, workdir)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert f"(epoch {killed_at})" in output
    assert f"Epoch {killed_at + 1}/{killed_at + 2}" in output
    assert "Epoch 1/" not in output
    results = json.loads((workdir / "results.json").read_text())
    assert results["epochs_completed"] == killed_at + 2


class NaNLoss(HeatmapLoss):
    """A loss that diverges at once, as a run with a bad learning rate would."""

    def call(self, y_true, y_pred):
        return super().call(y_true, y_pred) * float("nan")


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoints(tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=1)), str(workdir))
    before = {name: (workdir / name).read_bytes() for name in ("best.weights.h5", "best.json", "final.keras")}

    monkeypatch.setattr(run_setup, "HeatmapLoss", NaNLoss)
    with pytest.raises(FloatingPointError, match="training loss became nan at batch 0"):
        trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=3)), str(workdir))
    assert {name: (workdir / name).read_bytes() for name in before} == before
    assert saved_epochs(workdir) == 1


def test_resuming_with_an_incompatible_config_names_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=1)), str(workdir))
    config = load_config(write_tiny_config(tmp_path, epochs=2))
    config.model.filters = 32
    with pytest.raises(ValueError, match="does not match this config"):
        trainer.train_and_evaluate(config, str(workdir))


def test_a_second_run_into_a_busy_workdir_fails_at_once_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = load_config(write_tiny_config(tmp_path, epochs=1))
    with workdir_lock(str(workdir)):  # the first run, still training
        with pytest.raises(WorkdirInUseError, match=f"{workdir}.* in use by another training run"):
            trainer.train_and_evaluate(config, str(workdir))
    assert sorted(os.listdir(workdir)) == ["train.lock"]


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    (tmp_path / "train.lock").write_text("999999\n")  # no live process holds it
    with workdir_lock(str(tmp_path)):
        assert (tmp_path / "train.lock").read_text() == f"{os.getpid()}\n"


def test_resuming_drops_metrics_rows_of_epochs_that_are_run_again(tmp_path):
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=1)), str(workdir))
    # Killed after the CSV row of epoch 1 but before its checkpoint: epoch 1 is run again.
    with open(workdir / "metrics.csv", "a") as f:
        f.write("1,9.9,0.001\n")
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=2)), str(workdir))
    rows = (workdir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,")
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]
    assert "9.9" not in rows[2]


def test_resuming_with_a_changed_config_says_what_changed_and_needs_the_flag(tmp_path, capsys):
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=1)), str(workdir))
    saved = (workdir / "config.json").read_text()
    config = load_config(write_tiny_config(tmp_path, epochs=2))
    config.train.learning_rate = 0.5
    config.data.sigma = 3.0
    with pytest.raises(ValueError) as error:
        trainer.train_and_evaluate(config, str(workdir))
    message = str(error.value)
    assert "data.sigma: 1.0 -> 3.0" in message and "train.learning_rate: 0.001 -> 0.5" in message
    assert "--config.train.allow_config_change=True" in message
    assert (workdir / "config.json").read_text() == saved  # nothing rewritten
    # More epochs and another runtime are a plain resume; the flag lets the changed config go on.
    config.train.allow_config_change = True
    results = trainer.train_and_evaluate(config, str(workdir))
    assert results["epochs_completed"] == 2
    assert json.loads((workdir / "config.json").read_text())["data"]["sigma"] == 3.0


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=2)), str(workdir))
    checkpoints = workdir / "checkpoints"
    data = sorted(checkpoints.glob("ckpt-2.data-*"))[0]
    data.write_bytes(data.read_bytes()[:100])  # cut short, as a full disk leaves it
    (checkpoints / "ckpt-3_temp").mkdir()  # a save killed half-way
    (checkpoints / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    results = trainer.train_and_evaluate(load_config(write_tiny_config(tmp_path, epochs=3)), str(workdir))
    out = capsys.readouterr().out
    assert "cannot read the checkpoint" in out and "ckpt-2" in out
    assert "Resuming from" in out and "ckpt-1 (epoch 1)" in out
    assert results["epochs_completed"] == 3
    assert not (checkpoints / "ckpt-3_temp").exists()


def test_a_field_added_after_the_run_started_is_unchanged_at_its_default():
    from tf_hourglass.training.base_config import get_base_config
    from tf_hourglass.training.workdir import config_changes

    current = json.loads(get_base_config().to_json_best_effort())
    saved = json.loads(json.dumps(current))
    del saved["train"]["tag_loss_weight"], saved["data"]["scene_people"]  # as written by an earlier version
    assert config_changes(saved, current) == []
    current["train"]["tag_loss_weight"] = 0.01
    assert config_changes(saved, current) == ["train.tag_loss_weight: '<absent>' -> 0.01"]
