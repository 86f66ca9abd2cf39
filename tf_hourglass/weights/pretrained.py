"""Pretrained presets: official checkpoints downloaded once, checked, converted once and kept.

``pretrained_model_path("hg8_mpii_pv")`` returns a ``.keras`` file in the cache
(``~/.cache/tf_hourglass``, or ``$TF_HOURGLASS_CACHE``), a folder per preset:

    NAME/checkpoint.pt       the official file, as its project publishes it
    NAME/checkpoint.json     its URL, size and SHA-256, recorded on first download
    NAME/model.keras         the converted model (with its ModelInfo), made once

The download shows a progress bar, resumes an interrupted one from its
``.part`` file (HTTP Range), and renames the file into place only when whole.
Every later load checks the checkpoint's size and SHA-256 against the record
and refuses a file that changed (one line naming it; nothing is deleted). A
machine without the network can take a hand-downloaded file: put it where the
error message says, and its size and hash are recorded on first use.
Everything that accepts a model path accepts these names (``model_loader``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import urllib.error
import urllib.request

from tqdm import tqdm

from tf_hourglass import atomic_files
from tf_hourglass.weights.convert import convert_checkpoint

CACHE_ENVIRONMENT_VARIABLE = "TF_HOURGLASS_CACHE"
CHECKPOINT_RECORD = "checkpoint.json"
MODEL_FILE = "model.keras"
PARTIAL_SUFFIX = ".part"
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """An official checkpoint and how to convert it.

    Args:
        source: the converter's ``--source`` (``weights.SOURCES``).
        url: where its project's README links the file.
        file_name: the name it is kept under in the cache.
        spec, input_size: what it was trained on (``convert_checkpoint``).
        description: what it is and what its project reports.
    """

    source: str
    url: str
    file_name: str
    spec: str
    input_size: int
    description: str


# The download links of princeton-vl/pytorch_stacked_hourglass's README ("Pretrained Models").
# bearpaw/pytorch-pose and pose-ae-train publish theirs in Google Drive folders, which
# have no direct link: convert those by hand (python -m tf_hourglass.weights).
PRETRAINED = {
    "hg8_mpii_pv": Pretrained(
        source="pv",
        url="http://www-personal.umich.edu/~cnris/original_8hg/checkpoint.pt",
        file_name="checkpoint.pt",
        spec="mpii",
        input_size=256,
        description="8-stack hourglass trained on MPII by the authors' PyTorch port (its README: PCKh 90.2)",
    ),
    "hg2_mpii_pv": Pretrained(
        source="pv",
        url="http://www-personal.umich.edu/~cnris/original_2hg/checkpoint.pt",
        file_name="checkpoint.pt",
        spec="mpii",
        input_size=256,
        description="2-stack hourglass trained on MPII by the authors' PyTorch port (its README: PCKh 88.3)",
    ),
}


class PretrainedError(ValueError):
    """A pretrained preset that cannot be had: offline, a dead link, a changed or broken file."""


def cache_dir() -> str:
    """Where pretrained presets are kept: ``$TF_HOURGLASS_CACHE``, else ``~/.cache/tf_hourglass``."""
    return os.environ.get(CACHE_ENVIRONMENT_VARIABLE) or os.path.join(
        os.path.expanduser("~"), ".cache", "tf_hourglass"
    )


def is_pretrained(name) -> bool:
    return isinstance(name, str) and name in PRETRAINED


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _folder_lock(folder: str):
    """One process at a time fills a preset's folder (a second one waits, then finds it done)."""
    with open(os.path.join(folder, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(url: str, path: str, name: str, progress: bool) -> None:
    """Downloads ``url`` to ``path`` through ``path.part``, resuming what an earlier try left there."""
    partial = path + PARTIAL_SUFFIX
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    hint = f"download it by hand (from that URL or the project's README) and save it as {path}"
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the .part is already whole
            os.replace(partial, path)
            return
        raise PretrainedError(f"{name}: {url} answered HTTP {error.code} ({error.reason}); {hint}.") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PretrainedError(f"{name}: cannot download {url} ({reason}); {hint}.") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server sent the whole file again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(partial, "ab" if have else "wb") as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=f"{name}: downloading",
                disable=not progress,
            ) as bar,
        ):
            try:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, urllib.error.URLError) as error:
                raise PretrainedError(
                    f"{name}: the download of {url} was interrupted ({error}); run again to resume "
                    f"from {partial}."
                ) from None
    received = os.path.getsize(partial)
    if total is not None and received != total:
        raise PretrainedError(
            f"{name}: the download of {url} ended at {received} of {total} bytes; run again to resume "
            f"from {partial}."
        )
    os.replace(partial, path)


def _checked_checkpoint(name: str, entry: Pretrained, folder: str, progress: bool) -> dict:
    """The checkpoint's record (url, size, sha256), downloading it first if needed; refuses a changed file."""
    path = os.path.join(folder, entry.file_name)
    record_path = os.path.join(folder, CHECKPOINT_RECORD)
    if not os.path.exists(path):
        _download(entry.url, path, name, progress)
    size, sha256 = os.path.getsize(path), _sha256(path)
    if not os.path.exists(record_path):
        record = {"url": entry.url, "size": size, "sha256": sha256}
        atomic_files.write_text(record_path, json.dumps(record, indent=2) + "\n")
        return record
    try:
        with open(record_path) as f:
            record = json.load(f)
        expected = (int(record["size"]), str(record["sha256"]))
    except (ValueError, KeyError, TypeError) as error:
        raise PretrainedError(f"{name}: {record_path} is not a download record ({error}).") from None
    if (size, sha256) != expected:
        raise PretrainedError(
            f"{name}: {path} changed since it was downloaded ({size} bytes, SHA-256 {sha256[:12]}..., "
            f"recorded {expected[0]} bytes, {expected[1][:12]}...); remove it and {record_path} to "
            "download it again."
        )
    return record


def pretrained_model_path(name: str, progress: bool = True) -> str:
    """The converted ``.keras`` model of pretrained preset ``name``, downloading and converting it once.

    Raises:
        PretrainedError: an unknown name; no network, a dead link or an interrupted
            download (the message names the URL and where a hand-downloaded
            file may be put); a cached file that changed.
    """
    if name not in PRETRAINED:
        raise PretrainedError(f"Unknown pretrained preset {name!r}; known: {sorted(PRETRAINED)}.")
    entry = PRETRAINED[name]
    folder = os.path.join(cache_dir(), name)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise PretrainedError(
            f"{name}: cannot make the cache folder {folder} ({error.strerror}); set {CACHE_ENVIRONMENT_VARIABLE} "
            "to a folder you can write."
        ) from None
    with _folder_lock(folder):
        record = _checked_checkpoint(name, entry, folder, progress)
        model_path = os.path.join(folder, MODEL_FILE)
        converted_record = os.path.join(folder, MODEL_FILE + ".json")
        made_from = None
        if os.path.exists(converted_record):
            with open(converted_record) as f:
                made_from = json.load(f).get("sha256")
        if not os.path.exists(model_path) or made_from != record["sha256"]:
            convert_checkpoint(
                os.path.join(folder, entry.file_name),
                model_path,
                entry.source,
                spec=entry.spec,
                input_size=entry.input_size,
                overwrite=True,
            )
            atomic_files.write_text(converted_record, json.dumps({"sha256": record["sha256"]}) + "\n")
    return model_path
