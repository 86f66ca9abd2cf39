"""Multi-person exports' checks: the same photos through the export and through the Python path.

The Python path is ``prediction.multi_person.predict_people`` on the Keras
model (flip test, one scale, the NumPy grouping with Munkres). The SavedModel
groups in graph ops (``data.grouping_tf``) with another minimum-cost
assignment, so the two may give different people where rounded costs tie;
the bar is accuracy: with ground truth (held-out synthetic scenes by default,
or a COCO person_keypoints file; the exporter takes ``num_heldout`` photos, 200) both are scored
with COCO's keypoint AP and the export fails when they differ by more than
``MAX_AP_DIFFERENCE`` AP points. Always reported: on how many photos both find
the same number of people, and the distance of the keypoints found by both
(people paired in score order), in photo pixels.

An int8 TFLite network (``verify_people_network``) is checked the same way
with its own bar: both go through ``predict_people`` (its outputs dequantised),
on held-out photos with ground truth (``calibration.load_people_calibration``),
and the export fails when its AP is more than ``max_ap_drop`` points
(``MAX_AP_DROP_INT8`` by default) below the Keras model's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_hourglass.evaluation import metrics
from tf_hourglass.export.errors import VerificationError
from tf_hourglass.export.verify import keypoint_distances
from tf_hourglass.model import as_stack_list
from tf_hourglass.prediction.multi_person import People, coco_results, predict_people

MAX_AP_DIFFERENCE = 0.5  # AP points (percent)
# int8 rounds every activation (heatmaps and tags share one scale), so its people may
# differ where detections sit near the threshold or tags near each other: a drop, not equality.
MAX_AP_DROP_INT8 = 2.0  # AP points (percent)
DEFAULT_NUM_PHOTOS = 8
SCENES_HELDOUT_START = (
    1_000_000  # the held-out scenes' first index (seed 0), as verify.SYNTHETIC_HELDOUT_START
)


@dataclasses.dataclass
class PeopleSamples:
    """Photos for the check: uint8 (H, W, 3) arrays, their encoded bytes and, with ground truth, COCO ids."""

    description: str
    images: list
    encoded: list
    annotations: str | dict | None = (
        None  # a COCO person_keypoints JSON (a file, or its document) with image_ids
    )
    image_ids: list | None = None


@dataclasses.dataclass
class PeopleParity:
    """How an export's people (the SavedModel's, or an exported network's) compare with the Python path's."""

    num_images: int
    same_count_images: int  # photos where both find as many people
    num_people_python: int
    num_people_exported: int
    mean_keypoint_distance: float  # photo pixels, joints found by both in people paired by score order
    max_keypoint_distance: float
    ap_python: float | None = None  # COCO keypoint AP, percent; None without ground truth
    ap_exported: float | None = None

    @property
    def ap_difference(self) -> float | None:
        return None if self.ap_python is None else abs(self.ap_exported - self.ap_python)

    @property
    def ap_drop(self) -> float | None:
        return None if self.ap_python is None else self.ap_python - self.ap_exported

    def describe(self) -> str:
        line = (
            f"people counts equal on {self.same_count_images}/{self.num_images} photos "
            f"({self.num_people_exported} vs {self.num_people_python} people), keypoints "
            f"{self.mean_keypoint_distance:.3f} px mean / {self.max_keypoint_distance:.2f} px max"
        )
        if self.ap_python is not None:
            line += (
                f"; COCO AP {self.ap_exported:.2f} vs {self.ap_python:.2f} "
                f"(difference {self.ap_difference:.2f} points)"
            )
        return line


def _decode(encoded: bytes) -> np.ndarray:
    return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False).numpy()


def coco_samples(annotations: str, images_dir: str, limit: int = DEFAULT_NUM_PHOTOS) -> PeopleSamples:
    """The first ``limit`` images of a COCO person_keypoints file that exist under ``images_dir``."""
    with open(annotations) as file:
        data = json.load(file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{annotations}: not a COCO person_keypoints JSON (no 'images' list).")
    encoded, ids = [], []
    for image in data["images"]:
        path = os.path.join(images_dir, str(image.get("file_name", "")))
        if os.path.isfile(path) and len(ids) < limit:
            encoded.append(Path(path).read_bytes())
            ids.append(int(image["id"]))
    if not ids:
        raise ValueError(f"{annotations}: none of its {len(data['images'])} images is under {images_dir!r}.")
    return PeopleSamples(
        f"{len(ids)} COCO photos of {annotations}", [_decode(e) for e in encoded], encoded, annotations, ids
    )


def scene_samples(input_size, limit: int = DEFAULT_NUM_PHOTOS) -> PeopleSamples:
    """Held-out synthetic scenes at the network's input size, with their COCO ground truth.

    Scenes ``SCENES_HELDOUT_START ..`` of seed 0: training draws its scenes from
    index 0 on (``training.multi_person_loop``), thousands, never this far.
    """
    from tf_hourglass.data.synthetic import SyntheticScenes  # drawing code, loaded only when used

    scenes = SyntheticScenes(image_size=tuple(input_size), seed=0)
    document, photos = scenes.coco_ground_truth(range(SCENES_HELDOUT_START, SCENES_HELDOUT_START + limit))
    images = [image for _, image in photos]
    return PeopleSamples(
        f"{limit} held-out synthetic scenes",
        images,
        [tf.io.encode_png(image).numpy() for image in images],
        document,
        [image_id for image_id, _ in photos],
    )


def photo_samples(images: list, encoded: list, description: str) -> PeopleSamples:
    """Photos without ground truth (only the people parity is measured)."""
    return PeopleSamples(description, list(images), list(encoded))


def saved_model_people(outputs: dict, index: int) -> People:
    """Image ``index`` of a signature's outputs as ``People`` (its ``num_people`` rows)."""
    count = int(outputs["num_people"][index])
    return People(
        keypoints=np.asarray(outputs["keypoints"][index, :count]),
        keypoint_scores=np.asarray(outputs["keypoint_scores"][index, :count]),
        scores=np.asarray(outputs["scores"][index, :count]),
    )


def compare_people(reference: list[People], exported: list[People]) -> tuple[int, list[float]]:
    """(photos with equal counts, distances of the joints both found in people paired by score order)."""
    same, distances = 0, []
    for ours, theirs in zip(reference, exported, strict=True):
        same += len(ours) == len(theirs)
        paired = min(len(ours), len(theirs))
        both = (ours.keypoint_scores[:paired] > 0) & (theirs.keypoint_scores[:paired] > 0)
        distance = keypoint_distances(ours.keypoints[:paired], theirs.keypoints[:paired])
        distances.extend(distance[both].tolist())
    return same, distances


def coco_ap(annotations: str | dict, people: list[People], image_ids: list) -> float:
    """COCO keypoint AP in percent of ``people`` (one entry per image id) against ``annotations``,
    a COCO person_keypoints file or its document."""
    if isinstance(annotations, dict):  # pycocotools reads files: a temporary one, removed after
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "ground_truth.json")
            with open(path, "w") as file:
                json.dump(annotations, file)
            return coco_ap(path, people, image_ids)
    results = []
    for found, image_id in zip(people, image_ids, strict=True):
        results += coco_results(found, image_id)
    return 100.0 * metrics.coco_keypoint_ap(annotations, results, image_ids=image_ids)["AP"]


def verify_people_saved_model(
    path: str, model, codec, flip_permutation, samples: PeopleSamples
) -> PeopleParity:
    """Runs ``serving_default`` (one photo per request) and ``serving_bytes`` (all at once) of the
    SavedModel at ``path`` and the Python path on ``samples``; raises ``VerificationError`` when the
    two signatures disagree."""
    loaded = tf.saved_model.load(path)
    serving_default = loaded.signatures["serving_default"]

    network = python_path_network(model)
    reference, exported = [], []
    for image in samples.images:
        reference.append(predict_people(network, image / np.float32(255.0), codec, flip_permutation))
        outputs = {k: v.numpy() for k, v in serving_default(images=tf.constant(image[None])).items()}
        exported.append(saved_model_people(outputs, 0))
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(samples.encoded))
    from_bytes = {k: v.numpy() for k, v in from_bytes.items()}
    for index, people in enumerate(exported):
        other = saved_model_people(from_bytes, index)
        if len(other) != len(people) or np.max(np.abs(other.keypoints - people.keypoints), initial=0) > 1e-2:
            raise VerificationError(
                f"serving_bytes and serving_default disagree on photo {index}: "
                f"{len(other)} and {len(people)} people."
            )
    return people_parity(reference, exported, samples)


def python_path_network(model):
    """The Keras model as ``predict_people`` runs it: inputs -> its last stack."""

    def network(inputs):
        return as_stack_list(model(inputs, training=False))[-1]

    return network


def people_parity(reference: list[People], exported: list[People], samples: PeopleSamples) -> PeopleParity:
    """The people of both on ``samples`` compared; their COCO AP when the samples have ground truth."""
    same, distances = compare_people(reference, exported)
    parity = PeopleParity(
        num_images=len(samples.images),
        same_count_images=same,
        num_people_python=sum(len(p) for p in reference),
        num_people_exported=sum(len(p) for p in exported),
        mean_keypoint_distance=float(np.mean(distances)) if distances else 0.0,
        max_keypoint_distance=float(np.max(distances)) if distances else 0.0,
    )
    if samples.annotations is not None:
        parity.ap_python = coco_ap(samples.annotations, reference, samples.image_ids)
        parity.ap_exported = coco_ap(samples.annotations, exported, samples.image_ids)
    return parity


def verify_people_network(network, model, codec, flip_permutation, samples: PeopleSamples) -> PeopleParity:
    """``predict_people`` with an exported ``network`` (``model_loader.ExportedPeopleNetwork``) and with
    the Keras ``model`` on ``samples``, the flip test on, compared."""
    keras_network = python_path_network(model)
    reference, exported = [], []
    for image in samples.images:
        pixels = image / np.float32(255.0)
        reference.append(predict_people(keras_network, pixels, codec, flip_permutation))
        exported.append(predict_people(network, pixels, codec, flip_permutation))
    return people_parity(reference, exported, samples)


def check_people_parity(
    parity: PeopleParity,
    label: str,
    max_ap_difference: float = MAX_AP_DIFFERENCE,
    *,
    max_ap_drop: float | None = None,
    reference: str = "the Python path",
) -> str:
    """The parity line; raises ``VerificationError`` when the AP differs by more than ``max_ap_difference``
    or, given ``max_ap_drop`` (an int8 export's bar), is lower by more than that."""
    if parity.ap_python is None:
        ok, bar = True, "[no ground truth: AP not compared]"
    elif max_ap_drop is not None:
        ok, bar = parity.ap_drop <= max_ap_drop, f"[AP drop at most {max_ap_drop:g} points]"
    else:
        ok, bar = parity.ap_difference <= max_ap_difference, f"[AP within {max_ap_difference:g} points]"
    line = f"parity {label} vs {reference}: {parity.describe()} {bar}: {'OK' if ok else 'FAILED'}"
    if not ok:
        raise VerificationError(line)
    return line
