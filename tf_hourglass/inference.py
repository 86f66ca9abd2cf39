"""Single-person pose estimation on whole photos: ``PoseEstimator`` and model loading.

``PoseEstimator.predict(image, box)`` does what the evaluation pipeline does
for a dataset record, for one uncropped photo: the person's square crop comes
from the box exactly as the readers make it (``center_scale_from_box``: the
box's longer side times 1.25, centred on the box), the crop is warped with
``transforms.crop_matrix`` / ``warp_image``, the model's last-stack heatmaps are
decoded with the ``HeatmapCodec``, and the keypoints are mapped back to the
photo with the inverse crop matrix. Without a box, the whole image is the box.

Models come as Keras objects or files: ``.keras``, a training workdir holding
``final.keras``, a SavedModel directory or a ``.tflite`` file.
``load_model_for_inference`` turns each into an ``InferenceModel``: a function
from float images in [0, 1] to the last stack's heatmaps, usable inside
``tf.function`` (so also by ``evaluation.evaluator.predict_dataset``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_hourglass.data import keypoint_specs, transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.readers import center_scale_from_box
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.evaluation.evaluator import predict_heatmaps
from tf_hourglass.model import as_stack_list, keypoint_heatmaps

# Signatures tried, in order, in a SavedModel or .tflite file: a dedicated
# "heatmaps" one (tf_hourglass.export), then the standard serving ones.
SIGNATURE_KEYS = ("heatmaps", "serving_default", "serve")


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


class InferenceModel:
    """A pose model as a function: float images (B, H, W, 3) in [0, 1] -> last-stack heatmaps.

    Args:
        call: maps a float32 tensor of images to float32 heatmaps
            (B, Hh, Wh, K); must work inside ``tf.function``.
        input_size: (height, width) of the images it takes.
        heatmap_size: (height, width) of the heatmaps it returns.
        num_keypoints: heatmap channels K.
        name: where the model came from, for messages.
        resources: objects to keep alive as long as ``call`` is used (a loaded
            SavedModel, a TFLite interpreter).
    """

    def __init__(
        self,
        call: Callable,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        num_keypoints: int,
        name: str = "model",
        resources=None,
    ):
        self._call = call
        self.input_size = tuple(int(s) for s in input_size)
        self.heatmap_size = tuple(int(s) for s in heatmap_size)
        self.num_keypoints = int(num_keypoints)
        self.name = name
        self._resources = resources

    def __call__(self, images, training=False):
        # ``training`` is accepted (and ignored) so that code written for Keras
        # models, such as the evaluator, can call this the same way.
        del training
        return self._call(tf.cast(images, tf.float32))

    def __repr__(self):
        return (
            f"InferenceModel({self.name!r}, input_size={self.input_size}, "
            f"heatmap_size={self.heatmap_size}, num_keypoints={self.num_keypoints})"
        )


def _static_size(shape, what: str, name: str) -> tuple[int, int]:
    size = tuple(shape)
    if len(size) != 2 or any(s is None or int(s) <= 0 for s in size):
        raise ValueError(
            f"{name}: the {what} size must be known (height, width); received {size}. "
            "Export the model with a fixed input size."
        )
    return int(size[0]), int(size[1])


def _heatmap_shape(shape, name: str) -> tuple[tuple[int, int], int]:
    """(heatmap_size, num_keypoints) from a (B, Hh, Wh, K) shape."""
    shape = tuple(shape)
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"{name}: heatmaps must have shape (batch, height, width, K); received {shape}.")
    return _static_size(shape[1:3], "heatmap", name), int(shape[-1])


def _last_stack_output(names: Sequence[str], name: str) -> str:
    """The output holding the last stack's heatmaps, among a signature's outputs.

    "heatmaps" if present; else the highest-numbered ``heatmaps_N`` / ``output_N``
    (Keras exports a multi-output model's outputs as output_0, output_1, ...).
    """
    names = list(names)
    if "heatmaps" in names:
        return "heatmaps"
    if len(names) == 1:
        return names[0]
    numbered = []
    for output in names:
        match = re.fullmatch(r"(?:heatmaps|output)_(\d+)", output)
        if match:
            numbered.append((int(match.group(1)), output))
    if numbered and len(numbered) == len(names):
        return max(numbered)[1]
    raise ValueError(
        f"{name}: cannot tell which output holds the last stack's heatmaps; received outputs {names}. "
        "Expected 'heatmaps', or outputs named heatmaps_N or output_N."
    )


def keras_inference_model(model: keras.Model, name: str | None = None) -> InferenceModel:
    """Wraps a Keras pose model (one heatmap output per stack; the last one is used).

    A Convolutional Pose Machine gets its centre map from here and loses its
    background map, so every model looks like images -> K heatmaps.
    """
    name = name or model.name
    input_size = _static_size(model.inputs[0].shape[1:3], "input", name)
    heatmap_size, num_keypoints = _heatmap_shape(as_stack_list(model.outputs)[-1].shape, name)
    if getattr(model, "background_channel", False):
        num_keypoints -= 1  # a CPM's last map is the background

    def call(images):
        return keypoint_heatmaps(model, images)

    return InferenceModel(call, input_size, heatmap_size, num_keypoints, name, resources=model)


def _images_as(images, dtype: tf.DType):
    """Float images in [0, 1] in the dtype a serving signature takes (uint8 means 0..255)."""
    if dtype.is_integer:
        return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), dtype)
    return tf.cast(images, dtype)


def load_saved_model(path: str) -> InferenceModel:
    """A SavedModel's ``heatmaps`` signature, else ``serving_default`` / ``serve``.

    The signature must take one image tensor (B, H, W, 3): float in [0, 1], or
    uint8 in [0, 255]; from its outputs the last stack's heatmaps are used.
    """
    loaded = tf.saved_model.load(path)
    key = next((k for k in SIGNATURE_KEYS if k in loaded.signatures), None)
    if key is None:
        raise ValueError(
            f"SavedModel {path} has none of the signatures {list(SIGNATURE_KEYS)}; "
            f"received {sorted(loaded.signatures)}."
        )
    signature = loaded.signatures[key]
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise ValueError(
            f"SavedModel {path}: signature {key!r} must take one image tensor; received inputs {sorted(inputs)}."
        )
    ((input_name, input_spec),) = inputs.items()
    output_name = _last_stack_output(list(signature.structured_outputs), f"SavedModel {path}")
    input_size = _static_size(input_spec.shape[1:3], "input", f"SavedModel {path}")
    heatmap_size, num_keypoints = _heatmap_shape(
        signature.structured_outputs[output_name].shape, f"SavedModel {path}"
    )

    def call(images):
        outputs = signature(**{input_name: _images_as(images, input_spec.dtype)})
        return tf.cast(outputs[output_name], tf.float32)

    return InferenceModel(call, input_size, heatmap_size, num_keypoints, path, resources=loaded)


def load_tflite(path: str) -> InferenceModel:
    """A ``.tflite`` file run by LiteRT (``pip install ai-edge-litert``), one image at a time.

    Quantized inputs and outputs are (de)quantized with the file's own scale and
    zero point; an integer input without them is taken as 0..255 pixels.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"Running {path} needs LiteRT: pip install 'tf_hourglass[export]'.") from error

    with tf.io.gfile.GFile(path, "rb") as f:
        interpreter = Interpreter(model_content=f.read())
    signatures = interpreter.get_signature_list()
    key = next((k for k in SIGNATURE_KEYS if k in signatures), None)
    if key is None:
        raise ValueError(
            f"TFLite model {path} has none of the signatures {list(SIGNATURE_KEYS)}; received "
            f"{sorted(signatures)}. Convert it with tf.lite.TFLiteConverter.from_saved_model."
        )
    runner = interpreter.get_signature_runner(key)
    input_details = runner.get_input_details()
    if len(input_details) != 1:
        raise ValueError(
            f"TFLite model {path}: signature {key!r} must take one image tensor; "
            f"received inputs {sorted(input_details)}."
        )
    ((input_name, input_detail),) = input_details.items()
    output_details = runner.get_output_details()
    output_name = _last_stack_output(list(output_details), f"TFLite model {path}")
    output_detail = output_details[output_name]
    input_size = _static_size(input_detail["shape"][1:3], "input", f"TFLite model {path}")
    heatmap_size, num_keypoints = _heatmap_shape(output_detail["shape"], f"TFLite model {path}")

    def quantize(image):
        dtype = np.dtype(input_detail["dtype"])
        if dtype.kind == "f":
            return image.astype(dtype)
        scale, zero_point = input_detail["quantization"]
        values = image / scale + zero_point if scale else image * 255.0
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)

    def dequantize(heatmaps):
        scale, zero_point = output_detail["quantization"]
        heatmaps = heatmaps.astype(np.float32)
        return (heatmaps - zero_point) * scale if scale else heatmaps

    def run(images):
        # The converter's default input has batch size 1; one call per image.
        outputs = [dequantize(runner(**{input_name: quantize(image[None])})[output_name]) for image in images]
        if not outputs:
            return np.zeros((0, *heatmap_size, num_keypoints), np.float32)
        return np.concatenate(outputs).astype(np.float32)

    def call(images):
        heatmaps = tf.numpy_function(run, [images], tf.float32, stateful=True)
        heatmaps.set_shape([None, *heatmap_size, num_keypoints])
        return heatmaps

    return InferenceModel(call, input_size, heatmap_size, num_keypoints, path, resources=interpreter)


def load_keras_model(path: str) -> keras.Model:
    """A ``.keras`` file as a Keras model, without its optimizer; the one loader of .keras files.

    safe_mode=True (Keras' default, said explicitly): a .keras file with Python
    lambdas is refused rather than run.
    """
    # Keras says "File not found" for any file that is not a zip archive.
    with tf.io.gfile.GFile(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        raise ValueError(f"{path!r} exists but is not a .keras model (not a zip archive).")
    # Importing tf_hourglass registers StackedHourglass for deserialization.
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def load_keras_file(path: str) -> InferenceModel:
    return keras_inference_model(load_keras_model(path), name=path)


def load_model_for_inference(model) -> InferenceModel:
    """Any supported model as an ``InferenceModel``.

    Args:
        model: an ``InferenceModel``; a Keras model; or a path to a ``.keras``
            file, a training workdir containing ``final.keras``, a SavedModel
            directory or a ``.tflite`` file.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is not a model this function can load (e.g. a
            weights-only ``.weights.h5``, which lacks the model's config).
    """
    if isinstance(model, InferenceModel):
        return model
    if isinstance(model, keras.Model):
        return keras_inference_model(model)
    path = os.fspath(model)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}.")
    if tf.io.gfile.isdir(path):
        if tf.io.gfile.exists(os.path.join(path, "final.keras")):
            return load_keras_file(os.path.join(path, "final.keras"))
        if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            return load_saved_model(path)
        raise ValueError(
            f"Directory {path!r} is neither a training workdir with final.keras nor a SavedModel "
            f"(saved_model.pb); it holds {sorted(tf.io.gfile.listdir(path))[:10]}. A run that has not "
            "finished has only weights (best.weights.h5, checkpoints/), which need the model's config."
        )
    if path.endswith(".keras"):
        return load_keras_file(path)
    if path.endswith(".tflite"):
        return load_tflite(path)
    if path.endswith(".h5"):
        raise ValueError(
            f"{path!r} holds weights only, not the model's config. Build the model (e.g. "
            "tf_hourglass.from_preset(...)), call model.load_weights(path) and pass the model, "
            "or use the run's final.keras."
        )
    raise ValueError(
        f"Unsupported model file {path!r}; expected a .keras file, a training workdir with "
        "final.keras, a SavedModel directory or a .tflite file."
    )


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
            side, or does not overlap the image.
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
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box (x, y, w, h) = {values} lies outside the {size}.")
    return values


def whole_image_box(image_width: int, image_height: int) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(image_width), float(image_height))


# ----------------------------------------------------------------------------
# The estimator
# ----------------------------------------------------------------------------


def resolve_spec(spec, num_keypoints: int, model_name: str = "the model") -> KeypointSpec:
    """A spec object, a dataset name ("mpii", "lsp", ...), or None: MPII for 16 keypoints."""
    if spec is None:
        if num_keypoints != keypoint_specs.MPII.num_keypoints:
            raise ValueError(
                f"{model_name} predicts {num_keypoints} keypoints, so a keypoint spec is needed (the "
                "MPII default has 16); pass spec= a KeypointSpec or a name such as 'lsp' or 'coco'."
            )
        return keypoint_specs.MPII
    if isinstance(spec, str):
        spec = keypoint_specs.get_spec(spec)
    if spec.num_keypoints != num_keypoints:
        raise ValueError(
            f"{model_name} predicts {num_keypoints} keypoints but the spec {spec.name!r} has "
            f"{spec.num_keypoints}."
        )
    return spec


RUN_SETTINGS_FILE = "inference.json"


def run_settings_text(spec: KeypointSpec, sigma: float, peak: float) -> str:
    """The contents of ``inference.json``: the keypoints and the training targets' scale."""
    settings = {
        "spec": keypoint_specs.spec_to_dict(spec),
        "codec": {"sigma": float(sigma), "peak": float(peak)},
    }
    return json.dumps(settings, indent=2) + "\n"


def read_run_settings(model) -> dict:
    """The keypoint spec and codec settings a training run wrote next to its model, if any.

    ``train_and_evaluate`` writes ``inference.json`` into the workdir beside
    ``final.keras``; a model given as that workdir or a file in it finds it.
    Returns {} for anything else.
    """
    if not isinstance(model, (str, os.PathLike)):
        return {}
    path = os.fspath(model)
    folder = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    settings_path = os.path.join(folder, RUN_SETTINGS_FILE)
    if not tf.io.gfile.exists(settings_path):
        return {}
    with tf.io.gfile.GFile(settings_path) as f:
        settings = json.load(f)
    return {
        "spec": keypoint_specs.spec_from_dict(settings["spec"]),
        "codec": {"sigma": settings["codec"]["sigma"], "peak": settings["codec"]["peak"]},
    }


class PoseEstimator:
    """Keypoints of one person in a photo, in that photo's pixels.

    Args:
        model: anything ``load_model_for_inference`` takes (a Keras model, a
            ``.keras`` file, a workdir, a SavedModel directory, a ``.tflite``).
        spec: the model's keypoints (a ``KeypointSpec`` or a dataset name);
            default: the training run's (``inference.json`` in its workdir),
            else MPII, which needs a 16-keypoint model.
        codec: decodes the heatmaps; default ``HeatmapCodec`` with the model's
            input and heatmap sizes and the training run's sigma and peak
            ("quarter" decoding, scores = heatmap maxima / peak).
            A codec with the training run's ``peak`` gives scores near 1 for
            confident joints.
        flip_test: also run the mirrored crop and average the heatmaps.

    ``predict`` returns ``{"keypoints": (K, 2) float32 (x, y) image pixels,
    "scores": (K,) float32, "box": (x, y, w, h) used}``.
    """

    def __init__(self, model, spec=None, codec: HeatmapCodec | None = None, flip_test: bool = False):
        run_settings = read_run_settings(model)
        self.model = load_model_for_inference(model)
        self.spec = resolve_spec(spec or run_settings.get("spec"), self.model.num_keypoints, self.model.name)
        if codec is None:
            codec = HeatmapCodec(
                input_size=self.model.input_size,
                heatmap_size=self.model.heatmap_size,
                **run_settings.get("codec", {}),
            )
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
            heatmaps = predict_heatmaps(self.model, crops, flip_permutation)
            input_keypoints, scores = codec.decode(heatmaps)
            keypoints = transforms.apply_affine(transforms.invert_affine(matrices), input_keypoints)
            return keypoints, scores

        self._predict_crops = predict_crops

    def crop(self, image, box=None):
        """The model input for one person: (crop (H, W, 3) float32 in [0, 1], matrix (3, 3), box).

        ``matrix`` maps image pixels to crop pixels.
        """
        image = to_rgb_float(image)
        height, width = image.shape[:2]
        box = whole_image_box(width, height) if box is None else check_box(box, width, height)
        center, scale = center_scale_from_box(box)
        matrix = transforms.crop_matrix(center, scale, self.codec.input_size)
        return transforms.warp_image(image, matrix, self.codec.input_size), matrix, box

    def predict(self, image, box=None) -> dict:
        """Keypoints of the person in ``box`` (x, y, w, h), or filling the image."""
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
