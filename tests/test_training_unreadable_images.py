"""Training with unreadable images ends (issue 27, item 4).

Every training image missing or undecodable: the run stops at once, one line
naming the first few (it used to wait forever for a first batch). Some of
them: the run drops them and prints their count after every epoch.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest
import tensorflow as tf
from training_helpers import load_config, write_tiny_config

from tf_hourglass.data import readers, tfrecord
from tf_hourglass.data.synthetic import write_custom_dataset
from tf_hourglass.training import multi_person_loop, trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def custom_data(tmp_path):
    train = write_custom_dataset(str(tmp_path / "train"), 24, seed=11, image_size=128)
    val = write_custom_dataset(str(tmp_path / "val"), 8, seed=12, image_size=128)
    return train, val


def image_files(annotations) -> list[str]:
    _, records = readers.read_dataset("custom", annotations, None)
    return sorted({r.image_path for r in records})


def run_train(tmp_path, *flags):
    return subprocess.run(
        [sys.executable, "-m", "tf_hourglass.train", f"--config={write_tiny_config(tmp_path, 1)}", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # before: the input pipeline waited forever for a first readable example
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )


@pytest.mark.e2e
def test_training_with_every_image_missing_or_undecodable_stops_at_once_naming_the_first_few(
    tmp_path, custom_data
):
    train, val = custom_data
    files = image_files(train)
    for path in files[:12]:
        os.remove(path)
    for path in files[12:]:
        Path(path).write_bytes(b"not an image at all")
    result = run_train(
        tmp_path,
        f"--workdir={tmp_path / 'run'}",
        "--config.data.format=custom",
        f"--config.data.train_annotations={train}",
        f"--config.data.val_annotations={val}",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("train: error:")]
    assert len(error) == 1, result.stderr[-2000:]
    assert f"data.train custom:{train}: none of its 24 image file(s) can be read" in error[0]
    assert f"Image file {files[0]} does not exist" in error[0] and files[3] not in error[0]


@pytest.mark.e2e
def test_training_with_some_images_missing_prints_their_count_every_epoch(tmp_path, custom_data, capsys):
    train, val = custom_data
    files = image_files(train)
    for path in files[:3]:
        os.remove(path)
    Path(files[3]).write_bytes(b"")  # empty
    config = load_config(write_tiny_config(tmp_path, epochs=2))
    config.data.format = "custom"
    config.data.train_annotations = train
    config.data.val_annotations = val
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    for epoch in (1, 2):
        assert f"epoch {epoch}: 4 of 24 training image file(s) skipped" in out


def test_images_over_the_configured_budget_are_skipped_when_the_data_is_opened(tmp_path, custom_data):
    from tf_hourglass.training import data_sources

    train, val = custom_data
    data_config = load_config(write_tiny_config(tmp_path)).data
    data_config.format = "custom"
    data_config.train_annotations, data_config.val_annotations = train, val
    data_config.max_image_pixels = 128 * 128 - 1
    with pytest.raises(ValueError, match=r"none of its 24 image file\(s\) can be read.*max_image_pixels"):
        data_sources.load_sources(data_config)
    data_config.max_image_pixels = 128 * 128
    assert data_sources.load_sources(data_config).skipped_train_images == (0, 24)


def write_undecodable_shards(prefix, num_examples=6):
    """Single-person TFRecords whose every image is bytes no decoder reads."""
    spec, records = readers.read_dataset("custom", write_custom_dataset(f"{prefix}_src", 2, seed=3), None)
    path = tfrecord.shard_path(str(prefix), 0, 1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for index in range(num_examples):
            writer.write(
                tfrecord.serialize_example(b"\xff\xd8\xff garbage", records[index % 2], height=9, width=9)
            )
    tfrecord.write_spec_sidecar(str(prefix), spec, num_examples=num_examples, shards=[os.path.basename(path)])
    return f"{prefix}-*-of-*.tfrecord"


@pytest.mark.e2e
def test_training_on_tfrecords_whose_every_image_is_undecodable_stops_at_once(tmp_path):
    pattern = write_undecodable_shards(tmp_path / "shards" / "train")
    result = run_train(
        tmp_path,
        f"--workdir={tmp_path / 'run'}",
        "--config.data.format=tfrecord",
        f"--config.data.train_annotations={pattern}",
        f"--config.data.val_annotations={pattern}",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "none of the 6 example(s)" in result.stderr and "has an image that decodes" in result.stderr


def test_multi_person_training_with_every_photo_missing_stops_when_the_data_is_opened(tmp_path, shared_data):
    from tf_hourglass.data.synthetic.writer import write_custom_scenes

    annotations = write_custom_scenes(str(tmp_path / "scenes"), 3, image_size=64)
    for name in os.listdir(tmp_path / "scenes" / "images"):
        os.remove(tmp_path / "scenes" / "images" / name)
    config = ml_collections.ConfigDict(
        {
            "data": {
                "train": f"custom:{annotations}",
                "val": f"coco:{shared_data / 'coco' / 'person_keypoints_sample.json'}",
            }
        }
    )
    with pytest.raises(
        ValueError, match=r"none of its 3 image file\(s\) can be read: Image file .* does not exist"
    ):
        multi_person_loop.load_people_data(config, str(tmp_path))


HOSTILE_SHARD_SCRIPT = """
import json, resource, sys
from tf_hourglass.training import trainer
from training_helpers import load_config

config_path, clean, hostile, workdir = sys.argv[1:]


def train(pattern, name, epochs):
    config = load_config(config_path)
    config.data.train = f"tfrecord:{pattern}"
    config.data.val = f"tfrecord:{clean}"
    config.train.epochs = epochs
    trainer.train_and_evaluate(config, f"{workdir}/{name}")


train(clean, "clean", 1)  # everything but the hostile image: tracing, the model, the pipeline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
train(hostile, "hostile", 2)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kb": after - before}))
"""


@pytest.mark.e2e
def test_a_tfrecord_png_claiming_10000x10000_is_skipped_undecoded_in_bounded_memory_and_counted(tmp_path):
    from hostile_inputs import black_png, write_pose_shards

    clean = write_pose_shards(tmp_path / "clean" / "train", 8, {})
    hostile = write_pose_shards(tmp_path / "hostile" / "train", 8, {4: black_png(10000, 10000)})
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            HOSTILE_SHARD_SCRIPT,
            str(write_tiny_config(tmp_path, 1)),
            clean,
            hostile,
            str(tmp_path / "runs"),
        ],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Decoding it would take 300 MB as uint8, and the warp's padded copy as much again.
    grew_kb = json.loads(result.stdout.strip().splitlines()[-1])["grew_kb"]
    assert grew_kb < 400 * 1024, grew_kb  # 118 MB measured; 1.86 GB when the image is decoded
    # Epoch 1 reads all 9 examples (it trains on 12), so the PNG is counted from epoch 1 on; by the end
    # of epoch 2, 24 examples trained on are 3 passes over the 8 good ones, so it was read twice at least.
    lines = re.findall(
        r"epoch (\d): (\d+) training example\(s\) skipped by the input pipeline \((\d+) "
        r"undecodable, (\d+) over the image size limit\); (\d+) in this run so far",
        result.stdout,
    )
    assert [line[0] for line in lines] == ["1", "2"], result.stdout[-3000:]
    assert all(undecodable == "0" and over == this_epoch for _, this_epoch, undecodable, over, _ in lines)
    assert int(lines[0][1]) >= 1 and int(lines[-1][4]) == int(lines[0][1]) + int(lines[1][1]) >= 2


@pytest.mark.e2e
def test_training_images_with_a_truncated_body_are_counted_every_epoch(tmp_path, custom_data, capsys):
    train, val = custom_data
    files = image_files(train)
    # Valid headers, half a body: only decoding finds them (the first file decodes, as the open-time probe needs).
    for path in files[5:8]:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
    config = load_config(write_tiny_config(tmp_path, epochs=2))
    config.data.train = f"custom:{train}"
    config.data.val = f"custom:{val}"
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "training image file(s) skipped" not in out  # their headers are sound: no file was dropped
    lines = re.findall(
        r"epoch (\d): (\d+) training example\(s\) skipped by the input pipeline \((\d+) "
        r"undecodable, (\d+) over the image size limit\); (\d+) in this run so far",
        out,
    )
    assert lines and lines[-1][0] == "2", out[-3000:]
    assert all(
        over_budget == "0" and undecodable == this_epoch
        for _, this_epoch, undecodable, over_budget, _ in lines
    )
    # By the end of epoch 2 the 24 examples were all read once (24 good ones trained on), so the 3 were
    # counted; how far the pipeline has read ahead by then depends on the machine's load.
    assert int(lines[-1][4]) >= 3, lines
