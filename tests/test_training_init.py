"""Training that starts from a model's weights (``model.init_from``) instead of random ones."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import load_config, write_tiny_config

from tf_hourglass.data import keypoint_specs
from tf_hourglass.training import run_setup, trainer

TRAINED_MODEL = Path(__file__).parent / "data" / "hg_tiny_synthetic.keras"  # hg_tiny, 128x128, MPII joints


def init_config(tmp_path, epochs=1):
    config = load_config(write_tiny_config(tmp_path, epochs))
    config.model.depth = 0  # the architecture comes from the file
    config.model.init_from = str(TRAINED_MODEL)
    return config


def test_the_model_starts_with_the_architecture_and_weights_of_init_from(tmp_path, capsys):
    config = init_config(tmp_path)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, epoch, _ = run_setup.build_model(
            config, tf.distribute.get_strategy(), keypoint_specs.MPII, str(tmp_path / "checkpoints")
        )
    finally:
        keras.config.set_dtype_policy(previous)
    source = keras.saving.load_model(TRAINED_MODEL, compile=False)
    assert int(epoch.numpy()) == 0
    assert (model.filters, model.depth, model.image_shape) == (16, 2, (128, 128, 3))
    assert len(model.weights) == len(source.weights)
    for ours, theirs in zip(model.weights, source.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    # Rebuilt, not loaded: its layers compute in this run's precision.
    assert model.get_layer("stack1_heatmap_conv").compute_dtype == "bfloat16"
    assert f"Starting from Keras model file {TRAINED_MODEL}" in capsys.readouterr().out


def test_a_checkpoint_in_the_workdir_wins_over_init_from_which_it_no_longer_needs(tmp_path, capsys):
    start = tmp_path / "start.keras"
    start.write_bytes(TRAINED_MODEL.read_bytes())
    config = init_config(tmp_path)
    config.model.init_from = str(start)
    checkpoints = str(tmp_path / "checkpoints")
    strategy = tf.distribute.get_strategy()
    model, epoch, manager = run_setup.build_model(config, strategy, keypoint_specs.MPII, checkpoints)
    kernel = model.get_layer("stack1_heatmap_conv").kernel
    kernel.assign(kernel + 1.0)
    epoch.assign(3)
    manager.save()
    start.unlink()  # moved away after the run started: resuming needs only the workdir
    capsys.readouterr()
    resumed, resumed_epoch, _ = run_setup.build_model(config, strategy, keypoint_specs.MPII, checkpoints)
    assert int(resumed_epoch.numpy()) == 3 and resumed.image_shape == (128, 128, 3)
    np.testing.assert_array_equal(resumed.get_layer("stack1_heatmap_conv").kernel.numpy(), kernel.numpy())
    output = capsys.readouterr().out
    assert "Resuming from" in output and "Starting from" not in output


@pytest.mark.e2e
def test_a_run_from_a_trained_model_scores_like_it(tmp_path):
    config = init_config(tmp_path)
    config.train.learning_rate = 1e-9  # three steps that change nothing: the score is the start's
    results = trainer.train_and_evaluate(config, str(tmp_path / "run"))
    fresh = load_config(write_tiny_config(tmp_path, 1))
    fresh.train.learning_rate = 1e-9
    fresh_results = trainer.train_and_evaluate(fresh, str(tmp_path / "fresh"))
    # hg_tiny_synthetic finds about half the joints of these figures; random weights next to none.
    assert results["score"] > 30.0 and fresh_results["score"] < 15.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model.depth", 1, "config.model.depth must be 0 with model.init_from (its architecture is used)"),
        ("model.input_size", 256, "config.model.input_size must be 0 with model.init_from"),
    ],
)
def test_init_from_refuses_architecture_overrides(tmp_path, field, value, message):
    config = init_config(tmp_path)
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        trainer.validate_config(config)


def test_init_from_that_cannot_be_used_names_the_field_and_the_reason(tmp_path):
    model_config = init_config(tmp_path).model
    mpii = keypoint_specs.MPII
    with pytest.raises(
        ValueError, match="predicts 16 keypoints of 'mpii' .*; the training data has 14 of 'lsp'"
    ):
        run_setup.starting_model(model_config, keypoint_specs.LSP)
    same_count = keypoint_specs.spec_from_dict(
        {"name": "mine", "keypoint_names": [f"joint_{k}" for k in range(16)]}
    )
    with pytest.raises(ValueError, match="16 keypoints of 'mpii' .* the training data has 16 of 'mine'"):
        run_setup.starting_model(model_config, same_count)
    model_config.preset = "cpm_tiny"
    with pytest.raises(
        ValueError, match=r"is a StackedHourglass; model.preset='cpm_tiny' is a ConvolutionalPose"
    ):
        run_setup.starting_model(model_config, mpii)
    model_config.preset = "hg_tiny"
    model_config.init_from = str(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"model.init_from='.*missing.keras': Model not found"):
        run_setup.starting_model(model_config, mpii)
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a zip")
    model_config.init_from = str(not_a_model)
    with pytest.raises(ValueError, match="exists but is not a .keras model"):
        run_setup.starting_model(model_config, mpii)
    model_config.init_from = str(tmp_path)  # a folder without final.keras
    with pytest.raises(ValueError, match=r"model.init_from='.*': .* is a directory without final.keras"):
        run_setup.starting_model(model_config, mpii)


def test_a_multi_person_model_starts_from_init_from_too(tmp_path):
    import tf_hourglass

    source = tf_hourglass.from_preset("ae_tiny")
    for variable in source.weights:  # weights no fresh model has
        variable.assign(np.full(variable.shape, 0.01 * len(variable.path), variable.dtype))
    path = str(tmp_path / "people.keras")
    source.save(path)
    config = init_config(tmp_path)
    config.model.preset = "ae_small"  # the same family: the architecture is the file's
    config.model.init_from = path
    model, _, _ = run_setup.build_model(
        config, tf.distribute.get_strategy(), keypoint_specs.COCO, str(tmp_path / "checkpoints")
    )
    assert type(model).__name__ == "AssociativeEmbedding" and model.image_shape == source.image_shape
    for ours, theirs in zip(model.weights, source.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def test_a_one_stack_multi_person_init_from_is_refused_naming_it(tmp_path):
    import tf_hourglass
    from tf_hourglass.training.base_config import get_base_config

    path = str(tmp_path / "one_stack.keras")
    tf_hourglass.from_preset("ae_tiny", num_stacks=1).save(path)
    config = get_base_config()
    config.data.num_train, config.data.num_val, config.data.num_test = 2, 2, 0
    config.data.synthetic_image_size = 64
    config.model.preset = "ae_tiny"
    config.model.init_from = path
    with pytest.raises(ValueError, match=r"model.init_from='.*one_stack.keras' has num_stacks=1"):
        trainer.train_and_evaluate(config, str(tmp_path / "run"))
