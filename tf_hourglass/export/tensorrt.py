"""NVIDIA GPUs: TensorRT engines built from the ONNX network, and TF-TRT for old TensorFlow.

``tensorrt``: the ONNX graph of ``onnx.py`` is parsed by ``trt.OnnxParser`` and
built by ``trt.Builder.build_serialized_network`` into a serialized engine
(a ``.engine`` / ``.plan`` file, valid for the GPU model and TensorRT version
that built it). Precision: FP32 (``--quantize none``), FP16 (``float16``) or
INT8 (``int8``, calibrated by ``IInt8EntropyCalibrator2`` on calibration crops;
the calibration cache is kept as ``OUTPUT.calibration.cache`` and reused).
Dynamic batch from 1 to ``max_batch_size``. These are TensorRT 10 APIs:
TensorRT 11 removed the FP16/INT8 builder flags and the calibrators (it wants
strongly typed ONNX, e.g. from NVIDIA ModelOpt); there only FP32 builds.

``tftrt``: TF-TRT (``trt_convert.TrtGraphConverterV2``) rewrites the serving
SavedModel's ``serving_default`` with TensorRT segments. It exists only in
TensorFlow <= 2.17 GPU builds; TensorFlow 2.18 removed it.

Both need an NVIDIA GPU. Without one, or without the packages, the export
stops before any work with a ``MissingRequirementError`` naming each missing
item. Inputs reach the GPU through ``cuda-python`` (``cudart``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from tf_hourglass.export.errors import ExportError, MissingRequirementError

PRECISIONS = ("none", "float16", "int8")
TOLERANCE_KIND = {"none": "float32", "float16": "float16", "int8": "int8"}
INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"
CALIBRATION_BATCH_SIZE = 8


# ----- requirements ---------------------------------------------------------------


def nvidia_gpus() -> list[str]:
    """The GPUs ``nvidia-smi -L`` lists (empty without the driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in result.stdout.splitlines() if line.startswith("GPU ")]


def _gpu_missing() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return ["an NVIDIA GPU with its driver (nvidia-smi is not on PATH)"]
    if not nvidia_gpus():
        return ["an NVIDIA GPU (nvidia-smi -L lists none)"]
    return []


def _cudart():
    """cuda-python's runtime API module (its location moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def tensorrt_missing(precision: str) -> list[str]:
    """Everything the ``tensorrt`` format lacks on this machine (empty when it can run)."""
    missing = []
    try:
        import tensorrt as trt
    except Exception as error:  # ImportError, or OSError when CUDA libraries are absent
        missing.append(
            f"the `tensorrt` Python package, version 10 (pip install 'tensorrt>=10,<11'; import failed: {error})"
        )
    else:
        major = int(trt.__version__.split(".")[0])
        if major >= 11 and precision != "none":
            missing.append(
                f"TensorRT 10 for {precision} (TensorRT {trt.__version__} removed the FP16/INT8 builder flags "
                "and calibrators; pip install 'tensorrt>=10,<11', or convert the ONNX with NVIDIA ModelOpt)"
            )
    missing += _gpu_missing()
    try:
        _cudart()
    except ImportError:
        missing.append("the `cuda-python` package (pip install cuda-python), to feed the GPU")
    return missing


def tftrt_missing() -> list[str]:
    """Everything the ``tftrt`` format lacks (empty when it can run)."""
    import tensorflow as tf

    missing = []
    version = tuple(int(part) for part in tf.__version__.split(".")[:2])
    if version >= (2, 18):
        missing.append(
            f"TF-TRT, which TensorFlow removed in 2.18 (this is TensorFlow {tf.__version__}): use a "
            "TensorFlow <= 2.17 GPU build, or --format tensorrt (ONNX -> TensorRT)"
        )
    else:
        try:
            from tensorflow.python.compiler.tensorrt import trt_convert  # noqa: F401
            from tensorflow.python.compiler.tensorrt.utils import is_linked_tensorrt_version_greater_equal

            if not is_linked_tensorrt_version_greater_equal(7, 0, 0):
                missing.append("a TensorFlow build linked against TensorRT >= 7")
        except ImportError as error:
            missing.append(f"a TensorFlow build with TF-TRT ({error})")
    if not tf.config.list_physical_devices("GPU"):
        missing.append("a GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty)")
    return missing


def require(missing: list[str], what: str) -> None:
    if missing:
        raise MissingRequirementError(
            f"Cannot build {what} on this machine; missing: " + "; ".join(missing) + ". "
            "Export --format onnx here and build the engine on a GPU machine (export/TENSORRT.md)."
        )


# ----- CUDA helpers -------------------------------------------------------------------


def _call(result):
    """Unpacks a cuda-python ``(error, *values)`` tuple, raising on errors."""
    cudart = _cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        raise ExportError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else values


def _to_device(array: np.ndarray, device_pointer: int) -> None:
    cudart = _cudart()
    _call(
        cudart.cudaMemcpy(
            device_pointer, array.ctypes.data, array.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        )
    )


# ----- TensorRT engine ----------------------------------------------------------------------


def _calibrator(crops, cache_path: str | None):
    """An ``IInt8EntropyCalibrator2`` over the calibration crops (batches of CALIBRATION_BATCH_SIZE)."""
    import tensorrt as trt

    cudart = _cudart()
    crops = np.ascontiguousarray(crops, np.float32)
    batch_size = min(CALIBRATION_BATCH_SIZE, len(crops))

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device = _call(cudart.cudaMalloc(batch_size * crops[0].nbytes))

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            if self.index + batch_size > len(crops):
                return None
            _to_device(np.ascontiguousarray(crops[self.index : self.index + batch_size]), self.device)
            self.index += batch_size
            return [int(self.device)]

        def read_calibration_cache(self):
            if cache_path and os.path.exists(cache_path):
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache):
            if cache_path:
                with open(cache_path, "wb") as f:
                    f.write(bytes(cache))

    return EntropyCalibrator(), batch_size


def build_engine(
    onnx_path: str,
    engine_path: str,
    input_size,
    precision: str = "none",
    calibration_crops=None,
    cache_path: str | None = None,
    max_batch_size: int = 8,
    workspace_bytes: int = 2 << 30,
) -> None:
    """Builds a serialized TensorRT engine from the ONNX network and writes it to ``engine_path``."""
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={precision!r}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1. Received: max_batch_size={max_batch_size}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch (the only mode in TensorRT 10)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        if not parser.parse(f.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    height, width = input_size

    def profile_for(smallest, usual, largest):
        profile = builder.create_optimization_profile()
        profile.set_shape(
            INPUT_NAME, (smallest, height, width, 3), (usual, height, width, 3), (largest, height, width, 3)
        )
        return profile

    config.add_optimization_profile(profile_for(1, max(1, max_batch_size // 2), max_batch_size))
    if precision == "float16":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration_crops is None or len(calibration_crops) == 0:
            raise ValueError("INT8 engines need calibration crops; received none.")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers TensorRT keeps out of INT8 run in FP16
        calibrator, batch_size = _calibrator(calibration_crops, cache_path)
        config.int8_calibrator = calibrator
        # With dynamic shapes, calibration runs at the calibration profile's shape.
        config.set_calibration_profile(profile_for(batch_size, batch_size, batch_size))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build the engine (see its log above).")
    with open(engine_path, "wb") as f:
        f.write(serialized)


class TensorRTRunner:
    """Runs a serialized engine on the GPU: float crops in, heatmaps out."""

    def __init__(self, engine_path: str):
        import tensorrt as trt

        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as f:
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise ExportError(f"TensorRT could not load {engine_path} (built for another GPU or version?).")
        self.context = self.engine.create_execution_context()
        self.max_batch_size = int(self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])

    def _run_batch(self, crops):
        cudart = _cudart()
        self.context.set_input_shape(INPUT_NAME, crops.shape)
        heatmaps = np.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), np.float32)
        device_in = _call(cudart.cudaMalloc(crops.nbytes))
        device_out = _call(cudart.cudaMalloc(heatmaps.nbytes))
        stream = _call(cudart.cudaStreamCreate())
        try:
            _to_device(crops, device_in)
            self.context.set_tensor_address(INPUT_NAME, int(device_in))
            self.context.set_tensor_address(OUTPUT_NAME, int(device_out))
            if not self.context.execute_async_v3(int(stream)):
                raise ExportError("TensorRT inference failed.")
            _call(cudart.cudaStreamSynchronize(stream))
            _call(
                cudart.cudaMemcpy(
                    heatmaps.ctypes.data,
                    device_out,
                    heatmaps.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                )
            )
        finally:
            cudart.cudaFree(device_in)
            cudart.cudaFree(device_out)
            cudart.cudaStreamDestroy(stream)
        return heatmaps

    def __call__(self, crops) -> np.ndarray:
        crops = np.ascontiguousarray(crops, np.float32)
        parts = [
            self._run_batch(np.ascontiguousarray(crops[start : start + self.max_batch_size]))
            for start in range(0, len(crops), self.max_batch_size)
        ]
        return np.concatenate(parts)


# ----- TF-TRT (TensorFlow <= 2.17) --------------------------------------------------------


def convert_tftrt(
    serving_dir: str, output_dir: str, precision: str = "none", calibration_images=None, sample_images=None
) -> None:
    """Rewrites the serving SavedModel's ``serving_default`` (uint8 photos in) with TF-TRT.

    Args:
        calibration_images: uint8 [N, H, W, 3] pictures for INT8 calibration.
        sample_images: uint8 [N, H, W, 3] pictures to build the engines with
            now rather than on the first request.
    """
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    modes = {
        "none": trt.TrtPrecisionMode.FP32,
        "float16": trt.TrtPrecisionMode.FP16,
        "int8": trt.TrtPrecisionMode.INT8,
    }
    if precision not in modes:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={precision!r}")
    converter = trt.TrtGraphConverterV2(
        input_saved_model_dir=serving_dir,
        input_saved_model_signature_key="serving_default",
        precision_mode=modes[precision],
        use_dynamic_shape=True,
        dynamic_shape_profile_strategy="Optimal",
    )
    if precision == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise ValueError("INT8 TF-TRT needs calibration images; received none.")
        images = np.asarray(calibration_images, np.uint8)
        converter.convert(calibration_input_fn=lambda: ((images[i : i + 1],) for i in range(len(images))))
    else:
        converter.convert()
    if sample_images is not None and len(sample_images):
        samples = np.asarray(sample_images, np.uint8)
        converter.build(input_fn=lambda: [(samples[:1],)])
    converter.save(output_dir)
