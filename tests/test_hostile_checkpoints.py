"""Checkpoints made to exhaust memory: the torch reader's memory stays bounded and each is refused in one line.

Each hostile file is small (about 1 MB); reading it runs in a fresh process
whose peak resident memory (VmHWM, reset after the imports) above its resident
memory before the read is measured, so the number is the reader's alone. The process's
address space is capped a little above that baseline, so a reader that does
blow up fails there instead of taking the test machine's memory.
"""

import collections
import io
import json
import os
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest
from pytorch_reference import _Global, _StorageRef, _TorchPickler, random_state_dict, write_torch_checkpoint

from tf_hourglass.weights import CheckpointError, load_pytorch_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_EXTRA_MB = 100  # what a 1 MB file may take above the baseline


class _View:
    """A tensor of ``shape`` and ``stride`` (elements) on a storage, as torch pickles it."""

    def __init__(self, storage, shape, stride, offset=0):
        self.storage, self.shape, self.stride, self.offset = storage, shape, stride, offset


class _ViewPickler(_TorchPickler):
    def __init__(self, file):
        super().__init__(file, legacy=False)
        self.dispatch_table = {**self.dispatch_table, _View: self._reduce_view}

    def _reduce_view(self, view):
        rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
        args = (view.storage, view.offset, view.shape, view.stride, False, collections.OrderedDict())
        return rebuild, args


def _storage(key, numel):
    """A float32 storage reference declaring ``numel`` elements, whatever the archive holds."""
    return _StorageRef(key, types.SimpleNamespace(dtype=np.dtype(np.float32), size=numel))


def _write_zip(path, obj, entries: dict, compression=zipfile.ZIP_STORED):
    """A torch zip checkpoint whose data.pkl holds ``obj``; ``entries`` maps a storage key to a writer."""
    buffer = io.BytesIO()
    _ViewPickler(buffer).dump(obj)
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue(), zipfile.ZIP_STORED)
        archive.writestr("archive/byteorder", "little", zipfile.ZIP_STORED)
        for key, write in entries.items():
            with archive.open(f"archive/data/{key}", "w") as f:
                write(f)


def _zeros(num_bytes):
    def write(f):
        chunk = bytes(1 << 20)
        for _ in range(num_bytes >> 20):
            f.write(chunk)

    return write


def _patch_declared_size(path, member, size):
    """Rewrites the uncompressed size the central directory declares for ``member`` (a lying header)."""
    data = bytearray(open(path, "rb").read())
    name = member.encode()
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    open(path, "wb").write(bytes(data))


_MEASURE = """
import json, resource
from tf_hourglass.weights import load_pytorch_checkpoint, read_torch_checkpoint

def status(field):
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field + ":"))) * 1024

resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + (3 << 30), resource.RLIM_INFINITY))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current resident size: the imports' peak is not ours
before = status("VmRSS")
try:
    result = {call}
    outcome = "read"
except Exception as e:
    outcome = f"{{type(e).__name__}}: {{e}}"
print(json.dumps({{"outcome": outcome, "extra_mb": (status("VmHWM") - before) / 2**20}}))
"""


def _read_in_fresh_process(call: str) -> dict:
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(call=call)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_refused_within_budget(path, call, message):
    assert os.path.getsize(path) < 2 << 20
    measured = _read_in_fresh_process(call.format(path=str(path)))
    print(f"{os.path.basename(path)}: {measured['extra_mb']:.1f} MB above the baseline")
    assert measured["outcome"].startswith("CheckpointError: ") and message in measured["outcome"], measured
    assert measured["extra_mb"] < MAX_EXTRA_MB, measured


def test_a_zip_bomb_inflating_to_1_gb_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.pt"
    size = 1 << 30
    state = {"w": _View(_storage("0", size // 4), (size // 4,), (1,))}
    _write_zip(path, {"state_dict": state}, {"0": _zeros(size)}, zipfile.ZIP_DEFLATED)
    _assert_refused_within_budget(
        path, "read_torch_checkpoint({path!r})", "archive/data/0 inflates 1073741824 bytes from"
    )


@pytest.fixture(scope="module")
def small_storage_bomb(tmp_path_factory):
    """A storage declared as 16 floats whose entry inflates to 1 GB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.pt"
    state = {"w": _View(_storage("0", 16), (16,), (1,))}
    _write_zip(path, {"state_dict": state}, {"0": _zeros(1 << 30)}, zipfile.ZIP_DEFLATED)
    return path


def test_a_storage_whose_entry_is_larger_than_declared_is_refused_before_inflating(small_storage_bomb):
    _assert_refused_within_budget(
        small_storage_bomb, "read_torch_checkpoint({path!r})", "storage archive/data/0 declares 16 x 4 bytes"
    )


def test_a_zip_entry_that_lies_about_its_size_is_read_only_as_far_as_it_declares(
    small_storage_bomb, tmp_path
):
    path = tmp_path / "lying.pt"
    path.write_bytes(small_storage_bomb.read_bytes())
    _patch_declared_size(path, "archive/data/0", 64)
    measured = _read_in_fresh_process(f"read_torch_checkpoint({str(path)!r})")
    print(f"lying entry: {measured['extra_mb']:.1f} MB above the baseline")
    assert measured["extra_mb"] < MAX_EXTRA_MB, measured


def test_64_views_of_one_32_mb_storage_share_it(tmp_path):
    path = tmp_path / "views.pt"
    numel = 8 << 20  # 32 MB of float32
    storage = _storage("0", numel)
    state = {f"w{i}": _View(storage, (numel,), (1,)) for i in range(64)}
    values = np.arange(numel, dtype="<f4").tobytes()
    _write_zip(path, {"state_dict": state}, {"0": lambda f: f.write(values)}, zipfile.ZIP_DEFLATED)
    measured = _read_in_fresh_process(
        f"{{k: float(v[12345]) for k, v in read_torch_checkpoint({str(path)!r})['state_dict'].items()}}"
    )
    print(f"64 views: {measured['extra_mb']:.1f} MB above the baseline")
    assert measured["outcome"] == "read", measured
    assert measured["extra_mb"] < MAX_EXTRA_MB, measured


def test_views_read_the_right_elements_and_cannot_be_written(tmp_path):
    path = tmp_path / "views.pt"
    storage = _storage("0", 12)
    state = {
        "matrix": _View(storage, (3, 4), (4, 1)),
        "transposed": _View(storage, (4, 3), (1, 4)),
        "tail": _View(storage, (2,), (1,), offset=10),
    }
    values = np.arange(12, dtype="<f4").tobytes()
    _write_zip(path, {"state_dict": state}, {"0": lambda f: f.write(values)})
    from tf_hourglass.weights import read_torch_checkpoint

    tensors = read_torch_checkpoint(path)["state_dict"]
    np.testing.assert_array_equal(tensors["matrix"], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(tensors["transposed"], np.arange(12).reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["tail"], [10, 11])
    with pytest.raises(ValueError, match="read-only"):
        tensors["matrix"][0, 0] = 5


def test_a_marker_tensor_claiming_20000_filters_is_refused_before_building(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = random_state_dict("pv", num_stacks=1, filters=8, num_keypoints=4, depth=1)
    state["outs.0.conv.weight"] = np.zeros((4, 20000, 1, 1), np.float32)
    write_torch_checkpoint(path, {"state_dict": {f"model.module.{k}": v for k, v in state.items()}})
    _assert_refused_within_budget(
        path,
        "load_pytorch_checkpoint({path!r}, 'pv', (64, 64, 3))",
        "filters=20000",
    )


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        (
            {"state_dict": {}, 2.5: 1, "a": 3},
            "no 'state_dict' of tensors in the checkpoint (found ['2.5', 'a', ",
        ),
        ({1: 2, "a": 3}, "state_dict entry '1' is not a tensor"),
    ],
)
def test_mixed_type_top_level_keys_are_one_line_naming_the_file(tmp_path, checkpoint, message):
    path = tmp_path / "mixed.pt"
    write_torch_checkpoint(path, checkpoint)
    with pytest.raises(CheckpointError) as error:
        load_pytorch_checkpoint(path, "pv")
    assert str(error.value).startswith(f"{path}: {message}")


def test_many_small_entries_inflating_to_600_mb_together_are_refused(tmp_path):
    path = tmp_path / "many.pt"
    count, numel = 600, 1 << 18  # 1 MB each
    state = {f"w{i}": _View(_storage(str(i), numel), (numel,), (1,)) for i in range(count)}
    _write_zip(
        path, {"state_dict": state}, {str(i): _zeros(numel * 4) for i in range(count)}, zipfile.ZIP_DEFLATED
    )
    _assert_refused_within_budget(
        path, "read_torch_checkpoint({path!r})", "its entries inflate to more than 20 times the file's size"
    )
