"""Hostile image files (issue 27, item 3): an image's header and size are checked before it is decoded.

A small PNG that claims 10000 x 10000 pixels, a 3 GB file (sparse: it costs no
disk), a FIFO, a socket: predict, evaluate, convert and the training input
skip them and count them, in bounded memory, without hanging.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import zlib

import cv2
import numpy as np
import pytest

from tf_hourglass.data import images
from tf_hourglass.data.images import ImageBudget, ImageOverBudgetError, UnreadableInputError

PHOTO = "mpii/images/004645041.jpg"
SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def black_png(width: int, height: int) -> bytes:
    """A valid 8-bit RGB PNG of ``width`` x ``height`` black pixels: 10000 x 10000 is about 290 KB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    data = black_png(10000, 10000)
    assert len(data) < 320_000
    return data


def sparse_file(path, size=3 * 2**30):
    """A file of ``size`` bytes that takes no disk (a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_the_header_is_read_without_decoding_and_the_budget_refuses_it(tmp_path, huge_png):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png)
    assert images.check_image_file(str(path), ImageBudget(max_pixels=10**8)) == (10000, 10000)
    with pytest.raises(
        ImageOverBudgetError, match=r"huge.png claims 10000x10000 = 100000000 pixels.*max_image_pixels"
    ):
        images.read_image(str(path))
    big = sparse_file(tmp_path / "big.jpg")
    with pytest.raises(ImageOverBudgetError, match=r"big.jpg is 3221225472 bytes.*max_image_bytes"):
        images.read_image(str(big))
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(UnreadableInputError, match="pipe.jpg is a FIFO"):
        images.read_image(str(tmp_path / "pipe.jpg"))
    with pytest.raises(images.MissingImageError, match="gone.jpg does not exist"):
        images.read_image(str(tmp_path / "gone.jpg"))
    with pytest.raises(ValueError, match="max_image_pixels must be a whole number >= 1"):
        ImageBudget(max_pixels=0)


PREDICT_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import tf_hourglass
    from tf_hourglass.prediction.estimator import PoseEstimator
    from tf_hourglass.prediction.files import predict_path

    model, photo, folder, output = sys.argv[1:]
    estimator = PoseEstimator(model)
    predict_path(estimator, photo, output + "_warm", progress=False)  # everything but the hostile files
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = predict_path(estimator, folder, output, progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grew_kb": after - before, "written": summary.written, "skipped": summary.skipped}))
    """
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    import tf_hourglass

    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tf_hourglass.from_preset("hg_tiny").save(str(path))
    return str(path)


def test_predict_skips_a_huge_header_a_3_gb_file_a_fifo_and_a_socket_in_bounded_memory(
    shared_data, model_path, tmp_path, huge_png
):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes((shared_data / PHOTO).read_bytes())
    (folder / "huge.png").write_bytes(huge_png)
    sparse_file(folder / "big.jpg")
    os.mkfifo(folder / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.png"))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PREDICT_SCRIPT,
                model_path,
                str(folder / "photo.jpg"),
                str(folder),
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            env=SUBPROCESS_ENV,
            timeout=120,  # a FIFO opened for reading would wait for a writer forever
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(os.path.basename(p) for p in report["skipped"]) == [
        "big.jpg",
        "huge.png",
        "pipe.jpg",
        "sock.png",
    ]
    assert sorted(os.path.basename(p) for p in report["written"]) == ["photo.jpg", "photo.json"]
    # Decoding the 10000 x 10000 image would take 300 MB as uint8 and 1.2 GB as float32.
    assert report["grew_kb"] < 100 * 1024, report["grew_kb"]


def test_predict_command_takes_the_budget_flags_and_names_what_it_skipped(shared_data, model_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes((shared_data / PHOTO).read_bytes())
    cv2.imwrite(str(folder / "small.png"), np.zeros((40, 30, 3), np.uint8))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_hourglass.predict",
            "--model",
            model_path,
            "--input",
            str(folder),
            "--output",
            str(tmp_path / "out"),
            "--max-image-pixels",
            "2000",
        ],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["small.json", "small.png"]
    assert f"Skipped 1 unreadable file(s): {folder / 'photo.jpg'}" in result.stderr
