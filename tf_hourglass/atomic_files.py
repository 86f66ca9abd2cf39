"""Writing files so that nobody ever sees them half-written: the one way we do it.

Everything we write (models, exports, JSON, TFRecord shards, pictures, videos)
goes to a temporary sibling ``PATH.tmp-XXXXXXXX[SUFFIX]`` first and is renamed
over ``PATH`` only when complete; a failure removes the temporary file. The
``.tmp-`` infix is what ``convert`` looks for to clean up after a killed run.
Paths may be anything ``tf.io.gfile`` opens (local, gs://; on GCS a rename is a
copy, so only local renames are atomic).

A write that fails on the file system (a full disk, a read-only folder, a
path under a file) raises :class:`FileSystemError`, whose message is
``PATH: strerror`` naming the path the caller asked for, never the temporary
one (``io_error`` turns Python's and TensorFlow's errors into it; the commands
print it in one line). ``check_writable_folder`` finds most of these before any
work.

``exclusive_lock`` keeps two processes from writing the same outputs at once
(a training workdir, a ``convert`` prefix); it is local-only (flock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import uuid
from collections.abc import Callable, Iterator

import tensorflow as tf

TEMPORARY_INFIX = ".tmp-"
# A temporary sibling in a path, with its suffix and anything written inside it (a SavedModel's files).
_TEMPORARY_PART = re.compile(re.escape(TEMPORARY_INFIX) + r"[0-9a-f]{8}(?:[^/]*)(?:/.*)?$")


class FileSystemError(OSError):
    """A failure of the file system; its message is ``PATH: strerror`` ("No space left on device").

    ``FileSystemError(errno, sentence)`` (no path) prints the sentence alone.
    """

    def __str__(self) -> str:
        return self.strerror if self.filename is None else f"{self.filename}: {self.strerror}"


# TensorFlow's file systems say "PATH; strerror" (a full disk: ResourceExhaustedError
# "out.json.tmp-1a2b3c4d; No space left on device"); inside an op, between
# "{{function_node ...}} " and " [Op:SaveV2]".
_STRERRORS = {os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)}
_TENSORFLOW_IO_MESSAGE = re.compile(
    r"(?:\{\{[^}]*\}\}\s*)?(?P<path>.+); (?P<words>[^;\[]+?)(?:\s+\[Op:.*)?", re.DOTALL
)


def final_path(path: str) -> str:
    """The path the user asked for behind a temporary one: ``OUT.tmp-1a2b3c4d.keras/variables/x`` -> ``OUT``."""
    return _TEMPORARY_PART.sub("", path)


def io_error(error: BaseException, path: str | None = None) -> FileSystemError | None:
    """The file-system failure behind ``error`` as a :class:`FileSystemError`; None for any other error.

    ``error`` is an ``OSError`` with an errno, or a TensorFlow file-system error.
    The path named is ``path`` when given, else the error's own, a temporary
    sibling standing for the final path (``final_path``); an error naming no
    path and given none is not turned into one (None).
    """
    if isinstance(error, OSError):
        if error.errno is None:
            return None
        code, words, where = error.errno, error.strerror or os.strerror(error.errno), error.filename
    elif isinstance(error, tf.errors.OpError):
        match = _TENSORFLOW_IO_MESSAGE.fullmatch(error.message.strip())
        if match is None or match["words"] not in _STRERRORS:
            return None
        code, words, where = _STRERRORS[match["words"]], match["words"], match["path"]
    else:
        return None
    where = _path_text(path if path is not None else where)
    return None if where is None else FileSystemError(code, words, final_path(where))


def _path_text(path) -> str | None:
    return os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else None  # not a file descriptor


def _concerns(error: BaseException, tmp: str) -> bool:
    """Whether a failure inside ``atomic_path`` is about its temporary ``tmp`` (or names no file)."""
    if isinstance(error, OSError):
        where = _path_text(error.filename)
    elif isinstance(error, tf.errors.OpError):
        match = _TENSORFLOW_IO_MESSAGE.fullmatch(error.message.strip())
        where = match["path"] if match else None
    else:
        return False
    return where is None or where == tmp or where.startswith(tmp + "/")


def temporary_path(path: str, suffix: str = "") -> str:
    """A unique sibling of ``path``; ``suffix`` keeps a type some writers need (``.keras``, ``.mp4``)."""
    return f"{path}{TEMPORARY_INFIX}{uuid.uuid4().hex[:8]}{suffix}"


def remove(path: str) -> None:
    """Removes a file or a folder tree if it exists; a symbolic link, never what it points to."""
    if os.path.islink(path):
        os.remove(path)
    elif tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "", replace_folder: bool = False) -> Iterator[str]:
    """Yields a temporary path to write; renames it over ``path`` on success, removes it on failure.

    ``path`` may be a file or a folder (a SavedModel). An existing folder at
    ``path`` is replaced only with ``replace_folder`` (the caller has checked it
    is a previous output): moved aside, then removed once the new one is in
    place, or moved back if that fails.

    Raises:
        FileSystemError: naming ``path``, when writing the temporary file or the
            rename fails on the file system (``No space left on device``).
    """
    tmp = temporary_path(path, suffix)
    try:
        yield tmp
        if replace_folder and tf.io.gfile.isdir(path):  # a link to a folder too: the link is replaced
            _replace_folder(tmp, path)
        else:
            tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException as error:
        with contextlib.suppress(OSError, tf.errors.OpError):  # never hide the failure behind this one
            remove(tmp)
        failure = io_error(error, path) if _concerns(error, tmp) else None
        if failure is not None:
            raise failure from error
        raise


def _replace_folder(tmp: str, path: str) -> None:
    """Renames the folder ``tmp`` over the folder ``path``, which stays in place if that fails."""
    if "://" in path:  # object stores rename a folder file by file: no going back there
        remove(path)
        tf.io.gfile.rename(tmp, path)
        return
    aside = temporary_path(path)
    tf.io.gfile.rename(path, aside)
    try:
        tf.io.gfile.rename(tmp, path)
    except BaseException:
        tf.io.gfile.rename(aside, path)
        raise
    remove(aside)


def check_writable_folder(folder: str, what: str) -> None:
    """Fails before any work if local ``folder`` cannot be made or written.

    A file on the way, a read-only file system, no permission, a full disk
    (no block left): the message names ``what`` (``--output out/model.keras``),
    the folder and the reason in words ("Read-only file system").
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"{what}: cannot write there, {existing} is a file.")
    disk = os.statvfs(existing)
    free_blocks = disk.f_bfree if os.geteuid() == 0 else disk.f_bavail  # root may use the reserved ones
    if disk.f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EACCES
    elif disk.f_blocks and not free_blocks:  # /proc and the like report no blocks at all
        code = errno.ENOSPC
    else:
        return
    raise FileSystemError(code, f"{what}: cannot write there, {existing}: {os.strerror(code)}.")


def check_writable_file(path: str, what: str) -> None:
    """``check_writable_folder`` for the folder of the file ``path``; also refuses a folder at ``path``."""
    if os.path.isdir(path):
        raise FileSystemError(errno.EISDIR, f"{what}: {os.strerror(errno.EISDIR)}; name a file.")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), what)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)


def save(save_fn, path: str, suffix: str = "") -> None:
    """Writes through ``save_fn(tmp_path)`` (e.g. ``model.save``), then renames."""
    with atomic_path(path, suffix) as tmp:
        save_fn(tmp)


@contextlib.contextmanager
def exclusive_lock(path: str, in_use_error: Callable[[str], OSError], remove_when_done: bool = False):
    """Holds the lock file ``path`` (local) while the block runs; the file keeps the holder's pid.

    flock, not the file's existence, is the lock: the kernel releases it when the
    holder dies, so a lock left by a process killed with SIGKILL is taken over.
    When another live process holds it, raises ``in_use_error(holder_pid)`` at once.
    ``remove_when_done`` removes the file on release; a process that opened the
    file before that then holds a removed file, which is why a lock only counts
    when the file at ``path`` is still the one locked. A file at ``path`` that
    holds anything but a pid is someone's data: refused (FileExistsError), and an
    empty file we did not make is never removed.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
    except FileExistsError:
        fd = os.open(path, os.O_RDWR)
        created = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise BlockingIOError  # the holder removed it on release and a third process made a new one
        except FileNotFoundError:
            raise BlockingIOError from None
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise in_use_error(holder) from None
    content = os.pread(fd, 64, 0).strip()
    if content and not content.isdigit():
        os.close(fd)
        raise FileExistsError(f"{path} exists and is not a lock file; move it away.")
    ours = created or bool(content)  # made here, or left by a killed holder
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if remove_when_done and ours:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # while still locked, so nobody takes over a file about to vanish
        os.close(fd)  # releases the lock


# Output folders: made for a run, removed again when the run wrote nothing into them.


def make_output_folder(folder: str, output: str | None = None) -> str | None:
    """Creates ``folder``; returns the topmost folder this created (None when it existed).

    Raises:
        OSError: naming ``--output`` (``output``, default ``folder``) when the folder
            cannot be created or written (under a file, read-only, no permission;
            ``check_writable_folder``).
    """
    if "://" not in folder:
        check_writable_folder(folder, f"--output {output or folder!r}")
    top = None
    parent = folder
    while parent and parent != os.path.dirname(parent) and not tf.io.gfile.exists(parent):
        top, parent = parent, os.path.dirname(parent)
    if folder:
        try:
            tf.io.gfile.makedirs(folder)
        except tf.errors.OpError as e:
            raise OSError(f"--output {output or folder!r}: cannot write there ({e.message}).") from None
    return top


def remove_empty_folders(folder: str, created: str | None) -> None:
    """Undoes ``make_output_folder`` after a failed run: removes what it created, while empty."""
    if created is None:
        return
    while True:
        try:
            os.rmdir(folder)  # only ever removes an empty folder
        except OSError:
            return
        if folder == created:
            return
        folder = os.path.dirname(folder)
