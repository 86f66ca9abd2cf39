"""pose-ae-train's Associative Embedding checkpoints ("ae") converted to Keras, exactly."""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from ae_reference import ae_forward, random_ae_state_dict
from pytorch_reference import Params, random_state_dict, write_torch_checkpoint

from tf_hourglass.data import keypoint_specs
from tf_hourglass.model import AE_PRESETS, as_stack_list, from_preset
from tf_hourglass.model.associative_embedding import AssociativeEmbedding
from tf_hourglass.model.info import MULTI_PERSON
from tf_hourglass.weights import CheckpointError, load_pytorch_checkpoint
from tf_hourglass.weights.__main__ import main as weights_main
from tf_hourglass.weights.pytorch_ae import architecture_of, layer_map, load_ae_checkpoint
from tf_hourglass.weights.state_dicts import SOURCES, copy_weights

AE_PREFIX = "model.module."  # train.py saves Trainer(DataParallel(PoseNet)).state_dict()
OFFICIAL_OUTPUTS = Path(__file__).parent / "data" / "ae_official_outputs.npz"
SMALL = dict(num_stacks=2, filters=16, increase=8, out_channels=68, depth=2)


def ae_checkpoint(path, state, legacy=False):
    """As pose-ae-train's train.py saves exp/<name>/checkpoint.pth.tar."""
    optimizer = {
        "state": {0: {"step": 5, "exp_avg": np.zeros(3, np.float32)}},
        "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "params": [0]}],
    }
    obj = {"state_dict": {AE_PREFIX + k: v for k, v in state.items()}, "optimizer": optimizer, "epoch": 12}
    write_torch_checkpoint(path, obj, legacy=legacy)
    return str(path)


def images(size, n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


def max_relative_errors(model, reference_outputs, batch):
    """Per stack: max |ours - reference| / max |reference| (reference NCHW)."""
    outputs = as_stack_list(model(batch, training=False))
    assert len(outputs) == len(reference_outputs)
    errors = []
    for ours, reference in zip(outputs, reference_outputs, strict=True):
        reference = reference.transpose(0, 2, 3, 1)
        assert ours.shape == reference.shape
        errors.append(float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max()))
    return errors


@pytest.fixture(scope="module")
def small_state():
    return random_ae_state_dict(seed=1, **SMALL)


@pytest.mark.parametrize("legacy", [False, True])
def test_ae_checkpoint_gives_the_reference_outputs_on_every_stack(tmp_path, small_state, legacy):
    path = ae_checkpoint(tmp_path / "checkpoint.pth.tar", small_state, legacy)
    model = load_pytorch_checkpoint(path, "ae", (64, 64, 3))
    assert isinstance(model, AssociativeEmbedding)
    config = model.get_config()
    assert (config["num_stacks"], config["filters"], config["increase"], config["depth"]) == (2, 16, 8, 2)
    assert (config["num_keypoints"], config["tag_dim"], config["extra_channels"]) == (17, 1, 34)
    batch = images(64)
    errors = max_relative_errors(model, ae_forward(Params(small_state), batch, **SMALL), batch)
    assert max(errors) < 1e-4, errors


def test_official_increase_of_128_at_depth_4_gives_the_reference_outputs(tmp_path):
    # The official network's widening (128 per level) through an order-4 hourglass.
    architecture = dict(num_stacks=1, filters=8, increase=128, out_channels=40, depth=4)
    state = random_ae_state_dict(seed=4, **architecture)
    model = load_ae_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", state), (64, 64, 3), num_keypoints=3)
    assert model.get_config()["extra_channels"] == 40 - 2 * 3 and model.increase == 128
    batch = images(64, n=1)
    errors = max_relative_errors(model, ae_forward(Params(state), batch, **architecture), batch)
    assert max(errors) < 1e-4, errors


def test_official_pytorch_outputs_are_reproduced():
    """The official PoseNet's own outputs, recorded with torch (tests/data/ae_official_outputs.npz).

    Recorded outside the project with torch 2.13.0: pose-ae-train's ``PoseNet(2,
    16, 68, bn=False, increase=128)`` with its hourglasses replaced by the
    official ``Hourglass(2, 16, False, 128)`` (PoseNet fixes the order at 4),
    ``load_state_dict(strict=True)`` of ``random_ae_state_dict`` with the
    recorded seed, evaluated on the recorded image. The NumPy reference gave
    the same outputs to 1.1e-6 of their largest value there.
    """
    fixture = np.load(OFFICIAL_OUTPUTS)
    architecture = {
        k: int(fixture[k]) for k in ("num_stacks", "filters", "increase", "out_channels", "depth")
    }
    state = random_ae_state_dict(seed=int(fixture["seed"]), **architecture)
    batch = fixture["images"]
    official = [fixture["outputs"][:, i] for i in range(architecture["num_stacks"])]
    # The NumPy reference draws the same weights the official network was given.
    reference = ae_forward(Params(state), batch, **architecture)
    for ours, theirs in zip(reference, official, strict=True):
        assert np.abs(ours - theirs).max() / np.abs(theirs).max() < 1e-5
    model = AssociativeEmbedding(
        num_stacks=architecture["num_stacks"],
        filters=architecture["filters"],
        increase=architecture["increase"],
        depth=architecture["depth"],
        input_shape=batch.shape[1:],
    )
    copy_weights(model, state, "ae", "fixture", mapping=layer_map(model))
    errors = max_relative_errors(model, official, batch)
    assert max(errors) < 1e-4, errors


def test_posenet_with_bn_and_a_narrow_stem_gives_the_reference_outputs(tmp_path):
    # PoseNet(bn=True): a BatchNorm after the ReLU of every stem and hourglass convolution but low3.
    architecture = dict(
        num_stacks=2, filters=16, increase=8, out_channels=34, depth=2, bn=True, stem_filters=(8, 12)
    )
    state = random_ae_state_dict(seed=5, **architecture)
    assert "pre.0.bn.running_var" in state and "features.1.0.low2.low2.bn.weight" in state
    assert not any(key.startswith(("features.0.1.bn", "outs.0.bn", "features.0.0.low3.bn")) for key in state)
    model = load_ae_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", state), (64, 64, 3))
    assert (model.batch_norm, model.stem_filters) == (True, (8, 12))
    batch = images(64)
    errors = max_relative_errors(model, ae_forward(Params(state), batch, **architecture), batch)
    assert max(errors) < 1e-4, errors


def test_the_official_full_size_layout_reads_as_the_ae_hg4_preset():
    # Tensors of the official shapes (as broadcast views, without 556 MB of memory).
    reference = from_preset("ae_hg4")
    state = {}
    for layer_name, module, _ in layer_map(reference):
        kernel, bias = reference.get_layer(layer_name).weights
        state[f"{module}.weight"] = np.broadcast_to(
            np.float32(0), (*kernel.shape[::-1][:2], *kernel.shape[:2])
        )
        state[f"{module}.bias"] = np.broadcast_to(np.float32(0), bias.shape)
    assert len(state) == 148 and sum(v.size for v in state.values()) == 138_893_840
    assert architecture_of(state, "checkpoint.pth.tar") == {
        k: v for k, v in AE_PRESETS["ae_hg4"].items() if k != "input_shape"
    } | {"num_keypoints": 17, "tag_dim": 1, "stem_filters": (64, 128), "batch_norm": False}


def test_input_shape_with_free_sides_loads(tmp_path, small_state):
    model = load_pytorch_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", small_state), "ae", (None, None, 3))
    batch = images(32, n=1)
    assert max(max_relative_errors(model, ae_forward(Params(small_state), batch, **SMALL), batch)) < 1e-4


# ----- checkpoints that do not fit -------------------------------------------------


def test_a_pv_checkpoint_passed_as_ae_and_an_ae_checkpoint_passed_as_pv_are_named(tmp_path, small_state):
    pv_state = random_state_dict("pv", num_stacks=1, filters=8, num_keypoints=4, depth=1)
    pv_path = tmp_path / "checkpoint.pt"
    write_torch_checkpoint(pv_path, {"state_dict": {AE_PREFIX + k: v for k, v in pv_state.items()}})
    with pytest.raises(CheckpointError, match="it looks like a 'pv' checkpoint: pass source='pv'"):
        load_pytorch_checkpoint(pv_path, "ae")
    ae_path = ae_checkpoint(tmp_path / "ae.pth.tar", small_state)
    for source in ("pv", "bp"):
        with pytest.raises(CheckpointError, match="it looks like a 'ae' checkpoint: pass source='ae'"):
            load_pytorch_checkpoint(ae_path, source)


def test_missing_and_unexpected_tensors_are_named(tmp_path, small_state):
    state = dict(small_state)
    del state["features.1.0.low3.conv.weight"]
    state["features.1.0.low3.bn.weight"] = np.ones(16, np.float32)  # an official Conv with bn=True
    path = ae_checkpoint(tmp_path / "checkpoint.pth.tar", state)
    with pytest.raises(CheckpointError) as error:
        load_pytorch_checkpoint(path, "ae", (64, 64, 3))
    message = str(error.value)
    assert path in message and "AssociativeEmbedding(num_stacks=2, filters=16, increase=8" in message
    assert "1 missing tensors" in message and "features.1.0.low3.conv.weight" in message
    assert "1 unexpected tensors" in message and "features.1.0.low3.bn.weight" in message


def test_a_tensor_of_another_shape_is_named_with_both_shapes(tmp_path, small_state):
    state = dict(small_state)
    state["features.0.2.conv.weight"] = np.zeros((16, 8, 3, 3), np.float32)
    with pytest.raises(
        CheckpointError,
        match=r"features\.0\.2\.conv\.weight has shape \(16, 8, 3, 3\), expected \(16, 16, 3, 3\)",
    ):
        load_pytorch_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", state), "ae", (64, 64, 3))


def test_widths_that_grow_unevenly_are_named(tmp_path, small_state):
    # The official code with increase != 128 grows its inner levels by 128: 16, 24, 152.
    state = dict(small_state)
    state["features.0.0.low2.low1.conv.weight"] = np.zeros((152, 24, 3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"hourglass widths \[16, 24, 152\] do not grow by one amount"):
        load_pytorch_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", state), "ae", (64, 64, 3))


def test_too_few_output_channels_for_17_keypoints_are_named(tmp_path):
    state = random_ae_state_dict(seed=2, **dict(SMALL, num_stacks=1, out_channels=20))
    with pytest.raises(CheckpointError, match=r"outputs have 20 channels, fewer than 17 keypoints x"):
        load_pytorch_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", state), "ae", (64, 64, 3))


def test_an_input_side_the_hourglass_cannot_halve_is_named(tmp_path, small_state):
    with pytest.raises(CheckpointError, match=r"not buildable: .*multiples of 4 \* 2\*\*depth = 16"):
        load_pytorch_checkpoint(ae_checkpoint(tmp_path / "c.pth.tar", small_state), "ae", (40, 40, 3))


def test_a_mean_is_refused_for_ae(tmp_path, small_state):
    path = ae_checkpoint(tmp_path / "c.pth.tar", small_state)
    with pytest.raises(ValueError, match=r"\[0, 1\] RGB without a mean; received \(0.5, 0.5, 0.5\)"):
        load_pytorch_checkpoint(path, "ae", (64, 64, 3), input_mean=(0.5, 0.5, 0.5))


# ----- the command -----------------------------------------------------------------


def test_command_writes_a_multi_person_coco_model(tmp_path, small_state, capsys):
    checkpoint = ae_checkpoint(tmp_path / "checkpoint.pth.tar", small_state, legacy=True)
    output = tmp_path / "models" / "ae.keras"
    argv = ["weights", "--source", "ae", "--checkpoint", checkpoint, "--output", str(output)]
    assert weights_main(argv + ["--input-size", "64"]) == 0
    assert SOURCES["ae"] in capsys.readouterr().out
    settings = json.loads((output.parent / "inference.json").read_text())
    assert settings["codec"] == {"sigma": 2.0, "peak": 1.0}
    assert settings["spec"]["keypoint_names"] == list(keypoint_specs.COCO.keypoint_names)

    model = keras.saving.load_model(output)
    # The file itself says it is a multi-person COCO model with the official targets.
    assert model.pose_info.kind == MULTI_PERSON
    assert model.pose_info.spec == keypoint_specs.COCO
    assert (model.pose_info.sigma, model.pose_info.peak, model.pose_info.input_mean) == (2.0, 1.0, None)
    assert isinstance(model, AssociativeEmbedding) and model.input_shape == (None, 64, 64, 3)
    batch = images(64, n=1)
    assert max(max_relative_errors(model, ae_forward(Params(small_state), batch, **SMALL), batch)) < 1e-4


def test_command_defaults_to_the_official_512_input(tmp_path, small_state):
    checkpoint = ae_checkpoint(tmp_path / "checkpoint.pth.tar", small_state)
    output = tmp_path / "run"
    assert (
        weights_main(["weights", "--source", "ae", "--checkpoint", checkpoint, "--output", str(output)]) == 0
    )
    model = keras.saving.load_model(output / "final.keras")
    assert model.input_shape == (None, 512, 512, 3)
    assert os.path.exists(output / "inference.json")


def test_command_rejects_a_spec_of_another_size_and_writes_nothing(tmp_path, small_state, capsys):
    checkpoint = ae_checkpoint(tmp_path / "checkpoint.pth.tar", small_state)
    output = tmp_path / "out" / "ae.keras"
    argv = [
        "weights",
        "--source",
        "ae",
        "--checkpoint",
        checkpoint,
        "--output",
        str(output),
        "--spec",
        "mpii",
    ]
    assert weights_main(argv + ["--input-size", "64"]) == 1
    assert "predicts 17 keypoints but the spec 'mpii' has 16" in capsys.readouterr().err
    assert not output.exists() and not (tmp_path / "out" / "inference.json").exists()


def test_command_with_a_pv_checkpoint_as_ae_exits_1_naming_the_source(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    write_torch_checkpoint(
        path, {"state_dict": random_state_dict("pv", num_stacks=1, filters=8, num_keypoints=4, depth=1)}
    )
    argv = ["weights", "--source", "ae", "--checkpoint", str(path), "--output", str(tmp_path / "out")]
    assert weights_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"weights: error: {path}") and "pass source='pv'" in err
    assert not (tmp_path / "out").exists()


def test_real_torch_posenet_saved_by_torch_converts_exactly(tmp_path):
    """With torch installed (optional): a PoseNet of the official module layout, torch.save in both formats."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    # The official modules' attribute names (so the state dict keys are the official ones), written here.
    class Conv(nn.Module):
        def __init__(self, c_in, c_out, k=3, stride=1, relu=True):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=(k - 1) // 2, bias=True)
            self.relu = nn.ReLU() if relu else None

        def forward(self, x):
            x = self.conv(x)
            return self.relu(x) if self.relu is not None else x

    class Merge(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv = Conv(c_in, c_out, 1, relu=False)

        def forward(self, x):
            return self.conv(x)

    class Hourglass(nn.Module):
        def __init__(self, n, f, increase):
            super().__init__()
            self.up1, self.pool1, self.low1 = Conv(f, f), nn.MaxPool2d(2, 2), Conv(f, f + increase)
            self.low2 = (
                Hourglass(n - 1, f + increase, increase) if n > 1 else Conv(f + increase, f + increase)
            )
            self.low3, self.up2 = Conv(f + increase, f), nn.Upsample(scale_factor=2, mode="nearest")

        def forward(self, x):
            return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.pool1(x)))))

    class PoseNet(nn.Module):
        def __init__(self, nstack, f, out, increase, depth):
            super().__init__()
            self.nstack = nstack
            self.pre = nn.Sequential(
                Conv(3, 64, 7, 2), Conv(64, 128), nn.MaxPool2d(2, 2), Conv(128, 128), Conv(128, f)
            )
            self.features = nn.ModuleList(
                nn.Sequential(Hourglass(depth, f, increase), Conv(f, f), Conv(f, f)) for _ in range(nstack)
            )
            self.outs = nn.ModuleList(Conv(f, out, 1, relu=False) for _ in range(nstack))
            self.merge_features = nn.ModuleList(Merge(f, f) for _ in range(nstack - 1))
            self.merge_preds = nn.ModuleList(Merge(out, f) for _ in range(nstack - 1))

        def forward(self, images):
            x, preds = self.pre(images.permute(0, 3, 1, 2)), []
            for i in range(self.nstack):
                feature = self.features[i](x)
                preds.append(self.outs[i](feature))
                if i < self.nstack - 1:
                    x = x + self.merge_preds[i](preds[-1]) + self.merge_features[i](feature)
            return torch.stack(preds, 1)

    class Trainer(nn.Module):  # train.py saves the state dict of this wrapper around DataParallel
        def __init__(self, model):
            super().__init__()
            self.model = nn.DataParallel(model)

    torch.manual_seed(0)
    net = PoseNet(2, 16, 68, 8, 2).eval()
    trainer = Trainer(net)
    optimizer = torch.optim.Adam(trainer.parameters(), 2e-4)
    batch = images(64)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    for legacy in (False, True):
        path = tmp_path / f"checkpoint_{legacy}.pth.tar"
        checkpoint = {"state_dict": trainer.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}
        torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
        model = load_pytorch_checkpoint(path, "ae", (64, 64, 3))
        errors = max_relative_errors(model, [expected[:, i] for i in range(2)], batch)
        assert max(errors) < 1e-4, errors
