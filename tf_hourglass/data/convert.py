"""Converts an annotated pose dataset into sharded TFRecords.

    python -m tf_hourglass.data.convert --format mpii_h5 \\
        --annotations ../shared/data/mpii/annot/valid.h5 \\
        --images ../shared/data/mpii/images --output /tmp/mpii/valid --num-shards 4

writes ``/tmp/mpii/valid-0000i-of-00004.tfrecord`` (schema: ``tfrecord.py``)
and ``/tmp/mpii/valid.spec.json``, then prints ``written=N skipped=M`` and the
skip reasons with their counts.

By default each example stores a JPEG (quality 95) of the square of side
``200 * scale * (1 + crop_margin)`` around the person, clipped to the image;
keypoints stay in original coordinates and ``image/crop_offset`` locates the
crop. The default margin 0.75 leaves room for the original Hourglass
augmentation (scale up to 1.25, rotation up to 30 degrees: 1.25 * (cos 30 +
sin 30) = 1.71). ``--full-image`` stores the photo itself instead (its bytes
unchanged when it already is an 8-bit RGB JPEG or PNG).

``--multi-person`` (formats coco and custom) writes one example per image
with all its people and its loss mask instead (``tfrecord.serialize_image_example``),
the input of ``multi_person_pipeline.make_multi_person_dataset``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import sys

import cv2
import numpy as np
import tensorflow as tf
from absl import flags
from tqdm import tqdm

from tf_hourglass import atomic_files
from tf_hourglass.cli import fail, fail_or_raise, parse_flags
from tf_hourglass.data import images, readers, tfrecord
from tf_hourglass.data.multi_person_pipeline import encode_loss_mask, record_loss_mask
from tf_hourglass.data.records import PIXELS_PER_SCALE, MultiPersonRecord, PoseRecord

DEFAULT_CROP_MARGIN = 0.75
JPEG_QUALITY = 95

MISSING_IMAGE = "missing image"
UNDECODABLE_IMAGE = "undecodable image"
IMAGE_OVER_BUDGET = "image over the size limit"
NO_ANNOTATED_JOINT = "no annotated joint"
INVALID_BOX_OR_SCALE = "invalid box or scale"
SKIP_REASONS = (MISSING_IMAGE, UNDECODABLE_IMAGE, IMAGE_OVER_BUDGET, NO_ANNOTATED_JOINT, INVALID_BOX_OR_SCALE)

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass
class ConversionSummary:
    """What ``convert_dataset`` did.

    Attributes:
        written: number of examples written.
        skipped: count per reason in ``SKIP_REASONS`` (all reasons present).
        shard_paths: the TFRecord files (empty when nothing was written).
        spec_path: the sidecar ``PREFIX.spec.json`` (None when nothing was written).
        removed_temp_files: temporary shards of an interrupted conversion to this prefix, removed.
    """

    written: int
    skipped: dict[str, int]
    shard_paths: list[str]
    spec_path: str | None
    removed_temp_files: int = 0

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def report(self) -> str:
        """``written=N skipped=M`` then one ``reason: count`` line per reason."""
        lines = [f"written={self.written} skipped={self.num_skipped}"]
        lines += [f"{reason}: {self.skipped[reason]}" for reason in SKIP_REASONS]
        return "\n".join(lines)


class _Skip(Exception):
    """A record cannot be converted; ``args[0]`` is one of SKIP_REASONS."""


# ---------------------------------------------------------------------------
# Images.


def is_truncated_jpeg(data: bytes) -> bool:
    """Whether JPEG ``data`` is cut short (TF's decoder fails on it)."""
    # Some OpenCV builds decode a truncated JPEG partially (grey bottom rows)
    # with only a warning; TF's decoder reports it. ratio=8 keeps this cheap.
    try:
        tf.io.decode_jpeg(data, ratio=8, try_recover_truncated=False)
    except tf.errors.InvalidArgumentError:
        return True
    return False


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """A decoded cv2 image (gray, BGR, BGRA; 8 or 16 bit) as 8-bit BGR (H, W, 3).

    Raises:
        _Skip: the pixel type or channel count is not an image we can train on.
    """
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise _Skip(UNDECODABLE_IMAGE)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 4:
        # Alpha is dropped, not composited: the colour values are the photo.
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels in (1, 2):
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    raise _Skip(UNDECODABLE_IMAGE)


def load_image(
    path: str, budget: images.ImageBudget = images.DEFAULT_BUDGET
) -> tuple[bytes, np.ndarray, bool]:
    """Reads and decodes one photo (``images.read_image_bytes``: within ``budget``, a regular file).

    Returns:
        (raw bytes, 8-bit BGR image, whether the raw bytes already are an
        8-bit 3-channel JPEG or PNG that TF decodes to the same pixels).

    Raises:
        _Skip: MISSING_IMAGE, IMAGE_OVER_BUDGET or UNDECODABLE_IMAGE (not a regular file among them).
    """
    try:
        data = images.read_image_bytes(path, budget)
        decoded = images.decode_image_bytes(data, path)
    except images.MissingImageError as e:
        raise _Skip(MISSING_IMAGE) from e
    except images.ImageOverBudgetError as e:
        raise _Skip(IMAGE_OVER_BUDGET) from e
    except images.UnreadableInputError as e:
        raise _Skip(UNDECODABLE_IMAGE) from e
    is_jpeg = data.startswith(_JPEG_MAGIC)
    if is_jpeg and is_truncated_jpeg(data):
        raise _Skip(UNDECODABLE_IMAGE)
    rgb8 = to_rgb8(decoded)
    reusable = (
        (is_jpeg or data.startswith(_PNG_MAGIC))
        and decoded.dtype == np.uint8
        and decoded.ndim == 3
        and decoded.shape[2] == 3
    )
    return data, rgb8, reusable


def crop_window(
    center: np.ndarray, scale: float, margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) of the person square clipped to the image.

    Raises:
        _Skip: INVALID_BOX_OR_SCALE when the square lies outside the image.
    """
    half = PIXELS_PER_SCALE * scale * (1.0 + margin) / 2.0
    x0 = max(0, math.floor(center[0] - half))
    y0 = max(0, math.floor(center[1] - half))
    x1 = min(width, math.ceil(center[0] + half) + 1)
    y1 = min(height, math.ceil(center[1] + half) + 1)
    if x1 <= x0 or y1 <= y0:
        raise _Skip(INVALID_BOX_OR_SCALE)
    return x0, y0, x1, y1


def encode_jpeg(image_bgr: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for an image of shape {image_bgr.shape}.")
    return buffer.tobytes()


# ---------------------------------------------------------------------------
# Records.


def annotation_skip_reason(record: PoseRecord) -> str | None:
    """Why a record cannot be trained on from its annotation alone, or None."""
    if not record.has_gt.any():
        return NO_ANNOTATED_JOINT
    if not (np.isfinite(record.center).all() and math.isfinite(record.scale)):
        return INVALID_BOX_OR_SCALE
    if record.scale <= 0:
        return INVALID_BOX_OR_SCALE
    return None


def _example_bytes(
    record: PoseRecord, data: bytes, image: np.ndarray, reusable: bool, crop_margin, full_image
) -> bytes:
    height, width = image.shape[:2]
    if full_image:
        encoded = data if reusable else encode_jpeg(image)
        return tfrecord.serialize_example(encoded, record, height=height, width=width)
    x0, y0, x1, y1 = crop_window(record.center, record.scale, crop_margin, width, height)
    crop = image[y0:y1, x0:x1]
    return tfrecord.serialize_example(
        encode_jpeg(crop),
        record,
        height=crop.shape[0],
        width=crop.shape[1],
        crop_offset=(x0, y0),
        original_height=height,
        original_width=width,
    )


def _close_and_remove(writers, paths) -> None:
    """Removes the temporary shards of a failed conversion; a writer that cannot flush (a full disk) is let go."""
    for writer in writers:
        with contextlib.suppress(tf.errors.OpError):
            writer.close()
    for path in paths:
        with contextlib.suppress(OSError, tf.errors.OpError):  # never hide the failure behind this one
            atomic_files.remove(path)


class OutputInUseError(OSError):
    """Another live conversion writes to the same prefix."""


def output_prefix_lock(output_prefix: str):
    """Holds ``PREFIX.lock`` while converting, so two runs to one prefix never remove each other's shards.

    Local prefixes only (flock); on gs:// two runs to one prefix are the user's to avoid.
    """
    if "://" in output_prefix:
        return contextlib.nullcontext()

    def in_use(holder):
        return OutputInUseError(
            f"--output {output_prefix!r} is in use by another conversion (pid {holder}); "
            "wait for it to finish or choose another --output."
        )

    return atomic_files.exclusive_lock(f"{output_prefix}.lock", in_use, remove_when_done=True)


def convert_dataset(
    format: str,
    annotations: str,
    images_dir: str | None,
    output_prefix: str,
    num_shards: int = 1,
    crop_margin: float = DEFAULT_CROP_MARGIN,
    full_image: bool = False,
    progress: bool = True,
    budget: images.ImageBudget = images.DEFAULT_BUDGET,
) -> ConversionSummary:
    """Reads a dataset and writes it as sharded TFRecords plus ``PREFIX.spec.json``.

    Examples are dealt round-robin to ``num_shards`` shards; each shard is
    written under a temporary name and renamed when all are complete; shards
    of an earlier conversion to the same prefix are then removed. When no
    example is written, no file is left behind. ``PREFIX.lock`` is held
    meanwhile; the prefix is matched literally (glob characters in it are
    plain characters). Photos over ``budget`` (bytes, or pixels their header
    claims) are skipped undecoded and counted as IMAGE_OVER_BUDGET.

    Raises:
        readers.DatasetError: the annotation file is malformed.
        FileNotFoundError: the annotation file does not exist.
        OutputInUseError: another conversion to this prefix is running.
        ValueError: unknown format, num_shards < 1 or crop_margin < 0.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1; received {num_shards}.")
    if not full_image and not crop_margin >= 0:
        raise ValueError(f"crop_margin must be >= 0; received {crop_margin}.")
    spec, records = readers.read_dataset(format, annotations, images_dir)
    # Persons of one photo are usually consecutive: decode each photo once.
    cache = {"path": None, "image": None}

    def example(record: PoseRecord) -> bytes:
        reason = annotation_skip_reason(record)
        if reason is not None:
            raise _Skip(reason)
        image = _cached_image(cache, record.image_path, budget)
        return _example_bytes(record, *image, crop_margin, full_image)

    return _convert(
        records,
        example,
        output_prefix,
        num_shards,
        progress,
        "person",
        spec,
        source_format=format,
        image_storage="full_image" if full_image else "crop",
        crop_margin=None if full_image else crop_margin,
    )


def convert_multi_person_dataset(
    format: str,
    annotations: str,
    images_dir: str | None,
    output_prefix: str,
    num_shards: int = 1,
    progress: bool = True,
    budget: images.ImageBudget = images.DEFAULT_BUDGET,
) -> ConversionSummary:
    """Writes one example per image with all its people (``tfrecord.serialize_image_example``).

    For bottom-up training (``multi_person_pipeline``). The photo is stored
    whole (its bytes unchanged when it already is an 8-bit RGB JPEG or PNG)
    with its loss mask as a PNG (crowds and people without keypoints). Images
    without people are kept: they teach the detector what is not a person.
    The sidecar says ``example_kind: "multi_person"``.

    Raises: as ``convert_dataset``.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1; received {num_shards}.")
    spec, records = readers.read_multi_person_dataset(format, annotations, images_dir)

    def example(record: MultiPersonRecord) -> bytes:
        data, image, reusable = load_image(record.image_path, budget)
        height, width = image.shape[:2]
        # Segments are in the photo's pixels: its decoded size is the one to draw them at.
        record = dataclasses.replace(record, image_size=(height, width))
        return tfrecord.serialize_image_example(
            data if reusable else encode_jpeg(image),
            record,
            height=height,
            width=width,
            mask_png=encode_loss_mask(record_loss_mask(record)),
        )

    return _convert(
        records,
        example,
        output_prefix,
        num_shards,
        progress,
        "image",
        spec,
        source_format=format,
        image_storage="full_image",
        example_kind="multi_person",
    )


def _cached_image(cache: dict, path: str, budget: images.ImageBudget):
    """``load_image(path, budget)``, reusing the last photo's result (its skip too)."""
    if path != cache["path"]:
        cache["path"] = path
        try:
            cache["image"] = load_image(path, budget)
        except _Skip as skip:
            cache["image"] = skip
    if isinstance(cache["image"], _Skip):
        raise cache["image"]
    return cache["image"]


def _convert(
    items, make_example, output_prefix, num_shards, progress, unit, spec, **sidecar
) -> ConversionSummary:
    """``_write_shards`` holding ``PREFIX.lock``; a folder it made is removed again when nothing is written."""
    folder = os.path.dirname(output_prefix)
    created = atomic_files.make_output_folder(folder, output=output_prefix)
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(output_prefix_lock(output_prefix))
            except OutputInUseError:
                raise
            except OSError as e:  # the lock file cannot be made: a file on the way, no permission
                raise OSError(
                    f"--output {output_prefix!r}: cannot write there ({e.strerror or e})."
                ) from None
            summary = _write_shards(
                items, make_example, output_prefix, num_shards, progress, unit, spec, **sidecar
            )
    except BaseException:
        atomic_files.remove_empty_folders(folder, created)
        raise
    if summary.written == 0:
        atomic_files.remove_empty_folders(folder, created)
    return summary


def _write_shards(
    items, make_example, output_prefix, num_shards, progress, unit, spec, **sidecar
) -> ConversionSummary:
    """Writes ``make_example(item)`` for every item (``_Skip`` counts a reason) round-robin to shards."""
    # A killed conversion leaves its temporary shards; nothing else would ever remove them.
    leftovers = tfrecord.files_of_prefix(
        output_prefix, tfrecord.SHARD_NAME_PATTERN + re.escape(atomic_files.TEMPORARY_INFIX) + r"[0-9a-f]{8}"
    )
    for path in leftovers:
        tf.io.gfile.remove(path)
    final_paths = [tfrecord.shard_path(output_prefix, i, num_shards) for i in range(num_shards)]
    temp_paths = [atomic_files.temporary_path(p) for p in final_paths]
    writers = []
    try:
        for path in temp_paths:
            writers.append(tf.io.TFRecordWriter(path))
    except tf.errors.OpError as e:
        _close_and_remove(writers, temp_paths)
        raise OSError(f"--output {output_prefix!r}: cannot write there ({e.message}).") from None

    skipped = dict.fromkeys(SKIP_REASONS, 0)
    written = 0
    try:
        for item in tqdm(items, desc="converting", unit=unit, disable=not progress):
            try:
                example = make_example(item)
            except _Skip as skip:
                skipped[skip.args[0]] += 1
                continue
            writers[written % num_shards].write(example)
            written += 1
        if written:
            for writer in writers:
                writer.close()  # flushes: a full disk fails here or in write, naming the shard
            for temp, final in zip(temp_paths, final_paths, strict=True):
                tf.io.gfile.rename(temp, final, overwrite=True)
    except BaseException:
        _close_and_remove(writers, temp_paths)
        raise

    if written == 0:
        _close_and_remove(writers, temp_paths)
        return ConversionSummary(0, skipped, [], None, removed_temp_files=len(leftovers))
    # Shards of an earlier conversion to this prefix (another --num-shards) would
    # still match PREFIX-*-of-*.tfrecord while the spec counts only these.
    for stale in set(tfrecord.list_shards(output_prefix)) - set(final_paths):
        tf.io.gfile.remove(stale)
    spec_path = tfrecord.write_spec_sidecar(
        output_prefix,
        spec,
        num_examples=written,
        shards=[p.rsplit("/", 1)[-1] for p in final_paths],
        **sidecar,
    )
    return ConversionSummary(written, skipped, final_paths, spec_path, removed_temp_files=len(leftovers))


# ---------------------------------------------------------------------------
# Command line. The flags live in their own FlagValues so that importing this
# module never clashes with other tools' flags.

_FLAGS = flags.FlagValues()
flags.DEFINE_enum("format", None, list(readers.FORMATS), "Annotation format.", flag_values=_FLAGS)
flags.DEFINE_string("annotations", None, "Annotation file.", flag_values=_FLAGS)
flags.DEFINE_string(
    "images", None, "Folder of the photos (custom: default the JSON's folder).", flag_values=_FLAGS
)
flags.DEFINE_string(
    "output",
    None,
    "Output prefix, any tf.io.gfile path (e.g. gs://bucket/mpii/train).",
    flag_values=_FLAGS,
)
flags.DEFINE_integer("num_shards", 1, "Number of TFRecord shards.", lower_bound=1, flag_values=_FLAGS)
flags.DEFINE_float(
    "crop_margin",
    DEFAULT_CROP_MARGIN,
    "Store the square of side 200 * scale * (1 + margin) around each person.",
    lower_bound=0.0,
    flag_values=_FLAGS,
)
flags.DEFINE_bool("full_image", False, "Store the whole photo instead of a crop.", flag_values=_FLAGS)
flags.DEFINE_bool(
    "multi_person",
    False,
    "One example per image with all its people and its loss mask, for bottom-up (Associative "
    f"Embedding) training; formats {list(readers.MULTI_PERSON_FORMATS)}.",
    flag_values=_FLAGS,
)
images.define_budget_flags(_FLAGS)
for _name in ("format", "annotations", "output"):
    flags.mark_flag_as_required(_name, flag_values=_FLAGS)


def _check_flags():
    if _FLAGS["crop_margin"].present and _FLAGS.full_image:
        raise flags.Error("--crop-margin and --full-image are mutually exclusive.")
    if _FLAGS.multi_person and (_FLAGS["crop_margin"].present or _FLAGS.full_image):
        raise flags.Error("--multi-person stores whole images: no --crop-margin or --full-image.")
    if _FLAGS.multi_person and _FLAGS.format not in readers.MULTI_PERSON_FORMATS:
        raise flags.Error(
            f"--multi-person reads formats {list(readers.MULTI_PERSON_FORMATS)}; received {_FLAGS.format!r}."
        )


def main(argv: list[str] | None = None) -> int:
    """Parses the flags, runs ``convert_dataset`` and prints its summary.

    Returns the exit status: 0 when at least one example was written, 1 when
    nothing was written or the annotation file is malformed, 2 on bad flags.
    """
    status = parse_flags(
        "convert", _FLAGS, list(sys.argv if argv is None else argv), __doc__, check=_check_flags
    )
    if status is not None:
        return status
    try:
        if _FLAGS.multi_person:
            summary = convert_multi_person_dataset(
                format=_FLAGS.format,
                annotations=_FLAGS.annotations,
                images_dir=_FLAGS.images,
                output_prefix=_FLAGS.output,
                num_shards=_FLAGS.num_shards,
                budget=images.budget_from_flags(_FLAGS),
            )
        else:
            summary = convert_dataset(
                format=_FLAGS.format,
                annotations=_FLAGS.annotations,
                images_dir=_FLAGS.images,
                output_prefix=_FLAGS.output,
                num_shards=_FLAGS.num_shards,
                crop_margin=_FLAGS.crop_margin,
                full_image=_FLAGS.full_image,
                budget=images.budget_from_flags(_FLAGS),
            )
    except Exception as e:  # a full disk under TensorFlow's writer too
        return fail_or_raise("convert", e, (readers.DatasetError, OSError, ValueError))
    print(summary.report())
    if summary.removed_temp_files:
        print(
            f"removed {summary.removed_temp_files} temporary file(s) left by an interrupted conversion "
            f"to {_FLAGS.output}",
            file=sys.stderr,
        )
    if summary.written == 0:
        return fail(
            "convert",
            f"no example was written from {_FLAGS.annotations} (see the skip reasons above); "
            "no output files were created.",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
