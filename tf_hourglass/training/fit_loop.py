"""Training through ``model.fit``: every strategy but multi_worker (one device, mirrored GPUs, TPU)."""

from __future__ import annotations

import time

from tf_hourglass.training import run_setup
from tf_hourglass.training.callbacks import RunState


def train_and_evaluate_with_fit(config, workdir, strategy) -> dict:
    """``trainer.train_and_evaluate`` under ``strategy`` by model.fit; returns the final scores."""
    run = run_setup.start_run(config, workdir, strategy)
    train_ds = run_setup.train_dataset(run)
    state = RunState()
    chief_side = run_setup.start_chief(run, state)

    start = time.monotonic()
    if run.initial_epoch < config.train.epochs:
        run.model.fit(
            train_ds,
            epochs=config.train.epochs,
            initial_epoch=run.initial_epoch,
            steps_per_epoch=config.train.steps_per_epoch,
            callbacks=chief_side.callbacks,
            verbose=config.runtime.verbose,
            shuffle=False,  # the dataset shuffles itself
        )
    train_seconds = time.monotonic() - start
    state.raise_if_failed()
    return run_setup.save_and_score_final_model(run, chief_side, train_seconds)
