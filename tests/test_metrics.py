"""Tests of tf_hourglass.evaluation.metrics (MPII PCKh, PCK, COCO OKS AP)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from tf_hourglass.evaluation import metrics

# ../shared/data from the project root (absent in a fresh clone outside CI).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (needs ../shared/data)")
    return path


def _mpii_people(n=3, head=10.0):
    """n persons, 16 joints on a grid, all annotated, head size `head`."""
    gt = np.stack([np.stack([np.arange(16) * 20.0, np.full(16, 50.0 * i)], -1) for i in range(n)])
    return gt, np.ones((n, 16), bool), np.full(n, head)


# ----------------------------------------------------------------------------
# MPII PCKh
# ----------------------------------------------------------------------------


def test_mpii_pckh_perfect_predictions_score_100():
    gt, has_gt, head = _mpii_people()
    table = metrics.mpii_pckh(gt, gt, has_gt, head)
    assert list(table) == list(metrics.MPII_COLUMNS)
    assert all(value == 100.0 for value in table.values())


def test_mpii_pckh_columns_follow_the_official_kit():
    # 2 persons. Make chosen joints wrong by moving them 10 head sizes away.
    gt, has_gt, head = _mpii_people(n=2)
    pred = gt.copy()
    wrong = [(0, 9), (0, 10), (1, 10), (0, 0), (0, 6), (1, 7)]  # head_top, r_wrist x2, ...
    for person, joint in wrong:
        pred[person, joint, 0] += 100.0
    has_gt[1, 8] = False  # person 1's upper neck is not annotated: skipped.
    table = metrics.mpii_pckh(pred, gt, has_gt, head)

    # Head = mean of per-joint PCKh of upper neck (1/1 = 100) and head top (1/2 = 50).
    assert table["Head"] == pytest.approx(75.0)
    # Wrist = (r_wrist 0/2 + l_wrist 2/2) / 2.
    assert table["Wrist"] == pytest.approx(50.0)
    # Ankle = (r_ankle 1/2 + l_ankle 2/2) / 2.
    assert table["Ankle"] == pytest.approx(75.0)
    assert table["Shoulder"] == table["Elbow"] == table["Hip"] == table["Knee"] == 100.0
    # UBody pools wrists, elbows, shoulders: 12 pairs, 2 wrong.
    assert table["UBody"] == pytest.approx(100.0 * 10 / 12)
    # Total pools the 14 kept joints (pelvis, thorax wrong but ignored):
    # 28 pairs - 1 missing neck = 27 evaluated; wrong: head_top, 2 r_wrist, r_ankle.
    assert table["Total"] == pytest.approx(100.0 * 23 / 27)
    per_joint = metrics.mpii_pckh_per_joint(pred, gt, has_gt, head)
    assert per_joint["pelvis"] == 50.0 and per_joint["thorax"] == 50.0


def test_mpii_pckh_threshold_is_inclusive_and_scaled_by_head_size():
    gt, has_gt, head = _mpii_people(n=1, head=10.0)
    pred = gt.copy()
    pred[..., 0] += 5.0  # exactly 0.5 head sizes
    assert metrics.mpii_pckh(pred, gt, has_gt, head)["Total"] == 100.0
    pred[..., 0] += 1e-6
    assert metrics.mpii_pckh(pred, gt, has_gt, head)["Total"] == 0.0
    assert metrics.mpii_pckh(pred, gt, has_gt, head * 2, threshold=0.25)["Total"] == 0.0
    assert metrics.mpii_pckh(pred, gt, has_gt, head * 2, threshold=0.3)["Total"] == 100.0


def test_mpii_pckh_nan_predictions_are_wrong_and_unusable_persons_skipped():
    gt, has_gt, head = _mpii_people(n=3)
    pred = gt.copy()
    pred[0, 0] = np.nan  # counts, as a miss (the kit sets NaN predictions to inf)
    gt[1, 1] = np.nan  # no ground truth there ...
    has_gt[1, 1] = False  # ... and flagged as such
    head[2] = np.nan  # person 2 has no head size: skipped whole
    pred[2] += 1000.0
    table = metrics.mpii_pckh(pred, gt, has_gt, head)
    assert table["Ankle"] == pytest.approx(0.5 * (50.0 + 100.0))
    assert table["Total"] == pytest.approx(100.0 * 26 / 27)


def test_mpii_head_size_matches_the_kit():
    boxes = np.array([[[914.0, 79.0], [1031.0, 237.0]]])
    assert metrics.mpii_head_size(boxes) == pytest.approx(0.6 * np.hypot(117.0, 158.0))


def test_curve_auc_is_the_mean_height_of_the_curve():
    t = metrics.MPII_CURVE_THRESHOLDS
    assert t[10] == 0.1 and t[-1] == 0.5 and len(t) == 51
    assert metrics.curve_auc(np.full(51, 100.0)) == pytest.approx(100.0)
    assert metrics.curve_auc(200.0 * t) == pytest.approx(50.0)  # linear 0 -> 100
    y = np.random.default_rng(0).uniform(0, 100, 51)
    assert metrics.curve_auc(y) == pytest.approx(np.trapezoid(y, t) / 0.5)


def test_evaluate_mpii_structure_is_json_ready_and_table_formats():
    gt, has_gt, head = _mpii_people(n=4)
    rng = np.random.default_rng(1)
    pred = gt + rng.normal(0, 3.0, gt.shape)
    results = metrics.evaluate_mpii(pred, gt, has_gt, head)
    for key in ("pckh@0.5", "pckh@0.1", "auc"):
        assert list(results[key]) == list(metrics.MPII_COLUMNS)
    assert results["pckh@0.5"] == metrics.mpii_pckh(pred, gt, has_gt, head, 0.5)
    assert results["curve"]["thresholds"][10] == 0.1
    assert results["curve"]["Total"][50] == pytest.approx(results["pckh@0.5"]["Total"])
    assert results["num_persons"] == 4 and results["num_joints"] == 4 * 14
    json.dumps(results)
    table = metrics.format_mpii_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["PCKh", *metrics.MPII_COLUMNS]
    assert [line.split()[0] for line in lines[1:]] == ["@0.5", "@0.1", "AUC"]
    assert f"{results['pckh@0.5']['Total']:.2f}" in lines[1]


def test_mpii_shape_errors_repeat_what_was_received():
    gt, has_gt, head = _mpii_people(n=2)
    with pytest.raises(ValueError, match=r"\(2, 14, 2\)"):
        metrics.mpii_pckh(gt[:, :14], gt[:, :14], has_gt[:, :14], head)
    with pytest.raises(ValueError, match=r"received \(2, 16\)"):
        metrics.mpii_pckh(gt, gt[..., 0], has_gt, head)
    with pytest.raises(ValueError, match=r"received \(3,\)"):
        metrics.mpii_pckh(gt, gt, has_gt, np.ones(3))
    with pytest.raises(ValueError, match=r"received \(2, 15\)"):
        metrics.mpii_pckh(gt, gt, has_gt[:, :15], head)


# ----------------------------------------------------------------------------
# Generic PCK
# ----------------------------------------------------------------------------


def test_torso_size_and_pck_skip_persons_without_torso_joints():
    gt = np.zeros((3, 4, 2))
    gt[:, 1] = [0.0, 10.0]  # joint 0 -> joint 1: torso of 10 px
    gt[:, 2] = [3.0, 0.0]
    gt[:, 3] = [0.0, 4.0]
    has_gt = np.ones((3, 4), bool)
    has_gt[2, 1] = False  # person 2 has no torso
    size = metrics.torso_size(gt, has_gt, (0, 1))
    np.testing.assert_allclose(size[:2], [10.0, 10.0])
    assert np.isnan(size[2])

    pred = gt.copy()
    pred[0, 2, 0] += 2.0  # exactly 0.2 torso: correct
    pred[1, 2, 0] += 2.5  # wrong
    pred[2] += 100.0  # skipped person
    result = metrics.pck(pred, gt, has_gt, size, threshold=0.2)
    np.testing.assert_allclose(result["per_joint"], [100.0, 100.0, 50.0, 100.0])
    assert result["total"] == pytest.approx(100.0 * 7 / 8)
    assert result["mean"] == pytest.approx(87.5)
    assert result["num_persons"] == 2
    assert metrics.pck(pred, gt, has_gt, size, 0.2, total_joints=[2])["total"] == 50.0


def test_pck_for_spec_uses_the_specs_normaliser():
    gt = np.zeros((2, 3, 2))
    gt[:, 1] = [0.0, 10.0]
    gt[:, 2] = [5.0, 5.0]
    has_gt = np.ones((2, 3), bool)
    pred = gt.copy()
    pred[:, 2, 0] += 3.0
    torso = types.SimpleNamespace(pck_normalizer="torso", torso_joints=(0, 1), excluded_from_total=(1,))
    assert metrics.pck_for_spec(torso, pred, gt, has_gt)["per_joint"][2] == 0.0  # 3 > 0.2 * 10
    assert metrics.pck_for_spec(torso, pred, gt, has_gt, threshold=0.3)["total"] == 100.0
    head = types.SimpleNamespace(pck_normalizer="head", torso_joints=None)
    assert metrics.pck_for_spec(head, pred, gt, has_gt, head_size=np.full(2, 6.0))["total"] == 100.0
    with pytest.raises(ValueError, match="head_size"):
        metrics.pck_for_spec(head, pred, gt, has_gt)


def test_torso_size_rejects_bad_joints():
    with pytest.raises(ValueError, match=r"received \(0, 5\)"):
        metrics.torso_size(np.zeros((1, 3, 2)), np.ones((1, 3), bool), (0, 5))


# ----------------------------------------------------------------------------
# COCO OKS AP
# ----------------------------------------------------------------------------


def _coco_predictions_from_gt(gt_path, noise=0.0, seed=0):
    data = json.loads(Path(gt_path).read_text())
    rng = np.random.default_rng(seed)
    predictions = []
    for ann in data["annotations"]:
        if ann["num_keypoints"] == 0 or ann.get("iscrowd", 0):
            continue
        kpts = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
        kpts[:, :2] += rng.normal(0, noise * np.sqrt(ann["area"]), (17, 2))
        kpts[:, 2] = 1.0
        predictions.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "keypoints": kpts.reshape(-1).tolist(),
                "score": 1.0,
            }
        )
    return predictions


def test_coco_keypoint_ap_perfect_and_perturbed():
    pytest.importorskip("pycocotools")
    gt_path = _shared_file("coco/person_keypoints_sample.json")
    perfect = _coco_predictions_from_gt(gt_path)
    assert len(perfect) == 12
    stats = metrics.coco_keypoint_ap(gt_path, perfect)
    assert list(stats) == list(metrics.COCO_STAT_NAMES)
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"):
        assert stats[name] == pytest.approx(1.0), name
    assert perfect[0].keys() == {"image_id", "category_id", "keypoints", "score"}  # not mutated

    noisy = metrics.coco_keypoint_ap(gt_path, _coco_predictions_from_gt(gt_path, noise=0.08))
    assert noisy["AP"] < 0.9
    assert noisy["AP50"] >= noisy["AP75"]
    assert metrics.coco_keypoint_ap(gt_path, [])["AP"] == 0.0


# ----------------------------------------------------------------------------
# The original 8-stack Hourglass predictions on the MPII validation split
# ----------------------------------------------------------------------------

# Official protocol on Tompson's 2,958-person validation split. The predictions
# are used as stored: like `part`, they are 1-based MATLAB pixels (the Torch code
# returns int(x) + 1 in the annotation frame); shifting them by 1 px lowers
# PCKh@0.1 (28.70 -> 27.90) and leaves PCKh@0.5 at 88.0.
HOURGLASS_FROM_VALID_H5 = {
    "pckh@0.5": [96.69, 94.68, 88.53, 83.38, 87.48, 83.09, 79.07, 88.88, 88.04],
    "pckh@0.1": [40.74, 33.05, 33.53, 29.11, 15.23, 22.16, 24.75, 31.90, 28.70],
    "auc": [71.17, 65.58, 61.21, 56.55, 49.71, 52.58, 51.88, 61.12, 58.82],
}
# gt_valid.mat keeps MPII's sub-pixel upper-neck/head-top coordinates (valid.h5
# truncates them to integers) and has 13 joints with one coordinate zeroed where
# valid.h5 has a value, hence Head and Ankle differ slightly; Total@0.5 agrees.
HOURGLASS_FROM_GT_VALID_MAT = {
    "pckh@0.5": [96.71, 94.68, 88.53, 83.38, 87.48, 83.09, 79.05, 88.88, 88.04],
    "pckh@0.1": [40.40, 33.05, 33.53, 29.11, 15.23, 22.16, 24.75, 31.90, 28.65],
    "auc": [71.12, 65.57, 61.20, 56.54, 49.71, 52.58, 51.86, 61.12, 58.81],
}


def _hourglass_preds():
    h5py = pytest.importorskip("h5py")
    with h5py.File(_shared_file("mpii/preds/hourglass_original_valid.h5"), "r") as f:
        return f["preds"][:]


def _assert_pinned(results, pinned):
    for key, values in pinned.items():
        expected = dict(zip(metrics.MPII_COLUMNS, values, strict=True))
        for name, value in expected.items():
            assert results[key][name] == pytest.approx(value, abs=0.005 + 1e-9), (key, name)


def test_hourglass_predictions_against_valid_h5():
    h5py = pytest.importorskip("h5py")
    preds = _hourglass_preds()
    with h5py.File(_shared_file("mpii/annot/valid.h5"), "r") as f:
        part, head_size = f["part"][:], f["normalize"][:]
    has_gt = np.any(part != 0, axis=-1)  # (0, 0) = not annotated
    results = metrics.evaluate_mpii(preds, part, has_gt, head_size)
    _assert_pinned(results, HOURGLASS_FROM_VALID_H5)
    assert results["num_persons"] == 2958


def test_hourglass_predictions_against_gt_valid_mat():
    sio = pytest.importorskip("scipy.io")
    preds = _hourglass_preds()
    mat = sio.loadmat(_shared_file("mpii/annot/gt_valid.mat"))
    gt = np.transpose(mat["pos_gt_src"], (2, 0, 1))  # (16, 2, N) -> (N, 16, 2)
    has_gt = mat["jnt_missing"].T == 0
    head_size = metrics.mpii_head_size(np.transpose(mat["headboxes_src"], (2, 0, 1)))
    results = metrics.evaluate_mpii(preds, gt, has_gt, head_size)
    _assert_pinned(results, HOURGLASS_FROM_GT_VALID_MAT)
