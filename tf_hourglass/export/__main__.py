"""Export a trained model: ``python -m tf_hourglass.export --model M --format F --output PATH``.

    # TF Serving (signatures serving_default, serving_boxes, serving_float, serving_bytes, heatmaps)
    python -m tf_hourglass.export --model runs/quickstart --format saved_model --output out/hourglass/1
    # phones: full-integer TFLite calibrated on the training data, PCK checked on held-out people
    python -m tf_hourglass.export --model runs/quickstart --format tflite --quantize int8 \\
        --calibration synthetic --output out/hourglass_int8.tflite
    # TF Serving, multi-person (Associative Embedding): photos in, people out (serving_default, serving_bytes);
    # its COCO AP checked against the Python path on photos with ground truth
    python -m tf_hourglass.export --model runs/ae --format saved_model --output out/people/1 \\
        --calibration coco:person_keypoints_val2017.json:val2017
    # phones, multi-person: full-integer TFLite calibrated on synthetic scenes (the default; or
    # --calibration coco:ANNOTATIONS[:IMAGES_DIR]), its people and COCO AP checked on held-out photos
    python -m tf_hourglass.export --model runs/ae --format tflite --quantize int8 --output out/people_int8.tflite
    # NVIDIA: ONNX here, engine on the GPU machine
    python -m tf_hourglass.export --model runs/quickstart/final.keras --format onnx --output out/hourglass.onnx

M is a .keras file or a training workdir (its final.keras). Every export runs
itself on sample inputs, prints a parity line against the Keras model and its
size on disk, and fails beyond the tolerance (see tf_hourglass/export/verify.py);
the output appears only after the checks pass. Exit status: 0 done, 1 export or
check failed (or something is missing: the message says what), 2 bad flags.
"""

from __future__ import annotations

import sys

from absl import flags

from tf_hourglass.cli import fail_or_raise, parse_flags
from tf_hourglass.data.codec import DECODE_METHODS
from tf_hourglass.export import multi_person_verify, tflite
from tf_hourglass.export.errors import ExportError
from tf_hourglass.export.exporter import FORMATS, export_model

# Own FlagValues, so that importing this module never clashes with other tools' flags.
_FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "model", None, "A .keras file or a training workdir (uses its final.keras).", flag_values=_FLAGS
)
flags.DEFINE_enum("format", None, list(FORMATS), "Output format.", flag_values=_FLAGS)
flags.DEFINE_string(
    "output", None, "File (tflite, onnx, tensorrt) or directory (saved_model, tftrt).", flag_values=_FLAGS
)
flags.DEFINE_bool("overwrite", False, "Replace an existing output.", flag_values=_FLAGS)
flags.DEFINE_enum(
    "quantize",
    "none",
    list(tflite.QUANTIZE_MODES),
    "tflite: none, float16, dynamic, int8, qat; tensorrt/tftrt: none, float16, int8.",
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "calibration",
    None,
    "Calibration and held-out data: 'synthetic', 'tfrecord:PATTERN' or 'FORMAT:ANNOTATIONS[:IMAGES_DIR]'; "
    "for a multi-person SavedModel, 'coco:ANNOTATIONS[:IMAGES_DIR]' photos for its AP check; for a "
    "multi-person int8 TFLite, 'synthetic' (scenes, the default) or 'coco:ANNOTATIONS[:IMAGES_DIR]' photos.",
    flag_values=_FLAGS,
)
flags.DEFINE_integer(
    "num_calibration",
    200,
    "People used to calibrate (and fine-tune QAT); photos, for a multi-person model.",
    lower_bound=1,
    flag_values=_FLAGS,
)
flags.DEFINE_integer(
    "num_heldout",
    200,
    "Held-out people for the PCK check; photos for a multi-person model's AP check.",
    lower_bound=1,
    flag_values=_FLAGS,
)
flags.DEFINE_float(
    "max_pck_drop", 1.0, "int8/qat fail when PCK drops by more points.", lower_bound=0.0, flag_values=_FLAGS
)
flags.DEFINE_float(
    "max_ap_drop",
    multi_person_verify.MAX_AP_DROP_INT8,
    "A multi-person int8 TFLite fails when its COCO AP on held-out photos drops by more points.",
    lower_bound=0.0,
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "samples",
    None,
    "Folder of photos for the parity check (default ../shared/data/people).",
    flag_values=_FLAGS,
)
flags.DEFINE_float(
    "sigma",
    None,
    "Training target sigma in heatmap pixels (DARK decoding); default: the model's.",
    flag_values=_FLAGS,
)
flags.DEFINE_float(
    "peak",
    None,
    "Training target peak: scores = heatmap max / peak; default: the model's.",
    flag_values=_FLAGS,
)
flags.DEFINE_enum(
    "decode_method",
    None,
    list(DECODE_METHODS),
    "Heatmap decoding in the SavedModel; default: the model's.",
    flag_values=_FLAGS,
)
flags.DEFINE_integer("opset", 17, "ONNX opset (onnx, tensorrt).", lower_bound=17, flag_values=_FLAGS)
flags.DEFINE_integer("qat_steps", 300, "QAT fine-tuning steps.", lower_bound=1, flag_values=_FLAGS)
flags.DEFINE_integer("qat_batch_size", 8, "QAT batch size.", lower_bound=1, flag_values=_FLAGS)
flags.DEFINE_float("qat_learning_rate", 1e-5, "QAT Adam learning rate.", lower_bound=0.0, flag_values=_FLAGS)
flags.DEFINE_integer(
    "max_batch_size", 8, "Largest batch of the TensorRT engine.", lower_bound=1, flag_values=_FLAGS
)
for _name in ("model", "format", "output"):
    flags.mark_flag_as_required(_name, flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> int:
    """Parses the flags and runs ``export_model``; returns the exit status."""
    status = parse_flags("export", _FLAGS, list(sys.argv if argv is None else argv), __doc__)
    if status is not None:
        return status
    try:
        export_model(
            _FLAGS.model,
            _FLAGS.output,
            _FLAGS.format,
            quantize=_FLAGS.quantize,
            calibration=_FLAGS.calibration,
            overwrite=_FLAGS.overwrite,
            samples=_FLAGS.samples,
            sigma=_FLAGS.sigma,
            peak=_FLAGS.peak,
            decode_method=_FLAGS.decode_method,
            num_calibration=_FLAGS.num_calibration,
            num_heldout=_FLAGS.num_heldout,
            max_pck_drop=_FLAGS.max_pck_drop,
            max_ap_drop=_FLAGS.max_ap_drop,
            opset=_FLAGS.opset,
            qat_steps=_FLAGS.qat_steps,
            qat_batch_size=_FLAGS.qat_batch_size,
            qat_learning_rate=_FLAGS.qat_learning_rate,
            max_batch_size=_FLAGS.max_batch_size,
        )
    except Exception as e:  # OSError: FileExistsError, an --output under a file, a full disk
        return fail_or_raise("export", e, (ExportError, OSError, ValueError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
