"""Model files describe themselves: spec, codec settings and kind travel with the model (ModelInfo)."""

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.model.info import INFO_VERSION, ModelInfo, model_info
from tf_hourglass.model_loader import load_keras_model, load_model_for_inference, read_model_info

# A training workdir written by tf_hourglass 0.1.0 (main at 5600f7d), before models carried
# their info: final.keras (StackedHourglass, 1 stack, 8 filters, depth 1, 32x32, 14 joints)
# and inference.json (LSP, sigma 2, peak 5).
LEGACY_WORKDIR = Path(__file__).parent / "data" / "workdir_v0_1_0"


def lsp_info(**changes):
    fields = dict(spec=keypoint_specs.LSP, sigma=2.0, peak=3.0, decode_method="dark", input_size=(64, 64))
    return ModelInfo(**{**fields, **changes})


def test_model_info_round_trips_through_json():
    info = lsp_info(input_mean=(0.4, 0.5, 0.6))
    data = json.loads(info.to_json())
    assert data["version"] == INFO_VERSION
    assert data["codec"] == {"sigma": 2.0, "peak": 3.0, "decode_method": "dark", "background_channel": False}
    assert data["spec"]["name"] == "lsp"
    assert ModelInfo.from_json(info.to_json()) == info


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not valid JSON"),
        ('"hourglass"', "expected a JSON object"),
        ('{"version": 99}', "newer tf_hourglass"),
        ('{"kind": "three_person"}', "model kind must be one of"),
        ('{"codec": {"sigma": -1}}', "sigma must be a positive number"),
        ('{"codec": {"decode_method": "mean"}}', "decode_method must be one of"),
        ('{"spec": {"names": []}}', "no 'keypoint_names'"),
    ],
)
def test_info_that_does_not_fit_is_refused_naming_the_source(text, message):
    with pytest.raises(ValueError, match=message) as error:
        ModelInfo.from_json(text, source="bad/info.json")
    assert str(error.value).startswith("bad/info.json: ")


def test_a_network_without_saved_info_defaults_to_mpii_only_for_sixteen_keypoints():
    assert model_info(tf_hourglass.from_preset("hg_tiny")).spec == keypoint_specs.MPII
    info = model_info(tf_hourglass.from_preset("hg_tiny", num_keypoints=14))
    assert info.spec is None
    assert (info.sigma, info.peak, info.decode_method, info.input_size) == (1.0, 1.0, "quarter", (64, 64))
    assert model_info(tf_hourglass.from_preset("cpm_tiny")).background_channel


def test_keras_file_carries_spec_codec_settings_and_input_mean(tmp_path):
    model = tf_hourglass.from_preset("hg_tiny", num_keypoints=14, input_mean=(0.4, 0.5, 0.6))
    model.pose_info = lsp_info(input_mean=(0.4, 0.5, 0.6))
    path = str(tmp_path / "lsp.keras")  # alone in its folder: no inference.json anywhere
    model.save(path)

    loaded = load_model_for_inference(path)
    assert loaded.info == model.pose_info
    assert loaded.spec == keypoint_specs.LSP
    codec = loaded.codec()
    assert (codec.sigma, codec.peak, codec.decode_method) == (2.0, 3.0, "dark")
    assert (codec.input_size, codec.heatmap_size) == ((64, 64), (16, 16))
    estimator = tf_hourglass.PoseEstimator(path)
    assert estimator.spec == keypoint_specs.LSP
    assert estimator.codec == codec
    # A second save of the loaded Keras model keeps it.
    again = load_keras_model(path)
    again.save(str(tmp_path / "again.keras"))
    assert load_keras_model(str(tmp_path / "again.keras")).pose_info == model.pose_info


def test_a_workdir_from_version_0_1_0_keeps_loading_with_its_inference_json(tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(LEGACY_WORKDIR, workdir)
    model = load_keras_model(str(workdir))
    assert model.pose_info.spec == keypoint_specs.LSP
    assert (model.pose_info.sigma, model.pose_info.peak, model.pose_info.decode_method) == (
        2.0,
        5.0,
        "quarter",
    )
    assert model.pose_info.input_size == (32, 32)
    estimator = tf_hourglass.PoseEstimator(str(workdir))
    assert estimator.spec == keypoint_specs.LSP
    assert (estimator.codec.sigma, estimator.codec.peak) == (2.0, 5.0)
    result = estimator.predict(np.zeros((40, 50, 3), np.uint8))
    assert result["keypoints"].shape == (14, 2)


def test_the_models_own_info_wins_over_an_inference_json_beside_it(tmp_path):
    shutil.copytree(LEGACY_WORKDIR, tmp_path / "run")
    model = load_keras_model(str(tmp_path / "run"))
    model.pose_info = dataclasses.replace(model.pose_info, peak=9.0, decode_method="argmax")
    model.save(str(tmp_path / "run" / "final.keras"))  # inference.json still says peak 5
    assert load_model_for_inference(str(tmp_path / "run")).codec().peak == 9.0


def test_an_info_file_beside_an_exported_file_is_read_and_a_broken_one_named(tmp_path):
    exported = tmp_path / "model.tflite"
    exported.write_bytes(b"")
    network_info = ModelInfo(input_size=(64, 64))
    assert read_model_info(str(exported), network_info) is network_info
    (tmp_path / "model.tflite.info.json").write_text(lsp_info().to_json())
    assert read_model_info(str(exported), network_info) == lsp_info()
    (tmp_path / "model.tflite.info.json").write_text("[" * 100000)
    with pytest.raises(ValueError, match=r"model\.tflite\.info\.json: not valid JSON"):
        read_model_info(str(exported), network_info)


def test_model_saved_with_info_loads_in_keras_safe_mode_without_tf_hourglass_helpers(tmp_path):
    model = tf_hourglass.from_preset("hg_tiny", num_keypoints=14)
    model.pose_info = lsp_info()
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "m.keras"), compile=False, safe_mode=True)
    assert loaded.pose_info == lsp_info()
    assert loaded.get_config()["pose_info"]["codec"]["decode_method"] == "dark"


def test_commands_say_which_kind_of_model_file_they_load(tmp_path):
    from tf_hourglass.model_loader import describe_model_source

    model = tf_hourglass.from_preset("hg_tiny")
    model.save(str(tmp_path / "m.keras"))
    assert "Keras safe mode" in describe_model_source(str(tmp_path / "m.keras"))
    assert describe_model_source(model).startswith("the in-memory model")
    (tmp_path / "sm").mkdir()
    assert "load SavedModels only from sources you trust" in describe_model_source(str(tmp_path / "sm"))
    assert describe_model_source(str(tmp_path / "m.tflite")) == f"TFLite file {tmp_path / 'm.tflite'}"
    assert "pretrained preset hg8_mpii_pv" in describe_model_source("hg8_mpii_pv")
