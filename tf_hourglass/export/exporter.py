"""``export_model``: a trained model to a deployment format, checked against Keras, written atomically.

The library behind ``python -m tf_hourglass.export``. Formats:

==============  ==============================================  =====================================
format          output                                          --quantize
==============  ==============================================  =====================================
saved_model     directory, TF Serving signatures (saved_model)  none
tflite          .tflite, network, batch 1 (tflite)              none, float16, dynamic, int8, qat
onnx            .onnx, network, dynamic batch (onnx)            none
tensorrt        serialized engine from the ONNX (tensorrt)      none (FP32), float16, int8
tftrt           SavedModel with TF-TRT segments, TF <= 2.17     none (FP32), float16, int8
==============  ==============================================  =====================================

Every export is written to a temporary ``OUTPUT.tmp-XXXXXXXX`` (``atomic_files``), run on sample inputs and
compared with the Keras model (``verify``), and only then renamed to
``OUTPUT``; an existing ``OUTPUT`` is replaced only with ``overwrite=True``.
Integer exports also compare PCK/PCKh with the float model on held-out data.
A multi-person (Associative Embedding) model's SavedModel takes photos and
returns people (``multi_person_saved_model``), checked against the Python path
on photos, with COCO's keypoint AP where they have ground truth
(``multi_person_verify``); its tflite and onnx exports are the network's
outputs (heatmaps and tags), as single-person ones. Its int8 TFLite calibrates
on whole photos letterboxed as ``predict_people`` feeds them (synthetic scenes
by default; ``calibration.load_people_calibration``) and is also checked by the
people it finds and their COCO AP on held-out photos against the Keras model's
(``max_ap_drop``); so are its float16 and dynamic TFLite files (held-out photos
only, nothing calibrates). A lossy multi-person file has no keypoint-distance bar:
the maximum of a map that holds many people, or none, is no keypoint.
Each export carries the model's ``ModelInfo`` (keypoint spec, codec settings,
kind): inside a SavedModel folder, beside any other file
(``run_files.info_path``), so the package's loaders read an exported file as
they read the ``.keras`` model.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs, transforms
from tf_hourglass.data.codec import DECODE_METHODS, HeatmapCodec
from tf_hourglass.export import calibration as calibration_lib
from tf_hourglass.export import (
    multi_person_saved_model,
    multi_person_verify,
    onnx,
    saved_model,
    tensorrt,
    tflite,
    verify,
)
from tf_hourglass.export.errors import VerificationError
from tf_hourglass.model import StackedHourglass, as_stack_list
from tf_hourglass.model.info import MULTI_PERSON, model_info
from tf_hourglass.model_loader import (
    ExportedPeopleNetwork,
    TFLiteRunner,
    describe_model_source,
    keras_model_path,
    load_keras_model,
    numpy_inference_model,
)
from tf_hourglass.prediction.multi_person import codec_for_model
from tf_hourglass.run_files import SAVED_MODEL_INFO_FILE, info_path

FORMATS = ("saved_model", "tflite", "onnx", "tensorrt", "tftrt")
QUANTIZE_MODES = {
    "saved_model": ("none",),
    "tflite": tflite.QUANTIZE_MODES,
    "onnx": ("none",),
    "tensorrt": tensorrt.PRECISIONS,
    "tftrt": tensorrt.PRECISIONS,
}
# Exports that need calibration data: (format, quantize) pairs.
NEEDS_CALIBRATION = {("tflite", "int8"), ("tflite", "qat"), ("tensorrt", "int8"), ("tftrt", "int8")}
# The one a multi-person model has; it calibrates on synthetic scenes unless told otherwise.
PEOPLE_INT8 = ("tflite", "int8")
# A multi-person network's lossy TFLite files: checked by the people they find on held-out photos.
PEOPLE_CHECKED = {PEOPLE_INT8, ("tflite", "float16"), ("tflite", "dynamic")}


@dataclasses.dataclass
class ExportResult:
    path: str
    format: str
    quantize: str
    size_bytes: int
    parity: verify.Parity | multi_person_verify.PeopleParity  # the latter for a multi-person SavedModel
    accuracy: verify.AccuracyComparison | None
    lines: list[str]  # what was reported
    people: multi_person_verify.PeopleParity | None = None  # a multi-person int8 network's people and AP


def _check_arguments(format, quantize, max_pck_drop, max_ap_drop, decode_method) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: format={format!r}")
    if quantize not in QUANTIZE_MODES[format]:
        raise ValueError(
            f"quantize for format {format!r} must be one of {QUANTIZE_MODES[format]}. Received: quantize={quantize!r}"
        )
    if max_pck_drop < 0:
        raise ValueError(f"max_pck_drop must be >= 0. Received: max_pck_drop={max_pck_drop}")
    if max_ap_drop < 0:
        raise ValueError(f"max_ap_drop must be >= 0. Received: max_ap_drop={max_ap_drop}")
    if decode_method is not None and decode_method not in DECODE_METHODS:
        raise ValueError(
            f"decode_method must be one of {DECODE_METHODS}. Received: decode_method={decode_method!r}"
        )


# What a previous export of each format looks like: --overwrite replaces only that, never
# a folder or file of the user's that happens to be at --output.
_FILE_SUFFIXES = {"tflite": (".tflite",), "onnx": (".onnx",), "tensorrt": (".engine", ".plan", ".trt")}


def _check_output(model, output: str, format: str, overwrite: bool) -> None:
    """Refuses outputs whose replacement would lose data: the model itself, or something not ours."""
    source = keras_model_path(model)
    if source is not None:
        target = os.path.realpath(output)
        source = os.path.realpath(source)
        if source == target or source.startswith(target.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"--output {output!r} is or contains the model being exported; choose another path."
            )
    if "://" not in output:
        atomic_files.check_writable_folder(os.path.dirname(os.path.abspath(output)), f"--output {output!r}")
    if not os.path.lexists(output):
        return
    if not overwrite:
        raise FileExistsError(f"{output!r} exists; pass --overwrite (overwrite=True) to replace it.")
    if format in _FILE_SUFFIXES:
        ours = (
            os.path.isfile(output) and not os.path.islink(output) and output.endswith(_FILE_SUFFIXES[format])
        )
    else:
        ours = os.path.isdir(output) and os.path.isfile(os.path.join(output, "saved_model.pb"))
    if not ours:
        raise FileExistsError(
            f"{output!r} is not a previous {format} export; --overwrite replaces only those. Move it or choose another path."
        )


# What a SavedModel export writes, relative to its folder. Anything else in a previous
# export's folder is the user's (TF Serving's assets.extra/ warm-up requests, notes)
# and --overwrite carries it into the new export.
_SAVED_MODEL_FILES = re.compile(
    r"saved_model\.pb(txt)?|fingerprint\.pb|variables/variables\.(index|data-\d{5}-of-\d{5})|"
    + re.escape(SAVED_MODEL_INFO_FILE)
)


def _carry_user_files(old: str, new: str) -> list[str]:
    """Copies what the user added to the SavedModel folder ``old`` into the new export ``new``.

    Returns the entries kept (files, links, empty folders; relative paths).

    Raises:
        FileExistsError: such an entry has the path of a file the new export wrote.
    """
    kept, clashes = [], []
    for root, folders, files in os.walk(old):
        relative_root = os.path.relpath(root, old)
        links = [name for name in folders if os.path.islink(os.path.join(root, name))]
        folders[:] = [name for name in folders if name not in links]
        entries = [os.path.normpath(os.path.join(relative_root, name)) for name in files + links]
        if not folders and not files and not links and relative_root != ".":
            if os.path.isdir(os.path.join(new, relative_root)):
                continue  # an empty folder the new export has too (a SavedModel's assets/)
            entries = [relative_root]  # an empty folder of the user's
        for relative in entries:
            if _SAVED_MODEL_FILES.fullmatch(relative):
                continue
            (clashes if os.path.lexists(os.path.join(new, relative)) else kept).append(relative)
    if clashes:
        raise FileExistsError(
            f"{old!r} holds {', '.join(sorted(clashes))}, which the new export writes too; "
            "move them away, then export again."
        )
    for relative in kept:
        source, target = os.path.join(old, relative), os.path.join(new, relative)
        if os.path.isdir(source) and not os.path.islink(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return sorted(kept)


def _sample_set(data, samples, input_size) -> verify.SampleSet:
    """Parity inputs: held-out calibration crops (a multi-person model's: letterboxed photos), else photos,
    else synthetic figures."""
    if isinstance(data, calibration_lib.PeopleCalibration):
        return verify.crop_samples(
            data.heldout_crops, f"{len(data.heldout_crops)} held-out photos of {data.name!r}, letterboxed"
        )
    if data is not None:
        return verify.crop_samples(
            data.heldout_crops, f"{len(data.heldout_crops)} held-out crops of {data.name}"
        )
    directory = samples or verify.default_photo_dir()
    if directory:
        return verify.photo_samples(directory, input_size)
    return verify.synthetic_samples(input_size)


# ----- one function per format: write to ``path``, return (parity, runner) -----------------
# ``runner`` (integer exports only) maps float crops to heatmaps, for the held-out accuracy check.


def _verify_serving(path, model, codec, samples, full: bool) -> verify.Parity:
    """Runs the serving signatures on the sample pictures.

    ``full``: also the ``heatmaps``, ``serving_bytes`` and ``serving_float``
    signatures (a TF-TRT SavedModel keeps ``serving_default`` only).
    """
    loaded = tf.saved_model.load(path)
    serving_default = loaded.signatures["serving_default"]
    crops, matrices, predicted = [], [], []
    for image in samples.images:
        crop, matrix = verify.whole_image_crop(image, codec.input_size)
        crops.append(crop)
        matrices.append(matrix)
        predicted.append(serving_default(images=tf.constant(image[None]))["keypoints"].numpy()[0])
    # Keypoints are compared in crop pixels, whatever the picture's size.
    matrices = np.stack(matrices)
    reference = codec.decode(verify.keras_heatmaps(model, np.stack(crops)))[0].numpy()
    keypoints = transforms.apply_affine(matrices, np.stack(predicted)).numpy()
    if not full:
        return verify.keypoint_parity(reference, keypoints)

    # All pictures in one request, each its own size: the same answers as one by one.
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(samples.encoded))["keypoints"]
    if np.max(np.abs(from_bytes.numpy() - np.stack(predicted))) > 1e-3:
        raise VerificationError("serving_bytes and serving_default disagree on the same pictures.")
    image = samples.images[0]
    from_float = loaded.signatures["serving_float"](
        images=tf.constant(image[None] / 255.0, tf.float32), boxes=tf.zeros([1, 4])
    )["keypoints"]
    float_parity = verify.keypoint_parity(
        keypoints[:1], transforms.apply_affine(matrices[:1], from_float).numpy()
    )
    if float_parity.mean_keypoint_distance > verify.TOLERANCES["float32"].keypoints:
        raise VerificationError(f"serving_float and serving_default disagree: {float_parity.describe()}.")

    heatmaps = loaded.signatures["heatmaps"](images=tf.constant(samples.crops))["heatmaps"].numpy()
    return verify.heatmap_parity(
        verify.keras_heatmaps(model, samples.crops),
        heatmaps,
        codec,
        reference_keypoints=reference,
        keypoints=keypoints,
    )


def _people_samples(calibration, samples, input_size, limit) -> multi_person_verify.PeopleSamples:
    """The multi-person check's photos: the first ``limit`` of COCO's with ground truth if given, else
    ``samples`` photos (no ground truth) if given, else ``limit`` held-out synthetic scenes with theirs.

    The check's bar is the AP within 0.5 points, and the two groupings break ties between equal
    costs differently, so a handful of photos is too few: on 8 scenes one person grouped otherwise
    moved a trained model's AP by 0.56; on 200 scenes the AP compares people, not ties.
    """
    if calibration:
        annotations, _, images_dir = calibration.removeprefix("coco:").partition(":")
        return multi_person_verify.coco_samples(
            annotations, images_dir or os.path.dirname(annotations), limit=limit
        )
    if samples is not None:
        photos = _sample_set(None, samples, input_size)
        return multi_person_verify.photo_samples(photos.images, photos.encoded, photos.description)
    return multi_person_verify.scene_samples(input_size, limit=limit)


def _export_people_saved_model(model, path, options, log):
    """A multi-person model's SavedModel (photos -> people) and its check against the Python path."""
    codec = codec_for_model(model)
    flip_permutation = (model_info(model).spec or keypoint_specs.COCO).flip_permutation()
    multi_person_saved_model.export_multi_person_saved_model(model, codec, flip_permutation, path)
    people = options["people_samples"]
    return multi_person_verify.verify_people_saved_model(path, model, codec, flip_permutation, people)


def _export_saved_model(model, codec, path, samples, data, options, log):
    saved_model.export_saved_model(model, codec, path)
    return _verify_serving(path, model, codec, samples, full=True), None


def _export_tflite(model, codec, path, samples, data, options, log):
    quantize = options["quantize"]
    crops = None if data is None else data.crops
    qat_options = {
        "steps": options["qat_steps"],
        "batch_size": options["qat_batch_size"],
        "learning_rate": options["qat_learning_rate"],
    }
    names = tflite.export_tflite(model, path, quantize, crops, qat_options, log=log)
    log(f"TFLite builtin ops only: {', '.join(names)}")
    runner = TFLiteRunner(path, num_threads=2)
    for end, details in (("input", runner.input), ("output", runner.output)):
        scale, zero_point = details["quantization"]
        quantization = f", scale {scale:.6g}, zero point {zero_point}" if scale else ""
        log(
            f"TFLite {end} {details['name']!r}: {np.dtype(details['dtype']).name} "
            f"{[int(s) for s in details['shape']]}{quantization}"
        )
    parity = verify.heatmap_parity(verify.keras_heatmaps(model, samples.crops), runner(samples.crops), codec)
    return parity, runner if quantize in tflite.INTEGER_MODES else None


def _export_onnx(model, codec, path, samples, data, options, log):
    onnx.export_onnx(model, path, opset=options["opset"])
    runner = onnx.OnnxRunner(path)
    parity = verify.heatmap_parity(verify.keras_heatmaps(model, samples.crops), runner(samples.crops), codec)
    return parity, None


def _export_tensorrt(model, codec, path, samples, data, options, log):
    quantize = options["quantize"]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "network.onnx")
        onnx.export_onnx(model, onnx_path, opset=options["opset"])
        tensorrt.build_engine(
            onnx_path,
            path,
            codec.input_size,
            precision=quantize,
            calibration_crops=None if data is None else data.crops,
            cache_path=f"{options['output']}.calibration.cache" if quantize == "int8" else None,
            max_batch_size=options["max_batch_size"],
        )
    runner = tensorrt.TensorRTRunner(path)
    parity = verify.heatmap_parity(verify.keras_heatmaps(model, samples.crops), runner(samples.crops), codec)
    return parity, runner if quantize == "int8" else None


def _export_tftrt(model, codec, path, samples, data, options, log):
    with tempfile.TemporaryDirectory() as tmp:
        serving_dir = os.path.join(tmp, "serving")
        saved_model.export_saved_model(model, codec, serving_dir)
        calibration_images = None if data is None else np.round(data.crops * 255.0).astype(np.uint8)
        sample_images = np.round(samples.crops * 255.0).astype(np.uint8)
        tensorrt.convert_tftrt(serving_dir, path, options["quantize"], calibration_images, sample_images)
    return _verify_serving(path, model, codec, samples, full=False), None


_EXPORTERS = {
    "saved_model": _export_saved_model,
    "tflite": _export_tflite,
    "onnx": _export_onnx,
    "tensorrt": _export_tensorrt,
    "tftrt": _export_tftrt,
}


def _tolerance(format, quantize, multi_person: bool) -> verify.Tolerance:
    if format == "tflite":
        tolerance = verify.TOLERANCES[tflite.TOLERANCE_KIND[quantize]]
    elif format in ("tensorrt", "tftrt"):
        tolerance = verify.TOLERANCES[tensorrt.TOLERANCE_KIND[quantize]]
    else:
        tolerance = verify.TOLERANCES["float32"]
    if multi_person and quantize != "none":
        # The maximum of each heatmap and tag map of a multi-person network is no keypoint (a map
        # holds many people, or none; where it holds nobody, float16 moves it anywhere): the bar is
        # the outputs, and for TFLite the people found (AP), checked after.
        return dataclasses.replace(tolerance, keypoints=None)
    return tolerance


def _check_calibration(format, quantize, calibration) -> None:
    if (format, quantize) in NEEDS_CALIBRATION and not calibration:
        raise ValueError(
            f"format={format!r} with quantize={quantize!r} needs calibration data: calibration='synthetic', "
            f"'tfrecord:PATTERN' or 'FORMAT:ANNOTATIONS[:IMAGES_DIR]'. Received: calibration={calibration!r}"
        )


def _check_multi_person_arguments(model, format, quantize, calibration) -> None:
    """What a multi-person model can be exported to: its SavedModel, or its network as tflite/onnx/tensorrt
    (tflite also int8, calibrated on whole photos)."""
    if format == "tftrt":
        raise ValueError(
            f"{model.name} is a multi-person model; format='tftrt' converts the single-person serving "
            "SavedModel. Export format='saved_model' (people in the graph) or format='tensorrt' (the network)."
        )
    if quantize != "none" and (format, quantize) in NEEDS_CALIBRATION and (format, quantize) != PEOPLE_INT8:
        raise ValueError(
            f"{model.name} is a multi-person model; {format} with quantize={quantize!r} calibrates on "
            "single-person crops. Use format='tflite' with quantize='int8' (calibrated on whole photos), "
            "'none', 'float16' or 'dynamic'."
        )
    if format != "saved_model" and getattr(model, "tag_dim", 1) != 1:
        raise ValueError(
            f"{model.name} has tag_dim={model.tag_dim}; an exported multi-person network is read with one tag "
            "per keypoint (model_loader.ExportedPeopleNetwork). Export format='saved_model' (people in the graph)."
        )
    if (format, quantize) in PEOPLE_CHECKED:
        return  # calibration.load_people_calibration says which forms it takes
    if calibration and (format != "saved_model" or not calibration.startswith("coco:")):
        raise ValueError(
            f"{model.name} is a multi-person model: calibration is the SavedModel's AP check, "
            f"'coco:ANNOTATIONS[:IMAGES_DIR]', or a TFLite int8/float16/dynamic file's held-out (and int8's "
            f"calibration) photos ({calibration_lib.PEOPLE_FORMS}). "
            f"Received: format={format!r}, quantize={quantize!r}, calibration={calibration!r}"
        )


# ----- the library entry point ---------------------------------------------------------------


def export_model(
    model,
    output: str,
    format: str,
    *,
    quantize: str = "none",
    calibration: str | None = None,
    overwrite: bool = False,
    samples: str | None = None,
    sigma: float | None = None,
    peak: float | None = None,
    decode_method: str | None = None,
    num_calibration: int = 200,
    num_heldout: int = 200,
    max_pck_drop: float = 1.0,
    max_ap_drop: float = multi_person_verify.MAX_AP_DROP_INT8,
    opset: int = onnx.DEFAULT_OPSET,
    qat_steps: int = 300,
    qat_batch_size: int = 8,
    qat_learning_rate: float = 1e-5,
    max_batch_size: int = 8,
    log=print,
) -> ExportResult:
    """Exports ``model`` to ``output`` in ``format``, checks it and reports.

    Args:
        model: a Keras model, a ``.keras`` file or a training workdir.
        output: the file (tflite, onnx, tensorrt) or directory (saved_model, tftrt) to write.
        format: one of ``FORMATS``.
        quantize: one of ``QUANTIZE_MODES[format]``.
        calibration: data for int8/qat calibration and the held-out PCK check
            (``calibration.py``: "synthetic", "tfrecord:PATTERN",
            "FORMAT:ANNOTATIONS[:IMAGES_DIR]"); with it, parity runs on held-out crops.
            For a multi-person model's SavedModel only "coco:ANNOTATIONS[:IMAGES_DIR]":
            the photos on which its COCO AP is compared with the Python path's; for
            its int8 TFLite "synthetic" (scenes, the default) or "coco:ANNOTATIONS[:IMAGES_DIR]":
            whole photos to calibrate on and held-out ones to compare the people and AP.
        overwrite: replace an existing ``output`` that is a previous export of
            this format (a SavedModel folder, or a file with the format's suffix);
            an output that is or contains the model is always refused.
        samples: a folder of photos for the parity check (default: the
            project's ``../shared/data/people`` when present, else synthetic figures;
            for a multi-person SavedModel ``num_heldout`` held-out synthetic scenes
            with their ground truth; with ``samples`` its people are compared, not its AP).
        sigma, peak, decode_method: the ``HeatmapCodec`` the SavedModel decodes
            with; each defaults to the model's own (``ModelInfo``: its training
            run's, so that scores are near 1 for confident joints).
        num_calibration, num_heldout: people used to calibrate / held out
            (photos, for a multi-person model: its SavedModel's AP check runs on
            ``num_heldout`` of them, COCO's or synthetic scenes).
        max_pck_drop: int8/qat fail when PCK drops by more points than this.
        max_ap_drop: a multi-person int8 TFLite fails when its COCO AP on the
            held-out photos is lower than the Keras model's by more points than this.
        opset: ONNX opset (>= 17), for onnx and tensorrt.
        qat_steps, qat_batch_size, qat_learning_rate: the QAT fine-tuning.
        max_batch_size: largest batch of the TensorRT engine's profile.
        log: where report lines go.

    Raises:
        ValueError: invalid arguments (the message repeats what was received).
        FileExistsError: ``output`` exists and ``overwrite`` is False.
        MissingRequirementError: tensorrt/tftrt without GPU or packages.
        VerificationError: the export disagrees with the Keras model.
    """
    _check_arguments(format, quantize, max_pck_drop, max_ap_drop, decode_method)
    output = os.fspath(output)
    _check_output(model, output, format, overwrite)
    # GPU formats fail before any work when they cannot finish here.
    if format == "tensorrt":
        tensorrt.require(tensorrt.tensorrt_missing(quantize), "a TensorRT engine")
    if format == "tftrt":
        tensorrt.require(tensorrt.tftrt_missing(), "a TF-TRT SavedModel")

    log(f"model: {describe_model_source(model)}")
    model = load_keras_model(model)
    if quantize == "qat" and not isinstance(model, StackedHourglass):
        raise ValueError(
            f"--quantize qat rebuilds Stacked Hourglass models in tf-keras; received a {type(model).__name__}. "
            "Use --quantize int8 (post-training, checked against the float model in the same way)."
        )
    input_size = saved_model.fixed_input_size(model)
    multi_person = model_info(model).kind == MULTI_PERSON
    if multi_person:
        _check_multi_person_arguments(model, format, quantize, calibration)
        if (format, quantize) in PEOPLE_CHECKED and not calibration:
            calibration = "synthetic"
    _check_calibration(format, quantize, calibration)
    heatmap_shape = as_stack_list(model.outputs)[-1].shape
    # A CPM's last map is its background, which exports drop.
    num_keypoints = int(heatmap_shape[-1]) - int(getattr(model, "background_channel", False))
    info = model_info(model)
    info = dataclasses.replace(
        info,
        sigma=info.sigma if sigma is None else sigma,
        peak=info.peak if peak is None else peak,
        decode_method=decode_method or info.decode_method,
        input_size=input_size,
    )
    # Exports decode the K keypoint maps only (a CPM's background map is dropped).
    codec = HeatmapCodec(
        input_size=input_size,
        heatmap_size=heatmap_shape[1:3],
        sigma=info.sigma,
        peak=info.peak,
        decode_method=info.decode_method,
    )
    data = None
    if calibration and not multi_person:
        data = calibration_lib.load_calibration(
            calibration, codec, num_keypoints, num_calibration, num_heldout
        )
        log(
            f"calibration data {data.name!r}: {len(data.crops)} people calibrate, {data.num_heldout} held out"
        )
    elif multi_person and (format, quantize) == PEOPLE_INT8:
        data = calibration_lib.load_people_calibration(calibration, input_size, num_calibration, num_heldout)
        log(
            f"calibration data {data.name!r}: {len(data.crops)} photos letterboxed to {input_size[0]}x"
            f"{input_size[1]} calibrate, {data.heldout.description} held out"
        )
    elif multi_person and (format, quantize) in PEOPLE_CHECKED:  # held-out photos only: nothing calibrates
        data = calibration_lib.load_people_calibration(calibration, input_size, 1, num_heldout)
        log(f"held-out data {data.name!r}: {data.heldout.description}, for the people check")
    sample_set = _sample_set(data, samples, input_size)
    people_export = multi_person and format == "saved_model"
    if people_export:
        people_samples = _people_samples(calibration, samples, input_size, num_heldout)
    options = {
        "output": output,
        "quantize": quantize,
        "max_pck_drop": max_pck_drop,
        "opset": opset,
        "qat_steps": qat_steps,
        "qat_batch_size": qat_batch_size,
        "qat_learning_rate": qat_learning_rate,
        "max_batch_size": max_batch_size,
    }

    lines = []

    def report(line):
        lines.append(line)
        log(line)

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    label = format if quantize == "none" else f"{format}/{quantize}"
    with atomic_files.atomic_path(output, replace_folder=True) as tmp:
        if people_export:
            parity, runner = (
                _export_people_saved_model(model, tmp, {"people_samples": people_samples}, report),
                None,
            )
            report(
                multi_person_verify.check_people_parity(parity, f"{label} on {people_samples.description}")
            )
        else:
            parity, runner = _EXPORTERS[format](model, codec, tmp, sample_set, data, options, report)
            report(
                verify.check_parity(
                    parity, _tolerance(format, quantize, multi_person), f"{label} on {sample_set.description}"
                )
            )
        accuracy = people = None
        if multi_person and (format, quantize) in PEOPLE_CHECKED and runner is None:
            runner = TFLiteRunner(tmp, num_threads=2)
        if runner is not None and multi_person:
            network = ExportedPeopleNetwork(f"{label} export", runner, info)
            people = multi_person_verify.verify_people_network(
                network,
                model,
                codec_for_model(model),
                (info.spec or keypoint_specs.COCO).flip_permutation(),
                data.heldout,
            )
            report(
                multi_person_verify.check_people_parity(
                    people,
                    f"{label} on {data.heldout.description}",
                    max_ap_drop=max_ap_drop,
                    reference="Keras",
                )
            )
        elif runner is not None:
            exported = numpy_inference_model(
                runner, codec.input_size, codec.heatmap_size, data.spec.num_keypoints, f"{label} export"
            )
            accuracy = verify.compare_accuracy(model, exported, data.heldout, codec, data.spec)
            report(verify.check_accuracy(accuracy, max_pck_drop, label))
        if os.path.isdir(tmp):  # a SavedModel carries its info inside
            atomic_files.write_text(info_path(tmp), info.to_json())
        elif format == "onnx":  # so does an ONNX file, in its metadata
            onnx.write_model_info(tmp, info.to_json())
        size = verify.size_on_disk(tmp)
        if os.path.lexists(output):
            if not overwrite:
                raise FileExistsError(f"{output!r} appeared during the export; not replacing it.")
            _check_output(model, output, format, overwrite)
            if os.path.isdir(output):  # replaced when the new one is in place; the check above allows it
                kept = _carry_user_files(output, tmp)
                if kept:
                    report(f"kept {len(kept)} entries you added to {output}: {', '.join(kept)}")
    if not os.path.isdir(output) and format != "onnx":
        atomic_files.write_text(info_path(output), info.to_json())
    report(f"wrote {output} ({label}, {verify.format_size(size)} on disk)")
    return ExportResult(output, format, quantize, size, parity, accuracy, lines, people)
