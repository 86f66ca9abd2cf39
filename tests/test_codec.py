"""HeatmapCodec: Gaussian targets, joint weights, and decoding back to keypoints."""

import numpy as np
import pytest

from tf_hourglass.data.codec import HeatmapCodec


@pytest.fixture
def codec():
    return HeatmapCodec(input_size=(256, 256), heatmap_size=(64, 64), sigma=1.0)


def test_target_is_a_unit_gaussian_at_the_joint_in_heatmap_pixels(codec):
    # Input pixel 41.5 -> heatmap pixel (41.5 + 0.5) / 4 - 0.5 = 10.
    heatmaps, weights = codec.encode(np.array([[[41.5, 81.5]]], "float32"), np.array([[True]]))
    heatmaps = heatmaps.numpy()[0, :, :, 0]
    assert heatmaps.shape == (64, 64)
    assert np.unravel_index(heatmaps.argmax(), heatmaps.shape) == (20, 10)
    assert heatmaps[20, 10] == pytest.approx(1.0)
    assert heatmaps[20, 11] == pytest.approx(np.exp(-0.5))
    assert heatmaps[22, 10] == pytest.approx(np.exp(-2.0))
    assert weights.numpy().tolist() == [[1.0]]


def test_peak_scales_the_target(codec):
    scaled = HeatmapCodec(sigma=2.0, peak=10.0)
    heatmaps, _ = scaled.encode(np.array([[[41.5, 81.5]]], "float32"), np.array([[True]]))
    assert heatmaps.numpy().max() == pytest.approx(10.0)
    assert heatmaps.numpy()[0, 20, 11, 0] == pytest.approx(10 * np.exp(-1 / 8))


def test_joints_without_ground_truth_or_outside_get_zero_weight_and_target(codec):
    keypoints = np.array([[[100, 100], [100, 100], [-10, 50], [50, 300], [np.nan, 5]]], "float32")
    has_gt = np.array([[True, False, True, True, True]])
    heatmaps, weights = codec.encode(keypoints, has_gt)
    assert weights.numpy().tolist() == [[1, 0, 0, 0, 0]]
    assert heatmaps.numpy()[..., 1:].max() == 0.0
    assert np.isfinite(heatmaps.numpy()).all()


def test_encode_then_decode_recovers_keypoints_within_a_tenth_of_a_pixel(codec):
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(8, 248, size=(50, 16, 2)).astype("float32")
    heatmaps, _ = codec.encode(keypoints, np.ones((50, 16), bool))
    decoded, scores = codec.decode(heatmaps, method="dark")
    # In heatmap pixels, the resolution the network predicts at.
    assert np.abs(decoded.numpy() - keypoints).max() / codec.stride < 0.1
    assert scores.numpy().min() > 0.75  # sub-pixel centres lower the sampled peak a little


def test_quarter_offset_decoding_is_within_a_quarter_heatmap_pixel(codec):
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(8, 248, size=(50, 16, 2)).astype("float32")
    heatmaps, _ = codec.encode(keypoints, np.ones((50, 16), bool))
    decoded, _ = codec.decode(heatmaps, method="quarter")
    errors = np.abs(decoded.numpy() - keypoints) / codec.stride
    assert errors.max() <= 0.25 + 1e-4
    argmax, _ = codec.decode(heatmaps, method="argmax")
    assert errors.mean() < (np.abs(argmax.numpy() - keypoints) / codec.stride).mean()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=(256, 256), heatmap_size=(64, 60)), "heatmap_size=(64, 60)"),
        (dict(sigma=0.0), "sigma=0.0"),
        (dict(peak=-1.0), "peak=-1.0"),
        (dict(decode_method="mean"), "'mean'"),
    ],
)
def test_bad_codec_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError) as error:
        HeatmapCodec(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("method", ["argmax", "quarter", "dark"])
def test_tensorflow_decoding_matches_the_numpy_reference(method):
    import numpy_decoding as decoding

    codec = HeatmapCodec(input_size=(256, 256), heatmap_size=(64, 64), sigma=2.0)
    rng = np.random.default_rng(5)
    # Peaks at least 3 sigma from the border, plus noise, as a network would predict.
    keypoints = rng.uniform(28, 228, size=(20, 16, 2)).astype("float32")
    heatmaps, _ = codec.encode(keypoints, np.ones((20, 16), bool))
    heatmaps = heatmaps.numpy() + rng.normal(0, 0.01, size=heatmaps.shape).astype("float32")
    tf_coords, tf_scores = codec.decode(heatmaps, method=method)
    np_coords, np_scores = decoding.decode_heatmaps(heatmaps, method=method, dark_sigma=2.0)
    np.testing.assert_allclose(tf_coords.numpy(), codec.heatmap_to_input(np_coords), atol=0.02)
    np.testing.assert_allclose(tf_scores.numpy(), np_scores, rtol=1e-6)
