"""The one way files are written: temporary sibling, then rename; nothing half-written is left."""

import os

import pytest

from tf_hourglass import atomic_files


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    atomic_files.write_text(str(path), "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_files.atomic_path(str(path)) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_save_passes_a_temporary_path_with_the_suffix_the_writer_needs(tmp_path):
    seen = []

    def save_fn(tmp):
        seen.append(tmp)
        with open(tmp, "w") as f:
            f.write("weights")

    atomic_files.save(save_fn, str(tmp_path / "best.weights.h5"), suffix=".weights.h5")
    assert seen[0].endswith(".weights.h5") and atomic_files.TEMPORARY_INFIX in seen[0]
    assert (tmp_path / "best.weights.h5").read_text() == "weights"
    assert os.listdir(tmp_path) == ["best.weights.h5"]


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    output = tmp_path / "saved_model"
    with atomic_files.atomic_path(str(output)) as tmp:
        os.makedirs(os.path.join(tmp, "variables"))
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(b"graph")
    assert sorted(os.listdir(output)) == ["saved_model.pb", "variables"]
    with pytest.raises(ValueError), atomic_files.atomic_path(str(tmp_path / "other")) as tmp:
        os.makedirs(os.path.join(tmp, "variables"))
        raise ValueError("check failed")
    assert os.listdir(tmp_path) == ["saved_model"]


def test_a_lock_never_truncates_or_removes_a_file_that_is_not_a_lock(tmp_path):
    def in_use(holder):
        return OSError(f"in use by {holder}")

    notes = tmp_path / "train.lock"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match=f"{notes} exists and is not a lock file"):
        with atomic_files.exclusive_lock(str(notes), in_use, remove_when_done=True):
            pass
    assert notes.read_text() == "my notes"
    empty = tmp_path / "empty.lock"
    empty.write_text("")
    with atomic_files.exclusive_lock(str(empty), in_use, remove_when_done=True):
        assert empty.read_text() == f"{os.getpid()}\n"
    assert empty.exists()  # not made here: kept
    stale = tmp_path / "stale.lock"
    stale.write_text("999999\n")  # left by a killed run
    with atomic_files.exclusive_lock(str(stale), in_use, remove_when_done=True):
        pass
    assert not stale.exists()


def test_a_held_lock_refuses_a_second_holder_naming_the_first_pid(tmp_path):
    path = str(tmp_path / "x.lock")
    with atomic_files.exclusive_lock(
        path, lambda holder: OSError(f"held by {holder}"), remove_when_done=True
    ):
        # A second open file description, as another process would have.
        with pytest.raises(OSError, match=f"held by {os.getpid()}"):
            with atomic_files.exclusive_lock(path, lambda holder: OSError(f"held by {holder}")):
                pass
    assert not os.path.exists(path)
