"""Official PyTorch hourglass weights as a Keras model: ``python -m tf_hourglass.weights``.

    python -m tf_hourglass.weights --source pv --checkpoint checkpoint.pt --output hg8_pv.keras
    python -m tf_hourglass.weights --source bp --checkpoint model_best.pth.tar --output runs/hg2_bp
    python -m tf_hourglass.weights --source ae --checkpoint exp/pretrained/checkpoint.pth.tar --output ae.keras

--source pv: princeton-vl/pytorch_stacked_hourglass (checkpoint.pt);
--source bp: bearpaw/pytorch-pose (checkpoint.pth.tar, model_best.pth.tar);
--source ae: princeton-vl/pose-ae-train (exp/<name>/checkpoint.pth.tar), the
multi-person Associative Embedding network (COCO's 17 joints, 512x512 input);
bearpaw trains on mean-subtracted images, so its model subtracts the MPII mean
(or --mean-file's) from the [0, 1] input every other model takes.
The checkpoint is read without torch and without running code from it. The
number of stacks, residual modules and keypoints comes from the checkpoint.
--output is a .keras file (inference.json is written beside it) or a folder
(final.keras and inference.json), which evaluate, predict and export accept
as --model. Exit status: 0 done, 1 the checkpoint could not be converted (the
message says why), 2 bad flags.
"""

from __future__ import annotations

import sys

from absl import flags

from tf_hourglass.cli import fail, parse_flags
from tf_hourglass.weights.state_dicts import SOURCES

_FLAGS = flags.FlagValues()
flags.DEFINE_enum(
    "source",
    None,
    list(SOURCES),
    "pv (princeton-vl), bp (bearpaw) or ae (princeton-vl/pose-ae-train).",
    flag_values=_FLAGS,
)
flags.DEFINE_string("checkpoint", None, "The PyTorch checkpoint file.", flag_values=_FLAGS)
flags.DEFINE_string("output", None, "MODEL.keras, or a folder to hold final.keras.", flag_values=_FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace an existing model and inference.json.", flag_values=_FLAGS)
flags.DEFINE_string(
    "spec",
    None,
    "Keypoints of the checkpoint, in channel order (mpii, lsp, coco, ...); default mpii, coco for ae.",
    flag_values=_FLAGS,
)
flags.DEFINE_integer(
    "input_size",
    None,
    "Square input side in pixels; default 256, 512 for ae.",
    lower_bound=16,
    flag_values=_FLAGS,
)
flags.DEFINE_string(
    "mean_file",
    None,
    "bp: the mean.pth.tar its dataset code cached (data/mpii/mean.pth.tar) instead of the published MPII mean.",
    flag_values=_FLAGS,
)
for _name in ("source", "checkpoint", "output"):
    flags.mark_flag_as_required(_name, flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> int:
    """Parses the flags and runs ``convert_checkpoint``; returns the exit status."""
    status = parse_flags("weights", _FLAGS, list(sys.argv if argv is None else argv), __doc__)
    if status is not None:
        return status
    from tf_hourglass.weights.convert import convert_checkpoint
    from tf_hourglass.weights.pytorch_hourglass import read_mean_file

    try:
        input_mean = read_mean_file(_FLAGS.mean_file) if _FLAGS.mean_file else "source"
        model_path = convert_checkpoint(
            _FLAGS.checkpoint,
            _FLAGS.output,
            _FLAGS.source,
            spec=_FLAGS.spec,
            input_size=_FLAGS.input_size,
            input_mean=input_mean,
            overwrite=_FLAGS.overwrite,
        )
    except (OSError, ValueError) as e:  # our messages name the file or flag
        return fail("weights", e)
    print(f"Wrote {model_path} ({SOURCES[_FLAGS.source]} weights) and its inference.json.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
