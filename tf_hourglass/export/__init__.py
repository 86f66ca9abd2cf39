"""Deployment exports: SavedModel (TF Serving), TFLite (phones), ONNX and TensorRT (NVIDIA GPUs).

``export_model(model, output, format, ...)`` is the library entry point and
``python -m tf_hourglass.export`` its command line. One module per format
(``saved_model``, ``tflite``, ``onnx``, ``tensorrt``), ``qat`` for
quantisation-aware training (imported only when asked for: it loads
tf-keras), ``calibration`` for calibration data and ``verify`` for the checks
every export runs on itself.
"""

from tf_hourglass.export.errors import ExportError, MissingRequirementError, VerificationError
from tf_hourglass.export.exporter import FORMATS, QUANTIZE_MODES, ExportResult, export_model

# What exports take: a Keras model, a .keras file or a training workdir (its final.keras).
from tf_hourglass.model_loader import load_keras_model as load_model

__all__ = [
    "FORMATS",
    "QUANTIZE_MODES",
    "ExportError",
    "ExportResult",
    "MissingRequirementError",
    "VerificationError",
    "export_model",
    "load_model",
]
