"""ONNX: the network alone, for ONNX Runtime and for building TensorRT engines.

Input ``images`` float32 [batch, H, W, 3] in [0, 1] (NHWC, as in TensorFlow;
TensorRT handles the layout), dynamic batch named ``batch``. Output
``heatmaps`` float32 [batch, H/4, W/4, K], the last stack. Converted by
tf2onnx (opset 17 or later) from the same ``tf.function`` the TFLite export
uses, and checked with ``onnx.checker``.
"""

from __future__ import annotations

from tf_hourglass.export import saved_model
from tf_hourglass.model_loader import OnnxRunner  # the one ONNX Runtime runner, beside TFLiteRunner
from tf_hourglass.run_files import ONNX_INFO_KEY

__all__ = ["OnnxRunner", "export_onnx", "write_model_info"]

DEFAULT_OPSET = 17
MIN_OPSET = 17
BATCH_DIMENSION = "batch"


def export_onnx(model, path: str, opset: int = DEFAULT_OPSET) -> None:
    """Writes the network as an ONNX file and checks it with ``onnx.checker``."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}. Received: opset={opset}")
    import onnx
    import tf2onnx

    function = saved_model.network_function(model, batch_size=None)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=opset)
    # tf2onnx names the unknown batch size "unk__123"; one clear name on both ends.
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIMENSION
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)


def write_model_info(path: str, text: str) -> None:
    """Stores ``text`` (``ModelInfo.to_json()``) in the ONNX file at ``path`` (rewritten in place)."""
    import onnx

    proto = onnx.load(path)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_INFO_KEY, text
    onnx.save(proto, path)
