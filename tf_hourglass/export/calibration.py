"""Calibration data for quantisation, and the held-out data that scores the quantised model.

``--calibration`` names the data, in one of three forms:

* ``synthetic``: the built-in synthetic figures (16 MPII joints), drawn at the
  network's input size; held-out figures come from indices no training split
  uses (``verify.SYNTHETIC_HELDOUT_START``).
* ``tfrecord:PATTERN``: shards written by ``python -m tf_hourglass.data.convert``;
  the keypoint spec is read from ``PREFIX.spec.json`` beside them.
* ``FORMAT:ANNOTATIONS[:IMAGES_DIR]``: any reader format (mpii_h5, mpii_json,
  lsp, lspet, flic, coco, custom), e.g. ``lspet:data/joints.mat:data/images``.

Crops come from the evaluation pipeline (``make_dataset(training=False)``:
each annotated person's crop, no augmentation), so calibration sees what the
model sees. Of the usable people in file order, the first ``num_calibration``
calibrate (and fine-tune, for QAT) and the next ``num_heldout`` are held out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_hourglass.data import sources
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.pipeline import InMemorySource, make_dataset
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.export.verify import SYNTHETIC_HELDOUT_START


@dataclasses.dataclass
class CalibrationData:
    """Calibration crops and a held-out evaluation dataset."""

    name: str
    spec: KeypointSpec
    crops: np.ndarray  # (N, H, W, 3) float32 in [0, 1]
    heldout: tf.data.Dataset  # batches of make_dataset(..., with_metadata=True) dicts
    heldout_crops: np.ndarray  # the first held-out crops, as parity samples
    num_heldout: int


def _source(source, input_size, num_calibration, num_heldout):
    """(spec, pipeline source) holding at least the calibration and held-out people."""
    # Synthetic: calibration figures from 0, held-out ones far from any training run's.
    ranges = [(0, num_calibration), (SYNTHETIC_HELDOUT_START, num_heldout)]
    spec, data = sources.open_source(source, synthetic_ranges=ranges, synthetic_image_size=input_size)
    if isinstance(data, InMemorySource) and source.kind != "synthetic":
        data = InMemorySource(data.records[: num_calibration + num_heldout])
    return spec, data


def load_calibration(
    name: str,
    codec: HeatmapCodec,
    num_keypoints: int,
    num_calibration: int = 200,
    num_heldout: int = 200,
    batch_size: int = 16,
    num_samples: int = 8,
) -> CalibrationData:
    """Reads the data ``name`` designates (see the module docstring).

    Raises:
        ValueError: unknown form, a keypoint count that differs from the
            model's, or too few usable people for both parts.
    """
    if num_calibration < 1 or num_heldout < 1:
        raise ValueError(
            "num_calibration and num_heldout must be >= 1. "
            f"Received: num_calibration={num_calibration}, num_heldout={num_heldout}"
        )
    spec, source = _source(
        sources.parse_source(name, "calibration"), codec.input_size, num_calibration, num_heldout
    )
    if spec.num_keypoints != num_keypoints:
        raise ValueError(
            f"The calibration data {name!r} have {spec.num_keypoints} keypoints ({spec.name}); "
            f"the model predicts {num_keypoints}."
        )
    people = make_dataset(
        source, spec, codec, batch_size=batch_size, training=False, with_metadata=True
    ).unbatch()
    crops = [example["images"].numpy() for example in people.take(num_calibration)]
    heldout = people.skip(num_calibration).take(num_heldout).batch(batch_size).cache()
    heldout_crops = [batch["images"].numpy() for batch in heldout]
    if not crops or not heldout_crops:
        raise ValueError(
            f"The calibration data {name!r} give {len(crops)} usable people for calibration and "
            f"{sum(len(c) for c in heldout_crops)} held out; both must be >= 1 "
            f"(asked for num_calibration={num_calibration}, num_heldout={num_heldout})."
        )
    return CalibrationData(
        name=name,
        spec=spec,
        crops=np.stack(crops).astype(np.float32),
        heldout=heldout,
        heldout_crops=np.concatenate(heldout_crops)[:num_samples],
        num_heldout=sum(len(c) for c in heldout_crops),
    )
