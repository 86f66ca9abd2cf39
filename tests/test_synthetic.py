"""Tests of the procedural figure dataset (tf_hourglass.data.synthetic)."""

import json
import math
import os

import cv2
import numpy as np
import pytest

from tf_hourglass.data import synthetic
from tf_hourglass.data.keypoint_specs import MPII
from tf_hourglass.data.synthetic import (
    HEAD_TOP,
    JOINT_PARTS,
    L_HIP,
    NOMINAL_PROPORTIONS,
    OCCLUDER,
    PELVIS,
    PROPORTION_VARIATION,
    R_HIP,
    SIDES,
    THORAX,
    UPPER_NECK,
    SyntheticFigures,
    sample_skeleton,
)

IMAGE_SIZE = 128  # small images keep the tests fast
NUM_SAMPLES = 40

BONES = {
    "upper_arm": ("shoulder", "elbow"),
    "forearm": ("elbow", "wrist"),
    "thigh": ("hip", "knee"),
    "shin": ("knee", "ankle"),
}


def _angle_degrees(u, v):
    cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return math.degrees(math.acos(np.clip(cos, -1.0, 1.0)))


@pytest.fixture(scope="module")
def examples():
    figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=11)
    return [figures.render(i) for i in range(NUM_SAMPLES)]


@pytest.fixture(scope="module")
def skeletons():
    rng = np.random.default_rng(0)
    return [sample_skeleton(rng) for _ in range(300)]


def test_same_seed_and_index_reproduce_the_example_exactly():
    image_a, record_a = SyntheticFigures(image_size=IMAGE_SIZE, seed=7).generate(3)
    image_b, record_b = SyntheticFigures(image_size=IMAGE_SIZE, seed=7).generate(3)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(record_a.keypoints, record_b.keypoints)
    np.testing.assert_array_equal(record_a.visible, record_b.visible)
    assert record_a.normalizer == record_b.normalizer

    other_index, record_c = SyntheticFigures(image_size=IMAGE_SIZE, seed=7).generate(4)
    other_seed, _ = SyntheticFigures(image_size=IMAGE_SIZE, seed=8).generate(3)
    assert np.abs(image_a.astype(int) - other_index).mean() > 10
    assert np.abs(image_a.astype(int) - other_seed).mean() > 10
    assert not np.allclose(record_a.keypoints, record_c.keypoints)


def test_generate_is_independent_of_generation_order():
    figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=2)
    images, records = figures.as_arrays(3, start=5)
    assert images.shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert [r.record_id for r in records] == [5, 6, 7]
    image_6, record_6 = figures.generate(6)
    np.testing.assert_array_equal(images[1], image_6)
    np.testing.assert_array_equal(records[1].keypoints, record_6.keypoints)
    iterated = [record.record_id for _, record in figures.iterate(start=5, stop=8)]
    assert iterated == [5, 6, 7]


def test_annotated_joints_lie_inside_the_image(examples):
    for example in examples:
        record = example.record
        points = record.keypoints[record.has_gt]
        assert (points >= 0).all() and (points <= IMAGE_SIZE - 1).all()
        np.testing.assert_array_equal(record.keypoints[~record.has_gt], 0.0)
        assert not record.visible[~record.has_gt].any()
    # Truncation is allowed but rare: almost every joint is annotated.
    annotated = np.mean([e.record.has_gt.mean() for e in examples])
    assert annotated > 0.9


def test_joints_outside_the_image_have_no_ground_truth():
    figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=3, height_range=(1.3, 1.5))
    outside_count = 0
    for index in range(15):
        example = figures.render(index)
        projected = example.projected_joints
        outside = ((projected < 0) | (projected > IMAGE_SIZE - 1)).any(axis=1)
        np.testing.assert_array_equal(example.record.has_gt, ~outside)
        outside_count += outside.sum()
    assert outside_count > 0


def test_visible_joints_are_drawn_on_their_own_body_parts(examples):
    num_visible = 0
    for example in examples:
        record = example.record
        for joint in np.flatnonzero(record.visible):
            x, y = np.rint(record.keypoints[joint]).astype(int)
            assert example.part_map[y, x] in JOINT_PARTS[joint], MPII.keypoint_names[joint]
            num_visible += 1
        # Hidden joints with ground truth are covered by something else.
        for joint in np.flatnonzero(record.has_gt & ~record.visible):
            x, y = np.rint(record.keypoints[joint]).astype(int)
            assert example.part_map[y, x] not in JOINT_PARTS[joint]
    assert num_visible > 0.75 * NUM_SAMPLES * 16


def test_figure_pixels_differ_from_the_background_at_visible_joints():
    # The colour at a visible joint must differ from the background pixels
    # around it (the part map says which pixels are background).
    figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=5, noise_level=0.0)
    differences = []
    for index in range(10):
        example = figures.render(index)
        image = example.image.astype(int)
        background = example.part_map == 0
        for joint in np.flatnonzero(example.record.visible):
            x, y = np.rint(example.record.keypoints[joint]).astype(int)
            ring = background[max(y - 12, 0) : y + 13, max(x - 12, 0) : x + 13]
            if not ring.any():
                continue
            patch = image[max(y - 12, 0) : y + 13, max(x - 12, 0) : x + 13]
            differences.append(np.abs(patch[ring].mean(axis=0) - image[y, x]).sum())
    # Random colours can coincide, but not on average.
    assert np.median(differences) > 30


def test_occluded_joints_are_annotated_but_not_visible():
    figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=4, occluder_probability=1.0)
    num_occluded = 0
    for index in range(20):
        example = figures.render(index)
        record = example.record
        for joint in np.flatnonzero(record.has_gt):
            x, y = np.rint(record.keypoints[joint]).astype(int)
            if example.part_map[y, x] == OCCLUDER:
                assert record.has_gt[joint] and not record.visible[joint]
                num_occluded += 1
    assert num_occluded >= 5

    clear = SyntheticFigures(image_size=IMAGE_SIZE, seed=4, occluder_probability=0.0)
    assert not any((clear.render(i).part_map == OCCLUDER).any() for i in range(10))


def test_limb_lengths_follow_human_proportions(skeletons):
    low, high = 1 - PROPORTION_VARIATION - 1e-9, 1 + PROPORTION_VARIATION + 1e-9
    for skeleton in skeletons:
        joints = skeleton.joints
        for bone, (start, end) in BONES.items():
            lengths = [
                np.linalg.norm(joints[SIDES[side][end]] - joints[SIDES[side][start]])
                for side in ("right", "left")
            ]
            assert lengths[0] == pytest.approx(lengths[1])  # left and right alike
            assert low <= lengths[0] / NOMINAL_PROPORTIONS[bone] <= high, bone
        spine = np.linalg.norm(joints[THORAX] - joints[PELVIS])
        assert low <= spine / NOMINAL_PROPORTIONS["spine"] <= high
        # Legs are longer than arms, thigh and shin about equal, as in people.
        thigh = np.linalg.norm(joints[SIDES["left"]["knee"]] - joints[SIDES["left"]["hip"]])
        forearm = np.linalg.norm(joints[SIDES["left"]["wrist"]] - joints[SIDES["left"]["elbow"]])
        assert 1.4 < thigh / forearm < 2.0
        assert 0.9 < skeleton.standing_height < 1.07


def test_projected_limbs_are_never_longer_than_their_3d_length(examples):
    for example in examples:
        joints3d, joints2d = example.skeleton.joints, example.projected_joints
        for start, end in MPII.skeleton:
            length_3d = np.linalg.norm(joints3d[end] - joints3d[start]) * example.pixels_per_unit
            assert np.linalg.norm(joints2d[end] - joints2d[start]) <= length_3d + 1e-6


def test_knees_bend_backward_and_elbows_only_flex(skeletons):
    body_left = np.array([1.0, 0.0, 0.0])
    for skeleton in skeletons:
        joints = skeleton.joints
        for side, joint in SIDES.items():
            thigh = joints[joint["knee"]] - joints[joint["hip"]]
            shin = joints[joint["ankle"]] - joints[joint["knee"]]
            knee = _angle_degrees(thigh, shin)
            assert 0 <= knee <= 145.001
            assert knee == pytest.approx(skeleton.knee_flexion[side], abs=1e-6)
            # Thigh x shin points to the body's left on both legs: the shin
            # swings backward (a mirrored knee would flip the sign).
            if knee > 5:
                assert np.dot(np.cross(thigh, shin), body_left) > 0, side
            upper = joints[joint["elbow"]] - joints[joint["shoulder"]]
            fore = joints[joint["wrist"]] - joints[joint["elbow"]]
            elbow = _angle_degrees(upper, fore)
            assert 0 <= elbow <= 145.001
            assert elbow == pytest.approx(skeleton.elbow_flexion[side], abs=1e-6)


def test_neck_and_head_tilt_stay_within_limits(skeletons):
    for skeleton in skeletons:
        joints = skeleton.joints
        spine = joints[THORAX] - joints[PELVIS]
        neck = joints[UPPER_NECK] - joints[THORAX]
        head = joints[HEAD_TOP] - joints[UPPER_NECK]
        assert _angle_degrees(spine, neck) <= 22
        assert _angle_degrees(neck, head) <= 33
        assert _angle_degrees(spine, [0, 1, 0]) <= 45  # leaning, never lying down


def test_left_and_right_sides_follow_the_facing_direction():
    # Facing the camera, the person's left hip is on the image right of the
    # right hip (relative to the body's up direction); seen from the back,
    # the other way round.
    for back_view_probability, expected_sign in ((0.0, 1.0), (1.0, -1.0)):
        figures = SyntheticFigures(image_size=IMAGE_SIZE, seed=9, back_view_probability=back_view_probability)
        for index in range(20):
            example = figures.render(index)
            joints = example.projected_joints
            up = joints[THORAX] - joints[PELVIS]
            right_to_left = joints[L_HIP] - joints[R_HIP]
            side = up[0] * right_to_left[1] - up[1] * right_to_left[0]
            assert np.sign(side) == expected_sign, index
            assert example.facing_camera == (expected_sign > 0)


def test_normalizer_is_the_head_box_size_and_scales_with_the_figure():
    small = SyntheticFigures(image_size=IMAGE_SIZE, seed=6, height_range=(0.4, 0.4))
    large = SyntheticFigures(image_size=IMAGE_SIZE, seed=6, height_range=(0.8, 0.8))
    ratios = []
    for index in range(20):
        small_example, large_example = small.render(index), large.render(index)
        assert small_example.record.normalizer > 0
        assert large_example.record.normalizer / small_example.record.normalizer == pytest.approx(2.0)
        # Head-box diagonal / (upper neck - head top) on the 3-D head: 1.63, as on MPII.
        skeleton = small_example.skeleton
        head_length = np.linalg.norm(skeleton.joints[HEAD_TOP] - skeleton.joints[UPPER_NECK])
        diagonal = small_example.record.normalizer / 0.6 / small_example.pixels_per_unit
        assert diagonal / head_length == pytest.approx(math.hypot(1.2, 1.1))
        # In the image the head can look shorter (tipped toward the camera), never longer.
        projected = small_example.projected_joints
        ratios.append(
            small_example.record.normalizer
            / 0.6
            / np.linalg.norm(projected[HEAD_TOP] - projected[UPPER_NECK])
        )
    assert min(ratios) >= math.hypot(1.2, 1.1) - 1e-6
    assert 1.5 <= np.median(ratios) <= 1.9
    # Head size relative to the person: about 0.6 * 1.63 * 0.12 of its height.
    person_height = 0.4 * IMAGE_SIZE
    assert 0.09 < small.render(0).record.normalizer / person_height < 0.16


def test_center_and_scale_frame_the_whole_figure(examples):
    for example in examples:
        record = example.record
        half_crop = 100 * record.scale  # crop side = 200 * scale
        box_x, box_y, box_w, box_h = record.box
        assert box_w > 0 and box_h > 0
        assert box_x >= 0 and box_y >= 0
        assert box_x + box_w <= IMAGE_SIZE - 1 + 1e-3 and box_y + box_h <= IMAGE_SIZE - 1 + 1e-3
        # The crop holds every joint with the 1.25 margin to spare.
        offsets = np.abs(example.projected_joints - record.center)
        assert offsets.max() <= half_crop / 1.25 + 1e-3
        assert max(box_w, box_h) <= 2 * half_crop / 1.25 + 1e-3


def test_write_custom_dataset_writes_images_and_matching_annotations(tmp_path):
    path = synthetic.write_custom_dataset(str(tmp_path), num_examples=3, seed=5, image_size=96, start=10)
    assert path == os.path.join(str(tmp_path), "annotations.json")
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    with open(path) as f:
        data = json.load(f)
    assert data["format"] == "tf_hourglass.custom.v1"
    assert data["keypoint_names"] == list(MPII.keypoint_names)
    assert sorted(sorted(p) for p in data["flip_pairs"]) == [
        [0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]
    ]  # fmt: skip
    assert data["skeleton"] == [list(p) for p in MPII.skeleton]
    assert data["pck_normalizer"] == "head"
    assert len(data["annotations"]) == 3

    figures = SyntheticFigures(image_size=96, seed=5)
    for offset, entry in enumerate(data["annotations"]):
        image, record = figures.generate(10 + offset)
        assert entry["image"] == f"images/{10 + offset:08d}.jpg"
        written = cv2.imread(os.path.join(str(tmp_path), entry["image"]))[:, :, ::-1]
        assert written.shape == (96, 96, 3)
        assert np.abs(written.astype(int) - image).mean() < 4  # JPEG quality 95, 4:4:4
        keypoints = np.array(entry["keypoints"])
        np.testing.assert_allclose(keypoints[:, :2], record.keypoints, atol=1e-3)
        expected_flags = np.where(record.has_gt, np.where(record.visible, 2, 1), 0)
        np.testing.assert_array_equal(keypoints[:, 2], expected_flags)
        np.testing.assert_allclose(entry["box"], record.box, atol=1e-3)
        np.testing.assert_allclose(entry["center"], record.center, atol=1e-3)
        assert entry["scale"] == pytest.approx(record.scale, abs=1e-6)
        assert entry["normalizer"] == pytest.approx(record.normalizer, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(image_size=(10, 10)), "(10, 10)"),
        (dict(seed=-1), "-1"),
        (dict(height_range=(0.9, 0.4)), "(0.9, 0.4)"),
        (dict(back_view_probability=1.5), "1.5"),
    ],
)
def test_invalid_options_raise_and_repeat_the_value(kwargs, received):
    with pytest.raises(ValueError, match=received.replace("(", r"\(").replace(")", r"\)")):
        SyntheticFigures(**kwargs)


def test_negative_index_raises():
    with pytest.raises(ValueError, match="-2"):
        SyntheticFigures(image_size=IMAGE_SIZE).generate(-2)
