"""Writing files so that nobody ever sees them half-written: the one way we do it.

Everything we write (models, exports, JSON, TFRecord shards, pictures, videos)
goes to a temporary sibling ``PATH.tmp-XXXXXXXX[SUFFIX]`` first and is renamed
over ``PATH`` only when complete; a failure removes the temporary file. The
``.tmp-`` infix is what ``convert`` looks for to clean up after a killed run.
Paths may be anything ``tf.io.gfile`` opens (local, gs://; on GCS a rename is a
copy, so only local renames are atomic).

``exclusive_lock`` keeps two processes from writing the same outputs at once
(a training workdir, a ``convert`` prefix); it is local-only (flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator

import tensorflow as tf

TEMPORARY_INFIX = ".tmp-"


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
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path to write; renames it over ``path`` on success, removes it on failure.

    ``path`` may be a file or a folder (a SavedModel); an existing folder at
    ``path`` is the caller's to move away first (a rename cannot replace it).
    """
    tmp = temporary_path(path, suffix)
    try:
        yield tmp
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        remove(tmp)  # a no-op after the rename


def check_writable_folder(folder: str, what: str) -> None:
    """Fails before any work if local ``folder`` cannot be made or written: a file on the way, no permission.

    ``what`` names the output in the message (``--output out/model.keras``).
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"{what}: cannot write there, {existing} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what}: cannot write there, no permission in {existing}.")


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
            cannot be created (under a file, no permission).
    """
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
