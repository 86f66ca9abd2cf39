"""Command line training: ``python -m tf_hourglass.train --config configs/NAME.py --workdir DIR``.

Only parses flags; the work is ``tf_hourglass.training.trainer.train_and_evaluate``,
which notebooks and tests call directly. Override any config field with
``--config.train.batch_size=32``.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from tf_hourglass.cli import fail, fail_or_raise, parse_flags

# Own FlagValues (see tf_hourglass/cli.py for the convention every command follows).
_FLAGS = flags.FlagValues()
config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", flag_values=_FLAGS, lock_config=True
)
flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, logs and the final model.", flag_values=_FLAGS
)
for _name in ("config", "workdir"):
    flags.mark_flag_as_required(_name, flag_values=_FLAGS)


def _unknown_config_field(argv: list[str], error: Exception) -> str | None:
    """The one-line message for ``--config.a.unknown=...`` (ml_collections raises KeyError/AttributeError)."""
    key = str(error).strip("\"'")
    for arg in argv[1:]:
        path = arg.split("=", 1)[0].lstrip("-")
        if path.startswith("config.") and key in path.split(".")[1:]:
            return f"--{path}: no field {key!r} in {path.rsplit('.', 1)[0]}."
    return None


def _config_file(argv: list[str]) -> str | None:
    """FILE of ``--config FILE[:ARGUMENTS]`` (or ``--config=...``) in ``argv``, if given."""
    for i, arg in enumerate(argv[1:], start=1):
        name, sep, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "config":
            value = value if sep else (argv[i + 1] if i + 1 < len(argv) else "")
            return value.split(":", 1)[0]
    return None


def main(argv: list[str] | None = None) -> int:
    """Parses the flags and runs ``train_and_evaluate``; returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    config_file = _config_file(argv)
    if config_file and not os.path.isfile(config_file) and not {"-h", "--help", "--helpfull"} & set(argv):
        return fail("train", f"--config {config_file}: no such file.")
    try:
        status = parse_flags("train", _FLAGS, argv, __doc__)
    except Exception as error:  # the config file is Python: loading it may raise anything
        message = (
            _unknown_config_field(argv, error) if isinstance(error, (AttributeError, KeyError)) else None
        )
        if message is not None:
            return fail("train", message, status=2)  # a bad flag, like parse_flags'
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return fail(
            "train", f"--config {config_file}: loading it raised {type(error).__name__}: {first_line}"
        )
    if status is not None:
        return status
    from tf_hourglass.training.trainer import train_and_evaluate

    try:
        train_and_evaluate(_FLAGS.config, _FLAGS.workdir)
    except Exception as error:  # bad config values, an unusable, busy or full workdir
        return fail_or_raise("train", error, (ValueError, OSError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
