"""Multi-person prediction on whole photos (the official test.py's steps) and COCO AP evaluation."""

import numpy as np
import pytest
import tensorflow as tf

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.data.grouping import unflip_maps
from tf_hourglass.evaluate import main as evaluate_main
from tf_hourglass.evaluation import run
from tf_hourglass.model.info import ModelInfo
from tf_hourglass.prediction.multi_person import (
    People,
    coco_results,
    input_side,
    letterbox_matrix,
    predict_people,
)

K = 17
FLIP = keypoint_specs.COCO.flip_permutation()


def test_input_sides_are_the_official_ones():
    assert [input_side(s) for s in (2.0, 1.0, 0.5)] == [1024, 512, 256]
    assert input_side(1.0, 200) == 256 and input_side(0.3) == 192


def test_letterbox_matrix_is_the_official_get_transform_of_the_whole_photo():
    # get_transform(center=(w/2, h/2), scale=max(h, w)/200, res=(512, 512)) for a 640x480 photo
    matrix = letterbox_matrix(480, 640, 512)
    h = 640.0
    expected = np.array(
        [[512 / h, 0, 512 * (-320 / h + 0.5)], [0, 512 / h, 512 * (-240 / h + 0.5)], [0, 0, 1]]
    )
    np.testing.assert_allclose(matrix, expected)
    # The photo's centre lands on the input's centre, its longer side spans the input.
    np.testing.assert_allclose(matrix @ [320, 240, 1], [256, 256, 1])
    np.testing.assert_allclose(matrix @ [0, 240, 1], [0, 256, 1])


def people_maps(photo_people, image_shape, side, stride=4, sigma=1.0):
    """Heatmaps and tags (h, w, K) with a peak at each person's joints and that person's tag everywhere near."""
    matrix = letterbox_matrix(*image_shape, side)
    size = side // stride
    heatmaps = np.zeros((size, size, K), np.float32)
    tags = np.zeros((size, size, K), np.float32)
    ys, xs = np.mgrid[0:size, 0:size]
    for person, tag in photo_people:
        heat = (person @ matrix[:2, :2].T + matrix[:2, 2]) / stride  # official cell coordinates
        for k, (x, y) in enumerate(heat):
            cx, cy = int(x), int(y)
            gaussian = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
            heatmaps[..., k] = np.maximum(heatmaps[..., k], gaussian)
            near = gaussian > 0.01
            tags[..., k][near] = tag
    return heatmaps, tags


class FakeNetwork:
    """Returns fixed maps for the input and their mirror for the mirrored input, as a trained network would."""

    def __init__(self, heatmaps, tags, extra=0):
        self.output = np.concatenate(
            [heatmaps, tags, np.zeros(heatmaps.shape[:2] + (extra,), np.float32)], -1
        )
        mirrored_heatmaps = unflip_maps(heatmaps[None], FLIP)[0]
        mirrored_tags = unflip_maps(tags[None], FLIP)[0]
        self.mirrored = np.concatenate(
            [mirrored_heatmaps, mirrored_tags, np.zeros(heatmaps.shape[:2] + (extra,), np.float32)], -1
        )
        self.calls = []

    def __call__(self, inputs):
        self.calls.append(tuple(inputs.shape))
        outputs = [self.output, self.mirrored][: len(inputs)]
        return tf.constant(np.stack(outputs))


@pytest.mark.parametrize("flip", [True, False])
def test_people_come_back_in_photo_pixels_strongest_first(flip):
    rng = np.random.default_rng(3)
    image_shape = (120, 200)  # height, width: letterboxed with a band below
    # Two people, each joint at a cell centre of the 16x16 map of a 64-pixel input.
    matrix = letterbox_matrix(*image_shape, 64)
    inverse = np.linalg.inv(matrix)
    people = []
    for tag, columns in ((-1.0, (1, 7)), (1.0, (9, 15))):
        cells = np.stack([rng.integers(*columns, K), rng.integers(1, 8, K)], axis=1) + 0.5
        people.append(((cells * 4) @ inverse[:2, :2].T + inverse[:2, 2], tag))
    heatmaps, tags = people_maps(people, image_shape, 64)
    heatmaps[..., :] *= np.where(np.arange(16) < 8, 0.9, 1.0)[None, :, None]  # the right person is stronger
    network = FakeNetwork(heatmaps, tags, extra=3)

    codec = AssociativeEmbeddingCodec(input_size=(64, 64), heatmap_size=(16, 16))
    found = predict_people(network, np.zeros((*image_shape, 3), np.float32), codec, FLIP, flip=flip)
    assert network.calls == [(2 if flip else 1, 64, 64, 3)]
    assert len(found) == 2 and found.keypoints.shape == (2, K, 2)
    assert found.scores[0] > found.scores[1]
    # Quarter-pixel adjustment: within a quarter heatmap pixel (1 input pixel) of the truth.
    tolerance = 4 * 0.25 / matrix[0, 0] + 1e-4
    strongest, weakest = people[1][0], people[0][0]
    assert np.abs(found.keypoints[0] - strongest).max() <= tolerance
    assert np.abs(found.keypoints[1] - weakest).max() <= tolerance
    np.testing.assert_allclose(found.scores, found.keypoint_scores.mean(axis=1), rtol=1e-5)


def test_a_photo_with_nobody_gives_no_people():
    network = FakeNetwork(np.zeros((16, 16, K), np.float32), np.zeros((16, 16, K), np.float32))
    codec = AssociativeEmbeddingCodec(input_size=(64, 64), heatmap_size=(16, 16))
    found = predict_people(network, np.zeros((50, 60, 3), np.float32), codec, FLIP)
    assert len(found) == 0 and found.keypoints.shape == (0, K, 2)
    assert coco_results(found, image_id=7) == []


def test_scales_must_include_one():
    with pytest.raises(ValueError, match="must include 1"):
        predict_people(
            None, np.zeros((8, 8, 3), np.float32), AssociativeEmbeddingCodec(), FLIP, scales=(2.0, 0.5)
        )


def test_coco_results_fill_missing_joints_with_the_persons_mean_as_the_official_code():
    keypoints = np.zeros((1, K, 2), np.float32)
    keypoints[0, 0] = (10, 20)
    keypoints[0, 1] = (30, 40)
    values = np.zeros((1, K), np.float32)
    values[0, :2] = (0.5, 1.0)
    (result,) = coco_results(People(keypoints, values, np.array([0.3], np.float32)), image_id=5)
    flat = np.array(result["keypoints"]).reshape(K, 3)
    np.testing.assert_allclose(flat[:2], [[10, 20, 1], [30, 40, 1]])
    np.testing.assert_allclose(flat[2:], np.tile([20, 30, 1], (K - 2, 1)))
    assert result["score"] == pytest.approx(0.3) and result["image_id"] == 5 and result["category_id"] == 1


@pytest.fixture(scope="module")
def ae_tiny_file(tmp_path_factory):
    model = tf_hourglass.from_preset("ae_tiny")
    model.pose_info = ModelInfo(
        spec=keypoint_specs.COCO, kind="multi_person", sigma=0.25, input_size=(64, 64)
    )
    path = str(tmp_path_factory.mktemp("ae") / "ae_tiny.keras")
    model.save(path)
    return path


@pytest.mark.e2e
def test_evaluate_scores_a_multi_person_model_with_coco_ap_on_the_real_sample(
    ae_tiny_file, shared_data, capsys
):
    coco = shared_data / "coco"
    results = run.evaluate_model(
        ae_tiny_file,
        f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}",
        flip=True,
        scales=(1.0, 0.5),
        progress=False,
    )
    assert results["protocol"] == "coco" and results["num_images"] == 4 and results["num_skipped"] == 0
    assert set(results["coco_keypoints"]) >= {"AP", "AP50", "AP75", "APm", "APl", "AR"}
    assert all(-1.0 <= v <= 1.0 for v in results["coco_keypoints"].values())
    assert results["inputs"]["scales"] == [1.0, 0.5]

    status = evaluate_main(
        [
            "evaluate",
            "--model",
            ae_tiny_file,
            "--data",
            f"coco:{coco / 'person_keypoints_sample.json'}:{coco / 'images'}",
        ]
    )
    assert status == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("AP")


def test_a_multi_person_model_on_other_data_is_refused_naming_the_protocol(ae_tiny_file, shared_data):
    mpii = shared_data / "mpii"
    with pytest.raises(ValueError, match="scored with COCO's keypoint AP"):
        run.evaluate_model(ae_tiny_file, f"mpii_h5:{mpii / 'annot' / 'valid.h5'}:{mpii / 'images'}")


def test_pose_estimator_finds_every_person_with_a_multi_person_model(ae_tiny_file, shared_data):
    estimator = tf_hourglass.PoseEstimator(ae_tiny_file)
    assert estimator.multi_person and estimator.flip_test  # the official test always flips
    assert estimator.spec == keypoint_specs.COCO
    photo = np.zeros((48, 80, 3), np.uint8)
    result = estimator.predict(photo)
    people = len(result["scores"])
    assert result["keypoints"].shape == (people, K, 2) and result["keypoint_scores"].shape == (people, K)
    assert np.all(np.diff(result["scores"]) <= 0)  # strongest first
    with pytest.raises(ValueError, match="finds every person in the whole photo; give no box"):
        estimator.predict(photo, box=(0, 0, 10, 10))
    # The same model object in memory, single-scale without flip.
    model = tf_hourglass.from_preset("ae_tiny")
    assert tf_hourglass.PoseEstimator(model, flip_test=False).predict(photo)["keypoints"].shape[1:] == (K, 2)
