"""Single-person pose estimation on whole photos: ``PoseEstimator``.

``PoseEstimator.predict(image, box)`` does what the evaluation pipeline does
for a dataset record, for one uncropped photo: the person's square crop comes
from the box exactly as the readers make it (``data.crop``: the box's longer
side times 1.25, centred on the box), the crop is warped with
``transforms.warp_image``, and ``prediction.single_person.predict_keypoints`` decodes the
model's last-stack heatmaps with the ``HeatmapCodec`` and maps the keypoints
back to the photo. Without a box, the whole image is the box.

Models come as Keras objects or files (``.keras``, a training workdir holding
``final.keras``, a SavedModel directory, a ``.tflite`` or an ``.onnx`` file), loaded by
``model_loader.load_model_for_inference``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from tf_hourglass.data import keypoint_specs, transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.crop import MIN_BOX_OVERLAP, box_crop_matrix, keypoints_box, whole_image_box
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.model.info import SINGLE_PERSON, model_info
from tf_hourglass.model_loader import InferenceModel, load_pose_model
from tf_hourglass.prediction.multi_person import codec_for_model, predict_people
from tf_hourglass.prediction.single_person import predict_keypoints

# ----------------------------------------------------------------------------
# Images and boxes
# ----------------------------------------------------------------------------


def to_rgb_float(image) -> np.ndarray:
    """An image as float32 RGB (H, W, 3) in [0, 1].

    Accepts uint8 (0..255) and uint16 (0..65535) images, and float images in
    [0, 1]; grayscale (H, W) or (H, W, 1) is repeated to RGB, and the alpha
    channel of RGBA (H, W, 4) is dropped.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            "image must be (H, W) grayscale, or (H, W, C) with C = 1 (grayscale), 3 (RGB) or 4 (RGBA) "
            f"and H, W > 0; received shape {image.shape}."
        )
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
        low, high = float(np.min(image)), float(np.max(image))
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(
                f"A float image must hold values in [0, 1]; received values in [{low}, {high}]. "
                "Pass uint8 images, or divide by 255."
            )
        return image
    raise ValueError(f"image dtype must be uint8, uint16 or float in [0, 1]; received {image.dtype}.")


def check_box(box, image_width: int, image_height: int) -> tuple[float, float, float, float]:
    """A person box (x, y, w, h) as floats, checked against the image.

    Raises:
        ValueError: the box is not four finite numbers, has a zero or negative
            side, or has less than ``MIN_BOX_OVERLAP`` of its width or height
            on the image.
    """
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError) as error:
        raise ValueError(f"box must be four numbers (x, y, w, h); received {box!r}.") from error
    if len(values) != 4:
        raise ValueError(f"box must be four numbers (x, y, w, h); received {box!r}.")
    x, y, w, h = values
    size = f"image of width {image_width} and height {image_height}"
    if not all(math.isfinite(v) for v in values) or w <= 0 or h <= 0:
        raise ValueError(f"box (x, y, w, h) = {values} must be finite with w > 0 and h > 0 (the {size}).")
    overlap_w = min(x + w, image_width) - max(x, 0.0)
    overlap_h = min(y + h, image_height) - max(y, 0.0)
    if overlap_w <= 0 or overlap_h <= 0:
        raise ValueError(f"box (x, y, w, h) = {values} lies outside the {size}.")
    if overlap_w < MIN_BOX_OVERLAP * w or overlap_h < MIN_BOX_OVERLAP * h:
        raise ValueError(
            f"box (x, y, w, h) = {values} has less than {MIN_BOX_OVERLAP:.0%} of its width or height on the "
            f"{size}; give a box around the person."
        )
    return values


# ----------------------------------------------------------------------------
# The estimator
# ----------------------------------------------------------------------------


def resolve_spec(spec, num_keypoints: int, model_name: str = "the model") -> KeypointSpec:
    """A spec object, a dataset name ("mpii", "lsp", ...), or None (then the model's own must be given)."""
    if spec is None:
        raise ValueError(
            f"{model_name} predicts {num_keypoints} keypoints and does not say which, so a keypoint spec is "
            "needed (only 16-keypoint models default to MPII); pass spec= a KeypointSpec or a name such as "
            "'lsp' or 'coco'."
        )
    if isinstance(spec, str):
        spec = keypoint_specs.get_spec(spec)
    if spec.num_keypoints != num_keypoints:
        raise ValueError(
            f"{model_name} predicts {num_keypoints} keypoints but the spec {spec.name!r} has "
            f"{spec.num_keypoints}."
        )
    return spec


class PoseEstimator:
    """Keypoints of one person in a photo, in that photo's pixels.

    Args:
        model: anything ``model_loader.load_model_for_inference`` takes (a Keras model, a
            ``.keras`` file, a workdir, a SavedModel directory, a ``.tflite``, an ``.onnx``;
            a multi-person model also as its network exported to ``.tflite`` or ``.onnx``).
        spec: the model's keypoints (a ``KeypointSpec`` or a dataset name);
            default: the model's own (saved with it by training or conversion),
            else MPII, which needs a 16-keypoint model.
        codec: decodes the heatmaps; default: the model's own codec settings
            (sigma, peak and decode method of its training run, see
            ``ModelInfo``; scores = heatmap maxima / peak, so near 1 for
            confident joints).
        flip_test: also run the mirrored crop and average the heatmaps.
        precision: what a Keras model's network computes in: "auto" (bfloat16
            on CPUs with bfloat16 instructions, else float32; see
            ``precision.resolve_inference_precision``), "float32" or
            "bfloat16". Heatmaps and decoding are float32 either way; exported
            files run as written, multi-person models in float32.
            ``self.precision`` and ``self.precision_reason`` say what was chosen.

    ``predict`` returns ``{"keypoints": (K, 2) float32 (x, y) image pixels,
    "scores": (K,) float32, "box": (x, y, w, h) used}``.

    A multi-person model (Associative Embedding) finds every person in the
    whole photo instead, as the official evaluation does
    (``prediction.multi_person``): ``predict(image)`` (no box) returns
    ``{"keypoints": (P, K, 2) photo pixels, "keypoint_scores": (P, K),
    "scores": (P,)}``, people sorted by score, P = 0 for a photo with nobody.
    Its ``flip_test`` defaults to True (the official test always flips), and
    ``scales`` are its input scales (the official multi-scale test: 2, 1, 0.5).

    ``person_model``: a multi-person model (Keras, ``.keras``, or its network as
    ``.tflite``/``.onnx``) that finds the people for a single-person ``model``:
    the Associative Embedding paper's top-down refinement. The person model
    finds every person in the whole photo (flip test on, ``scales``); each
    person's box is the box of the joints it found (``crop.keypoints_box``),
    cropped as any box (``crop.box_crop_matrix``), and the single-person model
    estimates the person on that crop (``flip_test`` its own). ``predict(image)``
    then returns ``{"keypoints": (P, K, 2), "keypoint_scores": (P, K),
    "scores": (P,), "boxes": (P, 4)}``: the single-person model's K joints
    (``self.spec``) and scores, each person's score and box from the person
    model, strongest first. A person whose joints span no pixel (one found
    joint) has no box and is left out. ``self.multi_person`` is True (every
    person in a photo); ``self.person_model`` is the loaded person model.
    """

    def __init__(
        self,
        model,
        spec=None,
        codec: HeatmapCodec | None = None,
        flip_test: bool | None = None,
        scales=(1.0,),
        precision: str = "auto",
        person_model=None,
    ):
        loaded = load_pose_model(model, precision)
        self.multi_person = not isinstance(loaded, InferenceModel)
        self.person_model = None
        self.scales = tuple(float(s) for s in scales)
        if self.multi_person:
            if person_model is not None:
                raise ValueError(
                    f"{getattr(model, 'name', None) or os.fspath(model)} is a multi-person model: it finds every "
                    "person itself; a person model "
                    "(--person-model, person_model=) finds the people for a single-person model."
                )
            self.precision, self.precision_reason = "float32", "multi-person models run in float32"
            self._init_multi_person(loaded, spec, flip_test)
            return
        flip_test = bool(flip_test)
        self.model = loaded
        self.precision, self.precision_reason = loaded.precision, loaded.precision_reason
        if self.model.info.kind != SINGLE_PERSON:
            raise ValueError(
                f"{self.model.name} is a {self.model.info.kind} model; PoseEstimator estimates one person "
                "per box with a single-person model."
            )
        self.spec = resolve_spec(spec or self.model.spec, self.model.num_keypoints, self.model.name)
        if codec is None:
            codec = self.model.codec()
        if (codec.input_size, codec.heatmap_size) != (self.model.input_size, self.model.heatmap_size):
            raise ValueError(
                f"codec sizes (input {codec.input_size}, heatmap {codec.heatmap_size}) differ from the "
                f"model's (input {self.model.input_size}, heatmap {self.model.heatmap_size})."
            )
        self.codec = codec
        self.flip_test = bool(flip_test)
        flip_permutation = tf.constant(self.spec.flip_permutation(), tf.int32) if flip_test else None
        height, width = codec.input_size

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, height, width, 3], tf.float32),
                tf.TensorSpec([None, 3, 3], tf.float32),
            ]
        )
        def predict_crops(crops, matrices):
            keypoints, _, scores = predict_keypoints(self.model, crops, matrices, codec, flip_permutation)
            return keypoints, scores

        self._predict_crops = predict_crops
        if person_model is not None:
            self._init_person_model(person_model)

    def _init_people_finder(self, network_and_model, spec):
        """The multi-person model that finds people: ``model_loader.multi_person_network``'s pair."""
        self._people_network, people_model = network_and_model
        info = model_info(people_model)
        self._people_spec = resolve_spec(
            spec or info.spec or keypoint_specs.COCO, people_model.num_keypoints, people_model.name
        )
        self.people_codec = codec_for_model(people_model)
        return people_model

    def _init_multi_person(self, network_and_model, spec, flip_test):
        self.model = self._init_people_finder(network_and_model, spec)
        self.spec = self._people_spec
        self.flip_test = True if flip_test is None else bool(flip_test)
        self.codec = None  # the single-person heatmap codec

    def _init_person_model(self, person_model):
        loaded = load_pose_model(person_model)
        if isinstance(loaded, InferenceModel):
            raise ValueError(
                f"{loaded.name} is a {loaded.info.kind} model; the person model (--person-model, "
                "person_model=) must be a multi-person (Associative Embedding) model that finds the people."
            )
        self.person_model = self._init_people_finder(loaded, None)
        self._person_model_name = getattr(person_model, "name", None) or os.fspath(person_model)
        self.multi_person = True  # every person in a photo, each through the single-person model

    def _find_people(self, image: np.ndarray, flip: bool):
        """The multi-person model's people in a float RGB photo (``prediction.multi_person.People``)."""
        return predict_people(
            self._people_network,
            image,
            self.people_codec,
            self._people_spec.flip_permutation(),
            scales=self.scales,
            flip=flip,
        )

    def _predict_people(self, image, box, batch_size: int) -> dict:
        if box is not None and self.person_model is None:
            raise ValueError(
                f"{self.model.name} is a multi-person model: it finds every person in the whole photo; give no box."
            )
        if box is not None:
            raise ValueError(
                f"the person model {self._person_model_name} finds each person's box; give no box."
            )
        image = to_rgb_float(image)
        if self.person_model is None:
            people = self._find_people(image, self.flip_test)
            return {
                "keypoints": people.keypoints,
                "keypoint_scores": people.keypoint_scores,
                "scores": people.scores,
            }
        return self._predict_top_down(image, batch_size)

    def _predict_top_down(self, image: np.ndarray, batch_size: int) -> dict:
        """Each person the person model finds, estimated by the single-person model on its box's crop."""
        people = self._find_people(image, flip=True)  # the official multi-person test always flips
        boxes, scores = [], []
        for points, values, score in zip(
            people.keypoints, people.keypoint_scores, people.scores, strict=True
        ):
            box = keypoints_box(points, values > 0)
            if box is not None:
                boxes.append(box)
                scores.append(score)
        keypoints, keypoint_scores = [], []
        for start in range(0, len(boxes), batch_size):
            crops = [self._crop_box(image, box) for box in boxes[start : start + batch_size]]
            points, point_scores = self._predict_crops(
                tf.stack([c[0] for c in crops]), tf.stack([c[1] for c in crops])
            )
            keypoints.append(points.numpy())
            keypoint_scores.append(point_scores.numpy())
        num_keypoints = self.spec.num_keypoints
        return {
            "keypoints": np.concatenate(keypoints) if boxes else np.zeros((0, num_keypoints, 2), np.float32),
            "keypoint_scores": np.concatenate(keypoint_scores)
            if boxes
            else np.zeros((0, num_keypoints), np.float32),
            "scores": np.asarray(scores, np.float32),
            "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        }

    def _crop_box(self, image: np.ndarray, box):
        """(crop, matrix) of a float RGB image for a valid box, as the readers crop a box (``data.crop``)."""
        matrix = box_crop_matrix(box, self.codec.input_size)
        return transforms.warp_image(image, matrix, self.codec.input_size), matrix

    def crop(self, image, box=None):
        """The model input for one person: (crop (H, W, 3) float32 in [0, 1], matrix (3, 3), box).

        ``matrix`` maps image pixels to crop pixels.
        """
        image = to_rgb_float(image)
        height, width = image.shape[:2]
        box = whole_image_box(width, height) if box is None else check_box(box, width, height)
        return (*self._crop_box(image, box), box)

    def predict(self, image, box=None) -> dict:
        """Keypoints of the person in ``box`` (x, y, w, h), or filling the image (every person: see above)."""
        return self.predict_batch([image], [box])[0]

    def predict_batch(self, images, boxes=None, batch_size: int = 16) -> list[dict]:
        """``predict`` for many images (any sizes), ``batch_size`` crops per model call.

        Args:
            images: a sequence of images (or an (N, H, W, C) array).
            boxes: None, or one box (or None) per image.
        """
        images = list(images)
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(
                f"Need one box (or None) per image; received {len(boxes)} boxes for {len(images)} images."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; received {batch_size}.")
        if self.multi_person:
            return [
                self._predict_people(image, box, batch_size) for image, box in zip(images, boxes, strict=True)
            ]
        results = []
        for start in range(0, len(images), batch_size):
            crops = [
                self.crop(image, box)
                for image, box in zip(
                    images[start : start + batch_size], boxes[start : start + batch_size], strict=True
                )
            ]
            keypoints, scores = self._predict_crops(
                tf.stack([c[0] for c in crops]), tf.stack([c[1] for c in crops])
            )
            for points, point_scores, (_, _, box) in zip(
                keypoints.numpy(), scores.numpy(), crops, strict=True
            ):
                results.append({"keypoints": points, "scores": point_scores, "box": box})
        return results
