"""Synthetic multi-person scenes: determinism, people count, COCO keypoints where figures are drawn, occlusion."""

import numpy as np
import pytest

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.synthetic.scenes import SYNTHETIC_OKS_SIGMAS, SyntheticScenes


@pytest.fixture(scope="module")
def scenes():
    generator = SyntheticScenes(image_size=(192, 160), num_people=(2, 6), seed=3)
    return generator, [generator.render(i) for i in range(24)]


def test_a_scene_is_a_pure_function_of_seed_and_index(scenes):
    generator, rendered = scenes
    again = SyntheticScenes(image_size=(192, 160), num_people=(2, 6), seed=3).render(5)
    np.testing.assert_array_equal(again.image, rendered[5].image)
    np.testing.assert_array_equal(again.keypoints, rendered[5].keypoints)
    other_seed = SyntheticScenes(image_size=(192, 160), num_people=(2, 6), seed=4).render(5)
    assert not np.array_equal(other_seed.image, rendered[5].image)
    assert not np.array_equal(rendered[4].image, rendered[5].image)


def test_scenes_have_the_requested_number_of_labelled_people_in_coco_layout(scenes):
    _, rendered = scenes
    counts = [len(scene.keypoints) for scene in rendered]
    # Figures completely covered by others are dropped, so a scene may show fewer than it drew.
    assert all(1 <= count <= 6 for count in counts)
    assert max(counts) >= 5 and len(set(counts)) >= 3
    for scene in rendered:
        assert scene.image.shape == (192, 160, 3) and scene.image.dtype == np.uint8
        assert scene.keypoints.shape[1:] == (17, 3)
        assert set(np.unique(scene.keypoints[..., 2])) <= {0.0, 1.0, 2.0}
        assert np.all(scene.keypoints[..., 2].max(axis=1) > 0)  # every person has a labelled joint
        labelled = scene.keypoints[..., 2] > 0
        xy = scene.keypoints[..., :2]
        assert np.all((xy[labelled] >= 0) & (xy[labelled] <= [159, 191]))
        assert np.all(xy[~labelled] == 0)
        np.testing.assert_array_equal(scene.areas, [np.sum(scene.owner_map == p) for p in range(len(xy))])


def test_visible_joints_are_drawn_on_their_own_figure(scenes):
    _, rendered = scenes
    face, body = 0, 0
    for scene in rendered:
        for p, person in enumerate(scene.keypoints):
            for k, (x, y, v) in enumerate(person):
                if v != 2:
                    continue
                # The drawn pixel belongs to this person (owner map), not to the background or another figure.
                assert scene.owner_map[int(round(y)), int(round(x))] == p
                if k < 5:
                    face += 1
                else:
                    body += 1
    assert face > 50 and body > 300


def test_joints_covered_by_another_figure_are_unlabelled_and_the_rest_labelled(scenes):
    _, rendered = scenes
    covered = labelled_hidden = 0
    for scene in rendered:
        for p, (person, projected) in enumerate(zip(scene.keypoints, scene.projected_keypoints, strict=True)):
            for (x, y), v in zip(projected, person[:, 2], strict=True):
                if not (0 <= x <= 159 and 0 <= y <= 191):
                    assert v == 0  # outside the image
                    continue
                owner = scene.owner_map[int(round(y)), int(round(x))]
                if owner >= 0 and owner != p:  # another figure is drawn over the joint
                    assert v == 0
                    covered += 1
                else:
                    assert v in (1, 2)
                    labelled_hidden += int(v == 1)
    # Overlap is common in these scenes, and self-occlusion / occluder shapes give flag 1.
    assert covered > 30 and labelled_hidden > 30


def test_eyes_and_nose_are_on_the_drawn_head():
    generator = SyntheticScenes(image_size=(256, 256), num_people=(1, 1), height_range=(0.8, 0.8), seed=1)
    checked = 0
    for index in range(12):
        scene = generator.render(index)
        background = np.median(scene.image[scene.owner_map < 0], axis=0)
        for x, y, v in scene.keypoints[0, :3]:  # nose, eyes
            if v == 2:
                assert scene.owner_map[int(round(y)), int(round(x))] == 0
                # The face differs from the background around the figure.
                pixel = scene.image[int(round(y)), int(round(x))].astype(float)
                assert np.abs(pixel - background).max() > 5
                checked += 1
    assert checked >= 6


def test_oks_sigmas_are_cocos_in_coco_order():
    assert SYNTHETIC_OKS_SIGMAS.shape == (keypoint_specs.COCO.num_keypoints,)
    np.testing.assert_allclose(SYNTHETIC_OKS_SIGMAS[[0, 5, 11, 15]], [0.026, 0.079, 0.107, 0.089])
    for left, right in keypoint_specs.COCO.flip_pairs:
        assert SYNTHETIC_OKS_SIGMAS[left] == SYNTHETIC_OKS_SIGMAS[right]


def test_invalid_arguments_are_reported():
    with pytest.raises(ValueError, match="num_people"):
        SyntheticScenes(num_people=(0, 3))
    with pytest.raises(ValueError, match="num_people"):
        SyntheticScenes(num_people=(4, 2))
    with pytest.raises(ValueError, match="17 keypoints"):
        SyntheticScenes(spec=keypoint_specs.MPII)
    with pytest.raises(ValueError, match="max_truncation"):
        SyntheticScenes(max_truncation=0.6)
    with pytest.raises(ValueError, match="index"):
        SyntheticScenes().render(-1)


def test_scenes_written_as_a_custom_dataset_read_back_as_whole_images(tmp_path):
    from tf_hourglass.data.readers import read_custom_images
    from tf_hourglass.data.synthetic.__main__ import main

    argv = [
        "synthetic",
        f"--output={tmp_path}",
        "--num-examples=3",
        "--seed=2",
        "--image-size=96",
        "--scenes",
    ]
    assert main(argv) == 0
    spec, records = read_custom_images(str(tmp_path / "annotations.json"))
    assert spec.keypoint_names == keypoint_specs.COCO.keypoint_names
    assert spec.flip_pairs == keypoint_specs.COCO.flip_pairs
    generator = SyntheticScenes(image_size=96, seed=2)
    assert len(records) == 3
    for index, record in enumerate(records):
        assert record.image_path.endswith(f"{index:08d}.jpg")
        np.testing.assert_allclose(record.keypoints, generator.generate(index)[1], atol=1e-4)


def test_coco_ground_truth_lists_each_scenes_labelled_people_with_the_box_of_their_joints(scenes):
    generator, rendered = scenes
    document, photos = generator.coco_ground_truth([3, 5])
    assert [image["id"] for image in document["images"]] == [3, 5] == [image_id for image_id, _ in photos]
    np.testing.assert_array_equal(photos[1][1], rendered[5].image)
    assert document["categories"][0]["keypoints"] == list(keypoint_specs.COCO.keypoint_names)
    people = [a for a in document["annotations"] if a["image_id"] == 5]
    assert len(people) == len(rendered[5].keypoints)
    for person, truth in zip(people, rendered[5].keypoints, strict=True):
        np.testing.assert_allclose(np.reshape(person["keypoints"], (17, 3)), truth)
        labelled = truth[truth[:, 2] > 0, :2]
        x0, y0 = labelled.min(axis=0)
        np.testing.assert_allclose(person["bbox"], [x0, y0, *(labelled.max(axis=0) - (x0, y0))], rtol=1e-6)
        assert person["num_keypoints"] == len(labelled) and person["iscrowd"] == 0
