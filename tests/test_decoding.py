"""Tests of the NumPy decoding oracle (tests/numpy_decoding.py: heatmap decoding, flip test, frames)."""

from __future__ import annotations

import numpy as np
import numpy_decoding as decoding
import pytest

NUM_PEAKS = 200
SIZE = 64


def render_gaussians(centers, sigma, height=SIZE, width=SIZE):
    """(1, H, W, K) Gaussian targets in our frame: exp(-||p - c||^2 / 2 sigma^2)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    maps = [np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)) for cx, cy in centers]
    return np.stack(maps, axis=-1)[None].astype(np.float32)


def random_peaks(sigma, margin, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, SIZE - 1 - margin, size=(NUM_PEAKS, 2))


# ----------------------------------------------------------------------------
# Decoding accuracy on exact Gaussian targets
# ----------------------------------------------------------------------------


def test_argmax_finds_the_peak_pixel_and_its_value():
    centers = np.array([[10.0, 20.0], [0.0, 63.0], [40.4, 5.6]])
    hm = render_gaussians(centers, 2.0) * np.array([1.0, 0.5, 2.0], np.float32)
    coords, scores = decoding.decode_heatmaps(hm, "argmax")
    np.testing.assert_array_equal(coords[0], np.round(centers))
    np.testing.assert_allclose(scores[0], [1.0, 0.5, 2.0 * np.exp(-(0.4**2 + 0.4**2) / 8)], rtol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_quarter_offset_error_bounds(sigma):
    # Peaks away from the first/last pixel, where the refinement applies.
    centers = random_peaks(sigma, margin=1.0, seed=int(sigma))
    coords, _ = decoding.decode_heatmaps(render_gaussians(centers, sigma), "quarter")
    error = coords[0] - centers
    distance = np.linalg.norm(error, axis=-1)
    # Per axis the error is |d - 0.25 sign(d)| <= 0.25 for the offset d in [-0.5, 0.5].
    assert np.abs(error).max() <= 0.25 + 1e-6
    # Mean Euclidean error ~0.19 px; the Euclidean maximum is up to 0.25 * sqrt(2).
    assert distance.mean() < 0.22
    assert distance.max() <= 0.25 * np.sqrt(2) + 1e-6
    # The refinement helps: plain argmax is worse on average.
    argmax, _ = decoding.decode_heatmaps(render_gaussians(centers, sigma), "argmax")
    assert np.linalg.norm(argmax[0] - centers, axis=-1).mean() > distance.mean()


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_dark_is_sub_pixel_accurate(sigma):
    # DARK's smoothing pads with zeros, so peaks within ~1.5 sigma of the border
    # are pulled inwards (up to ~0.2 px at 2 px from the border for sigma 2);
    # away from it the log-Gaussian is an exact quadratic.
    centers = random_peaks(sigma, margin=3 * sigma, seed=10 + int(sigma))
    coords, scores = decoding.decode_heatmaps(render_gaussians(centers, sigma), "dark", dark_sigma=sigma)
    distance = np.linalg.norm(coords[0] - centers, axis=-1)
    assert distance.max() < 0.01  # observed: ~2e-4 px (float32 heatmaps)
    # The score is the peak pixel's value, at most (0.5, 0.5) px from the centre.
    assert np.all(scores[0] >= np.exp(-0.25 / sigma**2) - 1e-6)


def test_dark_near_borders_stays_finite_and_close():
    centers = np.array([[0.0, 0.0], [63.0, 31.3], [0.4, 62.7], [1.2, 30.0], [62.0, 1.6]])
    coords, _ = decoding.decode_heatmaps(render_gaussians(centers, 2.0), "dark", dark_sigma=2.0)
    assert np.all(np.isfinite(coords))
    assert np.abs(coords[0] - centers).max() <= 1.0


def test_guards_flat_zero_negative_and_multimodal_heatmaps():
    hm = np.zeros((2, 16, 16, 3), np.float32)
    hm[1, :, :, 0] = -1.0  # all negative
    hm[1, 5, 9, 1] = 1.0  # a single hot pixel
    hm[1, 3:6, 3:6, 2] = 1.0  # a plateau: zero gradient, refinement must not explode
    for method in decoding.DECODE_METHODS:
        coords, scores = decoding.decode_heatmaps(hm, method)
        assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
        assert np.all(np.isfinite(coords)), method
        np.testing.assert_array_equal(coords[0], 0.0)  # flat maps: first pixel, no step
        assert np.abs(coords[1, 1] - [9.0, 5.0]).max() <= 0.25 + 1e-9, method
        assert np.abs(coords[1, 2] - [3.0, 3.0]).max() <= 1.0, method


def test_decode_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"received \(64, 64, 16\)"):
        decoding.decode_heatmaps(np.zeros((64, 64, 16)))
    with pytest.raises(ValueError, match="'soft'"):
        decoding.decode_heatmaps(np.zeros((1, 8, 8, 2)), "soft")
    with pytest.raises(ValueError, match="odd"):
        decoding.decode_heatmaps(np.zeros((1, 8, 8, 2)), "dark", dark_kernel=4)


# ----------------------------------------------------------------------------
# Flip test
# ----------------------------------------------------------------------------

FLIP_PAIRS = ((0, 3), (1, 2))


def test_flip_back_twice_is_identity_and_swaps_channels():
    hm = np.random.default_rng(0).random((2, 8, 10, 5))
    back = decoding.flip_back(hm, FLIP_PAIRS)
    np.testing.assert_array_equal(back[:, :, 9 - 2, 3], hm[:, :, 2, 0])
    np.testing.assert_array_equal(back[..., 4], hm[:, :, ::-1, 4])  # unpaired channel
    np.testing.assert_array_equal(decoding.flip_back(back, FLIP_PAIRS), hm)


@pytest.mark.parametrize("method", decoding.DECODE_METHODS)
def test_decoding_a_mirrored_heatmap_gives_mirrored_swapped_coords(method):
    rng = np.random.default_rng(3)
    centers = rng.uniform(4, SIZE - 5, size=(5, 2))
    hm = render_gaussians(centers, 2.0) + 0.01 * rng.random((1, SIZE, SIZE, 5)).astype(np.float32)
    mirrored = decoding.flip_back(hm, FLIP_PAIRS)  # mirror + swap = a flipped image's heatmap
    coords, scores = decoding.decode_heatmaps(hm, method)
    mirrored_coords, mirrored_scores = decoding.decode_heatmaps(mirrored, method)
    perm = decoding.flip_permutation(5, FLIP_PAIRS)
    expected = coords[:, perm].copy()
    expected[..., 0] = SIZE - 1 - expected[..., 0]  # x' = W - 1 - x
    np.testing.assert_allclose(mirrored_coords, expected, atol=1e-9)
    np.testing.assert_array_equal(mirrored_scores, scores[:, perm])


def test_average_flip_needs_no_shift_in_our_frame():
    # A model that is exact in our frame: the flipped image's heatmap is the
    # target rendered at the mirrored (x' = W - 1 - x), swapped keypoints.
    centers = np.array([[20.3, 30.7], [40.6, 12.2], [33.0, 50.5], [9.9, 9.1]])
    hm = render_gaussians(centers, 2.0)
    perm = decoding.flip_permutation(4, FLIP_PAIRS)
    mirrored = centers[perm].copy()
    mirrored[:, 0] = SIZE - 1 - mirrored[:, 0]
    flipped_hm = render_gaussians(mirrored, 2.0)
    averaged = decoding.average_flip(hm, flipped_hm, FLIP_PAIRS)
    np.testing.assert_allclose(averaged, hm, atol=1e-6)
    coords, _ = decoding.decode_heatmaps(averaged, "dark", dark_sigma=2.0)
    np.testing.assert_allclose(coords[0], centers, atol=0.01)
    # HRNet's one-pixel shift would move every keypoint by +1 px here.
    shifted = decoding.average_flip(hm, flipped_hm, FLIP_PAIRS, shift=1)
    coords_shifted, _ = decoding.decode_heatmaps(shifted, "dark", dark_sigma=2.0)
    assert np.all(coords_shifted[0, :, 0] - centers[:, 0] > 0.3)


# ----------------------------------------------------------------------------
# Coordinate frames
# ----------------------------------------------------------------------------


def test_crop_extent_and_pixel_centres_map_as_documented():
    center = np.array([[100.0, 50.0]])
    scale = np.array([1.28])  # S = 256 px: one original pixel per input pixel
    edges = np.array([[[100.0 - 128.0, 50.0 - 128.0], [100.0 + 128.0, 50.0 + 128.0]]])
    u = decoding.image_to_input_coords(edges, center, scale, 256)
    np.testing.assert_allclose(u, [[[-0.5, -0.5], [255.5, 255.5]]])
    # Heatmap pixel h covers input pixels 4h .. 4h + 3: its centre is 4h + 1.5.
    h = np.array([[[0.0, 63.0], [-0.5, 63.5]]])
    np.testing.assert_allclose(decoding.heatmap_to_input_coords(h, 64, 256), [[[1.5, 253.5], [-0.5, 255.5]]])
    # x = cx + (h + 0.5 - Hm / 2) * S / Hm.
    x = decoding.heatmap_to_image_coords(np.array([[[31.5, 31.5]]]), center, scale, 64, 256)
    np.testing.assert_allclose(x, [[[100.0, 50.0]]])
    # Sizes are (height, width), as in the codec and Keras; points are (x, y).
    x = decoding.heatmap_to_image_coords(np.array([[[23.5, 31.5]]]), center, scale, (64, 48), (256, 192))
    np.testing.assert_allclose(x, [[[100.0, 50.0]]])
    u = decoding.image_to_input_coords(edges, center, scale, (256, 192))
    np.testing.assert_allclose(u, [[[-0.5, -0.5], [191.5, 255.5]]])


def test_coordinate_round_trips():
    rng = np.random.default_rng(7)
    n, k = 6, 16
    points = rng.uniform(-50, 700, size=(n, k, 2))
    center = rng.uniform(100, 500, size=(n, 2))
    scale = rng.uniform(0.5, 4.0, size=n)
    for input_size, heatmap_size in ((256, 64), ((192, 256), (48, 64))):
        hm = decoding.image_to_heatmap_coords(points, center, scale, heatmap_size, input_size)
        back = decoding.heatmap_to_image_coords(hm, center, scale, heatmap_size, input_size)
        np.testing.assert_allclose(back, points, atol=1e-9)
        u = decoding.image_to_input_coords(points, center, scale, input_size)
        np.testing.assert_allclose(
            decoding.input_to_image_coords(u, center, scale, input_size), points, atol=1e-9
        )
        np.testing.assert_allclose(
            decoding.input_to_heatmap_coords(u, heatmap_size, input_size), hm, atol=1e-9
        )


def test_flipping_the_input_mirrors_the_heatmap_frame_exactly():
    # u' = I - 1 - u  <=>  h' = Hm - 1 - h  <=>  x' = 2 cx - x (mirror about the crop centre).
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 400, size=(3, 4, 2))
    center = rng.uniform(150, 250, size=(3, 2))
    scale = np.array([1.0, 2.0, 3.0])
    u = decoding.image_to_input_coords(points, center, scale, 256)
    h = decoding.input_to_heatmap_coords(u, 64, 256)
    mirrored_points = points.copy()
    mirrored_points[..., 0] = 2 * center[:, None, 0] - points[..., 0]
    h_mirrored = decoding.image_to_heatmap_coords(mirrored_points, center, scale, 64, 256)
    u_mirrored = decoding.image_to_input_coords(mirrored_points, center, scale, 256)
    np.testing.assert_allclose(u_mirrored[..., 0], 255 - u[..., 0], atol=1e-9)
    np.testing.assert_allclose(h_mirrored[..., 0], 63 - h[..., 0], atol=1e-9)


def test_quarter_decoding_matches_the_original_torch_pipeline():
    # The Torch code (1-based): p = argmax_1based + 0.25 * sign(diff) + 0.5, then
    # x = inverse(T) * (p - 1) with T(x) = res * (x - c) / h + res / 2 and the
    # 1-based centre c. Before its final int() this is our answer + 1 px.
    rng = np.random.default_rng(11)
    centers = rng.uniform(2, 61, size=(16, 2))
    hm = render_gaussians(centers, 1.0)
    center_1based = np.array([[321.0, 210.0]])
    scale = np.array([2.3])
    side = 200.0 * scale[0]

    coords, _ = decoding.decode_heatmaps(hm, "quarter")
    ours = decoding.heatmap_to_image_coords(coords, center_1based - 1.0, scale, 64, 256)

    maps = hm[0].transpose(2, 0, 1)
    torch = []
    for m in maps:
        row, col = np.unravel_index(np.argmax(m), m.shape)
        px, py = col + 1.0, row + 1.0  # 1-based
        px += 0.25 * np.sign(m[row, col + 1] - m[row, col - 1])
        py += 0.25 * np.sign(m[row + 1, col] - m[row - 1, col])
        p = np.array([px, py]) + 0.5
        torch.append((p - 1.0 - 64 / 2) * side / 64 + center_1based[0])
    np.testing.assert_allclose(ours[0] + 1.0, np.array(torch), atol=1e-9)


def test_frame_functions_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"received \(16, 2\)"):
        decoding.heatmap_to_image_coords(np.zeros((16, 2)), np.zeros((1, 2)), 1.0, 64, 256)
    with pytest.raises(ValueError, match=r"center must have shape \(N, 2\) = \(2, 2\)"):
        decoding.image_to_input_coords(np.zeros((2, 16, 2)), np.zeros((2,)), 1.0, 256)
    with pytest.raises(ValueError, match="input_size"):
        decoding.image_to_input_coords(np.zeros((1, 16, 2)), np.zeros((1, 2)), 1.0, (1, 2, 3))
