"""PyTorch hourglass checkpoints (princeton-vl "pv", bearpaw "bp") converted to Keras, exactly."""

import json
import os
import pickle
import zipfile

import cv2
import h5py
import numpy as np
import pytest
from pytorch_reference import Params, bp_forward, pv_forward, random_state_dict, write_torch_checkpoint

from tf_hourglass import PoseEstimator
from tf_hourglass.data import keypoint_specs
from tf_hourglass.evaluation import run
from tf_hourglass.model import as_stack_list
from tf_hourglass.weights import CheckpointError, load_pytorch_checkpoint, read_torch_checkpoint
from tf_hourglass.weights.__main__ import main as weights_main
from tf_hourglass.weights.pytorch_hourglass import read_mean_file
from tf_hourglass.weights.state_dicts import INPUT_MEANS

PV_PREFIX, BP_PREFIX = "model.module.", "module."


def pv_checkpoint(path, state, legacy=False):
    """As PV's train.py saves it: state_dict under 'model.module.', optimizer, epoch."""
    optimizer = {
        "state": {0: {"step": 3, "square_avg": np.ones(3, np.float32)}},
        "param_groups": [{"lr": 2.5e-4}],
    }
    obj = {"state_dict": {PV_PREFIX + k: v for k, v in state.items()}, "optimizer": optimizer, "epoch": 7}
    write_torch_checkpoint(path, obj, legacy=legacy)
    return str(path)


def bp_checkpoint(path, state, legacy=False):
    """As bearpaw's save_checkpoint saves it (model_best.pth.tar)."""
    obj = {
        "epoch": 100,
        "arch": "hg",
        "state_dict": {BP_PREFIX + k: v for k, v in state.items()},
        "best_acc": np.float64(0.883),
        "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]},
    }
    write_torch_checkpoint(path, obj, legacy=legacy)
    return str(path)


def images(size, n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


def assert_every_stack_matches(model, reference_outputs, batch):
    outputs = as_stack_list(model(batch, training=False))
    assert len(outputs) == len(reference_outputs)
    for ours, reference in zip(outputs, reference_outputs, strict=True):
        reference = reference.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        error = np.abs(ours.numpy() - reference).max() / np.abs(reference).max()
        assert error < 1e-4, error


@pytest.mark.parametrize("num_stacks, legacy", [(1, False), (2, True), (8, False)])
def test_pv_checkpoint_gives_the_pytorch_outputs_on_every_stack(tmp_path, num_stacks, legacy):
    architecture = dict(num_stacks=num_stacks, filters=16, num_keypoints=16, depth=2)
    state = random_state_dict("pv", seed=num_stacks, **architecture)
    model = load_pytorch_checkpoint(
        pv_checkpoint(tmp_path / "checkpoint.pt", state, legacy), "pv", (32, 32, 3)
    )
    assert (model.num_stacks, model.filters, model.depth, model.num_keypoints) == (num_stacks, 16, 2, 16)
    assert model.stem == "original"
    batch = images(32)
    assert_every_stack_matches(model, pv_forward(Params(state), batch, **architecture), batch)


@pytest.mark.parametrize("num_blocks, legacy", [(1, True), (2, False)])
def test_bp_checkpoint_gives_the_pytorch_outputs_on_every_stack(tmp_path, num_blocks, legacy):
    # bearpaw's width is fixed (num_feats 128, 256 channels); depth and blocks vary.
    architecture = dict(num_stacks=2, num_keypoints=16, num_blocks=num_blocks, depth=2)
    state = random_state_dict("bp", seed=num_blocks, **architecture)
    model = load_pytorch_checkpoint(
        bp_checkpoint(tmp_path / "model_best.pth.tar", state, legacy), "bp", (32, 32, 3)
    )
    assert (model.num_stacks, model.filters, model.num_residual_modules, model.stem) == (
        2,
        256,
        num_blocks,
        "bearpaw",
    )
    batch = images(32)
    # bearpaw feeds mean-subtracted images; the converted model subtracts the mean itself.
    centred = (batch - np.float32(INPUT_MEANS["bp"])).transpose(0, 3, 1, 2)
    assert_every_stack_matches(model, bp_forward(Params(state), centred, **architecture), batch)


def test_bp_mean_file_sets_what_the_model_subtracts(tmp_path):
    mean_file = tmp_path / "mean.pth.tar"  # as bearpaw's dataset code caches it
    write_torch_checkpoint(mean_file, {"mean": np.float32([0.5, 0.25, 0.125]), "std": np.ones(3, np.float32)})
    mean = read_mean_file(mean_file)
    assert mean == (0.5, 0.25, 0.125)
    state = random_state_dict("bp", num_stacks=1, num_keypoints=4, depth=1)
    model = load_pytorch_checkpoint(
        bp_checkpoint(tmp_path / "c.pth.tar", state), "bp", (16, 16, 3), input_mean=mean
    )
    batch = images(16)
    reference = bp_forward(Params(state), (batch - np.float32(mean)).transpose(0, 3, 1, 2), 1, 4, depth=1)
    assert_every_stack_matches(model, reference, batch)


def test_full_size_bp_two_stack_checkpoint_has_bearpaws_parameter_count(tmp_path):
    state = random_state_dict("bp", num_stacks=2, num_keypoints=16)
    model = load_pytorch_checkpoint(bp_checkpoint(tmp_path / "hg2.pth.tar", state), "bp")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 6_730_912
    assert model.input_shape == (None, 256, 256, 3) and model.depth == 4


def test_checkpoint_without_wrapper_or_prefix_loads_too(tmp_path):
    architecture = dict(num_stacks=1, filters=8, num_keypoints=3, depth=1)
    state = random_state_dict("pv", **architecture)
    path = tmp_path / "bare.pt"
    write_torch_checkpoint(path, state)  # torch.save(model.state_dict()) of an unwrapped model
    model = load_pytorch_checkpoint(path, "pv", (16, 16, 3))
    batch = images(16)
    assert_every_stack_matches(model, pv_forward(Params(state), batch, **architecture), batch)


# ----- bad checkpoints ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_pv_state():
    return random_state_dict("pv", num_stacks=2, filters=8, num_keypoints=4, depth=1)


def test_missing_and_unexpected_tensors_are_named(tmp_path, small_pv_state):
    state = dict(small_pv_state)
    del state["hgs.1.0.low3.conv2.conv.weight"]
    state["hgs.1.0.extra.weight"] = np.zeros(3, np.float32)
    path = pv_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(CheckpointError) as error:
        load_pytorch_checkpoint(path, "pv", (16, 16, 3))
    message = str(error.value)
    assert path in message and "num_stacks=2" in message and "filters=8" in message
    assert "1 missing tensors" in message and "hgs.1.0.low3.conv2.conv.weight" in message
    assert "1 unexpected tensors" in message and "hgs.1.0.extra.weight" in message


def test_a_tensor_of_another_shape_is_named_with_both_shapes(tmp_path, small_pv_state):
    state = dict(small_pv_state)
    state["features.0.1.conv.weight"] = np.zeros((8, 4, 1, 1), np.float32)
    with pytest.raises(
        CheckpointError,
        match=r"features\.0\.1\.conv\.weight has shape \(8, 4, 1, 1\), expected \(8, 8, 1, 1\)",
    ):
        load_pytorch_checkpoint(pv_checkpoint(tmp_path / "c.pt", state), "pv", (16, 16, 3))


def test_wrong_source_says_which_source_the_checkpoint_looks_like(tmp_path, small_pv_state):
    path = pv_checkpoint(tmp_path / "checkpoint.pt", small_pv_state)
    with pytest.raises(CheckpointError, match="it looks like a 'pv' checkpoint: pass source='pv'"):
        load_pytorch_checkpoint(path, "bp")


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, small_pv_state, legacy):
    path = tmp_path / "checkpoint.pt"
    pv_checkpoint(path, small_pv_state, legacy=legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match=str(path)):
        load_pytorch_checkpoint(path, "pv", (16, 16, 3))


def test_a_file_that_is_no_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text('{"not": "a checkpoint"}')
    with pytest.raises(CheckpointError, match=f"{path}: not a torch checkpoint"):
        read_torch_checkpoint(path)


class _RunsACommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_that_calls_a_function_is_refused_without_calling_it(tmp_path, small_pv_state, legacy):
    marker = tmp_path / "was_run"
    payload = pickle.dumps({"state_dict": _RunsACommand(f"touch {marker}")}, protocol=2)
    path = tmp_path / "evil.pt"
    if legacy:
        header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(header + payload + pickle.dumps([], protocol=2))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    with pytest.raises(CheckpointError, match=r"refusing to load: the checkpoint asks for posix\.system"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_a_storage_missing_from_the_archive_is_named(tmp_path, small_pv_state):
    path = tmp_path / "checkpoint.pt"
    pv_checkpoint(path, small_pv_state)
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for name in src.namelist():
            if name != "archive/data/3":
                dst.writestr(name, src.read(name))
    with pytest.raises(CheckpointError, match="archive/data/3 is missing"):
        read_torch_checkpoint(damaged)


# ----- the command, and the converted model in every consumer --------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A 16-joint PV checkpoint at 64x64 converted by the command into a .keras file."""
    folder = tmp_path_factory.mktemp("pv")
    state = random_state_dict("pv", num_stacks=2, filters=16, num_keypoints=16, depth=2, seed=3)
    checkpoint = pv_checkpoint(folder / "checkpoint.pt", state)
    output = str(folder / "models" / "hg2_pv.keras")
    status = weights_main(
        ["weights", "--source", "pv", "--checkpoint", checkpoint, "--output", output, "--input-size", "64"]
    )
    assert status == 0
    return {"checkpoint": checkpoint, "model": output, "state": state}


def test_command_writes_the_model_and_its_mpii_inference_settings(converted):
    with open(os.path.join(os.path.dirname(converted["model"]), "inference.json")) as f:
        settings = json.load(f)
    assert settings["codec"] == {"sigma": 1.0, "peak": 1.0}
    assert settings["spec"]["keypoint_names"][:2] == ["r_ankle", "r_knee"]
    assert settings["spec"]["keypoint_names"][-1] == "l_wrist"
    estimator = PoseEstimator(converted["model"])
    assert estimator.spec.keypoint_names == keypoint_specs.MPII.keypoint_names


def test_command_keeps_existing_files_without_overwrite(converted, capsys):
    before = os.path.getmtime(converted["model"])
    argv = [
        "weights",
        "--source",
        "pv",
        "--checkpoint",
        converted["checkpoint"],
        "--output",
        converted["model"],
    ]
    assert weights_main(argv + ["--input-size", "64"]) == 1
    assert "already exist" in capsys.readouterr().err
    assert os.path.getmtime(converted["model"]) == before
    assert weights_main(argv + ["--input-size", "64", "--overwrite"]) == 0


def test_command_rejects_a_spec_of_another_size_and_writes_nothing(converted, tmp_path, capsys):
    output = tmp_path / "lsp.keras"
    argv = ["weights", "--source", "pv", "--checkpoint", converted["checkpoint"], "--output", str(output)]
    assert weights_main(argv + ["--input-size", "64", "--spec", "lsp"]) == 1
    assert "predicts 16 keypoints but the spec 'lsp' has 14" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_command_with_a_bad_checkpoint_exits_1_naming_it(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00" * 100)
    argv = ["weights", "--source", "pv", "--checkpoint", str(bad), "--output", str(tmp_path / "out")]
    assert weights_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"weights: error: {bad}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_command_with_an_output_under_a_file_exits_1_naming_it(converted, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    output = blocker / "model.keras"
    argv = ["weights", "--source", "pv", "--checkpoint", converted["checkpoint"], "--output", str(output)]
    assert weights_main(argv + ["--input-size", "64"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"weights: error: --output {output}: cannot write there")
        and len(err.strip().splitlines()) == 1
    )
    assert blocker.read_text() == "mine"


@pytest.mark.e2e
def test_converted_model_predicts_evaluates_and_exports_like_a_trained_one(converted, shared_data, tmp_path):
    photo = cv2.cvtColor(cv2.imread(str(next((shared_data / "people").glob("*.jpg")))), cv2.COLOR_BGR2RGB)
    result = PoseEstimator(converted["model"], flip_test=True).predict(photo)
    assert result["keypoints"].shape == (16, 2) and np.isfinite(result["keypoints"]).all()

    mpii = shared_data / "mpii"
    valid5 = tmp_path / "valid5.h5"  # the rows whose photos are in the sample
    with h5py.File(mpii / "annot" / "valid.h5", "r") as src, h5py.File(valid5, "w") as dst:
        for key in src.keys():
            dst[key] = src[key][:5]
    results = run.evaluate_model(
        converted["model"], "mpii_h5", str(valid5), str(mpii / "images"), flip=True, progress=False
    )
    assert results["protocol"] == "mpii" and results["num_persons"] == 5

    from tf_hourglass.export.exporter import export_model

    output = tmp_path / "model.tflite"
    export_model(converted["model"], str(output), "tflite", samples=str(shared_data / "people"))
    assert output.stat().st_size > 0


def test_real_torch_files_read_the_same(tmp_path):
    """With torch installed (optional): torch.save's own files, both formats, read exactly."""
    torch = pytest.importorskip("torch")
    state = {"w": torch.randn(4, 3, 3, 3), "view": torch.randn(5, 6)[1:3, ::2], "n": torch.tensor(7)}
    for legacy in (False, True):
        path = tmp_path / f"torch_{legacy}.pt"
        torch.save({"state_dict": state, "epoch": 1}, path, _use_new_zipfile_serialization=not legacy)
        loaded = read_torch_checkpoint(path)["state_dict"]
        for key, tensor in state.items():
            np.testing.assert_array_equal(loaded[key], tensor.numpy())


def test_real_pytorch_posenet_saved_by_torch_converts_exactly(tmp_path):
    """With torch installed (optional): the official PoseNet, torch.save in both formats, same outputs."""
    torch = pytest.importorskip("torch")
    from benchmarks.pytorch_posenet import PoseNet

    torch.manual_seed(0)
    net = PoseNet(nstack=2, inp_dim=32, oup_dim=16).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    state = {f"model.module.{k}": v for k, v in net.state_dict().items()}
    assert set(net.state_dict()) == set(random_state_dict("pv", num_stacks=2, filters=32, num_keypoints=16))
    batch = images(64)
    with torch.no_grad():
        reference = net(torch.from_numpy(batch)).numpy()
    for legacy in (False, True):
        path = tmp_path / f"checkpoint_{legacy}.pt"
        torch.save({"state_dict": state, "epoch": 1}, path, _use_new_zipfile_serialization=not legacy)
        model = load_pytorch_checkpoint(path, "pv", (64, 64, 3))
        assert_every_stack_matches(model, [reference[:, i] for i in range(2)], batch)


@pytest.mark.e2e
def test_converted_bearpaw_workdir_exports_to_every_format_and_predicts_files(tmp_path, shared_data):
    """The bearpaw model (its stem and the mean it subtracts) through every exporter and predict."""
    from tf_hourglass.export.exporter import export_model
    from tf_hourglass.prediction.files import predict_path
    from tf_hourglass.weights.convert import convert_checkpoint

    state = random_state_dict("bp", num_stacks=2, num_keypoints=16, depth=1, seed=5)
    workdir = tmp_path / "hg_bp"
    convert_checkpoint(
        bp_checkpoint(tmp_path / "model_best.pth.tar", state), str(workdir), "bp", input_size=32
    )
    assert sorted(os.listdir(workdir)) == ["final.keras", "inference.json"]
    samples = str(shared_data / "people")
    for format, name in (("saved_model", "saved_model"), ("tflite", "model.tflite"), ("onnx", "model.onnx")):
        export_model(str(workdir), str(tmp_path / name), format, samples=samples)  # each checks itself
        assert (tmp_path / name).exists()
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in sorted((shared_data / "people").glob("*.jpg"))[:2]:
        (photos / photo.name).write_bytes(photo.read_bytes())
    summary = predict_path(
        PoseEstimator(str(tmp_path / "model.tflite")), str(photos), str(tmp_path / "out"), progress=False
    )
    assert len(list((tmp_path / "out").glob("*.json"))) == 2, summary


def test_command_help_and_bad_flags(capsys):
    assert weights_main(["weights", "--help"]) == 0
    assert "--source pv: princeton-vl" in capsys.readouterr().out
    assert weights_main(["weights", "--source", "tf", "--checkpoint", "c.pt", "--output", "m.keras"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weights: error: ") and "--source" in err and "Run with --help" in err


@pytest.mark.parametrize(
    ("checkpoint_name", "output_name"),
    [
        ("hg.keras", "hg.keras"),  # any extension
        ("checkpoint.pt", "checkpoint.pt"),
        ("run/final.keras", "run"),  # the folder's final.keras
        ("run/inference.json", "run"),
        ("checkpoint.pt", "link.keras"),  # through a symbolic link
    ],
)
def test_command_refuses_an_output_that_is_the_checkpoint_even_with_overwrite(
    tmp_path, small_pv_state, capsys, checkpoint_name, output_name
):
    checkpoint = tmp_path / checkpoint_name
    checkpoint.parent.mkdir(exist_ok=True)
    pv_checkpoint(checkpoint, small_pv_state)
    before = checkpoint.read_bytes()
    if output_name == "link.keras":
        (tmp_path / output_name).symlink_to(checkpoint)
    output = str(tmp_path / output_name)
    argv = ["weights", "--source", "pv", "--checkpoint", str(checkpoint), "--output", output, "--overwrite"]
    assert weights_main(argv + ["--input-size", "16", "--spec", "coco"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"weights: error: --output {output} is the checkpoint being converted; choose another path.\n"
    )
    assert checkpoint.read_bytes() == before
