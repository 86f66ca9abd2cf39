"""Heatmap loss: mean squared error weighted per joint.

The original code trains every stack's output with MSE against the same target
heatmaps (intermediate supervision) and sums the stack losses. Joints without
ground truth must add nothing, so each joint carries a weight (0 or 1, or any
non-negative value) that multiplies its squared errors.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_hourglass")
class HeatmapLoss(keras.losses.Loss):
    """Per-joint weighted MSE between heatmaps of shape (batch, H, W, K).

    ``sample_weight`` may be per joint, shape (batch, K): the weight of joint k
    multiplies all its H x W squared errors. The reduction averages over every
    heatmap element (batch x H x W x K), so with all weights 1 the loss equals
    ``mean((y_true - y_pred) ** 2)``, the original criterion.

    With ``StackedHourglass`` compile once with this loss: the model applies it
    to every stack's output and Keras sums the results.
    """

    def __init__(self, name="heatmap_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        return ops.square(y_pred - y_true)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = joint_weights_to_heatmap_shape(sample_weight)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}


def joint_weights_to_heatmap_shape(joint_weights):
    """(batch, K) joint weights -> (batch, 1, 1, K), broadcastable over heatmaps."""
    joint_weights = ops.convert_to_tensor(joint_weights)
    if len(joint_weights.shape) == 2:
        return ops.expand_dims(ops.expand_dims(joint_weights, 1), 1)
    if len(joint_weights.shape) != 4:
        raise ValueError(
            "Joint weights must have shape (batch, num_keypoints) or (batch, 1, 1, num_keypoints). "
            f"Received shape: {tuple(joint_weights.shape)}"
        )
    return joint_weights


def stacked_heatmap_loss(target_heatmaps, stack_outputs, joint_weights=None):
    """Sum over stacks of ``HeatmapLoss`` (for custom training loops)."""
    loss_fn = HeatmapLoss()
    return sum(loss_fn(target_heatmaps, output, sample_weight=joint_weights) for output in stack_outputs)


def per_example_heatmap_loss(target_heatmaps, predicted_heatmaps, joint_weights=None):
    """``HeatmapLoss`` of each example, shape (batch,): the mean of its weighted squared errors.

    Their mean over the batch is ``HeatmapLoss()`` of the batch. Distributed
    loops divide their sum by the global batch size instead
    (``tf.nn.compute_average_loss``), so the replicas' shares add up to the
    loss of the whole global batch.
    """
    squared_errors = HeatmapLoss(reduction="none")(target_heatmaps, predicted_heatmaps, joint_weights)
    return ops.mean(squared_errors, axis=(1, 2, 3))
