"""Associative Embedding targets: heatmaps and keypoint references as the official code, the COCO loss mask."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.data.multi_person_targets import (
    MAX_PEOPLE,
    coco_loss_mask,
    keypoint_refs,
    multi_person_heatmaps,
    official_sigma,
)

FIXTURES = Path(__file__).resolve().parent / "data"


def reference_heatmaps(keypoints, height, width, sigma):
    """Loop reference from the official GenerateHeatmap: a truncated cell, a fixed window, merged by max."""
    num_keypoints = keypoints.shape[1]
    heatmaps = np.zeros((height, width, num_keypoints), np.float64)
    reach = 3 * sigma + 1
    length = math.ceil(6 * sigma + 3)
    for person in keypoints:
        for k, (x, y, visibility) in enumerate(person):
            cx, cy = int(x), int(y)
            if visibility <= 0 or not (0 <= cx < width and 0 <= cy < height):
                continue
            left, top = int(cx - reach), int(cy - reach)
            right, bottom = int(cx + reach + 1), int(cy + reach + 1)
            for py in range(max(top, 0), min(bottom, height)):
                for px in range(max(left, 0), min(right, width)):
                    if px - left >= length or py - top >= length:
                        continue
                    value = math.exp(-((px - left - reach) ** 2 + (py - top - reach) ** 2) / (2 * sigma**2))
                    heatmaps[py, px, k] = max(heatmaps[py, px, k], value)
    return heatmaps


def reference_refs(keypoints, height, width, max_people):
    """Loop reference from the official KeypointsRef, with the NHWC index (y * W + x) * K + k."""
    num_keypoints = keypoints.shape[1]
    refs = np.zeros((max_people, num_keypoints, 2), np.int64)
    for p, person in enumerate(keypoints[:max_people]):
        slot = 0
        for k, (x, y, visibility) in enumerate(person):
            cx, cy = int(x), int(y)
            if visibility > 0 and 0 <= cx < width and 0 <= cy < height:
                refs[p, slot] = ((cy * width + cx) * num_keypoints + k, 1)
                slot += 1
    return refs


def random_people(rng, num_people, num_keypoints, height, width):
    keypoints = np.zeros((num_people, num_keypoints, 3))
    keypoints[..., 0] = rng.uniform(-5, width + 5, (num_people, num_keypoints))
    keypoints[..., 1] = rng.uniform(-5, height + 5, (num_people, num_keypoints))
    keypoints[..., 2] = rng.choice([0, 1, 2], (num_people, num_keypoints))
    return keypoints


def official_targets():
    data = np.load(FIXTURES / "official_ae_targets.npz")
    return [
        (data[f"keypoints_{c}"], data[f"heatmaps_{c}"], data[f"refs_{c}"])
        for c in range(len([key for key in data.files if key.startswith("keypoints_")]))
    ]


@pytest.mark.parametrize("case", range(4))
def test_heatmaps_equal_the_official_generate_heatmap(case):
    keypoints, official, _ = official_targets()[case]
    size = official.shape[1]
    heatmaps = multi_person_heatmaps(keypoints, (size, size)).numpy()
    np.testing.assert_allclose(heatmaps, official.transpose(1, 2, 0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", range(4))
def test_keypoint_refs_equal_the_official_keypoints_ref_with_the_nhwc_index(case):
    keypoints, _, official = official_targets()[case]
    num_keypoints, size = keypoints.shape[1], official_targets()[case][1].shape[1]
    k, rest = np.divmod(official[..., 0], size * size)
    y, x = np.divmod(rest, size)
    expected = np.stack(
        [np.where(official[..., 1] > 0, (y * size + x) * num_keypoints + k, 0), official[..., 1]], -1
    )
    refs = keypoint_refs(keypoints, (size, size)).numpy()
    assert refs.dtype == np.int32 and refs.shape == (MAX_PEOPLE, num_keypoints, 2)
    np.testing.assert_array_equal(refs, expected)


@pytest.mark.parametrize(("height", "width", "sigma"), [(48, 64, None), (32, 32, 1.5), (20, 36, 0.75)])
def test_targets_equal_the_loop_reference_for_random_people(height, width, sigma):
    rng = np.random.default_rng(height + width)
    keypoints = random_people(rng, 7, 5, height, width)
    sigma_used = official_sigma((height, width)) if sigma is None else sigma
    heatmaps = multi_person_heatmaps(keypoints, (height, width), sigma).numpy()
    np.testing.assert_allclose(
        heatmaps, reference_heatmaps(keypoints, height, width, sigma_used), rtol=1e-6, atol=1e-7
    )
    refs = keypoint_refs(keypoints, (height, width), max_people=10).numpy()
    np.testing.assert_array_equal(refs, reference_refs(keypoints, height, width, 10))


def test_the_official_sigma_is_the_side_over_64_and_peaks_at_the_cell():
    assert official_sigma((128, 128)) == 2.0
    keypoints = np.array([[[10.9, 20.2, 2]]])
    heatmaps = multi_person_heatmaps(keypoints, (128, 128)).numpy()
    assert heatmaps[20, 10, 0] == 1.0
    assert heatmaps[20, 11, 0] == pytest.approx(math.exp(-1 / 8))
    # The 15 x 15 official window: 7 pixels each side, nothing beyond.
    assert heatmaps[20, 17, 0] == pytest.approx(math.exp(-49 / 8)) and heatmaps[20, 18, 0] == 0
    assert heatmaps[20, 3, 0] > 0 and heatmaps[20, 2, 0] == 0


def test_ref_index_selects_the_joint_tag_of_an_nhwc_map():
    height, width, num_keypoints = 6, 9, 4
    tag_map = np.arange(height * width * num_keypoints).reshape(height, width, num_keypoints)
    keypoints = np.array([[[2.5, 4.0, 1], [0, 0, 0], [8.9, 0.3, 2], [3.0, 5.99, 1]]])
    refs = keypoint_refs(keypoints, (height, width), max_people=2).numpy()
    # Person 0's referenced joints are packed first: joints 0, 2, 3.
    np.testing.assert_array_equal(refs[0, :3, 0], [tag_map[4, 2, 0], tag_map[0, 8, 2], tag_map[5, 3, 3]])
    np.testing.assert_array_equal(refs[0, :, 1], [1, 1, 1, 0])
    np.testing.assert_array_equal(refs[1], 0)


def test_no_people_give_zero_targets():
    empty = np.zeros((0, 17, 3))
    heatmaps = multi_person_heatmaps(empty, (64, 64)).numpy()
    assert heatmaps.shape == (64, 64, 17) and not heatmaps.any()
    refs = keypoint_refs(empty, (64, 64)).numpy()
    assert refs.shape == (30, 17, 2) and not refs.any()


def test_people_beyond_max_people_are_drawn_but_not_referenced():
    rng = np.random.default_rng(1)
    keypoints = random_people(rng, 4, 3, 64, 64)
    keypoints[3, 0] = (5.0, 6.0, 2)  # only the dropped person has this joint here
    heatmaps = multi_person_heatmaps(keypoints, (64, 64)).numpy()
    assert heatmaps[6, 5, 0] == 1.0
    refs = keypoint_refs(keypoints, (64, 64), max_people=3).numpy()
    np.testing.assert_array_equal(refs, reference_refs(keypoints[:3], 64, 64, 3))


def test_targets_run_in_tf_data_with_a_variable_number_of_people():
    rng = np.random.default_rng(2)
    people = [random_people(rng, n, 17, 64, 64).astype(np.float32) for n in (0, 3, 31)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(people), output_signature=tf.TensorSpec((None, 17, 3), tf.float32)
    ).map(lambda kp: (multi_person_heatmaps(kp, (64, 64)), keypoint_refs(kp, (64, 64))))
    assert dataset.element_spec[0].shape == (64, 64, 17) and dataset.element_spec[1].shape == (30, 17, 2)
    for (heatmaps, refs), keypoints in zip(dataset, people, strict=True):
        np.testing.assert_allclose(
            heatmaps.numpy(), reference_heatmaps(keypoints, 64, 64, 1.0), rtol=1e-6, atol=1e-7
        )
        np.testing.assert_array_equal(refs.numpy(), reference_refs(keypoints, 64, 64, 30))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"\(people, K, 3\).*\(4, 3\)"):
        multi_person_heatmaps(np.zeros((4, 3)), (64, 64))
    with pytest.raises(ValueError, match="sigma=0.0"):
        multi_person_heatmaps(np.zeros((1, 4, 3)), (64, 64), sigma=0)
    with pytest.raises(ValueError, match="max_people=0"):
        keypoint_refs(np.zeros((1, 4, 3)), (64, 64), max_people=0)


def rle_counts(binary_mask):
    """Uncompressed COCO RLE: run lengths in column-major order, starting with a run of zeros."""
    flat = binary_mask.flatten(order="F").astype(int)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    return ([0] if flat[0] else []) + runs.tolist()


def test_mask_zeroes_people_without_keypoints_on_the_coco_sample(shared_data):
    pytest.importorskip("pycocotools")
    coco = json.loads((shared_data / "coco" / "person_keypoints_sample.json").read_text())
    checked = 0
    for image in coco["images"]:
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        size = (image["height"], image["width"])
        mask = coco_loss_mask(annotations, size)
        assert mask.shape == size and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
        hidden = [a for a in annotations if a["num_keypoints"] == 0]
        # The zeroed area is the hidden people's segment area (COCO's "area" field).
        assert (mask == 0).sum() == pytest.approx(sum(a["area"] for a in hidden), rel=0.05, abs=1)
        for a in hidden:  # the hidden person's box holds the zeroes
            x, y, w, h = a["bbox"]
            box = mask[int(y) : math.ceil(y + h), int(x) : math.ceil(x + w)]
            assert (box == 0).sum() >= 0.9 * a["area"]
            checked += 1
        # The official mask (crowds only) keeps everyone here: the sample has no crowd.
        assert coco_loss_mask(annotations, size, mask_people_without_keypoints=False).min() == 1.0
    assert checked == 2


@pytest.mark.parametrize("encoding", ["uncompressed_rle", "compressed_rle", "polygon"])
def test_mask_zeroes_crowd_segments_in_every_coco_encoding(encoding):
    coco_mask = pytest.importorskip("pycocotools.mask")
    height, width = 30, 40
    crowd = np.zeros((height, width), np.uint8)
    crowd[5:12, 8:20] = 1
    if encoding == "uncompressed_rle":
        segmentation = {"size": [height, width], "counts": rle_counts(crowd)}
    elif encoding == "compressed_rle":
        segmentation = coco_mask.encode(np.asfortranarray(crowd))
    else:  # pixel i covers [i, i + 1) in COCO polygons
        segmentation = [[8, 5, 20, 5, 20, 12, 8, 12]]
    annotations = [
        {"iscrowd": 1, "num_keypoints": 0, "segmentation": segmentation},
        {"iscrowd": 0, "num_keypoints": 5, "segmentation": [[25, 20, 35, 20, 35, 28, 25, 28]]},
    ]
    mask = coco_loss_mask(annotations, (height, width))
    np.testing.assert_array_equal(mask, 1 - crowd)


def test_mask_needs_pycocotools_and_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(ImportError, match=r"pip install 'tf_hourglass\[coco\]'"):
        coco_loss_mask([], (4, 4))
