"""Calibration data for quantisation, and the held-out data that scores the quantised model.

``--calibration`` names the data, in one of three forms:

* ``synthetic``: the built-in synthetic figures (16 MPII joints), drawn at the
  network's input size; held-out figures come from indices no training split
  uses (``verify.SYNTHETIC_HELDOUT_START``).
* ``tfrecord:PATTERN``: shards written by ``python -m tf_hourglass.data.convert``;
  the keypoint spec is read from ``PREFIX.spec.json`` beside them.
* ``FORMAT:ANNOTATIONS[:IMAGES_DIR]``: any reader format (mpii_h5, mpii_json,
  lsp, lspet, flic, coco, custom), e.g. ``lspet:data/joints.mat:data/images``.

A multi-person (Associative Embedding) model calibrates on whole photos
(``load_people_calibration``): ``synthetic`` (the default) is synthetic scenes
(``SyntheticScenes``) drawn 4:3 as a 640x480 photo is, ``coco:ANNOTATIONS[:IMAGES_DIR]``
the photos of a COCO person_keypoints file. Each photo becomes the network
input ``predict_people`` makes of it (``prediction.multi_person.letterbox``:
fitted into the square input, the padding black), every other one mirrored as
the flip test's second input is. Of the photos, the first ``num_calibration``
calibrate and the next ``num_heldout`` (held-out scenes, or the file's next
photos, with their ground truth) score the people found against the Keras
model's (``multi_person_verify``).

Crops come from the evaluation pipeline (``make_dataset(training=False)``:
each annotated person's crop, no augmentation), so calibration sees what the
model sees. Of the usable people in file order, the first ``num_calibration``
calibrate (and fine-tune, for QAT) and the next ``num_heldout`` are held out.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tf_hourglass.data import sources
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.pipeline import InMemorySource, make_dataset
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.export import multi_person_verify
from tf_hourglass.export.verify import SYNTHETIC_HELDOUT_START
from tf_hourglass.prediction.multi_person import letterbox


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


# ----- multi-person models: whole photos -------------------------------------------------

PEOPLE_FORMS = "'synthetic' (scenes) or 'coco:ANNOTATIONS[:IMAGES_DIR]'"
# Calibration scenes alternate between height = 3/4 width (a 640x480 photo, letterboxed) and
# square (filling the input): a letterbox's black bands change the activations' ranges, and
# calibrating on one shape only left a trained network's int8 heatmaps twice as far from
# Keras on the other (0.24 against 0.12 of the peak, BENCHMARKS.md).
SCENE_ASPECTS = (3 / 4, 1.0)


@dataclasses.dataclass
class PeopleCalibration:
    """Network inputs that calibrate a multi-person model, and held-out photos with ground truth."""

    name: str
    crops: np.ndarray  # (N, S, S, 3) float32 in [0, 1]: letterboxed photos, every other mirrored
    heldout: multi_person_verify.PeopleSamples
    heldout_crops: np.ndarray  # the first held-out photos letterboxed, as parity samples

    @property
    def num_heldout(self) -> int:
        return len(self.heldout.images)


def network_inputs(images, side: int) -> np.ndarray:
    """uint8 photos (H, W, 3) as ``predict_people``'s scale-1 inputs (N, side, side, 3), every other mirrored."""
    inputs = [letterbox(np.asarray(image) / np.float32(255.0), side)[0] for image in images]
    return np.stack([x[:, ::-1] if i % 2 else x for i, x in enumerate(inputs)]).astype(np.float32)


def load_people_calibration(
    name: str, input_size, num_calibration: int = 200, num_heldout: int = 200, num_samples: int = 8
) -> PeopleCalibration:
    """Whole photos for a multi-person model (see the module docstring).

    Raises:
        ValueError: another form than ``PEOPLE_FORMS``, or too few photos for both parts.
    """
    if num_calibration < 1 or num_heldout < 1:
        raise ValueError(
            "num_calibration and num_heldout must be >= 1. "
            f"Received: num_calibration={num_calibration}, num_heldout={num_heldout}"
        )
    source = sources.parse_source(name, "calibration")
    side = int(input_size[0])
    if source.kind == "synthetic":
        from tf_hourglass.data.synthetic import SyntheticScenes  # drawing code, loaded only when used

        shapes = [
            SyntheticScenes(image_size=(round(side * aspect), side), seed=0) for aspect in SCENE_ASPECTS
        ]
        images = [shapes[index % len(shapes)].render(index).image for index in range(num_calibration)]
        heldout = multi_person_verify.scene_samples(input_size, limit=num_heldout)
    elif source.kind == "coco":
        photos = multi_person_verify.coco_samples(
            source.annotations,
            source.images_dir or os.path.dirname(source.annotations),
            limit=num_calibration + num_heldout,
        )
        images = photos.images[:num_calibration]
        heldout = multi_person_verify.PeopleSamples(
            f"{len(photos.images) - len(images)} held-out COCO photos of {source.annotations}",
            photos.images[num_calibration:],
            photos.encoded[num_calibration:],
            photos.annotations,
            photos.image_ids[num_calibration:],
        )
        if not heldout.images:
            raise ValueError(
                f"The calibration data {name!r} give {len(images)} photos for calibration and 0 held out; "
                f"both must be >= 1 (asked for num_calibration={num_calibration}, num_heldout={num_heldout})."
            )
    else:
        raise ValueError(
            f"A multi-person model calibrates on whole photos: calibration must be {PEOPLE_FORMS}. "
            f"Received: {name!r}"
        )
    return PeopleCalibration(
        name=name,
        crops=network_inputs(images, side),
        heldout=heldout,
        heldout_crops=network_inputs(heldout.images[:num_samples], side),
    )
