"""Scores pose predictions: a predictions file against ground truth, or a model over a dataset.

    # The official MPII numbers of a predictions file (1-based, as the kit):
    python -m tf_hourglass.evaluate --predictions preds/valid.h5 --ground-truth annot/valid.h5 --json out.json
    # A model (.keras, workdir, SavedModel, .tflite) over a dataset in any reader format:
    python -m tf_hourglass.evaluate --model runs/mpii --format mpii_h5 --annotations annot/valid.h5 \\
        --images mpii/images --flip --json out.json

MPII gives the familiar PCKh table (@0.5, @0.1, AUC); LSP and FLIC PCK@0.2 per
joint and total; COCO the OKS AP. Only parses flags; the work is in
``tf_hourglass.evaluation.run``. Errors name the input and exit with status 1,
and the JSON is written only after a complete evaluation (temp file + rename).
"""

import sys

from absl import app, flags

_PREDICTIONS = flags.DEFINE_string(
    "predictions", None, "Predictions: .h5/.mat with preds (N,K,2), or COCO results .json."
)
_GROUND_TRUTH = flags.DEFINE_string(
    "ground-truth", None, "valid.h5 / FLIC .h5, gt_valid.mat, LSP joints.mat, or COCO .json."
)
_MODEL = flags.DEFINE_string("model", None, ".keras file, training workdir, SavedModel dir or .tflite file.")
_FORMAT = flags.DEFINE_enum(
    "format", None, ["mpii_h5", "mpii_json", "lsp", "lspet", "flic", "coco", "custom"], "Annotation format."
)
_ANNOTATIONS = flags.DEFINE_string("annotations", None, "Annotation file of the dataset (with --model).")
_IMAGES = flags.DEFINE_string("images", None, "Image folder of the dataset (with --model).")
_FLIP = flags.DEFINE_bool("flip", False, "Flip test (with --model).")
_BATCH_SIZE = flags.DEFINE_integer("batch-size", 16, "Images per model call (with --model).", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Write the results to this JSON file.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    file_mode = _PREDICTIONS.value is not None or _GROUND_TRUTH.value is not None
    model_mode = _MODEL.value is not None
    if file_mode == model_mode:
        raise app.UsageError(
            "Give either --predictions and --ground-truth, or --model with --format and --annotations."
        )
    if file_mode and (_PREDICTIONS.value is None or _GROUND_TRUTH.value is None):
        raise app.UsageError("--predictions and --ground-truth go together.")
    if model_mode and (_FORMAT.value is None or _ANNOTATIONS.value is None):
        raise app.UsageError("--model needs --format and --annotations (and --images except for custom).")

    from tf_hourglass.evaluation import run

    try:
        if _JSON.value:
            run.check_output_path(_JSON.value)
        if file_mode:
            results = run.evaluate_predictions(_PREDICTIONS.value, _GROUND_TRUTH.value)
        else:
            results = run.evaluate_model(
                _MODEL.value,
                _FORMAT.value,
                _ANNOTATIONS.value,
                _IMAGES.value,
                flip=_FLIP.value,
                batch_size=_BATCH_SIZE.value,
            )
        print(run.format_results(results))
        if _JSON.value:
            run.write_results_json(_JSON.value, results)
            print(f"Results written to {_JSON.value}")
    except (ValueError, OSError, ImportError) as error:
        sys.exit(f"evaluate: error: {error}")


if __name__ == "__main__":
    app.run(main)
