"""Inference precision: bfloat16 keypoints against float32 on a trained model, and what each command says it ran."""

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import tf_hourglass
from tf_hourglass import evaluate, predict
from tf_hourglass.data import sources
from tf_hourglass.data.pipeline import make_dataset
from tf_hourglass.evaluation import evaluator
from tf_hourglass.model_loader import keras_inference_model, load_keras_model
from tf_hourglass.prediction.estimator import PoseEstimator

# hg_tiny (32 filters, 128x128 input) trained on synthetic figures; see tests/data/README.md.
TRAINED_MODEL = Path(__file__).parent / "data" / "hg_tiny_synthetic.keras"
# Its training run used figures 0..10,099 (train and validation): these were never seen.
HELD_OUT = (10_100, 500)


def predictions(model, spec, source, precision):
    inference_model = keras_inference_model(model, precision=precision)
    codec = inference_model.codec()
    dataset = make_dataset(source, spec, codec, batch_size=50, training=False, with_metadata=True)
    return evaluator.predict_dataset(inference_model, dataset, codec, spec.flip_permutation())


def test_bfloat16_keypoints_match_float32_on_held_out_figures():
    model = load_keras_model(str(TRAINED_MODEL))
    spec, source = sources.synthetic_people([HELD_OUT], (128, 128))
    float32 = predictions(model, spec, source, "float32")
    bfloat16 = predictions(model, spec, source, "bfloat16")
    has_gt = float32.has_gt.astype(bool)
    distances = np.linalg.norm(float32.keypoints - bfloat16.keypoints, axis=-1)[has_gt]
    assert distances.mean() <= 0.5
    score32 = evaluator.score(spec, float32)["total"]
    score16 = evaluator.score(spec, bfloat16)["total"]
    assert score32 > 45.0  # a model that finds the joints (52.7%), so the comparison means something
    assert abs(score16 - score32) <= 0.2


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    keras.utils.set_random_seed(11)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tf_hourglass.from_preset("hg_tiny").save(str(path))
    return str(path)


def test_pose_estimator_says_which_precision_it_chose(tiny_model_path):
    assert PoseEstimator(tiny_model_path, precision="float32").precision == "float32"
    estimator = PoseEstimator(tiny_model_path, precision="bfloat16")
    assert (estimator.precision, estimator.precision_reason) == ("bfloat16", "asked for")
    assert PoseEstimator(tiny_model_path).precision_reason.startswith("auto: ")


@pytest.mark.e2e
def test_predict_prints_the_precision_it_ran(tiny_model_path, shared_data, tmp_path, capsys):
    image = str(shared_data / "mpii" / "images" / "004645041.jpg")
    argv = ["predict", "--model", tiny_model_path, "--input", image, "--output", str(tmp_path)]
    assert predict.main([*argv, "--precision", "bfloat16"]) == 0
    assert "Precision bfloat16 (asked for)." in capsys.readouterr().out
    assert predict.main([*argv, "--precision", "float16"]) != 0  # not a choice


@pytest.mark.e2e
def test_evaluate_reports_the_precision_it_ran(tiny_model_path, shared_data, tmp_path, capsys):
    # valid.h5's first 5 persons: the ones whose photos the sample has.
    annotations = tmp_path / "valid5.h5"
    with h5py.File(shared_data / "mpii" / "annot" / "valid.h5") as full, h5py.File(annotations, "w") as five:
        for key in full:
            five[key] = full[key][:5]
    data = f"mpii_h5:{annotations}:{shared_data / 'mpii' / 'images'}"
    status = evaluate.main(["evaluate", "--model", tiny_model_path, "--data", data, "--precision", "float32"])
    assert status == 0
    assert "Precision float32 (asked for)." in capsys.readouterr().out
