"""Associative Embedding losses (Newell, Huang, Deng, NeurIPS 2017), vectorised, as the official training.

The official code (princeton-vl/pose-ae-train) trains with the tag loss of its
C extension (``extensions/AE/src/my_lib.c``) and ``HeatmapLoss`` of
``task/loss.py``, per image and per stack:

* people: the rows of the keypoint references (``multi_person_targets``) with
  at least one visible reference; a person with one joint counts (its pull is
  0, its mean tag enters the push);
* reference tag of a person: the mean of its joints' tags (D values each);
* pull: per person the mean over its joints of the mean over the D dimensions
  of ``(tag - reference) ** 2``; averaged over people (0 without people);
* push: ``exp(-||reference_i - reference_j|| ** 2)`` (squared distance summed
  over D) averaged over the ``n (n - 1) / 2`` pairs of people, times 0.5 (0 with
  fewer than two people). The C code has no epsilon (the Python
  ``singleTagLoss`` adds 1e-6 to the denominators); neither does this;
* detection: the mean over H x W x K of ``mask * (prediction - target) ** 2``.

The loss of a batch is ``push_weight * push + pull_weight * pull +
detection_weight * detection`` averaged over images and over stacks: the
official ``torch.mean`` over its (batch, stacks) loss arrays, with weights
1e-3, 1e-3 and 1. Keras sums the losses of a model's outputs, so
``AssociativeEmbeddingLoss`` divides each stack's loss by ``num_stacks``.

Layouts are NHWC. A network output has channels ``[K detection | K * D tags |
anything else]``; the tag of joint k, dimension d is channel ``K + k * D + d``,
so the tags reshape to ``(B, H, W, K, D)`` and the keypoint reference
``index = (y * W + x) * K + k`` selects joint k's D tags at (x, y).
Everything is TensorFlow ops without Python loops over images or people, so
it runs under ``model.fit``, XLA and ``tf.distribute`` alike.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_hourglass.model.associative_embedding import split_outputs

PUSH_WEIGHT = 1e-3
PULL_WEIGHT = 1e-3
DETECTION_WEIGHT = 1.0


def _to_loss_dtype(values):
    """float64 stays float64 (exact reference checks); everything else is computed in float32."""
    values = tf.convert_to_tensor(values)
    return values if values.dtype == tf.float64 else tf.cast(values, tf.float32)


def tag_loss(tags, keypoint_refs):
    """Push and pull losses of each image, each of shape (B,) (module docstring).

    Args:
        tags: (B, H, W, K) or (B, H, W, K, D) tag maps.
        keypoint_refs: (B, max_people, K, 2) ``(index, visible)``, index into the
            flattened (H, W, K) map (``multi_person_targets.keypoint_refs``).
    """
    tags = _to_loss_dtype(tags)
    dtype = tags.dtype
    if tags.shape.rank == 4:
        tags = tags[..., None]
    keypoint_refs = tf.convert_to_tensor(keypoint_refs)
    if tags.shape.rank != 5 or keypoint_refs.shape.rank != 4 or keypoint_refs.shape[-1] != 2:
        raise ValueError(
            "tags must have shape (B, H, W, K) or (B, H, W, K, D) and keypoint_refs (B, max_people, K, 2). "
            f"Received shapes {tuple(tags.shape)} and {tuple(keypoint_refs.shape)}"
        )
    if None not in (tags.shape[3], keypoint_refs.shape[2]) and tags.shape[3] != keypoint_refs.shape[2]:
        # The reference index (y * W + x) * K + k depends on K: a mismatch would gather wrong tags.
        raise ValueError(
            f"tags and keypoint_refs must have the same number of keypoints. Received shapes "
            f"{tuple(tags.shape)} and {tuple(keypoint_refs.shape)}"
        )
    flat_tags = tf.reshape(tags, [tf.shape(tags)[0], -1, tf.shape(tags)[-1]])  # (B, H*W*K, D)
    keypoint_refs = tf.cast(keypoint_refs, tf.int32)
    visible = keypoint_refs[..., 1] > 0  # (B, P, K)
    # Unreferenced entries gather index 0 and are then weighted 0.
    joint_tags = tf.gather(flat_tags, tf.where(visible, keypoint_refs[..., 0], 0), batch_dims=1)  # (B,P,K,D)
    weights = tf.cast(visible, dtype)[..., None]  # (B, P, K, 1)

    joints = tf.reduce_sum(weights, axis=2)  # (B, P, 1)
    is_person = joints[..., 0] > 0  # (B, P)
    # max(., 1) keeps empty rows (and their gradients) finite; they are weighted 0 below.
    reference = tf.reduce_sum(weights * joint_tags, axis=2) / tf.maximum(joints, 1.0)  # (B, P, D)
    squared = tf.reduce_mean(tf.square(joint_tags - reference[:, :, None]), axis=-1, keepdims=True)
    person_pull = tf.reduce_sum(weights * squared, axis=2)[..., 0] / tf.maximum(joints[..., 0], 1.0)
    people = tf.reduce_sum(tf.cast(is_person, dtype), axis=1)  # (B,)
    pull = tf.reduce_sum(person_pull, axis=1) / tf.maximum(people, 1.0)

    difference = reference[:, :, None] - reference[:, None]  # (B, P, P, D)
    similarity = tf.exp(-tf.reduce_sum(tf.square(difference), axis=-1))  # (B, P, P)
    num_rows = tf.shape(is_person)[1]
    upper = tf.range(num_rows)[:, None] < tf.range(num_rows)[None]  # each pair once
    pairs_mask = is_person[:, :, None] & is_person[:, None] & upper
    pairs = people * (people - 1) / 2
    push = 0.5 * tf.reduce_sum(tf.where(pairs_mask, similarity, 0.0), axis=(1, 2)) / tf.maximum(pairs, 1.0)
    return push, pull


def detection_loss(pred, heatmaps, mask):
    """(B,) masked mean squared error of each image (official HeatmapLoss).

    Args:
        pred, heatmaps: (B, H, W, K).
        mask: (B, H, W), 0 where the loss ignores every joint.
    """
    pred = _to_loss_dtype(pred)
    squared = tf.square(pred - tf.cast(heatmaps, pred.dtype)) * tf.cast(mask, pred.dtype)[..., None]
    return tf.reduce_mean(squared, axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="tf_hourglass")
class AssociativeEmbeddingLoss(keras.losses.Loss):
    """Weighted push, pull and detection loss of one stack's output, divided by ``num_stacks``.

    ``y_true`` is a dict ``{"heatmaps": (B, H, W, K), "mask": (B, H, W),
    "keypoint_refs": (B, max_people, K, 2)}`` and ``y_pred`` an output with
    channels ``[K detection | K * D tags | unused]``. Compile a model with one
    output per stack once with this loss and pass the same targets for every
    stack, ``y = (targets,) * num_stacks``: Keras sums the stacks' losses, which
    with the division is the official average over stacks. Keras pairs a dict
    target only with an output inside a list, so a one-stack model must return
    ``[output]`` (``keras.Model(inputs, [output])``) and take ``y=(targets,)``. The default
    reduction averages over the batch, as the official code; under
    ``tf.distribute`` Keras divides each replica's mean by the number of
    replicas, so the summed gradients are those of the global batch.
    (Keras casts ``keypoint_refs`` to float32 on the way in, exact for indices
    below 2**24, i.e. H * W * K below 16.7 million.)
    """

    def __init__(
        self,
        num_keypoints: int,
        tag_dim: int = 1,
        num_stacks: int = 1,
        push_weight: float = PUSH_WEIGHT,
        pull_weight: float = PULL_WEIGHT,
        detection_weight: float = DETECTION_WEIGHT,
        name: str = "associative_embedding_loss",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        for argument, value in (
            ("num_keypoints", num_keypoints),
            ("tag_dim", tag_dim),
            ("num_stacks", num_stacks),
        ):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{argument} must be a positive integer. Received {argument}={value!r}")
        for argument, value in (
            ("push_weight", push_weight),
            ("pull_weight", pull_weight),
            ("detection_weight", detection_weight),
        ):
            if not value >= 0:
                raise ValueError(f"{argument} must be non-negative. Received {argument}={value!r}")
        self.num_keypoints = num_keypoints
        self.tag_dim = tag_dim
        self.num_stacks = num_stacks
        self.push_weight = float(push_weight)
        self.pull_weight = float(pull_weight)
        self.detection_weight = float(detection_weight)

    def call(self, y_true, y_pred):
        detection, tags = split_outputs(y_pred, self.num_keypoints, self.tag_dim)
        push, pull = tag_loss(tags, y_true["keypoint_refs"])
        detection = detection_loss(detection, y_true["heatmaps"], y_true["mask"])
        total = self.push_weight * push + self.pull_weight * pull + self.detection_weight * detection
        return total / self.num_stacks

    def get_config(self):
        return {
            "num_keypoints": self.num_keypoints,
            "tag_dim": self.tag_dim,
            "num_stacks": self.num_stacks,
            "push_weight": self.push_weight,
            "pull_weight": self.pull_weight,
            "detection_weight": self.detection_weight,
            "name": self.name,
            "reduction": self.reduction,
            "dtype": self.dtype,
        }
