"""Bad input files and values each give one line naming the file (or flag), never a traceback or a wrong word."""

import json
import pickle
import zipfile

import h5py
import numpy as np
import pytest
from pytorch_reference import random_state_dict, write_torch_checkpoint

from tf_hourglass import predict, train
from tf_hourglass.data import convert, tfrecord
from tf_hourglass.evaluation import run
from tf_hourglass.export import __main__ as export_main
from tf_hourglass.model.info import ModelInfo
from tf_hourglass.model_loader import read_model_info
from tf_hourglass.prediction import estimator
from tf_hourglass.training.workdir import drop_metrics_rows_from, read_json
from tf_hourglass.weights import CheckpointError, read_torch_checkpoint
from tf_hourglass.weights.__main__ import main as weights_main


def _one_line(capsys, command) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"{command}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _custom_json(path, keypoints):
    data = {
        "format": "tf_hourglass.custom.v1",
        "keypoint_names": ["a", "b"],
        "flip_pairs": [],
        "skeleton": [],
        "pck_normalizer": "head",
        "annotations": [{"image": "p.jpg", "keypoints": keypoints, "box": [0, 0, 20, 20]}],
    }
    path.write_text(json.dumps(data))
    return str(path)


def _convert(annotations, output, format="custom", *extra):
    return convert.main(
        ["convert", f"--format={format}", f"--annotations={annotations}", f"--output={output}", *extra]
    )


def test_a_json_coordinate_of_10_to_the_400_is_one_line_naming_the_file(tmp_path, capsys):
    annotations = _custom_json(tmp_path / "huge.json", [[10**400, 5, 2], [3, 4, 2]])
    assert _convert(annotations, tmp_path / "out/x") == 1
    assert f"{annotations}: annotations[0] 'keypoints' is not numeric" in _one_line(capsys, "convert")


def test_json_nested_100000_deep_is_one_line_naming_the_file(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    assert _convert(deep, tmp_path / "out/x") == 1
    assert f"{deep}: JSON nested too deeply to read." in _one_line(capsys, "convert")
    argv = [
        "predict",
        "--model=missing.keras",
        "--input=p.jpg",
        f"--output={tmp_path / 'o'}",
        f"--spec={deep}",
    ]
    assert predict.main(argv) == 1
    assert f"{deep}: JSON nested too deeply to read." in _one_line(capsys, "predict")
    sidecar = tmp_path / "train.spec.json"
    sidecar.write_text(deep.read_text())
    with pytest.raises(ValueError, match=f"^{sidecar}: JSON nested too deeply"):
        tfrecord.read_spec_sidecar(str(tmp_path / "train"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run/inference.json").write_text(deep.read_text())
    with pytest.raises(ValueError, match=f"^{tmp_path / 'run/inference.json'}: not valid JSON"):
        read_model_info(str(tmp_path / "run"), ModelInfo())


def test_a_coco_num_keypoints_of_10_to_the_400_is_one_line_naming_the_file(tmp_path, capsys):
    annotations = tmp_path / "coco.json"
    person = {
        "id": 1,
        "image_id": 1,
        "keypoints": [10, 10, 2] * 17,
        "bbox": [0, 0, 20, 20],
        "num_keypoints": 0,
    }
    data = {"images": [{"id": 1, "file_name": "p.jpg"}], "annotations": [person], "categories": [{"id": 1}]}
    annotations.write_text(json.dumps(data).replace('"num_keypoints": 0', f'"num_keypoints": {10**400}'))
    assert _convert(annotations, tmp_path / "out/x", "coco", f"--images={tmp_path}") == 1
    assert f"{annotations}: annotations[0] 'num_keypoints' is not numeric" in _one_line(capsys, "convert")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "bad.json: not valid JSON (Expecting property name"),
        ('{"keypoint_names": 3}', "--spec {path}: not a keypoint spec ("),
    ],
)
def test_a_bad_spec_json_names_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    argv = [
        "predict",
        "--model=missing.keras",
        "--input=p.jpg",
        f"--output={tmp_path / 'o'}",
        f"--spec={path}",
    ]
    assert predict.main(argv) == 1
    assert message.format(path=path) in _one_line(capsys, "predict")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("raise RuntimeError('boom')\n", "--config {path}: loading it raised RuntimeError: boom"),
        ("[" * 200 + "\n", "--config {path}: loading it raised SyntaxError: "),
        (
            "def get_config():\n    return {}['train']\n",
            "--config {path}: loading it raised KeyError: 'train'",
        ),
        (None, "--config {path}: no such file."),
    ],
)
def test_a_config_file_that_raises_or_is_missing_is_one_line_naming_it(tmp_path, capsys, content, message):
    path = tmp_path / "config.py"
    if content is not None:
        path.write_text(content)
    assert train.main(["train", f"--config={path}", f"--workdir={tmp_path / 'run'}"]) == 1
    assert message.format(path=path) in _one_line(capsys, "train")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "box",
    [(0, 0, 1e30, 1e30), (-1e6, 0, 1e6 + 5, 50), (0, 0, float("inf"), 10), (0, 0, 100, 1e5)],
)
def test_a_box_mostly_off_the_image_is_refused(box):
    with pytest.raises(ValueError, match=r"box \(x, y, w, h\) = .* (has less than 1% of its|must be finite)"):
        estimator.check_box(box, 640, 480)


def test_a_box_partly_off_the_image_is_kept():
    assert estimator.check_box((-300, -10, 400, 500), 640, 480) == (-300.0, -10.0, 400.0, 500.0)


def test_a_refused_numpy_dtype_in_a_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "objects.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"a": np.dtype(object)}, protocol=2))
    with pytest.raises(CheckpointError, match=f"^{path}: a NumPy dtype that holds Python objects"):
        read_torch_checkpoint(path)


def test_a_truncated_zip_checkpoint_is_called_truncated(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = random_state_dict("pv", num_stacks=1, filters=8, num_keypoints=4, depth=1)
    write_torch_checkpoint(path, {"state_dict": state})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"^{path}: a truncated or damaged torch checkpoint"):
        read_torch_checkpoint(path)


def test_a_folder_given_as_the_checkpoint_is_called_a_folder(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    argv = ["weights", "--source=pv", f"--checkpoint={folder}", f"--output={tmp_path / 'm.keras'}"]
    assert weights_main(argv) == 1
    assert f"{folder}: a folder; give the checkpoint file in it." in _one_line(capsys, "weights")


@pytest.mark.parametrize("format", ["mpii_h5", "mpii_json"])
def test_an_mpii_scale_that_is_a_string_names_the_file(tmp_path, capsys, format):
    n, k = 1, 16
    if format == "mpii_h5":
        annotations = tmp_path / "valid.h5"
        with h5py.File(annotations, "w") as f:
            f["imgname"] = np.array([b"p.jpg"])
            f["part"] = np.full((n, k, 2), 10.0)
            f["visible"] = np.ones((n, k))
            f["center"] = np.full((n, 2), 30.0)
            f["scale"] = np.array([b"big"])
            f["normalize"] = np.ones(n)
        message = f"{annotations}: key 'scale' holds |S3 values, not numbers."
    else:
        annotations = tmp_path / "valid.json"
        entry = {"image": "p.jpg", "center": [30, 30], "scale": "1.5", "joints": [[10, 10]] * k}
        annotations.write_text(json.dumps([dict(entry, joints_vis=[1] * k)]))
        message = f"{annotations}: record 0 'scale' is not numeric (a string"
    assert _convert(annotations, tmp_path / "out/x", format, f"--images={tmp_path}") == 1
    assert message in _one_line(capsys, "convert")


def test_a_damaged_metrics_csv_names_the_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n0,1.5\nlost power here\n")
    with pytest.raises(ValueError, match=f"^{path}: a row that does not start with an epoch number"):
        drop_metrics_rows_from(str(path), 1)
    path.write_bytes(b"epoch,loss\n\xff\xfe\n")
    with pytest.raises(ValueError, match=f"^{path}: not a text file"):
        drop_metrics_rows_from(str(path), 1)


def test_a_damaged_best_json_names_the_file(tmp_path):
    path = tmp_path / "best.json"
    path.write_text('{"epoch": 3, "score"')
    with pytest.raises(ValueError, match=f"^{path}: not valid JSON"):
        read_json(str(path))


@pytest.mark.parametrize("content", ["{}", '{"spec": 3, "codec": {}}', "[1]"])
def test_an_inference_json_without_its_fields_names_the_file(tmp_path, content):
    (tmp_path / "inference.json").write_text(content)
    with pytest.raises(
        ValueError, match=f"^{tmp_path / 'inference.json'}: not the settings a training run writes"
    ):
        read_model_info(str(tmp_path), ModelInfo())


def test_missing_images_without_an_images_folder_do_not_say_under_none(tmp_path):
    annotations = _custom_json(tmp_path / "a.json", [[10, 5, 2], [3, 4, 2]])
    with pytest.raises(FileNotFoundError) as error:
        run.evaluate_model("missing.keras", "custom", annotations, None, progress=False)
    message = str(error.value)
    assert "None" not in message and f"1 image(s) of {annotations} are missing" in message


def test_an_export_output_under_a_file_is_named_as_such(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    output = str(blocker / "model.onnx")
    argv = ["export", "--model", str(tmp_path / "m.keras"), "--format", "onnx", "--output", output]
    assert export_main.main(argv) == 1
    err = _one_line(capsys, "export")
    assert (
        f"--output {output!r}: cannot write there, {blocker} is a file." in err and "File exists" not in err
    )
    assert blocker.read_text() == "mine"


def test_a_legacy_checkpoint_cut_after_its_magic_number_is_called_truncated(tmp_path):
    path = tmp_path / "checkpoint.pth.tar"
    write_torch_checkpoint(path, {"state_dict": {"w": np.zeros(3, np.float32)}}, legacy=True)
    magic_length = len(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    path.write_bytes(path.read_bytes()[: magic_length + 3])
    with pytest.raises(CheckpointError, match=f"^{path}: a truncated or damaged torch checkpoint"):
        read_torch_checkpoint(path)
