"""The multi-person SavedModel (photos -> people, grouping in the graph) and its export check.

The graph's steps are checked against the Python path (``predict_people``)
with a network of known outputs (planted people); the exported SavedModel of
a random-weight ``ae_tiny`` against the Python path on the same model, its
signatures, photo sizes, batches and encoded images.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_multi_person_prediction import FLIP, FakeNetwork, K, people_maps

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.export import VerificationError, export_model, tflite
from tf_hourglass.export.calibration import load_people_calibration
from tf_hourglass.export.multi_person_saved_model import (
    letterbox_matrices,
    multi_person_serving_module,
    people_function,
)
from tf_hourglass.export.multi_person_verify import (
    PeopleParity,
    check_people_parity,
    coco_ap,
    coco_samples,
    saved_model_people,
)
from tf_hourglass.model import as_stack_list
from tf_hourglass.model.info import MULTI_PERSON, ModelInfo
from tf_hourglass.prediction.multi_person import (
    People,
    codec_for_model,
    letterbox,
    letterbox_matrix,
    predict_people,
)
from tf_hourglass.run_files import info_path

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
CODEC = AssociativeEmbeddingCodec(input_size=(64, 64), heatmap_size=(16, 16))


def graph_people(network, image_shape):
    """``people_function`` on one letterboxed photo of ``image_shape`` with a fixed-output network."""
    matrix = letterbox_matrices(*image_shape, 64)[None]
    people = people_function(
        lambda inputs: tf.constant(np.stack([network.output, network.mirrored])), CODEC, FLIP
    )
    outputs = people(tf.zeros([1, 64, 64, 3]), matrix)
    return {key: value.numpy() for key, value in outputs.items()}


def test_letterbox_matrices_equal_the_official_transform():
    for height, width in ((480, 640), (333, 500), (100, 30), (64, 64)):
        np.testing.assert_allclose(
            letterbox_matrices(height, width, 64).numpy(),
            letterbox_matrix(height, width, 64),
            rtol=1e-6,
            atol=1e-5,
        )


def test_the_graph_finds_the_python_paths_people_in_photo_pixels():
    rng = np.random.default_rng(3)
    image_shape = (120, 200)
    inverse = np.linalg.inv(letterbox_matrix(*image_shape, 64))
    planted = []
    # Apart enough that no tag map is overwritten by another person's: with exactly equal tags the
    # official parser merges people (see grouping_tf), which real tags never are.
    for tag, columns in ((-1.0, (1, 4)), (2.0, (12, 15))):
        cells = np.stack([rng.integers(*columns, K), rng.integers(1, 8, K)], axis=1) + 0.5
        planted.append(((cells * 4) @ inverse[:2, :2].T + inverse[:2, 2], tag))
    heatmaps, tags = people_maps(planted, image_shape, 64)
    heatmaps *= np.where(np.arange(16) < 8, 0.8, 1.0)[None, :, None]
    network = FakeNetwork(heatmaps, tags, extra=3)
    expected = predict_people(network, np.zeros((*image_shape, 3), np.float32), CODEC, FLIP)
    outputs = graph_people(network, image_shape)
    found = saved_model_people(outputs, 0)
    assert outputs["keypoints"].shape == (1, 30, K, 2) and outputs["scores"].shape == (1, 30)
    assert len(expected) == 2 and len(found) == 2
    np.testing.assert_allclose(found.keypoints, expected.keypoints, atol=1e-3)
    np.testing.assert_allclose(found.keypoint_scores, expected.keypoint_scores, atol=1e-6)
    np.testing.assert_allclose(found.scores, expected.scores, atol=1e-6)
    assert outputs["num_people"].tolist() == [2]
    assert not np.any(outputs["keypoints"][0, 2:]) and not np.any(outputs["scores"][0, 2:])


def test_nobody_gives_num_people_zero():
    zeros = np.zeros((16, 16, K), np.float32)
    outputs = graph_people(FakeNetwork(zeros, zeros), (50, 60))
    assert outputs["num_people"].tolist() == [0]
    assert not np.any(outputs["keypoints"]) and not np.any(outputs["keypoint_scores"])


def test_a_single_person_model_is_refused_naming_its_kind():
    with pytest.raises(ValueError, match="is a single_person model; the multi-person SavedModel groups"):
        multi_person_serving_module(tf_hourglass.from_preset("hg_tiny"), CODEC, FLIP)


def test_a_failed_ap_check_raises_and_says_both_aps():
    parity = PeopleParity(4, 3, 10, 11, 1.5, 9.0, ap_python=40.0, ap_exported=39.2)
    with pytest.raises(VerificationError, match=r"COCO AP 39.20 vs 40.00 \(difference 0.80 points\).*FAILED"):
        check_people_parity(parity, "saved_model")
    assert check_people_parity(PeopleParity(4, 4, 10, 10, 0.0, 0.0, 40.0, 39.6), "saved_model").endswith("OK")
    assert "no ground truth" in check_people_parity(PeopleParity(2, 2, 0, 0, 0.0, 0.0), "saved_model")


# ----- the exported SavedModel ----------------------------------------------------------


def photo(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


@pytest.fixture(scope="module")
def ae_model():
    keras.utils.set_random_seed(0)
    return tf_hourglass.from_preset("ae_tiny")


@pytest.fixture(scope="module")
def export(ae_model, tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for index, shape in enumerate(((48, 80), (90, 40))):
        (photos / f"{index}.png").write_bytes(tf.io.encode_png(photo(*shape, index)).numpy())
    lines = []
    path = str(tmp_path_factory.mktemp("serving") / "people" / "1")
    result = export_model(ae_model, path, "saved_model", samples=str(photos), log=lines.append)
    return result, tf.saved_model.load(path)


def python_people(model, image):
    def network(inputs):
        return as_stack_list(model(inputs, training=False))[-1]

    return predict_people(network, image / np.float32(255.0), codec_for_model(model), FLIP)


@pytest.mark.e2e
def test_export_reports_the_people_parity_and_carries_the_model_kind(export):
    result, _ = export
    (parity_line,) = [line for line in result.lines if line.startswith("parity")]
    assert "people counts equal on 2/2 photos" in parity_line and parity_line.endswith("OK")
    assert result.parity.mean_keypoint_distance < 0.01
    with open(info_path(result.path)) as file:
        assert ModelInfo.from_json(file.read()).kind == MULTI_PERSON


@pytest.mark.e2e
def test_saved_model_cli_lists_the_people_signatures(export):
    shown = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--dir", export[0].path, "--all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    for name in ("serving_default", "serving_bytes"):
        assert f"signature_def['{name}']" in shown.stdout
    for output in ("num_people", "keypoints", "keypoint_scores", "scores"):
        assert f"outputs['{output}']" in shown.stdout
    assert "DT_UINT8" in shown.stdout and "DT_STRING" in shown.stdout and "DT_INT32" in shown.stdout


@pytest.mark.e2e
def test_any_photo_size_gives_the_python_paths_people(export, ae_model):
    serving_default = export[1].signatures["serving_default"]
    for index, shape in enumerate(((37, 101), (128, 64))):
        image = photo(*shape, 10 + index)
        found = saved_model_people(serving_default(images=tf.constant(image[None])), 0)
        expected = python_people(ae_model, image)
        assert len(found) == len(expected) > 0
        both = (found.keypoint_scores > 0) & (expected.keypoint_scores > 0)
        np.testing.assert_allclose(found.keypoints[both], expected.keypoints[both], atol=1e-3)
        np.testing.assert_allclose(found.scores, expected.scores, atol=1e-5)


@pytest.mark.e2e
def test_a_batch_and_encoded_photos_give_each_photos_people(export):
    signatures = export[1].signatures
    images = [photo(60, 50, 20), photo(60, 50, 21)]
    batch = signatures["serving_default"](images=tf.constant(np.stack(images)))
    assert batch["keypoints"].shape == (2, 30, K, 2) and batch["num_people"].dtype == tf.int32
    encoded = tf.constant(
        [tf.io.encode_png(image).numpy() for image in images] + [tf.io.encode_png(photo(30, 90, 22)).numpy()]
    )
    from_bytes = signatures["serving_bytes"](image_bytes=encoded)
    for index, image in enumerate(images):
        alone = signatures["serving_default"](images=tf.constant(image[None]))
        for key in ("num_people", "keypoints", "keypoint_scores", "scores"):
            np.testing.assert_allclose(batch[key][index], alone[key][0], atol=1e-3)
            np.testing.assert_allclose(from_bytes[key][index], alone[key][0], atol=1e-3)
    third = signatures["serving_default"](images=tf.constant(photo(30, 90, 22)[None]))
    np.testing.assert_allclose(from_bytes["keypoints"][2], third["keypoints"][0], atol=1e-3)


@pytest.mark.e2e
def test_invalid_requests_fail_naming_the_problem(export):
    signatures = export[1].signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be uint8 \[N, H, W, 3\]"):
        signatures["serving_default"](images=tf.zeros([1, 8, 8], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="is not an image"):
        signatures["serving_bytes"](image_bytes=tf.constant([b"not an image"]))


@pytest.mark.e2e
def test_network_exports_of_a_multi_person_model_and_refused_formats(ae_model, tmp_path):
    result = export_model(ae_model, str(tmp_path / "ae.tflite"), "tflite", log=lambda line: None)
    assert result.parity.max_heatmap_error < 1e-4  # all 34 output channels: heatmaps and tags
    with pytest.raises(ValueError, match="qat rebuilds Stacked Hourglass models"):
        export_model(ae_model, str(tmp_path / "q.tflite"), "tflite", quantize="qat", calibration="synthetic")
    with pytest.raises(
        ValueError, match="calibration is the SavedModel's AP check.*or a TFLite int8/float16"
    ):
        export_model(ae_model, str(tmp_path / "sm"), "saved_model", calibration="synthetic")
    with pytest.raises(ValueError, match="calibrates on whole photos: calibration must be 'synthetic'"):
        export_model(ae_model, str(tmp_path / "q.tflite"), "tflite", quantize="int8", calibration="lsp:x.mat")
    assert not os.listdir(tmp_path) or os.listdir(tmp_path) == ["ae.tflite", "ae.tflite.info.json"]


def test_coco_ap_of_people_against_ground_truth_and_coco_samples(tmp_path):
    keypoints = np.stack([np.linspace(20, 80, K), np.linspace(10, 90, K)], axis=1).astype(np.float32)
    truth = np.concatenate([keypoints, np.full((K, 1), 2.0)], axis=1)
    annotations = tmp_path / "people.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": 3, "file_name": "a.png", "width": 100, "height": 100}],
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 3,
                        "category_id": 1,
                        "keypoints": truth.reshape(-1).tolist(),
                        "num_keypoints": K,
                        "bbox": [20, 10, 60, 80],
                        "area": 4800.0,
                        "iscrowd": 0,
                    }
                ],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    found = People(keypoints[None], np.ones((1, K), np.float32), np.ones(1, np.float32))
    assert coco_ap(str(annotations), [found], [3]) == pytest.approx(100.0)
    assert coco_ap(str(annotations), [People.empty(K)], [3]) == 0.0
    with pytest.raises(ValueError, match="none of its 1 images is under"):
        coco_samples(str(annotations), str(tmp_path))
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(photo(20, 30, 0)).numpy())
    samples = coco_samples(str(annotations), str(tmp_path))
    assert samples.image_ids == [3] and samples.images[0].shape == (20, 30, 3)


# ----- the exported network (.tflite, .onnx) in predict and evaluate ---------------------


@pytest.fixture(scope="module")
def network_files(tmp_path_factory):
    """A random-weight ``ae_tiny`` as a .keras file and its .tflite and .onnx networks.

    Its output layer is scaled by 8 so that detections clear the grouping's threshold
    (0.1) by a margin: a random network's peaks sit at it, where runtimes' last digits decide.
    """
    keras.utils.set_random_seed(0)
    model = tf_hourglass.from_preset("ae_tiny")
    output = model.get_layer("stack2_output_conv")
    kernel, bias = output.get_weights()
    output.set_weights([8.0 * kernel, bias])
    folder = tmp_path_factory.mktemp("networks")
    model.save(str(folder / "ae.keras"))
    for format in ("tflite", "onnx"):
        export_model(model, str(folder / f"ae.{format}"), format, log=lambda line: None)
    lines = []
    export_model(
        model,
        str(folder / "ae_float16.tflite"),
        "tflite",
        quantize="float16",
        num_heldout=16,
        log=lines.append,
    )
    (folder / "float16_export.log").write_text("\n".join(lines))
    return folder


def assert_same_people(found, expected, atol=0.05, min_fraction=0.95):
    """As many people, each's score, and the joints both found at the same place, but for near ties:
    at least ``min_fraction`` of them within ``atol`` photo pixels."""
    assert len(found["scores"]) == len(expected["scores"]) > 0
    np.testing.assert_allclose(found["scores"], expected["scores"], atol=1e-3)
    both = (found["keypoint_scores"] > 0) & (expected["keypoint_scores"] > 0)
    distances = np.linalg.norm(found["keypoints"] - expected["keypoints"], axis=-1)[both]
    assert np.mean(distances < atol) >= min_fraction


@pytest.mark.parametrize("file_name", ["ae.tflite", "ae_float16.tflite", "ae.onnx"])
def test_an_exported_network_finds_the_keras_models_people(network_files, file_name):
    path = str(network_files / file_name)
    exported = tf_hourglass.PoseEstimator(path)
    keras_estimator = tf_hourglass.PoseEstimator(str(network_files / "ae.keras"))
    assert exported.multi_person and exported.spec == keypoint_specs.COCO
    # float16 weights move the maxima of this random network's flat maps where they nearly tie
    # (92% of the joints at the same place, every person and score the same).
    min_fraction = 0.9 if "float16" in file_name else 0.95
    for index, shape in enumerate(((48, 80), (200, 120), (37, 101))):
        image = photo(*shape, 30 + index)
        assert_same_people(exported.predict(image), keras_estimator.predict(image), min_fraction=min_fraction)


def test_a_float16_network_is_checked_by_its_outputs_and_its_people_not_its_maps_maxima(network_files):
    # Where a random network's map holds nobody, float16 moves its maximum anywhere: that maximum
    # is no keypoint of a multi-person network, so the bar is the outputs and the people (AP).
    lines = (network_files / "float16_export.log").read_text().splitlines()
    assert any(line.startswith("held-out data 'synthetic': 16 held-out synthetic scenes") for line in lines)
    (outputs,) = [line for line in lines if line.startswith("parity tflite/float16 on 8 held-out photos")]
    assert "[tolerance 0.01 of the peak; keypoints reported only]: OK" in outputs
    (people,) = [line for line in lines if line.startswith("parity tflite/float16 on 16 held-out")]
    assert "vs Keras" in people and "[AP drop at most 2 points]: OK" in people


def test_an_exported_network_runs_its_own_input_size_only(network_files):
    estimator = tf_hourglass.PoseEstimator(str(network_files / "ae.tflite"), scales=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"ae.tflite takes 64x64 inputs only.*scales other than 1 need"):
        estimator.predict(photo(40, 40, 0))


@pytest.mark.e2e
def test_predict_command_on_an_exported_network_writes_the_keras_models_people(
    network_files, tmp_path, capsys
):
    from tf_hourglass.predict import main as predict_main

    image = tmp_path / "000000000007.png"
    image.write_bytes(tf.io.encode_png(photo(60, 90, 40)).numpy())
    written = {}
    for format in ("keras", "onnx"):
        out = tmp_path / format
        argv = ["predict", "--model", str(network_files / f"ae.{format}"), "--input", str(image)]
        assert predict_main([*argv, "--output", str(out)]) == 0
        written[format] = json.loads((out / "000000000007.json").read_text())
    assert "Model: ONNX file" in capsys.readouterr().out
    people = {}
    for format, results in written.items():
        assert {person["image_id"] for person in results} == {7}
        triples = np.array([person["keypoints"] for person in results]).reshape(len(results), K, 3)
        people[format] = {
            "keypoints": triples[..., :2],
            "keypoint_scores": triples[..., 2],
            "scores": np.array([person["score"] for person in results]),
        }
    assert_same_people(people["onnx"], people["keras"])


@pytest.mark.e2e
@pytest.mark.parametrize("format", ["tflite", "onnx"])
def test_evaluate_scores_an_exported_network_as_its_keras_model(network_files, shared_data, format):
    from tf_hourglass.evaluation import run

    coco = shared_data / "coco"
    data = f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}"
    keras_results = run.evaluate_model(str(network_files / "ae.keras"), data, flip=True, progress=False)
    results = run.evaluate_model(str(network_files / f"ae.{format}"), data, flip=True, progress=False)
    assert results["num_images"] == 4 and results["inputs"]["model"].endswith(f"ae.{format}")
    assert results["num_people_found"] == keras_results["num_people_found"] > 0
    for name, value in keras_results["coco_keypoints"].items():
        assert results["coco_keypoints"][name] == pytest.approx(value, abs=1e-3), name


@pytest.mark.e2e
def test_the_people_saved_model_given_to_predict_or_evaluate_says_what_to_give(export, shared_data):
    from tf_hourglass.evaluation import run

    with pytest.raises(
        ValueError, match="is a multi-person SavedModel .* take the .keras model or its network"
    ):
        tf_hourglass.PoseEstimator(export[0].path)
    coco = shared_data / "coco"
    with pytest.raises(ValueError, match="is a multi-person SavedModel"):
        run.evaluate_model(export[0].path, f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}")


@pytest.mark.e2e
def test_the_ap_check_runs_on_num_heldout_held_out_synthetic_scenes_by_default(ae_model, tmp_path):
    result = export_model(
        ae_model, str(tmp_path / "people" / "1"), "saved_model", num_heldout=12, log=lambda line: None
    )
    (parity_line,) = [line for line in result.lines if line.startswith("parity")]
    assert "on 12 held-out synthetic scenes" in parity_line and "[AP within 0.5 points]" in parity_line
    assert result.parity.ap_python is not None and result.parity.ap_difference <= 0.5
    assert result.parity.num_images == 12 and parity_line.endswith("OK")
    assert sorted(os.listdir(tmp_path)) == ["people"]  # the ground truth was not left beside the export


@pytest.mark.e2e
def test_the_ap_check_on_coco_photos_takes_the_first_num_heldout(ae_model, tmp_path, shared_data):
    coco = shared_data / "coco"
    result = export_model(
        ae_model,
        str(tmp_path / "people" / "1"),
        "saved_model",
        calibration=f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}",
        num_heldout=2,
        log=lambda line: None,
    )
    (parity_line,) = [line for line in result.lines if line.startswith("parity")]
    assert "on 2 COCO photos of" in parity_line and result.parity.num_images == 2


# ----- int8 TFLite of a multi-person network --------------------------------------------


def test_people_calibration_inputs_alternate_letterboxed_4_3_and_square_scenes_every_other_mirrored():
    data = load_people_calibration("synthetic", (64, 64), num_calibration=4, num_heldout=2)
    assert data.crops.shape == (4, 64, 64, 3) and data.crops.dtype == np.float32
    # Scenes 0 and 2 are 4:3 (48x64) fitted into 64x64 as predict_people does: black bars above and below.
    four_three, square = data.crops[[0, 2]], data.crops[[1, 3]]
    assert four_three[:, :7].max() == 0.0 and four_three[:, -7:].max() == 0.0
    assert four_three[:, 12:52].max() > 0.5
    # Scenes 1 and 3 fill the square input.
    assert square[:, :7].max() > 0.5 and square[:, -7:].max() > 0.5
    from tf_hourglass.data.synthetic import SyntheticScenes

    scene = SyntheticScenes(image_size=(48, 64), seed=0).render(2).image
    expected, _ = letterbox(scene / np.float32(255.0), 64)
    np.testing.assert_allclose(data.crops[2], expected, atol=1e-6)
    scene = SyntheticScenes(image_size=(64, 64), seed=0).render(1).image
    np.testing.assert_allclose(data.crops[1], (scene / np.float32(255.0))[:, ::-1], atol=1e-6)
    assert data.heldout.description == "2 held-out synthetic scenes" and data.num_heldout == 2
    assert data.heldout.image_ids == [1_000_000, 1_000_001] and isinstance(data.heldout.annotations, dict)
    assert data.heldout_crops.shape == (2, 64, 64, 3)


def test_people_calibration_on_coco_photos_holds_the_next_ones_out(shared_data):
    coco = shared_data / "coco"
    name = f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}"
    data = load_people_calibration(name, (64, 64), num_calibration=3, num_heldout=2)
    assert data.crops.shape == (3, 64, 64, 3) and data.num_heldout == 1  # the sample has 4 photos
    assert data.heldout.description.startswith("1 held-out COCO photos of")
    assert len(data.heldout.image_ids) == 1 and data.heldout.annotations.endswith(
        "person_keypoints_sample.json"
    )
    with pytest.raises(ValueError, match="give 4 photos for calibration and 0 held out.*num_calibration=200"):
        load_people_calibration(name, (64, 64))


def test_an_int8_ap_drop_beyond_its_bar_fails_and_a_rise_passes():
    line = check_people_parity(
        PeopleParity(8, 6, 20, 19, 1.0, 5.0, ap_python=40.0, ap_exported=38.5),
        "tflite/int8",
        max_ap_drop=2.0,
        reference="Keras",
    )
    assert "vs Keras" in line and "[AP drop at most 2 points]: OK" in line
    assert check_people_parity(PeopleParity(8, 6, 20, 21, 1.0, 5.0, 40.0, 45.0), "q", max_ap_drop=2.0)
    with pytest.raises(
        VerificationError, match=r"COCO AP 37.50 vs 40.00.*\[AP drop at most 2 points\]: FAILED"
    ):
        check_people_parity(PeopleParity(8, 6, 20, 19, 1.0, 5.0, 40.0, 37.5), "q", max_ap_drop=2.0)


@pytest.fixture(scope="module")
def int8_export(network_files):
    """The int8 TFLite of ``network_files``' model, calibrated on the default synthetic scenes."""
    path = str(network_files / "ae_int8.tflite")
    lines = []
    result = export_model(
        str(network_files / "ae.keras"),
        path,
        "tflite",
        quantize="int8",
        num_calibration=16,
        num_heldout=8,
        log=lines.append,
    )
    return result, lines


@pytest.mark.e2e
def test_int8_export_of_a_multi_person_network_is_builtin_ops_checked_on_held_out_scenes(int8_export):
    result, lines = int8_export
    with open(result.path, "rb") as file:
        names = tflite.check_builtin_ops(file.read())
    assert "CONV_2D" in names and not any("FLEX" in name or "DELEGATE" in name for name in names)
    assert any(
        line.startswith("calibration data 'synthetic': 16 photos letterboxed to 64x64") for line in lines
    )
    assert any(line.startswith("TFLite input") and "uint8 [1, 64, 64, 3]" in line for line in lines)
    # The outputs (all 34 channels: heatmaps and tags) against Keras, with int8's bar.
    (outputs_line,) = [
        line
        for line in lines
        if line.startswith("parity tflite/int8 on 8 held-out photos of 'synthetic', letterboxed")
    ]
    assert "[tolerance 0.25 of the peak; keypoints reported only]: OK" in outputs_line
    assert result.parity.relative_heatmap_error < 0.05
    # The people found and their COCO AP on the held-out scenes, with its own bar.
    (people_line,) = [line for line in lines if "on 8 held-out synthetic scenes vs Keras" in line]
    assert "COCO AP" in people_line and "[AP drop at most 2 points]: OK" in people_line
    people = result.people
    assert people.num_images == 8 and people.ap_python is not None and people.ap_drop <= 2.0
    assert people.num_people_python > 0 and people.num_people_exported > 0
    assert ModelInfo.from_json(open(info_path(result.path)).read()).kind == MULTI_PERSON


@pytest.mark.e2e
def test_predict_and_evaluate_run_the_int8_network_as_the_float_one(int8_export, network_files, shared_data):
    from tf_hourglass.evaluation import run
    from tf_hourglass.model_loader import ExportedPeopleNetwork

    estimator = tf_hourglass.PoseEstimator(int8_export[0].path)
    assert estimator.multi_person and isinstance(estimator.model, ExportedPeopleNetwork)
    image = photo(200, 120, 31)
    found, expected = (
        estimator.predict(image),
        tf_hourglass.PoseEstimator(str(network_files / "ae.keras")).predict(image),
    )
    assert len(found["scores"]) > 0 and len(expected["scores"]) > 0
    assert found["keypoints"].shape[1:] == (K, 2)
    # Its network's outputs on the photo's input are the Keras model's within int8's rounding.
    network, keras_model = estimator.model, keras.models.load_model(str(network_files / "ae.keras"))
    inputs, _ = letterbox(image / np.float32(255.0), 64)
    reference = as_stack_list(keras_model(inputs[None], training=False))[-1].numpy()
    assert np.abs(network(inputs[None]) - reference).max() < 0.05 * np.abs(reference).max()
    coco = shared_data / "coco"
    data = f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}"
    results = run.evaluate_model(int8_export[0].path, data, flip=True, progress=False)
    assert results["num_images"] == 4 and results["inputs"]["model"].endswith("ae_int8.tflite")
    assert results["num_people_found"] > 0 and "AP" in results["coco_keypoints"]


@pytest.mark.e2e
def test_the_export_command_calibrates_a_multi_person_int8_file_on_scenes_by_default(
    network_files, tmp_path, capsys
):
    from tf_hourglass.export.__main__ import main as export_main

    output = tmp_path / "people_int8.tflite"
    argv = ["export", "--model", str(network_files / "ae.keras"), "--format", "tflite", "--quantize", "int8"]
    argv += ["--output", str(output), "--num-calibration", "4", "--num-heldout", "2", "--max-ap-drop", "0.5"]
    assert export_main(argv) == 0
    printed = capsys.readouterr().out
    assert "calibration data 'synthetic': 4 photos letterboxed to 64x64 calibrate" in printed
    assert (
        "on 2 held-out synthetic scenes vs Keras" in printed and "[AP drop at most 0.5 points]: OK" in printed
    )
    assert output.is_file() and tflite.check_builtin_ops(output.read_bytes())
