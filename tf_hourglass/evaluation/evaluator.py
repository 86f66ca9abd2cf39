"""Model predictions over a dataset, mapped to original image pixels, and their scores.

Used by training (the validation metric), by ``python -m tf_hourglass.evaluate``
and the notebooks, so every PCKh/PCK number comes from the same code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.evaluation import metrics
from tf_hourglass.prediction.single_person import predict_keypoints


@dataclasses.dataclass
class Predictions:
    """Predicted and true keypoints of every evaluated person, in original image pixels."""

    keypoints: np.ndarray  # (N, K, 2)
    scores: np.ndarray  # (N, K)
    ground_truth: np.ndarray  # (N, K, 2)
    has_gt: np.ndarray  # (N, K)
    normalizer: np.ndarray  # (N,)
    record_id: np.ndarray  # (N,)
    images: np.ndarray | None = None  # (M, H, W, 3) first input crops, for pictures
    input_keypoints: np.ndarray | None = None  # (M, K, 2) predictions on those crops


class DatasetPredictor:
    """Runs a model over evaluation datasets; one traced function, reused across calls.

    Args:
        flip_permutation: when given, flip-test averaging.
    """

    def __init__(self, model, codec: HeatmapCodec, flip_permutation=None):
        self.model = model
        self.codec = codec
        self.flip_permutation = None if flip_permutation is None else tf.constant(flip_permutation, tf.int32)
        self._predict = tf.function(self._predict_batch)

    def _predict_batch(self, images, matrix):
        return predict_keypoints(self.model, images, matrix, self.codec, self.flip_permutation)

    def __call__(self, dataset, max_batches=None, keep_images=0, progress=False) -> Predictions:
        """Predictions for a dataset from ``make_dataset(..., with_metadata=True)``.

        Args:
            max_batches: stop after this many batches (None: all).
            keep_images: keep the first N input crops and their predictions.
        """
        parts = {k: [] for k in ("keypoints", "scores", "ground_truth", "has_gt", "normalizer", "record_id")}
        images, input_keypoints = [], []
        batches = dataset if max_batches is None else dataset.take(max_batches)
        for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress, leave=False):
            original, in_keypoints, scores = self._predict(batch["images"], batch["matrix"])
            parts["keypoints"].append(original.numpy())
            parts["scores"].append(scores.numpy())
            parts["ground_truth"].append(batch["keypoints"].numpy())
            parts["has_gt"].append(batch["has_gt"].numpy())
            parts["normalizer"].append(batch["normalizer"].numpy())
            parts["record_id"].append(batch["record_id"].numpy())
            if sum(len(x) for x in images) < keep_images:
                images.append(batch["images"].numpy())
                input_keypoints.append(in_keypoints.numpy())
        if not parts["keypoints"]:
            raise ValueError("The evaluation dataset is empty: no example could be read.")
        result = Predictions(**{k: np.concatenate(v) for k, v in parts.items()})
        if keep_images:
            result.images = np.concatenate(images)[:keep_images]
            result.input_keypoints = np.concatenate(input_keypoints)[:keep_images]
        return result


def predict_dataset(
    model,
    dataset,
    codec: HeatmapCodec,
    flip_permutation=None,
    max_batches: int | None = None,
    keep_images: int = 0,
    progress: bool = False,
) -> Predictions:
    """One-off ``DatasetPredictor(model, codec, flip_permutation)(dataset, ...)``."""
    predictor = DatasetPredictor(model, codec, flip_permutation)
    return predictor(dataset, max_batches=max_batches, keep_images=keep_images, progress=progress)


def score(spec: KeypointSpec, predictions: Predictions, threshold: float | None = None) -> dict:
    """PCKh (head normaliser) or PCK (torso normaliser) as the spec asks, in percent.

    Returns ``pck_for_spec``'s dict; ``result["total"]`` is the headline number.
    """
    return metrics.pck_for_spec(
        spec,
        predictions.keypoints,
        predictions.ground_truth,
        predictions.has_gt,
        head_size=predictions.normalizer,
        threshold=threshold,
    )


def metric_name(spec: KeypointSpec, threshold: float | None = None) -> str:
    """'PCKh@0.5' or 'PCK@0.2' as ``score`` computes for this spec."""
    if spec.pck_normalizer == "head":
        return f"PCKh@{0.5 if threshold is None else threshold:g}"
    return f"PCK@{0.2 if threshold is None else threshold:g}"
