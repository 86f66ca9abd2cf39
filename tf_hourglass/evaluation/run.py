"""Evaluation runs: a predictions file against ground truth, or a model over a dataset.

The library behind ``python -m tf_hourglass.evaluate``. Both return a JSON-ready
results dict whose ``"protocol"`` says what was computed:

* ``"mpii"`` (16 MPII joints, head-normalised): ``metrics.evaluate_mpii``'s
  report, with ``pckh@0.5`` / ``pckh@0.1`` (Head, Shoulder, Elbow, Wrist, Hip,
  Knee, Ankle, UBody, Total in percent) and ``auc``.
* ``"pck"`` (LSP, FLIC, custom specs): ``{"metric": "PCK@0.2", "pck@0.2":
  {joint: percent, ..., "Total": percent}, "mean", "num_persons"}``.
* ``"coco"``: pycocotools' keypoint AP/AR under ``"coco_keypoints"``.

Ground-truth files, read by ``readers.read_ground_truth`` in their own
coordinates (the official MPII files are 1-based and predictions are compared
with the raw numbers, as the kit does):

* ``.h5`` in the original Hourglass layout (``part``, ``normalize``): MPII
  ``annot/valid.h5`` (16 joints) or FLIC (11 joints);
* ``.mat``: the MPII kit's ``gt_valid.mat`` (``pos_gt_src``, ``jnt_missing``,
  ``headboxes_src``) or LSP / LSPET ``joints.mat``;
* ``.json``: COCO person_keypoints (predictions then in COCO results format).

Prediction files: ``.h5`` with ``preds (N, K, 2)``, or ``.mat`` with ``preds
(N, K, 2)`` or the kit's ``pos_pred_src (K, 2, N)``; rows in ground-truth order.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs, readers, sources
from tf_hourglass.data.images import DEFAULT_BUDGET, ImageBudget, UnreadableInputError, read_image
from tf_hourglass.data.pipeline import InMemorySource, make_dataset, readable_records
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.evaluation import evaluator, metrics
from tf_hourglass.model.info import MULTI_PERSON, model_info
from tf_hourglass.model_loader import (
    describe_model_source,
    load_model_for_inference,
    model_kind,
    multi_person_network,
)
from tf_hourglass.prediction.multi_person import coco_results, codec_for_model, predict_people

HDF5_EXTENSIONS = (".h5", ".hdf5")


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def load_predictions(path: str, ground_truth: readers.GroundTruth) -> np.ndarray:
    """Predictions (N, K, 2) for ``ground_truth``'s persons, checked against it."""
    what = "predictions file"
    extension = _extension(path)
    if extension in HDF5_EXTENSIONS:
        data = readers.load_h5(path, what)
        if "preds" not in data:
            raise ValueError(f"{what} {path} has no 'preds' (N, K, 2); it holds {sorted(data)}.")
        key, preds = "preds", np.asarray(data["preds"])
    elif extension == ".mat":
        data = readers.load_mat(path, what)
        if "preds" in data:
            key, preds = "preds", np.asarray(data["preds"])
        elif "pos_pred_src" in data:
            key, preds = "pos_pred_src", np.asarray(data["pos_pred_src"])
            if preds.ndim != 3 or preds.shape[1] != 2:
                raise ValueError(
                    f"{what} {path}: 'pos_pred_src' has shape {preds.shape}; expected (K, 2, N)."
                )
            preds = np.transpose(preds, (2, 0, 1))
        else:
            keys = sorted(k for k in data if not k.startswith("__"))
            raise ValueError(
                f"{what} {path} has neither 'preds' (N, K, 2) nor 'pos_pred_src' (K, 2, N); it holds {keys}."
            )
    else:
        raise ValueError(f"Unsupported {what} {path}; expected .h5 or .mat with 'preds' (N, K, 2).")

    n, k = ground_truth.num_persons, ground_truth.spec.num_keypoints
    expected = (n, k, 2)
    if preds.ndim != 3 or preds.shape[1:] != (k, 2):
        raise ValueError(
            f"{what} {path}: {key!r} has shape {preds.shape} (as (N, K, 2)); expected {expected}: "
            f"{k} {ground_truth.spec.name} joints x (x, y) for each of the {n} persons of {ground_truth.path}."
        )
    if preds.shape[0] != n:
        raise ValueError(
            f"{what} {path} has predictions for {preds.shape[0]} persons but the ground truth "
            f"{ground_truth.path} has {n}; expected shape {expected}, received {preds.shape}."
        )
    if not np.issubdtype(preds.dtype, np.number):
        raise ValueError(f"{what} {path}: {key!r} must be numeric; received dtype {preds.dtype}.")
    preds = preds.astype(np.float64)
    # A NaN joint scores as a miss; said aloud, so a broken model is not just a low score.
    nonfinite = int(np.sum(~np.isfinite(preds).all(axis=-1)))
    if nonfinite:
        logging.warning(
            "%s %s: %d of %d predicted joints are NaN or infinite; they count as misses.",
            what,
            path,
            nonfinite,
            n * k,
        )
    return preds


def load_coco_results(path: str) -> list[dict]:
    """Predictions in COCO results format: a JSON list of {image_id, category_id, keypoints, score}."""
    what = "predictions file"
    results = readers.load_json(path, what)
    if not isinstance(results, list):
        raise ValueError(
            f"{what} {path} must be a JSON list of COCO results; received {type(results).__name__}."
        )
    k = keypoint_specs.COCO.num_keypoints
    for i, entry in enumerate(results):
        if not isinstance(entry, dict):
            raise ValueError(f"{what} {path}: entry {i} is not an object: {entry!r:.80}.")
        missing = {"image_id", "category_id", "keypoints", "score"} - set(entry)
        if missing:
            raise ValueError(
                f"{what} {path}: entry {i} lacks {sorted(missing)}; received keys {sorted(entry)}."
            )
        if np.size(entry["keypoints"]) != 3 * k:
            raise ValueError(
                f"{what} {path}: entry {i} has {np.size(entry['keypoints'])} keypoint values; "
                f"expected {3 * k} ({k} COCO joints x (x, y, v))."
            )
    return results


def _check_coco_image_ids(results: list[dict], predictions: str, ground_truth: str) -> None:
    """pycocotools only asserts this; here the message names both files."""
    data = readers.load_json(ground_truth, "ground-truth file")
    try:
        image_ids = {image["id"] for image in data["images"]}
    except (TypeError, KeyError) as error:
        raise ValueError(
            f"ground-truth file {ground_truth} is not a COCO keypoints JSON ({error!r})."
        ) from error
    unknown = sorted({r["image_id"] for r in results} - image_ids)
    if unknown:
        raise ValueError(
            f"predictions file {predictions} has results for {len(unknown)} image id(s) that are not in "
            f"{ground_truth}, e.g. {unknown[:5]}."
        )


# ----------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------


def _is_mpii(spec: KeypointSpec) -> bool:
    return spec.name == keypoint_specs.MPII.name and spec.num_keypoints == 16


def _check_head_sizes(head_size) -> None:
    if head_size is None or not np.any(np.isfinite(head_size) & (np.asarray(head_size) > 0)):
        raise ValueError(
            "MPII PCKh needs each person's head size, and this ground truth has none (the mmpose "
            "JSON lacks it): evaluate against annot/valid.h5 (mpii_h5) or the kit's gt_valid.mat."
        )


def score_keypoints(spec: KeypointSpec, pred, gt, has_gt, head_size=None) -> dict:
    """The spec's protocol: full MPII report for MPII, else PCK per joint and total."""
    if _is_mpii(spec):
        _check_head_sizes(head_size)
        return {"protocol": "mpii", **metrics.evaluate_mpii(pred, gt, has_gt, head_size)}
    result = metrics.pck_for_spec(spec, pred, gt, has_gt, head_size=head_size)
    name = evaluator.metric_name(spec)
    per_joint = dict(zip(spec.keypoint_names, result["per_joint"].tolist(), strict=True))
    return {
        "protocol": "pck",
        "metric": name,
        name.lower(): {**per_joint, "Total": result["total"]},
        "mean": result["mean"],
        "num_persons": result["num_persons"],
    }


def evaluate_predictions(predictions: str, ground_truth: str) -> dict:
    """Scores a predictions file against a ground-truth file (see the module docstring)."""
    inputs = {"predictions": predictions, "ground_truth": ground_truth}
    if _extension(ground_truth) == ".json":
        results = load_coco_results(predictions)
        _check_coco_image_ids(results, predictions, ground_truth)
        stats = metrics.coco_keypoint_ap(ground_truth, results)
        return {"protocol": "coco", "coco_keypoints": stats, "num_predicted": len(results), "inputs": inputs}
    truth = readers.read_ground_truth(ground_truth)
    preds = load_predictions(predictions, truth)
    head_size = truth.head_size
    if truth.head_boxes is not None:
        head_size = metrics.mpii_head_size(truth.head_boxes)
    results = score_keypoints(truth.spec, preds, truth.keypoints, truth.has_gt, head_size)
    return {**results, "inputs": inputs}


def _usable(record) -> bool:
    """Has ground truth and a crop (the pipeline drops records without a finite centre/scale)."""
    return bool(
        record.has_gt.any()
        and math.isfinite(record.scale)
        and record.scale > 0
        and np.isfinite(record.center).all()
    )


def _coco_results(annotations: str, predictions) -> tuple[list[dict], list[int]]:
    """COCO results (x, y, score per joint; person score = mean joint score) for predicted records."""
    data = readers.load_json(annotations)
    image_of = {ann["id"]: ann["image_id"] for ann in data["annotations"]}
    results = []
    for keypoints, scores, record_id in zip(
        predictions.keypoints, predictions.scores, predictions.record_id, strict=True
    ):
        flat = np.concatenate([keypoints, scores[:, None]], axis=1).reshape(-1)
        results.append(
            {
                "image_id": image_of[int(record_id)],
                "category_id": 1,
                "keypoints": flat.tolist(),
                "score": float(np.mean(scores)),
            }
        )
    return results, sorted({r["image_id"] for r in results})


def evaluate_people(
    model,
    annotations: str,
    images_dir: str | None,
    flip: bool = True,
    scales=(1.0,),
    progress: bool = True,
    budget: ImageBudget = DEFAULT_BUDGET,
) -> dict:
    """A multi-person model over every image of a COCO person_keypoints file: the COCO keypoint AP.

    Each image goes through ``prediction.multi_person.predict_people`` (the
    official test.py's steps; ``flip`` and ``scales`` as its options) and its
    people become COCO results, scored with pycocotools' OKS. Images that cannot
    be read (or are over ``budget``, never decoded) are skipped and counted.
    """
    from tf_hourglass.prediction.estimator import to_rgb_float  # the one image normalisation

    network, people_model = multi_person_network(model)  # a Keras model, or an exported network
    info = model_info(people_model)
    spec = info.spec or keypoint_specs.COCO
    if spec.num_keypoints != keypoint_specs.COCO.num_keypoints:
        raise ValueError(
            f"{people_model.name} finds {spec.num_keypoints} keypoints ({spec.name}); COCO's AP needs COCO's 17."
        )
    data = readers.load_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{annotations}: not a COCO person_keypoints JSON (no 'images' list).")
    folder = images_dir if images_dir is not None else os.path.dirname(annotations)
    codec = codec_for_model(people_model)
    results, image_ids, skipped, found = [], [], [], 0
    for image in tqdm(data["images"], desc="evaluate", unit="image", disable=not progress):
        path = os.path.join(folder, str(image.get("file_name", "")))
        try:
            pixels = to_rgb_float(read_image(path, budget))
        except UnreadableInputError as error:
            skipped.append(str(error))
            continue
        people = predict_people(network, pixels, codec, spec.flip_permutation(), scales=scales, flip=flip)
        found += len(people)
        results += coco_results(people, image["id"])
        image_ids.append(image["id"])
    if skipped:
        logging.warning("Skipped %d unreadable image(s), e.g. %s", len(skipped), skipped[0])
    if not image_ids:
        raise ValueError(
            f"{annotations}: none of its {len(data['images'])} images could be read under {folder}."
        )
    stats = metrics.coco_keypoint_ap(annotations, results, image_ids=image_ids)
    return {
        "protocol": "coco",
        "coco_keypoints": stats,
        "num_images": len(image_ids),
        "num_skipped": len(skipped),
        "num_people_found": found,
        "inputs": {
            "model": people_model.name,
            "model_file": describe_model_source(model),
            "annotations": annotations,
            "images": images_dir,
            "flip": bool(flip),
            "scales": [float(s) for s in scales],
        },
    }


def evaluate_model(
    model,
    format,
    annotations: str | None = None,
    images_dir: str | None = None,
    flip: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    scales=(1.0,),
    precision: str = "auto",
    budget: ImageBudget = DEFAULT_BUDGET,
) -> dict:
    """Runs a model over a dataset in any reader format and scores it.

    Args:
        model: anything ``model_loader.load_model_for_inference`` takes.
        format: a ``sources.Source``, its text form ("mpii_h5:annot/valid.h5:images"),
            or a reader format with ``annotations`` and ``images_dir``.
        flip: flip-test averaging.
        precision: what a single-person Keras model computes in ("auto",
            "float32", "bfloat16": ``model_loader.keras_inference_model``);
            the results' ``inputs`` say what ran.
        budget: images over it (bytes, or pixels their header claims) are
            skipped undecoded; the results count them (``num_unreadable_images``).

    Persons without ground truth (or without a crop) are skipped. MPII gives
    the full PCKh table, COCO its AP, other specs PCK. A multi-person model
    finds every person in each COCO image instead (``evaluate_people``;
    ``scales`` are its input scales).
    """
    if isinstance(format, sources.Source):
        source = format
    elif annotations is None:
        source = sources.parse_source(format, "evaluation data")
    else:
        source = sources.Source(format, annotations, images_dir)
    if source.kind not in readers.FORMATS:
        raise ValueError(
            f"evaluation data {source}: a model is scored on a dataset in a reader format "
            f"({', '.join(readers.FORMATS)}), whose annotations keep each person's ground truth."
        )
    format, annotations, images_dir = source.kind, source.annotations, source.images_dir
    if model_kind(model) == MULTI_PERSON:
        if format != "coco":
            name = getattr(model, "name", None) or os.fspath(model)
            raise ValueError(
                f"{name} is a multi-person model: it is scored with COCO's keypoint AP on a "
                f"COCO person_keypoints file (coco:ANNOTATIONS:IMAGES); received {source}."
            )
        return evaluate_people(model, annotations, images_dir, flip, scales, progress, budget)
    spec, data = sources.open_source(source)
    records = data.records
    usable = [r for r in records if _usable(r)]
    if not usable:
        raise ValueError(f"{annotations}: none of its {len(records)} persons has ground truth and a crop.")
    if len(usable) < len(records):
        logging.info(
            "Skipping %d of %d persons without ground truth or crop.",
            len(records) - len(usable),
            len(records),
        )
    missing = sorted(
        {r.image_path for r in usable if "://" not in r.image_path and not os.path.exists(r.image_path)}
    )
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) of {annotations} are missing "
            + (f"under {images_dir}" if images_dir else "(at the paths it gives)")
            + f", e.g. {missing[:3]}."
        )

    # Files over the budget, FIFOs, damaged headers: skipped and counted, before the long part.
    checked, (num_unreadable, _) = readable_records(usable, budget, f"evaluation data {annotations}")
    usable = checked
    if _is_mpii(spec):
        _check_head_sizes(np.array([r.normalizer for r in usable]))  # before the long part

    inference_model = load_model_for_inference(model, precision)
    if inference_model.num_keypoints != spec.num_keypoints:
        raise ValueError(
            f"Model {inference_model.name} predicts {inference_model.num_keypoints} keypoints but "
            f"{annotations} ({format}) has {spec.num_keypoints}."
        )
    codec = inference_model.codec()  # the model's own sigma, peak and decode method
    dataset = make_dataset(
        InMemorySource(usable), spec, codec, batch_size=batch_size, training=False, with_metadata=True
    )
    flip_permutation = spec.flip_permutation() if flip else None
    predictions = evaluator.predict_dataset(
        inference_model, dataset, codec, flip_permutation, progress=progress
    )
    if len(predictions.keypoints) < len(usable):
        logging.warning(
            "%d of %d images could not be decoded and were skipped.",
            len(usable) - len(predictions.keypoints),
            len(usable),
        )
    inputs = {
        "model": inference_model.name,
        "model_file": describe_model_source(model),
        "format": format,
        "annotations": annotations,
        "images": images_dir,
        "flip": bool(flip),
        "precision": inference_model.precision,
        "precision_reason": inference_model.precision_reason,
    }
    counts = {
        "num_predicted": int(len(predictions.keypoints)),
        "num_skipped": len(records) - len(usable),
        "num_unreadable_images": num_unreadable,
    }
    if spec.name == keypoint_specs.COCO.name:
        results, image_ids = _coco_results(annotations, predictions)
        stats = metrics.coco_keypoint_ap(annotations, results, image_ids=image_ids)
        return {"protocol": "coco", "coco_keypoints": stats, **counts, "inputs": inputs}
    head_size = predictions.normalizer if spec.pck_normalizer == "head" else None
    results = score_keypoints(
        spec, predictions.keypoints, predictions.ground_truth, predictions.has_gt, head_size
    )
    return {**results, **counts, "inputs": inputs}


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def format_results(results: dict) -> str:
    """The results as the familiar table (MPII), a per-joint list (PCK) or AP lines (COCO)."""
    protocol = results.get("protocol")
    if protocol == "mpii":
        return metrics.format_mpii_table(results)
    if protocol == "coco":
        return "\n".join(f"{name:<6}{value:8.3f}" for name, value in results["coco_keypoints"].items())
    name = results["metric"]
    table = results[name.lower()]
    width = max(len(joint) for joint in table) + 2
    lines = [f"{'joint':<{width}}{name:>10}"]
    lines += [f"{joint:<{width}}{value:>10.2f}" for joint, value in table.items()]
    return "\n".join(lines)


def _jsonable(value):
    """Plain Python values for json; NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def check_output_path(path: str) -> None:
    """Fails early, before any long evaluation, when ``--json path`` cannot be written.

    A folder at ``path``, a folder that does not exist or is a file, read-only,
    not ours to write or on a full disk: one line naming the path and the reason.
    """
    folder = os.path.dirname(path) or "."
    if "://" not in path:
        atomic_files.check_writable_file(path, f"--json {path}")
    if not tf.io.gfile.isdir(folder):
        raise FileNotFoundError(f"The folder of the output {path} does not exist: {folder}")


def write_results_json(path: str, results: dict) -> None:
    """Writes the results as JSON (temp file + rename: never a partial file)."""
    atomic_files.write_text(path, json.dumps(_jsonable(results), indent=2, allow_nan=False) + "\n")
