"""The files a training run (or a weights conversion) leaves for inference, named once.

A workdir holds ``final.keras`` (``MODEL_FILE``), the trained model, and
``inference.json`` (``RUN_SETTINGS_FILE``): its keypoint spec and the heatmap
targets' scale, which evaluate, predict, ``PoseEstimator`` and export read.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.records import KeypointSpec

MODEL_FILE = "final.keras"
RUN_SETTINGS_FILE = "inference.json"


def run_settings_text(spec: KeypointSpec, sigma: float, peak: float) -> str:
    """The contents of ``inference.json``: the keypoints and the training targets' scale."""
    settings = {
        "spec": keypoint_specs.spec_to_dict(spec),
        "codec": {"sigma": float(sigma), "peak": float(peak)},
    }
    return json.dumps(settings, indent=2) + "\n"


def read_run_settings(model) -> dict:
    """The keypoint spec and codec settings a training run wrote next to its model, if any.

    ``train_and_evaluate`` writes ``inference.json`` into the workdir beside
    ``final.keras``; a model given as that workdir or a file in it finds it.
    Returns {} for anything else.
    """
    if not isinstance(model, (str, os.PathLike)):
        return {}
    path = os.fspath(model)
    folder = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    settings_path = os.path.join(folder, RUN_SETTINGS_FILE)
    if not tf.io.gfile.exists(settings_path):
        return {}
    with tf.io.gfile.GFile(settings_path, "rb") as f:
        try:
            settings = json.loads(f.read())
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too deep
            raise ValueError(f"{settings_path}: not valid JSON ({type(e).__name__}).") from None
    try:
        return {
            "spec": keypoint_specs.spec_from_dict(settings["spec"]),
            "codec": {"sigma": settings["codec"]["sigma"], "peak": settings["codec"]["peak"]},
        }
    except (ValueError, TypeError, KeyError) as e:  # a field missing or of the wrong kind
        raise ValueError(
            f"{settings_path}: not the settings a training run writes ({type(e).__name__}: {e})."
        ) from None
