"""ONNX export checked with ONNX Runtime; TensorRT / TF-TRT without a GPU; output safety (--overwrite, temp files)."""

import os

import numpy as np
import onnx
import onnxruntime
import pytest
from export_helpers import run_export_cli, tiny_model, tiny_model_path

from tf_hourglass.export import VerificationError, __main__, export_model, exporter, verify
from tf_hourglass.model import as_stack_list


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return export_model(tiny_model_path(), path, "onnx", log=lambda line: None)


@pytest.mark.e2e
def test_onnx_graph_is_valid_with_opset_17_and_a_dynamic_batch(onnx_export):
    proto = onnx.load(onnx_export.path)
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (image_input,) = proto.graph.input
    (output,) = proto.graph.output
    assert image_input.name == "images" and output.name == "heatmaps"
    dims = [d.dim_param or d.dim_value for d in image_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 64, 64, 3]
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["batch", 16, 16, 16]


def test_onnx_runtime_matches_keras_at_any_batch_size(onnx_export):
    assert onnx_export.parity.relative_heatmap_error <= verify.TOLERANCES["float32"].heatmap
    session = onnxruntime.InferenceSession(onnx_export.path, providers=["CPUExecutionProvider"])
    crops = np.random.default_rng(0).random((5, 64, 64, 3), dtype=np.float32)
    expected = as_stack_list(tiny_model()(crops, training=False))[-1].numpy()
    for batch in (1, 5):
        (heatmaps,) = session.run(None, {"images": crops[:batch]})
        assert heatmaps.shape == (batch, 16, 16, 16)
        assert np.abs(heatmaps - expected[:batch]).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.e2e
def test_tensorrt_without_gpu_exits_non_zero_naming_what_is_missing(tmp_path):
    # What the engine would be built from is the ONNX export above, tested there.
    output = tmp_path / "tiny.engine"
    result = run_export_cli("--model", tiny_model_path(), "--format", "tensorrt", "--output", str(output))
    assert result.returncode == 1, result.stderr
    message = result.stderr
    assert "Cannot build a TensorRT engine on this machine; missing:" in message
    assert "tensorrt" in message and "NVIDIA GPU" in message
    assert "--format onnx" in message  # the way forward
    assert not output.exists() and not list(tmp_path.iterdir())


def test_tftrt_names_the_removal_from_tensorflow_2_18(tmp_path, capsys):
    output = tmp_path / "tftrt"
    assert (
        __main__.main(["export", "--model", tiny_model_path(), "--format", "tftrt", "--output", str(output)])
        == 1
    )
    message = capsys.readouterr().err
    assert "TF-TRT, which TensorFlow removed in 2.18" in message and "GPU" in message
    assert not output.exists()


def test_existing_output_is_kept_without_overwrite(onnx_export, capsys):
    before = open(onnx_export.path, "rb").read()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        export_model(tiny_model_path(), onnx_export.path, "onnx")
    argv = ["export", "--model", tiny_model_path(), "--format", "onnx", "--output", onnx_export.path]
    assert __main__.main(argv) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert open(onnx_export.path, "rb").read() == before


def test_failed_check_leaves_the_previous_output_and_no_temporary_files(onnx_export, monkeypatch):
    before = os.stat(onnx_export.path).st_mtime_ns

    def export_that_disagrees(model, codec, path, samples, data, options, log):
        with open(path, "wb") as f:  # the temporary file, as a real export writes it
            f.write(b"not the model")
        return verify.Parity(mean_keypoint_distance=9.0, max_keypoint_distance=9.0, num_samples=1), None

    monkeypatch.setitem(exporter._EXPORTERS, "onnx", export_that_disagrees)
    with pytest.raises(VerificationError, match="FAILED"):
        export_model(tiny_model_path(), onnx_export.path, "onnx", overwrite=True, log=lambda line: None)
    assert os.stat(onnx_export.path).st_mtime_ns == before
    assert os.listdir(os.path.dirname(onnx_export.path)) == ["tiny.onnx"]


@pytest.mark.e2e
def test_overwrite_replaces_the_output(onnx_export, capsys):
    before = os.stat(onnx_export.path).st_mtime_ns
    argv = [
        "export",
        "--model",
        tiny_model_path(),
        "--format",
        "onnx",
        "--output",
        onnx_export.path,
        "--overwrite",
    ]
    assert __main__.main(argv) == 0
    out = capsys.readouterr().out
    assert "parity onnx" in out and f"wrote {onnx_export.path}" in out
    assert os.stat(onnx_export.path).st_mtime_ns != before
    assert os.listdir(os.path.dirname(onnx_export.path)) == ["tiny.onnx"]


def test_bad_flags_exit_2(capsys):
    assert __main__.main(["export", "--model", "m.keras", "--format", "pdf", "--output", "x"]) == 2
    assert "format" in capsys.readouterr().err


def _fake_workdir(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "final.keras").write_bytes(b"a model")
    (workdir / "metrics.csv").write_text("epoch,loss\n")
    return workdir


@pytest.mark.parametrize("output", ["run", ".", "run/final.keras"])
def test_overwrite_refuses_an_output_that_is_or_contains_the_model(tmp_path, monkeypatch, capsys, output):
    workdir = _fake_workdir(tmp_path)
    monkeypatch.chdir(tmp_path)
    model = "run/final.keras" if output == "run/final.keras" else "run"
    argv = ["export", "--model", model, "--format", "saved_model", "--output", output, "--overwrite"]
    assert __main__.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{output!r} is or contains the model" in err
    assert sorted(os.listdir(workdir)) == ["checkpoints", "final.keras", "metrics.csv"]
    assert (workdir / "final.keras").read_bytes() == b"a model"


@pytest.mark.parametrize(
    ("format", "name", "kind"),
    [("saved_model", "folder", "dir"), ("onnx", "notes.txt", "file"), ("onnx", "folder", "dir")],
)
def test_overwrite_replaces_only_a_previous_export(tmp_path, capsys, format, name, kind):
    output = tmp_path / name
    if kind == "dir":
        output.mkdir()
        (output / "thesis.tex").write_text("mine")
    else:
        output.write_text("mine")
    argv = [
        "export",
        "--model",
        tiny_model_path(),
        "--format",
        format,
        "--output",
        str(output),
        "--overwrite",
    ]
    assert __main__.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{str(output)!r} is not a previous {format} export" in err and err.count("\n") == 1
    assert (output / "thesis.tex").read_text() == "mine" if kind == "dir" else output.read_text() == "mine"


@pytest.mark.e2e
def test_overwriting_a_saved_model_keeps_the_files_the_user_added(tmp_path, capsys):
    output = tmp_path / "served"
    argv = ["export", "--model", tiny_model_path(), "--format", "saved_model", "--output", str(output)]
    assert __main__.main(argv) == 0  # a previous export
    (output / "assets.extra").mkdir()
    (output / "assets.extra/tf_serving_warmup_requests").write_bytes(b"warm-up")
    (output / "notes.txt").write_text("mine")
    (output / "variables/README").write_text("also mine")
    (output / "empty").mkdir()
    (output / "saved_model.pb").write_bytes(b"the old graph")
    capsys.readouterr()
    assert __main__.main([*argv, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert (output / "assets.extra/tf_serving_warmup_requests").read_bytes() == b"warm-up"
    assert (output / "notes.txt").read_text() == "mine"
    assert (output / "variables/README").read_text() == "also mine"
    assert (output / "empty").is_dir()
    assert (output / "saved_model.pb").read_bytes() != b"the old graph"
    kept = "assets.extra/tf_serving_warmup_requests, empty, notes.txt, variables/README"
    assert f"kept 4 entries you added to {output}: {kept}\n" in out
    assert not [p for p in tmp_path.iterdir() if p.name != "served"]


def test_the_onnx_file_carries_the_model_info_in_its_metadata(onnx_export):
    from tf_hourglass.model.info import ModelInfo
    from tf_hourglass.model_loader import read_model_info

    assert not os.path.exists(onnx_export.path + ".info.json")  # inside the file, nothing beside it
    info = read_model_info(onnx_export.path, ModelInfo())
    assert info.spec.name == "mpii" and info.input_size == (64, 64)


def test_an_onnx_file_predicts_and_evaluates_as_the_keras_model(onnx_export, shared_data, tmp_path):
    import h5py

    from tf_hourglass.evaluation import run
    from tf_hourglass.prediction.estimator import PoseEstimator

    photo = np.random.default_rng(1).integers(0, 256, (90, 70, 3), np.uint8)
    exported = PoseEstimator(onnx_export.path)
    keras_estimator = PoseEstimator(tiny_model_path(), precision="float32")
    assert exported.spec.name == "mpii" and exported.codec.peak == keras_estimator.codec.peak
    np.testing.assert_allclose(
        exported.predict(photo)["keypoints"], keras_estimator.predict(photo)["keypoints"], atol=0.05
    )
    mpii = shared_data / "mpii"
    valid5 = tmp_path / "valid5.h5"  # the five rows whose images are in the sample
    with h5py.File(mpii / "annot" / "valid.h5", "r") as source, h5py.File(valid5, "w") as rows:
        for key in source.keys():
            rows[key] = source[key][:5]
    data = f"mpii_h5:{valid5}:{mpii / 'images'}"
    results = run.evaluate_model(onnx_export.path, data, progress=False, precision="float32")
    expected = run.evaluate_model(tiny_model_path(), data, progress=False, precision="float32")
    assert results["inputs"]["model_file"] == f"ONNX file {onnx_export.path}"
    assert results["pckh@0.5"]["Total"] == pytest.approx(expected["pckh@0.5"]["Total"], abs=0.5)
