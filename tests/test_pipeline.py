"""The tf.data input pipeline: warps agree with keypoints, flips swap joints, seeds reproduce."""

import dataclasses

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.data import transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.pipeline import AugmentConfig, InMemorySource, make_dataset
from tf_hourglass.data.records import KeypointSpec, PoseRecord

SPEC = KeypointSpec("dots", ("left", "right", "middle"), flip_pairs=((0, 1),))
COLOURS = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]  # left red, right blue, middle green
CHANNEL = [0, 2, 1]
CODEC = HeatmapCodec(input_size=(128, 128), heatmap_size=(32, 32), sigma=1.0)


def dot_records(num, seed=0):
    """Images with one coloured dot per joint, exactly at the keypoints."""
    rng = np.random.default_rng(seed)
    images, records = [], []
    for i in range(num):
        image = np.zeros((300, 400, 3), np.uint8)
        keypoints = np.round(rng.uniform(130, 210, size=(3, 2))).astype(np.float32)
        for (x, y), colour in zip(keypoints, COLOURS, strict=True):
            cv2.circle(image, (int(x), int(y)), 3, colour, -1)
        images.append(image)
        records.append(PoseRecord("none", (170, 170), 1.0, keypoints, [1, 1, 1], [1, 1, 1], record_id=i))
    return records, np.stack(images)


def colour_at(image, point):
    x, y = (int(round(v)) for v in point)
    patch = image[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
    return patch.reshape(-1, 3).max(axis=0)


@pytest.mark.parametrize("flip_probability", [0.0, 1.0])
def test_warped_image_and_moved_keypoints_agree_and_mirroring_swaps_left_and_right(flip_probability):
    records, images = dot_records(8)
    augment = AugmentConfig(flip_probability=flip_probability)
    dataset = make_dataset(
        InMemorySource(records, images), SPEC, CODEC, batch_size=8, training=True, augment=augment
    )
    batch_images, heatmaps, weights = next(iter(dataset))
    keypoints, _ = CODEC.decode(heatmaps, method="dark")
    assert weights.numpy().min() == 1.0
    for image, points in zip(batch_images.numpy(), keypoints.numpy(), strict=True):
        # A mirrored person's left joint is where its right dot was drawn.
        expected = [1, 0, 2] if flip_probability else [0, 1, 2]
        for joint, point in enumerate(points):
            colour = colour_at(image, point)
            assert colour[CHANNEL[expected[joint]]] > 0.5, (joint, point, colour)


@pytest.mark.parametrize(
    "image_shape, rotation, flip, scale",
    [((622, 622, 3), 17.0, True, 3.11), ((480, 640, 3), -30.0, False, 1.5), ((97, 131, 3), 5.0, False, 4.0)],
)
def test_xla_warp_equals_the_portable_warp_including_the_fill_outside_the_image(
    image_shape, rotation, flip, scale
):
    image = np.random.default_rng(3).integers(0, 256, image_shape, dtype=np.uint8)
    center = tf.constant([image_shape[1] * 0.6, image_shape[0] * 0.45])
    matrix = transforms.crop_matrix(center, scale, (256, 192), rotation, flip)
    portable = transforms.warp_image(image, matrix, (256, 192), fill_value=7.0).numpy()
    fast = transforms.warp_image_xla(image, matrix, (256, 192), fill_value=7.0).numpy()
    assert fast.shape == (256, 192, 3) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, portable, atol=0.05)
    if scale == 4.0:  # the crop reaches past the small image: filled, identically
        assert (portable == 7.0).mean() > 0.2


def test_xla_warp_scales_each_channel_then_clips_in_the_same_pass():
    image = np.random.default_rng(4).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    matrix = transforms.crop_matrix(tf.constant([100.0, 150.0]), 1.2, (64, 64), 12.0)
    gains = np.array([0.5, 1.0, 1.3], np.float32) / 255.0
    portable = transforms.warp_image(image, matrix, (64, 64)).numpy()
    fast = transforms.warp_image_xla(image, matrix, (64, 64), channel_scale=gains, clip_range=(0.0, 1.0))
    np.testing.assert_allclose(fast.numpy(), np.clip(portable * gains, 0.0, 1.0), atol=2e-4)
    assert fast.numpy()[..., 2].max() == 1.0  # bright blue pixels scaled past 1 are clipped
    assert 0.45 < fast.numpy()[..., 0].max() <= 0.5


def test_evaluation_mode_matrix_maps_input_keypoints_back_to_the_original():
    records, images = dot_records(5)
    dataset = make_dataset(
        InMemorySource(records, images), SPEC, CODEC, batch_size=5, training=False, with_metadata=True
    )
    batch = next(iter(dataset))
    back = transforms.apply_affine(transforms.invert_affine(batch["matrix"]), batch["input_keypoints"])
    np.testing.assert_allclose(back.numpy(), np.stack([r.keypoints for r in records]), atol=1e-3)
    assert batch["record_id"].numpy().tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(batch["scale"].numpy(), 1.0)


def test_augment_then_invert_returns_keypoints_within_half_a_pixel():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform(0, 500, size=(16, 2)).astype("float32")
    for rotation, flip in [(0.0, False), (30.0, False), (-17.5, True), (180.0, True)]:
        matrix = transforms.crop_matrix([250.0, 240.0], 1.7, (256, 256), rotation, flip)
        moved = transforms.apply_affine(matrix, keypoints)
        back = transforms.apply_affine(transforms.invert_affine(matrix), moved)
        assert np.abs(back.numpy() - keypoints).max() < 0.5


def test_crop_maps_the_crop_edges_to_the_input_edges():
    # Crop side 200 px around (300, 200) onto 100 px: x = 200 -> -0.5, x = 400 -> 99.5.
    matrix = transforms.crop_matrix([300.0, 200.0], 1.0, (100, 100))
    corners = transforms.apply_affine(matrix, np.array([[200.0, 100.0], [400.0, 300.0]], "float32"))
    np.testing.assert_allclose(corners.numpy(), [[-0.5, -0.5], [99.5, 99.5]], atol=1e-4)


def test_flipping_twice_is_the_identity_including_the_joint_swap():
    keypoints = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]], "float32")
    mirror = transforms.crop_matrix([64.0, 64.0], 0.64, (128, 128), 0.0, True)
    plain = transforms.crop_matrix([64.0, 64.0], 0.64, (128, 128), 0.0, False)
    # Mirror about the input centre: applying (mirror . plain^-1) twice is the identity.
    flip_in_input = tf.matmul(mirror, transforms.invert_affine(plain))
    perm = SPEC.flip_permutation()
    once = tf.gather(transforms.apply_affine(flip_in_input, keypoints), perm)
    twice = tf.gather(transforms.apply_affine(flip_in_input, once), perm)
    np.testing.assert_allclose(twice.numpy(), keypoints, atol=1e-4)
    assert not np.allclose(once.numpy(), keypoints)


def _first_batches(seed, count=2):
    records, images = dot_records(16)
    dataset = make_dataset(
        InMemorySource(records, images), SPEC, CODEC, batch_size=4, training=True, seed=seed
    )
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]


def test_seeded_pipeline_is_deterministic():
    first, again, other = _first_batches(7), _first_batches(7), _first_batches(8)
    for a, b in zip(first, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0][0], other[0][0])


def test_bad_records_are_skipped_or_masked_and_targets_stay_finite(tmp_path):
    records, images = dot_records(4)
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), cv2.cvtColor(images[0], cv2.COLOR_RGB2GRAY))
    records[0].image_path = paths[0]
    records[1].image_path = str(tmp_path / "broken.jpg")  # undecodable: skipped
    records[2].image_path = str(gray)  # grayscale: converted
    records[2].keypoints[1] = np.nan  # NaN joint: no ground truth
    records[3].image_path = paths[3]
    records[3].scale = 0.0  # invalid crop: dropped
    dataset = make_dataset(
        InMemorySource(records), SPEC, CODEC, batch_size=8, training=False, with_metadata=True
    )
    batches = list(dataset)
    assert len(batches) == 1
    batch = batches[0]
    assert batch["record_id"].numpy().tolist() == [0, 2]
    assert batch["weights"].numpy().tolist() == [[1, 1, 1], [1, 0, 1]]
    assert np.isfinite(batch["heatmaps"].numpy()).all()
    assert batch["images"].shape == (2, 128, 128, 3)


def _wavy_photo(shift=0.0):
    """A 1280x720 photo of smooth waves (period 80 px): misplacing it by a pixel changes every crop."""
    y, x = np.mgrid[0:720, 0:1280].astype(np.float32)
    x = x - shift
    red = 128 + 90 * np.sin(2 * np.pi * x / 80)
    green = 128 + 90 * np.sin(2 * np.pi * (x + y) / 112)
    blue = 128 + 90 * np.cos(2 * np.pi * y / 80)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def _first_training_crop(path, scale, jpeg_downscale):
    record = PoseRecord(path, (640, 360), scale, np.full((3, 2), 600.0, np.float32), [1, 1, 1], [1, 1, 1])
    augment = AugmentConfig(scale_range=(1.0, 1.0), flip_probability=0.0, color_scale_range=(1.0, 1.0))
    augment = dataclasses.replace(augment, jpeg_downscale=jpeg_downscale)
    dataset = make_dataset(
        InMemorySource([record]), SPEC, CODEC, batch_size=1, training=True, augment=augment
    )
    return next(iter(dataset))[0][0].numpy()


@pytest.mark.parametrize("scale", [1.5, 3.0])  # the warp shrinks the photo 2.3x and 4.7x: 1/2 and 1/4 decodes
def test_downscaled_jpeg_decode_gives_the_full_decodes_crop(tmp_path, scale):
    path, shifted = str(tmp_path / "photo.jpg"), str(tmp_path / "shifted.jpg")
    cv2.imwrite(path, _wavy_photo()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    cv2.imwrite(shifted, _wavy_photo(shift=1.0)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    full = _first_training_crop(path, scale, jpeg_downscale=False)
    fast = _first_training_crop(path, scale, jpeg_downscale=True)
    one_pixel_off = _first_training_crop(shifted, scale, jpeg_downscale=False)
    # The same (rotated) crop: what differs is the blur of averaging, less than
    # three quarters of what misplacing the photo by one source pixel does
    # (forgetting the (r - 1) / 2 centre offset of a 1/r decode would fail).
    assert np.abs(fast - full).mean() < 0.75 * np.abs(one_pixel_off - full).mean()
