"""A read-only folder, a full disk, an output under a file, ``--json`` naming a folder: one line per
command (export, evaluate, convert, train, predict) naming the path and the errno in words, never a
traceback; what was there before stays, and no temporary file is left behind.

Tests run as root in CI, where ``chmod 0o555`` stops no write: ``read_only`` then makes
``os.access`` answer as the kernel does for a user. A full disk is simulated where every
write ends, the rename of its temporary file, raising what TensorFlow's file system raises
for ENOSPC (``PATH; No space left on device``, as seen on a full tmpfs); one test has the
kernel itself refuse a write inside TensorFlow's C++ SavedModel writer (a file size limit).
"""

import errno
import json
import os
import resource
import signal

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import write_tiny_config

import tf_hourglass
from tf_hourglass import atomic_files, predict, train
from tf_hourglass.cli import fail_or_raise
from tf_hourglass.data import convert
from tf_hourglass.evaluate import main as evaluate_main
from tf_hourglass.export import __main__ as export_main

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
NO_PERMISSION = os.strerror(errno.EACCES)  # "Permission denied"


def one_line(capsys, command) -> str:
    """The error: the last line of stderr (after any progress bar), the only one, and no traceback."""
    err = capsys.readouterr().err
    line = err.rstrip("\n").split("\n")[-1].split("\r")[-1]
    assert (
        line.startswith(f"{command}: error: ") and err.count(": error: ") == 1 and "Traceback" not in err
    ), err
    return line


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: makes ``folder`` unwritable (0o555), for root too."""
    folders = []
    access = os.access

    def user_access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path) in folders:
            return False
        return access(path, mode, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "access", user_access)

    def make(folder):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        folders.append(str(folder))
        return folder

    yield make
    for folder in folders:
        os.chmod(folder, 0o755)


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(folder)``: the disk of ``folder`` has no room left for what is written there."""
    folders = []
    rename = tf.io.gfile.rename

    def full_rename(source, target, overwrite=False):
        if any(os.path.abspath(target).startswith(folder + os.sep) for folder in folders):
            raise tf.errors.ResourceExhaustedError(None, None, f"{source}; {NO_SPACE}")
        return rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", full_rename)
    return lambda folder: folders.append(str(folder))


def no_temporary_files(folder) -> bool:
    return not any(atomic_files.TEMPORARY_INFIX in name for _, _, files in os.walk(folder) for name in files)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    keras.utils.set_random_seed(11)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tf_hourglass.from_preset("hg_tiny").save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    y, x = np.mgrid[0:96, 0:128]
    path = tmp_path_factory.mktemp("photos") / "person.jpg"
    cv2.imwrite(str(path), np.stack([2 * x, 2 * y, np.full_like(x, 90)], axis=-1).astype(np.uint8))
    return path


# ----------------------------------------------------------------------------
# export: the output location is checked before the model is loaded
# ----------------------------------------------------------------------------

EXPORT_OUTPUTS = {"saved_model": "serving", "tflite": "model.tflite", "onnx": "model.onnx"}


def export(model, output, format, *extra):
    return export_main.main(["export", "--model", model, "--format", format, "--output", str(output), *extra])


@pytest.mark.parametrize("format", list(EXPORT_OUTPUTS))
def test_an_export_into_a_read_only_folder_fails_before_loading_the_model(
    tmp_path, capsys, read_only, format
):
    folder = read_only(tmp_path / "exports")
    output = folder / EXPORT_OUTPUTS[format]
    assert export(str(tmp_path / "not_loaded.keras"), output, format) == 1
    assert one_line(capsys, "export").endswith(
        f"--output {str(output)!r}: cannot write there, {folder}: {NO_PERMISSION}."
    )
    assert os.listdir(folder) == []


@pytest.mark.parametrize("format", list(EXPORT_OUTPUTS))
def test_an_export_on_a_full_disk_names_the_output_and_keeps_the_previous_one(
    tmp_path, capsys, full_disk, tiny_model, photo, format
):
    folder = tmp_path / "exports"
    output = folder / EXPORT_OUTPUTS[format]
    if format == "saved_model":  # what --overwrite takes for a previous export
        output.mkdir(parents=True)
        (output / "saved_model.pb").write_bytes(b"previous")
    else:
        folder.mkdir()
        output.write_bytes(b"previous")
    full_disk(folder)
    assert export(tiny_model, output, format, "--overwrite", f"--samples={photo.parent}") == 1
    assert one_line(capsys, "export").endswith(f": {output}: {NO_SPACE}")
    previous = output / "saved_model.pb" if format == "saved_model" else output
    assert previous.read_bytes() == b"previous"
    assert sorted(os.listdir(folder)) == [output.name] and no_temporary_files(folder)


# ----------------------------------------------------------------------------
# evaluate --json: checked before the evaluation
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpii_predictions(shared_data):
    root = shared_data / "mpii"
    return [
        "--predictions",
        str(root / "preds/hourglass_original_valid.h5"),
        "--ground-truth",
        str(root / "annot/valid.h5"),
    ]


def test_evaluate_json_into_a_read_only_folder_fails_before_evaluating(
    tmp_path, capsys, read_only, monkeypatch
):
    from tf_hourglass.evaluation import run

    monkeypatch.setattr(run, "evaluate_predictions", lambda *a: pytest.fail("evaluated"))
    folder = read_only(tmp_path / "results")
    argv = ["evaluate", "--predictions", "p.h5", "--ground-truth", "g.h5", "--json", str(folder / "r.json")]
    assert evaluate_main(argv) == 1
    assert one_line(capsys, "evaluate").endswith(f"cannot write there, {folder}: {NO_PERMISSION}.")


def test_evaluate_json_naming_a_folder_or_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["evaluate", "--predictions", "p.h5", "--ground-truth", "g.h5", "--json"]
    assert evaluate_main([*argv, str(tmp_path)]) == 1
    assert one_line(capsys, "evaluate").endswith(f"--json {tmp_path}: Is a directory; name a file.")
    under_a_file = tmp_path / "notes.txt" / "r.json"
    assert evaluate_main([*argv, str(under_a_file)]) == 1
    assert one_line(capsys, "evaluate").endswith(
        f"--json {under_a_file}: cannot write there, {tmp_path / 'notes.txt'} is a file."
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_evaluate_json_on_a_full_disk_keeps_the_previous_results(
    tmp_path, capsys, full_disk, mpii_predictions
):
    results = tmp_path / "results.json"
    results.write_text('{"previous": true}')
    full_disk(tmp_path)
    assert evaluate_main(["evaluate", *mpii_predictions, "--json", str(results)]) == 1
    assert one_line(capsys, "evaluate") == f"evaluate: error: {results}: {NO_SPACE}"
    assert json.loads(results.read_text()) == {"previous": True}
    assert os.listdir(tmp_path) == ["results.json"]


# ----------------------------------------------------------------------------
# convert --output
# ----------------------------------------------------------------------------


@pytest.fixture
def custom_dataset(tmp_path, photo):
    data = {
        "format": "tf_hourglass.custom.v1",
        "keypoint_names": ["a", "b"],
        "flip_pairs": [],
        "skeleton": [],
        "pck_normalizer": "head",
        "annotations": [
            {"image": str(photo), "keypoints": [[50, 40, 2], [60, 50, 2]], "box": [30, 20, 40, 50]}
        ],
    }
    (tmp_path / "train.json").write_text(json.dumps(data))
    return str(tmp_path / "train.json")


def test_convert_into_a_read_only_folder_is_one_line(tmp_path, capsys, read_only, custom_dataset):
    folder = read_only(tmp_path / "records")
    output = folder / "train"
    assert (
        convert.main(["convert", "--format=custom", f"--annotations={custom_dataset}", f"--output={output}"])
        == 1
    )
    assert one_line(capsys, "convert").endswith(
        f"--output {str(output)!r}: cannot write there, {folder}: {NO_PERMISSION}."
    )
    assert os.listdir(folder) == []


def test_convert_on_a_full_disk_keeps_the_previous_shards(tmp_path, capsys, full_disk, custom_dataset):
    argv = ["convert", "--format=custom", f"--annotations={custom_dataset}"]
    output = tmp_path / "records" / "train"
    assert convert.main([*argv, f"--output={output}"]) == 0
    before = {name: (output.parent / name).read_bytes() for name in os.listdir(output.parent)}
    full_disk(output.parent)
    assert convert.main([*argv, f"--output={output}", "--crop-margin=0.5"]) == 1
    shard = f"{output}-00000-of-00001.tfrecord"
    assert one_line(capsys, "convert") == f"convert: error: {shard}: {NO_SPACE}"
    assert {name: (output.parent / name).read_bytes() for name in os.listdir(output.parent)} == before


# ----------------------------------------------------------------------------
# train --workdir
# ----------------------------------------------------------------------------


def test_train_into_a_read_only_or_under_a_file_workdir_is_one_line(tmp_path, capsys, read_only):
    config = write_tiny_config(tmp_path, epochs=1)
    (tmp_path / "notes.txt").write_text("mine")
    under_a_file = tmp_path / "notes.txt" / "run"
    assert train.main(["train", f"--config={config}", f"--workdir={under_a_file}"]) == 1
    assert one_line(capsys, "train").endswith(
        f"--workdir {str(under_a_file)!r}: cannot write there, {tmp_path / 'notes.txt'} is a file."
    )
    folder = read_only(tmp_path / "runs")
    assert train.main(["train", f"--config={config}", f"--workdir={folder / 'run'}"]) == 1
    assert one_line(capsys, "train").endswith(f"cannot write there, {folder}: {NO_PERMISSION}.")
    assert os.listdir(folder) == [] and (tmp_path / "notes.txt").read_text() == "mine"


def test_train_on_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, full_disk):
    config = write_tiny_config(tmp_path, epochs=1)
    workdir = tmp_path / "run"
    full_disk(workdir)
    assert train.main(["train", f"--config={config}", f"--workdir={workdir}"]) == 1
    line = one_line(capsys, "train")
    assert line.startswith(f"train: error: {workdir}{os.sep}") and line.endswith(f": {NO_SPACE}")
    assert no_temporary_files(workdir)


# ----------------------------------------------------------------------------
# predict --output: checked before the model is loaded
# ----------------------------------------------------------------------------


def test_predict_into_a_read_only_folder_or_under_a_file_fails_before_loading_the_model(
    tmp_path, capsys, read_only, photo
):
    folder = read_only(tmp_path / "out")
    argv = ["predict", f"--model={tmp_path / 'not_loaded.keras'}", f"--input={photo}"]
    assert predict.main([*argv, f"--output={folder}"]) == 1
    assert one_line(capsys, "predict").endswith(
        f"--output {str(folder)!r}: cannot write there, {folder}: {NO_PERMISSION}."
    )
    (tmp_path / "notes.txt").write_text("mine")
    under_a_file = tmp_path / "notes.txt" / "out"
    assert predict.main([*argv, f"--output={under_a_file}"]) == 1
    assert one_line(capsys, "predict").endswith(f"cannot write there, {tmp_path / 'notes.txt'} is a file.")


def test_predict_on_a_full_disk_keeps_the_previous_picture(tmp_path, capsys, full_disk, tiny_model, photo):
    output = tmp_path / "out"
    output.mkdir()
    (output / "person.jpg").write_bytes(b"previous")
    full_disk(output)
    assert predict.main(["predict", f"--model={tiny_model}", f"--input={photo}", f"--output={output}"]) == 1
    assert one_line(capsys, "predict") == f"predict: error: {output / 'person.jpg'}: {NO_SPACE}"
    assert os.listdir(output) == ["person.jpg"] and (output / "person.jpg").read_bytes() == b"previous"


def test_a_file_system_error_is_one_line_and_any_other_error_keeps_its_traceback(capsys):
    python = PermissionError(errno.EACCES, NO_PERMISSION, "out/model.keras")
    assert fail_or_raise("export", python, (ValueError,)) == 1
    assert one_line(capsys, "export") == f"export: error: out/model.keras: {NO_PERMISSION}"  # not [Errno 13]
    full = tf.errors.ResourceExhaustedError(None, None, f"out/r.json.tmp-1a2b3c4d; {NO_SPACE}")
    assert fail_or_raise("evaluate", full, (ValueError,)) == 1
    assert one_line(capsys, "evaluate") == f"evaluate: error: out/r.json: {NO_SPACE}"
    bug = tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [2] vs. [3]")
    with pytest.raises(tf.errors.InvalidArgumentError):
        fail_or_raise("predict", bug, (ValueError, OSError))


def test_a_saved_model_the_kernel_refuses_to_write_is_one_line_naming_the_output(
    tmp_path, capsys, tiny_model, photo
):
    """A real failure inside TensorFlow's C++ writer: files of this process may not grow past 100 kB (EFBIG)."""
    if signal.getsignal(signal.SIGXFSZ) != signal.SIG_IGN:
        pytest.skip("SIGXFSZ is not ignored here: the file size limit would kill the process")
    output = tmp_path / "serving"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        status = export(tiny_model, output, "saved_model", f"--samples={photo.parent}")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert status == 1
    assert one_line(capsys, "export") == f"export: error: {output}: {os.strerror(errno.EFBIG)}"
    assert os.listdir(tmp_path) == []


def test_a_video_opencv_writes_incompletely_is_one_line_and_keeps_the_previous_one(
    tmp_path, capsys, tiny_model
):
    """cv2.VideoWriter reports no failure: past a file size limit (as on a full disk) it leaves a
    truncated mp4 without its index. The command must fail naming it, and keep the old video."""
    if signal.getsignal(signal.SIGXFSZ) != signal.SIG_IGN:
        pytest.skip("SIGXFSZ is not ignored here: the file size limit would kill the process")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(12):  # noise: frames that do not compress, so the annotated video is large
        writer.write(rng.integers(0, 256, (120, 160, 3), np.uint8))
    writer.release()
    output = tmp_path / "out"
    output.mkdir()
    (output / "clip.mp4").write_bytes(b"previous")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        status = predict.main(["predict", f"--model={tiny_model}", f"--input={video}", f"--output={output}"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert status == 1
    line = one_line(capsys, "predict")
    assert line.startswith(f"predict: error: {output / 'clip.mp4'}: OpenCV wrote an unreadable or incomplete")
    assert "of 12 frames; is the disk full?" in line
    assert os.listdir(output) == ["clip.mp4"] and (output / "clip.mp4").read_bytes() == b"previous"
