"""Associative Embedding losses: equal to the official C tag loss and to a loop reference, under fit, XLA and
tf.distribute."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.data.multi_person_targets import keypoint_refs, multi_person_heatmaps
from tf_hourglass.model.associative_embedding import split_outputs
from tf_hourglass.model.pose_model import as_stack_list
from tf_hourglass.training.ae_losses import (
    AssociativeEmbeddingLoss,
    detection_loss,
    tag_loss,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "data"
OFFICIAL_CASES = ["small_d1", "small_d2", "thirty_people_d1", "thirty_people_d3"]


def reference_tag_loss(tags, refs):
    """Loop reference from the paper and the official C code (my_lib.c), per image: (push, pull)."""
    batch, _, _, num_keypoints, tag_dim = tags.shape
    flat = tags.reshape(batch, -1, tag_dim)
    pushes, pulls = [], []
    for b in range(batch):
        means, pull = [], 0.0
        for person in refs[b]:
            joint_tags = [flat[b, index] for index, visible in person if visible]
            if not joint_tags:
                continue
            joint_tags = np.array(joint_tags)
            mean = joint_tags.mean(axis=0)
            means.append(mean)
            pull += np.mean([np.sum((t - mean) ** 2) / tag_dim for t in joint_tags])
        people = len(means)
        push = 0.0
        for i in range(people):
            for j in range(i + 1, people):
                push += math.exp(-np.sum((means[i] - means[j]) ** 2))
        if people > 1:
            push /= people * (people - 1) / 2
        pushes.append(0.5 * push)
        pulls.append(pull / people if people else 0.0)
    return np.array(pushes), np.array(pulls)


def reference_detection_loss(pred, heatmaps, mask):
    return np.array(
        [np.mean((p - h) ** 2 * m[..., None]) for p, h, m in zip(pred, heatmaps, mask, strict=True)]
    )


def random_refs(rng, batch, max_people, num_keypoints, height, width, people_per_image):
    """References of random people: person p of image b has people_per_image[b][p] referenced joints."""
    refs = np.zeros((batch, max_people, num_keypoints, 2), np.int32)
    for b, counts in enumerate(people_per_image):
        for p, count in enumerate(counts):
            joints = np.sort(rng.choice(num_keypoints, count, replace=False))
            pixels = rng.integers(0, height * width, count)
            refs[b, p, :count] = np.stack([pixels * num_keypoints + joints, np.ones(count)], -1)
    return refs


def gradient(loss_fn, tags):
    tags = tf.Variable(tags)
    with tf.GradientTape() as tape:
        loss = loss_fn(tags)
    return loss, tape.gradient(loss, tags)


@pytest.mark.parametrize("case", OFFICIAL_CASES)
def test_tag_loss_and_gradient_equal_the_official_c_extension(case):
    data = np.load(FIXTURES / "official_ae_tag_loss.npz")
    tags, refs, grad_output = data[f"{case}_tags"], data[f"{case}_refs"], data[f"{case}_grad_output"]

    def weighted(t):
        push, pull = tag_loss(t, refs)
        return tf.reduce_sum(grad_output[:, 0] * push + grad_output[:, 1] * pull)

    (push, pull), (_, grad) = tag_loss(tags, refs), gradient(weighted, tags)
    np.testing.assert_allclose(push, data[f"{case}_push"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pull, data[f"{case}_pull"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad, data[f"{case}_grad"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tag_dim", [1, 2, 4])
def test_tag_loss_and_gradient_equal_the_loop_reference(tag_dim):
    rng = np.random.default_rng(tag_dim)
    height, width, num_keypoints, max_people = 6, 5, 4, 30
    # 30 people of 1-4 joints; 1 person; 2 one-joint people; nobody.
    people = [list(rng.integers(1, 5, 30)), [3], [1, 1], []]
    refs = random_refs(rng, 4, max_people, num_keypoints, height, width, people)
    tags = rng.normal(0, 0.6, (4, height, width, num_keypoints, tag_dim))
    push, pull = tag_loss(tags, refs)
    expected_push, expected_pull = reference_tag_loss(tags, refs)
    np.testing.assert_allclose(push, expected_push, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pull, expected_pull, rtol=1e-10, atol=1e-12)

    # Gradients (float64 tape) against central differences of the reference.
    objective_weights = rng.uniform(0.5, 2, (4, 2))

    def objective(t):
        push, pull = tag_loss(t, refs)
        return tf.reduce_sum(objective_weights[:, 0] * push + objective_weights[:, 1] * pull)

    _, grad = gradient(objective, tags)
    grad = grad.numpy()
    referenced = np.zeros((4, height * width * num_keypoints, tag_dim), bool)
    images, people, joints = np.nonzero(refs[..., 1])
    referenced[images, refs[images, people, joints, 0]] = True
    referenced = referenced.reshape(tags.shape)
    assert not grad[~referenced].any()
    step = 1e-6
    for position in zip(*np.nonzero(referenced), strict=True):
        b = position[0]
        values = []
        for sign in (1, -1):
            shifted = tags[b : b + 1].copy()
            shifted[(0, *position[1:])] += sign * step
            values.append(
                np.sum(objective_weights[b] * np.stack(reference_tag_loss(shifted, refs[b : b + 1]), -1))
            )
        np.testing.assert_allclose(grad[position], (values[0] - values[1]) / (2 * step), rtol=1e-5, atol=1e-9)


def test_tags_without_a_tag_axis_are_one_dimensional_tags():
    rng = np.random.default_rng(3)
    refs = random_refs(rng, 2, 5, 3, 4, 4, [[2, 3, 1], [3]])
    tags = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    for value, expected in zip(tag_loss(tags, refs), tag_loss(tags[..., None], refs), strict=True):
        np.testing.assert_array_equal(value, expected)


def test_one_joint_people_pull_nothing_but_push():
    tags = np.zeros((1, 2, 2, 1), np.float32)
    tags[0, 0, 0, 0], tags[0, 1, 1, 0] = 0.3, -0.5
    refs = np.zeros((1, 30, 1, 2), np.int32)
    refs[0, 0, 0], refs[0, 7, 0] = (0, 1), (3, 1)
    push, pull = tag_loss(tags, refs)
    assert float(pull[0]) == 0.0
    assert float(push[0]) == pytest.approx(0.5 * math.exp(-(0.8**2)), rel=1e-6)
    refs[0, 7] = 0  # one person alone: nothing to push
    assert [float(v[0]) for v in tag_loss(tags, refs)] == [0.0, 0.0]


def test_images_without_people_give_zero_loss_and_gradient_without_nan():
    tags = np.random.default_rng(4).normal(size=(3, 8, 8, 17, 2)).astype(np.float32)
    refs = np.zeros((3, 30, 17, 2), np.int32)
    loss = AssociativeEmbeddingLoss(17, tag_dim=2, detection_weight=0.0)
    targets = {"heatmaps": np.zeros((3, 8, 8, 17)), "mask": np.ones((3, 8, 8)), "keypoint_refs": refs}
    outputs = np.concatenate([np.zeros((3, 8, 8, 17), np.float32), tags.reshape(3, 8, 8, 34)], axis=-1)
    value, grad = gradient(lambda t: loss(targets, t), outputs)
    assert float(value) == 0.0
    assert np.all(np.isfinite(grad)) and not np.any(grad)
    for eager_or_xla in (tag_loss, tf.function(tag_loss, jit_compile=True)):
        push, pull = eager_or_xla(tags, refs)
        assert not np.any(push) and not np.any(pull)


def test_detection_loss_is_the_masked_mean_squared_error_of_each_image():
    rng = np.random.default_rng(5)
    pred, heatmaps = rng.random((2, 2, 6, 8, 3)).astype(np.float32)
    mask = (rng.random((2, 6, 8)) > 0.3).astype(np.float32)
    np.testing.assert_allclose(
        detection_loss(pred, heatmaps, mask), reference_detection_loss(pred, heatmaps, mask), rtol=1e-6
    )
    _, grad = gradient(lambda p: tf.reduce_sum(detection_loss(p, heatmaps, mask)), pred)
    np.testing.assert_allclose(
        grad, 2 * (pred - heatmaps) * mask[..., None] / (6 * 8 * 3), rtol=1e-5, atol=1e-8
    )


def test_split_puts_detection_first_then_each_joints_tag_dimensions():
    outputs = tf.reshape(tf.range(2 * 3 * 4 * 12, dtype=tf.float32), (2, 3, 4, 12))
    detection, tags = split_outputs(outputs, num_keypoints=3, tag_dim=2)
    assert detection.shape == (2, 3, 4, 3) and tags.shape == (2, 3, 4, 3, 2)
    np.testing.assert_array_equal(detection, outputs[..., :3])
    for k in range(3):
        for d in range(2):
            np.testing.assert_array_equal(tags[..., k, d], outputs[..., 3 + k * 2 + d])  # channel K + k*D + d
    with pytest.raises(ValueError, match=r"at least 12 channels.*\(2, 3, 4, 11\)"):
        split_outputs(outputs[..., :11], num_keypoints=3, tag_dim=3)


def test_tag_loss_rejects_references_of_another_number_of_keypoints():
    with pytest.raises(ValueError, match=r"same number of keypoints.*\(1, 4, 4, 3, 1\) and \(1, 30, 17, 2\)"):
        tag_loss(np.zeros((1, 4, 4, 3, 1), np.float32), np.zeros((1, 30, 17, 2), np.int32))
    with pytest.raises(ValueError, match=r"\(B, max_people, K, 2\).*\(1, 30, 3\)"):
        tag_loss(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 30, 3), np.int32))


def random_batch(rng, batch, height, width, num_keypoints, tag_dim, extra_channels=1):
    """Outputs and targets of random people, through the real target functions."""
    heatmaps, refs = [], []
    for people in rng.integers(0, 6, batch):
        keypoints = np.zeros((people, num_keypoints, 3), np.float32)
        keypoints[..., 0] = rng.uniform(-2, width + 2, (people, num_keypoints))
        keypoints[..., 1] = rng.uniform(-2, height + 2, (people, num_keypoints))
        keypoints[..., 2] = rng.choice([0, 2], (people, num_keypoints), p=[0.2, 0.8])
        heatmaps.append(multi_person_heatmaps(keypoints, (height, width)))
        refs.append(keypoint_refs(keypoints, (height, width)))
    targets = {
        "heatmaps": np.stack(heatmaps),
        "mask": (rng.random((batch, height, width)) > 0.1).astype(np.float32),
        "keypoint_refs": np.stack(refs),
    }
    channels = num_keypoints * (1 + tag_dim) + extra_channels
    outputs = rng.normal(0, 0.5, (batch, height, width, channels)).astype(np.float32)
    return outputs, targets


def test_combined_loss_weighs_push_pull_and_detection_and_averages_stacks():
    rng = np.random.default_rng(6)
    outputs, targets = random_batch(rng, 4, 16, 16, 5, tag_dim=2)
    tags = outputs[..., 5:15].reshape(4, 16, 16, 5, 2)
    push, pull = reference_tag_loss(tags.astype(np.float64), targets["keypoint_refs"])
    detection = reference_detection_loss(outputs[..., :5], targets["heatmaps"], targets["mask"])
    assert push.min() > 0 and pull.min() >= 0
    loss = AssociativeEmbeddingLoss(5, tag_dim=2, num_stacks=4)
    expected = np.mean(1e-3 * push + 1e-3 * pull + detection) / 4
    assert float(loss(targets, outputs)) == pytest.approx(expected, rel=1e-5)
    custom = AssociativeEmbeddingLoss(5, tag_dim=2, push_weight=2.0, pull_weight=0.5, detection_weight=0.0)
    assert float(custom(targets, outputs)) == pytest.approx(np.mean(2 * push + 0.5 * pull), rel=1e-5)


def test_xla_compiled_loss_and_gradient_equal_eager():
    rng = np.random.default_rng(7)
    outputs, targets = random_batch(rng, 3, 16, 16, 4, tag_dim=3)
    loss = AssociativeEmbeddingLoss(4, tag_dim=3, num_stacks=2)

    def value_and_gradient(outputs):
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            value = loss(targets, outputs)
        return value, tape.gradient(value, outputs)

    outputs = tf.constant(outputs)
    eager = value_and_gradient(outputs)
    compiled = tf.function(value_and_gradient, jit_compile=True)(outputs)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-6)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-5, atol=1e-9)
    assert np.abs(eager[1][..., 4:16]).max() > 0  # the tags do get gradients


def test_replica_shares_add_up_to_the_global_batch_loss():
    rng = np.random.default_rng(8)
    outputs, targets = random_batch(rng, 4, 8, 8, 3, tag_dim=1)
    per_example = AssociativeEmbeddingLoss(3, reduction="none")
    shares = [
        tf.nn.compute_average_loss(
            per_example({k: v[half] for k, v in targets.items()}, outputs[half]), global_batch_size=4
        )
        for half in (slice(0, 2), slice(2, 4))
    ]
    expected = AssociativeEmbeddingLoss(3)(targets, outputs)
    np.testing.assert_allclose(float(sum(shares)), float(expected), rtol=1e-6)


def tiny_ae_model(num_stacks, num_keypoints, tag_dim, size=16):
    """A couple of convolutions per stack producing [K detection | K*D tags | 1 unused] channels."""
    images = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(images)
    outputs = []
    for stack in range(1, num_stacks + 1):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"features_{stack}")(x)
        channels = num_keypoints * (1 + tag_dim) + 1
        outputs.append(keras.layers.Conv2D(channels, 1, name=f"outputs_{stack}")(x))
    return keras.Model(images, outputs)


@pytest.mark.e2e
@pytest.mark.parametrize(("num_stacks", "jit_compile"), [(1, False), (2, True)])
def test_a_tiny_model_fits_on_the_loss(num_stacks, jit_compile):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(9)
    outputs, targets = random_batch(rng, 8, 16, 16, 3, tag_dim=2)
    images = rng.random((8, 16, 16, 3)).astype(np.float32)
    model = tiny_ae_model(num_stacks, 3, 2)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=AssociativeEmbeddingLoss(3, tag_dim=2, num_stacks=num_stacks, push_weight=1.0, pull_weight=1.0),
        jit_compile=jit_compile,
    )
    dataset = tf.data.Dataset.from_tensor_slices((images, (targets,) * num_stacks)).batch(4).repeat()
    history = model.fit(dataset, steps_per_epoch=2, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < 0.7 * history[0]

    # Keras' total is the official average over stacks and images of each stack's weighted loss.
    predictions = [np.asarray(p) for p in as_stack_list(model(images))]
    per_stack = []
    for prediction in predictions:
        push, pull = reference_tag_loss(
            prediction[..., 3:9].reshape(8, 16, 16, 3, 2), targets["keypoint_refs"]
        )
        detection = reference_detection_loss(prediction[..., :3], targets["heatmaps"], targets["mask"])
        per_stack.append(np.mean(push + pull + detection))
    evaluated = model.evaluate(images, (targets,) * num_stacks, batch_size=8, verbose=0)
    total = evaluated[0] if isinstance(evaluated, list) else evaluated
    assert total == pytest.approx(np.mean(per_stack), rel=1e-4)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    sys.path.insert(0, sys.argv[1])
    from test_ae_losses import random_batch, tiny_ae_model
    from tf_hourglass.training.ae_losses import AssociativeEmbeddingLoss

    rng = np.random.default_rng(10)
    _, targets = random_batch(rng, 8, 16, 16, 3, tag_dim=1)
    images = rng.random((8, 16, 16, 3)).astype(np.float32)

    def one_step(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            model = tiny_ae_model(2, 3, 1)
            model.compile(
                optimizer=keras.optimizers.SGD(0.5),
                loss=AssociativeEmbeddingLoss(3, num_stacks=2, push_weight=1.0, pull_weight=1.0),
            )
        initial = model.get_weights()
        # One step on the global batch of 8: 4 examples per replica under the mirrored strategy.
        dataset = tf.data.Dataset.from_tensor_slices((images, (targets, targets))).batch(8)
        loss = model.fit(dataset, epochs=1, verbose=0).history["loss"][0]
        return loss, initial, model.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    loss_mirrored, initial_mirrored, weights_mirrored = one_step(mirrored)
    loss_single, initial_single, weights_single = one_step(tf.distribute.get_strategy())
    assert all(np.array_equal(a, b) for a, b in zip(initial_mirrored, initial_single))
    change = max(np.abs(a - b).max() for a, b in zip(weights_single, initial_single))
    difference = max(np.abs(a - b).max() for a, b in zip(weights_mirrored, weights_single))
    print("RESULT", loss_mirrored, loss_single, change, difference)
    """
)


@pytest.mark.e2e
def test_mirrored_fit_over_two_replicas_takes_the_global_batch_step():
    # Two logical CPUs must be configured before TensorFlow initialises: a subprocess.
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(ROOT / "tests")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loss_mirrored, loss_single, change, difference = (
        float(v) for v in result.stdout.split("RESULT")[-1].split()
    )
    assert loss_mirrored == pytest.approx(loss_single, rel=1e-5)
    assert change > 1e-3 and difference < 1e-3 * change


def test_loss_config_round_trips_and_bad_arguments_are_rejected():
    loss = AssociativeEmbeddingLoss(17, tag_dim=2, num_stacks=4, push_weight=1e-2)
    again = AssociativeEmbeddingLoss.from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, AssociativeEmbeddingLoss) and restored.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="num_stacks must be a positive integer. Received num_stacks=0"):
        AssociativeEmbeddingLoss(17, num_stacks=0)
    with pytest.raises(ValueError, match="tag_dim must be a positive integer. Received tag_dim=1.5"):
        AssociativeEmbeddingLoss(17, tag_dim=1.5)
    with pytest.raises(ValueError, match="pull_weight must be non-negative. Received pull_weight=-1"):
        AssociativeEmbeddingLoss(17, pull_weight=-1)
