r"""``train_and_evaluate(config, workdir)``: the training run behind the command and the notebooks.

The workdir holds everything a run produces and needs to resume:

    checkpoints/        latest training state (model, optimizer, epoch), every epoch
    best.weights.h5     weights with the best validation PCKh/PCK so far (+ best.json)
    tensorboard/        losses of every stack, learning rate, validation metric, skeleton pictures
    metrics.csv         one row per epoch
    final.keras         the trained model
    inference.json      its keypoint spec and heatmap codec settings (read by PoseEstimator)
    config.json         the run's config
    results.json        the final held-out score
    train.lock          held by the run in progress (flock): a second run into the workdir fails

Killing the process at any moment and running the same command again continues
from the last completed epoch.

``config.runtime.strategy`` picks where training runs:

    default        one device (the first GPU, else the CPU)
    mirrored       all GPUs of this machine (tf.distribute.MirroredStrategy), through model.fit
    tpu            a TPU (tf.distribute.TPUStrategy), through model.fit; runtime.tpu_address is a
                   TPU name or grpc:// address, "local" on a TPU VM (the TPU attached to this
                   machine), or "" for the TPU named by the TPU_NAME environment variable
    multi_worker   several machines (tf.distribute.MultiWorkerMirroredStrategy), through the custom
                   loop of ``custom_loop.py`` because Keras 3 model.fit fails under that strategy
                   (keras-team/keras#20585)

A multi-worker run starts the same command on every machine, each with a
``TF_CONFIG`` naming the cluster and its own index in it, and all with the same
``--workdir`` on a file system they share: worker 0, the chief, writes the
run's files, and every worker resumes from its checkpoints. On host0 (on host1
the same with ``"index": 1``)::

    export TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                       "task": {"type": "worker", "index": 0}}'
    python -m tf_hourglass.train --config configs/mpii_hg8.py --workdir /shared/runs/hg8 \
        --config.runtime.strategy=multi_worker

``train.batch_size`` is the global batch, split evenly over all replicas.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_hourglass.data import readers
from tf_hourglass.data.codec import DECODE_METHODS, HeatmapCodec
from tf_hourglass.data.pipeline import make_dataset
from tf_hourglass.evaluation import evaluator
from tf_hourglass.inference import RUN_SETTINGS_FILE, run_settings_text
from tf_hourglass.model import ConvolutionalPoseMachine, StackedHourglass, from_preset
from tf_hourglass.model.presets import PRESETS, preset_class
from tf_hourglass.training.data_sources import augment_from_config, load_sources
from tf_hourglass.training.losses import HeatmapLoss
from tf_hourglass.visualization import draw_skeleton, image_grid

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
SCHEDULES = ("constant", "plateau", "cosine")
DATA_FORMATS = ("synthetic", "tfrecord", *readers.FORMATS)
VAL_METRIC = "val_pck"


# ----- configuration ----------------------------------------------------------


def validate_config(config) -> None:
    """Fails before any work, naming the field, when a config value is unusable."""

    def check(ok, field, value, expected):
        if not ok:
            raise ValueError(f"config.{field} must be {expected}. Received: {field}={value!r}")

    data, model, train, runtime = config.data, config.model, config.train, config.runtime
    check(data.format in DATA_FORMATS, "data.format", data.format, f"one of {DATA_FORMATS}")
    reader_formats = readers.FORMATS
    check(
        not data.val_format or (data.format in reader_formats and data.val_format in reader_formats),
        "data.val_format",
        data.val_format,
        f"empty or, with a reader data.format, one of {reader_formats}",
    )
    if data.format == "synthetic":
        for field in ("num_train", "num_val"):
            check(data[field] >= 1, f"data.{field}", data[field], ">= 1")
        check(data.num_test >= 0, "data.num_test", data.num_test, ">= 0")
    else:
        for field in ("train_annotations", "val_annotations"):
            check(bool(data[field]), f"data.{field}", data[field], "a path (or file pattern for tfrecord)")
    check(data.sigma > 0, "data.sigma", data.sigma, "> 0")
    check(data.target_peak > 0, "data.target_peak", data.target_peak, "> 0")
    check(0 < data.scale_min <= data.scale_max, "data.scale_min", data.scale_min, "> 0 and <= data.scale_max")
    check(0 <= data.flip_probability <= 1, "data.flip_probability", data.flip_probability, "in [0, 1]")
    check(model.preset in PRESETS, "model.preset", model.preset, f"one of {sorted(PRESETS)}")
    model_kwargs(model, num_keypoints=1)  # overrides that do not fit the preset's family
    check(train.optimizer in OPTIMIZERS, "train.optimizer", train.optimizer, f"one of {OPTIMIZERS}")
    check(train.schedule in SCHEDULES, "train.schedule", train.schedule, f"one of {SCHEDULES}")
    check(train.learning_rate > 0, "train.learning_rate", train.learning_rate, "> 0")
    for field in ("epochs", "steps_per_epoch", "batch_size"):
        check(
            isinstance(train[field], int) and train[field] >= 1,
            f"train.{field}",
            train[field],
            "an integer >= 1",
        )
    check(train.max_train_minutes >= 0, "train.max_train_minutes", train.max_train_minutes, ">= 0")
    check(runtime.strategy in STRATEGIES, "runtime.strategy", runtime.strategy, f"one of {STRATEGIES}")
    check(runtime.precision in PRECISIONS, "runtime.precision", runtime.precision, f"one of {PRECISIONS}")
    check(
        runtime.jit_compile is True or runtime.jit_compile is False or runtime.jit_compile == "auto",
        "runtime.jit_compile",
        runtime.jit_compile,
        'True, False or "auto"',
    )
    check(
        config.eval.decode_method in DECODE_METHODS,
        "eval.decode_method",
        config.eval.decode_method,
        f"{', '.join(DECODE_METHODS[:-1])} or {DECODE_METHODS[-1]}",
    )


def make_strategy(runtime_config) -> tf.distribute.Strategy:
    if runtime_config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if runtime_config.strategy == "multi_worker":
        # Reads the cluster and this worker's index from the TF_CONFIG environment variable.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if runtime_config.strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime_config.tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


# Config fields that override a preset's, by model family (0 keeps the preset's).
OVERRIDES = {
    StackedHourglass: ("num_stacks", "filters", "depth"),
    ConvolutionalPoseMachine: ("num_stages", "filters"),
}


def model_kwargs(model_config, num_keypoints) -> dict:
    kwargs = {"num_keypoints": num_keypoints}
    family = preset_class(model_config.preset)
    for field in ("num_stacks", "num_stages", "filters", "depth"):
        if model_config[field] and field not in OVERRIDES[family]:
            raise ValueError(
                f"model.{field}={model_config[field]} does not apply to preset {model_config.preset!r} "
                f"({family.__name__}); it takes {', '.join(OVERRIDES[family])}."
            )
        if model_config[field]:
            kwargs[field] = model_config[field]
    if model_config.input_size:
        kwargs["input_shape"] = (model_config.input_size, model_config.input_size, 3)
    return kwargs


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


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


# ----- callbacks -------------------------------------------------------------


class RunState:
    """What the callbacks share: whether the run has failed."""

    def __init__(self):
        self.failed_reason = None


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
    """Latest state every epoch (tf.train.CheckpointManager) and best weights by ``val_pck``."""

    def __init__(self, manager, epoch_variable, workdir, state):
        super().__init__()
        self.manager = manager
        self.epoch_variable = epoch_variable
        self.best_path = os.path.join(workdir, "best.weights.h5")
        self.best_info_path = os.path.join(workdir, "best.json")
        self.state = state
        self.best = read_json(self.best_info_path).get(VAL_METRIC, -math.inf)

    def on_epoch_end(self, epoch, logs=None):
        if self.state.failed_reason:
            return
        self.epoch_variable.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        value = (logs or {}).get(VAL_METRIC)
        if value is not None and value > self.best:
            self.best = value
            atomic_save(lambda path: self.model.save_weights(path), self.best_path, suffix=".weights.h5")
            write_json(self.best_info_path, {VAL_METRIC: value, "epoch": epoch + 1})


# ----- files -----------------------------------------------------------------


def atomic_save(save_fn, path, suffix=""):
    """Writes through ``save_fn(tmp_path)`` then renames, so ``path`` is never half-written."""
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    save_fn(tmp)
    os.replace(tmp, path)


class WorkdirInUseError(OSError):
    """Another live training run holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir):
    """Holds ``WORKDIR/train.lock`` for one run, so two runs never mix their files.

    flock, not the file's existence, is the lock: the kernel releases it when the
    holder dies, so a run killed with SIGKILL leaves a lock the next run takes over.
    The file keeps the holder's pid for the message.
    """
    path = os.path.join(workdir, "train.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise WorkdirInUseError(
            f"{workdir!r} is in use by another training run (pid {holder}); "
            "wait for it to finish or choose another --workdir."
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_json(path, data):
    atomic_save(lambda tmp: open(tmp, "w").write(json.dumps(data, indent=2) + "\n"), path)


def drop_metrics_rows_from(path, epoch):
    """Drops the metrics.csv rows of ``epoch`` and later: the run does them again.

    A run killed after an epoch's CSV row but before its checkpoint would
    otherwise leave that epoch twice in the file.
    """
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    header, *rows = lines
    kept = [row for row in rows if row.strip() and int(row.split(",", 1)[0]) < epoch]
    if len(kept) < len(rows):
        atomic_save(lambda tmp: open(tmp, "w").write(header + "".join(kept)), path)


def read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ----- the run ---------------------------------------------------------------


def train_dataset(config, sources, codec, initial_epoch, input_context=None, center_map_sigma=None):
    """Shuffled, augmented, endless training batches of ``train.batch_size``.

    With ``input_context`` (``strategy.distribute_datasets_from_function``):
    this input pipeline's shard of the data, in per-replica batches.
    """
    # A resumed run continues with fresh (still reproducible) augmentation draws.
    seed = config.train.seed + 1_000_003 * initial_epoch
    batch_size = config.train.batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        # Each pipeline its own augmentation draws, not the same ones on other examples.
        seed += 7_919 * input_context.input_pipeline_id
    return make_dataset(
        sources.train,
        sources.spec,
        codec,
        batch_size=batch_size,
        training=True,
        augment=augment_from_config(config.data),
        seed=seed,
        shuffle_buffer=config.data.shuffle_buffer,
        input_context=input_context,
        center_map_sigma=center_map_sigma,
    )


def evaluation_dataset(config, spec, codec, source):
    """One pass over ``source`` in order, without augmentation, with what scoring needs."""
    return make_dataset(
        source, spec, codec, batch_size=config.train.batch_size, training=False, with_metadata=True
    )


def build_datasets(config, sources, codec, initial_epoch, center_map_sigma=None):
    """Training, validation and (None unless the source has one) test datasets.

    ``center_map_sigma``: the model's, when it takes a centre map (CPM); only
    training batches carry one (predictors build centred maps themselves).
    """
    test = evaluation_dataset(config, sources.spec, codec, sources.test) if sources.test is not None else None
    return (
        train_dataset(config, sources, codec, initial_epoch, center_map_sigma=center_map_sigma),
        evaluation_dataset(config, sources.spec, codec, sources.val),
        test,
    )


def build_model(config, strategy, num_keypoints, checkpoint_dir):
    """The compiled model under ``strategy``, restored from the latest checkpoint in ``checkpoint_dir``.

    Returns ``(model, epoch_variable, manager)``: ``epoch_variable`` counts
    completed epochs, and ``manager`` saves model, optimizer and epoch.
    """
    with strategy.scope():
        model = from_preset(config.model.preset, **model_kwargs(config.model, num_keypoints))
        optimizer = make_optimizer(config.train)
        model.compile(optimizer=optimizer, loss=HeatmapLoss(), jit_compile=config.runtime.jit_compile)
        optimizer.build(model.trainable_variables)
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_variable)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except (ValueError, AssertionError) as error:
            raise ValueError(
                f"The checkpoint {manager.latest_checkpoint} does not match this config (model or "
                f"optimizer changed?). Use a new --workdir, or the config that made it. Cause: {error}"
            ) from error
        print(f"Resuming from {manager.latest_checkpoint} (epoch {int(epoch_variable.numpy())}).")
    return model, epoch_variable, manager


def write_run_settings(workdir, config, spec, codec):
    """config.json, and what inference needs beside final.keras: the keypoints and the target scale."""
    text = run_settings_text(spec, codec.sigma, codec.peak)
    atomic_save(lambda tmp: open(tmp, "w").write(text), os.path.join(workdir, RUN_SETTINGS_FILE))
    write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))


def make_callbacks(config, workdir, predictor, val_ds, spec, manager, epoch_variable, state):
    """Validation, CSV, TensorBoard, checkpoints, NaN stop, time budget and the plateau schedule."""
    log_dir = os.path.join(workdir, "tensorboard")
    callbacks = [
        StopOnNaN(state),
        TimeBudget(config.train.max_train_minutes * 60),
        Validation(predictor, val_ds, spec, config.eval.val_batches, log_dir, config.eval.num_images, state),
        keras.callbacks.CSVLogger(os.path.join(workdir, "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=log_dir),
        Checkpointing(manager, epoch_variable, workdir, state),
    ]
    if config.train.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=VAL_METRIC,
                mode="max",
                factor=config.train.plateau_factor,
                patience=config.train.plateau_patience,
                verbose=1,
            )
        )
    return callbacks


def save_and_score_final_model(
    workdir, model, predictor, spec, val_ds, test_ds, train_seconds, epochs_completed
):
    """Writes final.keras, scores it on the held-out data (test, else validation) and writes results.json."""
    atomic_save(model.save, os.path.join(workdir, "final.keras"), suffix=".keras")
    final_ds = test_ds if test_ds is not None else val_ds
    predictions = predictor(final_ds, progress=True)
    result = evaluator.score(spec, predictions)
    name = evaluator.metric_name(spec)
    results = {
        "metric": name,
        "score": result["total"],
        "per_joint": dict(zip(spec.keypoint_names, np.round(result["per_joint"], 2).tolist(), strict=True)),
        "num_persons": int(len(predictions.keypoints)),
        "evaluated_on": "test" if test_ds is not None else "val",
        "train_seconds_this_run": round(train_seconds, 1),
        "epochs_completed": epochs_completed,
    }
    write_json(os.path.join(workdir, "results.json"), results)
    print(
        f"{name} = {result['total']:.1f}%  ({results['num_persons']} held-out people, flip test "
        f"{'on' if predictor.flip_permutation is not None else 'off'}; model: "
        f"{os.path.join(workdir, 'final.keras')})"
    )
    return results


def train_and_evaluate(config, workdir: str) -> dict | None:
    """Trains as ``config`` says, evaluates, and returns the final scores.

    Re-running with the same workdir resumes from the last completed epoch.
    Under ``runtime.strategy="multi_worker"`` only the chief returns scores;
    the other workers return None.
    """
    validate_config(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"--workdir {workdir!r} is a file, not a directory.")
    os.makedirs(workdir, exist_ok=True)
    keras.config.set_dtype_policy(config.runtime.precision)
    strategy = make_strategy(config.runtime)
    print(
        f"Strategy {config.runtime.strategy!r} ({type(strategy).__name__}): "
        f"{strategy.num_replicas_in_sync} replica(s) in sync."
    )
    # ----- multi_worker: the custom loop, since Keras 3 model.fit fails there (keras-team/keras#20585)
    if config.runtime.strategy == "multi_worker":
        from tf_hourglass.training import custom_loop  # imported here: it builds on this module

        return custom_loop.train_and_evaluate_multi_worker(config, workdir, strategy)
    # ----- every other strategy: model.fit, one run per workdir
    with workdir_lock(workdir):
        return _train_and_evaluate_with_fit(config, workdir, strategy)


def _train_and_evaluate_with_fit(config, workdir, strategy) -> dict:
    sources = load_sources(config.data)
    spec = sources.spec
    model, epoch_variable, manager = build_model(
        config, strategy, spec.num_keypoints, os.path.join(workdir, "checkpoints")
    )
    initial_epoch = int(epoch_variable.numpy())
    drop_metrics_rows_from(os.path.join(workdir, "metrics.csv"), initial_epoch)

    codec = make_codec(model, config.data, config.eval.decode_method)
    write_run_settings(workdir, config, spec, codec)
    train_ds, val_ds, test_ds = build_datasets(
        config, sources, codec, initial_epoch, center_map_sigma=model.center_map_sigma
    )
    flip_permutation = spec.flip_permutation() if config.eval.flip_test else None
    predictor = evaluator.DatasetPredictor(model, codec, flip_permutation)

    state = RunState()
    callbacks = make_callbacks(config, workdir, predictor, val_ds, spec, manager, epoch_variable, state)

    start = time.monotonic()
    if initial_epoch < config.train.epochs:
        model.fit(
            train_ds,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.train.steps_per_epoch,
            callbacks=callbacks,
            verbose=config.runtime.verbose,
            shuffle=False,  # the dataset shuffles itself
        )
    train_seconds = time.monotonic() - start
    if state.failed_reason:
        raise FloatingPointError(f"Training failed: {state.failed_reason}")
    return save_and_score_final_model(
        workdir, model, predictor, spec, val_ds, test_ds, train_seconds, int(epoch_variable.numpy())
    )
