"""Command line training: ``python -m tf_hourglass.train --config configs/NAME.py --workdir DIR``.

Only parses flags; the work is ``tf_hourglass.training.trainer.train_and_evaluate``,
which notebooks and tests call directly. Override any config field with
``--config.train.batch_size=32``.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the final model.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from tf_hourglass.training.trainer import train_and_evaluate

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (ValueError, OSError) as error:  # bad config values, an unusable or busy workdir
        sys.exit(f"train: error: {error}")


def parse_flags(argv):
    """absl's parsing, with an unknown ``--config.a.b`` field as one line instead of a traceback."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as error:
        key = str(error).strip("\"'")
        for arg in argv[1:]:
            path = arg.split("=", 1)[0].lstrip("-")
            if path.startswith("config.") and key in path.split(".")[1:]:
                parent = path.rsplit(".", 1)[0]
                sys.exit(f"train: error: --{path}: no field {key!r} in {parent}.")
        raise


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
