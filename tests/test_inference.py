"""PoseEstimator: exact crop geometry (with and without box, flip test), model formats, image types, errors."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_decoding import input_to_image_coords

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.crop import center_scale_from_box
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.export import load_model as export_load_model
from tf_hourglass.model_loader import InferenceModel, load_model_for_inference
from tf_hourglass.prediction.estimator import PoseEstimator, to_rgb_float

SPEC = KeypointSpec("three", ("left", "right", "middle"), flip_pairs=((0, 1),))
INPUT, HEATMAP = 64, 16
CODEC = HeatmapCodec(input_size=(INPUT, INPUT), heatmap_size=(HEATMAP, HEATMAP), decode_method="argmax")
# Heatmap pixels where the joints should land: integers, so argmax decoding is exact.
HEATMAP_TARGETS = np.array([[4.0, 6.0], [11.0, 6.0], [8.0, 2.0]])
RAMP = 1000.0  # ramp image pixel value = coordinate / RAMP


def ramp_image(width, height):
    """Float image whose red and green channels hold each pixel's x and y (divided by RAMP).

    Bilinear warping reproduces a linear function exactly, so every crop pixel
    tells which image point it shows.
    """
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([xs / RAMP, ys / RAMP, np.zeros_like(xs, float)], axis=-1).astype(np.float32)


def crop_jacobian(images):
    """The crops' affine maps, read from three ramp pixels at the crop centre.

    Returns the image (x, y) shown at input pixel (c, c) and the (B, 2, 2)
    Jacobian with columns d(x, y)/du and d(x, y)/dv.
    """
    c = INPUT // 2
    origin = images[:, c, c, :2] * RAMP
    d_du = images[:, c, c + 1, :2] * RAMP - origin
    d_dv = images[:, c + 1, c, :2] * RAMP - origin
    return origin, tf.stack([d_du, d_dv], axis=-1)


def ramp_reading_model(points):
    """A model whose output is known: Gaussians where the image points ``points`` are in its input.

    When the crop is mirrored it swaps left and right (as a model trained on
    mirrored people does), so the flip test must average to the same peaks.
    """
    points = tf.constant(points, tf.float32)
    swapped = tf.gather(points, SPEC.flip_permutation())

    def call(images):
        origin, jacobian = crop_jacobian(images)
        mirrored = tf.linalg.det(jacobian) < 0
        targets = tf.where(mirrored[:, None, None], swapped[None], points[None])
        offsets = tf.linalg.solve(
            tf.repeat(jacobian[:, None], 3, axis=1), (targets - origin[:, None])[..., None]
        )
        input_points = INPUT // 2 + offsets[..., 0]
        heatmaps, _ = CODEC.encode(input_points, tf.ones(tf.shape(input_points)[:2], tf.bool))
        return heatmaps

    return call


def fixed_output_model():
    """Gaussians at HEATMAP_TARGETS whatever the crop (mirrored and swapped for mirrored crops)."""
    input_points = (HEATMAP_TARGETS + 0.5) * (INPUT / HEATMAP) - 0.5
    heatmaps, _ = CODEC.encode(input_points, np.ones(3, bool))
    mirrored = tf.gather(tf.reverse(heatmaps, axis=[1]), SPEC.flip_permutation(), axis=2)

    def call(images):
        _, jacobian = crop_jacobian(images)
        is_mirrored = tf.linalg.det(jacobian) < 0
        return tf.where(is_mirrored[:, None, None, None], mirrored[None], heatmaps[None])

    return call


def expected_image_points(box):
    """Image points whose crop positions are HEATMAP_TARGETS, by the numpy reference of the crop."""
    center, scale = center_scale_from_box(box)
    input_points = (HEATMAP_TARGETS + 0.5) * (INPUT / HEATMAP) - 0.5
    return input_to_image_coords(input_points[None], center[None], np.array([scale]), INPUT)[0]


@pytest.mark.parametrize("flip_test", [False, True])
@pytest.mark.parametrize("box", [None, (120.5, 40.0, 150.0, 230.0)])
def test_keypoints_map_back_to_their_image_position(box, flip_test):
    width, height = 400, 300
    points = expected_image_points((0, 0, width, height) if box is None else box)
    model = InferenceModel(ramp_reading_model(points), (INPUT, INPUT), (HEATMAP, HEATMAP), 3, "ramp")
    estimator = PoseEstimator(model, spec=SPEC, codec=CODEC, flip_test=flip_test)
    result = estimator.predict(ramp_image(width, height), box)
    np.testing.assert_allclose(result["keypoints"], points, atol=0.5)
    # Argmax decoding rounds to heatmap pixels; the peak value is what sees a crop
    # misplaced by a fraction of a pixel (0.5 input px gives 0.992).
    np.testing.assert_allclose(result["scores"], 1.0, atol=1e-3)
    assert result["box"] == ((0.0, 0.0, width, height) if box is None else box)


@pytest.mark.parametrize("flip_test", [False, True])
def test_predict_batch_maps_each_image_back_through_its_own_crop(flip_test):
    cases = [
        ((400, 300), None),
        ((257, 511), (20.0, 100.0, 200.0, 150.0)),
        ((400, 300), (120.5, 40.0, 150.0, 230.0)),
    ]
    model = InferenceModel(fixed_output_model(), (INPUT, INPUT), (HEATMAP, HEATMAP), 3, "fixed")
    estimator = PoseEstimator(model, spec=SPEC, codec=CODEC, flip_test=flip_test)
    images = [ramp_image(width, height) for (width, height), _ in cases]
    results = estimator.predict_batch(images, [box for _, box in cases], batch_size=2)
    assert len(results) == len(cases)
    for ((width, height), box), result in zip(cases, results, strict=True):
        expected = expected_image_points((0, 0, width, height) if box is None else box)
        np.testing.assert_allclose(result["keypoints"], expected, atol=0.5)
        np.testing.assert_allclose(result["scores"], 1.0, atol=1e-3)


# ----------------------------------------------------------------------------
# Model formats
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(3)
    return tf_hourglass.from_preset("hg_tiny")


@pytest.fixture(scope="module")
def model_files(tiny_model, tmp_path_factory):
    """The same hg_tiny as .keras, workdir, SavedModel and .tflite."""
    root = tmp_path_factory.mktemp("models")
    keras_path = str(root / "tiny.keras")
    tiny_model.save(keras_path)
    workdir = root / "workdir"
    workdir.mkdir()
    tiny_model.save(str(workdir / "final.keras"))
    saved_model = str(root / "saved_model")
    tiny_model.export(saved_model, format="tf_saved_model", verbose=False)
    tflite = root / "tiny.tflite"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_saved_model(saved_model).convert())
    return {"keras": keras_path, "workdir": str(workdir), "saved_model": saved_model, "tflite": str(tflite)}


@pytest.mark.parametrize("kind", ["keras", "workdir", "saved_model", "tflite"])
@pytest.mark.e2e
def test_every_model_format_gives_the_keras_heatmaps(kind, tiny_model, model_files):
    if kind == "tflite":
        pytest.importorskip("ai_edge_litert")
    model = load_model_for_inference(model_files[kind])
    assert (model.input_size, model.heatmap_size, model.num_keypoints) == ((64, 64), (16, 16), 16)
    images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    expected = tiny_model(images, training=False)[-1].numpy()
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-4)
    # Inside tf.function too (the estimator and the evaluator trace the model).
    np.testing.assert_allclose(tf.function(model)(tf.constant(images)).numpy(), expected, atol=1e-4)


@pytest.fixture(scope="module")
def estimator(tiny_model):
    return PoseEstimator(tiny_model)


def test_default_spec_is_mpii_and_results_are_well_formed(estimator):
    assert estimator.spec is keypoint_specs.MPII
    image = np.random.default_rng(1).integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    result = estimator.predict(image, box=(10, 20, 50, 80))
    assert result["keypoints"].shape == (16, 2) and result["keypoints"].dtype == np.float32
    assert result["scores"].shape == (16,)
    assert np.isfinite(result["keypoints"]).all()


def test_flip_test_runs_on_a_keras_model(tiny_model):
    image = np.random.default_rng(1).integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    result = PoseEstimator(tiny_model, flip_test=True).predict(image)
    assert np.isfinite(result["keypoints"]).all()


def test_grayscale_rgba_16_bit_and_float_images_are_accepted(estimator):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, size=(80, 100), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    expected = estimator.predict(rgb)["keypoints"]
    rgba = np.concatenate([rgb, np.full((80, 100, 1), 7, np.uint8)], axis=2)
    for image in (gray, gray[..., None], rgba, rgb.astype(np.uint16) * 257, rgb / 255.0):
        np.testing.assert_allclose(estimator.predict(image)["keypoints"], expected, atol=1e-3)


def test_to_rgb_float_conversions():
    np.testing.assert_allclose(to_rgb_float(np.array([[65535, 0]], np.uint16))[0, :, 0], [1.0, 0.0])
    assert to_rgb_float(np.zeros((2, 3, 4), np.uint8)).shape == (2, 3, 3)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 4, 2), np.uint8), r"\(4, 4, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), r"\(0, 4, 3\)"),
        (np.zeros((4, 4, 3), np.int32), "int32"),
        (np.full((4, 4, 3), 255.0), r"\[255.0, 255.0\]"),
    ],
)
def test_bad_images_are_rejected_with_what_was_received(image, message):
    with pytest.raises(ValueError, match=message):
        to_rgb_float(image)


@pytest.mark.parametrize(
    "box, message",
    [
        ((10, 10, 0, 50), "w > 0 and h > 0"),
        ((10, 10, 50, -1), "w > 0 and h > 0"),
        ((10, 10, np.nan, 5), "finite"),
        ((100, 10, 50, 50), "outside"),
        ((-60, 10, 50, 50), "outside"),
        ((10, 10, 50), "four numbers"),
        ("abc", "four numbers"),
    ],
)
def test_bad_boxes_name_the_box_and_the_image_size(estimator, box, message):
    image = np.zeros((60, 100, 3), np.uint8)
    with pytest.raises(ValueError, match=message) as info:
        estimator.predict(image, box)
    if "four numbers" not in message:
        assert "width 100 and height 60" in str(info.value)


def test_spec_is_required_for_other_keypoint_counts_and_must_match():
    model = tf_hourglass.from_preset("hg_tiny", num_keypoints=14)
    with pytest.raises(ValueError, match="14 keypoints"):
        PoseEstimator(model)
    assert PoseEstimator(model, spec="lsp").spec is keypoint_specs.LSP
    with pytest.raises(ValueError, match="spec 'coco' has 17"):
        PoseEstimator(model, spec="coco")
    with pytest.raises(ValueError, match="codec sizes"):
        PoseEstimator(model, spec="lsp", codec=HeatmapCodec())


def test_unloadable_model_paths_are_explained(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        load_model_for_inference(str(tmp_path / "nowhere.keras"))
    weights = str(tmp_path / "best.weights.h5")
    tiny_model.save_weights(weights)
    with pytest.raises(ValueError, match="weights only"):
        load_model_for_inference(weights)
    with pytest.raises(ValueError, match="final.keras"):
        load_model_for_inference(str(tmp_path))
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="Unsupported model file"):
        load_model_for_inference(str(other))
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"x")
    with pytest.raises(ValueError, match=f"{broken} is not an ONNX network ONNX Runtime can load"):
        load_model_for_inference(str(broken))
    with pytest.raises(ValueError, match=f"{broken} is not an ONNX network"):
        PoseEstimator(str(broken))  # which reads the kind in its metadata first
    broken = tmp_path / "model.tflite"
    broken.write_bytes(b"x")
    with pytest.raises(ValueError, match=f"{broken} is not a TFLite model LiteRT can load"):
        PoseEstimator(str(broken))
    assert os.path.exists(weights)


def test_a_keras_file_that_is_not_a_model_is_named_as_such(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip archive")
    for load in (load_model_for_inference, export_load_model):
        with pytest.raises(ValueError, match=f"{str(fake)!r} exists but is not a .keras model") as info:
            load(str(fake))
        assert "not found" not in str(info.value).lower()
