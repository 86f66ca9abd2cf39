"""python -m tf_hourglass.evaluate: the official MPII numbers, PCK, COCO AP, models over datasets, bad inputs."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import zlib

import cv2
import h5py
import keras
import numpy as np
import pytest
import scipy.io

import tf_hourglass
from tf_hourglass.data import keypoint_specs, readers
from tf_hourglass.data.records import PoseRecord
from tf_hourglass.evaluate import main as evaluate_main
from tf_hourglass.evaluation import metrics, run

# The original 8-stack Hourglass on Tompson's 2,958 MPII validation persons,
# official protocol (the same numbers as tests/test_metrics.py).
HOURGLASS_FROM_VALID_H5 = {
    "pckh@0.5": [96.69, 94.68, 88.53, 83.38, 87.48, 83.09, 79.07, 88.88, 88.04],
    "pckh@0.1": [40.74, 33.05, 33.53, 29.11, 15.23, 22.16, 24.75, 31.90, 28.70],
    "auc": [71.17, 65.58, 61.21, 56.55, 49.71, 52.58, 51.88, 61.12, 58.82],
}


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "tf_hourglass.evaluate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def assert_pinned(results, pinned):
    for key, values in pinned.items():
        for name, value in zip(metrics.MPII_COLUMNS, values, strict=True):
            assert results[key][name] == pytest.approx(value, abs=0.005 + 1e-9), (key, name)


@pytest.fixture(scope="module")
def mpii(shared_data):
    root = shared_data / "mpii"
    return {
        "valid_h5": str(root / "annot" / "valid.h5"),
        "gt_valid_mat": str(root / "annot" / "gt_valid.mat"),
        "preds": str(root / "preds" / "hourglass_original_valid.h5"),
        "images": str(root / "images"),
        "json": str(root / "annot" / "sample_mmpose.json"),
    }


@pytest.fixture(scope="module")
def hourglass_preds(mpii):
    with h5py.File(mpii["preds"], "r") as f:
        return f["preds"][:]


# ----------------------------------------------------------------------------
# Predictions files
# ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_cli_gives_the_official_hourglass_numbers_and_writes_json(mpii, tmp_path):
    out = tmp_path / "results.json"
    result = run_cli("--predictions", mpii["preds"], "--ground-truth", mpii["valid_h5"], "--json", str(out))
    assert result.returncode == 0, result.stderr
    header, at_05, at_01, auc = result.stdout.splitlines()[:4]
    assert header.split() == ["PCKh", *metrics.MPII_COLUMNS]
    assert at_05.split()[-1] == "88.04" and at_01.split()[-1] == "28.70" and auc.split()[-1] == "58.82"
    results = json.loads(out.read_text())
    assert_pinned(results, HOURGLASS_FROM_VALID_H5)
    assert results["num_persons"] == 2958
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_gt_valid_mat_and_mat_predictions_give_the_same_total(mpii, hourglass_preds, tmp_path):
    results = run.evaluate_predictions(mpii["preds"], mpii["gt_valid_mat"])
    assert results["pckh@0.5"]["Total"] == pytest.approx(88.04, abs=0.005)
    # The same predictions as .mat: 'preds' (N, K, 2) and the kit's 'pos_pred_src' (K, 2, N).
    scipy.io.savemat(tmp_path / "preds.mat", {"preds": hourglass_preds})
    scipy.io.savemat(tmp_path / "kit.mat", {"pos_pred_src": np.transpose(hourglass_preds, (1, 2, 0))})
    for path in ("preds.mat", "kit.mat"):
        again = run.evaluate_predictions(str(tmp_path / path), mpii["valid_h5"])
        assert again["pckh@0.5"] == pytest.approx(
            run.evaluate_predictions(mpii["preds"], mpii["valid_h5"])["pckh@0.5"]
        )
    # gt_valid.mat also holds Tompson et al.'s predictions.
    tompson = run.evaluate_predictions(mpii["gt_valid_mat"], mpii["gt_valid_mat"])
    assert tompson["pckh@0.5"]["Total"] == pytest.approx(82.34, abs=0.01)


def test_lsp_and_flic_give_pck_at_0_2(shared_data, tmp_path):
    joints = scipy.io.loadmat(shared_data / "lsp" / "joints.mat")["joints"]  # (3, 14, N), 1-based
    raw = np.transpose(joints[:2], (2, 1, 0))
    with h5py.File(tmp_path / "lsp.h5", "w") as f:
        f["preds"] = raw
    results = run.evaluate_predictions(str(tmp_path / "lsp.h5"), str(shared_data / "lsp" / "joints.mat"))
    assert results["protocol"] == "pck" and results["metric"] == "PCK@0.2"
    table = results["pck@0.2"]
    assert list(table) == [*keypoint_specs.LSP.keypoint_names, "Total"]
    assert table["Total"] == 100.0
    text = run.format_results(results)
    assert "r_ankle" in text and "Total" in text and "100.00" in text

    with h5py.File(shared_data / "flic" / "annot" / "valid.h5", "r") as f:
        part = f["part"][:]
    with h5py.File(tmp_path / "flic.h5", "w") as f:
        f["preds"] = part + np.array([1000.0, 0.0])  # far off: nothing is correct
    flic = run.evaluate_predictions(
        str(tmp_path / "flic.h5"), str(shared_data / "flic" / "annot" / "valid.h5")
    )
    assert list(flic["pck@0.2"]) == [*keypoint_specs.FLIC.keypoint_names, "Total"]
    assert flic["pck@0.2"]["Total"] == 0.0


def test_coco_results_file_gives_ap(shared_data, tmp_path):
    pytest.importorskip("pycocotools")
    gt_path = shared_data / "coco" / "person_keypoints_sample.json"
    gt = json.loads(gt_path.read_text())
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a["num_keypoints"] > 0 and not a.get("iscrowd", 0)
    ]
    (tmp_path / "results.json").write_text(json.dumps(perfect))
    results = run.evaluate_predictions(str(tmp_path / "results.json"), str(gt_path))
    assert results["protocol"] == "coco"
    assert results["coco_keypoints"]["AP"] == pytest.approx(1.0)

    detections = str(shared_data / "coco" / "person_detections_sample.json")  # boxes, no keypoints
    with pytest.raises(ValueError, match="person_detections_sample.json: entry 0 lacks \\['keypoints'\\]"):
        run.evaluate_predictions(detections, str(gt_path))
    (tmp_path / "short.json").write_text(json.dumps([{**perfect[0], "keypoints": [1, 2, 3]}]))
    with pytest.raises(ValueError, match="short.json: entry 0 has 3 keypoint values; expected 51"):
        run.evaluate_predictions(str(tmp_path / "short.json"), str(gt_path))
    (tmp_path / "unknown.json").write_text(json.dumps([{**perfect[0], "image_id": 123456789}]))
    with pytest.raises(ValueError, match="unknown.json has results for 1 image id.*123456789"):
        run.evaluate_predictions(str(tmp_path / "unknown.json"), str(gt_path))


# ----------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------


def _write_preds(path, preds, key="preds"):
    with h5py.File(path, "w") as f:
        f[key] = preds
    return str(path)


def test_bad_prediction_files_name_the_file_and_the_shapes(mpii, hourglass_preds, tmp_path):
    cases = [
        (_write_preds(tmp_path / "k.h5", hourglass_preds[:, :14]), [r"\(2958, 14, 2\)", r"\(2958, 16, 2\)"]),
        (_write_preds(tmp_path / "n.h5", hourglass_preds[:100]), ["100 persons", "2958", r"\(100, 16, 2\)"]),
        (_write_preds(tmp_path / "flat.h5", hourglass_preds.reshape(2958, 32)), [r"\(2958, 32\)"]),
        (_write_preds(tmp_path / "key.h5", hourglass_preds, key="x"), ["no 'preds'", "'x'"]),
    ]
    (tmp_path / "junk.h5").write_text("not hdf5")
    cases.append((str(tmp_path / "junk.h5"), ["not a readable HDF5"]))
    (tmp_path / "p.txt").write_text("1 2")
    cases.append((str(tmp_path / "p.txt"), ["Unsupported predictions file"]))
    for path, patterns in cases:
        with pytest.raises(ValueError) as info:
            run.evaluate_predictions(path, mpii["valid_h5"])
        message = str(info.value)
        assert path in message, message
        for pattern in patterns:
            assert re.search(pattern, message), (pattern, message)
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        run.evaluate_predictions(str(tmp_path / "nowhere.h5"), mpii["valid_h5"])
    with pytest.raises(FileNotFoundError, match="nowhere.mat"):
        run.evaluate_predictions(mpii["preds"], str(tmp_path / "nowhere.mat"))


@pytest.mark.e2e
def test_cli_bad_input_exits_non_zero_without_writing_json(mpii, hourglass_preds, tmp_path):
    bad = _write_preds(tmp_path / "bad.h5", hourglass_preds[:, :14])
    out = tmp_path / "results.json"
    result = run_cli("--predictions", bad, "--ground-truth", mpii["valid_h5"], "--json", str(out))
    assert result.returncode != 0
    assert bad in result.stderr and "(2958, 14, 2)" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["bad.h5"]


# ----------------------------------------------------------------------------
# A model over a dataset
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    keras.utils.set_random_seed(5)
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for k in (16, 17):
        paths[k] = str(root / f"tiny{k}.keras")
        tf_hourglass.from_preset("hg_tiny", num_keypoints=k).save(paths[k])
    return paths


@pytest.fixture(scope="module")
def valid5(mpii, tmp_path_factory):
    """The five rows of valid.h5 whose images are in shared/data/mpii/images."""
    path = tmp_path_factory.mktemp("mpii") / "valid5.h5"
    with h5py.File(mpii["valid_h5"], "r") as src, h5py.File(path, "w") as dst:
        for key in src.keys():
            dst[key] = src[key][:5]
    return str(path)


@pytest.mark.e2e
def test_cli_model_over_mpii_gives_the_full_table(mpii, valid5, tiny_keras, tmp_path):
    out = tmp_path / "model.json"
    result = run_cli(
        "--model", tiny_keras[16], "--format", "mpii_h5", "--annotations", valid5,
        "--images", mpii["images"], "--flip", "--batch-size", "2", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["PCKh", *metrics.MPII_COLUMNS]
    results = json.loads(out.read_text())
    assert results["protocol"] == "mpii" and results["num_persons"] == 5
    assert set(results["pckh@0.5"]) == set(metrics.MPII_COLUMNS)
    assert results["inputs"]["flip"] is True


def test_model_over_custom_data_skips_persons_without_ground_truth(mpii, valid5, tiny_keras, tmp_path):
    spec, records = readers.read_mpii_h5(valid5, mpii["images"])
    unannotated = PoseRecord(
        records[0].image_path,
        records[0].center,
        records[0].scale,
        np.zeros((16, 2)),
        [False] * 16,
        [False] * 16,
    )
    custom = str(tmp_path / "custom.json")
    readers.write_custom(custom, spec, [*records, unannotated])
    results = run.evaluate_model(tiny_keras[16], "custom", custom, None, progress=False)
    assert results["protocol"] == "pck" and results["metric"] == "PCKh@0.5"
    assert results["num_predicted"] == 5
    assert list(results["pckh@0.5"]) == [*spec.keypoint_names, "Total"]


@pytest.mark.e2e
def test_model_over_coco_gives_ap(shared_data, tiny_keras):
    pytest.importorskip("pycocotools")
    coco = shared_data / "coco"
    results = run.evaluate_model(
        tiny_keras[17],
        "coco",
        str(coco / "person_keypoints_sample.json"),
        str(coco / "images"),
        progress=False,
    )
    assert results["protocol"] == "coco" and results["num_predicted"] == 12
    assert 0.0 <= results["coco_keypoints"]["AP"] <= 1.0


def test_model_errors_come_before_the_model_runs(mpii, valid5, tiny_keras, tmp_path):
    with pytest.raises(ValueError, match="head size"):
        run.evaluate_model(tiny_keras[16], "mpii_json", mpii["json"], mpii["images"], progress=False)
    with pytest.raises(ValueError, match="17 keypoints"):
        run.evaluate_model(tiny_keras[17], "mpii_h5", valid5, mpii["images"], progress=False)
    with pytest.raises(FileNotFoundError, match="5 image"):
        run.evaluate_model(tiny_keras[16], "mpii_h5", valid5, str(tmp_path), progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        run.evaluate_model(str(tmp_path / "nowhere.keras"), "mpii_h5", valid5, mpii["images"], progress=False)


def test_json_output_has_no_nan_and_needs_an_existing_folder(tmp_path):
    path = tmp_path / "r.json"
    run.write_results_json(str(path), {"a": float("nan"), "b": np.float32(1.5), "c": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": None, "b": 1.5, "c": [0, 1]}
    with pytest.raises(FileNotFoundError, match="missing"):
        run.check_output_path(str(tmp_path / "missing" / "r.json"))


def test_nan_and_inf_predictions_are_counted_in_a_warning(mpii, hourglass_preds, tmp_path, caplog):
    preds = hourglass_preds.astype(np.float64)
    preds[:10] = np.nan
    preds[10, 3] = (np.inf, 5.0)
    path = _write_preds(tmp_path / "nan.h5", preds)
    results = run.evaluate_predictions(path, mpii["valid_h5"])
    assert results["protocol"] == "mpii"
    assert f"predictions file {path}: 161 of 47328 predicted joints are NaN or infinite" in caplog.text


def test_data_flag_names_the_dataset_as_export_calibration_does(mpii, valid5, tiny_keras, tmp_path, capsys):
    argv = ["evaluate", "--model", tiny_keras[16], "--batch-size", "2"]
    spelled_once = tmp_path / "once.json"
    status = evaluate_main(
        [*argv, "--data", f"mpii_h5:{valid5}:{mpii['images']}", "--json", str(spelled_once)]
    )
    assert status == 0, capsys.readouterr().err
    spelled_apart = tmp_path / "apart.json"
    status = evaluate_main(
        [
            *argv,
            "--format",
            "mpii_h5",
            "--annotations",
            valid5,
            "--images",
            mpii["images"],
            "--json",
            str(spelled_apart),
        ]
    )
    assert status == 0
    once, apart = json.loads(spelled_once.read_text()), json.loads(spelled_apart.read_text())
    assert once["pckh@0.5"] == apart["pckh@0.5"] and once["num_persons"] == 5
    capsys.readouterr()
    assert evaluate_main([*argv, "--data", "synthetic"]) == 1
    assert "a model is scored on a dataset in a reader format" in capsys.readouterr().err
    assert evaluate_main([*argv, "--data", f"mpii_h5:{valid5}", "--format", "mpii_h5"]) == 2


def test_model_over_data_skips_and_counts_images_over_the_budget_and_fifos(
    mpii, valid5, tiny_keras, tmp_path
):
    spec, records = readers.read_mpii_h5(valid5, mpii["images"])
    huge = bytearray(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    huge[16:24] = (10000).to_bytes(4, "big") * 2  # claims 10000 x 10000; CRC fixed
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")
    (tmp_path / "huge.png").write_bytes(bytes(huge))
    os.mkfifo(tmp_path / "pipe.jpg")  # read by the pipeline, it would wait for a writer forever
    hostile = [
        dataclasses.replace(records[0], image_path=str(tmp_path / n)) for n in ("huge.png", "pipe.jpg")
    ]
    custom = str(tmp_path / "custom.json")
    readers.write_custom(custom, spec, [*records, *hostile])
    results = run.evaluate_model(tiny_keras[16], "custom", custom, None, progress=False)
    assert results["num_predicted"] == 5 and results["num_unreadable_images"] == 2
    assert results["num_skipped"] == 2
