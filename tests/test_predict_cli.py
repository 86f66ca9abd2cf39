"""python -m tf_hourglass.predict: pictures and JSON for photos, folders and videos; unreadable inputs."""

import json
import os
import subprocess
import sys
import zlib

import cv2
import keras
import numpy as np
import pytest

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.images import UnreadableInputError, read_image
from tf_hourglass.prediction.estimator import PoseEstimator
from tf_hourglass.prediction.files import predict_path

MPII_NAMES = list(keypoint_specs.MPII.keypoint_names)


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "tf_hourglass.predict", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tf_hourglass.from_preset("hg_tiny").save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def estimator(model_path):
    return PoseEstimator(model_path)


def check_outputs(output_dir, input_path, picture_extension):
    """The picture decodes at the input's size; the JSON has 16 named, finite keypoints."""
    stem = os.path.splitext(os.path.basename(input_path))[0]
    picture = cv2.imread(str(output_dir / (stem + picture_extension)))
    assert picture is not None, stem
    original = read_image(str(input_path))
    assert picture.shape[:2] == original.shape[:2]
    record = json.loads((output_dir / (stem + ".json")).read_text())
    assert record["image"] == str(input_path)
    assert (record["width"], record["height"]) == (original.shape[1], original.shape[0])
    assert record["box"] == [0.0, 0.0, original.shape[1], original.shape[0]]
    assert [k["name"] for k in record["keypoints"]] == MPII_NAMES
    assert all(np.isfinite([k["x"], k["y"], k["score"]]).all() for k in record["keypoints"])
    return record


@pytest.mark.parametrize("folder", ["people", "mpii/images"])
@pytest.mark.e2e
def test_real_photo_folders_give_pictures_and_json(shared_data, estimator, tmp_path, folder):
    input_dir = shared_data / folder
    summary = predict_path(estimator, str(input_dir), str(tmp_path), progress=False)
    names = sorted(os.listdir(input_dir))
    assert len(summary.written) == 2 * len(names) and not summary.skipped
    for name in names:
        check_outputs(tmp_path, input_dir / name, ".png" if name.endswith(".png") else ".jpg")
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_grayscale_rgba_and_16_bit_files_are_read(estimator, tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(90, 70), dtype=np.uint8)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "gray.png"), gray)
    cv2.imwrite(str(inputs / "rgba.png"), np.dstack([gray, gray, gray, np.full_like(gray, 128)]))
    cv2.imwrite(str(inputs / "deep.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(inputs / "gray.jpg"), gray)  # same stem as gray.png: outputs keep the extension
    assert read_image(str(inputs / "deep.png")).dtype == np.uint16
    assert read_image(str(inputs / "rgba.png")).shape == (90, 70, 4)
    out = tmp_path / "out"
    predict_path(estimator, str(inputs), str(out), progress=False)
    keypoints = []
    for stem in ("rgba", "deep"):
        keypoints.append(check_outputs(out, inputs / f"{stem}.png", ".png")["keypoints"])
    assert sorted(os.listdir(out)) == sorted(
        ["deep.json", "deep.png", "gray_jpg.jpg", "gray_jpg.json", "gray_png.json", "gray_png.png"]
        + ["rgba.json", "rgba.png"]
    )
    # Same pixel values in every encoding: the same keypoints.
    assert [k["x"] for k in keypoints[0]] == pytest.approx([k["x"] for k in keypoints[1]], abs=1e-3)


def test_unreadable_files_are_skipped_in_folders_and_named_otherwise(
    shared_data, estimator, tmp_path, caplog
):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (inputs / "notes.txt").write_text("hello")
    photo = shared_data / "mpii" / "images" / "004645041.jpg"
    (inputs / "photo.jpg").write_bytes(photo.read_bytes())
    summary = predict_path(estimator, str(inputs), str(tmp_path / "out"), progress=False)
    assert sorted(os.path.basename(p) for p in summary.skipped) == ["broken.jpg", "notes.txt"]
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.jpg", "photo.json"]
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text

    os.remove(inputs / "photo.jpg")
    with pytest.raises(UnreadableInputError, match="broken.jpg, notes.txt"):
        predict_path(estimator, str(inputs), str(tmp_path / "out2"), progress=False)
    with pytest.raises(UnreadableInputError, match="broken.jpg"):
        predict_path(estimator, str(inputs / "broken.jpg"), str(tmp_path / "out3"))
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predict_path(estimator, str(inputs / "missing.jpg"), str(tmp_path / "out4"))
    (inputs / "clip.mp4").write_bytes(b"not a video")
    with pytest.raises(UnreadableInputError, match="clip.mp4"):
        predict_path(estimator, str(inputs / "clip.mp4"), str(tmp_path / "out5"))
    assert not (tmp_path / "out5").exists()  # a failed run leaves no empty output folder


def test_bad_box_and_overwriting_the_input_are_refused(shared_data, estimator, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((shared_data / "mpii" / "images" / "004645041.jpg").read_bytes())
    width, height = read_image(str(photo)).shape[1::-1]
    with pytest.raises(ValueError, match=f"outside the image of width {width} and height {height}"):
        predict_path(estimator, str(photo), str(tmp_path / "out"), box=(width + 5, 0, 10, 10))
    with pytest.raises(ValueError, match="overwrite the input"):
        predict_path(estimator, str(photo), str(tmp_path))


def write_video(path, num_frames=10, size=(96, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    assert writer.isOpened()
    for i in range(num_frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.circle(frame, (10 + 7 * i, 32), 8, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()


def count_frames(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.e2e
def test_cli_annotates_a_video_frame_by_frame(model_path, tmp_path):
    video = tmp_path / "clip.avi"
    write_video(tmp_path / "clip.mp4")
    os.rename(tmp_path / "clip.mp4", video)  # any container OpenCV reads
    out = tmp_path / "out"
    result = run_cli("--model", model_path, "--input", str(video), "--output", str(out), "--flip")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["clip.json", "clip.mp4"]
    assert count_frames(out / "clip.mp4") == 10
    record = json.loads((out / "clip.json").read_text())
    assert (record["width"], record["height"], record["num_frames"]) == (96, 64, 10)
    assert [f["frame"] for f in record["frames"]] == list(range(10))
    for frame in record["frames"]:
        assert [k["name"] for k in frame["keypoints"]] == MPII_NAMES
        assert all(np.isfinite([k["x"], k["y"]]).all() for k in frame["keypoints"])


@pytest.mark.e2e
def test_cli_image_with_box_and_unreadable_input(shared_data, model_path, tmp_path):
    photo = shared_data / "people" / "astronaut.png"
    out = tmp_path / "out"
    result = run_cli(
        "--model", model_path, "--input", str(photo), "--output", str(out), "--box", "100,50,300,400"
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "astronaut.json").read_text())
    assert record["box"] == [100.0, 50.0, 300.0, 400.0]
    assert cv2.imread(str(out / "astronaut.png")) is not None

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"garbage")
    result = run_cli("--model", model_path, "--input", str(broken), "--output", str(tmp_path / "out2"))
    assert result.returncode != 0
    assert str(broken) in result.stderr and "Traceback" not in result.stderr
    result = run_cli("--model", model_path, "--input", str(photo), "--output", str(out), "--box", "1,2,3")
    assert result.returncode != 0 and "x,y,w,h" in result.stderr


def test_files_sharing_a_name_get_distinct_outputs_and_a_true_count(estimator, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    gray = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    for name in ("a.jpg", "a.png", "a_jpg.jpg"):
        cv2.imwrite(str(inputs / name), gray)
    summary = predict_path(estimator, str(inputs), str(tmp_path / "out"), progress=False)
    assert len(summary.written) == len(set(summary.written)) == 6
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in summary.written)
    images = {json.loads(open(p).read())["image"] for p in summary.written if p.endswith(".json")}
    assert images == {str(inputs / n) for n in ("a.jpg", "a.png", "a_jpg.jpg")}


def png_claiming(width, height) -> bytes:
    """A small PNG whose header says ``width`` x ``height`` (CRC fixed, so only the size is wrong)."""
    data = bytearray(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def test_empty_and_huge_header_images_are_skipped_in_a_folder(shared_data, estimator, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "huge.png").write_bytes(png_claiming(60000, 60000))
    (inputs / "photo.jpg").write_bytes((shared_data / "mpii" / "images" / "004645041.jpg").read_bytes())
    summary = predict_path(estimator, str(inputs), str(tmp_path / "out"), progress=False)
    assert sorted(os.path.basename(p) for p in summary.skipped) == ["empty.jpg", "huge.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.jpg", "photo.json"]
    with pytest.raises(UnreadableInputError, match="huge.png"):
        read_image(str(inputs / "huge.png"))


def test_output_that_is_a_file_is_named_and_kept(shared_data, estimator, tmp_path):
    photo = shared_data / "mpii" / "images" / "004645041.jpg"
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotADirectoryError, match=f"--output {str(tmp_path / 'notes.txt')!r} is a file"):
        predict_path(estimator, str(photo), str(tmp_path / "notes.txt"))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failed_predict_leaves_no_output_folder(estimator, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UnreadableInputError, match="broken.jpg"):
        predict_path(estimator, str(tmp_path / "broken.jpg"), str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def multi_person_model(tmp_path_factory):
    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("ae") / "ae_tiny.keras"
    model = tf_hourglass.from_preset("ae_tiny")
    # Its last output scaled by 8: a random network's detections then clear the grouping's
    # threshold, so the photos have people in them to write.
    output = model.get_layer("stack2_output_conv")
    kernel, bias = output.get_weights()
    output.set_weights([8.0 * kernel, bias])
    model.save(str(path))
    return str(path)


def test_each_person_is_drawn_in_a_colour_of_its_own():
    from tf_hourglass.visualization import PERSON_COLOURS, draw_people

    spec = keypoint_specs.COCO
    base = np.array(
        [
            [10, 10],
            [12, 8],
            [8, 8],
            [14, 9],
            [6, 9],
            [16, 16],
            [4, 16],
            [18, 24],
            [2, 24],
            [18, 32],
            [2, 32],
            [14, 34],
            [6, 34],
            [14, 44],
            [6, 44],
            [14, 54],
            [6, 54],
        ],
        np.float32,
    )
    people = np.stack([base + (20, 0), base + (60, 0)])  # two people side by side, apart
    drawn = draw_people(np.zeros((64, 96, 3), np.uint8), people, spec, np.ones((2, 17)))
    colours = []
    for left, right in ((0, 48), (48, 96)):
        pixels = drawn[:, left:right].reshape(-1, 3)
        found = {tuple(int(v) for v in p) for p in pixels if p.any()}
        colours.append(found & set(PERSON_COLOURS))
    assert colours[0] == {PERSON_COLOURS[0]} and colours[1] == {PERSON_COLOURS[1]}


def test_multi_person_model_draws_people_and_writes_coco_results(shared_data, multi_person_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "025508722.jpg"):
        (photos / name).write_bytes((shared_data / "people" / name).read_bytes())
    (photos / "000000000139.png").write_bytes((shared_data / "people" / "astronaut.png").read_bytes())
    estimator = PoseEstimator(multi_person_model)
    (photos / "coco_results.png").write_bytes((shared_data / "people" / "astronaut.png").read_bytes())
    summary = predict_path(estimator, str(photos), str(tmp_path / "out"), progress=False)
    assert len(summary.written) == 9 and not summary.skipped
    # The whole folder's people in one COCO results list, beside the image named coco_results.
    combined = json.loads((tmp_path / "out" / "coco_results_2.json").read_text())
    assert summary.written[-1] == str(tmp_path / "out" / "coco_results_2.json")
    everyone = []
    # COCO-style numeric names are the image ids; other photos get their place in the run.
    for name, image_id in (("000000000139.png", 139), ("025508722.jpg", 25508722), ("astronaut.png", 3)):
        stem, extension = os.path.splitext(name)
        results = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert isinstance(results, list)
        everyone += results
        for person in results:  # COCO keypoint results: x, y, score triples
            assert person["image_id"] == image_id and person["category_id"] == 1
            assert len(person["keypoints"]) == 17 * 3 and np.isfinite(person["keypoints"]).all()
            assert 0.0 <= person["score"]
        picture = cv2.imread(str(tmp_path / "out" / f"{stem}{extension}"))
        assert picture.shape[:2] == read_image(str(photos / name)).shape[:2]
    everyone += json.loads((tmp_path / "out" / "coco_results.json").read_text())
    assert len(combined) > 0 and sorted(combined, key=json.dumps) == sorted(everyone, key=json.dumps)
    with pytest.raises(ValueError, match="give no box"):
        predict_path(estimator, str(photos / "astronaut.png"), str(tmp_path / "out2"), box=(0, 0, 10, 10))


@pytest.mark.e2e
def test_cli_multi_person_video_lists_people_per_frame(multi_person_model, tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video)
    out = tmp_path / "out"
    result = run_cli("--model", multi_person_model, "--input", str(video), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "a multi-person model; finding every person" in result.stdout
    record = json.loads((out / "clip.json").read_text())
    assert [f["frame"] for f in record["frames"]] == list(range(10))
    assert all(frame["people"] for frame in record["frames"])
    for frame in record["frames"]:
        assert all(person["image_id"] == frame["frame"] for person in frame["people"])
    assert count_frames(out / "clip.mp4") == 10
