"""The bottom-up (Associative Embedding) input pipeline: whole images with all their people.

Sources: a ``MultiPersonSource`` in memory (``read_coco_images`` /
``read_custom_images`` records with their image files, or synthetic scenes with
their pixels), or whole-image TFRecords (``convert --multi-person``).

Per example, in TensorFlow ops: one affine matrix maps the whole image into
the square network input (``transforms.crop_matrix`` around the image centre,
crop side = the image's longer side, so the image is resized and padded to the
input square), with the paper's augmentation when training
(``MULTI_PERSON_AUGMENT``: rotation +-30 degrees, scale 0.75-1.25, translation
up to 0.2 of the crop side, as the official code's +-40 x scale pixels, and a
mirror with left/right joints swapped), drawn and applied by the same
functions as the single-person pipeline (``pipeline.random_transform``,
``pipeline.decode_for_warp``, ``transforms.warp_image_xla``).

Coordinates. Keypoints and matrices use pixel centres at integers (records.py).
Input pixel ``u`` lies in heatmap cell ``(u + 0.5) / stride`` under the targets'
convention (heatmap pixel ``i`` covers ``[i, i + 1)``, multi_person_targets.py),
so keypoints reach the targets as ``(matrix @ x + 0.5) / stride``, through
``AssociativeEmbeddingCodec.encode`` (input pixels ``matrix @ x + 0.5``). The loss
mask is warped to the heatmap with the same matrix followed by input -> heatmap
pixel centres, ``h = (u + 0.5) / stride - 0.5``; outside the image it is 0, as
in the official code (``cv2.warpAffine``'s zero border), then thresholded at 0.5.

Batches: ``(images (B, S, S, 3) float32 in [0, 1], {"heatmaps" (B, h, w, K),
"mask" (B, h, w), "keypoint_refs" (B, max_people, K, 2)})``, the targets of
``AssociativeEmbeddingLoss``. Evaluation (``training=False``) does not augment
and, with ``with_metadata``, yields dicts that also carry each image's
``matrix`` (image -> input pixels; invert it to map predictions back), its
``image_id`` and its original ``keypoints``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import tensorflow as tf

from tf_hourglass.data import images, tfrecord, transforms
from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.data.multi_person_targets import (
    MAX_PEOPLE,
    coco_loss_mask,
)
from tf_hourglass.data.pipeline import (
    AugmentConfig,
    SkippedExamples,
    check_record_images,
    check_same_keypoint_count,
    decode_examples,
    decode_for_warp,
    random_transform,
)
from tf_hourglass.data.records import PIXELS_PER_SCALE, KeypointSpec, MultiPersonRecord

AUTOTUNE = tf.data.AUTOTUNE

# The paper's augmentation of whole images (official data/coco_pose/dp.py): no colour scaling.
MULTI_PERSON_AUGMENT = AugmentConfig(
    rotation_degrees=30.0,
    scale_range=(0.75, 1.25),
    flip_probability=0.5,
    color_scale_range=(1.0, 1.0),
    center_jitter=0.2,
)


def encode_loss_mask(mask: np.ndarray | None) -> bytes:
    """PNG of a (H, W) loss mask (255 = keep, 0 = ignore); b"" when nothing is ignored."""
    if mask is None or np.all(mask > 0.5):
        return b""
    ok, png = cv2.imencode(".png", np.where(mask > 0.5, 255, 0).astype(np.uint8))
    if not ok:
        raise ValueError("Could not encode a loss mask as PNG.")
    return png.tobytes()


def record_loss_mask(record: MultiPersonRecord) -> np.ndarray | None:
    """The (H, W) loss mask of a record's ignored segments, or None when it has none."""
    if not record.ignore_segmentations:
        return None
    if record.image_size is None:
        raise ValueError(f"{record.image_path!r} has ignored segments but no image_size to draw them at.")
    segments = [{"segmentation": s, "iscrowd": 1} for s in record.ignore_segmentations]
    return coco_loss_mask(segments, record.image_size)


class MultiPersonSource:
    """Whole images with all their people, in memory.

    Args:
        records: one ``MultiPersonRecord`` per image; all with the same K.
        images: optional uint8 (N, H, W, 3) pixels, one per record (synthetic
            scenes); when None each record's ``image_path`` is read in the pipeline.
        loss_masks: optional (H, W) loss masks (1 keep, 0 ignore), one per
            record or None; when omitted they come from each record's
            ``ignore_segmentations`` (``coco_loss_mask``, needs pycocotools
            when there are any).

    Masks are kept as PNG bytes (an image without ignored regions stores none),
    so a source of many photos stays small.
    """

    def __init__(
        self,
        records: Sequence[MultiPersonRecord],
        images: np.ndarray | None = None,
        loss_masks: Sequence[np.ndarray | None] | None = None,
    ):
        if not records:
            raise ValueError("MultiPersonSource needs at least one record; received an empty list.")
        self.records = list(records)
        self.num_keypoints = check_same_keypoint_count(r.keypoints.shape[1] for r in self.records)
        self.images = check_record_images(images, len(self.records))
        if loss_masks is None:
            loss_masks = [record_loss_mask(r) for r in self.records]
        if len(loss_masks) != len(records):
            raise ValueError(
                f"loss_masks must have one entry per record; received {len(loss_masks)} for {len(records)}."
            )
        for record, mask in zip(self.records, loss_masks, strict=True):
            if (
                mask is not None
                and record.image_size is not None
                and tuple(np.shape(mask)) != record.image_size
            ):
                raise ValueError(
                    f"The loss mask of {record.image_path!r} has shape {np.shape(mask)}; "
                    f"the image is {record.image_size}."
                )
        self.encoded_masks = [encode_loss_mask(mask) for mask in loss_masks]
        # (image files dropped before this source was made, of how many): pipeline.readable_records's count.
        self.skipped_images = (0, 0)

    @classmethod
    def from_scenes(cls, scenes, num_images: int, start: int = 0) -> MultiPersonSource:
        """Scenes ``start .. start + num_images - 1`` of a ``SyntheticScenes``, rendered now."""
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1; received {num_images!r}.")
        records, images, masks = [], [], []
        for index in range(start, start + num_images):
            scene = scenes.render(index)
            records.append(
                MultiPersonRecord(
                    image_path=f"synthetic_scene:seed={scenes.seed}:index={index}",
                    image_size=scenes.image_size,
                    keypoints=scene.keypoints,
                    areas=scene.areas,
                    image_id=index,
                )
            )
            images.append(scene.image)
            masks.append(np.where(scene.ignore_mask, 0.0, 1.0) if scene.ignore_mask.any() else None)
        return cls(records, np.stack(images), masks)

    def __len__(self):
        return len(self.records)

    def tensors(self) -> dict:
        """Per-image tensors; keypoints padded to the most people of any image with v = 0 rows."""
        most = max(1, max(r.num_people for r in self.records))
        keypoints = np.zeros((len(self.records), most, self.num_keypoints, 3), np.float32)
        for i, record in enumerate(self.records):
            keypoints[i, : record.num_people] = record.keypoints
        tensors = {
            "keypoints": keypoints,
            "image_id": np.array([r.image_id for r in self.records], np.int64),
            "mask/encoded": np.array(self.encoded_masks, dtype=object),
        }
        if self.images is not None:
            tensors["image_index"] = np.arange(len(self.records), dtype=np.int64)
        else:
            tensors["image/path"] = np.array([r.image_path for r in self.records])
        return tensors


def _heatmap_matrix(matrix, stride):
    """Image -> heatmap pixel centres: input pixel u is heatmap pixel (u + 0.5) / stride - 0.5."""
    shift = 0.5 / stride - 0.5
    to_heatmap = tf.constant([[1.0 / stride, 0.0, shift], [0.0, 1.0 / stride, shift], [0.0, 0.0, 1.0]])
    return tf.matmul(to_heatmap, matrix)


def _image_size(example):
    """(height, width) int32 of the example's image, from its pixels or its header (``images.header_size_tf``)."""
    if "image" in example:
        return tf.shape(example["image"])[:2]
    encoded = example["image/encoded"]
    size = tf.cast(images.header_size_tf(encoded), tf.int32)
    # A format whose header is not parsed (JPEG XL) is decoded for its size, as before.
    return tf.cond(size[0] >= 0, lambda: size, lambda: tf.shape(images.decode_image(encoded))[:2])


def _people_rows(keypoints, rows):
    """(rows, K, 3): the first ``rows`` people, padded with unlabelled ones, so batches stack."""
    keypoints = keypoints[:rows]
    return tf.pad(keypoints, [[0, rows - tf.shape(keypoints)[0]], [0, 0], [0, 0]])


def _make_example_fn(
    load, augment, seed, input_size, heatmap_size, flip_permutation, sigma, peak, max_people
):
    stride = input_size[0] / heatmap_size[0]
    # The one home of the targets' conventions (the codec decoding the model's outputs encodes them too).
    codec = AssociativeEmbeddingCodec(
        input_size=input_size,
        heatmap_size=heatmap_size,
        num_keypoints=len(flip_permutation),
        sigma=sigma,
        peak=peak,
        max_people=max_people,
    )

    def prepare(index, example):
        example = load(example)
        size = _image_size(example)
        height, width = tf.unstack(tf.cast(size, tf.float32))
        # The whole image: its centre and its longer side as the crop (records.py: side = 200 * scale).
        frame = {
            "center": tf.stack([(width - 1.0) / 2.0, (height - 1.0) / 2.0]),
            "scale": tf.maximum(height, width) / PIXELS_PER_SCALE,
        }
        matrix, flip = random_transform(frame, augment, seed, index, input_size)
        example["image/crop_offset"] = tf.zeros([2])
        jpeg_downscale = augment is not None and augment.jpeg_downscale
        image, image_matrix = decode_for_warp(example, matrix, input_size, jpeg_downscale)
        image = transforms.warp_image_xla(
            image, image_matrix, input_size, channel_scale=1.0 / 255.0, clip_range=(0.0, 1.0)
        )

        keypoints = tf.cast(example["keypoints"], tf.float32)
        moved = transforms.apply_affine(matrix, keypoints[..., :2])
        # Input pixels with pixel i covering [i, i + 1), the codec's (and the official code's) frame.
        input_keypoints = tf.concat([moved + 0.5, keypoints[..., 2:]], axis=-1)
        # After a mirror each person's left joints appear where the right were.
        input_keypoints = tf.where(
            flip, tf.gather(input_keypoints, flip_permutation, axis=1), input_keypoints
        )
        targets = codec.encode(input_keypoints)
        keypoints = input_keypoints * tf.constant([1.0 / stride, 1.0 / stride, 1.0])

        encoded_mask = example["mask/encoded"]
        mask = tf.cond(
            tf.strings.length(encoded_mask) > 0,
            lambda: tf.io.decode_png(encoded_mask, channels=1),
            lambda: tf.fill(tf.concat([size, [1]], 0), tf.constant(255, tf.uint8)),
        )
        mask = transforms.warp_image_xla(
            mask, _heatmap_matrix(matrix, stride), heatmap_size, channel_scale=1.0 / 255.0
        )
        out = {
            "images": tf.ensure_shape(image, [*input_size, 3]),
            # All people are drawn; the references keep the first max_people, as the official code.
            "heatmaps": targets["heatmaps"],
            "mask": tf.cast(mask[..., 0] > 0.5, tf.float32),
            "keypoint_refs": targets["keypoint_refs"],
            "heatmap_keypoints": _people_rows(keypoints, max_people),
        }
        if augment is None:
            out.update(
                matrix=matrix,
                image_id=example["image_id"],
                keypoints=_people_rows(tf.cast(example["keypoints"], tf.float32), max_people),
            )
        return out

    return prepare


def _records_and_loader(source, num_keypoints):
    """Light per-image records to shuffle, and the map that attaches each image after shuffling."""
    if isinstance(source, MultiPersonSource):
        dataset = tf.data.Dataset.from_tensor_slices(source.tensors())
        if source.images is None:

            def read_file(example):
                example = dict(example)
                example["image/encoded"] = tf.io.read_file(example.pop("image/path"))
                return example

            return dataset, read_file
        images = tf.constant(source.images)

        def attach_image(example):
            example = dict(example)
            example["image"] = tf.gather(images, example.pop("image_index"))
            return example

        return dataset, attach_image
    files = tfrecord.matching_files(source)

    def parse(serialized):
        example = tfrecord.parse_image_example(serialized, num_keypoints)
        return {
            "image/encoded": example["image/encoded"],
            "keypoints": example["keypoints"],
            "image_id": example["image/id"],
            "mask/encoded": example["mask/encoded"],
        }

    dataset = tf.data.TFRecordDataset(files, num_parallel_reads=AUTOTUNE)
    return dataset.map(parse, num_parallel_calls=AUTOTUNE), lambda example: example


def make_multi_person_dataset(
    source: MultiPersonSource | str | Sequence[str],
    spec: KeypointSpec,
    *,
    batch_size: int,
    training: bool,
    input_size: tuple[int, int] = (256, 256),
    heatmap_size: tuple[int, int] = (64, 64),
    augment: AugmentConfig | None = MULTI_PERSON_AUGMENT,
    seed: int = 0,
    shuffle_buffer: int = 512,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    sigma: float | None = None,
    peak: float = 1.0,
    max_people: int = MAX_PEOPLE,
    with_metadata: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    budget: images.ImageBudget = images.DEFAULT_BUDGET,
    skipped: SkippedExamples | None = None,
) -> tf.data.Dataset:
    """Batches of whole images and their Associative Embedding targets.

    Args:
        source: a ``MultiPersonSource`` (COCO whole-image records or synthetic
            scenes), or whole-image TFRecord file pattern(s) written by
            ``convert --multi_person``.
        spec: the keypoints (its flip permutation swaps left and right on mirroring).
        batch_size: images per batch.
        training: shuffle, repeat and augment; otherwise one pass in order, no augmentation.
        input_size, heatmap_size: (height, width) of the network input and of
            its heatmaps; both sides share one integer stride.
        augment: augmentation when training (None: whole images resized and padded).
        seed: makes shuffling and augmentation reproducible.
        repeat, drop_remainder: default to ``training``.
        sigma: Gaussian sigma in heatmap pixels (default: the official heatmap side / 64).
        peak: the heatmap targets' value at a joint (1: the official).
        max_people: rows of ``keypoint_refs``.
        input_context: from ``strategy.distribute_datasets_from_function``;
            each input pipeline reads its own shard.
        budget: TFRecord images (and loss masks) over it are skipped before decoding.
        skipped: counts the images skipped (``pipeline.decode_examples``).
        with_metadata: yield dicts (``images``, ``heatmaps``, ``mask``,
            ``keypoint_refs``, ``heatmap_keypoints`` and, without augmentation,
            ``matrix``, ``image_id``, ``keypoints``; people arrays have
            ``max_people`` rows) instead of pairs.

    Yields:
        ``(images, {"heatmaps", "mask", "keypoint_refs"})``; feed a model of
        ``num_stacks`` stacks with ``dataset.map(lambda x, t: (x, (t,) * num_stacks))``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received batch_size={batch_size}")
    input_size = tuple(int(v) for v in input_size)
    heatmap_size = tuple(int(v) for v in heatmap_size)
    strides = {i / h for i, h in zip(input_size, heatmap_size, strict=True)}
    if len(strides) != 1 or not next(iter(strides)).is_integer():
        raise ValueError(
            "input_size must be the heatmap_size times one integer stride; received "
            f"input_size={input_size}, heatmap_size={heatmap_size}."
        )
    if isinstance(source, MultiPersonSource) and spec.num_keypoints != source.num_keypoints:
        raise ValueError(
            f"The spec {spec.name!r} has {spec.num_keypoints} keypoints; the source has {source.num_keypoints}."
        )
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    augment = augment if training else None

    dataset, load = _records_and_loader(source, spec.num_keypoints)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    prepare = _make_example_fn(
        load,
        augment,
        seed,
        input_size,
        heatmap_size,
        tf.constant(spec.flip_permutation(), tf.int32),
        sigma,
        peak,
        max_people,
    )
    # Images over the budget are skipped undecoded, and failed decodes skipped; both counted in ``skipped``.
    dataset = decode_examples(dataset, prepare, budget, skipped)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if not with_metadata:
        dataset = dataset.map(
            lambda b: (b["images"], {k: b[k] for k in ("heatmaps", "mask", "keypoint_refs")}),
            num_parallel_calls=AUTOTUNE,
        )
    return dataset.prefetch(AUTOTUNE)
