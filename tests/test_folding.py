"""The inference graph: BatchNorms folded into the convolutions before them, and inference precision."""

import keras
import numpy as np
import pytest

import tf_hourglass
from tf_hourglass import precision
from tf_hourglass.model.folding import (
    FoldedBatchNormalization,
    FoldedReluBatchNorm,
    fold_batch_norms,
    foldable_pairs,
    foldable_relu_triples,
)
from tf_hourglass.model_loader import keras_inference_model, load_model_for_inference


def randomize_batch_norms(model, seed=0):
    """Trained-looking BatchNorm statistics (the initial ones make every BatchNorm almost the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, channels),
                    rng.normal(0.0, 0.2, channels),
                    rng.normal(0.0, 0.3, channels),
                    rng.uniform(0.3, 2.0, channels),
                ]
            )


@pytest.fixture(scope="module")
def trained_looking_model():
    keras.utils.set_random_seed(5)
    model = tf_hourglass.from_preset("hg_tiny")
    randomize_batch_norms(model)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(size=(3, 64, 64, 3)).astype(np.float32)


def test_the_batch_norms_after_convolutions_are_the_ones_folded(trained_looking_model):
    pairs = foldable_pairs(trained_looking_model)
    # Each residual module has one first BatchNorm, "..._1_bn".
    residual_modules = sum(1 for layer in trained_looking_model.layers if layer.name.endswith("_1_bn"))
    assert residual_modules == 19  # stem 3, each stack's two-level hourglass 7 and head 1
    # Two per residual module (after its 1x1 and 3x3), the stem's and each stack head's.
    assert len(pairs) == 2 * residual_modules + 1 + 2
    assert pairs["stem_bn"] == "stem_conv"
    assert pairs["stem_res1_2_bn"] == "stem_res1_1_conv"
    assert pairs["stem_res1_3_bn"] == "stem_res1_2_conv"
    assert pairs["stack2_lin_bn"] == "stack2_lin_conv"
    # The first BatchNorm of a residual module follows an addition or a ReLU: it stays.
    assert "stem_res1_1_bn" not in pairs and "stack1_hg_up_res1_1_bn" not in pairs


def test_folded_outputs_equal_the_trained_models(trained_looking_model, images):
    folded = fold_batch_norms(trained_looking_model)
    expected = [np.asarray(o) for o in trained_looking_model(images, training=False)]
    received = [np.asarray(o) for o in folded(images, training=False)]
    assert len(received) == len(expected) == 2
    for want, got in zip(expected, received, strict=True):
        assert np.abs(want).max() > 0.1  # outputs worth comparing
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    folded_layers = [layer for layer in folded.layers if isinstance(layer, FoldedBatchNormalization)]
    assert len(folded_layers) == len(foldable_pairs(trained_looking_model))
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization)
        and layer.name in foldable_pairs(trained_looking_model)
        for layer in folded.layers
    )


def test_folding_leaves_the_trained_model_and_its_file_unchanged(trained_looking_model, images, tmp_path):
    before = [w.copy() for w in trained_looking_model.get_weights()]
    fold_batch_norms(trained_looking_model)
    after = trained_looking_model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    path = str(tmp_path / "model.keras")
    trained_looking_model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, tf_hourglass.StackedHourglass)
    np.testing.assert_array_equal(
        np.asarray(loaded(images, training=False)[-1]),
        np.asarray(trained_looking_model(images, training=False)[-1]),
    )


def test_a_model_without_batch_norms_is_returned_as_is():
    cpm = tf_hourglass.from_preset("cpm_tiny")
    assert foldable_pairs(cpm) == {}
    assert fold_batch_norms(cpm) is cpm


@pytest.fixture(scope="module")
def batch_norm_ae():
    """ae_tiny with the official bn=True, trained-looking statistics and some negative BatchNorm scales."""
    keras.utils.set_random_seed(6)
    model = tf_hourglass.from_preset("ae_tiny", batch_norm=True)
    randomize_batch_norms(model, seed=2)
    stem_bn = model.get_layer("stem_conv1_bn")
    gamma, beta, mean, variance = stem_bn.get_weights()
    gamma[::3] *= -1.0  # a trained BatchNorm may flip channels
    variance[1] = 1e-4  # and multiply one by ~100 (as a trained stem does)
    stem_bn.set_weights([gamma, beta, mean, variance])
    return model


def test_batch_norms_after_a_convolutions_relu_fold_into_it(batch_norm_ae):
    triples = foldable_relu_triples(batch_norm_ae)
    batch_norms = [
        layer.name for layer in batch_norm_ae.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    # The stem's four, and per stack each level's up and low1 and the bottom: 2 * (2 * 2 + 1) = 10.
    assert len(batch_norms) == 14
    assert sorted(triples) == sorted(batch_norms)
    assert triples["stem_conv1_bn"] == ("stem_conv1_relu", "stem_conv1")
    assert triples["stack2_hg_inner_bottom_bn"] == ("stack2_hg_inner_bottom_relu", "stack2_hg_inner_bottom")
    assert foldable_pairs(batch_norm_ae) == {}  # none follows a convolution directly


def test_relu_folded_outputs_equal_the_trained_models_with_negative_scales(batch_norm_ae, tmp_path):
    images = np.random.default_rng(3).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    folded = fold_batch_norms(batch_norm_ae)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    stem = folded.get_layer("stem_conv1_bn")
    assert isinstance(stem, FoldedReluBatchNorm) and stem.flips_channels
    # All the scales of stem_conv2_bn are positive: only the maximum.
    assert not folded.get_layer("stem_conv2_bn").flips_channels
    assert isinstance(folded.get_layer("stem_conv1_relu"), FoldedBatchNormalization)  # inside the maximum
    expected = [np.asarray(o) for o in batch_norm_ae(images, training=False)]
    received = [np.asarray(o) for o in folded(images, training=False)]
    for want, got in zip(expected, received, strict=True):
        assert np.abs(want).max() > 0.1
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    # The folded kernel carries |scale|: the largest stem multiplier is no longer a separate op.
    assert (
        np.abs(np.asarray(folded.get_layer("stem_conv1").kernel)).max()
        > 10 * np.abs(np.asarray(batch_norm_ae.get_layer("stem_conv1").kernel)).max()
    )
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    np.testing.assert_allclose(
        np.asarray(keras.saving.load_model(path)(images, training=False)[-1]), received[-1], rtol=0, atol=1e-6
    )


def test_bfloat16_network_keeps_float32_heatmaps_close_to_float32(trained_looking_model, images):
    network = fold_batch_norms(trained_looking_model, "bfloat16")
    assert network.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert network.get_layer("stem_conv").kernel.dtype == "bfloat16"
    expected = np.asarray(trained_looking_model(images, training=False)[-1])
    received = network(images, training=False)[-1]
    assert received.dtype == "float32"
    # bfloat16 keeps 8 significant bits: errors of a few percent of the largest value after ~40 layers.
    assert np.abs(np.asarray(received) - expected).max() <= 0.05 * np.abs(expected).max()


def test_inference_model_runs_the_chosen_precision(trained_looking_model, images):
    float32 = keras_inference_model(trained_looking_model, precision="float32")
    bfloat16 = keras_inference_model(trained_looking_model, precision="bfloat16")
    assert (float32.precision, bfloat16.precision) == ("float32", "bfloat16")
    expected = np.asarray(trained_looking_model(images, training=False)[-1])
    np.testing.assert_allclose(np.asarray(float32(images)), expected, atol=1e-4 * np.abs(expected).max())
    heatmaps = bfloat16(images)
    assert heatmaps.dtype == "float32"
    assert not np.array_equal(np.asarray(heatmaps), np.asarray(float32(images)))  # bfloat16 did run
    with pytest.raises(ValueError, match="precision must be one of .* Received: precision='float16'"):
        load_model_for_inference(trained_looking_model, precision="float16")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx512f avx512_bf16 amx_tile", "bfloat16"),
        ("fpu avx2 avx512f", "float32"),
        ("fpu amx_bf16", "bfloat16"),
    ],
)
def test_auto_inference_precision_is_bfloat16_only_on_cpus_that_compute_it(
    monkeypatch, tmp_path, flags, expected
):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    read_flags = precision.native_bfloat16_cpu_flags
    monkeypatch.setattr(precision, "native_bfloat16_cpu_flags", lambda: read_flags(cpuinfo))
    chosen, reason = precision.resolve_inference_precision("auto")
    assert chosen == expected and reason.startswith("auto: ")
    assert precision.resolve_inference_precision("float32") == ("float32", "asked for")


def test_a_cpm_runs_in_bfloat16_with_its_centre_map(images):
    keras.utils.set_random_seed(2)
    cpm = tf_hourglass.from_preset("cpm_tiny")
    expected = np.asarray(keras_inference_model(cpm, precision="float32")(images))
    heatmaps = np.asarray(keras_inference_model(cpm, precision="bfloat16")(images))
    assert heatmaps.shape == expected.shape == (3, 8, 8, 16)  # the background map dropped
    assert np.abs(heatmaps - expected).max() <= 0.05 * np.abs(expected).max()


def test_int8_tflite_of_a_relu_batch_norm_network_has_no_per_tensor_multipliers_or_second_rounding(
    batch_norm_ae, tmp_path
):
    # TFLite quantises a BatchNorm's multiplier vector with one scale: a trained stem's 0.4-300 range
    # then rounds its small channels away (a trained quick-start model lost 70% of its peak). Folded,
    # the multipliers are the convolutions' per-channel kernel scales; the one MUL left is the stem's
    # channel flips, +-1, which int8 holds to within a step. Each ReLU + shift is one MAXIMUM, which
    # keeps its input's scale: no second rounding of the activations (an ADD after the ReLU had one).
    from ai_edge_litert.interpreter import Interpreter

    from tf_hourglass.export.exporter import export_model

    result = export_model(
        batch_norm_ae,
        str(tmp_path / "bn.tflite"),
        "tflite",
        quantize="int8",
        num_calibration=16,
        num_heldout=8,
        log=lambda line: None,
    )
    interpreter = Interpreter(model_path=result.path)
    multiplies = [op for op in interpreter._get_ops_details() if op["op_name"] == "MUL"]
    assert len(multiplies) == 1
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    maximums = [op for op in interpreter._get_ops_details() if op["op_name"] == "MAXIMUM"]
    assert len(maximums) == len(foldable_relu_triples(batch_norm_ae)) == 14
    for op in maximums:
        scales = {tensors[i]["quantization"] for i in [*op["inputs"], *op["outputs"]]}
        assert len(scales) == 1, scales
    (factor,) = [tensors[i] for i in multiplies[0]["inputs"] if len(tensors[i]["shape"]) == 1]
    scale, zero_point = factor["quantization"]
    signs = (interpreter.get_tensor(factor["index"]).astype(np.float32) - zero_point) * scale
    channels = len(signs)
    np.testing.assert_allclose(signs, np.where(np.arange(channels) % 3 == 0, -1.0, 1.0), atol=1 / 127)
    assert result.parity.relative_heatmap_error < 0.25
