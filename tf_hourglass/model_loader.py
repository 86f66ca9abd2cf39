"""Pose models as functions from crops to heatmaps: the one model loader and TFLite runner.

``load_model_for_inference`` takes a Keras model or a file: ``.keras``, a
training workdir holding ``final.keras``, a SavedModel directory or a
``.tflite`` file, and returns an ``InferenceModel``: a function from float
images in [0, 1] to the last stack's heatmaps, usable inside ``tf.function``
(so by ``prediction.single_person.predict_keypoints`` and the evaluator). ``load_keras_model``
is the loader of Keras models (a ``.keras`` file or a workdir), which export
needs as Keras objects. ``TFLiteRunner`` runs a ``.tflite`` file with its
(de)quantisation, and ``numpy_inference_model`` makes any NumPy heatmap
function (TFLite, ONNX Runtime, TensorRT) an ``InferenceModel``.

Every loaded model carries its ``ModelInfo`` (``model/info.py``: keypoint
spec, codec settings, kind), read by ``read_model_info``: a ``.keras`` model's
own (saved in its config), else the info file an export writes beside its
file (``run_files.info_path``), else the ``inference.json`` that earlier
versions wrote beside a model, else what the network implies (16 keypoints:
MPII). ``InferenceModel.spec`` and ``InferenceModel.codec()`` give the rest
of the package one answer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.model import as_stack_list, keypoint_heatmaps
from tf_hourglass.model import presets as architecture_presets
from tf_hourglass.model.folding import fold_batch_norms
from tf_hourglass.model.info import MULTI_PERSON, SINGLE_PERSON, ModelInfo, default_spec, model_info
from tf_hourglass.precision import resolve_inference_precision
from tf_hourglass.run_files import MODEL_FILE, ONNX_INFO_KEY, RUN_SETTINGS_FILE, info_path
from tf_hourglass.weights import pretrained

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
        info: its ``ModelInfo`` (default: what K keypoints imply, MPII for 16).
        precision: what the network computes in ("float32", "bfloat16"), or
            "as exported" for a file that runs as it was written.
        precision_reason: why, for messages ("auto: this CPU computes bfloat16 natively ...").
    """

    def __init__(
        self,
        call: Callable,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        num_keypoints: int,
        name: str = "model",
        resources=None,
        info: ModelInfo | None = None,
        precision: str = "as exported",
        precision_reason: str = "an exported model runs in the precision it was written in",
    ):
        self._call = call
        self.input_size = tuple(int(s) for s in input_size)
        self.heatmap_size = tuple(int(s) for s in heatmap_size)
        self.num_keypoints = int(num_keypoints)
        self.name = name
        self._resources = resources
        self.info = info or ModelInfo(spec=default_spec(self.num_keypoints), input_size=self.input_size)
        self.precision = precision
        self.precision_reason = precision_reason

    @property
    def spec(self):
        """The model's keypoints (a ``KeypointSpec``), or None when nothing says which they are."""
        return self.info.spec

    def codec(self, decode_method: str | None = None) -> HeatmapCodec:
        """The ``HeatmapCodec`` that decodes this model's heatmaps, from its saved settings.

        Without a background channel: this model's heatmaps are its K keypoint maps only.
        """
        codec = self.info.codec(self.input_size, self.heatmap_size, decode_method)
        return dataclasses.replace(codec, background_channel=False)

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


def keras_inference_model(
    model: keras.Model, name: str | None = None, precision: str = "float32"
) -> InferenceModel:
    """Wraps a Keras pose model (one heatmap output per stack; the last one is used).

    A Convolutional Pose Machine gets its centre map from here and loses its
    background map, so every model looks like images -> K heatmaps. What runs
    is the model's inference graph (``folding.fold_batch_norms``: BatchNorms
    after convolutions folded into them) in ``precision`` ("float32",
    "bfloat16" or "auto", see ``precision.resolve_inference_precision``);
    the heatmaps are float32 either way, and ``model`` is not changed.
    """
    name = name or model.name
    input_size = _static_size(model.inputs[0].shape[1:3], "input", name)
    heatmap_size, num_keypoints = _heatmap_shape(as_stack_list(model.outputs)[-1].shape, name)
    if getattr(model, "background_channel", False):
        num_keypoints -= 1  # a CPM's last map is the background
    precision, reason = resolve_inference_precision(precision)
    network = fold_batch_norms(model, None if precision == "float32" else precision)

    def call(images):
        return keypoint_heatmaps(model, images, network=network)

    return InferenceModel(
        call,
        input_size,
        heatmap_size,
        num_keypoints,
        name,
        resources=(model, network),
        info=model_info(model),
        precision=precision,
        precision_reason=reason,
    )


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

    info = read_model_info(path, ModelInfo(spec=default_spec(num_keypoints), input_size=input_size))
    return InferenceModel(call, input_size, heatmap_size, num_keypoints, path, resources=loaded, info=info)


def numpy_inference_model(
    run: Callable,
    input_size,
    heatmap_size,
    num_keypoints: int,
    name: str = "model",
    resources=None,
    info: ModelInfo | None = None,
) -> InferenceModel:
    """A NumPy function (float32 crops [B, H, W, 3] -> heatmaps [B, Hh, Wh, K]) as an ``InferenceModel``.

    For TFLite, ONNX Runtime and TensorRT runners, so that the evaluator scores
    exported models with the very code that scores Keras models.
    """
    heatmap_size = tuple(int(s) for s in heatmap_size)

    def call(images):
        heatmaps = tf.numpy_function(
            lambda crops: np.asarray(run(crops), np.float32), [images], tf.float32, stateful=True
        )
        heatmaps.set_shape([None, *heatmap_size, num_keypoints])
        return heatmaps

    return InferenceModel(
        call, input_size, heatmap_size, num_keypoints, name, resources=resources or run, info=info
    )


class TFLiteRunner:
    """Runs a ``.tflite`` file with LiteRT (``pip install ai-edge-litert``; XNNPACK on CPU), one crop at a time.

    Uses the file's ``heatmaps`` signature, else ``serving_default`` / ``serve``,
    which must take one image tensor (B, H, W, 3); from its outputs the last
    stack's heatmaps are used. Takes and returns float32: crops in [0, 1] are
    quantised to the input's dtype and heatmaps dequantised, with the file's own
    scale and zero point; an integer input without them is taken as 0..255 pixels.

    Args:
        num_threads: LiteRT's CPU threads (None: its default).
    """

    def __init__(self, path: str, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(f"Running {path} needs LiteRT: pip install 'tf_hourglass[export]'.") from error

        with tf.io.gfile.GFile(path, "rb") as f:
            content = f.read()
        try:
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        except ValueError as error:  # LiteRT's message does not name the file
            raise ValueError(f"{path} is not a TFLite model LiteRT can load: {error}") from None
        signatures = self.interpreter.get_signature_list()
        key = next((k for k in SIGNATURE_KEYS if k in signatures), None)
        if key is None:
            raise ValueError(
                f"TFLite model {path} has none of the signatures {list(SIGNATURE_KEYS)}; received "
                f"{sorted(signatures)}. Convert it with tf.lite.TFLiteConverter.from_saved_model."
            )
        self._runner = self.interpreter.get_signature_runner(key)
        input_details = self._runner.get_input_details()
        if len(input_details) != 1:
            raise ValueError(
                f"TFLite model {path}: signature {key!r} must take one image tensor; "
                f"received inputs {sorted(input_details)}."
            )
        ((self._input_name, self.input),) = input_details.items()
        output_details = self._runner.get_output_details()
        self._output_name = _last_stack_output(list(output_details), f"TFLite model {path}")
        self.output = output_details[self._output_name]
        self.input_size = _static_size(self.input["shape"][1:3], "input", f"TFLite model {path}")
        self.heatmap_size, self.num_keypoints = _heatmap_shape(self.output["shape"], f"TFLite model {path}")

    @property
    def heatmap_shape(self) -> tuple[int, ...]:
        return (*self.heatmap_size, self.num_keypoints)

    def _quantize(self, crop):
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind == "f":
            return crop.astype(dtype)
        scale, zero_point = self.input["quantization"]
        values = crop / scale + zero_point if scale else crop * 255.0
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)

    def _dequantize(self, heatmaps):
        scale, zero_point = self.output["quantization"]
        heatmaps = heatmaps.astype(np.float32)
        return (heatmaps - zero_point) * scale if scale else heatmaps

    def __call__(self, crops) -> np.ndarray:
        """Heatmaps float32 [N, h, w, K] for crops float32 [N, H, W, 3] in [0, 1]."""
        # The converter's default input has batch size 1; one call per crop.
        outputs = [
            self._dequantize(
                self._runner(**{self._input_name: self._quantize(crop[None])})[self._output_name]
            )
            for crop in np.asarray(crops, np.float32)
        ]
        if not outputs:
            return np.zeros((0, *self.heatmap_shape), np.float32)
        return np.concatenate(outputs).astype(np.float32)


def _runner_model(runner, path: str) -> InferenceModel:
    """A file's runner (``TFLiteRunner``, ``OnnxRunner``) as an ``InferenceModel`` with the file's info."""
    info = read_model_info(
        path, ModelInfo(spec=default_spec(runner.num_keypoints), input_size=runner.input_size)
    )
    return numpy_inference_model(
        runner,
        runner.input_size,
        runner.heatmap_size,
        runner.num_keypoints,
        path,
        resources=runner,
        info=info,
    )


def load_tflite(path: str) -> InferenceModel:
    """A ``.tflite`` file (see ``TFLiteRunner``) as an ``InferenceModel``; its info from ``FILE.info.json``."""
    return _runner_model(TFLiteRunner(path), path)


class OnnxRunner:
    """Runs an ONNX network (``export/onnx.py``'s files) with ONNX Runtime on the CPU.

    Takes float32 inputs [N, H, W, 3] in [0, 1] and returns its first output
    float32 [N, h, w, C] (the last stack). ``input_size``, ``heatmap_size`` and
    ``num_keypoints`` (C) are read from the file's shapes.
    """

    def __init__(self, path: str, num_threads: int = 2):
        try:
            import onnxruntime
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"Running {path} needs ONNX Runtime: pip install 'tf_hourglass[export]'."
            ) from error

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ValueError(
                f"{path} is not an ONNX network ONNX Runtime can load: {str(error)[:200]}"
            ) from None
        (self.input,) = self.session.get_inputs()[:1]
        self.input_name = self.input.name
        name = f"ONNX model {path}"
        self.input_size = _static_size(self.input.shape[1:3], "input", name)
        output_shape = [s if isinstance(s, int) else None for s in self.session.get_outputs()[0].shape]
        self.heatmap_size, self.num_keypoints = _heatmap_shape(output_shape, name)

    def __call__(self, crops) -> np.ndarray:
        """Heatmaps float32 [N, h, w, K] for crops float32 [N, H, W, 3] in [0, 1]."""
        return self.session.run(None, {self.input_name: np.asarray(crops, np.float32)})[0]


def load_onnx(path: str) -> InferenceModel:
    """An ``.onnx`` file (see ``OnnxRunner``) as an ``InferenceModel``; its info from its metadata."""
    return _runner_model(OnnxRunner(path), path)


# ----------------------------------------------------------------------------
# What a model file says about itself
# ----------------------------------------------------------------------------


def _read_json(path: str):
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.loads(f.read())
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({str(error)[:100]}).") from error


def _onnx_metadata(path: str, key: str) -> str | None:
    """An ONNX file's metadata entry ``key``, or None (none stored, or no onnx package)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and onnx's own, for a file that is no ONNX model
        raise ValueError(
            f"{path} is not an ONNX network ({type(error).__name__}: {str(error)[:100]})."
        ) from None
    return next((entry.value for entry in proto.metadata_props if entry.key == key), None)


def read_model_info(path: str, network_info: ModelInfo) -> ModelInfo:
    """The ``ModelInfo`` written beside (or inside) a model file, else ``network_info``.

    Looks for the info an export writes (inside a SavedModel and in an ONNX
    file's metadata; ``FILE.info.json`` beside any other file, ``run_files.info_path``), then for an ``inference.json``
    in the model's folder (what training and conversion wrote before models
    carried their info: only the spec, sigma and peak; the rest is
    ``network_info``'s, the facts read off the network itself).

    Raises:
        ValueError: an info file that is no valid JSON or does not fit, naming it.
    """
    path = os.fspath(path)
    if path.endswith(".onnx") and tf.io.gfile.exists(path):
        text = _onnx_metadata(path, ONNX_INFO_KEY)
        if text is not None:
            return ModelInfo.from_json(text, f"{path} (its {ONNX_INFO_KEY} metadata)")
    exported = info_path(path)
    if tf.io.gfile.exists(exported):
        return ModelInfo.from_dict(_read_json(exported), exported)
    folder = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    settings_path = os.path.join(folder, RUN_SETTINGS_FILE)
    if not tf.io.gfile.exists(settings_path):
        return network_info
    settings = _read_json(settings_path)
    try:
        spec = keypoint_specs.spec_from_dict(settings["spec"])
        codec = settings.get("codec", {})
        return dataclasses.replace(
            network_info, spec=spec, sigma=codec.get("sigma", 1.0), peak=codec.get("peak", 1.0)
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"{settings_path}: not the settings a training run writes ({type(error).__name__}: {error})."
        ) from None


def _read_keras_file(path: str) -> keras.Model:
    """A ``.keras`` file as a Keras model, without its optimizer.

    safe_mode=True (Keras' default, said explicitly): a .keras file with Python
    lambdas is refused rather than run.
    """
    # Keras says "File not found" for any file that is not a zip archive.
    with tf.io.gfile.GFile(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        raise ValueError(f"{path!r} exists but is not a .keras model (not a zip archive).")
    # Importing tf_hourglass registers StackedHourglass for deserialization.
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    if getattr(model, "pose_info", None) is None and hasattr(model, "image_shape"):
        # Saved before models carried their info: an inference.json beside it says the rest.
        model.pose_info = read_model_info(path, model_info(model))
    return model


def resolve_pretrained(model):
    """A pretrained preset's name (``weights.pretrained.PRETRAINED``) as its cached ``.keras`` file.

    A path that exists wins over a preset of the same name; anything else is returned as is.
    """
    if pretrained.is_pretrained(model) and not os.path.exists(model):
        return pretrained.pretrained_model_path(model)
    return model


def from_preset(preset: str, **overrides) -> keras.Model:
    """A model by preset name: a pretrained one (``hg8_mpii_pv``: downloaded once, with its
    weights and ``ModelInfo``), or an architecture (``hg8``: random weights; keyword
    arguments override its fields, e.g. ``from_preset("hg8", num_keypoints=14)``)."""
    if pretrained.is_pretrained(preset):
        if overrides:
            raise ValueError(
                f"{preset!r} is a pretrained model; its architecture cannot change. Received: {overrides}"
            )
        return load_keras_model(preset)
    if preset not in architecture_presets.PRESETS:
        raise ValueError(
            f"Unknown preset {preset!r}. Architectures: {sorted(architecture_presets.PRESETS)}; "
            f"pretrained: {sorted(pretrained.PRETRAINED)}."
        )
    return architecture_presets.from_preset(preset, **overrides)


def keras_model_path(model) -> str | None:
    """The file ``load_keras_model`` reads (a workdir's final.keras), or None for an in-memory model."""
    if isinstance(model, keras.Model):
        return None
    path = os.fspath(resolve_pretrained(model))
    return os.path.join(path, MODEL_FILE) if tf.io.gfile.isdir(path) else path


def load_keras_model(model) -> keras.Model:
    """A Keras model, a ``.keras`` file, a training workdir (its ``final.keras``) or a pretrained preset."""
    if isinstance(model, keras.Model):
        return model
    model = resolve_pretrained(model)
    path = keras_model_path(model)
    if tf.io.gfile.isdir(os.fspath(model)):
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"{os.fspath(model)!r} is a directory without final.keras; pass a .keras file or a finished "
                "training workdir."
            )
    elif not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}.")
    elif not path.endswith(".keras"):
        raise ValueError(f"model must be a .keras file or a training workdir. Received: {path!r}")
    return _read_keras_file(path)


def describe_model_source(model) -> str:
    """What kind of file ``model`` is, and how it is loaded, for the commands to say.

    A SavedModel is a TensorFlow program: loading it runs whatever graph it holds,
    so it should come only from a source the user trusts; ``.keras`` files are
    loaded in Keras' safe mode (no Python code from the file runs), and PyTorch
    checkpoints through the restricted reader (``weights/torch_checkpoint.py``).
    """
    if isinstance(model, (keras.Model, InferenceModel)):
        return f"the in-memory model {getattr(model, 'name', model)!r}"
    name = os.fspath(model)
    if pretrained.is_pretrained(name) and not os.path.exists(name):
        return f"pretrained preset {name} ({pretrained.cache_dir()}/{name}/{pretrained.MODEL_FILE}, Keras safe mode)"
    path = keras_model_path(name)
    if path.endswith(".keras") and (not tf.io.gfile.isdir(name) or tf.io.gfile.exists(path)):
        return f"Keras model file {path} (loaded in Keras safe mode: no Python code from the file runs)"
    if tf.io.gfile.isdir(name):
        return (
            f"SavedModel {name} (a TensorFlow program: it runs the graph it holds; load SavedModels only "
            "from sources you trust)"
        )
    if name.endswith(".tflite"):
        return f"TFLite file {name}"
    if name.endswith(".onnx"):
        return f"ONNX file {name}"
    return name


def model_kind(model) -> str:
    """The ``ModelInfo`` kind of a model or model file, without building a saved network.

    A ``.keras`` file (or workdir) is read for its config only: the saved
    ``pose_info``, else its class's ``model_kind``. Exports say it in their info file.
    """
    if isinstance(model, InferenceModel):
        return model.info.kind
    if isinstance(model, keras.Model):
        return model_info(model).kind
    path = keras_model_path(model)
    if path.endswith(".keras") and tf.io.gfile.exists(path):
        try:
            with tf.io.gfile.GFile(path, "rb") as f, zipfile.ZipFile(f) as archive:
                config = json.loads(archive.read("config.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return SINGLE_PERSON  # load_keras_model says what is wrong with it
        saved = (config.get("config") or {}).get("pose_info") or {}
        if "kind" in saved:
            return saved["kind"]
        cls = keras.saving.get_registered_object(f"{config.get('registered_name', '')}")
        return getattr(cls, "model_kind", SINGLE_PERSON)
    if tf.io.gfile.exists(os.fspath(model)):
        return read_model_info(os.fspath(model), ModelInfo()).kind
    return SINGLE_PERSON


NETWORK_FILE_SUFFIXES = (".tflite", ".onnx")  # exported networks (heatmaps, or heatmaps and tags)


def _network_file(model) -> str | None:
    """The path of an exported network file (.tflite / .onnx), or None for anything else."""
    if isinstance(model, (keras.Model, InferenceModel)):
        return None
    path = os.fspath(model)
    return path if path.endswith(NETWORK_FILE_SUFFIXES) else None


def load_pose_model(model, precision: str = "float32"):
    """Any model, loaded once: an ``InferenceModel`` for a single-person model; for a multi-person one
    ``multi_person_network``'s (network, model) pair, which ``prediction.multi_person`` runs on whole photos.

    ``precision``: what a single-person Keras model runs in (``keras_inference_model``).
    """
    if isinstance(model, InferenceModel):
        return model
    if not isinstance(model, keras.Model):
        path = keras_model_path(model)
        if not (path.endswith(".keras") and tf.io.gfile.exists(path)):
            if tf.io.gfile.exists(os.fspath(model)) and model_kind(model) == MULTI_PERSON:
                return multi_person_network(model)  # an exported network (or a clear error)
            return load_model_for_inference(
                model, precision
            )  # a SavedModel, .tflite, .onnx (or a clear error)
        name, model = path, load_keras_model(path)
    else:
        name = model.name
    if model_info(model).kind == MULTI_PERSON:
        return multi_person_network(model)
    return keras_inference_model(model, name=name, precision=precision)


class ExportedPeopleNetwork:
    """A multi-person network exported as ``.tflite`` or ``.onnx``: inputs (N, S, S, 3) -> its last stack.

    It has the attributes decoding reads off a Keras ``AssociativeEmbedding``
    (``name``, ``pose_info``, ``num_keypoints``, ``tag_dim``, ``heatmap_stride``),
    so ``prediction.multi_person.codec_for_model`` and ``model_info`` take either.
    An exported network has one input size (the model's at scale 1): other
    sides, as other scales need, are refused naming the file.

    Args:
        path: the file.
        runner: ``TFLiteRunner`` or ``OnnxRunner`` of it (float32 in [0, 1] -> its output, NumPy).
        info: its ``ModelInfo`` (``read_model_info``); the spec defaults to COCO.
    """

    tag_dim = 1  # every AssociativeEmbedding preset and the official network; export refuses others

    def __init__(self, path: str, runner, info: ModelInfo):
        self.name = path
        self._runner = runner
        spec = info.spec or keypoint_specs.COCO
        self.input_size = tuple(runner.input_size)
        self.pose_info = dataclasses.replace(info, spec=spec, input_size=self.input_size)
        self.num_keypoints = spec.num_keypoints
        channels = runner.num_keypoints
        if channels < self.num_keypoints * (1 + self.tag_dim):
            raise ValueError(
                f"{path}: its output has {channels} channels; a multi-person network of {self.num_keypoints} "
                f"keypoints ({spec.name}) has at least {self.num_keypoints * (1 + self.tag_dim)} (heatmaps and tags)."
            )
        self.heatmap_stride = self.input_size[0] // runner.heatmap_size[0]

    def __call__(self, inputs) -> np.ndarray:
        inputs = np.asarray(inputs, np.float32)
        if tuple(inputs.shape[1:3]) != self.input_size:
            height, width = self.input_size
            raise ValueError(
                f"{self.name} takes {height}x{width} inputs only (an exported network's input size is fixed); "
                f"received {inputs.shape[1]}x{inputs.shape[2]}: scales other than 1 need the .keras model."
            )
        return self._runner(inputs)


def _load_exported_people_network(path: str) -> ExportedPeopleNetwork:
    runner = TFLiteRunner(path) if path.endswith(".tflite") else OnnxRunner(path)
    return ExportedPeopleNetwork(path, runner, read_model_info(path, ModelInfo(kind=MULTI_PERSON)))


def multi_person_network(model) -> tuple[Callable, keras.Model | ExportedPeopleNetwork]:
    """A multi-person (Associative Embedding) model as a function from whole-photo inputs to its last stack.

    Args:
        model: a Keras ``AssociativeEmbedding``, its ``.keras`` file, a workdir, a
            pretrained preset's name, or its network exported as ``.tflite`` or
            ``.onnx`` (their info says the model kind and keypoints).

    Returns:
        (network, model): ``network`` maps float32 inputs (N, S, S, 3) in [0, 1]
        to the last stack's output; a Keras model takes S any multiple of 64, an
        exported network its own S only. ``model`` is the loaded Keras model, or
        the ``ExportedPeopleNetwork`` (both say the keypoints, tags and stride).
    """
    path = _network_file(model)
    if path is not None:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"Model not found: {path!r}.")
        kind = model_kind(path)
        if kind != MULTI_PERSON:
            raise ValueError(
                f"{path} is a {kind} model; finding every person in a photo takes a multi-person "
                "(Associative Embedding) model."
            )
        network = _load_exported_people_network(path)
        return network, network
    if (
        not isinstance(model, keras.Model)
        and tf.io.gfile.isdir(os.fspath(model))
        and tf.io.gfile.exists(os.path.join(os.fspath(model), "saved_model.pb"))
    ):
        raise ValueError(
            f"{os.fspath(model)} is a multi-person SavedModel (photos in, people out, for TF Serving); "
            "predict and evaluate take the .keras model or its network exported as .tflite or .onnx."
        )
    model = load_keras_model(model)
    if model_info(model).kind != MULTI_PERSON:
        raise ValueError(
            f"{model.name} is a {model_info(model).kind} model; finding every person in a photo takes a "
            "multi-person (Associative Embedding) model."
        )
    network = model
    if any(side is not None for side in model.image_shape[:2]):
        # The same weights in a network that takes any input side (the official test scales the input).
        network = type(model).from_config({**model.get_config(), "input_shape": (None, None, 3)})
        network.set_weights(model.get_weights())
    call = tf.function(
        lambda images: as_stack_list(network(images, training=False))[-1], reduce_retracing=True
    )
    return call, model


def load_model_for_inference(model, precision: str = "float32") -> InferenceModel:
    """Any supported model as an ``InferenceModel``.

    Args:
        model: an ``InferenceModel``; a Keras model; a path to a ``.keras``
            file, a training workdir containing ``final.keras``, a SavedModel
            directory or a ``.tflite`` file; or a pretrained preset's name
            (``hg8_mpii_pv``, downloaded once).
        precision: what a Keras model runs in ("float32", "bfloat16" or
            "auto", see ``keras_inference_model``); exported files run as written.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is not a model this function can load (e.g. a
            weights-only ``.weights.h5``, which lacks the model's config).
    """
    resolve_inference_precision(precision)  # an unknown precision fails for every kind of file
    if isinstance(model, InferenceModel):
        return model
    if isinstance(model, keras.Model):
        return keras_inference_model(model, precision=precision)
    path = os.fspath(resolve_pretrained(model))
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}.")
    if tf.io.gfile.isdir(path):
        if tf.io.gfile.exists(os.path.join(path, MODEL_FILE)):
            return keras_inference_model(load_keras_model(path), keras_model_path(path), precision)
        if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            return load_saved_model(path)
        raise ValueError(
            f"Directory {path!r} is neither a training workdir with final.keras nor a SavedModel "
            f"(saved_model.pb); it holds {sorted(tf.io.gfile.listdir(path))[:10]}. A run that has not "
            "finished has only weights (best.weights.h5, checkpoints/), which need the model's config."
        )
    if path.endswith(".keras"):
        return keras_inference_model(load_keras_model(path), keras_model_path(path), precision)
    if path.endswith(".tflite"):
        return load_tflite(path)
    if path.endswith(".onnx"):
        return load_onnx(path)
    if path.endswith(".h5"):
        raise ValueError(
            f"{path!r} holds weights only, not the model's config. Build the model (e.g. "
            "tf_hourglass.from_preset(...)), call model.load_weights(path) and pass the model, "
            "or use the run's final.keras."
        )
    raise ValueError(
        f"Unsupported model file {path!r}; expected a .keras file, a training workdir with "
        "final.keras, a SavedModel directory, a .tflite or an .onnx file."
    )
