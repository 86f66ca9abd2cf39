"""Every export checks itself against the Keras model it came from.

Parity: the exported file and the Keras model run on the same sample inputs;
we report the largest heatmap difference (absolute, and relative to the
largest Keras heatmap value) and the mean distance between the decoded
keypoints in network-input pixels (4 input pixels = 1 heatmap pixel).
Accuracy (int8 and qat): PCK/PCKh of both models on held-out data; the export
fails when the exported model loses more than ``max_pck_drop`` points.

Tolerances (failing beyond either number):

=========  =========================  ===========================
kind       max heatmap error / peak   mean keypoint distance (px)
=========  =========================  ===========================
float32    1e-4                       0.2
float16    1e-2                       0.5
dynamic    5e-2                       1.0
int8       0.25                       2.0  (and the PCK drop)
=========  =========================  ===========================

float32 covers the SavedModel, TFLite without quantisation, ONNX and FP32
TensorRT: the same arithmetic in another order, so differences are rounding
(~1e-6 of the peak). float16 stores weights in half precision, dynamic
quantises weights to 8 bits, int8 also quantises every activation; their
keypoints move only where two heatmap maxima nearly tie, which is what the mean
distance bounds.

Sample inputs: the calibration data's held-out crops when there are
calibration data; else photos (by default ``../shared/data/people`` next to
the project, when present); else synthetic figures.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_hourglass.data import transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.crop import box_crop_matrix, whole_image_box
from tf_hourglass.evaluation import evaluator
from tf_hourglass.export.errors import VerificationError
from tf_hourglass.model import keypoint_heatmaps

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_NUM_SAMPLES = 8
# Synthetic figures from this index on are never used by the trainer's
# synthetic splits (they start at 0), so they are held out for any run.
SYNTHETIC_HELDOUT_START = 1_000_000


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Largest accepted differences from the Keras model."""

    heatmap: float  # max |exported - keras| / max |keras|
    # Mean keypoint distance in network-input pixels; None: not a bar (a multi-person network's
    # lossy export, whose maps' maxima are not people: its people are compared instead).
    keypoints: float | None


TOLERANCES = {
    "float32": Tolerance(heatmap=1e-4, keypoints=0.2),
    "float16": Tolerance(heatmap=1e-2, keypoints=0.5),
    "dynamic": Tolerance(heatmap=5e-2, keypoints=1.0),
    "int8": Tolerance(heatmap=0.25, keypoints=2.0),
}


# ----- sample inputs ----------------------------------------------------------


@dataclasses.dataclass
class SampleSet:
    """Inputs for parity checks.

    ``images`` / ``encoded`` are whole pictures for the SavedModel's photo
    signatures; ``crops`` are network inputs (float32 [N, H, W, 3] in [0, 1]).
    """

    description: str
    images: list  # uint8 (H, W, 3) arrays, sizes may differ
    encoded: list  # the same images as PNG/JPEG bytes
    crops: np.ndarray


def default_photo_dir() -> str | None:
    """``../shared/data/people`` beside the project checkout, if it exists."""
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "people"
    return str(path) if path.is_dir() else None


def whole_image_crop(image, input_size):
    """(crop float32 [H, W, 3] in [0, 1], forward matrix [3, 3]) for a uint8 picture.

    The crop of the whole image as ``prediction.estimator.PoseEstimator`` and the
    SavedModel's ``serving_default`` make it: the box (0, 0, W, H) through
    ``data.crop.box_crop_matrix``.
    """
    height, width = image.shape[:2]
    matrix = box_crop_matrix(whole_image_box(width, height), input_size)
    crop = transforms.warp_image(image, matrix, input_size) / 255.0
    return crop.numpy(), matrix.numpy()


def photo_samples(directory: str, input_size, limit: int = DEFAULT_NUM_SAMPLES) -> SampleSet:
    """The first ``limit`` photos of ``directory`` (sorted by name) and their whole-image crops."""
    names = sorted(n for n in os.listdir(directory) if n.lower().endswith(PHOTO_EXTENSIONS))[:limit]
    if not names:
        raise ValueError(f"No photos ({', '.join(PHOTO_EXTENSIONS)}) in {directory!r}.")
    encoded = [Path(directory, name).read_bytes() for name in names]
    images = [
        tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False).numpy()
        for data in encoded
    ]
    crops = np.stack([whole_image_crop(image, input_size)[0] for image in images])
    return SampleSet(f"{len(names)} photos from {directory}", images, encoded, crops)


def crop_samples(crops, description: str) -> SampleSet:
    """Pipeline crops as samples; as pictures they are the crops themselves in uint8."""
    crops = np.asarray(crops, np.float32)
    images = [np.round(np.clip(crop, 0.0, 1.0) * 255.0).astype(np.uint8) for crop in crops]
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    return SampleSet(description, images, encoded, crops)


def synthetic_samples(input_size, limit: int = DEFAULT_NUM_SAMPLES) -> SampleSet:
    """Held-out synthetic figures, drawn at the network input size, as pictures."""
    from tf_hourglass.data.synthetic import SyntheticFigures

    figures = SyntheticFigures(image_size=tuple(input_size), seed=0)
    images, _ = figures.as_arrays(limit, start=SYNTHETIC_HELDOUT_START)
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    crops = np.stack([whole_image_crop(image, input_size)[0] for image in images])
    return SampleSet(f"{limit} synthetic figures", list(images), encoded, crops)


# ----- parity -----------------------------------------------------------------


def keras_heatmaps(model, crops, batch_size: int = 16) -> np.ndarray:
    """The Keras model's last-stack K keypoint heatmaps for float crops."""
    outputs = [
        keypoint_heatmaps(model, tf.convert_to_tensor(crops[start : start + batch_size])).numpy()
        for start in range(0, len(crops), batch_size)
    ]
    return np.concatenate(outputs).astype(np.float32)


@dataclasses.dataclass
class Parity:
    """How far an exported model's outputs are from the Keras model's."""

    mean_keypoint_distance: float  # network-input pixels
    max_keypoint_distance: float
    num_samples: int
    max_heatmap_error: float | None = None  # None when the export returns keypoints only
    heatmap_peak: float | None = None  # max |keras heatmap| over the samples

    @property
    def relative_heatmap_error(self) -> float | None:
        if self.max_heatmap_error is None:
            return None
        return self.max_heatmap_error / max(self.heatmap_peak, 1e-12)

    def describe(self) -> str:
        heatmaps = (
            ""
            if self.max_heatmap_error is None
            else f"max heatmap error {self.max_heatmap_error:.3g} ({self.relative_heatmap_error:.2e} of the "
            f"peak {self.heatmap_peak:.3g}), "
        )
        return (
            f"{heatmaps}keypoints {self.mean_keypoint_distance:.3f} px mean / "
            f"{self.max_keypoint_distance:.2f} px max, {self.num_samples} samples"
        )


def keypoint_distances(reference, keypoints) -> np.ndarray:
    return np.linalg.norm(np.asarray(keypoints, np.float64) - np.asarray(reference, np.float64), axis=-1)


def keypoint_parity(reference_keypoints, keypoints) -> Parity:
    """Parity of keypoints alone (network-input pixels), for exports that return no heatmaps."""
    distances = keypoint_distances(reference_keypoints, keypoints)
    return Parity(
        mean_keypoint_distance=float(np.mean(distances)),
        max_keypoint_distance=float(np.max(distances)),
        num_samples=len(distances),
    )


def heatmap_parity(
    reference, heatmaps, codec: HeatmapCodec, reference_keypoints=None, keypoints=None
) -> Parity:
    """Parity of heatmaps, and of keypoints (input pixels; decoded from the heatmaps when not given)."""
    reference = np.asarray(reference, np.float32)
    heatmaps = np.asarray(heatmaps, np.float32)
    if reference.shape != heatmaps.shape:
        raise VerificationError(
            f"The exported model returns heatmaps of shape {heatmaps.shape}; the Keras model {reference.shape}."
        )
    if reference_keypoints is None:
        reference_keypoints = codec.decode(reference)[0].numpy()
    if keypoints is None:
        keypoints = codec.decode(heatmaps)[0].numpy()
    parity = keypoint_parity(reference_keypoints, keypoints)
    parity.max_heatmap_error = float(np.max(np.abs(heatmaps - reference)))
    parity.heatmap_peak = float(np.max(np.abs(reference)))
    parity.num_samples = max(len(reference), parity.num_samples)
    return parity


def check_parity(parity: Parity, tolerance: Tolerance, label: str) -> str:
    """The parity line; raises ``VerificationError`` beyond the tolerance."""
    heatmaps_ok = parity.relative_heatmap_error is None or parity.relative_heatmap_error <= tolerance.heatmap
    if tolerance.keypoints is None:
        ok, bar = heatmaps_ok, f"[tolerance {tolerance.heatmap:g} of the peak; keypoints reported only]"
    else:
        ok = heatmaps_ok and parity.mean_keypoint_distance <= tolerance.keypoints
        bar = f"[tolerance {tolerance.heatmap:g} of the peak, {tolerance.keypoints:g} px]"
    line = f"parity {label} vs Keras: {parity.describe()} {bar}: {'OK' if ok else 'FAILED'}"
    if not ok:
        raise VerificationError(line)
    return line


# ----- accuracy on held-out data ---------------------------------------------


@dataclasses.dataclass
class AccuracyComparison:
    metric: str  # "PCKh@0.5" or "PCK@0.2"
    keras: float
    exported: float
    num_persons: int

    @property
    def drop(self) -> float:
        return self.keras - self.exported


def compare_accuracy(keras_model, exported_model, dataset, codec, spec) -> AccuracyComparison:
    """PCK/PCKh of both models on an evaluation dataset (``make_dataset(..., with_metadata=True)``)."""
    keras_predictions = evaluator.predict_dataset(keras_model, dataset, codec)
    exported_predictions = evaluator.predict_dataset(exported_model, dataset, codec)
    return AccuracyComparison(
        metric=evaluator.metric_name(spec),
        keras=float(evaluator.score(spec, keras_predictions)["total"]),
        exported=float(evaluator.score(spec, exported_predictions)["total"]),
        num_persons=len(keras_predictions.keypoints),
    )


def check_accuracy(comparison: AccuracyComparison, max_drop: float, label: str) -> str:
    """The accuracy line; raises ``VerificationError`` when the drop exceeds ``max_drop`` points."""
    ok = comparison.drop <= max_drop
    line = (
        f"{comparison.metric} on {comparison.num_persons} held-out people: Keras {comparison.keras:.2f}%, "
        f"{label} {comparison.exported:.2f}% (drop {comparison.drop:.2f} points, at most {max_drop:g}): "
        f"{'OK' if ok else 'FAILED'}"
    )
    if not ok:
        raise VerificationError(line)
    return line


# ----- size ---------------------------------------------------------------------


def size_on_disk(path: str) -> int:
    """Bytes of a file, or of all files under a directory."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names
        )
    return os.path.getsize(path)


def format_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"
