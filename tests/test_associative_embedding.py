"""The Associative Embedding model: topology, parameter counts, channel layout, serialization, arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.model import as_stack_list
from tf_hourglass.model.associative_embedding import (
    AssociativeEmbedding,
    detection_heatmaps,
    split_outputs,
    tag_maps,
)
from tf_hourglass.model.hourglass import NearestUpsampling2D, PointwiseConv2D
from tf_hourglass.model.presets import AE_PRESETS, PRESET_PARAMETERS, from_preset, preset_class

TINY = dict(num_stacks=2, filters=16, increase=8, depth=2, input_shape=(64, 64, 3))


def trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def conv_parameters(c_in, c_out, k):
    return k * k * c_in * c_out + c_out


def expected_parameters(
    num_stacks,
    filters,
    increase,
    depth,
    num_keypoints,
    tag_dim,
    extra_channels,
    stem_filters=(64, 128),
    batch_norm=False,
):
    """Trainable parameters of pose-ae-train's PoseNet, counted from its definition independently of Keras.

    ``batch_norm`` is ``PoseNet(bn=True)``: each stem and hourglass ``Conv`` but ``low3`` adds a
    BatchNorm's scale and offset (2 per channel); the heads and merges have none.
    """
    f, out = filters, num_keypoints * (1 + tag_dim) + extra_channels
    bn = 2 if batch_norm else 0

    def conv(c_in, c_out, k, normalised=True):
        return conv_parameters(c_in, c_out, k) + (bn * c_out if normalised else 0)

    first, second = stem_filters
    stem = conv(3, first, 7) + conv(first, second, 3) + conv(second, second, 3) + conv(second, f, 3)
    hourglass = 0
    for level in range(depth):  # up1, low1 and low3 at each level, the bottom conv at the last
        w, nw = f + level * increase, f + (level + 1) * increase
        hourglass += conv(w, w, 3) + conv(w, nw, 3) + conv(nw, w, 3, normalised=False)  # low3: no bn
    hourglass += conv(f + depth * increase, f + depth * increase, 3)
    head = 2 * conv_parameters(f, f, 3) + conv_parameters(f, out, 1)
    merge = conv_parameters(out, f, 1) + conv_parameters(f, f, 1)
    return stem + num_stacks * (hourglass + head) + (num_stacks - 1) * merge


def counted_parameters(model):
    config = model.get_config()
    names = ("num_stacks", "filters", "increase", "depth", "num_keypoints", "tag_dim", "extra_channels")
    return expected_parameters(
        **{name: config[name] for name in names},
        stem_filters=tuple(config["stem_filters"]),
        batch_norm=config["batch_norm"],
    )


def images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


@pytest.mark.parametrize(
    "kwargs, output_shape",
    [
        (TINY, (16, 16, 17 * 2 + 34)),
        (dict(TINY, num_stacks=3, num_keypoints=5, tag_dim=2, extra_channels=0), (16, 16, 15)),
        (dict(TINY, num_stacks=1, depth=1, increase=0, input_shape=(32, 64, 3)), (8, 16, 68)),
    ],
)
def test_one_named_output_per_stack_at_quarter_resolution_with_the_counted_parameters(kwargs, output_shape):
    model = AssociativeEmbedding(**kwargs)
    num_stacks = kwargs["num_stacks"]
    assert model.output_names == [f"heatmaps_{i}" for i in range(1, num_stacks + 1)]
    outputs = as_stack_list(model(images(kwargs["input_shape"]), training=False))
    assert [tuple(o.shape) for o in outputs] == [(2, *output_shape)] * num_stacks
    assert model.heatmap_size == output_shape[:2] and model.heatmap_stride == 4
    assert model.num_output_channels == output_shape[2]
    assert trainable_parameters(model) == counted_parameters(model)


def test_official_network_has_the_official_parameter_count_and_512_to_128_outputs():
    """pose-ae-train's ``PoseNet(4, 256, 68, bn=False, increase=128)`` has 138,893,840 trainable parameters.

    Counted with torch 2.13.0 (CPU) in a scratch venv outside the project:
    ``sum(p.numel() for p in PoseNet(4, 256, 68, bn=False, increase=128).parameters()
    if p.requires_grad)`` on the official ``models/posenet.py`` and
    ``models/layers.py`` at the mirrored HEAD, with the compiled
    ``extensions.AE`` module stubbed out (the loss holds no parameters). Its
    state dict holds the same 138,893,840 numbers in 148 tensors.
    """
    model = from_preset("ae_hg4")
    assert trainable_parameters(model) == 138_893_840 == PRESET_PARAMETERS["ae_hg4"]
    assert len(model.weights) == 148
    assert model.input_shape == (None, 512, 512, 3)
    assert model.output_shape == [(None, 128, 128, 68)] * 4
    assert expected_parameters(4, 256, 128, 4, 17, 1, 34) == 138_893_840
    # Widths 256 -> 384 -> 512 -> 640 -> 768 down the hourglass, as the official one.
    inner = "stack1_hg" + "_inner" * 3
    assert model.get_layer(f"{inner}_bottom").kernel.shape == (3, 3, 768, 768)
    assert model.get_layer(f"{inner}_low3").kernel.shape == (3, 3, 768, 640)


@pytest.mark.parametrize("preset", sorted(set(AE_PRESETS) - {"ae_hg4"}))  # ae_hg4: the test above
def test_every_other_ae_preset_has_its_pinned_parameter_count(preset):
    model = from_preset(preset)
    assert isinstance(model, AssociativeEmbedding) and preset_class(preset) is AssociativeEmbedding
    assert trainable_parameters(model) == PRESET_PARAMETERS[preset] == counted_parameters(model)


def test_every_convolution_is_followed_by_relu_except_output_and_merges_and_there_is_no_batchnorm():
    model = AssociativeEmbedding(**TINY)
    names = {layer.name for layer in model.layers}
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    without_relu = sorted(c.name for c in convs if f"{c.name}_relu" not in names)
    assert without_relu == [
        "stack1_features_back_conv",
        "stack1_output_conv",
        "stack1_preds_back_conv",
        "stack2_output_conv",
    ]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert all(c.use_bias for c in convs)
    assert all(isinstance(c, PointwiseConv2D) for c in convs if c.kernel_size == (1, 1))
    assert sum(isinstance(layer, NearestUpsampling2D) for layer in model.layers) == 2 * TINY["depth"]


def test_bn_true_puts_a_batchnorm_after_the_relu_of_every_stem_and_hourglass_conv_only():
    # PoseNet(bn=True): Conv.forward is conv -> ReLU -> BatchNorm; its heads and merges are built with bn=False.
    model = AssociativeEmbedding(**dict(TINY, batch_norm=True, stem_filters=(8, 12)))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    normalised = sorted(layer.name.removesuffix("_bn") for layer in norms)
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # The official Hourglass builds low3 as Conv(nf, f, 3), without bn.
    hourglass = [c for c in convs if "_hg_" in c and not c.endswith("_low3")]
    assert normalised == sorted([c for c in convs if c.startswith("stem_")] + hourglass)
    assert len(normalised) == 4 + TINY["num_stacks"] * (2 * TINY["depth"] + 1)
    for norm in norms:  # fed by the ReLU of its convolution
        relu = model.get_layer(f"{norm.name.removesuffix('_bn')}_relu")
        assert norm.input is relu.output
    assert model.get_layer("stem_conv1").filters == 8 and model.get_layer("stem_conv3").filters == 12
    rebuilt = AssociativeEmbedding.from_config(model.get_config())
    assert (rebuilt.batch_norm, rebuilt.stem_filters) == (True, (8, 12))
    assert trainable_parameters(rebuilt) == trainable_parameters(model) == counted_parameters(model)


def test_output_stride_2_drops_the_stem_pool_for_maps_twice_as_fine_with_the_same_weights():
    fine = AssociativeEmbedding(**dict(TINY, output_stride=2))
    official = AssociativeEmbedding(**TINY)
    assert "stem_pool" not in [layer.name for layer in fine.layers]
    assert fine.heatmap_stride == 2 and official.heatmap_stride == 4
    assert fine.heatmap_size == (32, 32) and official.heatmap_size == (16, 16)
    assert [w.shape for w in fine.weights] == [w.shape for w in official.weights]
    outputs = as_stack_list(fine(images((64, 64, 3))))
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 32, fine.num_output_channels)] * 2


@pytest.mark.parametrize("stem_filters", [(64,), (0, 128), (64, 1.5)])
def test_bad_stem_widths_are_named(stem_filters):
    with pytest.raises(ValueError, match="stem_filters"):
        AssociativeEmbedding(**dict(TINY, stem_filters=stem_filters))


def test_stem_convolution_pads_three_pixels_on_every_side_like_the_official():
    model = AssociativeEmbedding(**dict(TINY, num_stacks=1))
    conv = model.get_layer("stem_conv1")
    kernel = np.zeros((7, 7, 3, 64), np.float32)
    kernel[0, 0, 0, 0] = 1.0  # output (i, j) reads input (2i - 3, 2j - 3) with padding 3
    conv.set_weights([kernel, np.zeros(64, np.float32)])
    probe = keras.Model(model.input, model.get_layer("stem_conv1").output)
    x = np.zeros((1, 64, 64, 3), np.float32)
    x[0, 1, 5, 0] = 1.0
    out = probe(x).numpy()[0, :, :, 0]
    assert out[2, 4] == 1.0 and out.sum() == 1.0


def test_initialisation_is_pytorchs_default_uniform_for_kernels_and_biases():
    model = AssociativeEmbedding(**dict(TINY, num_stacks=1, filters=64))
    for name, fan_in in (("stem_conv2", 9 * 64), ("stack1_hg_low1", 9 * 64), ("stack1_output_conv", 64)):
        kernel, bias = (w.numpy() for w in model.get_layer(name).weights)
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
        assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.5 * bound
        assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)


def test_split_gives_heatmaps_then_keypoint_major_tags():
    k, d, extra = 3, 2, 4
    outputs = np.arange(2 * 4 * 5 * (k * (1 + d) + extra), dtype=np.float32).reshape(2, 4, 5, -1)
    heatmaps, tags = split_outputs(outputs, num_keypoints=k, tag_dim=d)
    assert heatmaps.shape == (2, 4, 5, 3) and tags.shape == (2, 4, 5, 3, 2)
    np.testing.assert_array_equal(heatmaps, outputs[..., :3])
    # Tag component c of keypoint j is channel K + j*D + c.
    np.testing.assert_array_equal(np.asarray(tags)[..., 2, 1], outputs[..., 3 + 2 * 2 + 1])
    np.testing.assert_array_equal(np.asarray(tags)[..., 0, 0], outputs[..., 3])
    np.testing.assert_array_equal(detection_heatmaps(outputs, k), heatmaps)
    np.testing.assert_array_equal(tag_maps(outputs, k, d), tags)


def test_split_of_the_official_layout_takes_channels_0_17_and_17_34():
    outputs = np.arange(68, dtype=np.float32).reshape(1, 1, 1, 68)
    heatmaps, tags = split_outputs(outputs)
    np.testing.assert_array_equal(np.asarray(heatmaps)[0, 0, 0], np.arange(17))
    np.testing.assert_array_equal(np.asarray(tags)[0, 0, 0, :, 0], np.arange(17, 34))


def test_split_on_a_model_with_dynamic_sides():
    model = AssociativeEmbedding(**dict(TINY, num_stacks=1, input_shape=(None, None, 3)))
    out = model(images((128, 64, 3), n=1), training=False)
    heatmaps, tags = split_outputs(out)
    assert heatmaps.shape == (1, 32, 16, 17) and tags.shape == (1, 32, 16, 17, 1)


def test_split_refuses_an_output_with_too_few_channels():
    with pytest.raises(ValueError, match=r"at least 34 channels. Received: shape \(1, 2, 2, 20\)"):
        split_outputs(np.zeros((1, 2, 2, 20), np.float32))


def test_any_side_multiple_of_64_runs_with_dynamic_input():
    model = AssociativeEmbedding(**dict(TINY, num_stacks=1, depth=4, input_shape=(None, None, 3)))
    assert model.heatmap_size == (None, None)
    for shape in ((64, 128, 3), (192, 64, 3)):
        out = model(images(shape, n=1), training=False)
        assert tuple(out.shape) == (1, shape[0] // 4, shape[1] // 4, 68)


def test_get_config_from_config_round_trip_gives_identical_outputs():
    model = AssociativeEmbedding(**dict(TINY, tag_dim=2, extra_channels=3, num_keypoints=4), name="ae_x")
    config = model.get_config()
    assert config == {
        "num_stacks": 2,
        "filters": 16,
        "increase": 8,
        "depth": 2,
        "num_keypoints": 4,
        "tag_dim": 2,
        "extra_channels": 3,
        "input_shape": (64, 64, 3),
        "stem_filters": (64, 128),
        "batch_norm": False,
        "output_stride": 4,
        "name": "ae_x",
        "trainable": True,
    }
    clone = AssociativeEmbedding.from_config(config)
    clone.set_weights(model.get_weights())
    x = images((64, 64, 3))
    for a, b in zip(as_stack_list(model(x)), as_stack_list(clone(x)), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = AssociativeEmbedding(**TINY)
    path = tmp_path / "ae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AssociativeEmbedding) and loaded.get_config() == model.get_config()
    x = images((64, 64, 3))
    for a, b in zip(as_stack_list(model(x)), as_stack_list(loaded(x)), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_outputs_stay_float32_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = AssociativeEmbedding(**TINY)
        outputs = as_stack_list(model(images((64, 64, 3)), training=False))
        assert all(o.dtype == tf.float32 for o in outputs)
        assert model.get_layer("stack1_hg_up").compute_dtype == policy.split("_")[1]
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_stacks=0), "num_stacks=0"),
        (dict(filters=8.0), "filters=8.0"),
        (dict(increase=-1), "increase=-1"),
        (dict(depth=0), "depth=0"),
        (dict(num_keypoints=True), "num_keypoints=True"),
        (dict(tag_dim=0), "tag_dim=0"),
        (dict(output_stride=8), r"output_stride must be one of \(4, 2\). Received: output_stride=8"),
        (dict(extra_channels=-2), "extra_channels=-2"),
        (dict(input_shape=(64, 64, 1)), r"input_shape=\(64, 64, 1\)"),
        (dict(input_shape=(96, 64, 3)), r"multiples of 4 \* 2\*\*depth = 64 \(depth=4\).*\(96, 64, 3\)"),
        (dict(input_shape=(64, 40, 3), depth=2), r"= 16 \(depth=2\).*\(64, 40, 3\)"),
    ],
)
def test_bad_arguments_raise_value_error_repeating_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AssociativeEmbedding(**kwargs)
