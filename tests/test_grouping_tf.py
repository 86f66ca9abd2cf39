"""Associative Embedding grouping in graph ops (tf_hourglass.data.grouping_tf) against the NumPy parser.

The graph's assignments are its own (a Hungarian minimum-cost one, or greedy)
where the NumPy parser, like the official code, uses Munkres: with the NumPy
parser's assignment swapped for the greedy rule the two must agree exactly,
stage by stage; the Hungarian one must reach the least total cost; against
Munkres itself we count where the people agree exactly (rounded costs tie
often, and ties may resolve differently; ``benchmarks/grouping_ap.py``
measures the AP).
"""

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.grouping_maps import crowd_maps
from tf_hourglass.data import grouping, grouping_tf

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def official():
    with np.load(DATA / "ae_grouping_official.npz") as data:
        cases = []
        for i in range(int(data["num_cases"])):
            tags = data[f"tags_{i}"].astype(np.float32)
            tags = tags[..., None] if tags.ndim == 3 else tags
            cases.append((data[f"heatmaps_{i}"].astype(np.float32)[None], tags[None]))
        return cases


def greedy_assignment(cost):
    """The graph's rule in NumPy: the least cost pair first, then the least among free rows and columns."""
    cost = np.array(cost, np.float64)
    pairs = []
    while np.isfinite(cost).any():
        row, column = np.unravel_index(np.argmin(cost), cost.shape)
        pairs.append((int(row), int(column)))
        cost[row, :] = np.inf
        cost[:, column] = np.inf
    return sorted(pairs)


def numpy_people(heatmaps, tags, max_people=30):
    """test.py's people from the NumPy parser, strongest first (stable), at most ``max_people``."""
    (people,), (scores,) = grouping.group_people(heatmaps, tags, return_scores=True, **grouping.TEST_SETTINGS)
    order = np.argsort(-scores, kind="stable")[:max_people]
    return people[order], scores[order]


_GRAPHS = {}


def graph_people(heatmaps, tags, assignment="hungarian"):
    """The graph parser's people of one image (unpadded), traced once per shape."""
    key = (*heatmaps.shape, *tags.shape, assignment)
    if key not in _GRAPHS:
        _GRAPHS[key] = tf.function(
            lambda h, t: grouping_tf.group_people(h, t, assignment=assignment), autograph=False
        )
    people, scores, count = _GRAPHS[key](tf.constant(heatmaps), tf.constant(tags))
    count = int(count[0])
    return people[0, :count].numpy(), scores[0, :count].numpy()


def crowds(num_images, seed=0, size=48):
    rng = np.random.default_rng(seed)
    for _ in range(num_images):
        heatmaps, tags = crowd_maps(
            rng, size=size, num_people=int(rng.integers(0, 20)), tag_dim=2, tag_spacing=rng.uniform(0.8, 2.0)
        )
        yield heatmaps[None], tags[None]


def test_suppression_and_candidates_equal_numpy(official):
    for heatmaps, tags in official[:6]:
        np.testing.assert_array_equal(
            grouping_tf.suppress_non_maxima(heatmaps).numpy(), grouping.suppress_non_maxima(heatmaps)
        )
        ours = grouping_tf.find_candidates(heatmaps, tags, 30)
        theirs = grouping.find_candidates(heatmaps, tags, 30)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a.numpy(), b)


def fixture_of_one_shape(official):
    """The official fixture's 32x32 images with D = 2 (one shape: one trace)."""
    return [(h, t) for h, t in official if h.shape[1] == 32 and t.shape[-1] == 2]


def test_equals_numpy_parser_with_the_same_greedy_assignment(official, monkeypatch):
    monkeypatch.setattr(grouping, "munkres_assignment", greedy_assignment)
    heatmaps, tags = crowd_maps(np.random.default_rng(5), size=48, num_people=35, tag_dim=2, tag_spacing=1.5)
    cases = fixture_of_one_shape(official) + list(crowds(6)) + [(heatmaps[None], tags[None])]
    for i, (heatmaps, tags) in enumerate(cases):
        expected, expected_scores = numpy_people(heatmaps, tags)
        people, scores = graph_people(heatmaps, tags, "greedy")
        assert people.shape == expected.shape, f"case {i}"
        np.testing.assert_allclose(people, expected, atol=1e-5, err_msg=f"case {i}")
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6, err_msg=f"case {i}")
    (everyone,) = grouping.group_people(*cases[-1], **grouping.TEST_SETTINGS)
    assert (
        len(everyone) > 30 and len(graph_people(*cases[-1], "greedy")[0]) == 30
    )  # the strongest 30 are kept


@pytest.mark.parametrize("seed", range(4))
def test_min_cost_assignment_reaches_the_least_total_cost(seed):
    rng = np.random.default_rng(seed)
    rows, columns = 4, 6
    # Rounded costs as the official ones, with ties, and fewer rows taking part than there are.
    cost = np.round(rng.uniform(0, 2, (rows, columns))) * 100 - rng.uniform(0, 1, (rows, columns))
    for num_rows in (rows, 2):
        assigned = grouping_tf.min_cost_assignment(tf.constant(cost), num_rows).numpy()
        assert np.all(assigned[num_rows:] == -1) and len(set(assigned[:num_rows])) == num_rows
        best = min(
            cost[np.arange(num_rows), list(chosen)].sum()
            for chosen in itertools.permutations(range(columns), num_rows)
        )
        assert cost[np.arange(num_rows), assigned[:num_rows]].sum() == pytest.approx(best, abs=1e-9)


def test_agreement_with_munkres_on_the_official_fixture_and_crowds(official):
    """Measured: the official fixture's 32x32 two-tag images (built so that rounded costs tie) and 10
    crowds (tags 0.8 to 2 apart) give exactly Munkres' people on 5 of 6 and 7 of 10 images."""
    exact = {"fixture": 0, "crowds": 0}
    for name, cases in (("fixture", fixture_of_one_shape(official)), ("crowds", list(crowds(10, seed=1)))):
        for heatmaps, tags in cases:
            expected, _ = numpy_people(heatmaps, tags)
            people, _ = graph_people(heatmaps, tags)
            exact[name] += people.shape == expected.shape and np.allclose(people, expected, atol=1e-5)
    print(f"exact agreement with Munkres: {exact['fixture']}/6 fixture images, {exact['crowds']}/10 crowds")
    assert exact["fixture"] >= 5 and exact["crowds"] >= 7


def test_nobody_gives_zero_people_and_zero_padding():
    heatmaps = np.full((2, 16, 16, 17), 0.05, np.float32)
    people, scores, count = grouping_tf.group_people(heatmaps, np.zeros_like(heatmaps))
    assert people.shape == (2, 30, 17, 4) and scores.shape == (2, 30)
    np.testing.assert_array_equal(count.numpy(), [0, 0])
    assert not np.any(people.numpy()) and not np.any(scores.numpy())


def test_refine_fills_a_missing_joint_near_the_persons_tag():
    heatmaps = np.zeros((1, 16, 16, 3), np.float32)
    tags = np.zeros((1, 16, 16, 3, 1), np.float32)
    heatmaps[0, 4, 5, 0] = heatmaps[0, 6, 7, 1] = 0.9
    tags[0, 4, 5, 0] = tags[0, 6, 7, 1] = 3.0
    heatmaps[0, 10, 2, 2] = 0.05  # below the detection threshold: only refine finds it
    heatmaps[0, 12, 12, 2] = 0.06  # stronger, but its tag (0) is 3 from the person's
    tags[0, 10, 2, 2] = 3.0
    people, scores, count = grouping_tf.group_people(heatmaps, tags)
    assert int(count[0]) == 1
    np.testing.assert_allclose(
        people[0, 0, :, :3].numpy(), [[5.25, 4.25, 0.9], [7.25, 6.25, 0.9], [2.25, 10.25, 1]]
    )
    np.testing.assert_allclose(scores[0, 0].numpy(), 0.6)


def test_bad_shapes_and_joint_orders_raise():
    with pytest.raises(ValueError, match=r"static H, W, K"):
        grouping_tf.group_people(np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"permutation of 0 .. 2, got \(0, 1\)"):
        grouping_tf.group_people(
            np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3)), joint_order=(0, 1)
        )
