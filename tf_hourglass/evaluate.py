"""Scores pose predictions: a predictions file against ground truth, or a model over a dataset.

    # The official MPII numbers of a predictions file (1-based, as the kit):
    python -m tf_hourglass.evaluate --predictions preds/valid.h5 --ground-truth annot/valid.h5 --json out.json
    # A model (.keras, workdir, SavedModel, .tflite, pretrained preset) over a dataset in any reader format,
    # named as everywhere else (export --calibration, the training config): FORMAT:ANNOTATIONS[:IMAGES]
    python -m tf_hourglass.evaluate --model runs/mpii --data mpii_h5:annot/valid.h5:mpii/images --flip
    # the same, spelled as before (still accepted):
    python -m tf_hourglass.evaluate --model runs/mpii --format mpii_h5 --annotations annot/valid.h5 \\
        --images mpii/images --flip --json out.json

MPII gives the familiar PCKh table (@0.5, @0.1, AUC); LSP and FLIC PCK@0.2 per
joint and total; COCO the OKS AP. Only parses flags; the work is in
``tf_hourglass.evaluation.run``. Errors name the input and exit with status 1,
and the JSON is written only after a complete evaluation (temp file + rename).
"""

import sys

from absl import flags

from tf_hourglass.cli import fail_or_raise, parse_flags
from tf_hourglass.data.images import budget_from_flags, define_budget_flags
from tf_hourglass.precision import INFERENCE_PRECISIONS

# Own FlagValues (see tf_hourglass/cli.py for the convention every command follows).
_FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "predictions",
    None,
    "Predictions: .h5/.mat with preds (N,K,2), or COCO results .json.",
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "ground_truth",
    None,
    "valid.h5 / FLIC .h5, gt_valid.mat, LSP joints.mat, or COCO .json.",
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "model", None, ".keras file, training workdir, SavedModel dir or .tflite file.", flag_values=_FLAGS
)
flags.DEFINE_enum(
    "format",
    None,
    ["mpii_h5", "mpii_json", "lsp", "lspet", "flic", "coco", "custom"],
    "Annotation format.",
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "data",
    None,
    "The dataset (with --model), as FORMAT:ANNOTATIONS[:IMAGES] (the spelling export --calibration takes); "
    "or --format, --annotations and --images.",
    flag_values=_FLAGS,
)
flags.DEFINE_string("annotations", None, "Annotation file of the dataset (with --model).", flag_values=_FLAGS)
flags.DEFINE_string("images", None, "Image folder of the dataset (with --model).", flag_values=_FLAGS)
flags.DEFINE_bool(
    "flip", False, "Flip test (with --model; the official multi-person test uses it).", flag_values=_FLAGS
)
flags.DEFINE_list(
    "scales",
    ["1"],
    "Input scales of a multi-person model (the official multi-scale test: 2,1,0.5).",
    flag_values=_FLAGS,
)
flags.DEFINE_enum(
    "precision",
    "auto",
    list(INFERENCE_PRECISIONS),
    "What a Keras model's network computes in: auto (bfloat16 on CPUs with bfloat16 instructions, else "
    "float32), float32 or bfloat16; heatmaps and decoding stay float32. Exported files run as written.",
    flag_values=_FLAGS,
)
flags.DEFINE_integer(
    "batch_size", 16, "Images per model call (with --model).", lower_bound=1, flag_values=_FLAGS
)
flags.DEFINE_string("json", None, "Write the results to this JSON file.", flag_values=_FLAGS)
define_budget_flags(_FLAGS)


def _check_flags():
    file_mode = _FLAGS.predictions is not None or _FLAGS.ground_truth is not None
    if file_mode == (_FLAGS.model is not None):
        raise flags.Error(
            "Give either --predictions and --ground-truth, or --model with --format and --annotations."
        )
    if file_mode and (_FLAGS.predictions is None or _FLAGS.ground_truth is None):
        raise flags.Error("--predictions and --ground-truth go together.")
    if not file_mode and _FLAGS.data is not None:
        if _FLAGS.format is not None or _FLAGS.annotations is not None or _FLAGS.images is not None:
            raise flags.Error(
                "--data names the dataset; give it or --format/--annotations/--images, not both."
            )
    elif not file_mode and (_FLAGS.format is None or _FLAGS.annotations is None):
        raise flags.Error(
            "--model needs --data FORMAT:ANNOTATIONS[:IMAGES] (or --format and --annotations, "
            "and --images except for custom)."
        )


def _scales() -> list[float]:
    try:
        scales = [float(value) for value in _FLAGS.scales]
    except ValueError as error:
        raise ValueError(f"--scales must be numbers such as 2,1,0.5; received {_FLAGS.scales}.") from error
    if not scales or any(not 0 < s <= 4 for s in scales):
        raise ValueError(f"--scales must be numbers in (0, 4]; received {_FLAGS.scales}.")
    return scales


def main(argv: list[str] | None = None) -> int:
    """Parses the flags, scores predictions or a model, prints the table; returns the exit status."""
    status = parse_flags(
        "evaluate", _FLAGS, list(sys.argv if argv is None else argv), __doc__, check=_check_flags
    )
    if status is not None:
        return status
    from tf_hourglass.evaluation import run

    try:
        if _FLAGS.json:
            run.check_output_path(_FLAGS.json)
        if _FLAGS.model is None:
            results = run.evaluate_predictions(_FLAGS.predictions, _FLAGS.ground_truth)
        else:
            results = run.evaluate_model(
                _FLAGS.model,
                _FLAGS.data or _FLAGS.format,
                None if _FLAGS.data else _FLAGS.annotations,
                None if _FLAGS.data else _FLAGS.images,
                flip=_FLAGS.flip,
                batch_size=_FLAGS.batch_size,
                scales=_scales(),
                precision=_FLAGS.precision,
                budget=budget_from_flags(_FLAGS),
            )
        print(run.format_results(results))
        inputs = results.get("inputs", {})
        if "model_file" in inputs:  # after the table, which scripts read first
            print(f"Model: {inputs['model_file']}.")
        if "precision" in inputs:
            print(f"Precision {inputs['precision']} ({inputs['precision_reason']}).")
        if _FLAGS.json:
            run.write_results_json(_FLAGS.json, results)
            print(f"Results written to {_FLAGS.json}")
    except Exception as error:
        return fail_or_raise("evaluate", error, (ValueError, OSError, ImportError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
