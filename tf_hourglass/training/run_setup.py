"""What both training loops share: the data, the model restored from the workdir, the codec, and the final score.

``trainer.train_and_evaluate`` runs one of two loops over the same setup:
``fit_loop`` (model.fit) or ``custom_loop`` (strategy.run, under
MultiWorkerMirroredStrategy). Each starts from ``start_run`` (sources, the
compiled model restored from the latest checkpoint, the codec) and the
training batches of ``train_dataset``; the chief adds ``start_chief``
(the run's settings files, validation and test data, the predictor and the
callbacks) and ends with ``save_and_score_final_model`` (final.keras and
results.json).
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.pipeline import SkippedExamples, make_dataset
from tf_hourglass.evaluation import evaluator
from tf_hourglass.model import from_preset
from tf_hourglass.model.info import info_for, model_info
from tf_hourglass.model.presets import preset_class
from tf_hourglass.model_loader import describe_model_source, load_keras_model
from tf_hourglass.run_files import MODEL_FILE
from tf_hourglass.training.callbacks import make_callbacks
from tf_hourglass.training.data_sources import DataSources, augment_from_config, image_budget, load_sources
from tf_hourglass.training.losses import HeatmapLoss
from tf_hourglass.training.workdir import drop_metrics_rows_from, write_json, write_run_settings

# The model.* fields that override a preset's architecture (model.input_size too, below).
ARCHITECTURE_FIELDS = ("num_stacks", "num_stages", "filters", "depth")


def model_kwargs(model_config, num_keypoints) -> dict:
    """The preset's arguments with the config's overrides (0 keeps the preset's); each model family
    names the fields a config may override (``PoseModel.config_overrides``)."""
    kwargs = {"num_keypoints": num_keypoints}
    family = preset_class(model_config.preset)
    for field in ARCHITECTURE_FIELDS:
        if model_config[field] and field not in family.config_overrides:
            raise ValueError(
                f"model.{field}={model_config[field]} does not apply to preset {model_config.preset!r} "
                f"({family.__name__}); it takes {', '.join(family.config_overrides)}."
            )
        if model_config[field]:
            kwargs[field] = model_config[field]
    if model_config.input_size:
        kwargs["input_shape"] = (model_config.input_size, model_config.input_size, 3)
    return kwargs


# The architecture a run took from model.init_from, kept with its checkpoints: a resumed
# run rebuilds it from there, so the init_from file need not exist any more.
INIT_ARCHITECTURE_FILE = "init_from_architecture.json"


def starting_model(model_config, spec) -> keras.Model | None:
    """The model ``model.init_from`` names (None when empty), checked against the run.

    ``model.init_from`` is a ``.keras`` file, a training workdir or a pretrained
    preset, e.g. official weights converted by ``hourglass-weights``. The run
    trains that model: its architecture, input normalisation and weights
    (``model.preset`` names its family, and the overrides stay 0, which
    ``trainer.validate_config`` checks); its keypoints must be ``spec``'s.
    """
    init_from = model_config.get("init_from", "")
    if not init_from:
        return None
    try:
        model = load_keras_model(init_from)
    except (OSError, ValueError, TypeError, KeyError, tf.errors.OpError) as error:
        reason = str(getattr(error, "message", error)).strip().splitlines()[0]
        raise ValueError(f"model.init_from={init_from!r}: {reason}") from error
    family = preset_class(model_config.preset)
    if not isinstance(model, family):
        raise ValueError(
            f"model.init_from={init_from!r} is a {type(model).__name__}; model.preset="
            f"{model_config.preset!r} is a {family.__name__}. Name a preset of its family."
        )
    # A network saved without its keypoint spec can only be checked by its count.
    model_spec = model_info(model).spec
    names = model_spec.keypoint_names if model_spec is not None else None
    if model.num_keypoints != spec.num_keypoints or names not in (None, spec.keypoint_names):
        what = f" of {model_spec.name!r} ({', '.join(names[:3])}, ...)" if names else ""
        raise ValueError(
            f"model.init_from={init_from!r} predicts {model.num_keypoints} keypoints{what}; the training data has "
            f"{spec.num_keypoints} of {spec.name!r} ({', '.join(spec.keypoint_names[:3])}, ...)."
        )
    print(f"Starting from {describe_model_source(init_from)}: its architecture and weights.")
    return model


def _initial_architecture(model_config, spec, checkpoint_dir) -> tuple[dict, list | None] | None:
    """``(serialized model, weights)`` to build from ``model.init_from``, or None without it.

    A run with checkpoints rebuilds the architecture it recorded when it
    started (``INIT_ARCHITECTURE_FILE``), with no weights: the checkpoint has them.
    """
    if not model_config.get("init_from", ""):
        return None
    recorded = os.path.join(checkpoint_dir, INIT_ARCHITECTURE_FILE)
    if tf.train.latest_checkpoint(checkpoint_dir) and tf.io.gfile.exists(recorded):
        with tf.io.gfile.GFile(recorded) as file:
            return json.load(file), None
    model = starting_model(model_config, spec)
    return keras.saving.serialize_keras_object(model), model.get_weights()


def make_codec(model, data_config, decode_method="quarter") -> HeatmapCodec:
    return HeatmapCodec(
        input_size=model.image_shape[:2],
        heatmap_size=model.heatmap_size,
        sigma=data_config.sigma,
        peak=data_config.target_peak,
        decode_method=decode_method,
        background_channel=model.background_channel,
    )


def make_optimizer(train_config):
    total_steps = train_config.epochs * train_config.steps_per_epoch
    learning_rate = train_config.learning_rate
    if train_config.schedule == "cosine":
        warmup = min(train_config.warmup_steps, total_steps - 1)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate if not warmup else 0.0,
            decay_steps=total_steps - warmup,
            warmup_target=learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if train_config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    if train_config.optimizer == "sgd":
        # The CPM paper's optimizer, with Caffe's momentum.
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    # The paper's optimizer, with Torch's rmsprop defaults (alpha 0.99, eps 1e-8).
    return keras.optimizers.RMSprop(learning_rate, rho=0.99, epsilon=1e-8)


def build_model(config, strategy, spec, checkpoint_dir, make_loss=lambda model: HeatmapLoss()):
    """The compiled model under ``strategy``, restored from the latest checkpoint in ``checkpoint_dir``.

    The model is ``model.preset`` for ``spec``'s keypoints, or ``model.init_from``'s
    (``starting_model``); a checkpoint wins over both, so a resumed run continues
    where it stopped. ``make_loss(model)`` gives its loss (the heatmap MSE unless
    told otherwise). Returns ``(model, epoch_variable, manager)``:
    ``epoch_variable`` counts completed epochs, and ``manager`` saves model,
    optimizer and epoch.
    """
    # Read outside the scope: no mirrored copies of the file's model.
    initial = _initial_architecture(config.model, spec, checkpoint_dir)
    with strategy.scope():
        if initial is None:
            model = from_preset(config.model.preset, **model_kwargs(config.model, spec.num_keypoints))
        else:
            # Rebuilt from its arguments, its layers take this run's precision policy.
            architecture, weights = initial
            model = keras.saving.deserialize_keras_object(architecture)
            if weights is not None:
                model.set_weights(weights)
                tf.io.gfile.makedirs(checkpoint_dir)
                atomic_files.write_text(
                    os.path.join(checkpoint_dir, INIT_ARCHITECTURE_FILE), json.dumps(architecture)
                )
        optimizer = make_optimizer(config.train)
        model.compile(optimizer=optimizer, loss=make_loss(model), jit_compile=config.runtime.jit_compile)
        optimizer.build(model.trainable_variables)
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_variable)
    remove_unfinished_checkpoints(checkpoint_dir)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    # Newest first: a checkpoint cut short (a full disk, a killed copy) falls back to the one before.
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (ValueError, AssertionError) as error:
            raise ValueError(
                f"The checkpoint {path} does not match this config (model or "
                f"optimizer changed?). Use a new --workdir, or the config that made it. Cause: {error}"
            ) from error
        except (tf.errors.OpError, IndexError) as error:  # IndexError: TensorFlow's word for a file cut short
            reason = str(getattr(error, "message", error)).splitlines()[0][:200]
            print(f"Warning: cannot read the checkpoint {path} ({reason}); trying an older one.")
            continue
        print(f"Resuming from {path} (epoch {int(epoch_variable.numpy())}).")
        break
    else:
        if manager.checkpoints:
            raise ValueError(
                f"None of the checkpoints in {checkpoint_dir} can be read ({', '.join(manager.checkpoints)}); "
                "use a new --workdir, or move them away to start again."
            )
    return model, epoch_variable, manager


def remove_unfinished_checkpoints(checkpoint_dir) -> None:
    """Removes the ``ckpt-N_temp*`` folders a run killed while saving leaves (TensorFlow names them)."""
    if not tf.io.gfile.isdir(checkpoint_dir):
        return
    for name in tf.io.gfile.listdir(checkpoint_dir):
        name = name.rstrip("/")
        if name.startswith("ckpt-") and "_temp" in name:
            print(f"Removing {os.path.join(checkpoint_dir, name)}, left by a run killed while saving.")
            atomic_files.remove(os.path.join(checkpoint_dir, name))


@dataclasses.dataclass
class TrainingRun:
    """What every worker of a run starts from."""

    config: ml_collections.ConfigDict
    workdir: str
    sources: DataSources
    model: keras.Model
    epoch_variable: tf.Variable  # completed epochs, saved with the checkpoints
    manager: tf.train.CheckpointManager
    initial_epoch: int  # the epoch this run starts at (0, or the restored checkpoint's)
    codec: HeatmapCodec
    # What the training pipeline skips while reading (on this host), printed after every epoch.
    skipped_examples: SkippedExamples = dataclasses.field(default_factory=SkippedExamples)

    @property
    def spec(self):
        return self.sources.spec


def start_run(config, workdir, strategy) -> TrainingRun:
    """The data sources, the compiled model under ``strategy`` restored from ``WORKDIR/checkpoints``, and the codec."""
    sources = load_sources(config.data)
    model, epoch_variable, manager = build_model(
        config, strategy, sources.spec, os.path.join(workdir, "checkpoints")
    )
    codec = make_codec(model, config.data, config.eval.decode_method)
    # The model carries what inference needs (spec, codec settings) into final.keras.
    model.pose_info = info_for(model, sources.spec, codec)
    return TrainingRun(
        config=config,
        workdir=workdir,
        sources=sources,
        model=model,
        epoch_variable=epoch_variable,
        manager=manager,
        initial_epoch=int(epoch_variable.numpy()),
        codec=codec,
    )


def train_dataset(run: TrainingRun, input_context=None):
    """Shuffled, augmented, endless training batches of ``train.batch_size``.

    With ``input_context`` (``strategy.distribute_datasets_from_function``):
    this input pipeline's shard of the data, in per-replica batches. Batches
    carry a centre map when the model takes one (CPM); predictors build
    centred maps themselves.
    """
    config = run.config
    # A resumed run continues with fresh (still reproducible) augmentation draws.
    seed = config.train.seed + 1_000_003 * run.initial_epoch
    batch_size = config.train.batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        # Each pipeline its own augmentation draws, not the same ones on other examples.
        seed += 7_919 * input_context.input_pipeline_id
    return make_dataset(
        run.sources.train,
        run.spec,
        run.codec,
        batch_size=batch_size,
        training=True,
        augment=augment_from_config(config.data),
        seed=seed,
        shuffle_buffer=config.data.shuffle_buffer,
        input_context=input_context,
        center_map_sigma=run.model.center_map_sigma,
        budget=image_budget(config.data),
        skipped=run.skipped_examples,
    )


def evaluation_dataset(config, spec, codec, source):
    """One pass over ``source`` in order, without augmentation, with what scoring needs."""
    return make_dataset(
        source, spec, codec, batch_size=config.train.batch_size, training=False, with_metadata=True
    )


@dataclasses.dataclass
class ChiefSide:
    """The chief's part of a run: what validates, logs, checkpoints and gives the final score."""

    predictor: evaluator.DatasetPredictor
    val_ds: tf.data.Dataset
    test_ds: tf.data.Dataset | None  # None unless the sources hold out a test split
    callbacks: list


def start_chief(run: TrainingRun, state) -> ChiefSide:
    """Readies the workdir and builds the validation side of the run, on the worker that writes the files.

    Drops the metrics.csv rows of the epochs this run does again, writes
    config.json and inference.json, and makes the validation and test
    datasets, the predictor and the callbacks (sharing ``state``).
    """
    config, spec, codec = run.config, run.spec, run.codec
    drop_metrics_rows_from(os.path.join(run.workdir, "metrics.csv"), run.initial_epoch)
    write_run_settings(run.workdir, config, spec, codec)
    val_ds = evaluation_dataset(config, spec, codec, run.sources.val)
    test_ds = (
        evaluation_dataset(config, spec, codec, run.sources.test) if run.sources.test is not None else None
    )
    flip_permutation = spec.flip_permutation() if config.eval.flip_test else None
    predictor = evaluator.DatasetPredictor(run.model, codec, flip_permutation)
    callbacks = make_callbacks(
        config,
        run.workdir,
        predictor,
        val_ds,
        spec,
        run.manager,
        run.epoch_variable,
        state,
        skipped_images=run.sources.skipped_train_images,  # printed after every epoch when any
        skipped_examples=run.skipped_examples,
    )
    return ChiefSide(predictor=predictor, val_ds=val_ds, test_ds=test_ds, callbacks=callbacks)


def save_and_score_final_model(run: TrainingRun, chief_side: ChiefSide, train_seconds) -> dict:
    """Writes final.keras, scores it on the held-out data (test, else validation) and writes results.json."""
    workdir, spec, predictor = run.workdir, run.spec, chief_side.predictor
    atomic_files.save(run.model.save, os.path.join(workdir, MODEL_FILE), suffix=".keras")
    final_ds = chief_side.test_ds if chief_side.test_ds is not None else chief_side.val_ds
    predictions = predictor(final_ds, progress=True)
    result = evaluator.score(spec, predictions)
    name = evaluator.metric_name(spec)
    results = {
        "metric": name,
        "score": result["total"],
        "per_joint": dict(zip(spec.keypoint_names, np.round(result["per_joint"], 2).tolist(), strict=True)),
        "num_persons": int(len(predictions.keypoints)),
        "evaluated_on": "test" if chief_side.test_ds is not None else "val",
        "train_seconds_this_run": round(train_seconds, 1),
        "epochs_completed": int(run.epoch_variable.numpy()),
    }
    write_json(os.path.join(workdir, "results.json"), results)
    print(
        f"{name} = {result['total']:.1f}%  ({results['num_persons']} held-out people, flip test "
        f"{'on' if predictor.flip_permutation is not None else 'off'}; model: "
        f"{os.path.join(workdir, MODEL_FILE)})"
    )
    return results
