"""TFLite (LiteRT) files for phones: the network alone, batch 1, TFLite builtin ops only.

Signature ``serving_default``:

* input ``images`` [1, H, W, 3], the person crop (crop it on the phone as
  ``transforms.crop_matrix`` does): float32 in [0, 1]; for ``int8`` and
  ``qat`` uint8 RGB pixels 0..255 as they come from the camera, because
  the input's quantisation is pinned to scale 1/255, zero point 0;
* output ``heatmaps`` [1, H/4, W/4, K], the last stack: float32; for
  ``int8`` and ``qat`` uint8 with ``heatmap = scale * (q - zero_point)``
  (scale and zero point in the file: ``get_output_details()[0]["quantization"]``).

uint8 rather than int8 at both ends: camera frames are uint8, and the arg-max
of a uint8 heatmap is the arg-max of the float one, so decoding needs no
dequantisation at all (only the scores do).

``--quantize``:

=========  ===========================================================  ==========
mode       what                                                         size
=========  ===========================================================  ==========
none       float32                                                      1x
float16    float16 weights (GPU delegates run fp16; CPUs dequantise)    1/2
dynamic    int8 weights, float activations quantised on the fly         1/4
int8       full integer, activations calibrated on representative crops 1/4
qat        int8 after a short quantisation-aware fine-tuning (qat.py)   1/4
=========  ===========================================================  ==========

Only builtin ops are allowed (no Flex / SELECT_TF_OPS, no custom ops), so the
files run on the plain LiteRT runtime of Android, iOS and microcontrollers;
``check_builtin_ops`` asserts it on the converted flatbuffer.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf

from tf_hourglass.export import saved_model
from tf_hourglass.export.errors import ExportError

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8", "qat")
INTEGER_MODES = ("int8", "qat")
# Which verify.TOLERANCES entry applies to each mode.
TOLERANCE_KIND = {
    "none": "float32",
    "float16": "float16",
    "dynamic": "dynamic",
    "int8": "int8",
    "qat": "int8",
}


def integer_network_function(model) -> tf.function:
    """The batch-1 network with its input range pinned to [0, 1] in 256 steps.

    The fake-quant op fixes the converter's input quantisation to scale 1/255,
    zero point 0 whatever range the calibration crops span, so raw uint8
    pixels are the model's input.
    """
    network = saved_model.network_function(model, batch_size=1)

    def heatmaps(images):
        return network(tf.quantization.fake_quant_with_min_max_args(images, min=0.0, max=1.0, num_bits=8))

    return tf.function(heatmaps, input_signature=network.input_signature, autograph=False)


def save_integer_network(model, path: str) -> None:
    module = tf.Module(name="tf_hourglass_network")
    module.heatmaps = integer_network_function(model)
    saved_model.track_captured_variables(module, [module.heatmaps])
    tf.saved_model.save(module, path, signatures={"serving_default": module.heatmaps})


def convert(saved_model_dir: str, quantize: str, representative_crops=None) -> bytes:
    """Converts a network SavedModel (``serving_default``: images -> heatmaps) to TFLite bytes."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize in INTEGER_MODES:
        if representative_crops is None or len(representative_crops) == 0:
            raise ValueError(f"quantize={quantize!r} needs representative crops; received none.")
        crops = np.asarray(representative_crops, np.float32)
        converter.representative_dataset = lambda: ([crop[None]] for crop in crops)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def operator_codes(content: bytes) -> list[tuple[str, bool]]:
    """(name, is_custom) of each operator code in a .tflite flatbuffer; custom ops by their custom code."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    builtin_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if name.isupper()}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Codes above 127 live in BuiltinCode, older ones in DeprecatedBuiltinCode.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(((code.CustomCode() or b"").decode(), True))
        else:
            codes.append((builtin_names.get(builtin, str(builtin)), False))
    return codes


def check_builtin_ops(content: bytes) -> list[str]:
    """The sorted operator names; raises ``ExportError`` on Flex (TF Select) or other custom ops."""
    codes = operator_codes(content)
    custom = sorted({name for name, is_custom in codes if is_custom})
    if custom:
        raise ExportError(
            f"The TFLite model uses non-builtin ops {custom} (Flex ops need the TF Select runtime "
            "on the phone); only builtin ops are allowed."
        )
    return sorted({name for name, _ in codes})


def export_tflite(
    model,
    path: str,
    quantize: str = "none",
    calibration_crops=None,
    qat_options: dict | None = None,
    log=print,
) -> list[str]:
    """Writes the .tflite file; returns its operator names.

    Args:
        calibration_crops: float32 [N, H, W, 3] crops in [0, 1], needed for
            int8 (representative dataset) and qat (fine-tuning data).
        qat_options: keyword arguments of ``qat.quantization_aware_network``
            (steps, batch_size, learning_rate).
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}")
    with tempfile.TemporaryDirectory() as tmp:
        network_dir = os.path.join(tmp, "network")
        if quantize == "qat":
            # Imported only here: tfmot switches tf.keras to tf-keras for the process.
            from tf_hourglass.export import qat

            qat.save_quantization_aware_network(
                model, network_dir, calibration_crops, log=log, **(qat_options or {})
            )
        elif quantize == "int8":
            save_integer_network(model, network_dir)
        else:
            saved_model.save_network(model, network_dir, batch_size=1)
        content = convert(network_dir, quantize, calibration_crops)
    names = check_builtin_ops(content)
    with open(path, "wb") as f:
        f.write(content)
    return names
