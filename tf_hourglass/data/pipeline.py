"""The tf.data input pipeline: examples -> (images, target heatmaps, joint weights).

Sources: TFRecord shards written by ``tf_hourglass.data.convert``, or records
in memory (``PoseRecord`` lists from the readers, with their image files, or
with decoded images such as synthetic figures).

Per example, all in TensorFlow ops (no Python in the per-example path): decode
(for JPEG only the window the warp reads), build one affine matrix (crop around
centre/scale, random rotation, scale and mirror), warp the image with its
inverse (bilinear gathers compiled by XLA, ``transforms.warp_image_xla``, which
also maps pixels to [0, 1] and scales each colour channel in the same pass),
move the keypoints with it and swap left/right joints when mirrored. Per batch: the
``HeatmapCodec`` turns keypoints into Gaussian targets and joint weights, and
for Convolutional Pose Machines the person centre, moved like the keypoints,
into the Gaussian centre map the model takes beside the image.

Randomness is stateless, seeded by (seed, position in the stream), so a seeded
pipeline gives the same batches every time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_hourglass.data import images, tfrecord, transforms
from tf_hourglass.data.center_map import gaussian_center_maps
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.data.records import PIXELS_PER_SCALE, KeypointSpec, PoseRecord
from tf_hourglass.data.tfrecord import parse_example

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation; the defaults are the paper's (plus colour scaling
    as in the original code).

    Attributes:
        rotation_degrees: rotation drawn uniformly from [-r, r].
        rotation_probability: chance that an example is rotated at all.
        scale_range: crop side multiplied by a factor drawn from this range.
        flip_probability: chance of a left-right mirror (joints swapped).
        color_scale_range: each RGB channel multiplied by a factor from this
            range, then clipped to [0, 1].
        center_jitter: crop centre moved by up to this fraction of the crop
            side along x and y (0 = as annotated).
        jpeg_downscale: decode a JPEG window at 1/2 or 1/4 of its size
            (libjpeg's DCT scaling) when the warp shrinks it at least that
            much: the same crop, antialiased, in about 70% of the decode time
            for a person who fills a 720p photo. Evaluation always decodes at
            full size, as the exported signatures do.
    """

    rotation_degrees: float = 30.0
    rotation_probability: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.25)
    flip_probability: float = 0.5
    color_scale_range: tuple[float, float] = (0.8, 1.2)
    center_jitter: float = 0.0
    jpeg_downscale: bool = True


def check_same_keypoint_count(counts) -> int:
    """The one keypoint count of a source's records; a ValueError listing them when they differ."""
    counts = set(counts)
    if len(counts) != 1:
        raise ValueError(f"All records must have the same number of keypoints; received {sorted(counts)}.")
    return counts.pop()


def check_record_images(images, num_records: int):
    """``images`` as a uint8 (N, H, W, 3) array with one image per record, or None."""
    if images is None:
        return None
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != num_records:
        raise ValueError(
            "images must be a uint8 array (N, H, W, 3) with one image per record; received "
            f"dtype={images.dtype}, shape={images.shape} for {num_records} records."
        )
    return images


def readable_records(
    records: Sequence, budget: images.ImageBudget, what: str
) -> tuple[list, tuple[int, int]]:
    """(the records whose image file can be used, (image files that cannot, of how many)), checked once.

    Each distinct ``image_path`` is checked when a source is opened
    (``images.check_image_files``: a regular file, within ``budget``, with an
    image header, and one decoded), so the per-example path of the pipeline
    stays as it was. Records of the others are dropped with one warning line
    naming the first few; ``what`` names the data in messages.

    Raises:
        ValueError: no image file can be used (one line naming the first few).
    """
    from absl import logging

    check = images.check_image_files([r.image_path for r in records], budget)
    if not check.readable:
        raise ValueError(
            f"{what}: none of its {check.num_files} image file(s) can be read: {check.examples()}"
        )
    if check.unreadable:
        logging.warning(check.summary(what))
    kept = [r for r in records if r.image_path not in check.unreadable]
    return kept, (len(check.unreadable), check.num_files)


def check_tfrecord_images(
    files: Sequence[str],
    image_key: str,
    what: str,
    budget: images.ImageBudget = images.DEFAULT_BUDGET,
    count: int = 3,
) -> None:
    """Refuses TFRecord shards none of whose images TensorFlow decodes within ``budget`` (read until one does).

    In sound shards that is the first example; the pipeline then skips (and
    counts) any other example over the budget or whose image does not decode.
    An image over the budget is never decoded here either.

    Raises:
        ValueError: no example's image decodes (one line naming the first few).
    """
    failed = []
    feature = {image_key: tf.io.FixedLenFeature([], tf.string, default_value="")}
    for serialized in tf.data.TFRecordDataset(list(files)):
        try:
            encoded = tf.io.parse_single_example(serialized, feature)[image_key]
        except tf.errors.InvalidArgumentError:
            encoded = b""
        try:
            within = bool(images.within_budget_tf(encoded, budget))
        except tf.errors.InvalidArgumentError:  # a damaged JPEG header
            within = False
        if within and images.decodes_in_tensorflow(encoded):
            return
        failed.append(len(failed))
    raise ValueError(
        f"{what}: none of the {len(failed)} example(s) in {', '.join(files[:count])} has an image that "
        f"decodes within the image size limit (examples {failed[:count]} of the first shard on)."
    )


class InMemorySource:
    """Records held in memory, with their images as files or as arrays.

    Args:
        records: the people, one ``PoseRecord`` each.
        images: optional uint8 array (N, H, W, 3) of decoded images, one per
            record (e.g. synthetic figures); when None, each record's
            ``image_path`` is read and decoded in the pipeline.
    """

    def __init__(self, records: Sequence[PoseRecord], images: np.ndarray | None = None):
        if not records:
            raise ValueError("InMemorySource needs at least one record; received an empty list.")
        self.records = list(records)
        check_same_keypoint_count(r.num_keypoints for r in self.records)
        self.images = check_record_images(images, len(self.records))

    def __len__(self):
        return len(self.records)

    def tensors(self) -> dict:
        records = self.records
        tensors = {
            "image/crop_offset": np.zeros((len(records), 2), np.float32),
            "center": np.stack([r.center for r in records]),
            "scale": np.array([r.scale for r in records], np.float32),
            "keypoints": np.stack([r.keypoints for r in records]),
            "has_gt": np.stack([r.has_gt for r in records]),
            "visible": np.stack([r.visible for r in records]),
            "normalizer": np.array([r.normalizer for r in records], np.float32),
            "record_id": np.array([r.record_id for r in records], np.int64),
        }
        if self.images is not None:
            tensors["image_index"] = np.arange(len(records), dtype=np.int64)
        else:
            tensors["image/path"] = np.array([r.image_path for r in records])
        return tensors


def records_and_loader(source, num_keypoints: int | None = None):
    """A dataset of light records to shard, filter and shuffle, and the map that completes each.

    In memory, the records carry an image index (or path) and the loader looks
    the image up (or reads the file) after shuffling, so the shuffle buffer
    never holds images. TFRecords are parsed first (their crops are small).
    """
    if isinstance(source, InMemorySource):
        records = tf.data.Dataset.from_tensor_slices(source.tensors())
        if source.images is None:
            return records, _read_image_file
        images = tf.constant(source.images)

        def attach_image(example):
            example = dict(example)
            example["image"] = tf.gather(images, example.pop("image_index"))
            return example

        return records, attach_image
    records = tf.data.TFRecordDataset(tfrecord.matching_files(source), num_parallel_reads=AUTOTUNE)
    records = records.map(lambda s: parse_example(s, num_keypoints), num_parallel_calls=AUTOTUNE)
    return records, lambda example: example


def _read_image_file(example):
    example = dict(example)
    example["image/encoded"] = tf.io.read_file(example.pop("image/path"))
    return example


def _sanitize(example):
    """Joints with non-finite coordinates have no ground truth; their coordinates become 0."""
    example = dict(example)
    keypoints = tf.cast(example["keypoints"], tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(keypoints), axis=-1)
    example["has_gt"] = tf.cast(example["has_gt"], tf.bool) & finite
    example["keypoints"] = tf.where(example["has_gt"][:, None], keypoints, 0.0)
    example["visible"] = tf.cast(example["visible"], tf.bool) & example["has_gt"]
    return example


def _has_valid_crop(example):
    scale = example["scale"]
    return tf.math.is_finite(scale) & (scale > 0) & tf.reduce_all(tf.math.is_finite(example["center"]))


def random_transform(example, augment, seed, index, input_size):
    """Forward matrix (original pixels -> input pixels) and whether it mirrors."""
    center = example["center"]
    scale = example["scale"]
    if augment is None:
        return transforms.crop_matrix(center, scale, input_size), tf.constant(False)
    u = tf.random.stateless_uniform([6], seed=tf.stack([tf.cast(seed, tf.int64), index]))
    low, high = augment.scale_range
    scale = scale * (low + (high - low) * u[0])
    rotation = augment.rotation_degrees * (2.0 * u[1] - 1.0)
    rotation = tf.where(u[2] < augment.rotation_probability, rotation, 0.0)
    flip = u[3] < augment.flip_probability
    jitter = augment.center_jitter * (2.0 * u[4:6] - 1.0) * scale * PIXELS_PER_SCALE
    return transforms.crop_matrix(center + jitter, scale, input_size, rotation, flip), flip


def decode_for_warp(example, matrix, input_size, jpeg_downscale=False):
    """Decoded image and the matrix from ITS pixels to input pixels.

    A stored crop starts at ``crop_offset`` of the original; for JPEG bytes only
    the window the warp reads is decoded (much cheaper for large photos), and
    with ``jpeg_downscale`` at the coarsest of 1/1, 1/2, 1/4 that the warp
    still shrinks.
    """
    offset = example["image/crop_offset"]
    matrix = tf.matmul(matrix, transforms.translation_matrix(offset[0], offset[1]))
    if "image" in example:
        return example["image"], matrix
    encoded = example["image/encoded"]

    def decode_jpeg_window(ratio):
        shape = tf.io.extract_jpeg_shape(encoded)
        # libjpeg's 1/r decode averages r x r blocks: scaled pixel i covers
        # source pixels r*i .. r*i + r - 1 and its centre is r*i + (r - 1) / 2.
        half = (ratio - 1) / 2.0
        scaled = tf.matmul(matrix, transforms.translation_matrix(half, half))
        scaled = tf.matmul(scaled, tf.linalg.diag(tf.constant([ratio, ratio, 1.0])))
        height, width = (shape[0] + ratio - 1) // ratio, (shape[1] + ratio - 1) // ratio
        y0, x0, h, w = transforms.source_window(scaled, input_size, height, width)
        image = tf.io.decode_and_crop_jpeg(encoded, tf.stack([y0, x0, h, w]), channels=3, ratio=ratio)
        return image, tf.matmul(scaled, transforms.translation_matrix(x0, y0))

    def decode_jpeg():
        if not jpeg_downscale:
            return decode_jpeg_window(1)
        # Source pixels per output pixel along each axis (the warp's inverse scale).
        shrink = tf.sqrt(tf.abs(tf.linalg.det(transforms.invert_affine(matrix)[:2, :2])))
        branch = tf.cast(shrink >= 2.0, tf.int32) + tf.cast(shrink >= 4.0, tf.int32)
        return tf.switch_case(branch, [lambda r=r: decode_jpeg_window(r) for r in (1, 2, 4)])

    def decode_any():
        return images.decode_image(encoded), matrix

    image, matrix = tf.cond(tf.io.is_jpeg(encoded), decode_jpeg, decode_any)
    image.set_shape([None, None, 3])
    return image, matrix


class SkippedExamples:
    """How many examples a training pipeline dropped while reading, by why: host variables it updates.

    ``over_budget``: encoded images (TFRecords) over the ``ImageBudget``,
    dropped before decoding; ``undecodable``: examples whose image failed to
    decode (a damaged header or body), dropped by ``ignore_errors``. The
    pipeline counts as it reads, a few batches ahead of training. Make it
    outside any ``tf.distribute`` strategy scope: the variables live on this
    host's CPU, and each input pipeline of the host adds to them.
    """

    def __init__(self):
        with tf.device("/cpu:0"):
            self.over_budget = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_over_budget")
            self.undecodable = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_undecodable")

    def counts(self) -> tuple[int, int]:
        """(undecodable, over the budget) so far."""
        return int(self.undecodable.numpy()), int(self.over_budget.numpy())


def decode_examples(dataset, prepare, budget: images.ImageBudget, skipped: SkippedExamples | None):
    """``prepare(index, example)`` over ``dataset``, skipping examples over ``budget`` or that fail, counted.

    Examples with encoded bytes (TFRecords) whose length or header size is
    over ``budget`` are filtered out before anything decodes them
    (``images.within_budget_tf``); file sources were checked when opened. An
    example whose decode fails (``ignore_errors``) leaves a gap in the
    indices of the ordered map's output; a sequential scan after it adds the
    gaps to ``skipped.undecodable``. The per-example decode and warp keep
    their parallel map. (On a dataset that does not repeat, examples that fail
    after the last good one leave no gap and are not counted; training repeats.)
    """
    if "image/encoded" in dataset.element_spec:

        def within_budget(example):
            within = images.within_budget_tf(example["image/encoded"], budget)
            if "mask/encoded" in example:  # a multi-person loss mask: a PNG too, when there is one
                within &= images.within_budget_tf(example["mask/encoded"], budget)
            if skipped is not None:
                skipped.over_budget.assign_add(tf.cast(tf.logical_not(within), tf.int64))
            return within

        dataset = dataset.filter(within_budget)
    if skipped is None:
        dataset = dataset.enumerate().map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
        # A corrupt image fails its decode; skip that example instead of stopping.
        return dataset.ignore_errors(log_warning=True)
    dataset = dataset.enumerate().map(
        lambda index, example: (index, prepare(index, example)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.ignore_errors(log_warning=True)

    def count_gaps(last_index, indexed):
        index, example = indexed
        skipped.undecodable.assign_add(index - last_index - 1)
        return index, example

    return dataset.scan(tf.constant(-1, tf.int64), count_gaps)


def _make_example_fn(load, augment, seed, input_size, flip_permutation):
    def prepare(index, example):
        example = _sanitize(load(example))
        matrix, flip = random_transform(example, augment, seed, index, input_size)
        jpeg_downscale = augment is not None and augment.jpeg_downscale
        image, image_matrix = decode_for_warp(example, matrix, input_size, jpeg_downscale)
        keypoints = transforms.apply_affine(matrix, example["keypoints"])
        has_gt = example["has_gt"]
        channel_scale = tf.fill([3], 1.0 / 255.0)
        if augment is not None:
            # After a mirror the person's left joints appear where the right were.
            keypoints = tf.where(flip, tf.gather(keypoints, flip_permutation), keypoints)
            has_gt = tf.where(flip, tf.gather(has_gt, flip_permutation), has_gt)
            low, high = augment.color_scale_range
            u = tf.random.stateless_uniform([3], seed=tf.stack([tf.cast(seed, tf.int64) + 1, index]))
            channel_scale = channel_scale * (low + (high - low) * u)
        # Pixels to [0, 1] and colour scaling inside the warp's compiled loop.
        image = transforms.warp_image_xla(
            image, image_matrix, input_size, channel_scale=channel_scale, clip_range=(0.0, 1.0)
        )
        out = {
            "images": tf.ensure_shape(image, [*input_size, 3]),
            "input_keypoints": keypoints,
            "input_has_gt": has_gt,
            "input_center": transforms.apply_affine(matrix, example["center"][None])[0],
        }
        if augment is None:
            # Everything evaluation needs to map predictions back and score them.
            out.update(
                matrix=matrix,
                keypoints=example["keypoints"],
                has_gt=example["has_gt"],
                visible=example["visible"],
                normalizer=example["normalizer"],
                center=example["center"],
                scale=example["scale"],
                record_id=example["record_id"],
            )
        return out

    return prepare


def make_dataset(
    source,
    spec: KeypointSpec,
    codec: HeatmapCodec,
    *,
    batch_size: int,
    training: bool,
    augment: AugmentConfig | None = AugmentConfig(),
    seed: int = 0,
    shuffle_buffer: int = 2048,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    input_context: tf.distribute.InputContext | None = None,
    with_metadata: bool = False,
    center_map_sigma: float | None = None,
    budget: images.ImageBudget = images.DEFAULT_BUDGET,
    skipped: SkippedExamples | None = None,
) -> tf.data.Dataset:
    """Batches for training or evaluation.

    Args:
        source: TFRecord file pattern(s) or an ``InMemorySource``.
        spec: the dataset's keypoints (for the left/right swap on mirroring).
        codec: input/heatmap sizes and the Gaussian targets.
        batch_size: examples per batch (per input pipeline when distributed).
        training: shuffle, repeat and augment; otherwise one pass in order,
            no augmentation.
        augment: augmentation when training (None: plain crops).
        seed: makes shuffling and augmentation reproducible.
        repeat, drop_remainder: default to ``training``.
        input_context: from ``strategy.distribute_datasets_from_function``;
            each input pipeline reads its own shard.
        with_metadata: yield dicts with everything evaluation needs (the
            original keypoints, normaliser, the crop matrix, ...) instead of
            ``(images, heatmaps, weights)`` tuples.
        center_map_sigma: for models that take a centre map (CPM: its
            ``center_map_sigma``), the Gaussian's sigma in input pixels; the
            model inputs become ``{"images", "center_map"}``.
        budget: TFRecord images over it are skipped before decoding.
        skipped: counts the examples skipped (``decode_examples``).

    Yields:
        ``(images (B, H, W, 3) float32 in [0, 1], heatmaps (B, Hh, Wh, K),
        weights (B, K))``, ready for ``model.fit(dataset)`` with
        ``HeatmapLoss`` (weights act as ``sample_weight``); or dicts with
        keys ``images``, ``heatmaps``, ``weights``, ``input_keypoints`` and,
        without augmentation, ``matrix``, ``keypoints``, ``has_gt``,
        ``visible``, ``normalizer``, ``center``, ``scale``, ``record_id``.
        With ``center_map_sigma`` the first element is the dict
        ``{"images": ..., "center_map": (B, H, W, 1)}`` (and dicts get a
        ``center_map`` key).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received batch_size={batch_size}")
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    augment = augment if training else None

    dataset, load = records_and_loader(source, spec.num_keypoints)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = dataset.filter(_has_valid_crop)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    prepare = _make_example_fn(
        load, augment, seed, codec.input_size, tf.constant(spec.flip_permutation(), tf.int32)
    )
    dataset = decode_examples(dataset, prepare, budget, skipped)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)

    def add_targets(batch):
        heatmaps, weights = codec.encode(batch["input_keypoints"], batch["input_has_gt"])
        inputs = batch["images"]
        extra = {}
        if center_map_sigma is not None:
            extra["center_map"] = gaussian_center_maps(
                batch["input_center"], codec.input_size, center_map_sigma
            )
            inputs = {"images": inputs, **extra}
        if with_metadata:
            return {**batch, **extra, "heatmaps": heatmaps, "weights": weights}
        return inputs, heatmaps, weights

    dataset = dataset.map(add_targets, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
