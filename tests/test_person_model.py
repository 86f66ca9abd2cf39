"""Top-down refinement: a multi-person model finds the people, a single-person model estimates each on its crop.

``PoseEstimator(model, person_model=...)`` and ``predict --person-model``; without a
person model a single-person model takes the whole photo as the person's box and says so.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.crop import center_scale_from_box, keypoints_box
from tf_hourglass.data.formats.common import center_scale_from_keypoints
from tf_hourglass.predict import main as predict_main
from tf_hourglass.prediction.estimator import PoseEstimator

MPII_NAMES = list(keypoint_specs.MPII.keypoint_names)


def test_keypoints_box_is_the_box_of_the_found_joints():
    points = np.array([[10.0, 40.0], [30.0, 20.0], [500.0, 500.0], [12.0, 25.0]])
    found = np.array([True, True, False, True])
    assert keypoints_box(points, found) == (10.0, 20.0, 20.0, 20.0)
    assert keypoints_box(points, np.zeros(4, bool)) is None  # nobody
    assert keypoints_box(points, np.array([True, False, False, False])) is None  # one point spans no pixel
    assert keypoints_box(points[:2] * [1, 0], np.ones(2, bool)) == (10.0, 0.0, 20.0, 0.0)  # a line has a crop
    # The readers' crop of annotated joints is the crop of that box.
    center, scale = center_scale_from_keypoints(points, found)
    expected_center, expected_scale = center_scale_from_box(keypoints_box(points, found))
    np.testing.assert_allclose(center, expected_center)
    assert scale == pytest.approx(expected_scale)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A single-person hg_tiny (MPII) and an ae_tiny (COCO) whose detections clear the threshold, as files."""
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    tf_hourglass.from_preset("hg_tiny").save(str(folder / "hg.keras"))
    people = tf_hourglass.from_preset("ae_tiny")
    output = people.get_layer("stack2_output_conv")
    kernel, bias = output.get_weights()
    output.set_weights([8.0 * kernel, bias])  # random peaks sit at the grouping's threshold otherwise
    people.save(str(folder / "ae.keras"))
    return {"single": str(folder / "hg.keras"), "people": str(folder / "ae.keras")}


def photo(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def test_each_person_the_person_model_finds_is_estimated_on_the_crop_of_its_joints(models):
    image = photo(120, 90, 1)
    top_down = PoseEstimator(models["single"], person_model=models["people"], precision="float32")
    assert top_down.multi_person and top_down.spec == keypoint_specs.MPII  # the single-person model's joints
    found = PoseEstimator(models["people"]).predict(image)
    result = top_down.predict(image)
    boxes = [
        keypoints_box(points, values > 0)
        for points, values in zip(found["keypoints"], found["keypoint_scores"], strict=True)
    ]
    kept = [index for index, box in enumerate(boxes) if box is not None]
    assert len(kept) > 1
    assert result["keypoints"].shape == (len(kept), 16, 2) and result["keypoint_scores"].shape == (
        len(kept),
        16,
    )
    np.testing.assert_allclose(result["scores"], found["scores"][kept])  # the person model's scores
    np.testing.assert_allclose(result["boxes"], [boxes[index] for index in kept])
    single = PoseEstimator(models["single"], precision="float32")
    for person, box in enumerate(result["boxes"][:3]):
        alone = single.predict(image, box=box)
        np.testing.assert_allclose(result["keypoints"][person], alone["keypoints"], atol=1e-3)
        np.testing.assert_allclose(result["keypoint_scores"][person], alone["scores"], atol=1e-5)


def test_a_photo_where_the_person_model_finds_nobody_gives_no_people(models):
    estimator = PoseEstimator(models["single"], person_model=models["people"])
    estimator._people_network = lambda inputs: tf.zeros(
        [len(inputs), 16, 16, 34]
    )  # a network that sees nobody
    result = estimator.predict(photo(50, 60, 2))
    assert result["keypoints"].shape == (0, 16, 2) and result["boxes"].shape == (0, 4)


def test_wrong_model_kinds_and_a_box_are_refused_in_one_line(models):
    with pytest.raises(
        ValueError, match="hg.keras is a single_person model; the person model .* multi-person"
    ):
        PoseEstimator(models["single"], person_model=models["single"])
    with pytest.raises(ValueError, match="ae.keras is a multi-person model: it finds every person itself"):
        PoseEstimator(models["people"], person_model=models["people"])
    estimator = PoseEstimator(models["single"], person_model=models["people"])
    with pytest.raises(ValueError, match="the person model .*ae.keras finds each person's box; give no box"):
        estimator.predict(photo(40, 40, 3), box=(0, 0, 20, 20))


@pytest.mark.e2e
def test_predict_with_a_person_model_writes_each_persons_joints_and_box(models, tmp_path, capsys):
    image = tmp_path / "group.png"
    image.write_bytes(tf.io.encode_png(photo(120, 90, 1)).numpy())
    argv = ["predict", "--model", models["single"], "--input", str(image), "--precision", "float32"]
    assert predict_main([*argv, "--person-model", models["people"], "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"--person-model {models['people']} finds the people" in out
    people = json.loads((tmp_path / "out" / "group.json").read_text())
    expected = PoseEstimator(models["single"], person_model=models["people"], precision="float32")
    expected = expected.predict(tf.io.decode_png(image.read_bytes()).numpy())
    assert len(people) == len(expected["scores"]) > 1
    for person, points, box in zip(people, expected["keypoints"], expected["boxes"], strict=True):
        assert len(person["keypoints"]) == 16 * 3  # x, y, score of the single-person model's joints
        np.testing.assert_allclose(np.reshape(person["keypoints"], (16, 3))[:, :2], points, atol=1e-3)
        np.testing.assert_allclose(person["box"], box, atol=1e-3)

    # Without it, the whole photo is the person's box, and both the command and the JSON say so.
    assert predict_main([*argv, "--output", str(tmp_path / "whole")]) == 0
    assert "no box: the whole image is the person's box" in capsys.readouterr().out
    record = json.loads((tmp_path / "whole" / "group.json").read_text())
    assert record["box"] == [0.0, 0.0, 90.0, 120.0] and record["note"].startswith("no box: the whole image")
    assert [k["name"] for k in record["keypoints"]] == MPII_NAMES


def test_the_command_refuses_a_person_model_with_a_box_or_of_the_wrong_kind(models, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(tf.io.encode_png(photo(40, 40, 4)).numpy())
    common = ["predict", "--input", str(image), "--output", str(tmp_path / "out")]
    status = predict_main(
        [*common, "--model", models["single"], "--person-model", models["people"], "--box", "0,0,9,9"]
    )
    assert status == 2 and "--box and --person-model" in capsys.readouterr().err
    assert predict_main([*common, "--model", models["people"], "--person-model", models["people"]]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("predict: error:") and "finds every person itself" in error and "\n" not in error
    assert not (tmp_path / "out").exists()
