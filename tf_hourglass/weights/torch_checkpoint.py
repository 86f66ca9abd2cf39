"""Reads PyTorch checkpoint files without torch, and without running their code.

``torch.save`` writes a pickle whose tensors point at raw storages kept
beside it. Two layouts exist:

* zip (torch >= 1.6): ``<name>/data.pkl`` holds the pickle, ``<name>/data/<key>``
  each storage's raw bytes, ``<name>/byteorder`` "little" or "big";
* legacy (torch < 1.6, or ``_use_new_zipfile_serialization=False``): one
  stream of five pickles (magic number, protocol version, system info, the
  object, the list of storage keys) followed by each storage as an int64
  element count and its bytes, in the order of that list.

A pickle can call any importable function, so a checkpoint is untrusted input:
``read_torch_checkpoint`` unpickles with an allow-list that rebuilds only
containers, tensors and numbers (the rebuild functions are ours, never torch's
or anyone's), and refuses anything else before calling it. Tensors come back as
read-only NumPy arrays that view their storage: tensors sharing a storage share
its memory, as in torch.

Memory stays bounded by what the file holds: a storage's declared size must
equal its zip entry's (or, legacy, fit in the rest of the file) before any byte
is read; an entry is read only as far as it declares; an entry, or all entries
together, inflating to more than ``MAX_INFLATION`` times their compressed size
(torch stores them uncompressed) and pickles over ``MAX_PICKLE_BYTES`` are
refused.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"  # a zip file's first local header

# torch.save stores zip entries uncompressed; real weights deflate by far less than
# this, zeros by ~1000x: a large entry (or all entries) past it is a zip bomb.
MAX_INFLATION = 20
SMALL_ENTRY_BYTES = 1 << 20  # one entry this small may inflate as it likes
# A state dict with its optimizer pickles to well under 1 MB per thousand tensors.
MAX_PICKLE_BYTES = 16 << 20
READ_PIECE_BYTES = 1 << 20

# torch storage classes -> NumPy element types ("bfloat16" is widened to float32).
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that asks for more than weights."""


class _StorageType:
    """Stands for ``torch.FloatStorage`` etc. inside the pickle; never called."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """One storage's elements; ``array`` is filled when its bytes are read."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int):
        self.storage_type = storage_type
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


class _PendingTensor:
    """A tensor whose storage may not be read yet (legacy files keep storages after the pickle)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self, path: str) -> np.ndarray:
        """A read-only view of the storage: never a copy, however many tensors share it."""
        array = self.storage.array
        if array is None:
            raise CheckpointError(f"{path}: storage {self.storage.key!r} of a tensor is missing.")
        if len(self.size) != len(self.stride) or not all(
            isinstance(v, int) for v in (self.offset, *self.size, *self.stride)
        ):
            raise CheckpointError(f"{path}: a tensor of size {self.size} and stride {self.stride}.")
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, array.dtype)
        # Python integers: the element count and the last element reached cannot overflow.
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        count = math.prod(self.size)
        if (
            self.offset < 0
            or any(n < 0 for n in self.size)
            or any(s < 0 for s in self.stride)
            or last >= array.size
            or count > array.size
        ):
            raise CheckpointError(
                f"{path}: a tensor of size {self.size} (offset {self.offset}, stride {self.stride}) "
                f"reaches past its storage of {array.size} elements."
            )
        itemsize = array.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            array[self.offset :],
            shape=self.size,
            strides=[s * itemsize for s in self.stride],
            writeable=False,
        )


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # torch._utils._rebuild_tensor(_v2): (storage, offset, size, stride[, requires_grad, hooks, ...]).
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor is rebuilt from something that is not a storage")
    return _PendingTensor(storage, int(storage_offset), size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


def _numpy_scalar(dtype, data=None):
    # numpy.core.multiarray.scalar: a NumPy number (e.g. a best accuracy stored as np.float64).
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise CheckpointError("a NumPy scalar of an unsupported kind")
    return np.frombuffer(data, dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=True):
    dtype = np.dtype(name)
    if dtype.hasobject:
        raise CheckpointError("a NumPy dtype that holds Python objects")
    return dtype


def _encode_bytes(text, encoding="utf-8"):
    # Protocol-2 pickles write bytes as _codecs.encode(text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise CheckpointError("a byte string of an unsupported form")
    return text.encode(encoding)


# (module, name) in the pickle -> what this reader does for it. Nothing else is looked up.
_ALLOWED = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _encode_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str, read_storage):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._read_storage = read_storage
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)  # a new one each time: the pickle may not alter shared state
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise CheckpointError(
                f"{self._path}: refusing to load: the checkpoint asks for {module}.{name}, which a "
                "weights file never needs (only tensors, numbers and containers are rebuilt)."
            )
        return allowed

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy adds view_metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: unknown persistent reference {str(pid)[:80]!r}.")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._path}: a storage of unknown type {storage_type!r}.")
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError(f"{self._path}: storage views (torch < 0.4 files) are not supported.")
        key = str(key)
        storage = self.storages.get(key)
        if storage is None:
            storage = _Storage(storage_type, key, int(numel))
            self.storages[key] = storage
            self._read_storage(storage)
        return storage


def _materialise(obj, path):
    """The unpickled object with every pending tensor turned into a NumPy array."""
    if isinstance(obj, _PendingTensor):
        return obj.to_numpy(path)
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v, path)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, path) for v in obj)
    return obj


def _frombuffer(data: bytes | bytearray, storage: _Storage, byteorder: str, path: str) -> np.ndarray:
    """The storage's elements in native byte order (bfloat16 widened): one array per storage."""
    dtype = storage.storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if len(data) != storage.numel * dtype.itemsize:
        raise CheckpointError(
            f"{path}: storage {storage.key!r} has {len(data)} bytes, expected "
            f"{storage.numel} x {dtype.itemsize} (the file is truncated or damaged)."
        )
    array = np.frombuffer(data, dtype)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    if storage.storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_entry(info: zipfile.ZipInfo, path: str, max_bytes: int | None) -> None:
    """Refuses an entry before inflating it: an unknown compression, a zip bomb, more than ``max_bytes``."""
    member = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(
            f"{path}: {member} is compressed with method {info.compress_type}; torch never is."
        )
    if info.file_size > SMALL_ENTRY_BYTES and info.file_size > MAX_INFLATION * info.compress_size:
        raise CheckpointError(
            f"{path}: {member} inflates {info.file_size} bytes from {info.compress_size}; refusing to "
            "inflate it (torch stores tensors uncompressed; this looks made to exhaust memory)."
        )
    if max_bytes is not None and info.file_size > max_bytes:
        raise CheckpointError(f"{path}: {member} holds {info.file_size} bytes, over the {max_bytes} allowed.")


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytearray:
    """An entry's bytes, read no further than its declared size (checked first by ``_check_entry``)."""
    member = info.filename
    # Into one buffer, a piece at a time: no second copy while inflating, and a
    # header that understates the size stops the read there.
    data = bytearray(info.file_size)
    filled = 0
    with archive.open(info) as f:
        while filled < info.file_size:
            piece = f.read(min(READ_PIECE_BYTES, info.file_size - filled))
            if not piece:
                raise CheckpointError(f"{path}: {member} is truncated ({filled} of {info.file_size} bytes).")
            data[filled : filled + len(piece)] = piece
            filled += len(piece)
    return data


def _read_zip(path: str):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: a zip file without one <name>/data.pkl; not a torch checkpoint.")
        root = pickles[0].split("/")[0]
        # All entries together, not only each one: many small entries are a zip bomb too.
        remaining = MAX_INFLATION * os.path.getsize(path) + SMALL_ENTRY_BYTES

        def read(member, max_bytes=None):
            nonlocal remaining
            info = archive.getinfo(member)
            _check_entry(info, path, max_bytes)
            remaining -= info.file_size
            if remaining < 0:
                raise CheckpointError(
                    f"{path}: its entries inflate to more than {MAX_INFLATION} times the file's size; refusing "
                    f"to inflate {member} (torch stores tensors uncompressed; this looks made to exhaust memory)."
                )
            return _read_entry(archive, info, path)

        byteorder_name = f"{root}/byteorder"
        byteorder = (
            read(byteorder_name, max_bytes=16).decode().strip() if byteorder_name in names else "little"
        )

        def read_storage(storage):
            member = f"{root}/data/{storage.key}"
            if member not in names:
                raise CheckpointError(f"{path}: storage {member} is missing from the archive.")
            itemsize = storage.storage_type.dtype.itemsize
            entry_size = archive.getinfo(member).file_size
            if entry_size != storage.numel * itemsize:
                raise CheckpointError(
                    f"{path}: storage {member} declares {storage.numel} x {itemsize} bytes but its entry holds "
                    f"{entry_size} (the file is damaged)."
                )
            storage.array = _frombuffer(read(member), storage, byteorder, path)

        data = read(pickles[0], max_bytes=MAX_PICKLE_BYTES)
        unpickler = _RestrictedUnpickler(io.BytesIO(data), path, read_storage)
        return _materialise(unpickler.load(), path)


def _read_legacy(path: str, f):
    magic = _load_plain_pickle(f, path, "magic number")
    if magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointError(f"{path}: not a torch checkpoint (wrong magic number).")
    protocol, sys_info = (_load_plain_pickle(f, path, what) for what in ("protocol version", "system info"))
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(f"{path}: unsupported legacy torch protocol version {protocol!r}.")
    byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"
    file_size = os.fstat(f.fileno()).st_size
    unpickler = _RestrictedUnpickler(f, path, read_storage=lambda storage: None)
    obj = unpickler.load()
    keys = _load_plain_pickle(f, path, "storage key list")
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: the storage key list is damaged.")
    for key in keys:
        storage = unpickler.storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"{path}: the file stores data for unknown storage {key!r}.")
        count = f.read(8)
        if len(count) != 8:
            raise CheckpointError(f"{path}: truncated before storage {key!r}.")
        (numel,) = struct.unpack("<q" if byteorder == "little" else ">q", count)
        if numel != storage.numel:
            raise CheckpointError(
                f"{path}: storage {key!r} holds {numel} elements, expected {storage.numel}."
            )
        num_bytes = numel * storage.storage_type.dtype.itemsize
        if num_bytes > file_size - f.tell():
            raise CheckpointError(
                f"{path}: storage {key!r} declares {num_bytes} bytes, more than the rest of the file "
                "(the file is truncated or damaged)."
            )
        storage.array = _frombuffer(f.read(num_bytes), storage, byteorder, path)
    return _materialise(obj, path)


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles: plain values only."""

    def __init__(self, file, path: str, what: str):
        super().__init__(file, encoding="utf-8")
        self._where = f"{path}: the {what}"

    def find_class(self, module, name):
        raise CheckpointError(f"{self._where} asks for {module}.{name}; refusing to load.")

    def persistent_load(self, pid):
        raise CheckpointError(f"{self._where} holds a persistent reference; refusing to load.")


def _load_plain_pickle(f, path: str, what: str):
    try:
        return _PlainUnpickler(f, path, what).load()
    except CheckpointError:
        raise
    except (
        Exception
    ) as e:  # a malformed pickle: no checkpoint at all, or one cut short after its magic number
        kind = (
            "not a torch checkpoint" if what == "magic number" else "a truncated or damaged torch checkpoint"
        )
        raise CheckpointError(f"{path}: {kind} ({what} unreadable: {e}).") from e


def read_torch_checkpoint(path) -> object:
    """The object a ``torch.save`` file holds, with tensors as NumPy arrays.

    Reads both the zip format (torch >= 1.6) and the legacy format. Raises
    ``CheckpointError`` naming the file for anything that is not a checkpoint,
    is truncated, or asks to call anything but the allowed rebuild functions.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a folder; give the checkpoint file in it.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file.")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with open(path, "rb") as f:
            if f.read(4) == _ZIP_MAGIC:  # a zip file without its end: torch >= 1.6's format, cut short
                raise CheckpointError(
                    f"{path}: a truncated or damaged torch checkpoint (a zip file without its central directory)."
                )
            f.seek(0)
            return _read_legacy(path, f)
    except CheckpointError as e:
        # The rebuild functions cannot know the path: put it in front of their messages.
        if not str(e).startswith(f"{path}: "):
            raise CheckpointError(f"{path}: {e}") from None
        raise
    except Exception as e:  # a damaged or truncated file fails in many ways; all are bad input
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint, or damaged ({type(e).__name__}: {e})."
        ) from e
