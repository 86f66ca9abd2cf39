"""The files a training run, a weights conversion or an export leaves for inference, named once.

A workdir holds ``final.keras`` (``MODEL_FILE``), the trained model, which
carries its ``ModelInfo`` (keypoint spec, codec settings, kind) in its config,
and ``inference.json`` (``RUN_SETTINGS_FILE``): the keypoint spec and the heatmap
targets' scale, as earlier versions wrote it (still read for models without
saved info). An exported file gets its ``ModelInfo`` beside it (``info_path``).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.records import KeypointSpec

MODEL_FILE = "final.keras"
RUN_SETTINGS_FILE = "inference.json"
# Inside an exported SavedModel, beside saved_model.pb (loaders, TF Serving included, leave other files be;
# assets.extra/ stays the user's, for TF Serving's warm-up requests).
SAVED_MODEL_INFO_FILE = "tf_hourglass_info.json"
# Beside an exported file: model.tflite -> model.tflite.info.json.
INFO_FILE_SUFFIX = ".info.json"
# An ONNX export holds it in its own metadata (metadata_props) under this key.
ONNX_INFO_KEY = "tf_hourglass_info"


def info_path(model_path: str) -> str:
    """Where an exported model's ``ModelInfo`` is: inside a SavedModel folder, else beside the file."""
    model_path = os.fspath(model_path)
    if tf.io.gfile.isdir(model_path):
        return os.path.join(model_path, SAVED_MODEL_INFO_FILE)
    return model_path + INFO_FILE_SUFFIX


def run_settings_text(spec: KeypointSpec, sigma: float, peak: float) -> str:
    """The contents of ``inference.json``: the keypoints and the training targets' scale."""
    settings = {
        "spec": keypoint_specs.spec_to_dict(spec),
        "codec": {"sigma": float(sigma), "peak": float(peak)},
    }
    return json.dumps(settings, indent=2) + "\n"
