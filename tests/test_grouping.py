"""Associative Embedding grouping (tf_hourglass.data.grouping) against the official parser.

Fixtures, made by running the official pose-ae-train code (commit
3c80a16bfce6bec8d4a9410287824d92d300e534, torch 2.13 CPU, munkres 1.0.12) in a
scratch environment outside the project:

* ``data/ae_grouping_official.npz``: 20 images (32x32 and 40x40, 17 joints,
  D = 1 or 2) of ``benchmarks/grouping_maps.crowd_maps`` crowds (0, 1, 2, 5,
  8, 12, 31 and 35 people; tag spacings 0.8-1.3 so the official cost's rounded
  distances tie; weak maxima and false detections; maps stored as float16 and
  parsed as their float32 values; no exact ties among candidate values, whose
  order torch.topk leaves unspecified). Per image: ``HeatmapParser(
  detection_val=0.1).parse`` with ``adjust=False`` (``parsed_i``) and with the
  default ``adjust=True`` (``adjusted_i``), test.py's scores (``scores_i``) and
  test.py's ``refine`` of every person (``refined_i``).
* ``data/ae_merge_official.npz``: test.py's ``multiperson`` merge (flip test;
  scales 2, 1, 0.5 or single scale) of random network outputs
  (``output_<case>_<call>``, last stack, 17 heatmaps then 17 tags; calls
  alternate image / mirror per scale), and the maps it hands to the parser
  (``dets_<case>``, ``tags_<case>``; empty when test.py finds nobody). Case 2
  has a summed heatmap above 10 at the tags' scale, case 3 at scale 0.5.
"""

from pathlib import Path

import numpy as np
import pytest

from tf_hourglass.data import grouping
from tf_hourglass.data.keypoint_specs import COCO

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def official():
    with np.load(DATA / "ae_grouping_official.npz") as data:
        return {key: data[key] for key in data.files}


def official_cases(official):
    for i in range(int(official["num_cases"])):
        heatmaps = official[f"heatmaps_{i}"].astype(np.float32)[None]
        tags = official[f"tags_{i}"].astype(np.float32)[None]
        yield i, heatmaps, tags


def test_fixture_covers_the_interesting_cases(official):
    counts = [len(official[f"parsed_{i}"]) for i in range(int(official["num_cases"]))]
    dims = {official[f"tags_{i}"].shape[-1] for i in range(int(official["num_cases"]))}
    assert len(counts) == 20 and 0 in counts and 1 in counts and max(counts) > 30 and dims == {1, 2}


def test_groups_the_same_people_as_the_official_parser(official):
    for i, heatmaps, tags in official_cases(official):
        (parsed,) = grouping.group_people(heatmaps, tags, detection_threshold=0.1, adjust=False)
        (adjusted,) = grouping.group_people(heatmaps, tags, detection_threshold=0.1)
        for ours, theirs in ((parsed, official[f"parsed_{i}"]), (adjusted, official[f"adjusted_{i}"])):
            assert ours.shape == theirs.shape, f"image {i}"
            np.testing.assert_allclose(ours[..., :2], theirs[..., :2], atol=0.01, err_msg=f"image {i}")
            np.testing.assert_allclose(ours[..., 2:], theirs[..., 2:], atol=1e-6, err_msg=f"image {i}")
        np.testing.assert_allclose(grouping.person_scores(adjusted), official[f"scores_{i}"], atol=1e-6)
        _, (scores,) = grouping.group_people(
            heatmaps, tags, return_scores=True, **grouping.TEST_SETTINGS
        )  # refined, scored before
        np.testing.assert_allclose(scores, official[f"scores_{i}"], atol=1e-6)


def test_a_batch_groups_each_image_as_alone(official):
    cases = [(heatmaps, tags) for i, heatmaps, tags in official_cases(official) if i in (3, 9)]
    batch = grouping.group_people(
        np.concatenate([c[0] for c in cases]), np.concatenate([c[1] for c in cases])
    )
    for people, (heatmaps, tags) in zip(batch, cases, strict=True):
        np.testing.assert_array_equal(people, grouping.group_people(heatmaps, tags)[0])


def test_refines_as_official_test_py_except_its_row_clamp(official):
    """test.py's refine clamps the row below at K - 1 = 16 instead of H - 1, so for refined
    joints at rows >= 16 its y may be 0.5 off; everything else is equal."""
    num_off = 0
    for i, heatmaps, tags in official_cases(official):
        (refined,) = grouping.group_people(heatmaps, tags, **grouping.TEST_SETTINGS)
        theirs = official[f"refined_{i}"]
        assert refined.shape == theirs.shape
        np.testing.assert_allclose(refined[..., 0], theirs[..., 0], atol=0.01)
        np.testing.assert_allclose(refined[..., 2:], theirs[..., 2:], atol=1e-6)
        off = np.abs(refined[..., 1] - theirs[..., 1]) > 0.01
        was_missing = official[f"adjusted_{i}"][..., 2] == 0
        assert np.all(was_missing[off]) and np.all(np.floor(refined[..., 1][off]) >= 16)
        np.testing.assert_allclose(np.abs(refined[..., 1] - theirs[..., 1])[off], 0.5)
        num_off += off.sum()
    assert num_off > 0  # the fixture does exercise the difference


def test_suppress_non_maxima_keeps_local_maxima_and_plateaus():
    heatmap = np.array(
        [[0.1, 0.5, 0.2, 0.0], [0.3, 0.4, 0.0, 0.6], [0.0, 0.0, 0.0, 0.6], [0.9, 0.0, 0.2, 0.0]], np.float32
    )
    expected = np.zeros((4, 4), np.float32)
    expected[0, 1], expected[1, 3], expected[2, 3], expected[3, 0] = 0.5, 0.6, 0.6, 0.9
    np.testing.assert_array_equal(
        grouping.suppress_non_maxima(heatmap[None, :, :, None])[0, :, :, 0], expected
    )


def test_find_candidates_takes_the_strongest_maxima_lower_index_first_on_ties():
    heatmap = np.array(
        [[0.1, 0.5, 0.2, 0.0], [0.3, 0.4, 0.0, 0.6], [0.0, 0.0, 0.0, 0.6], [0.9, 0.0, 0.2, 0.0]], np.float32
    )
    tags = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    values, columns, rows, candidate_tags = grouping.find_candidates(heatmap[None, :, :, None], tags, 3)
    np.testing.assert_array_equal(values[0, 0], np.float32([0.9, 0.6, 0.6]))
    np.testing.assert_array_equal(columns[0, 0], [0, 3, 3])
    np.testing.assert_array_equal(rows[0, 0], [3, 1, 2])
    np.testing.assert_array_equal(candidate_tags[0, 0, :, 0], [12, 7, 11])
    # k = 2 cuts between the two equal 0.6 values: the lower index (row 1) is kept.
    values, columns, rows, _ = grouping.find_candidates(heatmap[None, :, :, None], tags, 2)
    assert values[0, 0].tolist() == [np.float32(0.9), np.float32(0.6)] and rows[0, 0].tolist() == [3, 1]
    # k = 6 cuts inside the suppressed zeros: the lowest-index zeros fill up.
    values, columns, rows, _ = grouping.find_candidates(heatmap[None, :, :, None], tags, 6)
    assert (rows[0, 0] * 4 + columns[0, 0]).tolist() == [12, 7, 11, 1, 0, 2]
    values, columns, rows, _ = grouping.find_candidates(heatmap[None, :, :, None], tags, 30)
    assert values.shape == (1, 1, 16) and values[0, 0, 3] == 0.5 and values[0, 0, 4] == 0


@pytest.mark.parametrize(
    "cost, expected",
    [
        # Both are optimal; munkres 1.0.12 picks the first, scipy's linear_sum_assignment the second
        # (row 0 joins person 0 and row 2 starts a new person).
        ([[99.5, 199.5, 1e10], [-0.7, -0.7, 1e10], [99.5, 99.5, 1e10]], [(0, 2), (1, 1), (2, 0)]),
        ([[199.5, 199.5, 99.5], [99.5, 199.5, -0.5], [99.3, 99.3, -0.7]], [(0, 1), (1, 0), (2, 2)]),
        ([[0.0, 0.0], [0.0, 0.0]], [(0, 0), (1, 1)]),
        ([[3.0, 1.0, 2.0]], [(0, 1)]),
        ([[1.0], [0.0]], [(1, 0)]),
    ],
)
def test_munkres_assignment_breaks_ties_as_the_munkres_package(cost, expected):
    assert grouping.munkres_assignment(np.array(cost)) == expected


def test_munkres_assignment_refuses_non_finite_costs():
    with pytest.raises(ValueError, match=r"finite .* shape \(1, 2\)"):
        grouping.munkres_assignment(np.array([[1.0, np.inf]]))


def _candidates(rows_of_candidates):
    """(K, M) values, columns, rows and (K, M, 1) tags from per-joint lists of (value, x, y, tag)."""
    array = np.array(rows_of_candidates, np.float64)
    return (
        array[..., 0].astype(np.float32),
        array[..., 1].astype(np.int64),
        array[..., 2].astype(np.int64),
        array[..., 3:].astype(np.float32),
    )


MATCH_INPUT = _candidates(
    [
        [(0.9, 1, 1, 0.0), (0.8, 5, 5, 3.0), (0.0, 0, 0, 0.0), (0.0, 0, 0, 0.0)],
        [(0.7, 6, 6, 2.8), (0.6, 9, 9, 10.0), (0.5, 2, 2, 0.4), (0.05, 3, 3, 0.0)],
    ]
)


def test_match_candidates_assigns_by_tag_and_starts_new_people():
    people = grouping.match_candidates(*MATCH_INPUT, joint_order=(0, 1))
    expected = np.zeros((3, 2, 4), np.float32)
    expected[0] = [[1, 1, 0.9, 0.0], [2, 2, 0.5, 0.4]]
    expected[1] = [[5, 5, 0.8, 3.0], [6, 6, 0.7, 2.8]]
    expected[2, 1] = [9, 9, 0.6, 10.0]
    np.testing.assert_allclose(people, expected, atol=1e-6)


def test_match_candidates_skips_joint_types_once_max_people_exist():
    full = grouping.match_candidates(*MATCH_INPUT, max_people=2, joint_order=(0, 1))
    assert full.shape == (2, 2, 4) and np.all(full[:, 1] == 0)
    not_skipped = grouping.match_candidates(
        *MATCH_INPUT, max_people=2, skip_when_full=False, joint_order=(0, 1)
    )
    assert not_skipped.shape == (3, 2, 4) and not_skipped[0, 1, 2] == np.float32(0.5)


def test_adjust_moves_a_quarter_pixel_toward_the_larger_neighbour():
    heatmap = np.zeros((3, 4, 1), np.float32)
    heatmap[1, 1], heatmap[1, 2], heatmap[1, 0], heatmap[0, 1], heatmap[2, 1] = 0.9, 0.3, 0.1, 0.2, 0.2
    people = np.array([[[1, 1, 0.9, 0.5]], [[0, 0, 0.0, 0.0]]], np.float32)
    adjusted = grouping.adjust_people(people, heatmap)
    # right 0.3 > left 0.1: x = 1 + 0.5 + 0.25; below == above: y = 1 + 0.5 - 0.25; missing joints stay 0.
    np.testing.assert_array_equal(adjusted, np.float32([[[1.75, 1.25, 0.9, 0.5]], [[0, 0, 0, 0]]]))


def test_refine_fills_missing_joints_near_the_persons_tag():
    heatmaps = np.zeros((20, 20, 17), np.float32)
    tags = np.zeros((20, 20, 17, 1), np.float32)
    heatmaps[3, 2, 0], tags[3, 2, 0] = 0.9, 5.0  # the person's one joint, tag 5
    heatmaps[5, 5, 1], tags[5, 5, 1] = 0.8, 0.0  # strong but 5 tag units away: 0.8 - 5
    heatmaps[18, 10, 1], tags[18, 10, 1] = 0.5, 5.2  # weaker but near: 0.5 - round(0.2)
    heatmaps[18, 11, 1], heatmaps[18, 9, 1], heatmaps[19, 10, 1], heatmaps[17, 10, 1] = 0.3, 0.1, 0.4, 0.2
    person = np.zeros((1, 17, 4), np.float32)
    person[0, 0] = [2.25, 3.75, 0.9, 5.0]
    refined = grouping.refine_people(person, heatmaps, tags)
    # x = 10 + 0.5 + 0.25 (right > left), y = 18 + 0.5 + 0.25 (below 0.4 > above 0.2); value 1, tag 0.
    # (Official test.py compares row min(19, 16) = 16 with row 17 instead, and would give y = 18.25.)
    np.testing.assert_array_equal(refined[0, 1], [10.75, 18.75, 1.0, 0.0])
    np.testing.assert_array_equal(refined[0, 0], person[0, 0])
    assert np.all(refined[0, 2:] == 0)  # zero heatmaps: nothing above 0 to take


def test_an_image_with_nobody_gives_no_people():
    people = grouping.group_people(np.zeros((2, 16, 16, 17)), np.zeros((2, 16, 16, 17)))
    assert [p.shape for p in people] == [(0, 17, 4), (0, 17, 4)]
    assert grouping.person_scores(people[0]).shape == (0,)


def test_person_scores_are_the_mean_detection_value_over_all_joints():
    people = np.zeros((2, 4, 4), np.float32)
    people[0, :2, 2] = [0.8, 0.4]
    people[1, :, 2] = 1.0
    np.testing.assert_allclose(grouping.person_scores(people), [0.3, 1.0])


@pytest.mark.parametrize(
    "heatmaps_shape, tags_shape, message",
    [
        ((8, 8, 17), (8, 8, 17), r"heatmaps .* got shape \(8, 8, 17\)"),
        ((1, 8, 8, 17), (1, 8, 8, 16), r"tags .* got shape \(1, 8, 8, 16\)"),
        ((1, 8, 8, 17), (1, 8, 8, 17, 2, 1), r"tags .* got shape \(1, 8, 8, 17, 2, 1\)"),
    ],
)
def test_bad_shapes_raise_naming_the_argument_and_shape(heatmaps_shape, tags_shape, message):
    with pytest.raises(ValueError, match=message):
        grouping.group_people(np.zeros(heatmaps_shape), np.zeros(tags_shape))


def test_refine_without_adjust_is_refused():
    with pytest.raises(ValueError, match="adjust=False"):
        grouping.group_people(np.zeros((1, 8, 8, 17)), np.zeros((1, 8, 8, 17)), adjust=False, refine=True)


def test_coco_flip_permutation_is_the_official_flip_ref():
    # pose-ae-train data/coco_pose/ref.py: flipRef = [i-1 for i in [1,3,2,5,4,7,6,9,8,11,10,13,12,15,14,17,16]]
    official_flip_ref = [i - 1 for i in [1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 17, 16]]
    assert list(COCO.flip_permutation()) == official_flip_ref


def test_unflip_maps_mirrors_columns_and_swaps_joints():
    maps = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)  # (N, H, W, K): value = 3 * column + joint
    unflipped = grouping.unflip_maps(maps, [1, 0, 2])
    # Column j of the result is column 2 - j of the mirror; its joint 0 is the mirror's joint 1.
    np.testing.assert_array_equal(unflipped[0, 0], [[7, 6, 8], [4, 3, 5], [1, 0, 2]])


def test_resize_maps_interpolates_between_pixel_centres():
    maps = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2, 1)
    resized = grouping.resize_maps(maps, 1, 4)
    # Output centres at input positions -0.25, 0.25, 0.75, 1.25 (clamped to the edges).
    np.testing.assert_allclose(resized[0, 0, :, 0], [0.0, 1.0, 3.0, 4.0])


def test_combine_test_outputs_equals_official_test_py_merge():
    with np.load(DATA / "ae_merge_official.npz") as data:
        for case, multi in ((0, True), (1, False), (2, True), (3, True)):
            num_scales = 3 if multi else 1
            outputs = [data[f"output_{case}_{i}"].astype(np.float32) for i in range(2 * num_scales)]
            heatmaps = [o[None, :17].transpose(0, 2, 3, 1) for o in outputs[0::2]]
            flipped = [o[None, :17].transpose(0, 2, 3, 1) for o in outputs[1::2]]
            tag_scale = 1 if multi else 0
            tags = outputs[2 * tag_scale][None, 17:].transpose(0, 2, 3, 1)
            flipped_tags = outputs[2 * tag_scale + 1][None, 17:].transpose(0, 2, 3, 1)
            merged, merged_tags = grouping.combine_test_outputs(
                heatmaps, flipped, tags, flipped_tags, COCO.flip_permutation(), tag_scale_index=tag_scale
            )
            if data[f"dets_{case}"].size == 0:  # test.py found nobody: it skipped the tags' scale
                assert case == 2 and np.all(merged == 0)
                assert all(len(p) == 0 for p in grouping.group_people(merged, merged_tags))
                continue
            np.testing.assert_allclose(merged[0].transpose(2, 0, 1), data[f"dets_{case}"], atol=1e-6)
            np.testing.assert_allclose(merged_tags[0].transpose(2, 0, 1, 3), data[f"tags_{case}"], atol=1e-5)
