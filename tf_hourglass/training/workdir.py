"""The files a training run keeps in its workdir, beside the checkpoints and the model.

``train.lock`` (one run at a time), ``config.json`` and ``inference.json``
(the run's settings), the JSON side files (``best.json``, ``results.json``),
and ``metrics.csv`` trimmed to the epochs a resumed run does not redo. A run
resumed with a config that differs from ``config.json`` in what it learns is
refused (``check_resumed_config``).
"""

from __future__ import annotations

import json
import os

from tf_hourglass import atomic_files
from tf_hourglass.run_files import RUN_SETTINGS_FILE, run_settings_text
from tf_hourglass.training.data_sources import canonical_data_fields


class WorkdirInUseError(OSError):
    """Another live training run holds the workdir."""


def workdir_lock(workdir):
    """Holds ``WORKDIR/train.lock`` for one run, so two runs never mix their files (``atomic_files.exclusive_lock``)."""

    def in_use(holder):
        return WorkdirInUseError(
            f"{workdir!r} is in use by another training run (pid {holder}); "
            "wait for it to finish or choose another --workdir."
        )

    return atomic_files.exclusive_lock(os.path.join(workdir, "train.lock"), in_use)


def write_json(path, data):
    atomic_files.write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path):
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path}: not valid JSON ({type(e).__name__}); repair or remove it.") from None


def drop_metrics_rows_from(path, epoch):
    """Drops the metrics.csv rows of ``epoch`` and later: the run does them again.

    A run killed after an epoch's CSV row but before its checkpoint would
    otherwise leave that epoch twice in the file.
    """
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; repair or remove it to resume.") from None
    if not lines:
        return
    header, *rows = lines
    kept = []
    for row in filter(str.strip, rows):
        try:
            row_epoch = int(row.split(",", 1)[0])
        except ValueError:
            raise ValueError(
                f"{path}: a row that does not start with an epoch number ({row.strip()[:40]!r}); "
                "repair or remove the file to resume."
            ) from None
        if row_epoch < epoch:
            kept.append(row)
    if len(kept) < len(rows):
        atomic_files.write_text(path, header + "".join(kept))


def write_run_settings(workdir, config, spec, codec):
    """config.json, and what inference needs beside final.keras: the keypoints and the target scale."""
    text = run_settings_text(spec, codec.sigma, codec.peak)
    atomic_files.write_text(os.path.join(workdir, RUN_SETTINGS_FILE), text)
    write_config(workdir, config)


CONFIG_FILE = "config.json"
# What a resumed run may change without asking: how long it trains, and where and how fast it runs.
RESUMABLE_FIELDS = (
    "train.epochs",
    "train.max_train_minutes",
    "train.allow_config_change",
    "data.max_image_pixels",
    "data.max_image_bytes",
)
RESUMABLE_SECTIONS = ("runtime.",)


def _flatten(data, prefix=""):
    if not isinstance(data, dict):
        return {prefix[:-1]: data}
    flat = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def _base_defaults() -> dict:
    from tf_hourglass.training.base_config import get_base_config

    return _flatten(json.loads(get_base_config().to_json_best_effort()))


def config_changes(saved: dict, current: dict) -> list[str]:
    """``"field: old -> new"`` for every field that differs, but for those a resume may change.

    A field the saved config lacks (a run started before the field existed) is
    unchanged while the current config leaves it at its default.
    """
    old, new = _flatten(saved), _flatten(current)
    defaults = _base_defaults()
    changes = []
    for field in sorted(set(old) | set(new)):
        if field in RESUMABLE_FIELDS or field.startswith(RESUMABLE_SECTIONS):
            continue
        if field not in old and field in defaults and new.get(field) == defaults[field]:
            continue
        if old.get(field, "<absent>") != new.get(field, "<absent>"):
            changes.append(f"{field}: {old.get(field, '<absent>')!r} -> {new.get(field, '<absent>')!r}")
    return changes


def check_resumed_config(workdir, config) -> None:
    """Refuses to resume ``workdir`` with a config that changes what the run learns.

    Its ``config.json`` (written when the run started) is compared with
    ``config``; more epochs, another time limit or another runtime are fine.

    Raises:
        ValueError: naming the changed fields, unless ``train.allow_config_change`` is set
            (then the run goes on with the new config and rewrites config.json).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the config of the run in this workdir ({error}).") from None
    # Both spellings of the data (data.train or data.format + data.train_annotations ...) compare as one.
    current = json.loads(config.to_json_best_effort())
    changes = config_changes(canonical_data_fields(saved), canonical_data_fields(current))
    if changes and not config.train.get("allow_config_change", False):
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise ValueError(
            f"--workdir {workdir} holds a run whose {CONFIG_FILE} does not match this config: {shown}. "
            "Pass --config.train.allow_config_change=True to go on with the new config, or use a new --workdir."
        )


def write_config(workdir, config) -> None:
    """``config.json``: the run's config, which a resumed run is checked against."""
    write_json(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json_best_effort()))
