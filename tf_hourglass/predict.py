"""Pose in images and video frames, drawn and saved as JSON: one person per box, or every person.

    python -m tf_hourglass.predict --model runs/mpii/final.keras --input photo.jpg --output out/
    python -m tf_hourglass.predict --model model.tflite --input photos/ --output out/ --flip
    python -m tf_hourglass.predict --model runs/mpii --input clip.mp4 --box 100,40,220,460 --output out/
    python -m tf_hourglass.predict --model ae.keras --input photos/ --output out/   # every person
    python -m tf_hourglass.predict --model runs/mpii --person-model ae.keras --input photos/ --output out/

``--model`` is a ``.keras`` file, a training workdir (``final.keras``), a
SavedModel directory, a ``.tflite`` or ``.onnx`` file or a pretrained preset's
name. A single-person model estimates the person in ``--box``; without it, the
person is assumed to fill the image (the command and the JSON say so), unless
``--person-model`` names a multi-person model that finds the people: each is
then estimated on the crop of its joints (the top-down refinement). A
multi-person model (Associative Embedding; a ``.keras`` file or its network as
``.tflite``/``.onnx``) finds every person in the whole photo, draws each in
its own colour and writes COCO keypoint results (flip test on unless
``--noflip``). Only parses flags; the work is
``tf_hourglass.prediction.files.predict_path`` (see there for the outputs).
"""

import os
import sys

from absl import flags

from tf_hourglass.cli import fail_or_raise, parse_flags
from tf_hourglass.data.images import budget_from_flags, define_budget_flags
from tf_hourglass.precision import INFERENCE_PRECISIONS

# Own FlagValues (see tf_hourglass/cli.py for the convention every command follows).
_FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "model", None, ".keras file, training workdir, SavedModel dir, .tflite or .onnx file.", flag_values=_FLAGS
)
flags.DEFINE_string(
    "person_model",
    None,
    "A multi-person model (.keras, or its .tflite/.onnx network) that finds the people for a single-person "
    "--model, which estimates each on the crop of the joints found (top-down). Not with --box.",
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "input", None, "An image, a video (mp4/avi/mov/mkv) or a directory of images.", flag_values=_FLAGS
)
flags.DEFINE_string(
    "output", None, "Directory for the annotated pictures/videos and JSON files.", flag_values=_FLAGS
)
flags.DEFINE_string(
    "box", None, "Person box 'x,y,w,h' in pixels (default: the whole image).", flag_values=_FLAGS
)
flags.DEFINE_bool(
    "flip",
    None,
    "Flip test: average with the mirrored image's heatmaps (default: off, on for multi-person models).",
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
flags.DEFINE_string(
    "spec",
    None,
    "Keypoint spec: mpii, lsp, flic, coco or a spec JSON file (default mpii for 16 joints).",
    flag_values=_FLAGS,
)
define_budget_flags(_FLAGS)
for _name in ("model", "input", "output"):
    flags.mark_flag_as_required(_name, flag_values=_FLAGS)


def parse_box(text: str | None):
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise flags.Error(f"--box must be four numbers 'x,y,w,h'; received {text!r}.")
    return box


def load_spec(value: str | None):
    """A dataset name, or a JSON file with a spec (``spec_to_dict`` form or our custom format)."""
    if value is None or not os.path.exists(value):
        return value
    from tf_hourglass.data.keypoint_specs import spec_from_dict
    from tf_hourglass.data.readers import load_json

    data = load_json(value, "spec file")
    try:
        return spec_from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # any JSON value may come here
        raise ValueError(f"--spec {value}: not a keypoint spec ({type(e).__name__}: {e}).") from None


def _check_flags() -> None:
    parse_box(_FLAGS.box)
    if _FLAGS.box is not None and _FLAGS.person_model is not None:
        raise flags.Error(
            "--box and --person-model exclude each other: the person model finds each person's box."
        )


def main(argv: list[str] | None = None) -> int:
    """Parses the flags and runs ``predict_path``; returns the exit status."""
    status = parse_flags(
        "predict",
        _FLAGS,
        list(sys.argv if argv is None else argv),
        __doc__,
        check=_check_flags,
    )
    if status is not None:
        return status
    from tf_hourglass.atomic_files import check_writable_folder
    from tf_hourglass.model_loader import describe_model_source
    from tf_hourglass.prediction.estimator import PoseEstimator
    from tf_hourglass.prediction.files import WHOLE_IMAGE_NOTE, predict_path

    try:
        if "://" not in _FLAGS.output:  # before the model loads
            check_writable_folder(_FLAGS.output, f"--output {_FLAGS.output!r}")
        estimator = PoseEstimator(
            _FLAGS.model,
            spec=load_spec(_FLAGS.spec),
            flip_test=_FLAGS.flip,
            precision=_FLAGS.precision,
            person_model=_FLAGS.person_model,
        )
        print(f"Model: {describe_model_source(_FLAGS.model)}.")
        print(f"Precision {estimator.precision} ({estimator.precision_reason}).")
        if estimator.person_model is not None:
            print(
                f"--person-model {_FLAGS.person_model} finds the people ({describe_model_source(_FLAGS.person_model)}); "
                f"{_FLAGS.model} estimates each on the crop of the joints found."
            )
        elif estimator.multi_person:
            print(f"{_FLAGS.model}: a multi-person model; finding every person in each image.")
        elif _FLAGS.box is None:
            print(f"{WHOLE_IMAGE_NOTE}; each image (or frame) is taken as one person filling it.")
        summary = predict_path(
            estimator, _FLAGS.input, _FLAGS.output, parse_box(_FLAGS.box), budget=budget_from_flags(_FLAGS)
        )
    except Exception as error:
        return fail_or_raise("predict", error, (ValueError, OSError))
    print(f"Wrote {len(summary.written)} file(s) to {_FLAGS.output}.")
    if summary.skipped:
        print(
            f"Skipped {len(summary.skipped)} unreadable file(s): {', '.join(summary.skipped)}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
