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

The other strategies train through model.fit (``fit_loop.py``). Both loops
start from the same setup (``run_setup.py``: data, model, codec, final
score), drive the same callbacks (``callbacks.py``) and keep the same workdir
files (``workdir.py``).

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

import os

import keras
import tensorflow as tf

from tf_hourglass import atomic_files
from tf_hourglass.data.codec import DECODE_METHODS
from tf_hourglass.model.info import MULTI_PERSON
from tf_hourglass.model.presets import PRESETS, preset_class
from tf_hourglass.precision import native_bfloat16_cpu_flags
from tf_hourglass.training import custom_loop, fit_loop, multi_person_loop
from tf_hourglass.training.data_sources import data_splits
from tf_hourglass.training.run_setup import ARCHITECTURE_FIELDS, model_kwargs
from tf_hourglass.training.workdir import check_resumed_config, workdir_lock

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
SCHEDULES = ("constant", "plateau", "cosine")


def validate_config(config) -> None:
    """Fails before any work, naming the field, when a config value is unusable."""

    def check(ok, field, value, expected):
        if not ok:
            raise ValueError(f"config.{field} must be {expected}. Received: {field}={value!r}")

    data, model, train, runtime = config.data, config.model, config.train, config.runtime
    splits = data_splits(data)  # one line naming the data field it cannot read
    synthetic = {split for split, source in splits.items() if source.kind == "synthetic"}
    for split, field in (("train", "num_train"), ("val", "num_val"), ("test", "num_test")):
        if split in synthetic:
            check(data[field] >= 1, f"data.{field}", data[field], ">= 1")
    check(data.num_test >= 0, "data.num_test", data.num_test, ">= 0")
    check(data.sigma > 0, "data.sigma", data.sigma, "> 0")
    check(data.target_peak > 0, "data.target_peak", data.target_peak, "> 0")
    check(0 < data.scale_min <= data.scale_max, "data.scale_min", data.scale_min, "> 0 and <= data.scale_max")
    check(0 <= data.flip_probability <= 1, "data.flip_probability", data.flip_probability, "in [0, 1]")
    check(model.preset in PRESETS, "model.preset", model.preset, f"one of {sorted(PRESETS)}")
    model_kwargs(model, num_keypoints=1)  # overrides that do not fit the preset's family
    if model.get("init_from", ""):
        for field in (*ARCHITECTURE_FIELDS, "input_size"):
            check(
                not model[field],
                f"model.{field}",
                model[field],
                "0 with model.init_from (its architecture is used)",
            )
    if preset_class(model.preset).model_kind == MULTI_PERSON:
        formats = multi_person_loop.DATA_FORMATS
        check(
            splits.train.kind in formats,
            "data.train",
            str(splits.train),
            f"of a kind in {formats} for a multi-person preset",
        )
        for split, source in splits.items()[1:]:
            check(
                source.kind in multi_person_loop.SCORED_FORMATS,
                f"data.{split}",
                str(source),
                "'synthetic' or a COCO person_keypoints file ('coco:ANNOTATIONS[:IMAGES]') to score a "
                "multi-person model by COCO's AP",
            )
        check(
            runtime.strategy != "multi_worker",
            "runtime.strategy",
            runtime.strategy,
            "default, mirrored or tpu for a multi-person preset (it trains through model.fit)",
        )
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


def resolve_precision(runtime_config) -> tuple[str, str]:
    """The Keras dtype policy to train with, and why.

    "auto" trains in mixed_bfloat16 on a CPU-only run whose CPU has bfloat16
    instructions (AVX512-BF16 or AMX): the oneDNN convolutions then take ~0.6x
    the float32 time (BENCHMARKS.md, "Training step against PyTorch"). Elsewhere
    (GPUs, TPUs, CPUs that would emulate bfloat16 slowly) it is float32.
    Variables stay float32 either way, so ``final.keras`` loads as float32.
    """
    precision = runtime_config.precision
    if precision != "auto":
        return precision, "set in the config"
    if runtime_config.strategy == "tpu" or tf.config.list_physical_devices("GPU"):
        return "float32", "auto: an accelerator is in use"
    flags = native_bfloat16_cpu_flags()
    if flags:
        return "mixed_bfloat16", f"auto: this CPU computes bfloat16 natively ({', '.join(flags)})"
    return "float32", "auto: this CPU has no bfloat16 instructions"


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


def train_and_evaluate(config, workdir: str) -> dict | None:
    """Trains as ``config`` says, evaluates, and returns the final scores.

    Re-running with the same workdir resumes from the last completed epoch.
    Under ``runtime.strategy="multi_worker"`` only the chief returns scores;
    the other workers return None.
    """
    validate_config(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"--workdir {workdir!r} is a file, not a directory.")
    if "://" not in workdir:
        atomic_files.check_writable_folder(workdir, f"--workdir {workdir!r}")
    os.makedirs(workdir, exist_ok=True)
    check_resumed_config(workdir, config)  # before anything is written
    precision, reason = resolve_precision(config.runtime)
    # The policy is global Keras state: set it for this run only, so that what runs
    # next in the same process (a notebook exporting or predicting) stays float32.
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        strategy = make_strategy(config.runtime)
        print(
            f"Strategy {config.runtime.strategy!r} ({type(strategy).__name__}): "
            f"{strategy.num_replicas_in_sync} replica(s) in sync. Precision {precision} ({reason})."
        )
        # ----- multi_worker: the custom loop, since Keras 3 model.fit fails there (keras-team/keras#20585)
        if config.runtime.strategy == "multi_worker":
            return custom_loop.train_and_evaluate_multi_worker(config, workdir, strategy)
        # ----- every other strategy: model.fit, one run per workdir
        with workdir_lock(workdir):
            if preset_class(config.model.preset).model_kind == MULTI_PERSON:
                return multi_person_loop.train_and_evaluate_people(config, workdir, strategy)
            return fit_loop.train_and_evaluate_with_fit(config, workdir, strategy)
    finally:
        keras.config.set_dtype_policy(previous_policy)
