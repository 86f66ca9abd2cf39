"""SavedModel export for TF Serving: signatures, photos of any size, boxes, dynamic batch, clear errors."""

import base64
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import codec, random_photo, tiny_model, tiny_model_path

from tf_hourglass.data import transforms
from tf_hourglass.data.crop import center_scale_from_box
from tf_hourglass.export import export_model, verify
from tf_hourglass.model import as_stack_list
from tf_hourglass.model_loader import load_model_for_inference

pytestmark = pytest.mark.e2e  # every test here trains, exports or starts processes

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("serving") / "hourglass" / "1")
    result = export_model(tiny_model_path(), path, "saved_model", peak=codec().peak, log=lambda line: None)
    return result


@pytest.fixture(scope="module")
def loaded(export):
    return tf.saved_model.load(export.path)


def keras_keypoints(image, box=None):
    """What the SavedModel should return: crop as the readers do, Keras, decode, map back."""
    height, width = image.shape[:2]
    center, scale = center_scale_from_box(box if box is not None else (0, 0, width, height))
    matrix = transforms.crop_matrix(center, scale, codec().input_size)
    crop = transforms.warp_image(image, matrix, codec().input_size) / 255.0
    heatmaps = as_stack_list(tiny_model()(crop[None], training=False))[-1]
    keypoints, scores = codec().decode(heatmaps)
    return (
        transforms.apply_affine(transforms.invert_affine(matrix), keypoints)[0].numpy(),
        scores[0].numpy(),
        matrix,
    )


def crop_pixel_distance(matrix, expected, actual):
    """Mean keypoint distance in network-input pixels (the picture's scale factored out)."""
    return float(
        np.mean(
            verify.keypoint_distances(
                transforms.apply_affine(matrix, expected), transforms.apply_affine(matrix, actual)
            )
        )
    )


def test_export_reports_parity_and_size(export):
    assert export.parity.relative_heatmap_error <= verify.TOLERANCES["float32"].heatmap
    assert export.parity.mean_keypoint_distance <= verify.TOLERANCES["float32"].keypoints
    assert export.size_bytes == verify.size_on_disk(export.path) > 0
    assert any(line.startswith("parity saved_model") and line.endswith("OK") for line in export.lines)
    assert export.lines[-1].startswith(f"wrote {export.path}")
    assert os.path.exists(os.path.join(export.path, "saved_model.pb"))
    assert not any(".tmp-" in name for name in os.listdir(os.path.dirname(export.path)))


def test_saved_model_cli_show_lists_every_signature_with_its_dtypes(export):
    shown = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--dir", export.path, "--all"], capture_output=True, text=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for name in ("serving_default", "serving_boxes", "serving_float", "serving_bytes", "heatmaps"):
        assert f"signature_def['{name}']" in text
    assert "DT_UINT8" in text and "DT_STRING" in text
    assert "name: serving_bytes_image_bytes:0" in text
    assert "outputs['keypoints']" in text and "outputs['scores']" in text
    # The heatmaps signature takes crops at the network's size and returns the last stack.
    assert "shape: (-1, 64, 64, 3)" in text and "shape: (-1, 16, 16, 16)" in text


def test_saved_model_cli_run_serving_default(export, tmp_path):
    images = np.stack([random_photo(90, 120, seed=1), random_photo(90, 120, seed=2)])
    np.save(tmp_path / "images.npy", images)
    run = subprocess.run(
        [
            SAVED_MODEL_CLI,
            "run",
            "--dir",
            export.path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'images.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    keypoints = np.load(tmp_path / "out" / "keypoints.npy")
    scores = np.load(tmp_path / "out" / "scores.npy")
    assert keypoints.shape == (2, 16, 2) and scores.shape == (2, 16)
    expected, _, matrix = keras_keypoints(images[1])
    assert crop_pixel_distance(matrix, expected, keypoints[1]) < 0.2


def test_real_photos_of_any_size_through_serving_bytes_and_serving_default(loaded, shared_data):
    paths = sorted((shared_data / "people").iterdir())
    encoded = [p.read_bytes() for p in paths]
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encoded))
    assert from_bytes["keypoints"].shape == (len(paths), 16, 2)
    sizes = set()
    for data, keypoints, scores in zip(
        encoded, from_bytes["keypoints"].numpy(), from_bytes["scores"].numpy(), strict=True
    ):
        image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        sizes.add(image.shape[:2])
        expected, expected_scores, matrix = keras_keypoints(image)
        assert crop_pixel_distance(matrix, expected, keypoints) < 0.2
        np.testing.assert_allclose(scores, expected_scores, atol=1e-4)
        one = loaded.signatures["serving_default"](images=tf.constant(image[None]))["keypoints"]
        np.testing.assert_allclose(one.numpy()[0], keypoints, atol=1e-3)
    assert len(sizes) > 1  # really photos of different sizes in one request


def test_boxes_crop_the_person_and_all_zero_boxes_mean_the_whole_image(loaded):
    image = random_photo(120, 160, seed=3)
    box = (30.0, 20.0, 50.0, 80.0)
    result = loaded.signatures["serving_boxes"](
        images=tf.constant(np.stack([image, image])), boxes=tf.constant([box, (0.0, 0.0, 0.0, 0.0)])
    )["keypoints"].numpy()
    expected, _, matrix = keras_keypoints(image, box)
    assert crop_pixel_distance(matrix, expected, result[0]) < 0.2
    whole = loaded.signatures["serving_default"](images=tf.constant(image[None]))["keypoints"].numpy()
    np.testing.assert_allclose(result[1], whole[0], atol=1e-3)
    floats = loaded.signatures["serving_float"](
        images=tf.constant(image[None] / 255.0, tf.float32), boxes=tf.constant([box])
    )["keypoints"].numpy()
    assert crop_pixel_distance(matrix, result[0], floats[0]) < 0.2


def test_batch_size_is_dynamic(loaded):
    images = np.stack([random_photo(64, 80, seed=s) for s in range(5)])
    together = loaded.serving_default(tf.constant(images))["keypoints"].numpy()
    assert together.shape == (5, 16, 2)
    for i in (0, 4):
        alone = loaded.serving_default(tf.constant(images[i : i + 1]))["keypoints"].numpy()
        np.testing.assert_allclose(alone[0], together[i], atol=1e-3)
    crops = np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32)
    heatmaps = loaded.signatures["heatmaps"](images=tf.constant(crops))["heatmaps"].numpy()
    expected = as_stack_list(tiny_model()(crops, training=False))[-1].numpy()
    np.testing.assert_allclose(heatmaps, expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize(
    "signature, inputs, message",
    [
        ("serving_default", {"images": tf.zeros([1, 8, 8, 3], tf.float32)}, "expected to be a uint8 tensor"),
        ("serving_default", {"images": tf.zeros([8, 8, 3], tf.uint8)}, "images must be uint8 [N, H, W, 3]"),
        ("serving_default", {"images": tf.zeros([1, 8, 8, 4], tf.uint8)}, "received shape] [1 8 8 4]"),
        ("serving_default", {"images": tf.zeros([1, 0, 8, 3], tf.uint8)}, "height > 0 and width > 0"),
        (
            "serving_boxes",
            {"images": tf.zeros([1, 8, 8, 3], tf.uint8), "boxes": tf.constant([[1.0, 1.0, 0.0, 4.0]])},
            "w > 0 and h > 0, or all zero",
        ),
        (
            "serving_boxes",
            {"images": tf.zeros([2, 8, 8, 3], tf.uint8), "boxes": tf.zeros([1, 4])},
            "one row per image",
        ),
        ("serving_boxes", {"images": tf.zeros([1, 8, 8, 3], tf.uint8), "boxes": tf.zeros([4])}, "[N, 4]"),
        (
            "serving_float",
            {"images": tf.fill([1, 8, 8, 3], 255.0), "boxes": tf.zeros([1, 4])},
            "serving_float takes images in [0, 1]",
        ),
        ("serving_bytes", {"image_bytes": tf.constant(b"not an image")}, "string vector [N]"),
        ("serving_bytes", {"image_bytes": tf.constant([b"not an image"])}, "Unknown image file format"),
        ("serving_bytes", {"image_bytes": tf.constant([b""])}, "image_bytes[0] is not an image"),
        (
            "serving_bytes",
            {"image_bytes": tf.constant([tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy(), b"text"])},
            "image_bytes[1] is not an image",
        ),
        (
            "serving_boxes",
            {"images": tf.zeros([1, 8, 8, 3], tf.uint8), "boxes": tf.constant([[20.0, 2.0, 5.0, 5.0]])},
            "boxes must overlap the image",
        ),
        (
            "serving_boxes",
            {"images": tf.zeros([1, 8, 8, 3], tf.uint8), "boxes": tf.constant([[0.0, 0.0, 1e30, 1e30]])},
            "boxes must overlap the image by at least 1% of their width and height",
        ),
    ],
)
def test_wrong_inputs_fail_with_a_clear_message(loaded, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures[signature](**inputs)
    assert message in str(error.value)


def load_rest_client():
    path = Path(__file__).resolve().parents[1] / "export" / "rest_client.py"
    spec = importlib.util.spec_from_file_location("rest_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rest_client_round_trip_through_a_local_predict_endpoint(loaded, tmp_path):
    """export/rest_client.py against a stand-in for TF Serving's REST predict (row format), on 127.0.0.1."""
    rest_client = load_rest_client()
    paths = []
    for seed, size in enumerate([(60, 80), (90, 70)]):
        paths.append(tmp_path / f"photo{seed}.png")
        paths[-1].write_bytes(tf.io.encode_png(random_photo(*size, seed=seed)).numpy())

    class PredictHandler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert request["signature_name"] == "serving_bytes"
            encoded = [base64.b64decode(i["image_bytes"]["b64"]) for i in request["instances"]]
            outputs = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encoded))
            rows = [
                {"keypoints": k.tolist(), "scores": s.tolist()}
                for k, s in zip(outputs["keypoints"].numpy(), outputs["scores"].numpy(), strict=True)
            ]
            body = json.dumps({"predictions": rows}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), PredictHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)  # exactly one request
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/models/hourglass:predict"
        results = rest_client.predict([str(p) for p in paths], url, timeout=60)
    finally:
        thread.join(timeout=60)
        server.server_close()
    assert [r["image"] for r in results] == [str(p) for p in paths]
    for path, result in zip(paths, results, strict=True):
        image = tf.io.decode_png(path.read_bytes()).numpy()
        expected, _, matrix = keras_keypoints(image)
        assert crop_pixel_distance(matrix, expected, np.array(result["keypoints"])) < 0.2
        assert result["names"][0] == "r_ankle" and len(result["scores"]) == 16


def test_saved_model_carries_the_model_info_inside(export):
    with open(os.path.join(export.path, "tf_hourglass_info.json")) as f:
        info = json.load(f)
    assert info["codec"] == {
        "sigma": 1.0,
        "peak": codec().peak,
        "decode_method": "quarter",
        "background_channel": False,
    }
    loaded = load_model_for_inference(export.path)
    assert loaded.spec.name == "mpii"
    assert loaded.codec().peak == codec().peak
