"""Training a multi-person (Associative Embedding) model through ``model.fit``, scored by COCO keypoint AP.

``trainer.train_and_evaluate`` comes here for presets whose model kind is
``multi_person`` (``ae_hg4``, ``ae_small``, ``ae_tiny``). Data: ``config.data.train``,
``val`` and ``test`` (or the older fields), mapped by ``data_sources.data_splits``:

* ``synthetic``: built-in multi-person scenes (``SyntheticScenes``):
  scenes ``[0, num_train)`` train, the next ``num_val`` validate, the next
  ``num_test`` are held out for the final score;
* ``coco:ANNOTATIONS[:IMAGES]`` or ``custom:...`` (training only): whole images
  with all their people (``readers.read_multi_person_dataset``); crowds and
  people without keypoints are masked out of the loss;
* ``tfrecord:PATTERN`` (training only): whole-image shards written by
  ``convert --multi-person``.

Validation and test data are synthetic scenes or a COCO person_keypoints file
(``SCORED_FORMATS``): COCO's AP needs COCO ground truth.

Targets: ``data.sigma`` (heatmap pixels) and ``data.target_peak`` (1 in the
official recipe; saved with the model, and decoding divides by it). The loss is
``AssociativeEmbeddingLoss`` on every stack; the schedule, the
checkpoints, ``metrics.csv``, TensorBoard, the NaN stop and the time budget are
the single-person run's (``callbacks.py``). Each epoch ends with the validation
AP (``val_ap``, pycocotools' OKS AP in percent, the images run as the official
test runs them: ``prediction.multi_person.predict_people``); the best epoch's
weights are kept. The final model is scored on the held-out scenes (or the
validation set) and prints ``AP = NN.N``. The ground truth of synthetic scenes
is written as COCO files into the workdir (``val_people.json``,
``test_people.json``), so the numbers can be recomputed with any COCO tool.
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
from absl import logging
from tqdm.auto import tqdm

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs, readers, tfrecord
from tf_hourglass.data.images import UnreadableInputError, read_image
from tf_hourglass.data.multi_person_pipeline import MultiPersonSource, make_multi_person_dataset
from tf_hourglass.data.pipeline import AugmentConfig, SkippedExamples, check_tfrecord_images, readable_records
from tf_hourglass.evaluation import metrics
from tf_hourglass.model.info import info_for
from tf_hourglass.model_loader import multi_person_network
from tf_hourglass.prediction.estimator import to_rgb_float
from tf_hourglass.prediction.multi_person import coco_results, codec_for_model, predict_people
from tf_hourglass.run_files import MODEL_FILE
from tf_hourglass.training import run_setup
from tf_hourglass.training.ae_losses import PUSH_WEIGHT, AssociativeEmbeddingLoss
from tf_hourglass.training.callbacks import RunState, current_learning_rate, run_callbacks
from tf_hourglass.training.data_sources import data_splits, image_budget
from tf_hourglass.training.workdir import drop_metrics_rows_from, write_config, write_json

VAL_METRIC = "val_ap"
DATA_FORMATS = ("synthetic", "coco", "custom", "tfrecord")  # what a multi-person model trains on
SCORED_FORMATS = (
    "synthetic",
    "coco",
)  # what validation and test data may be (COCO AP needs its ground truth)


@dataclasses.dataclass
class PeopleData:
    """Where a scored set's photos come from and its COCO ground truth."""

    ground_truth: str  # a COCO person_keypoints JSON
    images: list  # (image_id, uint8 pixels or a file path)


def _scene_ground_truth(scenes, start, count, path) -> PeopleData:
    """COCO ground truth of scenes ``start .. start + count - 1``, written to ``path``; their pixels."""
    document, photos = scenes.coco_ground_truth(range(start, start + count))
    write_json(path, document)
    return PeopleData(path, photos)


def _file_ground_truth(annotations: str, images_dir: str | None) -> PeopleData:
    data = readers.load_json(annotations)
    folder = images_dir or os.path.dirname(annotations)
    return PeopleData(
        annotations, [(image["id"], os.path.join(folder, image["file_name"])) for image in data["images"]]
    )


def load_people_data(config, workdir):
    """(train source, validation PeopleData, held-out PeopleData or None) for ``config.data``.

    The splits are ``data_sources.data_splits``'s, in either spelling of the data.
    Training photos that cannot be used (missing, damaged, over the image
    budget) are dropped here with one warning line, and a run none of whose
    photos can be used stops here, naming the first few.
    """
    data = config.data
    splits = data_splits(data)
    scenes = None
    if "synthetic" in {source.kind for _, source in splits.items()}:
        from tf_hourglass.data.synthetic import SyntheticScenes  # drawing code, loaded only when used

        scenes = SyntheticScenes(
            image_size=(data.synthetic_image_size,) * 2,
            num_people=tuple(data.get("scene_people", (1, 8))),
            height_range=tuple(data.get("scene_height_range", (0.25, 0.85))),
            seed=data.seed,
        )
    what = f"data.train {splits.train.kind}:{splits.train.annotations}"
    if splits.train.kind == "synthetic":
        train = MultiPersonSource.from_scenes(scenes, data.num_train)
    elif splits.train.kind == "tfrecord":
        train = splits.train.annotations
        check_tfrecord_images(tfrecord.matching_files(train), "image/encoded", what, image_budget(data))
    else:
        _, records = readers.read_multi_person_dataset(
            splits.train.kind, splits.train.annotations, splits.train.images_dir
        )
        records, skipped = readable_records(records, image_budget(data), what)
        train = MultiPersonSource(records)
        train.skipped_images = skipped

    def scored(split, start, count):
        source = getattr(splits, split)
        if source is None:
            return None
        if source.kind == "synthetic":
            return _scene_ground_truth(scenes, start, count, os.path.join(workdir, f"{split}_people.json"))
        # A COCO file: SCORED_FORMATS, which trainer.validate_config checks.
        return _file_ground_truth(source.annotations, source.images_dir)

    val = scored("val", data.num_train, data.num_val)
    return train, val, scored("test", data.num_train + data.num_val, data.num_test)


def score_people(
    network, codec, people_data: PeopleData, flip: bool, progress=False, max_images=None
) -> dict:
    """COCO keypoint AP (pycocotools' stats, fractions) of the model on ``people_data``'s photos."""
    spec = keypoint_specs.COCO
    results, image_ids = [], []
    photos = people_data.images[:max_images] if max_images else people_data.images
    for image_id, photo in tqdm(photos, desc="AP", unit="image", leave=False, disable=not progress):
        try:
            pixels = to_rgb_float(read_image(photo) if isinstance(photo, str) else photo)
        except UnreadableInputError as error:
            logging.warning("Skipping %s", error)
            continue
        people = predict_people(network, pixels, codec, spec.flip_permutation(), flip=flip)
        results += coco_results(people, image_id)
        image_ids.append(image_id)
    return metrics.coco_keypoint_ap(people_data.ground_truth, results, image_ids=image_ids)


class PeopleValidation(keras.callbacks.Callback):
    """The validation AP (percent) as ``val_ap`` in the epoch logs, with the learning rate."""

    def __init__(self, people_data, flip, max_images, state):
        super().__init__()
        self.people_data = people_data
        self.flip = flip
        self.max_images = max_images
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.failed_reason:
            return
        network, model = multi_person_network(self.model)
        stats = score_people(
            network, codec_for_model(model), self.people_data, self.flip, max_images=self.max_images
        )
        logs[VAL_METRIC] = 100.0 * max(stats["AP"], 0.0)
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        print(f"\nepoch {epoch + 1}: validation AP = {logs[VAL_METRIC]:.1f}")


def _augment(data_config) -> AugmentConfig:
    """The paper's whole-image augmentation, from the config's ranges (no colour scaling, as the official)."""
    return AugmentConfig(
        rotation_degrees=data_config.rotation_degrees,
        rotation_probability=data_config.rotation_probability,
        scale_range=(data_config.scale_min, data_config.scale_max),
        flip_probability=data_config.flip_probability,
        color_scale_range=(1.0, 1.0),
        center_jitter=0.2,
        jpeg_downscale=data_config.jpeg_downscale,
    )


def multi_person_loss(config, model) -> AssociativeEmbeddingLoss:
    """The AE loss of ``model`` under ``config``: push and pull weighted ``train.tag_loss_weight`` x peak**2.

    Targets of peak p make the detection loss p**2 times the one on peak-1
    targets; the tag losses get the same factor, so ``train.tag_loss_weight``
    means what the official 1e-3 means at any ``data.target_peak``.
    """
    tag_weight = config.train.get("tag_loss_weight", PUSH_WEIGHT) * config.data.target_peak**2
    return AssociativeEmbeddingLoss(
        model.num_keypoints,
        tag_dim=model.tag_dim,
        num_stacks=model.num_stacks,
        push_weight=tag_weight,
        pull_weight=tag_weight,
    )


def train_and_evaluate_people(config, workdir, strategy) -> dict:
    """``trainer.train_and_evaluate`` for a multi-person model (see the module docstring)."""
    spec = keypoint_specs.COCO

    def make_loss(model):
        return multi_person_loss(config, model)

    # The model first: a wrong model.init_from fails before scenes are drawn or files written.
    model, epoch_variable, manager = run_setup.build_model(
        config, strategy, spec, os.path.join(workdir, "checkpoints"), make_loss=make_loss
    )
    if model.num_stacks < 2:
        source = (
            f"model.init_from={config.model.init_from!r}" if config.model.get("init_from") else "the model"
        )
        raise ValueError(
            "A multi-person model trains here with 2 or more stacks (one dict of targets per stack output); "
            f"{source} has num_stacks={model.num_stacks}."
        )
    train_source, val_data, test_data = load_people_data(config, workdir)
    # The targets' peak (data.target_peak) is saved with the model, so decoding divides by it.
    model.pose_info = info_for(model, spec, sigma=config.data.sigma, peak=config.data.target_peak)
    codec = codec_for_model(model)
    initial_epoch = int(epoch_variable.numpy())
    seed = config.train.seed + 1_000_003 * initial_epoch
    num_stacks = model.num_stacks
    skipped_examples = SkippedExamples()  # what the pipeline skips while reading, printed every epoch
    train_ds = make_multi_person_dataset(
        train_source,
        spec,
        batch_size=config.train.batch_size,
        training=True,
        input_size=codec.input_size,
        heatmap_size=codec.heatmap_size,
        augment=_augment(config.data),
        seed=seed,
        shuffle_buffer=config.data.shuffle_buffer,
        sigma=codec.sigma,
        peak=codec.peak,
        budget=image_budget(config.data),
        skipped=skipped_examples,
    ).map(lambda images, targets: (images, (targets,) * num_stacks))

    state = RunState()
    drop_metrics_rows_from(os.path.join(workdir, "metrics.csv"), initial_epoch)
    write_config(workdir, config)
    validation = PeopleValidation(val_data, config.eval.flip_test, config.data.num_val or None, state)
    skipped = train_source.skipped_images if isinstance(train_source, MultiPersonSource) else (0, 0)
    callbacks = run_callbacks(
        config, workdir, validation, manager, epoch_variable, state, VAL_METRIC, skipped, skipped_examples
    )
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
    state.raise_if_failed()

    model_path = os.path.join(workdir, MODEL_FILE)
    atomic_files.save(model.save, model_path, suffix=".keras")
    final_data = test_data or val_data
    network, _ = multi_person_network(model)
    stats = score_people(network, codec, final_data, config.eval.flip_test, progress=True)
    results = {
        "metric": "AP",
        "score": round(100.0 * max(stats["AP"], 0.0), 2),
        "coco_keypoints": {name: round(float(value), 4) for name, value in stats.items()},
        "num_images": len(final_data.images),
        "evaluated_on": "test" if test_data is not None else "val",
        "train_seconds_this_run": round(train_seconds, 1),
        "epochs_completed": int(epoch_variable.numpy()),
    }
    write_json(os.path.join(workdir, "results.json"), results)
    print(
        f"AP = {results['score']:.1f}  (COCO keypoint AP, OKS, on {results['num_images']} held-out images, "
        f"flip test {'on' if config.eval.flip_test else 'off'}; model: {model_path})"
    )
    return results
