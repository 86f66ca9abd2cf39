"""Convolutional Pose Machines: topology, centre map, background targets, training, inference and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import TINY_CONFIG, load_config

import tf_hourglass
from tf_hourglass.data.center_map import center_map_sigma, centered_maps, gaussian_center_maps
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.keypoint_specs import MPII
from tf_hourglass.data.pipeline import AugmentConfig, InMemorySource, make_dataset
from tf_hourglass.data.synthetic import SyntheticFigures
from tf_hourglass.export import export_model, verify
from tf_hourglass.model import (
    CPM_PRESETS,
    PRESET_PARAMETERS,
    ConvolutionalPoseMachine,
    as_stack_list,
    from_preset,
    keypoint_heatmaps,
)
from tf_hourglass.model.complexity import count_trainable_parameters
from tf_hourglass.prediction.estimator import PoseEstimator
from tf_hourglass.training import trainer

INPUT_SIZE = (64, 64)
PEAK = 10.0


def conv_parameters(kernel, in_channels, out_channels):
    return kernel * kernel * in_channels * out_channels + out_channels


def expected_parameters(num_stages, num_keypoints, filters=128, stage_kernel_size=11, center_map=True):
    """Counted layer by layer from the released Caffe prototxt (pose_deploy_centerMap)."""
    maps = num_keypoints + 1
    trunk = conv_parameters(9, 3, filters) + 2 * conv_parameters(9, filters, filters)
    stage1 = (
        trunk
        + conv_parameters(5, filters, filters // 4)
        + conv_parameters(9, filters // 4, 4 * filters)
        + conv_parameters(1, 4 * filters, 4 * filters)
        + conv_parameters(1, 4 * filters, maps)
    )
    if num_stages == 1:
        return stage1
    stage_inputs = filters // 4 + maps + int(center_map)
    stage = (
        conv_parameters(5, filters, filters // 4)
        + conv_parameters(stage_kernel_size, stage_inputs, filters)
        + 2 * conv_parameters(stage_kernel_size, filters, filters)
        + conv_parameters(1, filters, filters)
        + conv_parameters(1, filters, maps)
    )
    return stage1 + trunk + (num_stages - 1) * stage


def input_names(model):
    return sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer))


# ----- topology -------------------------------------------------------------------------------


def test_paper_model_has_the_released_caffe_models_parameter_count():
    # LSP: 14 joints + background = 15 belief maps per stage, 6 stages.
    model = ConvolutionalPoseMachine(num_stages=6, num_keypoints=14)
    assert count_trainable_parameters(model) == 31_219_866 == expected_parameters(6, 14)


@pytest.mark.parametrize("preset", sorted(CPM_PRESETS))
def test_every_cpm_preset_has_its_pinned_parameter_count(preset):
    config = CPM_PRESETS[preset]
    assert count_trainable_parameters(from_preset(preset)) == PRESET_PARAMETERS[preset]
    assert PRESET_PARAMETERS[preset] == expected_parameters(
        config["num_stages"], 16, config["filters"], config["stage_kernel_size"]
    )


def test_paper_model_outputs_k_plus_one_belief_maps_per_stage_at_stride_8():
    model = from_preset("cpm6")
    assert model.output_names == [f"heatmaps_{t}" for t in range(1, 7)]
    assert all(tuple(o.shape) == (None, 46, 46, 17) for o in model.outputs)
    assert model.heatmap_size == (46, 46) and model.heatmap_stride == 8
    assert input_names(model) == ["center_map", "images"]
    assert model.get_layer("stage2_head_conv1").kernel_size == (11, 11)
    assert model.center_map_sigma == pytest.approx(21.0)


def test_without_center_map_the_model_takes_images_only():
    model = ConvolutionalPoseMachine(
        num_stages=2, num_keypoints=5, filters=8, input_shape=(64, 64, 3), use_center_map=False
    )
    assert input_names(model) == ["images"] and model.center_map_sigma is None
    outputs = as_stack_list(model(np.zeros((1, 64, 64, 3), np.float32)))
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 8, 6)] * 2
    assert count_trainable_parameters(model) == expected_parameters(2, 5, 8, 11, center_map=False)


def test_the_center_map_steers_later_stages_only():
    model = from_preset("cpm_tiny")
    images = tf.random.stateless_uniform((1, 64, 64, 3), seed=(0, 0))
    centred = centered_maps(1, (64, 64), model.center_map_sigma)
    moved = gaussian_center_maps([[10.0, 50.0]], (64, 64), model.center_map_sigma)
    first = as_stack_list(model({"images": images, "center_map": centred}))
    second = as_stack_list(model({"images": images, "center_map": moved}))
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    assert np.abs(first[1].numpy() - second[1].numpy()).max() > 1e-4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(100, 100, 3)), "input_shape=(100, 100, 3)"),
        (dict(num_stages=0), "num_stages=0"),
        (dict(filters=30), "filters=30"),
        (dict(input_shape=(64, 64, 1)), "input_shape=(64, 64, 1)"),
    ],
)
def test_bad_arguments_name_the_received_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ConvolutionalPoseMachine(**{"num_stages": 2, "filters": 8, "input_shape": (64, 64, 3), **kwargs})


def test_config_and_keras_file_round_trips_give_identical_outputs(tmp_path):
    model = from_preset("cpm_tiny", num_keypoints=14)
    images = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype("float32")
    expected = keypoint_heatmaps(model, images).numpy()
    clone = ConvolutionalPoseMachine.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(keypoint_heatmaps(clone, images).numpy(), expected)
    model.save(tmp_path / "cpm.keras")
    loaded = keras.saving.load_model(tmp_path / "cpm.keras", compile=False)
    assert isinstance(loaded, ConvolutionalPoseMachine) and loaded.num_keypoints == 14
    np.testing.assert_allclose(keypoint_heatmaps(loaded, images).numpy(), expected, atol=1e-6)


def test_belief_maps_stay_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = from_preset("cpm_tiny")
    finally:
        keras.config.set_dtype_policy("float32")
    outputs = as_stack_list(model(model_inputs_for(model, 1)))
    assert all(o.dtype == tf.float32 for o in outputs)


def model_inputs_for(model, batch):
    images = tf.zeros((batch, *model.image_shape[:2], 3))
    return {
        "images": images,
        "center_map": centered_maps(batch, model.image_shape[:2], model.center_map_sigma),
    }


# ----- centre map, background targets, pipeline ------------------------------------------------------


def test_center_map_is_a_unit_gaussian_at_the_given_centre():
    maps = gaussian_center_maps([[10.0, 20.0]], (32, 48), sigma=3.0).numpy()
    assert maps.shape == (1, 32, 48, 1)
    assert maps[0, 20, 10, 0] == pytest.approx(1.0)
    assert maps[0, 20, 13, 0] == pytest.approx(np.exp(-0.5))  # one sigma away along x
    assert maps[0, 26, 10, 0] == pytest.approx(np.exp(-2.0))  # two sigmas along y
    assert center_map_sigma((368, 368)) == pytest.approx(21.0)


def test_background_target_is_peak_minus_the_strongest_joint_with_weight_one():
    codec = HeatmapCodec(
        input_size=(32, 32), heatmap_size=(4, 4), sigma=1.0, peak=2.0, background_channel=True
    )
    # Joint 0 at heatmap pixel (1, 2); joint 1 has no ground truth.
    keypoints = tf.constant([[[11.5, 19.5], [0.0, 0.0]]])  # (u + 0.5) / 8 - 0.5 = (1, 2)
    heatmaps, weights = codec.encode(keypoints, tf.constant([[True, False]]))
    heatmaps = heatmaps.numpy()[0]
    assert heatmaps.shape == (4, 4, 3)
    np.testing.assert_array_equal(weights.numpy(), [[1.0, 0.0, 1.0]])
    assert heatmaps[2, 1, 0] == pytest.approx(2.0) and heatmaps[2, 1, 2] == pytest.approx(0.0)
    assert heatmaps[2, 2, 2] == pytest.approx(2.0 - 2.0 * np.exp(-0.5))
    assert heatmaps[0, 3, 2] == pytest.approx(2.0 - 2.0 * np.exp(-(4 + 4) / 2))
    np.testing.assert_array_equal(heatmaps[..., 1], 0.0)


def synthetic_source(count=64, start=0):
    images, records = SyntheticFigures(image_size=INPUT_SIZE, seed=0).as_arrays(count, start=start)
    return InMemorySource(records, images)


def test_pipeline_centre_map_follows_the_person_centre_through_augmentation():
    model = from_preset("cpm_tiny")
    codec = HeatmapCodec(INPUT_SIZE, model.heatmap_size, background_channel=True)
    augment = AugmentConfig(center_jitter=0.2)
    dataset = make_dataset(
        synthetic_source(16),
        MPII,
        codec,
        batch_size=8,
        training=True,
        augment=augment,
        with_metadata=True,
        center_map_sigma=model.center_map_sigma,
    )
    batch = next(iter(dataset))
    maps = batch["center_map"].numpy()[..., 0]
    peaks = np.array([np.unravel_index(np.argmax(m), m.shape)[::-1] for m in maps], np.float32)
    centers = batch["input_center"].numpy()
    inside = np.all((centers >= 0) & (centers <= 63), axis=1)
    assert inside.sum() >= 4
    np.testing.assert_allclose(peaks[inside], np.round(centers[inside]), atol=1.0)
    assert np.abs(centers - 31.5).max() > 2.0  # the jitter did move the centres
    assert batch["heatmaps"].shape[-1] == 17 and batch["weights"].shape[-1] == 17

    plain = make_dataset(
        synthetic_source(8),
        MPII,
        codec,
        batch_size=8,
        training=False,
        center_map_sigma=model.center_map_sigma,
    )
    inputs, heatmaps, weights = next(iter(plain))
    np.testing.assert_allclose(
        inputs["center_map"].numpy(), centered_maps(8, INPUT_SIZE, model.center_map_sigma).numpy(), atol=1e-5
    )


# ----- training, inference, export ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_cpm_path(tmp_path_factory):
    """A cpm_tiny fitted with model.fit on synthetic figures (centre maps and background from the pipeline)."""
    keras.utils.set_random_seed(0)
    model = from_preset("cpm_tiny")
    codec = HeatmapCodec(INPUT_SIZE, model.heatmap_size, sigma=1.0, peak=PEAK, background_channel=True)
    dataset = make_dataset(
        synthetic_source(128),
        MPII,
        codec,
        batch_size=8,
        training=True,
        center_map_sigma=model.center_map_sigma,
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=tf_hourglass.HeatmapLoss())
    history = model.fit(dataset, steps_per_epoch=40, epochs=3, verbose=0)
    losses = history.history["loss"]
    # Both stages are supervised, and the total is their sum.
    assert set(history.history) == {"loss", "heatmaps_1_loss", "heatmaps_2_loss"}
    assert losses[-1] == pytest.approx(
        history.history["heatmaps_1_loss"][-1] + history.history["heatmaps_2_loss"][-1], rel=1e-4
    )
    assert losses[-1] < 0.8 * losses[0]
    path = tmp_path_factory.mktemp("cpm") / "cpm_tiny.keras"
    model.save(path)
    return str(path)


@pytest.mark.e2e
def test_predictor_supplies_the_centre_map_and_drops_the_background(fitted_cpm_path):
    model = keras.saving.load_model(fitted_cpm_path, compile=False)
    crops = tf.random.uniform((3, 64, 64, 3))
    manual = as_stack_list(model(model_inputs_for_crops(model, crops)))[-1][..., :16]
    np.testing.assert_allclose(keypoint_heatmaps(model, crops).numpy(), manual.numpy(), atol=1e-6)
    estimator = PoseEstimator(model, spec="mpii", flip_test=True)
    assert estimator.model.num_keypoints == 16 and estimator.codec.heatmap_size == (8, 8)
    images, records = SyntheticFigures(image_size=(160, 120), seed=0).as_arrays(2, start=5000)
    poses = estimator.predict_batch(list(images))
    assert [p["keypoints"].shape for p in poses] == [(16, 2), (16, 2)]
    assert all(np.isfinite(p["keypoints"]).all() and np.isfinite(p["scores"]).all() for p in poses)


def model_inputs_for_crops(model, crops):
    return {"images": crops, "center_map": centered_maps(crops.shape[0], (64, 64), model.center_map_sigma)}


@pytest.mark.parametrize(
    "format, quantize, extra",
    [
        ("saved_model", "none", {}),
        ("tflite", "none", {}),
        ("tflite", "int8", dict(calibration="synthetic", num_calibration=32, num_heldout=32)),
        ("onnx", "none", {}),
    ],
)
@pytest.mark.e2e
def test_every_export_takes_images_only_and_matches_the_keras_cpm(
    fitted_cpm_path, tmp_path, format, quantize, extra
):
    suffix = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}[format]
    output = str(tmp_path / f"cpm_{quantize}{suffix}")
    # export_model itself fails beyond the tolerance; the reported figures are checked here too.
    result = export_model(
        fitted_cpm_path, output, format, quantize=quantize, peak=PEAK, log=lambda line: None, **extra
    )
    tolerance = verify.TOLERANCES["int8" if quantize == "int8" else "float32"]
    assert result.parity.mean_keypoint_distance <= tolerance.keypoints
    if quantize == "int8":
        assert result.accuracy is not None and result.accuracy.drop <= 1.0
    if format == "saved_model":
        loaded = tf.saved_model.load(output)
        heatmaps = loaded.signatures["heatmaps"](images=tf.zeros((2, 64, 64, 3)))["heatmaps"]
        assert tuple(heatmaps.shape) == (2, 8, 8, 16)
        photos = tf.zeros((1, 120, 90, 3), tf.uint8)
        keypoints = loaded.signatures["serving_default"](images=photos)["keypoints"]
        assert tuple(keypoints.shape) == (1, 16, 2)


def test_qat_is_refused_for_cpm_with_a_pointer_to_int8(fitted_cpm_path, tmp_path):
    with pytest.raises(ValueError, match="ConvolutionalPoseMachine.*--quantize int8"):
        export_model(
            fitted_cpm_path, str(tmp_path / "q.tflite"), "tflite", quantize="qat", calibration="synthetic"
        )


@pytest.mark.e2e
def test_train_and_evaluate_trains_a_cpm_preset_end_to_end(tmp_path):
    config_path = tmp_path / "tiny_cpm.py"
    config_text = TINY_CONFIG.format(epochs=1).replace('"hg_tiny"', '"cpm_tiny"')
    config_path.write_text(config_text.replace("config.model.depth = 1", "config.model.num_stages = 2"))
    results = trainer.train_and_evaluate(load_config(config_path), str(tmp_path / "run"))
    assert results["metric"] == "PCKh@0.5" and results["num_persons"] == 8
    assert 0.0 <= results["score"] <= 100.0
    loaded = keras.saving.load_model(tmp_path / "run" / "final.keras", compile=False)
    assert isinstance(loaded, ConvolutionalPoseMachine)
    pose = PoseEstimator(str(tmp_path / "run")).predict(np.zeros((90, 60, 3), np.uint8))
    assert pose["keypoints"].shape == (16, 2)


def test_hourglass_only_overrides_are_rejected_for_cpm_presets():
    config = trainer_config_for("cpm_tiny")
    config.model.depth = 3
    with pytest.raises(ValueError, match="model.depth=3 does not apply to preset 'cpm_tiny'"):
        trainer.validate_config(config)


def trainer_config_for(preset):
    from tf_hourglass.training.base_config import get_base_config

    config = get_base_config()
    config.model.preset = preset
    return config
