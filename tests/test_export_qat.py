"""Quantisation-aware training export (tfmot on a tf-keras rebuild): about a minute, so marked slow.

Runs only with ``pytest -m slow`` or ``RUN_SLOW=1``; a plain ``pytest -q`` (CI) skips it.
It runs the command in its own process: importing tfmot switches tf.keras to
tf-keras for the whole process, which must not leak into the other tests.
"""

import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from export_helpers import run_export_cli, tiny_model_path

from tf_hourglass.export import tflite

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def only_when_asked(request):
    if os.environ.get("RUN_SLOW") != "1" and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("QAT export takes about a minute: run with `pytest -m slow` or RUN_SLOW=1")
    pytest.importorskip("tensorflow_model_optimization", reason="QAT needs the [qat] extra")


def test_qat_export_fine_tunes_converts_to_int8_and_keeps_accuracy(tmp_path):
    output = tmp_path / "tiny_qat.tflite"
    result = run_export_cli(
        "--model", tiny_model_path(), "--format", "tflite", "--quantize", "qat", "--output", str(output),
        "--calibration", "synthetic", "--num-calibration", "32", "--num-heldout", "32", "--qat-steps", "10",
        "--peak", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("QAT: rebuilt in tf-keras") for line in lines)
    assert any(line.startswith("QAT: fine-tuned 10 steps") for line in lines)
    assert any(line.startswith("parity tflite/qat") and line.endswith("OK") for line in lines)
    assert any(line.startswith("PCKh@0.5 on 32 held-out people") and line.endswith("OK") for line in lines)
    content = output.read_bytes()
    assert "CONV_2D" in tflite.check_builtin_ops(content)
    interpreter = Interpreter(model_content=content)
    (image_input,) = interpreter.get_input_details()
    (heatmaps,) = interpreter.get_output_details()
    assert image_input["dtype"] == np.uint8 and heatmaps["dtype"] == np.uint8
    assert image_input["quantization"][1] == 0 and image_input["quantization"][0] == pytest.approx(1 / 255)
