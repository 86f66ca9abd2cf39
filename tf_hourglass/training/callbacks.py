"""The Keras callbacks of a training run, driven by model.fit or by the custom loop alike.

Validation PCKh/PCK, CSV, TensorBoard, checkpoints and best weights, NaN
stop, time budget and the plateau schedule (``make_callbacks``), and the
scratch-directory cleanup of a non-chief multi-worker worker.
"""

from __future__ import annotations

import math
import os
import time

import keras
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.evaluation import evaluator
from tf_hourglass.training.workdir import read_json, write_json
from tf_hourglass.visualization import draw_skeleton, image_grid

VAL_METRIC = "val_pck"


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


class RunState:
    """What the callbacks share: whether the run has failed."""

    def __init__(self):
        self.failed_reason = None

    def raise_if_failed(self):
        if self.failed_reason:
            raise FloatingPointError(f"Training failed: {self.failed_reason}")


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite loss, so no checkpoint is written from it."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.state.failed_reason = (
                f"the training loss became {float(loss)} at batch {batch}; training stopped, and the "
                "latest and best checkpoints were kept as they were. Lower train.learning_rate, or use "
                "runtime.precision=float32."
            )
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Ends training after ``max_seconds`` of fitting (checked after every batch)."""

    def __init__(self, max_seconds):
        super().__init__()
        self.max_seconds = max_seconds
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if self.max_seconds and time.monotonic() - self.start > self.max_seconds:
            self.model.stop_training = True


class Validation(keras.callbacks.Callback):
    """Validation PCKh/PCK from decoded keypoints in original pixels, by the evaluator's code.

    Adds ``val_pck`` and ``learning_rate`` to the epoch logs (so later
    callbacks, TensorBoard and the CSV see them) and draws predicted skeletons
    on validation crops into TensorBoard.
    """

    def __init__(self, predictor, dataset, spec, max_batches, log_dir, num_images, state):
        super().__init__()
        self.predictor = predictor
        self.dataset = dataset
        self.spec = spec
        self.max_batches = max_batches or None
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation_images"))
        self.num_images = num_images
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.failed_reason:
            return
        predictions = self.predictor(self.dataset, max_batches=self.max_batches, keep_images=self.num_images)
        result = evaluator.score(self.spec, predictions)
        logs[VAL_METRIC] = result["total"]
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        if self.num_images:
            drawn = [
                draw_skeleton(image, keypoints, self.spec)
                for image, keypoints in zip(predictions.images, predictions.input_keypoints, strict=True)
            ]
            with self.writer.as_default():
                tf.summary.image("predicted_skeletons", image_grid(drawn)[None], step=epoch + 1)
        print(f"\nepoch {epoch + 1}: validation {evaluator.metric_name(self.spec)} = {result['total']:.1f}%")


class Checkpointing(keras.callbacks.Callback):
    """Latest state every epoch (tf.train.CheckpointManager) and best weights by ``metric`` (``val_pck``)."""

    def __init__(self, manager, epoch_variable, workdir, state, metric=VAL_METRIC):
        super().__init__()
        self.manager = manager
        self.epoch_variable = epoch_variable
        self.best_path = os.path.join(workdir, "best.weights.h5")
        self.best_info_path = os.path.join(workdir, "best.json")
        self.state = state
        self.metric = metric  # the higher the better
        self.best = read_json(self.best_info_path).get(metric, -math.inf)

    def on_epoch_end(self, epoch, logs=None):
        if self.state.failed_reason:
            return
        self.epoch_variable.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        value = (logs or {}).get(self.metric)
        if value is not None and value > self.best:
            self.best = value
            atomic_files.save(self.model.save_weights, self.best_path, suffix=".weights.h5")
            write_json(self.best_info_path, {self.metric: value, "epoch": epoch + 1})


class RemoveDirectory(keras.callbacks.Callback):
    """Removes a non-chief worker's scratch checkpoint directory after each epoch's save."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        if tf.io.gfile.exists(self.path):
            tf.io.gfile.rmtree(self.path)


class SkippedImages(keras.callbacks.Callback):
    """Prints, after each epoch, what training data the run skips.

    ``skipped_files``: (image files dropped when the data was opened, of how
    many), printed after every epoch when any were. ``skipped_examples``: the
    input pipeline's counts (``pipeline.SkippedExamples``: undecodable, over
    the image budget), printed with the epoch's share once any example was
    skipped. The pipeline counts as it reads, a few batches ahead of training.
    """

    def __init__(self, skipped_files=(0, 0), skipped_examples=None):
        super().__init__()
        self.num_skipped, self.num_files = skipped_files
        self.skipped_examples = skipped_examples
        self.counted = (0, 0)  # (undecodable, over the budget) printed so far

    def on_epoch_end(self, epoch, logs=None):
        if self.num_skipped:
            print(
                f"\nepoch {epoch + 1}: {self.num_skipped} of {self.num_files} training image file(s) skipped "
                "(missing, unreadable or over the image size limit)"
            )
        if self.skipped_examples is None:
            return
        counts = self.skipped_examples.counts()
        if sum(counts):
            undecodable, over_budget = (
                now - before for now, before in zip(counts, self.counted, strict=True)
            )
            print(
                f"\nepoch {epoch + 1}: {undecodable + over_budget} training example(s) skipped by the input "
                f"pipeline ({undecodable} undecodable, {over_budget} over the image size limit); "
                f"{sum(counts)} in this run so far"
            )
        self.counted = counts


def make_callbacks(
    config,
    workdir,
    predictor,
    val_ds,
    spec,
    manager,
    epoch_variable,
    state,
    skipped_images=(0, 0),
    skipped_examples=None,
):
    """Validation PCKh/PCK, CSV, TensorBoard, checkpoints, NaN stop, time budget and the plateau schedule."""
    log_dir = os.path.join(workdir, "tensorboard")
    validation = Validation(
        predictor, val_ds, spec, config.eval.val_batches, log_dir, config.eval.num_images, state
    )
    return run_callbacks(
        config,
        workdir,
        validation,
        manager,
        epoch_variable,
        state,
        VAL_METRIC,
        skipped_images,
        skipped_examples,
    )


def run_callbacks(
    config,
    workdir,
    validation,
    manager,
    epoch_variable,
    state,
    metric,
    skipped_images=(0, 0),
    skipped_examples=None,
):
    """The callbacks of every run around its ``validation`` callback, which logs ``metric`` (higher is better).

    ``skipped_images``: (training image files skipped, of how many);
    ``skipped_examples``: the training pipeline's ``SkippedExamples``. What
    was skipped is printed after every epoch (``SkippedImages``).
    """
    report_skipped = skipped_images[0] or skipped_examples is not None
    callbacks = [
        *([SkippedImages(skipped_images, skipped_examples)] if report_skipped else []),
        StopOnNaN(state),
        TimeBudget(config.train.max_train_minutes * 60),
        validation,
        keras.callbacks.CSVLogger(os.path.join(workdir, "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=os.path.join(workdir, "tensorboard")),
        Checkpointing(manager, epoch_variable, workdir, state, metric=metric),
    ]
    if config.train.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=metric,
                mode="max",
                factor=config.train.plateau_factor,
                patience=config.train.plateau_patience,
                verbose=1,
            )
        )
    return callbacks
