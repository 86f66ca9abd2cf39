"""The per-joint weighted heatmap MSE and intermediate supervision through compile/fit."""

import keras
import numpy as np
import pytest

from tf_hourglass import HeatmapLoss, from_preset
from tf_hourglass.training.losses import stacked_heatmap_loss


def _example():
    # One image, 2x2 heatmaps, 2 joints. Joint 0 predicts 1, 2, 3, 4 against a
    # zero target (squared errors sum to 30); joint 1 predicts 0.5 everywhere
    # against a target of 1 (squared errors sum to 4 * 0.25 = 1).
    y_pred = np.zeros((1, 2, 2, 2), "float32")
    y_pred[0, :, :, 0] = [[1, 2], [3, 4]]
    y_pred[0, :, :, 1] = 0.5
    y_true = np.zeros_like(y_pred)
    y_true[0, :, :, 1] = 1.0
    return y_true, y_pred


def test_unweighted_loss_is_the_mean_squared_error_over_all_elements():
    y_true, y_pred = _example()
    assert float(HeatmapLoss()(y_true, y_pred)) == pytest.approx((30 + 1) / 8)


@pytest.mark.parametrize(
    "weights, expected",
    [
        ([[1.0, 1.0]], 31 / 8),
        ([[0.0, 1.0]], 1 / 8),  # joint 0 has no ground truth: it adds nothing
        ([[1.0, 0.0]], 30 / 8),
        ([[2.0, 0.5]], (60 + 0.5) / 8),
    ],
)
def test_per_joint_weights_multiply_that_joints_squared_errors(weights, expected):
    y_true, y_pred = _example()
    loss = HeatmapLoss()(y_true, y_pred, sample_weight=np.array(weights, "float32"))
    assert float(loss) == pytest.approx(expected)


def test_weights_of_heatmap_rank_are_accepted_and_bad_rank_is_rejected():
    y_true, y_pred = _example()
    loss = HeatmapLoss()(y_true, y_pred, sample_weight=np.array([0.0, 1.0], "float32").reshape(1, 1, 1, 2))
    assert float(loss) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match=r"\(2, 1, 2\)"):
        HeatmapLoss()(y_true, y_pred, sample_weight=np.ones((2, 1, 2), "float32"))


def test_stacked_loss_sums_over_stacks():
    y_true, y_pred = _example()
    total = stacked_heatmap_loss(y_true, [y_pred, np.zeros_like(y_pred)], np.array([[1.0, 1.0]], "float32"))
    # Second stack predicts zeros: only joint 1's target (4 ones) is missed.
    assert float(total) == pytest.approx(31 / 8 + 4 / 8)


@pytest.mark.e2e
def test_compile_and_fit_with_one_target_supervises_every_stack():
    model = from_preset("hg_tiny", num_keypoints=3)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 64, 64, 3)).astype("float32")
    targets = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    weights = np.array([[1, 1, 0]] * 4, "float32")
    model.compile(optimizer=keras.optimizers.RMSprop(2.5e-4), loss=HeatmapLoss())

    reported = model.evaluate(
        images, targets, sample_weight=weights, batch_size=4, verbose=0, return_dict=True
    )
    outputs = model.predict(images, verbose=0)
    by_hand = sum(np.mean((o - targets) ** 2 * weights[:, None, None, :]) for o in outputs)
    assert reported["loss"] == pytest.approx(by_hand, rel=1e-4)
    # Keras also reports each stack's loss, which sum to the total.
    stack_losses = [reported[f"heatmaps_{i}_loss"] for i in (1, 2)]
    assert sum(stack_losses) == pytest.approx(reported["loss"], rel=1e-4)

    history = model.fit(images, targets, sample_weight=weights, batch_size=2, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_loss_serializes():
    loss = keras.losses.deserialize(keras.losses.serialize(HeatmapLoss()))
    assert isinstance(loss, HeatmapLoss)
