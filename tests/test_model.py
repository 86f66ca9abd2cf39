"""The Stacked Hourglass model: topology, parameter counts, serialization, precision, arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass import StackedHourglass, from_preset
from tf_hourglass.model import HOURGLASS_PRESETS, PRESET_PARAMETERS, as_stack_list
from tf_hourglass.model.hourglass import NearestUpsampling2D


def trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def residual_parameters(c_in, c_out):
    """Trainable parameters of the original residual module, counted from its definition."""
    half = c_out // 2
    bn = 2 * c_in + 2 * half + 2 * half  # gamma and beta of three BatchNorms
    convs = (c_in * half + half) + (9 * half * half + half) + (half * c_out + c_out)
    skip = 0 if c_in == c_out else c_in * c_out + c_out
    return bn + convs + skip


def expected_parameters(num_stacks, num_keypoints, filters, depth, num_residual_modules, stem="original"):
    """Trainable parameters of the original network (or bearpaw's), counted independently of Keras."""
    f, k, m = filters, num_keypoints, num_residual_modules
    widths = (64, 128, 128, f) if stem == "original" else (64, 128, 256, f)
    stem = (7 * 7 * 3 * 64 + 64) + 2 * 64
    stem += sum(residual_parameters(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    # Each hourglass level: upper, lower-before and lower-after branches; plus the bottom.
    hourglass = (3 * depth + 1) * m * residual_parameters(f, f)
    head = m * residual_parameters(f, f) + (f * f + f) + 2 * f + (f * k + k)
    merge = (f * f + f) + (k * f + f)
    return stem + num_stacks * (hourglass + head) + (num_stacks - 1) * merge


@pytest.mark.parametrize(
    "kwargs, heatmap_hw",
    [
        (dict(num_stacks=1, num_keypoints=16, filters=32, depth=2, input_shape=(64, 64, 3)), (16, 16)),
        (dict(num_stacks=3, num_keypoints=14, filters=16, depth=3, input_shape=(128, 96, 3)), (32, 24)),
        (
            dict(
                num_stacks=2,
                num_keypoints=17,
                filters=16,
                depth=1,
                num_residual_modules=2,
                input_shape=(24, 40, 3),
            ),
            (6, 10),
        ),
    ],
)
def test_one_named_output_per_stack_at_quarter_resolution(kwargs, heatmap_hw):
    model = StackedHourglass(**kwargs)
    k = kwargs["num_keypoints"]
    assert model.output_names == [f"heatmaps_{i}" for i in range(1, kwargs["num_stacks"] + 1)]
    images = np.random.default_rng(0).uniform(size=(2, *kwargs["input_shape"])).astype("float32")
    outputs = as_stack_list(model(images, training=False))
    assert len(outputs) == kwargs["num_stacks"]
    for output in outputs:
        assert tuple(output.shape) == (2, *heatmap_hw, k)
    assert model.heatmap_size == heatmap_hw
    assert trainable_parameters(model) == expected_parameters(
        kwargs["num_stacks"], k, kwargs["filters"], kwargs["depth"], kwargs.get("num_residual_modules", 1)
    )


# Counted in the original Torch7 / PyTorch networks with 16 joints.
ORIGINAL_TORCH_PARAMETERS = {"hg1": 3_426_448, "hg2": 6_570_400, "hg8": 25_434_112}


@pytest.mark.parametrize("preset", sorted(HOURGLASS_PRESETS))
def test_every_preset_has_its_pinned_parameter_count(preset):
    model = from_preset(preset)
    assert trainable_parameters(model) == PRESET_PARAMETERS[preset]
    if preset in ORIGINAL_TORCH_PARAMETERS:  # the paper's networks have the original's count
        assert trainable_parameters(model) == ORIGINAL_TORCH_PARAMETERS[preset]
    config = HOURGLASS_PRESETS[preset]
    assert PRESET_PARAMETERS[preset] == expected_parameters(
        config["num_stacks"], 16, config["filters"], config["depth"], 1, config.get("stem", "original")
    )


def test_batchnorm_matches_torch_defaults():
    model = from_preset("hg_tiny")
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.epsilon == 1e-5 and bn.momentum == 0.9 for bn in bns)


def test_stem_convolution_pads_three_pixels_on_every_side_like_the_original():
    model = from_preset("hg_tiny")
    conv = model.get_layer("stem_conv")
    images = np.random.default_rng(1).uniform(size=(1, 64, 64, 3)).astype("float32")
    stem_output = keras.Model(model.input, conv.output)(images).numpy()
    kernel, bias = (w.numpy() for w in conv.weights)
    # Torch's SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3): symmetric padding of 3.
    reference = tf.nn.conv2d(images, kernel, strides=2, padding=[[0, 0], [3, 3], [3, 3], [0, 0]]) + bias
    assert stem_output.shape == (1, 32, 32, 64)
    np.testing.assert_allclose(stem_output, reference.numpy(), atol=1e-5)
    # Keras "same" padding (2 before, 3 after at stride 2) would give a shifted result.
    shifted = tf.nn.conv2d(images, kernel, strides=2, padding="SAME") + bias
    assert np.abs(stem_output - shifted.numpy()).max() > 1e-2


def test_residual_module_skip_convolution_only_when_channels_change():
    model = from_preset("hg_tiny")
    names = {layer.name for layer in model.layers}
    assert "stem_res1_skip_conv" in names  # 64 -> 128
    assert "stem_res2_skip_conv" not in names  # 128 -> 128
    assert "stem_res3_skip_conv" in names  # 128 -> 16 filters
    assert "stack1_hg_up_res1_skip_conv" not in names


def _random_weights_model(**kwargs):
    model = StackedHourglass(**kwargs)
    rng = np.random.default_rng(2)
    # Randomise BatchNorm statistics too, so the round trip checks every weight.
    model.set_weights(
        [
            rng.normal(size=w.shape).astype("float32") * 0.1 + (w.name == "moving_variance")
            for w in model.weights
        ]
    )
    return model


def test_get_config_from_config_round_trip_gives_identical_outputs():
    model = _random_weights_model(num_stacks=2, num_keypoints=5, filters=16, depth=2, input_shape=(64, 64, 3))
    config = model.get_config()
    assert config["num_keypoints"] == 5 and config["input_shape"] == (64, 64, 3)
    clone = StackedHourglass.from_config(config)
    clone.set_weights(model.get_weights())
    images = np.random.default_rng(3).uniform(size=(2, 64, 64, 3)).astype("float32")
    for a, b in zip(model(images), clone(images), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = _random_weights_model(
        num_stacks=2, num_keypoints=16, filters=16, depth=2, input_shape=(64, 64, 3)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, StackedHourglass)
    assert loaded.num_stacks == 2 and loaded.filters == 16
    images = np.random.default_rng(4).uniform(size=(3, 64, 64, 3)).astype("float32")
    for a, b in zip(model.predict(images, verbose=0), loaded.predict(images, verbose=0), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_heatmaps_stay_float32_under_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = from_preset("hg_tiny")
        assert model.get_layer("stack1_heatmap_conv").compute_dtype != "float32"
        outputs = model(np.zeros((1, 64, 64, 3), "float32"))
        assert [o.dtype for o in outputs] == [tf.float32, tf.float32]
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(100, 128, 3), depth=2), "input_shape=(100, 128, 3)"),
        (dict(input_shape=(64, 64, 1)), "input_shape=(64, 64, 1)"),
        (dict(num_stacks=0), "num_stacks=0"),
        (dict(num_keypoints=2.5), "num_keypoints=2.5"),
        (dict(filters=15), "filters=15"),
        (dict(depth=0), "depth=0"),
    ],
)
def test_bad_arguments_raise_value_error_repeating_the_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        StackedHourglass(**{"filters": 16, "depth": 2, "input_shape": (64, 64, 3), **kwargs})
    assert message in str(error.value)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'hg3'.*hg1"):
        from_preset("hg3")


def test_preset_overrides_change_only_the_named_fields():
    model = from_preset("hg_tiny", num_keypoints=14)
    assert model.num_keypoints == 14 and model.num_stacks == HOURGLASS_PRESETS["hg_tiny"]["num_stacks"]
    assert model.outputs[0].shape[-1] == 14


@pytest.mark.parametrize("input_shape", [(1, 6, 10, 4), (3, 5, 7, 2)])
def test_nearest_upsampling_repeats_every_pixel_along_rows_and_columns(input_shape):
    x = np.random.default_rng(0).random(input_shape).astype(np.float32)
    layer = NearestUpsampling2D()
    np.testing.assert_array_equal(layer(x).numpy(), np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))
    # Also when height and width are only known at run time.
    inputs = keras.Input((None, None, input_shape[-1]))
    model = keras.Model(inputs, NearestUpsampling2D()(inputs))
    assert model.output_shape == (None, None, None, input_shape[-1])
    np.testing.assert_array_equal(model(x).numpy(), np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))


def test_fused_batchnorm_trains_like_keras_and_keeps_torchs_unbiased_moving_variance():
    from tf_hourglass.model.hourglass import FusedBatchNormalization

    x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 5, 6, 7)).astype("float32")
    keras_bn = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    fused_bn = FusedBatchNormalization(epsilon=1e-5, momentum=0.9)
    gamma = np.random.default_rng(1).uniform(0.5, 1.5, 7).astype("float32")
    for layer in (keras_bn, fused_bn):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(gamma - 1.0)
    gradients = []
    for layer in (keras_bn, fused_bn):
        with tf.GradientTape() as tape:
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(outputs**3)
        gradients.append([g.numpy() for g in tape.gradient(loss, [layer.gamma, layer.beta])])
        layer.outputs_seen = outputs.numpy()
    np.testing.assert_allclose(fused_bn.outputs_seen, keras_bn.outputs_seen, atol=1e-5)
    for fused, plain in zip(gradients[1], gradients[0], strict=True):
        np.testing.assert_allclose(fused, plain, rtol=1e-4)
    np.testing.assert_allclose(fused_bn.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    unbiased = x.reshape(-1, 7).var(axis=0, ddof=1)
    np.testing.assert_allclose(fused_bn.moving_variance.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-5)
    # Inference is Keras' own code: the moving statistics, epsilon 1e-5.
    expected = (
        (x - fused_bn.moving_mean.numpy()) / np.sqrt(fused_bn.moving_variance.numpy() + 1e-5) * gamma
        + gamma
        - 1
    )
    np.testing.assert_allclose(fused_bn(x, training=False).numpy(), expected, atol=1e-4)


def test_pointwise_conv_trains_with_keras_conv_gradients_and_infers_as_keras_conv():
    from tf_hourglass.model.hourglass import PointwiseConv2D

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype("float32"))
    keras_conv = keras.layers.Conv2D(4, 1)
    pointwise = PointwiseConv2D(4)
    keras_conv.build(x.shape)
    pointwise.build(x.shape)
    kernel = np.random.default_rng(1).uniform(-0.5, 0.5, size=(1, 1, 7, 4)).astype("float32")
    bias = np.linspace(-1, 1, 4).astype("float32")
    keras_conv.set_weights([kernel, bias])
    pointwise.set_weights([kernel, bias])
    results = []
    for layer in (keras_conv, pointwise):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(outputs**3)
        results.append([outputs, *tape.gradient(loss, [x, layer.kernel, layer.bias])])
    for mine, keras_result in zip(results[1], results[0], strict=True):
        # Float rounding of sums in another order: relative to the largest entry.
        scale = np.abs(keras_result.numpy()).max()
        np.testing.assert_allclose(mine.numpy(), keras_result.numpy(), rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_array_equal(pointwise(x, training=False).numpy(), keras_conv(x).numpy())
    # Inference is TensorFlow's convolution: what the exports trace.
    graph = tf.function(lambda images: pointwise(images, training=False)).get_concrete_function(x).graph
    assert {op.type for op in graph.get_operations()} >= {"Conv2D", "BiasAdd"}
    assert "MatMul" not in {op.type for op in graph.get_operations()}


def test_pointwise_conv_gradients_under_mixed_bfloat16_reach_float32_variables():
    from tf_hourglass.model.hourglass import PointwiseConv2D

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 6, 8)).astype("float32"))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = PointwiseConv2D(4)
        layer.build(x.shape)
        layer.kernel.assign(np.random.default_rng(1).uniform(-0.5, 0.5, size=(1, 1, 8, 4)).astype("float32"))
        with tf.GradientTape() as tape:
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") ** 2)
        kernel_gradient, bias_gradient = tape.gradient(loss, [layer.kernel, layer.bias])
    finally:
        keras.config.set_dtype_policy(previous)
    assert outputs.dtype == "bfloat16"
    assert kernel_gradient.dtype == bias_gradient.dtype == "float32"
    flat = x.numpy().reshape(-1, 8) @ layer.kernel.numpy()[0, 0] + layer.bias.numpy()
    expected_kernel_gradient = x.numpy().reshape(-1, 8).T @ (2 * flat)
    # bfloat16 keeps 8 significant bits: errors scale with the largest gradient, not each entry.
    scale = np.abs(expected_kernel_gradient).max()
    np.testing.assert_allclose(kernel_gradient.numpy()[0, 0], expected_kernel_gradient, atol=0.02 * scale)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 3}, {"strides": 2}])
def test_pointwise_conv_rejects_other_kernels_and_strides(kwargs):
    from tf_hourglass.model.hourglass import PointwiseConv2D

    with pytest.raises(
        ValueError,
        match=f"received kernel_size={kwargs.get('kernel_size', 1)}, strides={kwargs.get('strides', 1)}",
    ):
        PointwiseConv2D(4, **kwargs)


def test_hourglass_one_by_one_convolutions_are_pointwise_convs():
    from tf_hourglass.model.hourglass import PointwiseConv2D

    model = from_preset("hg1", input_shape=(64, 64, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pointwise = [layer.name for layer in convs if isinstance(layer, PointwiseConv2D)]
    one_by_one = [layer.name for layer in convs if layer.kernel_size == (1, 1)]
    assert pointwise == one_by_one and len(pointwise) > 20
