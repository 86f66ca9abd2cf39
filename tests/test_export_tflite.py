"""TFLite export: float32, float16, dynamic and int8 files run by LiteRT, agree with Keras, use builtin ops only."""

import dataclasses
import json
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import codec, tiny_model, tiny_model_path

from tf_hourglass.export import VerificationError, export_model, saved_model, tflite, verify
from tf_hourglass.export.errors import ExportError
from tf_hourglass.model import as_stack_list
from tf_hourglass.model_loader import TFLiteRunner, load_model_for_inference

pytestmark = pytest.mark.e2e  # every test here trains, exports or starts processes

CALIBRATION = dict(calibration="synthetic", num_calibration=32, num_heldout=32)


@dataclasses.dataclass
class Converted:
    path: str
    size_bytes: int
    parity: verify.Parity


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One file per mode, shared by the tests below.

    ``export_model`` end to end for none and int8; float16 and dynamic are
    converted from one saved network (each full export spends ~15 s on the
    same trace) and checked with the same parity code.
    """
    directory = tmp_path_factory.mktemp("tflite")
    results = {}
    for quantize, extra in (("none", {}), ("int8", CALIBRATION)):
        results[quantize] = export_model(
            tiny_model_path(),
            str(directory / f"tiny_{quantize}.tflite"),
            "tflite",
            quantize=quantize,
            peak=codec().peak,
            log=lambda line: None,
            **extra,
        )
    saved_model.save_network(tiny_model(), str(directory / "network"), batch_size=1)
    samples = verify.synthetic_samples(codec().input_size)
    reference = verify.keras_heatmaps(tiny_model(), samples.crops)
    for quantize in ("float16", "dynamic"):
        path = str(directory / f"tiny_{quantize}.tflite")
        with open(path, "wb") as f:
            f.write(tflite.convert(str(directory / "network"), quantize))
        parity = verify.heatmap_parity(reference, TFLiteRunner(path, num_threads=2)(samples.crops), codec())
        verify.check_parity(parity, verify.TOLERANCES[quantize], f"tflite/{quantize}")
        results[quantize] = Converted(path, verify.size_on_disk(path), parity)
    return results


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_parity_with_keras_within_the_mode_tolerance(exports, quantize):
    result = exports[quantize]
    tolerance = verify.TOLERANCES[tflite.TOLERANCE_KIND[quantize]]
    assert result.parity.relative_heatmap_error <= tolerance.heatmap
    assert result.parity.mean_keypoint_distance <= tolerance.keypoints
    if quantize in ("none", "int8"):
        assert any(line.startswith("parity tflite") and line.endswith("OK") for line in result.lines)


def test_quantized_files_are_smaller(exports):
    sizes = {quantize: result.size_bytes for quantize, result in exports.items()}
    # Toward 1/2 and 1/4 for large models; the tiny model's file overhead weighs more.
    assert sizes["float16"] < 0.7 * sizes["none"]
    assert sizes["dynamic"] < 0.8 * sizes["float16"]
    assert sizes["int8"] < 0.5 * sizes["none"]


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_only_builtin_ops(exports, quantize):
    with open(exports[quantize].path, "rb") as f:
        names = tflite.check_builtin_ops(f.read())
    assert "CONV_2D" in names
    assert not [name for name in names if name.startswith("Flex")]


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_xnnpack_takes_the_whole_network_as_one_partition(exports, quantize):
    # An op XNNPACK cannot run (the TILE ops of Keras' UpSampling2D were such)
    # splits the graph and runs between delegated parts on TFLite's own kernels.
    interpreter = Interpreter(model_path=exports[quantize].path, num_threads=2)
    interpreter.allocate_tensors()
    names = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "TILE" not in names
    # The list holds the model's nodes, then one DELEGATE node per delegated part.
    assert names.count("DELEGATE") == 1, names


def test_flex_ops_are_rejected():
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def warp(images):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=tf.constant([[1.0, 0, 0, 0, 1, 0, 0, 0]]),
            output_shape=tf.constant([8, 8]),
            fill_value=0.0,
            interpolation="BILINEAR",
        )

    converter = tf.lite.TFLiteConverter.from_concrete_functions([warp.get_concrete_function()], warp)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with pytest.raises(ExportError, match="FlexImageProjectiveTransformV3"):
        tflite.check_builtin_ops(converter.convert())


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic"])
def test_float_files_run_with_litert_on_float_crops(exports, quantize):
    interpreter = Interpreter(model_path=exports[quantize].path)
    interpreter.allocate_tensors()
    (image_input,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    assert image_input["dtype"] == np.float32 and list(image_input["shape"]) == [1, 64, 64, 3]
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["images"], "outputs": ["heatmaps"]}
    }
    crop = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    interpreter.set_tensor(image_input["index"], crop)
    interpreter.invoke()
    expected = as_stack_list(tiny_model()(crop, training=False))[-1].numpy()
    tolerance = verify.TOLERANCES[tflite.TOLERANCE_KIND[quantize]].heatmap
    assert (
        np.abs(interpreter.get_tensor(output["index"]) - expected).max() <= tolerance * np.abs(expected).max()
    )


def test_int8_takes_camera_pixels_and_returns_uint8_heatmaps(exports):
    result = exports["int8"]
    interpreter = Interpreter(model_path=result.path)
    interpreter.allocate_tensors()
    (image_input,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    assert image_input["dtype"] == np.uint8 and output["dtype"] == np.uint8
    scale, zero_point = image_input["quantization"]
    assert zero_point == 0 and scale == pytest.approx(1 / 255)
    # Raw pixels in, dequantised heatmaps out, against Keras on the same pixels / 255.
    pixels = np.random.default_rng(1).integers(0, 256, size=(1, 64, 64, 3), dtype=np.uint8)
    interpreter.set_tensor(image_input["index"], pixels)
    interpreter.invoke()
    out_scale, out_zero_point = output["quantization"]
    heatmaps = (interpreter.get_tensor(output["index"]).astype(np.float32) - out_zero_point) * out_scale
    expected = as_stack_list(tiny_model()(pixels / 255.0, training=False))[-1].numpy()
    assert np.abs(heatmaps - expected).max() <= verify.TOLERANCES["int8"].heatmap * np.abs(expected).max()


def test_int8_reports_accuracy_on_held_out_figures(exports):
    accuracy = exports["int8"].accuracy
    assert accuracy.metric == "PCKh@0.5" and accuracy.num_persons == 32
    assert accuracy.drop <= 1.0
    assert any(line.startswith("PCKh@0.5 on 32 held-out people") for line in exports["int8"].lines)
    # The QAT toolkit is imported only for --quantize qat: it rewires tf.keras for the process.
    assert "tensorflow_model_optimization" not in sys.modules


def test_accuracy_drop_beyond_the_limit_fails():
    comparison = verify.AccuracyComparison("PCKh@0.5", keras=80.0, exported=78.5, num_persons=100)
    assert "OK" in verify.check_accuracy(comparison, 2.0, "int8")
    with pytest.raises(VerificationError, match=r"drop 1.50 points, at most 1\): FAILED"):
        verify.check_accuracy(comparison, 1.0, "int8")


def test_integer_modes_need_calibration_data(tmp_path):
    with pytest.raises(ValueError, match="needs calibration data.*Received: calibration=None"):
        export_model(tiny_model_path(), str(tmp_path / "m.tflite"), "tflite", quantize="int8")
    with pytest.raises(ValueError, match="quantize for format 'onnx' must be one of"):
        export_model(tiny_model_path(), str(tmp_path / "m.onnx"), "onnx", quantize="int8")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_exported_file_carries_the_model_info_beside_it(exports, quantize):
    path = exports[quantize].path
    with open(path + ".info.json") as f:
        info = json.load(f)
    assert info["codec"]["peak"] == codec().peak  # given to export_model
    assert info["spec"]["name"] == "mpii" and info["input_size"] == list(codec().input_size)
    loaded = load_model_for_inference(path)
    assert loaded.spec.name == "mpii"
    assert loaded.codec().peak == codec().peak
