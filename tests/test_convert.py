"""The TFRecord converter: skip accounting, image handling, schema round trip, CLI."""

import functools
import json
import math
import os
import zlib

import cv2
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.data import convert, readers, sources, tfrecord
from tf_hourglass.data.images import decode_image
from tf_hourglass.training import data_sources

H, W = 96, 128
KEYPOINT_NAMES = ["l_hand", "r_hand", "head"]


def _gradient_bgr() -> np.ndarray:
    # Smooth content so JPEG round trips stay within a few grey levels.
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([2 * x, 2 * y, np.full_like(x, 90)], axis=-1).astype(np.uint8)


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def _person(image, box=(50, 40, 20, 20), **extra):
    entry = {"image": image, "keypoints": [[55, 45, 2], [65, 55, 1], [60, 42, 2]], "box": list(box)}
    entry.update(extra)
    return entry


@pytest.fixture
def planted(tmp_path):
    """A custom dataset with one example of every problem the converter must handle."""
    good = _encode(".jpg", _gradient_bgr())
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # BGR
    rgba[..., 3] = np.arange(W, dtype=np.uint8)[None, :]
    files = {
        "good.jpg": good,
        "truncated.jpg": good[: len(good) // 2],
        "text.jpg": b"this is a text file, not a photo\n",
        "gray.png": _encode(".png", _gradient_bgr()[..., 0]),
        "rgba.png": _encode(".png", rgba),
        "deep16.png": _encode(".png", np.full((H, W, 3), 200 * 257, np.uint16)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    annotations = [
        _person("good.jpg"),  # written
        _person("good.jpg", box=(10, 10, 30, 30)),  # written (second person, same photo)
        _person("truncated.jpg"),  # undecodable image
        _person("text.jpg"),  # undecodable image
        _person("gray.png"),  # written
        _person("rgba.png"),  # written
        _person("deep16.png"),  # written
        _person("missing.jpg"),  # missing image
        _person("good.jpg", keypoints=[[math.nan, math.nan, 2]] * 3),  # no annotated joint
        _person("good.jpg", scale=0),  # invalid box or scale
    ]
    data = {
        "format": "tf_hourglass.custom.v1",
        "keypoint_names": KEYPOINT_NAMES,
        "flip_pairs": [[0, 1]],
        "skeleton": [[0, 2], [1, 2]],
        "pck_normalizer": "head",
        "annotations": annotations,
    }
    (tmp_path / "train.json").write_text(json.dumps(data))  # NaN written as NaN on purpose
    return tmp_path


EXPECTED_REPORT = (
    "written=5 skipped=5\nmissing image: 1\nundecodable image: 2\nimage over the size limit: 0\n"
    "no annotated joint: 1\ninvalid box or scale: 1"
)


def _parsed(paths, num_keypoints=None):
    parse = functools.partial(tfrecord.parse_example, num_keypoints=num_keypoints)
    return list(tf.data.TFRecordDataset(paths).map(parse).as_numpy_iterator())


def test_cli_reports_exact_counts_per_skip_reason(planted, capsys):
    status = convert.main(
        [
            "convert",
            "--format=custom",
            f"--annotations={planted / 'train.json'}",
            "--output",
            str(planted / "out/train"),
            "--num-shards",
            "2",
        ]
    )
    assert status == 0
    assert capsys.readouterr().out.strip().endswith(EXPECTED_REPORT)
    assert sorted(p.name for p in (planted / "out").iterdir()) == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "train.spec.json",
    ]


def test_summary_counts_and_parse_example_round_trip(planted):
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(planted / "out/train"), progress=False
    )
    assert summary.report() == EXPECTED_REPORT
    assert summary.written == 5 and summary.num_skipped == 5

    _, records = readers.read_custom(str(planted / "train.json"))
    kept = [records[i] for i in (0, 1, 4, 5, 6)]  # one shard keeps the input order
    examples = _parsed(summary.shard_paths, num_keypoints=3)
    assert len(examples) == 5
    for record, ex in zip(kept, examples, strict=True):
        np.testing.assert_array_equal(ex["keypoints"], record.keypoints)
        np.testing.assert_array_equal(ex["has_gt"], record.has_gt)
        np.testing.assert_array_equal(ex["visible"], [True, False, True])
        np.testing.assert_array_equal(ex["center"], record.center)
        assert ex["scale"] == np.float32(record.scale)
        np.testing.assert_array_equal(ex["box"], record.box)
        assert ex["has_box"] and ex["record_id"] == record.record_id and ex["num_keypoints"] == 3
        assert ex["image/path"].decode() == record.image_path
        assert (ex["image/original_height"], ex["image/original_width"]) == (H, W)
        assert math.isnan(ex["normalizer"])

    # Person 0: box (50, 40, 20, 20) -> centre (60, 50), scale 0.125, crop side
    # 200 * 0.125 * 1.75 = 43.75 -> pixels x 38..82, y 28..72.
    first = examples[0]
    np.testing.assert_array_equal(first["image/crop_offset"], [38, 28])
    image = decode_image(first["image/encoded"]).numpy()
    assert image.shape == (first["image/height"], first["image/width"], 3) == (45, 45, 3)
    original_rgb = _gradient_bgr()[28:73, 38:83, ::-1]
    assert np.abs(image.astype(int) - original_rgb).mean() < 2.0
    # Keypoints map into the stored crop by subtracting the offset.
    in_crop = first["keypoints"] - first["image/crop_offset"]
    assert np.all((in_crop >= 0) & (in_crop < 45))

    gray, rgba, deep = (decode_image(ex["image/encoded"]).numpy() for ex in examples[2:])
    assert gray.shape[-1] == 3 and np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 2
    assert np.abs(rgba.reshape(-1, 3).mean(0) - [30, 20, 10]).max() < 1.5  # alpha dropped, RGB order
    assert np.abs(deep.astype(int) - 200).max() <= 2  # 16-bit 51400 -> 8-bit 200


def test_parse_example_without_num_keypoints_gives_dynamic_shapes(planted):
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(planted / "out/t"), progress=False
    )
    example = _parsed(summary.shard_paths)[0]
    assert example["keypoints"].shape == (3, 2) and example["has_gt"].dtype == bool
    record = tfrecord.example_to_record(example)
    assert record.image_path == str(planted / "good.jpg")
    np.testing.assert_array_equal(record.keypoints, [[55, 45], [65, 55], [60, 42]])
    np.testing.assert_array_equal(record.box, [50, 40, 20, 20])


def test_full_image_keeps_original_jpeg_bytes(planted):
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(planted / "full"), full_image=True, progress=False
    )
    assert summary.written == 5
    examples = _parsed(summary.shard_paths, num_keypoints=3)
    assert examples[0]["image/encoded"] == (planted / "good.jpg").read_bytes()
    np.testing.assert_array_equal(examples[0]["image/crop_offset"], [0, 0])
    assert (examples[0]["image/height"], examples[0]["image/width"]) == (H, W)
    # The grayscale PNG is re-encoded as 3-channel JPEG of the same size.
    gray = decode_image(examples[2]["image/encoded"]).numpy()
    assert gray.shape == (H, W, 3)
    assert examples[2]["image/encoded"][:3] == b"\xff\xd8\xff"


def test_shards_are_dealt_round_robin_with_a_spec_sidecar(planted):
    prefix = str(planted / "out/train")
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, prefix, num_shards=3, progress=False
    )
    assert summary.shard_paths == [f"{prefix}-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert tfrecord.list_shards(prefix) == summary.shard_paths
    assert [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in summary.shard_paths] == [2, 2, 1]
    spec = tfrecord.read_spec_sidecar(prefix)
    assert spec.keypoint_names == tuple(KEYPOINT_NAMES) and spec.flip_pairs == ((0, 1),)
    sidecar = json.loads((planted / "out/train.spec.json").read_text())
    assert sidecar["num_examples"] == 5 and sidecar["image_storage"] == "crop"
    assert sidecar["crop_margin"] == convert.DEFAULT_CROP_MARGIN
    assert not list((planted / "out").glob("*.tmp-*"))


def test_cli_fails_and_leaves_no_files_when_nothing_is_written(planted, capsys):
    data = json.loads((planted / "train.json").read_text())
    data["annotations"] = [_person("missing.jpg"), _person("also_missing.jpg")]
    (planted / "none.json").write_text(json.dumps(data))
    status = convert.main(
        [
            "convert",
            "--format=custom",
            f"--annotations={planted / 'none.json'}",
            f"--output={planted / 'out/x'}",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert "written=0 skipped=2\nmissing image: 2" in out
    assert "no example was written" in err and "none.json" in err
    assert not (planted / "out").exists() or not list((planted / "out").iterdir())


def test_cli_fails_on_malformed_annotations_naming_the_file(planted, capsys):
    (planted / "bad.json").write_text('{"format": "tf_hourglass.custom.v1", "keypoint_names": [')
    status = convert.main(
        ["convert", "--format=custom", f"--annotations={planted / 'bad.json'}", f"--output={planted / 'o'}"]
    )
    assert status == 1
    assert "bad.json: not valid JSON" in capsys.readouterr().err


def test_cli_rejects_crop_margin_with_full_image(planted, capsys):
    argv = [
        "convert",
        "--format=custom",
        f"--annotations={planted / 'train.json'}",
        f"--output={planted / 'o'}",
    ]
    assert convert.main([*argv, "--crop-margin=0.5", "--full-image"]) == 2
    assert "mutually exclusive" in capsys.readouterr().err


def test_truncated_jpeg_is_detected():
    data = _encode(".jpg", _gradient_bgr())
    assert not convert.is_truncated_jpeg(data)
    assert convert.is_truncated_jpeg(data[:-300])


def test_converts_the_real_mpii_sample(shared_data, tmp_path):
    annotations = str(shared_data / "mpii/annot/valid.h5")
    images = str(shared_data / "mpii/images")
    summary = convert.convert_dataset("mpii_h5", annotations, images, str(tmp_path / "mpii"), progress=False)
    # Only the photos of rows 0-4 are in the sample.
    assert summary.written == 5
    assert summary.skipped == {
        "missing image": 2953,
        "undecodable image": 0,
        "image over the size limit": 0,
        "no annotated joint": 0,
        "invalid box or scale": 0,
    }
    _, records = readers.read_mpii_h5(annotations, images)
    for record, ex in zip(records[:5], _parsed(summary.shard_paths, num_keypoints=16), strict=True):
        np.testing.assert_array_equal(ex["keypoints"], record.keypoints)
        np.testing.assert_array_equal(ex["has_gt"], record.has_gt)
        assert ex["normalizer"] == np.float32(record.normalizer)
        x0, y0 = ex["image/crop_offset"]
        assert 0 <= x0 and x0 + ex["image/width"] <= ex["image/original_width"]
        assert 0 <= y0 and y0 + ex["image/height"] <= ex["image/original_height"]


def test_converting_again_with_fewer_shards_removes_the_old_shards(planted):
    prefix = str(planted / "out/train")
    convert.convert_dataset("custom", str(planted / "train.json"), None, prefix, num_shards=3, progress=False)
    (planted / "out/train-other.txt").write_text("mine")  # not a shard: kept
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, prefix, num_shards=2, progress=False
    )
    assert tfrecord.list_shards(prefix) == summary.shard_paths
    assert sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{prefix}-*-of-*.tfrecord"))) == 5
    assert (planted / "out/train-other.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "pattern",
    [
        "out/lspet-train-*-of-*.tfrecord",
        "out/lspet-train-00000-of-00004.tfrecord",
        "out/lspet-train-?????-of-?????.tfrecord",
        "out/lspet-train*",
        "out/lspet-train-*.tfrecord",
        "out/lspet-train-*",
    ],
)
def test_prefix_of_a_shard_pattern_keeps_dashes_in_the_prefix(pattern):
    assert tfrecord.prefix_of(pattern) == "out/lspet-train"


def test_training_reads_the_spec_of_a_prefix_with_dashes(planted):
    prefix = str(planted / "out/lspet-train")
    convert.convert_dataset("custom", str(planted / "train.json"), None, prefix, progress=False)
    data_config = ml_collections.ConfigDict(
        {
            "format": "tfrecord",
            "spec": "",
            "train_annotations": f"{prefix}-*-of-*.tfrecord",
            "val_annotations": f"{prefix}-*-of-*.tfrecord",
        }
    )
    assert data_sources.load_sources(data_config).spec.keypoint_names == tuple(KEYPOINT_NAMES)
    # Export calibration data ("tfrecord:PATTERN") finds the same spec.
    assert sources.tfrecord_spec(f"{prefix}-*-of-*.tfrecord").keypoint_names == tuple(KEYPOINT_NAMES)


def test_empty_and_huge_header_images_are_skipped_and_counted(planted):
    (planted / "empty.jpg").write_bytes(b"")
    huge = bytearray(_encode(".png", _gradient_bgr()))  # header patched to 60000 x 60000, CRC fixed
    huge[16:24] = (60000).to_bytes(4, "big") * 2
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")
    (planted / "huge.png").write_bytes(bytes(huge))
    data = json.loads((planted / "train.json").read_text())
    data["annotations"] += [_person("empty.jpg"), _person("huge.png")]
    (planted / "train.json").write_text(json.dumps(data))
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(planted / "out/train"), progress=False
    )
    assert summary.written == 5
    assert summary.skipped[convert.UNDECODABLE_IMAGE] == 3
    assert summary.skipped[convert.IMAGE_OVER_BUDGET] == 1


def test_images_over_the_budget_a_3_gb_file_and_a_fifo_are_skipped_and_counted(planted, capsys):
    huge = bytearray(_encode(".png", _gradient_bgr()))  # header patched to 10000 x 10000, CRC fixed
    huge[16:24] = (10000).to_bytes(4, "big") * 2
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")
    (planted / "huge.png").write_bytes(bytes(huge))
    with open(planted / "big.jpg", "wb") as f:
        f.truncate(3 * 2**30)  # sparse: no disk, and never read
    os.mkfifo(planted / "pipe.jpg")  # opened for reading, it would wait for a writer forever
    data = json.loads((planted / "train.json").read_text())
    data["annotations"] += [_person(name) for name in ("huge.png", "big.jpg", "pipe.jpg", "good.jpg")]
    (planted / "train.json").write_text(json.dumps(data))
    argv = ["convert", "--format=custom", f"--annotations={planted / 'train.json'}"]
    assert convert.main([*argv, f"--output={planted / 'out/train'}"]) == 0
    out = capsys.readouterr().out
    assert "written=6 skipped=8\n" in out and "image over the size limit: 2\n" in out
    assert "undecodable image: 3\n" in out  # truncated.jpg, text.jpg and the FIFO
    # --max-image-pixels: the good photos (W x H each) are over a budget one pixel smaller.
    assert convert.main([*argv, f"--output={planted / 'out/small'}", f"--max-image-pixels={W * H - 1}"]) == 1
    assert "image over the size limit: 9\n" in capsys.readouterr().out


@pytest.mark.parametrize("output", ["notes.txt/train", "/proc/1/no/train"])
def test_cli_output_that_cannot_be_written_fails_with_one_line(planted, capsys, output):
    (planted / "notes.txt").write_text("mine")
    output = output if output.startswith("/") else str(planted / output)
    argv = ["convert", "--format=custom", f"--annotations={planted / 'train.json'}", f"--output={output}"]
    assert convert.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"convert: error: --output {output!r}: cannot write there") and err.count("\n") == 1
    assert (planted / "notes.txt").read_text() == "mine"


def test_cli_that_writes_nothing_leaves_no_output_folder(planted, capsys):
    data = json.loads((planted / "train.json").read_text())
    data["annotations"] = [_person("missing.jpg")]
    (planted / "none.json").write_text(json.dumps(data))
    argv = ["convert", "--format=custom", f"--annotations={planted / 'none.json'}"]
    assert convert.main([*argv, f"--output={planted / 'new/deeper/x'}"]) == 1
    assert not (planted / "new").exists()


def test_temporary_shards_of_a_killed_conversion_are_removed_and_reported(planted, capsys):
    (planted / "out").mkdir()
    leftover = planted / "out/train-00000-of-00002.tfrecord.tmp-1a2b3c4d"
    leftover.write_bytes(b"half a shard")
    (planted / "out/train-notes.tmp-1").write_text("mine")  # not a shard of ours: kept
    argv = ["convert", "--format=custom", f"--annotations={planted / 'train.json'}"]
    assert convert.main([*argv, f"--output={planted / 'out/train'}"]) == 0
    assert not leftover.exists() and (planted / "out/train-notes.tmp-1").read_text() == "mine"
    assert "removed 1 temporary file(s) left by an interrupted conversion" in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["exp[1]", "ex?1", "e*"])
def test_an_output_prefix_with_glob_characters_touches_only_its_own_shards(planted, folder):
    other = planted / "exp1"
    convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(other / "train"), num_shards=2, progress=False
    )
    leftover = other / "train-00000-of-00001.tfrecord.tmp-1a2b3c4d"  # a running conversion's
    leftover.write_bytes(b"half a shard")
    before = sorted(p.name for p in other.iterdir())
    summary = convert.convert_dataset(
        "custom", str(planted / "train.json"), None, str(planted / folder / "train"), progress=False
    )
    assert summary.removed_temp_files == 0
    assert sorted(p.name for p in other.iterdir()) == before
    assert sorted(p.name for p in (planted / folder).iterdir()) == [
        "train-00000-of-00001.tfrecord",
        "train.spec.json",
    ]
    assert tfrecord.list_shards(str(planted / folder / "train")) == summary.shard_paths


def test_a_second_conversion_to_a_busy_prefix_refuses_and_keeps_the_first_ones_files(planted, capsys):
    prefix = planted / "out/train"
    (planted / "out").mkdir()
    running = planted / "out/train-00000-of-00001.tfrecord.tmp-1a2b3c4d"  # the first run's, being written
    running.write_bytes(b"half a shard")
    argv = ["convert", "--format=custom", f"--annotations={planted / 'train.json'}", f"--output={prefix}"]
    with convert.output_prefix_lock(str(prefix)):  # the first run, still converting
        assert convert.main(argv) == 1
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and f"convert: error: --output {str(prefix)!r} is in use by another" in err
        )
        assert running.read_bytes() == b"half a shard"
        assert sorted(p.name for p in (planted / "out").iterdir()) == [running.name, "train.lock"]
        other = str(planted / "out/valid")  # another prefix in the same folder is not held
        assert convert.main([*argv[:-1], f"--output={other}"]) == 0
        assert tfrecord.list_shards(other) == [f"{other}-00000-of-00001.tfrecord"]
        assert running.read_bytes() == b"half a shard"
    assert convert.main(argv) == 0  # the lock is released, and its file removed
    assert sorted(p.name for p in (planted / "out").iterdir()) == [
        "train-00000-of-00001.tfrecord",
        "train.spec.json",
        "valid-00000-of-00001.tfrecord",
        "valid.spec.json",
    ]
