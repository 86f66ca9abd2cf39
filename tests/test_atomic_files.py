"""The one way files are written: temporary sibling, then rename; nothing half-written is left."""

import errno
import os

import pytest
import tensorflow as tf

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


# ----------------------------------------------------------------------------
# Failures of the file system: PATH: strerror, naming the path asked for
# ----------------------------------------------------------------------------

NO_SPACE = os.strerror(errno.ENOSPC)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device that is always full")
def test_a_real_full_disk_from_tensorflow_or_python_reads_path_colon_no_space_left(tmp_path):
    with pytest.raises(tf.errors.ResourceExhaustedError) as tensorflow_error:
        with tf.io.gfile.GFile("/dev/full", "w") as f:
            f.write("results")
    assert str(atomic_files.io_error(tensorflow_error.value)) == f"/dev/full: {NO_SPACE}"
    with pytest.raises(OSError) as python_error, open("/dev/full", "w") as f:
        f.write("results")  # fails when flushed: an error naming no file
    assert atomic_files.io_error(python_error.value) is None
    assert str(atomic_files.io_error(python_error.value, "out.json")) == f"out.json: {NO_SPACE}"
    inside_an_op = tf.errors.ResourceExhaustedError(
        None,
        None,
        "{{function_node __wrapped__SaveV2}} run/ckpt-1_temp/part-0; No space left on device [Op:SaveV2]",
    )
    assert str(atomic_files.io_error(inside_an_op)) == f"run/ckpt-1_temp/part-0: {NO_SPACE}"
    assert (
        atomic_files.io_error(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes; [2]")) is None
    )


@pytest.mark.parametrize("tensorflow", [False, True])
def test_a_write_failing_on_the_file_system_names_the_final_path_and_keeps_the_old_file(tmp_path, tensorflow):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    with pytest.raises(atomic_files.FileSystemError) as error:
        with atomic_files.atomic_path(str(path), suffix=".keras") as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            if tensorflow:  # as TensorFlow's writers say it, naming the temporary file
                raise tf.errors.ResourceExhaustedError(None, None, f"{tmp}; {NO_SPACE}")
            raise OSError(errno.ENOSPC, NO_SPACE)  # as Python's file.write says it, naming no file
    assert str(error.value) == f"{path}: {NO_SPACE}" and error.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.keras"]
    with pytest.raises(FileNotFoundError, match="calibration.json"), atomic_files.atomic_path(str(path)):
        open(tmp_path / "calibration.json")  # another file's error is left as it is
    assert os.listdir(tmp_path) == ["model.keras"]


def test_a_replaced_folder_is_moved_back_when_the_new_one_cannot_take_its_place(tmp_path, monkeypatch):
    output = tmp_path / "serving"
    output.mkdir()
    (output / "saved_model.pb").write_bytes(b"previous")
    rename, new = tf.io.gfile.rename, []

    def failing_rename(source, target, overwrite=False):
        if source in new:  # the new folder over the old one; moving the old one aside and back works
            raise tf.errors.ResourceExhaustedError(None, None, f"{source}; {NO_SPACE}")
        return rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", failing_rename)
    with pytest.raises(atomic_files.FileSystemError, match=f"^{output}: {NO_SPACE}$"):
        with atomic_files.atomic_path(str(output), replace_folder=True) as tmp:
            new.append(tmp)
            os.makedirs(tmp)
            (tmp_path / os.path.basename(tmp) / "saved_model.pb").write_bytes(b"new")
    assert os.listdir(tmp_path) == ["serving"] and (output / "saved_model.pb").read_bytes() == b"previous"
    monkeypatch.setattr(tf.io.gfile, "rename", rename)
    with atomic_files.atomic_path(str(output), replace_folder=True) as tmp:
        os.makedirs(tmp)
        (tmp_path / os.path.basename(tmp) / "saved_model.pb").write_bytes(b"new")
    assert os.listdir(tmp_path) == ["serving"] and (output / "saved_model.pb").read_bytes() == b"new"


@pytest.mark.parametrize(
    ("flag", "free", "words"),
    [(os.ST_RDONLY, 100, "Read-only file system"), (0, 0, "No space left on device")],
)
def test_a_read_only_or_full_file_system_is_found_before_any_work(tmp_path, monkeypatch, flag, free, words):
    statvfs = os.statvfs

    def disk(path):
        real = statvfs(path)
        if os.path.abspath(path) != str(tmp_path):
            return real
        # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
        return os.statvfs_result((*real[:2], 1000, free, free, *real[5:8], real.f_flag | flag, real[9]))

    monkeypatch.setattr(os, "statvfs", disk)
    with pytest.raises(atomic_files.FileSystemError) as error:
        atomic_files.check_writable_folder(str(tmp_path / "new" / "folder"), "--output 'new/folder/x'")
    assert str(error.value) == f"--output 'new/folder/x': cannot write there, {tmp_path}: {words}."
    assert os.listdir(tmp_path) == []
