"""Image files, the one home: reading them within a memory budget, their headers, decoding.

Every image a user hands us goes through here before it is decoded:

* ``open_image_file`` refuses anything that is not a regular file (a FIFO, a
  socket, a device) before opening it, so a FIFO in an input folder never
  hangs a command, and refuses files larger than the budget's bytes, so a 3 GB
  file is never read whole;
* ``image_header_size`` reads only the header (Pillow's ``Image.open`` is
  lazy) and ``check_budget`` refuses an image that claims more pixels than the
  budget before any decoder allocates them: a 300 KB PNG that claims
  10000 x 10000 would otherwise take gigabytes;
* ``read_image`` (predict, evaluate's and training's whole photos) and
  ``read_image_bytes`` (convert) then read and decode; ``check_image_files``
  checks a dataset's files once, when its source is opened, so the tf.data
  pipeline's per-example path stays as it was.

Every refusal is an ``UnreadableInputError`` whose message names the file;
``MissingImageError`` and ``ImageOverBudgetError`` say which kind it is, for
the counts batch jobs print.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import warnings
from collections.abc import Iterable

import cv2
import numpy as np
import tensorflow as tf

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels: 150 MB as 8-bit RGB, 600 MB as float32
DEFAULT_MAX_IMAGE_BYTES = 256 * 2**20  # 256 MiB: any 50-megapixel JPEG or 8-bit PNG fits

# Names of the flags and config fields that set the budget, the same in every command.
MAX_PIXELS_FLAG = "max_image_pixels"
MAX_BYTES_FLAG = "max_image_bytes"


class UnreadableInputError(ValueError):
    """An image or video file could not be read or decoded (the message names it)."""


class MissingImageError(UnreadableInputError):
    """The image file does not exist."""


class ImageOverBudgetError(UnreadableInputError):
    """The image file is larger, or claims more pixels, than the ``ImageBudget`` allows."""


@dataclasses.dataclass(frozen=True)
class ImageBudget:
    """How large an image file may be, and how many pixels its header may claim."""

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def __post_init__(self):
        for name, value in (("max_pixels", self.max_pixels), ("max_bytes", self.max_bytes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                flag = MAX_PIXELS_FLAG if name == "max_pixels" else MAX_BYTES_FLAG
                raise ValueError(f"{flag} must be a whole number >= 1; received {value!r}.")


DEFAULT_BUDGET = ImageBudget()


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _check_size(path: str, size: int, budget: ImageBudget) -> None:
    if size > budget.max_bytes:
        raise ImageOverBudgetError(
            f"{path} is {size} bytes, over the limit of {budget.max_bytes} ({MAX_BYTES_FLAG}); skipped unread."
        )


def open_image_file(path: str, budget: ImageBudget = DEFAULT_BUDGET):
    """A binary file object on ``path``, once it is known to be a regular file within ``budget.max_bytes``.

    Local paths are checked with ``os.stat`` before opening (a FIFO, socket or
    device is never opened) and again on the open descriptor; other
    ``tf.io.gfile`` paths (gs://...) by their listed length.

    Raises:
        MissingImageError, ImageOverBudgetError, UnreadableInputError: the message names the file.
    """
    if "://" in path:
        try:
            _check_size(path, tf.io.gfile.stat(path).length, budget)
            return tf.io.gfile.GFile(path, "rb")
        except tf.errors.NotFoundError as error:
            raise MissingImageError(f"Image file {path} does not exist.") from error
        except tf.errors.OpError as error:
            raise UnreadableInputError(f"Cannot read image file {path}: {error.message}") from error
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise MissingImageError(f"Image file {path} does not exist.") from error
    except OSError as error:
        raise UnreadableInputError(f"Cannot read image file {path}: {error.strerror or error}.") from error
    if not stat.S_ISREG(status.st_mode):
        raise UnreadableInputError(f"{path} is {_file_kind(status.st_mode)}, not an image file; skipped.")
    _check_size(path, status.st_size, budget)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise UnreadableInputError(f"Cannot read image file {path}: {error.strerror or error}.") from error
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise UnreadableInputError(f"{path} is {_file_kind(status.st_mode)}, not an image file; skipped.")
    _check_size(path, status.st_size, budget)
    return os.fdopen(descriptor, "rb")


def image_header_size(file, path: str) -> tuple[int, int]:
    """(width, height) an image file's header claims, reading only the header (Pillow, lazily).

    Raises:
        UnreadableInputError: no image format Pillow knows starts the file, or its header is damaged.
    """
    from PIL import Image  # Pillow comes with matplotlib; only its header parsers are used

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return tuple(int(v) for v in image.size)
    except Image.DecompressionBombError as error:
        # Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS) refuses it before we can count it.
        raise ImageOverBudgetError(f"{path} claims too many pixels ({error}); skipped.") from None
    except Exception as error:  # a hostile header can raise anything in a parser; the message names it
        raise UnreadableInputError(
            f"{path} is not a readable image (no known image header: {type(error).__name__})."
        ) from None


def check_budget(path: str, size: tuple[int, int], budget: ImageBudget) -> None:
    """Refuses an image whose header claims more than ``budget.max_pixels`` (or no pixels at all)."""
    width, height = size
    if width < 1 or height < 1:
        raise UnreadableInputError(f"{path} is not a readable image (its header says {width}x{height}).")
    if width * height > budget.max_pixels:
        raise ImageOverBudgetError(
            f"{path} claims {width}x{height} = {width * height} pixels, over the limit of "
            f"{budget.max_pixels} ({MAX_PIXELS_FLAG}); skipped undecoded."
        )


def check_image_file(path: str, budget: ImageBudget = DEFAULT_BUDGET) -> tuple[int, int]:
    """(width, height) of an image file within ``budget``, from its header alone.

    Raises:
        MissingImageError, ImageOverBudgetError, UnreadableInputError: the message names the file.
    """
    with open_image_file(path, budget) as file:
        size = image_header_size(file, path)
    check_budget(path, size, budget)
    return size


def read_image_bytes(path: str, budget: ImageBudget = DEFAULT_BUDGET) -> bytes:
    """The bytes of an image file whose size and header are within ``budget`` (the file opened once).

    Raises:
        MissingImageError, ImageOverBudgetError, UnreadableInputError: the message names the file.
    """
    with open_image_file(path, budget) as file:
        check_budget(path, image_header_size(file, path), budget)
        file.seek(0)
        try:
            data = file.read(budget.max_bytes + 1)
        except (OSError, tf.errors.OpError) as error:
            raise UnreadableInputError(f"Cannot read image file {path}: {error}") from error
    _check_size(path, len(data), budget)  # a file that grew since it was checked
    return data


def decode_image_bytes(data: bytes, path: str) -> np.ndarray:
    """OpenCV's decoding of an image file's bytes: BGR(A) / grayscale, its dtype kept (uint8 or uint16).

    Raises:
        UnreadableInputError: OpenCV cannot decode it.
    """
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as error:  # e.g. a header claiming more pixels than OpenCV allows
        raise UnreadableInputError(f"{path} is not a readable image: {error.err}.") from error
    if image is None or image.size == 0:
        raise UnreadableInputError(f"{path} is not a readable image (OpenCV cannot decode it).")
    return image


def read_image(path: str, budget: ImageBudget = DEFAULT_BUDGET) -> np.ndarray:
    """An image file as RGB / RGBA / grayscale, its dtype kept (uint8 or uint16), within ``budget``.

    Raises:
        UnreadableInputError: the file is missing, not a regular file, over the
            budget, or not an image OpenCV decodes (the message names it).
    """
    image = decode_image_bytes(read_image_bytes(path, budget), path)
    # OpenCV orders colour channels BGR(A).
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def decode_image(encoded) -> tf.Tensor:
    """TensorFlow's decoding of image bytes (the pipeline's decoder) to a (H, W, 3) uint8 RGB tensor."""
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


# In-graph header parsing (the tf.data pipelines): enough leading bytes for every header read below.
_HEADER_BYTES = 32


def _header_bytes(encoded) -> tf.Tensor:
    """The first ``_HEADER_BYTES`` bytes of ``encoded`` as int64, zero-padded when it is shorter."""
    head = tf.strings.substr(encoded, 0, _HEADER_BYTES) + b"\0" * _HEADER_BYTES
    return tf.cast(tf.io.decode_raw(tf.strings.substr(head, 0, _HEADER_BYTES), tf.uint8), tf.int64)


def _starts_with(head, signature: bytes, offset: int = 0) -> tf.Tensor:
    return tf.reduce_all(tf.equal(head[offset : offset + len(signature)], list(signature)))


def _little_endian(head, offset: int, size: int) -> tf.Tensor:
    return tf.add_n([head[offset + i] * 256**i for i in range(size)])


def _big_endian(head, offset: int, size: int) -> tf.Tensor:
    return tf.add_n([head[offset + i] * 256 ** (size - 1 - i) for i in range(size)])


def header_size_tf(encoded) -> tf.Tensor:
    """(height, width) int64 that encoded image bytes claim, from their header alone, in TensorFlow ops.

    JPEG by ``tf.io.extract_jpeg_shape`` (which fails on a JPEG whose header
    is damaged, as decoding would); PNG (IHDR), GIF (logical screen, which is
    what TensorFlow's decoder allocates), BMP (BITMAPINFOHEADER, as TensorFlow
    reads it) and WebP (VP8, VP8L, VP8X) from their first bytes. Anything else
    (JPEG XL, bytes that are no image) gives (-1, -1): not parsed here.
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    head = _header_bytes(encoded)
    unknown = tf.constant([-1, -1], tf.int64)

    def signed32(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    vp8l_bits = _little_endian(head, 21, 4)
    webp = _starts_with(head, b"RIFF") & _starts_with(head, b"WEBP", 8)
    # (is this the format, (height, width)) in the order decode_image tells formats apart.
    formats = [
        (
            _starts_with(head, b"\x89PNG\r\n\x1a\n"),
            tf.stack([_big_endian(head, 20, 4), _big_endian(head, 16, 4)]),
        ),
        (_starts_with(head, b"GIF8"), tf.stack([_little_endian(head, 8, 2), _little_endian(head, 6, 2)])),
        (
            _starts_with(head, b"BM"),
            tf.stack([tf.abs(signed32(_little_endian(head, 22, 4))), signed32(_little_endian(head, 18, 4))]),
        ),
        (
            webp & _starts_with(head, b"VP8X", 12),
            tf.stack([_little_endian(head, 27, 3) + 1, _little_endian(head, 24, 3) + 1]),
        ),
        (
            webp & _starts_with(head, b"VP8L", 12),
            tf.stack([(vp8l_bits // 2**14) % 2**14 + 1, vp8l_bits % 2**14 + 1]),
        ),
        (
            webp & _starts_with(head, b"VP8 ", 12),
            tf.stack([_little_endian(head, 28, 2) % 2**14, _little_endian(head, 26, 2) % 2**14]),
        ),
    ]
    size = unknown
    for is_format, format_size in reversed(formats):
        size = tf.where(is_format, format_size, size)
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64),
        lambda: size,
    )


def within_budget_tf(encoded, budget: ImageBudget = DEFAULT_BUDGET) -> tf.Tensor:
    """Whether encoded image bytes are within ``budget``: their length, and the pixels their header claims.

    In TensorFlow ops, before any decoder allocates them (``header_size_tf``);
    a format whose header is not parsed here is held to the byte limit only.
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    height, width = tf.unstack(header_size_tf(encoded))
    pixels = tf.maximum(height, 0) * tf.maximum(width, 0)
    return (tf.cast(tf.strings.length(encoded), tf.int64) <= budget.max_bytes) & (pixels <= budget.max_pixels)


def decodes_in_tensorflow(data: bytes) -> bool:
    """Whether the input pipeline's decoder reads these bytes (used once per source, not per example)."""
    try:
        decode_image(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return False
    return True


@dataclasses.dataclass
class ImageFileCheck:
    """What ``check_image_files`` found: the files that cannot be used, each with why."""

    num_files: int
    unreadable: dict[str, UnreadableInputError]

    @property
    def readable(self) -> bool:
        return len(self.unreadable) < self.num_files

    def examples(self, count: int = 3) -> str:
        """The first ``count`` refusals, each naming its file."""
        return "; ".join(str(error) for error in list(self.unreadable.values())[:count])

    def summary(self, what: str) -> str:
        """One line: how many of ``what``'s images are skipped, by kind, with the first few named."""
        kinds = {}
        for error in self.unreadable.values():
            kind = (
                "missing"
                if isinstance(error, MissingImageError)
                else "over the size limit"
                if isinstance(error, ImageOverBudgetError)
                else "unreadable"
            )
            kinds[kind] = kinds.get(kind, 0) + 1
        counts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        return (
            f"{what}: skipping {len(self.unreadable)} of {self.num_files} image file(s) ({counts}), e.g. "
            f"{self.examples()}"
        )


def check_image_files(
    paths: Iterable[str], budget: ImageBudget = DEFAULT_BUDGET, probe_decode: bool = True
) -> ImageFileCheck:
    """Checks each distinct file once: regular, within ``budget``, with an image header.

    With ``probe_decode``, the first file that passes is also decoded by the
    pipeline's decoder, and the next one when it fails, until one decodes: a
    dataset whose every file has a valid header and a broken body is then
    refused at once too (the others are left to the pipeline, which skips
    what it cannot decode), at the cost of one decode when the data is sound.
    """
    paths = list(dict.fromkeys(paths))
    unreadable = {}
    decoded_one = not probe_decode
    for path in paths:
        try:
            if decoded_one:
                check_image_file(path, budget)
                continue
            data = read_image_bytes(path, budget)
            if not decodes_in_tensorflow(data):
                raise UnreadableInputError(f"{path} is not a readable image (TensorFlow cannot decode it).")
            decoded_one = True
        except UnreadableInputError as error:
            unreadable[path] = error
    return ImageFileCheck(len(paths), unreadable)


def probe_image_bytes(data: bytes, name: str, budget: ImageBudget = DEFAULT_BUDGET) -> None:
    """Refuses encoded image bytes (a TFRecord's) over ``budget`` or without an image header."""
    _check_size(name, len(data), budget)
    check_budget(name, image_header_size(io.BytesIO(data), name), budget)


def define_budget_flags(flag_values) -> None:
    """``--max_image_pixels`` and ``--max_image_bytes`` on a command's own ``absl.flags.FlagValues``."""
    from absl import flags

    flags.DEFINE_integer(
        MAX_PIXELS_FLAG,
        DEFAULT_MAX_IMAGE_PIXELS,
        "Images whose header claims more pixels are skipped (counted) before decoding.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        MAX_BYTES_FLAG,
        DEFAULT_MAX_IMAGE_BYTES,
        "Image files larger than this many bytes are skipped (counted) without being read.",
        lower_bound=1,
        flag_values=flag_values,
    )


def budget_from_flags(flag_values) -> ImageBudget:
    """The ``ImageBudget`` of the flags ``define_budget_flags`` defined."""
    return ImageBudget(
        max_pixels=flag_values[MAX_PIXELS_FLAG].value, max_bytes=flag_values[MAX_BYTES_FLAG].value
    )
