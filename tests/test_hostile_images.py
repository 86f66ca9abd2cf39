"""Hostile image files (issue 27, item 3): an image's header and size are checked before it is decoded.

A small PNG that claims 10000 x 10000 pixels, a 3 GB file (sparse: it costs no
disk), a FIFO, a socket: predict, evaluate, convert and the training input
skip them and count them, in bounded memory, without hanging.
"""

import io
import json
import os
import socket
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hostile_inputs import black_png

from tf_hourglass.data import images
from tf_hourglass.data.images import ImageBudget, ImageOverBudgetError, UnreadableInputError

PHOTO = "mpii/images/004645041.jpg"
SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


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


def encoded(image: np.ndarray, extension: str, *params) -> bytes:
    ok, data = cv2.imencode(extension, image, list(params))
    assert ok
    return data.tobytes()


def test_the_pipeline_reads_each_formats_header_size_in_tensorflow_without_decoding(huge_png):
    from PIL import Image

    image = np.zeros((37, 53, 3), np.uint8)
    files = {
        "jpeg": encoded(image, ".jpg"),
        "png": encoded(image, ".png"),
        "bmp": encoded(image, ".bmp"),
        "webp lossy": encoded(image, ".webp", cv2.IMWRITE_WEBP_QUALITY, 80),
        "webp lossless": encoded(image, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101),
    }
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "GIF")
    files["gif"] = buffer.getvalue()
    buffer = io.BytesIO()  # with transparency and EXIF: the extended header
    Image.fromarray(np.zeros((37, 53, 4), np.uint8)).save(buffer, "WEBP", exif=b"Exif\0\0")
    files["webp extended"] = buffer.getvalue()
    assert files["webp extended"][12:16] == b"VP8X"
    for kind, data in files.items():
        assert images.header_size_tf(data).numpy().tolist() == [37, 53], kind
        # The size TensorFlow's decoder gives.
        assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (37, 53), kind
    assert images.header_size_tf(huge_png).numpy().tolist() == [10000, 10000]
    for not_parsed in (b"", b"\x89PNG", b"plain text, no image"):
        assert images.header_size_tf(not_parsed).numpy().tolist() == [-1, -1]
    assert not images.within_budget_tf(huge_png, ImageBudget())
    assert images.within_budget_tf(huge_png, ImageBudget(max_pixels=10**8))
    assert not images.within_budget_tf(files["png"], ImageBudget(max_bytes=len(files["png"]) - 1))
    assert not images.within_budget_tf(b"unknown format" * 10, ImageBudget(max_bytes=100))


def test_tfrecord_images_over_the_budget_or_undecodable_are_skipped_by_the_pipeline_and_counted(tmp_path):
    from hostile_inputs import write_pose_shards

    from tf_hourglass.data import tfrecord
    from tf_hourglass.data.codec import HeatmapCodec
    from tf_hourglass.data.pipeline import SkippedExamples, make_dataset

    good = encoded(np.full((128, 128, 3), 90, np.uint8), ".png")
    truncated_png = good[: len(good) // 2]  # its header is whole: only decoding finds the damage
    jpeg = encoded(np.full((128, 128, 3), 90, np.uint8), ".jpg")
    truncated_jpeg = jpeg[: len(jpeg) // 2]
    planted = {
        1: black_png(1500, 1500),
        3: truncated_png,
        5: truncated_jpeg,
        6: b"\xff\xd8\xff damaged header",
    }
    pattern = write_pose_shards(tmp_path / "train", 6, planted)
    spec = tfrecord.read_spec_sidecar(tfrecord.prefix_of(pattern))
    codec = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.0)
    skipped = SkippedExamples()
    budget = ImageBudget(max_pixels=10**6)
    dataset = make_dataset(pattern, spec, codec, batch_size=4, training=False, skipped=skipped, budget=budget)
    assert sum(len(weights) for _, _, weights in dataset) == 6
    assert skipped.counts() == (3, 1)  # (undecodable, over the budget)
    # Under the default budget the same PNG decodes (so the count above is the budget's doing).
    skipped = SkippedExamples()
    dataset = make_dataset(pattern, spec, codec, batch_size=4, training=False, skipped=skipped)
    assert sum(len(weights) for _, _, weights in dataset) == 7 and skipped.counts() == (3, 0)


def test_tfrecords_whose_only_images_are_over_the_budget_are_refused_when_opened(tmp_path):
    from hostile_inputs import write_pose_shards

    from tf_hourglass.data.pipeline import check_tfrecord_images

    pattern = write_pose_shards(tmp_path / "train", 0, {0: black_png(1500, 1500), 1: black_png(1200, 1200)})
    files = sorted(tf.io.gfile.glob(pattern))
    with pytest.raises(ValueError, match=r"none of the 2 example\(s\).*decodes within the image size limit"):
        check_tfrecord_images(files, "image/encoded", "data.train", ImageBudget(max_pixels=10**6))
    check_tfrecord_images(files, "image/encoded", "data.train")


def test_whole_image_tfrecords_over_the_budget_or_undecodable_are_skipped_by_the_multi_person_pipeline(
    tmp_path,
):
    from tf_hourglass.data import keypoint_specs, tfrecord
    from tf_hourglass.data.multi_person_pipeline import make_multi_person_dataset
    from tf_hourglass.data.pipeline import SkippedExamples
    from tf_hourglass.data.records import MultiPersonRecord

    photo = encoded(np.full((96, 128, 3), 90, np.uint8), ".png")
    record = MultiPersonRecord(
        image_path="photo.png", image_size=(96, 128), keypoints=np.zeros((1, 17, 3), np.float32), image_id=1
    )
    mask = encoded(np.full((96, 128), 255, np.uint8), ".png")
    planted = [
        (photo, b""),
        (black_png(1500, 1500), b""),  # over the budget
        (photo, black_png(1500, 1500)),  # its loss mask over the budget
        (photo[: len(photo) // 2], b""),  # a truncated body
        (photo, mask),
    ]
    path = str(tmp_path / "people-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for image, mask_png in planted:
            writer.write(
                tfrecord.serialize_image_example(image, record, height=96, width=128, mask_png=mask_png)
            )
    skipped = SkippedExamples()
    dataset = make_multi_person_dataset(
        path,
        keypoint_specs.COCO,
        batch_size=2,
        training=False,
        input_size=(64, 64),
        heatmap_size=(16, 16),
        budget=ImageBudget(max_pixels=10**6),
        skipped=skipped,
    )
    assert sum(len(images_) for images_, _ in dataset) == 2
    assert skipped.counts() == (1, 2)  # (undecodable, over the budget)
