"""Command line training: ``python -m tf_hourglass.train --config configs/NAME.py --workdir DIR``.

Only parses flags; the work is ``tf_hourglass.training.trainer.train_and_evaluate``,
which notebooks and tests call directly. Override any config field with
``--config.train.batch_size=32``.
"""

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

    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
