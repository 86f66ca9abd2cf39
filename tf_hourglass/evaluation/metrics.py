"""Pose metrics: MPII PCKh (the official protocol), generic PCK, and COCO OKS AP.

Everything here is plain numpy (COCO AP calls pycocotools) and independent of the
dataset readers: metrics take arrays, and a spec-like object where convenient.

Coordinates can be in any frame as long as predictions and ground truth share it
(PCK is translation invariant). The official MPII files are 1-based (MATLAB);
our records are 0-based, which changes nothing as long as both sides agree.

MPII PCKh, as the official evaluation kit computes it (``evalMPII.m`` /
``evaluatePCKh.m`` with ``getDistPCKh.m``, ``computePCK.m``, ``genTablePCK.m``,
``area_under_curve.m``):

* headSize = 0.6 x ||head box diagonal|| (``util_get_head_size.m``, ``SC_BIAS``).
* dist = ||pred - gt|| / headSize; a joint is correct when dist <= threshold.
  Joints without ground truth are skipped (the kit's NaN / ``jnt_missing``);
  non-finite predictions count as wrong (the kit sets ``pred(isnan) = inf``).
* The kit keeps 14 joints (``annolist2matrix.m``): pelvis and thorax are left out.
* Per-part columns (``genTablePCK.m``) are the unweighted mean of the left and
  right joints' PCKh, e.g. Ankle = (PCKh(r_ankle) + PCKh(l_ankle)) / 2, and
  Head = (PCKh(upper_neck) + PCKh(head_top)) / 2.
* UBody pools all (person, joint) pairs of wrists, elbows and shoulders (the kit's
  joints 7:12); Total pools all 14 joints (``computePCK.m``). Pooling means
  correct / annotated over the pairs, not a mean of per-joint values.
* The PCKh curve uses thresholds 0:0.01:0.5; AUC =
  ``area_under_curve(scale01(range), pck)``: the trapezoidal area under the curve
  with thresholds rescaled to [0, 1], i.e. the curve's mean height in percent.

Ports differ from the kit in ways that matter when comparing numbers: HRNet's and
mmpose's ``evaluate`` report "Head" as head top only, and HRNet's "Mean@0.1"
reads the curve at index 11, which is threshold 0.11.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence

import numpy as np

from tf_hourglass.data.keypoint_specs import MPII

MPII_JOINT_NAMES = MPII.keypoint_names

# The official table's per-part columns: each is the mean of these joints' PCKh
# (0-based indices in MPII's joint order above).
MPII_PART_JOINTS = {
    "Head": (8, 9),  # upper_neck, head_top
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
# Pooled columns: UBody = wrists, elbows, shoulders; Total = all but pelvis, thorax.
MPII_UBODY_JOINTS = (10, 11, 12, 13, 14, 15)
MPII_TOTAL_JOINTS = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)
MPII_COLUMNS = (*MPII_PART_JOINTS, "UBody", "Total")

# The kit's curve thresholds 0:0.01:0.5. k / 100 gives the double nearest to each
# decimal (np.arange(0, 0.51, 0.01) accumulates rounding error instead).
MPII_CURVE_THRESHOLDS = np.arange(51) / 100.0

# The kit's head-size factor: headSize = SC_BIAS * ||head box diagonal||.
MPII_SC_BIAS = 0.6

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _check_keypoint_arrays(pred, gt, has_gt, normalizer, normalizer_name):
    """Validates shapes and returns float64/bool arrays."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    has_gt = np.asarray(has_gt)
    normalizer = np.asarray(normalizer, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred must have shape (N, K, 2); received {pred.shape}.")
    if gt.shape != pred.shape:
        raise ValueError(f"gt must have the shape of pred {pred.shape}; received {gt.shape}.")
    if has_gt.shape != pred.shape[:2]:
        raise ValueError(f"has_gt must have shape (N, K) = {pred.shape[:2]}; received {has_gt.shape}.")
    if normalizer.shape != pred.shape[:1]:
        raise ValueError(
            f"{normalizer_name} must have shape (N,) = {pred.shape[:1]}; received {normalizer.shape}."
        )
    return pred, gt, has_gt.astype(bool), normalizer


def normalized_distances(pred, gt, has_gt, normalizer, normalizer_name="normalizer"):
    """||pred - gt|| / normalizer per joint, NaN where the joint is not evaluated.

    A joint is evaluated when it has ground truth and its person's normaliser is
    finite and positive (persons without a usable normaliser are skipped whole).
    Non-finite predictions give an infinite distance: they count, as wrong.

    Args:
        pred, gt: (N, K, 2) coordinates in the same frame.
        has_gt: (N, K) bool, the joint is annotated.
        normalizer: (N,) per-person reference length (head size, torso size).

    Returns:
        (N, K) float64 distances in units of the normaliser, NaN = not evaluated.
    """
    pred, gt, has_gt, normalizer = _check_keypoint_arrays(pred, gt, has_gt, normalizer, normalizer_name)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(pred - gt, axis=-1) / normalizer[:, None]
    dist[~np.all(np.isfinite(pred), axis=-1)] = np.inf
    usable_person = np.isfinite(normalizer) & (normalizer > 0)
    evaluated = has_gt & usable_person[:, None] & np.all(np.isfinite(gt), axis=-1)
    dist[~evaluated] = np.nan
    return dist


def _pooled_pck(dist, threshold):
    """100 * (#dist <= threshold) / (#evaluated) over all entries; NaN if none."""
    evaluated = ~np.isnan(dist)
    count = int(evaluated.sum())
    if count == 0:
        return float("nan")
    return 100.0 * float(np.sum(dist[evaluated] <= threshold)) / count


# ----------------------------------------------------------------------------
# MPII PCKh
# ----------------------------------------------------------------------------


def mpii_head_size(headboxes) -> np.ndarray:
    """Head size from MPII head boxes, as the kit: 0.6 x ||(x2, y2) - (x1, y1)||.

    Args:
        headboxes: (N, 2, 2) array of [[x1, y1], [x2, y2]] per person (the kit's
            ``headboxes_src`` is (2, 2, N): transpose it with ``(2, 0, 1)``).
    """
    headboxes = np.asarray(headboxes, dtype=np.float64)
    if headboxes.ndim != 3 or headboxes.shape[1:] != (2, 2):
        raise ValueError(
            f"headboxes must have shape (N, 2, 2) = [[x1, y1], [x2, y2]]; received {headboxes.shape}."
        )
    return MPII_SC_BIAS * np.linalg.norm(headboxes[:, 1] - headboxes[:, 0], axis=-1)


def _mpii_distances(pred, gt, has_gt, head_size):
    """Checks for the 16 MPII joints, then PCKh distances (N, 16), NaN = skipped."""
    if np.ndim(pred) != 3 or np.shape(pred)[1] != len(MPII_JOINT_NAMES):
        raise ValueError(
            f"MPII PCKh needs the 16 MPII joints, pred of shape (N, 16, 2); received shape {np.shape(pred)}."
        )
    return normalized_distances(pred, gt, has_gt, head_size, "head_size")


def _mpii_columns(dist, threshold) -> dict[str, float]:
    """The official table's columns from (N, 16) normalised distances."""
    per_joint = [_pooled_pck(dist[:, j], threshold) for j in range(dist.shape[1])]
    table = {}
    for name, (a, b) in MPII_PART_JOINTS.items():
        # The kit averages the two per-joint percentages, not the pooled pairs.
        table[name] = 0.5 * (per_joint[a] + per_joint[b])
    table["UBody"] = _pooled_pck(dist[:, MPII_UBODY_JOINTS], threshold)
    table["Total"] = _pooled_pck(dist[:, MPII_TOTAL_JOINTS], threshold)
    return table


def _mpii_curve(dist, thresholds) -> dict[str, np.ndarray]:
    rows = [_mpii_columns(dist, t) for t in thresholds]
    return {name: np.array([row[name] for row in rows]) for name in MPII_COLUMNS}


def _mpii_per_joint(dist, threshold) -> dict[str, float]:
    return {name: _pooled_pck(dist[:, j], threshold) for j, name in enumerate(MPII_JOINT_NAMES)}


def mpii_pckh(pred, gt, has_gt, head_size, threshold: float = 0.5) -> dict[str, float]:
    """MPII PCKh at one threshold, exactly as the official evaluation kit.

    Args:
        pred, gt: (N, 16, 2) joint coordinates (MPII joint order) in one frame.
        has_gt: (N, 16) bool, joint annotated (the kit's ``~jnt_missing``).
        head_size: (N,) PCKh normaliser, 0.6 x head-box diagonal.
        threshold: fraction of the head size.

    Returns:
        Percentages keyed ``Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, UBody,
        Total`` (see the module docstring for which joints each averages).
    """
    return _mpii_columns(_mpii_distances(pred, gt, has_gt, head_size), float(threshold))


def mpii_pckh_per_joint(pred, gt, has_gt, head_size, threshold: float = 0.5) -> dict[str, float]:
    """PCKh of each of the 16 MPII joints (pelvis and thorax included), percent."""
    return _mpii_per_joint(_mpii_distances(pred, gt, has_gt, head_size), float(threshold))


def mpii_pckh_curve(pred, gt, has_gt, head_size, thresholds=MPII_CURVE_THRESHOLDS) -> dict[str, np.ndarray]:
    """The PCKh curve of every table column: name -> (T,) percentages."""
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    return _mpii_curve(_mpii_distances(pred, gt, has_gt, head_size), thresholds)


def curve_auc(values, thresholds=MPII_CURVE_THRESHOLDS) -> float:
    """Area under a PCK curve as the MPII kit computes it, in percent.

    ``area_under_curve(scale01(range), pck)``: thresholds are rescaled to [0, 1]
    (``scale01``), then the trapezoidal rule. The result is the curve's mean
    height, so a perfect predictor scores 100.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if values.shape != thresholds.shape or values.size < 2:
        raise ValueError(
            f"values and thresholds must be two equal-length 1-D arrays of at least "
            f"2 points; received {values.shape} and {thresholds.shape}."
        )
    order = np.argsort(thresholds)
    x, y = thresholds[order], values[order]
    span = x[-1] - x[0]
    if span <= 0:
        raise ValueError(f"thresholds must span a positive range; received {thresholds}.")
    x = (x - x[0]) / span
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def evaluate_mpii(pred, gt, has_gt, head_size, thresholds=MPII_CURVE_THRESHOLDS) -> dict:
    """The full MPII report, JSON-ready (plain floats and lists).

    Returns:
        A dict::

            {
              "pckh@0.5": {Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, UBody, Total},
              "pckh@0.1": {... same keys ...},
              "auc": {... same keys ...},  # AUC of each column's curve, percent
              "curve": {"thresholds": [...], Head: [...], ..., Total: [...]},
              "per_joint@0.5": {r_ankle: ..., ..., l_wrist: ...},  # all 16 joints
              "num_persons": N,
              "num_joints": annotated joints counted in Total,
            }

        All values are percentages. The kit itself prints the AUC of Total only;
        ``auc["Total"]`` is that number.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    dist = _mpii_distances(pred, gt, has_gt, head_size)
    curve = _mpii_curve(dist, thresholds)
    return {
        "pckh@0.5": _mpii_columns(dist, 0.5),
        "pckh@0.1": _mpii_columns(dist, 0.1),
        "auc": {name: curve_auc(curve[name], thresholds) for name in MPII_COLUMNS},
        "curve": {
            "thresholds": thresholds.tolist(),
            **{name: curve[name].tolist() for name in MPII_COLUMNS},
        },
        "per_joint@0.5": _mpii_per_joint(dist, 0.5),
        "num_persons": int(dist.shape[0]),
        "num_joints": int(np.sum(~np.isnan(dist[:, MPII_TOTAL_JOINTS]))),
    }


def format_mpii_table(results: Mapping) -> str:
    """The familiar PCKh table from ``evaluate_mpii`` results (or any dict of rows).

    Every ``pckh@T`` entry becomes a row, followed by the AUC row when present::

        PCKh       Head  Shoulder   Elbow   Wrist     Hip    Knee   Ankle   UBody   Total
        @0.5      97.02     ...
        @0.1        ...
        AUC         ...
    """
    widths = [max(len(name), 6) + 2 for name in MPII_COLUMNS]
    header = "PCKh    " + "".join(f"{name:>{w}}" for name, w in zip(MPII_COLUMNS, widths, strict=True))
    lines = [header]
    rows = [(key[len("pckh") :], results[key]) for key in results if str(key).startswith("pckh@")]
    if "auc" in results and isinstance(results["auc"], Mapping):
        rows.append(("AUC", results["auc"]))
    for label, row in rows:
        cells = "".join(
            f"{float(row.get(name, float('nan'))):>{w}.2f}"
            for name, w in zip(MPII_COLUMNS, widths, strict=True)
        )
        lines.append(f"{label:<8}{cells}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Generic PCK (LSP, FLIC, ...)
# ----------------------------------------------------------------------------


def torso_size(gt, has_gt, torso_joints: Sequence[int]) -> np.ndarray:
    """Per-person torso size: the distance between the two ``torso_joints``.

    Persons missing either torso joint get NaN, and ``pck`` then skips them
    entirely (there is nothing to normalise by). Which diagonal is "the torso"
    is the dataset's convention: e.g. the official LSP kit (``getDistPCK.m``)
    uses left shoulder to right hip; DeepPose's FLIC protocol too.

    Args:
        gt: (N, K, 2) ground-truth coordinates.
        has_gt: (N, K) bool.
        torso_joints: the two joint indices (a, b).

    Returns:
        (N,) float64 distances, NaN where a torso joint is missing.
    """
    gt = np.asarray(gt, dtype=np.float64)
    has_gt = np.asarray(has_gt).astype(bool)
    if gt.ndim != 3 or gt.shape[-1] != 2 or has_gt.shape != gt.shape[:2]:
        raise ValueError(f"gt must be (N, K, 2) and has_gt (N, K); received {gt.shape} and {has_gt.shape}.")
    torso_joints = tuple(int(j) for j in torso_joints)
    if len(torso_joints) != 2 or not all(0 <= j < gt.shape[1] for j in torso_joints):
        raise ValueError(
            f"torso_joints must be two joint indices in [0, {gt.shape[1]}); received {torso_joints}."
        )
    a, b = torso_joints
    size = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    size[~(has_gt[:, a] & has_gt[:, b])] = np.nan
    return size


def pck(
    pred,
    gt,
    has_gt,
    normalizer,
    threshold: float = 0.2,
    total_joints: Sequence[int] | None = None,
) -> dict:
    """PCK with a per-person normaliser: correct when ||pred - gt|| <= thr * norm.

    Joints without ground truth, and persons whose normaliser is NaN or not
    positive (e.g. a missing torso joint), are skipped.

    Args:
        pred, gt: (N, K, 2) coordinates in one frame.
        has_gt: (N, K) bool.
        normalizer: (N,) reference length per person (torso size, head size).
        threshold: fraction of the normaliser.
        total_joints: joints pooled into "total" (default all K).

    Returns:
        ``{"per_joint": (K,) percentages (NaN for joints never evaluated),
        "total": percentage pooled over all evaluated (person, joint) pairs of
        total_joints, "mean": unweighted mean of the finite per-joint values,
        "num_persons": persons with a usable normaliser}``.
    """
    dist = normalized_distances(pred, gt, has_gt, normalizer)
    k = dist.shape[1]
    joints = tuple(range(k)) if total_joints is None else tuple(int(j) for j in total_joints)
    if not all(0 <= j < k for j in joints):
        raise ValueError(f"total_joints must be indices in [0, {k}); received {joints}.")
    per_joint = np.array([_pooled_pck(dist[:, j], threshold) for j in range(k)])
    finite = per_joint[np.isfinite(per_joint)]
    normalizer = np.asarray(normalizer, dtype=np.float64)
    return {
        "per_joint": per_joint,
        "total": _pooled_pck(dist[:, list(joints)], threshold),
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "num_persons": int(np.sum(np.isfinite(normalizer) & (normalizer > 0))),
    }


def pck_for_spec(spec, pred, gt, has_gt, head_size=None, threshold: float | None = None) -> dict:
    """PCK with the normaliser a keypoint spec asks for.

    ``spec`` is anything with ``pck_normalizer`` ("head" or "torso"),
    ``torso_joints`` and optionally ``excluded_from_total`` (e.g. a
    ``records.KeypointSpec``); no reader is imported.

    Args:
        head_size: (N,) needed when ``spec.pck_normalizer == "head"``.
        threshold: defaults to 0.5 for "head" (PCKh@0.5), 0.2 for "torso" (PCK@0.2).
    """
    kind = getattr(spec, "pck_normalizer", None)
    if kind == "head":
        if head_size is None:
            raise ValueError("pck_normalizer='head' needs head_size; received None.")
        normalizer = np.asarray(head_size, dtype=np.float64)
        threshold = 0.5 if threshold is None else threshold
    elif kind == "torso":
        torso_joints = getattr(spec, "torso_joints", None)
        if torso_joints is None:
            raise ValueError("pck_normalizer='torso' needs spec.torso_joints; received None.")
        normalizer = torso_size(gt, has_gt, torso_joints)
        threshold = 0.2 if threshold is None else threshold
    else:
        raise ValueError(f"spec.pck_normalizer must be 'head' or 'torso'; received {kind!r}.")
    k = np.shape(pred)[1] if np.ndim(pred) == 3 else 0
    excluded = set(getattr(spec, "excluded_from_total", ()) or ())
    total_joints = [j for j in range(k) if j not in excluded]
    return pck(pred, gt, has_gt, normalizer, threshold, total_joints)


# ----------------------------------------------------------------------------
# COCO OKS AP
# ----------------------------------------------------------------------------


def coco_keypoint_ap(
    gt_json_path,
    predictions: Sequence[Mapping],
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR (OKS) with pycocotools' ``COCOeval(iouType="keypoints")``.

    Args:
        gt_json_path: a COCO ``person_keypoints_*.json``.
        predictions: COCO results, dicts with ``image_id``, ``category_id``,
            ``keypoints`` (17 * 3 flat x, y, v) and ``score``. Coordinates must be
            in the frame of the JSON's annotations: whoever converted COCO to
            0-based records must undo that conversion before calling this.
        image_ids: images to evaluate (default: every image of the JSON file).

    Returns:
        ``AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl`` as fractions in
        [0, 1] (pycocotools' ``stats``; -1 where an area range has no ground
        truth). With no predictions every value is 0.0.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("coco_keypoint_ap needs pycocotools: pip install 'tf_hourglass[coco]'.") from error

    predictions = list(predictions)
    if not predictions:
        return dict.fromkeys(COCO_STAT_NAMES, 0.0)
    for i, pred in enumerate(predictions):
        missing = {"image_id", "category_id", "keypoints", "score"} - set(pred)
        if missing:
            raise ValueError(f"prediction {i} lacks {sorted(missing)}; received keys {sorted(pred)}.")
    # loadRes adds "area", "bbox" and "id" to the dicts it gets: work on copies,
    # with plain Python numbers (numpy scalars upset its JSON-ish code paths).
    results = []
    for pred in copy.deepcopy(predictions):
        pred["keypoints"] = [float(v) for v in np.asarray(pred["keypoints"]).reshape(-1)]
        pred["score"] = float(pred["score"])
        pred["image_id"] = int(pred["image_id"])
        pred["category_id"] = int(pred["category_id"])
        results.append(pred)

    # pycocotools prints progress to stdout; keep the caller's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_json_path))
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if image_ids is not None:
            evaluator.params.imgIds = [int(i) for i in image_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}
