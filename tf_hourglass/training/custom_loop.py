"""Multi-worker training: a custom loop over ``strategy.run`` under MultiWorkerMirroredStrategy.

Keras 3 ``model.fit`` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so ``trainer.train_and_evaluate`` hands
``runtime.strategy="multi_worker"`` runs to ``train_and_evaluate_multi_worker``.
It keeps the fit path's contract, from the same setup (``run_setup.py``): the
same model, optimizer, datasets and epochs x steps_per_epoch, the same
callbacks (``callbacks.py``: validation PCKh/PCK, CSV, TensorBoard,
checkpoints, best weights, NaN stop, time budget, plateau schedule) and
progress bar, the same final.keras and results.json.

Each step, every replica divides its examples' loss by the global batch size
(``tf.nn.compute_average_loss``), so the replicas' shares add up to the loss of
the global batch; the Keras optimizer sums the gradients over all replicas and
applies the same update on every worker.

Collective operations must be joined by every worker in the same order: the
training steps, the checkpoint saves and a few small all-reduces that give every
worker the chief's decisions. Only the chief (worker 0) validates, logs and
writes the run's files; another worker saves its share of each checkpoint into
a scratch directory and removes it at once, as in TensorFlow's multi-worker
tutorial, and at the end writes its final weights to ``worker_K.weights.h5`` in
the workdir (they equal final.keras's: a check that the workers stayed in step).
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.model import as_stack_list
from tf_hourglass.training import run_setup
from tf_hourglass.training.callbacks import (
    Checkpointing,
    RemoveDirectory,
    RunState,
    StopOnNaN,
    current_learning_rate,
)
from tf_hourglass.training.losses import per_example_heatmap_loss


def train_and_evaluate_multi_worker(config, workdir, strategy) -> dict | None:
    """``trainer.train_and_evaluate`` under ``strategy`` (a MultiWorkerMirroredStrategy), by a custom loop.

    Every worker calls this with the same config and the same workdir on a
    shared file system. Returns the final scores on the chief, None on the
    other workers.
    """
    chief = strategy.extended.should_checkpoint  # True on the chief only
    resolver = strategy.cluster_resolver
    worker_name = f"{resolver.task_type or 'worker'}_{resolver.task_id or 0}"
    # Every worker restores the chief's latest checkpoint, so all start from the same state.
    run = run_setup.start_run(config, workdir, strategy)
    model, epoch_variable, manager = run.model, run.epoch_variable, run.manager
    optimizer = model.optimizer  # a LossScaleOptimizer around make_optimizer's under mixed_float16
    with strategy.scope():
        optimizer.build(model.trainable_variables)  # its own variables too, before the step is traced
    agreement = WorkerAgreement(strategy)
    agreement.check_same_start(run.initial_epoch, manager.directory)

    train_ds = strategy.distribute_datasets_from_function(
        lambda input_context: run_setup.train_dataset(run, input_context)
    )
    state = RunState()
    if chief:
        chief_side = run_setup.start_chief(run, state)
        callbacks = chief_side.callbacks
    else:
        scratch_dir = os.path.join(workdir, f"{worker_name}_scratch")
        scratch_manager = tf.train.CheckpointManager(manager.checkpoint, scratch_dir, max_to_keep=1)
        callbacks = [
            StopOnNaN(state),  # the loss is all-reduced: every worker sees the same value
            Checkpointing(scratch_manager, epoch_variable, scratch_dir, state),
            RemoveDirectory(scratch_dir),
        ]
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_progbar=chief and config.runtime.verbose != 0,
        model=model,
        verbose=config.runtime.verbose,
        epochs=config.train.epochs,
        steps=config.train.steps_per_epoch,
    )

    start = time.monotonic()
    if run.initial_epoch < config.train.epochs:
        train_step = make_train_step(
            strategy,
            model,
            optimizer,
            global_batch_size=config.train.batch_size,
            # As in Keras, "auto" means no XLA under a distribution strategy.
            jit_compile=config.runtime.jit_compile is True,
        )
        run_epochs(
            config,
            model,
            iter(train_ds),
            train_step,
            make_average_moving_statistics(strategy, model),
            agreement,
            callback_list,
            run.initial_epoch,
        )
    train_seconds = time.monotonic() - start
    state.raise_if_failed()
    print(f"{worker_name}: {int(optimizer.iterations.numpy())} training steps done.")
    if not chief:
        weights_path = os.path.join(workdir, f"{worker_name}.weights.h5")
        atomic_files.save(model.save_weights, weights_path, suffix=".weights.h5")
        return None
    return run_setup.save_and_score_final_model(run, chief_side, train_seconds)


def run_epochs(
    config, model, iterator, train_step, average_moving_statistics, agreement, callbacks, initial_epoch
):
    """Epochs ``initial_epoch`` .. ``train.epochs - 1`` of ``steps_per_epoch`` steps, driving the callbacks as fit does.

    Logs hold the epoch's running mean of the loss and of every stack's loss,
    under fit's names (``loss``, ``heatmaps_1_loss``, ...).
    """
    stack_names = [f"{name}_loss" for name in model.output_names]
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, config.train.epochs):
        callbacks.on_epoch_begin(epoch)
        sums = {}
        for step in range(config.train.steps_per_epoch):
            callbacks.on_train_batch_begin(step)
            stack_losses = [float(loss) for loss in train_step(iterator)]
            batch_losses = {"loss": sum(stack_losses)}
            if len(stack_losses) > 1:  # as fit, which names each output's loss only when there are several
                batch_losses.update(zip(stack_names, stack_losses, strict=True))
            for name, value in batch_losses.items():
                sums[name] = sums.get(name, 0.0) + value
            logs = {name: total / (step + 1) for name, total in sums.items()}
            callbacks.on_train_batch_end(step, logs)
            # Only the chief keeps the time budget; every worker stops when it does.
            model.stop_training = bool(agreement.chief_values([float(model.stop_training)])[0])
            if model.stop_training:
                break
        average_moving_statistics()  # before validation and the checkpoint see them
        callbacks.on_epoch_end(epoch, logs)
        if config.train.schedule == "plateau":
            # ReduceLROnPlateau runs on the chief, the only worker that validates.
            model.optimizer.learning_rate = float(
                agreement.chief_values([current_learning_rate(model.optimizer)])[0]
            )
        if model.stop_training:
            break
    callbacks.on_train_end()


def make_train_step(strategy, model, optimizer, global_batch_size, jit_compile):
    """``train_step(iterator)``: one optimizer step on the next global batch; returns every stack's loss.

    Under XLA (``jit_compile``) the forward and backward pass are compiled;
    the optimizer update, with its cross-replica sum of gradients, is not.
    """
    variables = model.trainable_variables
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def losses_and_gradients(inputs, heatmaps, weights):
        """This replica's share of every stack's loss, and the gradients of their (loss-scaled) sum."""
        with tf.GradientTape() as tape:
            stack_losses = [
                tf.nn.compute_average_loss(
                    per_example_heatmap_loss(heatmaps, outputs, weights), global_batch_size=global_batch_size
                )
                for outputs in as_stack_list(model(inputs, training=True))
            ]
            scaled_loss = optimizer.scale_loss(tf.add_n(stack_losses))
        return stack_losses, tape.gradient(scaled_loss, variables)

    if jit_compile:
        losses_and_gradients = tf.function(losses_and_gradients, jit_compile=True)

    def replica_step(images, heatmaps, weights):
        stack_losses, gradients = losses_and_gradients(images, heatmaps, weights)
        if loss_scaled:
            gradients = overflow_everywhere_if_anywhere(gradients)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return stack_losses

    @tf.function
    def train_step(iterator):
        stack_losses = strategy.run(replica_step, args=next(iterator))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None) for loss in stack_losses]

    return train_step


def overflow_everywhere_if_anywhere(gradients):
    """The gradients, or infinities on every replica when any replica's gradients overflowed.

    LossScaleOptimizer skips the update when its own replica's gradients are
    not finite; replicas that skipped while others applied would leave those
    waiting forever in the gradient all-reduce. So all skip together.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(gradient)) for gradient in gradients])
    finite_everywhere = (
        tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)
        )
        == 0
    )
    return [tf.where(finite_everywhere, gradient, np.inf) for gradient in gradients]


def make_average_moving_statistics(strategy, model):
    """A function replacing every replica's BatchNormalization moving statistics by their mean over replicas.

    Keras updates the moving mean and variance on each replica from its own
    examples only. They are running averages, linear in the batch statistics,
    so averaging them over replicas once per epoch gives what averaging every
    step would, and every worker again holds the same weights. All workers must
    call it (a collective).
    """
    variables = [v for v in model.non_trainable_variables if keras.backend.is_float_dtype(v.dtype)]

    def average_on_replica():
        means = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in variables]
        )
        for variable, mean in zip(variables, means, strict=True):
            variable.assign(mean)

    @tf.function
    def average_moving_statistics():
        strategy.run(average_on_replica)

    return average_moving_statistics


class WorkerAgreement:
    """Small all-reduces that keep the workers' decisions on the host the same.

    Every method is a collective operation: all workers must call it, in the same order.
    """

    def __init__(self, strategy):
        def sum_on_replica(values, chief_only):
            context = tf.distribute.get_replica_context()
            contributes = tf.logical_or(
                tf.logical_not(chief_only), tf.equal(context.replica_id_in_sync_group, 0)
            )
            return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.where(contributes, values, 0.0))

        @tf.function
        def sum_over_replicas(values, chief_only):
            per_replica = strategy.run(sum_on_replica, args=(values, chief_only))
            return strategy.experimental_local_results(per_replica)[0]

        self._sum_over_replicas = sum_over_replicas

    def chief_values(self, values) -> np.ndarray:
        """The chief's ``values`` (float32), on every worker."""
        # Replica 0 is on the chief: its values, plus zeros from every other replica.
        return self._sum_over_replicas(tf.constant(values, tf.float32), tf.constant(True)).numpy()

    def check_same_start(self, initial_epoch, checkpoint_dir):
        """Fails on every worker unless all resume from the same epoch (one shared workdir)."""
        chief_epoch = int(self.chief_values([initial_epoch])[0])
        differing = self._sum_over_replicas(
            tf.constant([float(chief_epoch != initial_epoch)]), tf.constant(False)
        )
        if differing[0] > 0:
            raise ValueError(
                f"Not every worker resumes from the chief's epoch {chief_epoch} (this worker: epoch "
                f"{initial_epoch}, from {checkpoint_dir}). Every worker needs the same --workdir, on a file "
                "system they all share."
            )
