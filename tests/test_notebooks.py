"""The Colab notebooks run top to bottom at a tiny size, and their code cells are valid Python."""

import ast
import json
import os
import re
import sys
from pathlib import Path

import h5py
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

COLAB = Path(__file__).resolve().parents[1] / "colab"


def run_notebook(name, monkeypatch, env, cwd):
    """Runs ``colab/NAME`` top to bottom with ``env`` set, in ``cwd``: (its text outputs, its pictures)."""
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    notebook = nbformat.read(COLAB / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    return text, [o for o in outputs if "image/png" in o.get("data", {})]


@pytest.mark.e2e
def test_quickstart_notebook_runs_top_to_bottom_at_a_tiny_size(monkeypatch):
    tiny = {
        "QUICKSTART_NUM_TRAIN": "64",
        "QUICKSTART_NUM_TEST": "16",
        "QUICKSTART_EPOCHS": "2",
        "QUICKSTART_STEPS": "3",
        "QUICKSTART_PRESET": "hg_tiny",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    outputs, images = run_notebook("quickstart.ipynb", monkeypatch, tiny, COLAB)
    assert "PCKh@0.5 = " in outputs and "on 16 held-out figures" in outputs
    assert len(images) == 3  # examples, loss curves, predicted skeletons


@pytest.mark.e2e
def test_pretrained_weights_notebook_converts_a_checkpoint_and_draws_a_photo(
    monkeypatch, tmp_path, shared_data
):
    from pytorch_reference import random_state_dict, write_torch_checkpoint

    state = random_state_dict("pv", num_stacks=2, filters=16, num_keypoints=16, depth=2)
    checkpoint = tmp_path / "checkpoint.pt"
    write_torch_checkpoint(checkpoint, {"state_dict": {f"model.module.{k}": v for k, v in state.items()}})
    photo = next((shared_data / "people").glob("*.jpg"))
    env = {
        "PRETRAINED_CHECKPOINT": str(checkpoint),
        "PRETRAINED_PHOTO": str(photo),
        "PRETRAINED_INPUT_SIZE": "64",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    outputs, images = run_notebook("pretrained_weights.ipynb", monkeypatch, env, tmp_path)
    assert f"Converted {checkpoint} -> pretrained/hourglass.keras" in outputs
    assert "r_ankle: x=" in outputs and "l_wrist: x=" in outputs
    assert (tmp_path / "pretrained" / "hourglass.keras").exists()
    assert (tmp_path / "pretrained" / "inference.json").exists()
    assert len(images) == 1


@pytest.mark.e2e
def test_train_mpii_notebook_converts_trains_and_scores_the_mpii_sample(monkeypatch, tmp_path, shared_data):
    mpii = shared_data / "mpii"
    # The sample has 5 of the photos and no train.h5: train and score on valid.h5's people in them.
    photos = {p.name.encode() for p in (mpii / "images").glob("*.jpg")}
    sample_h5 = tmp_path / "valid_sample.h5"
    with h5py.File(mpii / "annot" / "valid.h5", "r") as full, h5py.File(sample_h5, "w") as sample:
        keep = np.array([name in photos for name in full["imgname"][:]])
        for key in full:
            sample[key] = full[key][:][keep]
    workdir = tmp_path / "run"
    env = {
        "MPII_DIR": str(mpii),
        "MPII_TRAIN_H5": str(sample_h5),
        "MPII_VALID_H5": str(sample_h5),
        "MPII_WORKDIR": str(workdir),
        "MPII_DATA_DIR": str(tmp_path / "data"),
        "MPII_SIZE": "hg_tiny,1,2,2",
        # The notebook's `!python -m ...` cells must find this environment's Python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    outputs, _ = run_notebook("train_mpii.ipynb", monkeypatch, env, COLAB.parent)
    assert len(list((tmp_path / "data").glob("train-*-of-00032.tfrecord"))) == 32
    assert (workdir / "final.keras").exists()
    assert "Traceback" not in outputs
    assert not re.search(r"^\w+: error:", outputs, re.MULTILINE)  # e.g. "evaluate: error: ..."
    results = json.loads((workdir / "mpii_valid.json").read_text())
    assert results["num_persons"] == int(keep.sum()) > 0
    assert "Total" in outputs


@pytest.mark.parametrize("name", ["quickstart.ipynb", "train_mpii.ipynb", "pretrained_weights.ipynb"])
def test_notebook_code_cells_are_valid_python(name):
    notebook = nbformat.read(COLAB / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            # Shell escapes (!cmd) are IPython, not Python: blank them out before parsing.
            source = "\n".join(
                "" if line.lstrip().startswith("!") or line.startswith("    --") else line
                for line in cell.source.splitlines()
            )
            ast.parse(source.replace("\\\n", " "), filename=f"{name}")
    assert os.path.getsize(COLAB / name) > 1000


@pytest.mark.e2e
def test_multi_person_notebook_trains_draws_people_and_exports_at_a_tiny_size(monkeypatch, tmp_path):
    tiny = {
        "AE_PRESET": "ae_tiny",
        "AE_IMAGE_SIZE": "64",
        "AE_NUM_TRAIN": "8",
        "AE_EPOCHS": "1",
        "AE_STEPS": "2",
        "AE_WORKDIR": str(tmp_path / "run"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    outputs, images = run_notebook("multi_person.ipynb", monkeypatch, tiny, COLAB)
    assert "held-out COCO keypoint AP:" in outputs and "people; scores" in outputs
    assert "multi_person coco" in outputs
    assert len(images) == 2  # the scenes, the people found
    assert (tmp_path / "run" / "ae_exported.keras").exists()
    assert (
        "parity tflite on " in outputs and "TFLite: " in outputs and (tmp_path / "run" / "ae.tflite").exists()
    )
