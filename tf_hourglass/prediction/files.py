"""A ``PoseEstimator`` over image files, folders and videos: skeleton pictures and keypoint JSON.

The library behind ``python -m tf_hourglass.predict``. For an image ``NAME.EXT``
it writes ``NAME.png`` (PNG inputs) or ``NAME.jpg`` (others) with the skeleton
drawn, and ``NAME.json``::

    {"image": "path/NAME.EXT", "width": W, "height": H, "box": [x, y, w, h],
     "keypoints": [{"name": "r_ankle", "x": ..., "y": ..., "score": ...}, ...]}

(with ``"note": WHOLE_IMAGE_NOTE`` when no box was given). For an estimator
that finds every person (a multi-person model, or a single-person one with a
person model) ``NAME.json`` is a list of people as COCO keypoint results
(``people_to_coco_results``), each with its ``"box"`` when a person model found it;
for a folder, ``coco_results.json`` also lists the people of all its images in
one COCO results list, as pycocotools' ``loadRes`` takes it (``coco_results_2.json``
... if an image is named ``coco_results``).

For a video (mp4, avi, mov, mkv) it writes ``NAME.mp4`` (mp4v codec) with the
skeleton drawn on every frame and ``NAME.json`` with the keypoints of every
frame. Every file is written to a temporary name and renamed, so a reader
never sees half a file.

Coordinates are pixels of the image as stored (pixel centres at integers);
EXIF orientation is ignored, as the dataset readers and the pipeline do.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from tf_hourglass import atomic_files
from tf_hourglass.atomic_files import make_output_folder, remove_empty_folders
from tf_hourglass.data.images import (
    DEFAULT_BUDGET,
    ImageBudget,
    UnreadableInputError,
    open_image_file,
    read_image,
)
from tf_hourglass.prediction.estimator import PoseEstimator, to_rgb_float
from tf_hourglass.visualization import draw_people, draw_skeleton

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
# What a single-person result without a box says (in its JSON and on the command's output).
WHOLE_IMAGE_NOTE = (
    "no box: the whole image is the person's box (give --box, or --person-model to find people)"
)


@dataclasses.dataclass
class PredictionSummary:
    """What a run wrote, and the inputs it skipped because they could not be read."""

    written: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def keypoints_to_json(spec, keypoints, scores) -> list[dict]:
    """[{"name", "x", "y", "score"}, ...] in the spec's joint order."""
    return [
        {"name": name, "x": float(x), "y": float(y), "score": float(score)}
        for name, (x, y), score in zip(spec.keypoint_names, keypoints, scores, strict=True)
    ]


def people_to_coco_results(result: dict, image_id: int) -> list[dict]:
    """A multi-person result as COCO keypoint results: per person ``keypoints`` as x, y, score triples
    (the joint's detection value; 0 for a joint not found) and the person's ``score``; with a person
    model (``result["boxes"]``) also the person's ``box`` [x, y, w, h], and the joints are the
    single-person model's."""
    people = [
        {
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [float(v) for v in np.concatenate([points, values[:, None]], axis=1).reshape(-1)],
            "score": float(score),
        }
        for points, values, score in zip(
            result["keypoints"], result["keypoint_scores"], result["scores"], strict=True
        )
    ]
    for person, box in zip(people, result.get("boxes", [None] * len(people)), strict=True):
        if box is not None:
            person["box"] = [float(v) for v in box]
    return people


def _image_id(stem: str, default: int) -> int:
    """COCO's own file names are their image ids (000000000139.jpg); other photos get ``default``."""
    return int(stem) if stem.isdigit() else default


def _check_not_input(output_path: str, input_path: str) -> None:
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise ValueError(
            f"Output {output_path} would overwrite the input {input_path}; choose another --output."
        )


def _draw(estimator: PoseEstimator, image, result) -> np.ndarray:
    """The picture of a result: one skeleton, or every person in a colour of its own."""
    if estimator.multi_person:
        return draw_people(image, result["keypoints"], estimator.spec, result["keypoint_scores"])
    return draw_skeleton(image, result["keypoints"], estimator.spec, result["scores"])


def predict_image_file(
    estimator: PoseEstimator,
    path: str,
    output_dir: str,
    box=None,
    name: str | None = None,
    image_id: int = 1,
    budget: ImageBudget = DEFAULT_BUDGET,
    coco_results: list | None = None,
) -> list[str]:
    """Predicts on one image file; writes ``NAME.jpg``/``NAME.png`` and ``NAME.json``.

    For a multi-person model ``NAME.json`` is a COCO keypoint results list
    (``image_id``: the file's name when it is a number, as COCO's, else ``image_id``),
    also appended to ``coco_results`` when given.
    Returns the paths written. An image over ``budget`` is refused before it is decoded.
    """
    image = read_image(path, budget)
    result = estimator.predict(image, box)
    stem = name or os.path.splitext(os.path.basename(path))[0]
    extension = ".png" if path.lower().endswith(".png") else ".jpg"
    picture_path = os.path.join(output_dir, stem + extension)
    json_path = os.path.join(output_dir, stem + ".json")
    for output in (picture_path, json_path):
        _check_not_input(output, path)

    drawn = _draw(estimator, to_rgb_float(image), result)
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode the picture for {path} as {extension}.")
    atomic_files.write_bytes(picture_path, encoded.tobytes())
    if estimator.multi_person:
        stem_id = _image_id(os.path.splitext(os.path.basename(path))[0], image_id)
        record = people_to_coco_results(result, stem_id)
        if coco_results is not None:
            coco_results.extend(record)
    else:
        record = {
            "image": path,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "box": [float(v) for v in result["box"]],
            "keypoints": keypoints_to_json(estimator.spec, result["keypoints"], result["scores"]),
        }
        if box is None:
            record["note"] = WHOLE_IMAGE_NOTE
    atomic_files.write_text(json_path, json.dumps(record, indent=1) + "\n")
    return [picture_path, json_path]


def _output_stems(paths: list[str]) -> list[str]:
    """Distinct output names: the file stem; files sharing a stem (a.jpg, a.png) keep their
    extension (a_jpg, a_png); a name still taken (by a_jpg.jpg) gets a number (a_jpg_2)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = []
    for path, stem in zip(paths, stems, strict=True):
        base = os.path.basename(path).replace(".", "_") if stems.count(stem) > 1 else stem
        name, number = base, 1
        while name in names:
            number += 1
            name = f"{base}_{number}"
        names.append(name)
    return names


def predict_directory(
    estimator: PoseEstimator,
    directory: str,
    output_dir: str,
    box=None,
    progress: bool = True,
    budget: ImageBudget = DEFAULT_BUDGET,
) -> PredictionSummary:
    """Every file of ``directory`` (not recursive): images, and videos by extension.

    Files that cannot be read (a FIFO, socket or device among them, never
    opened; images over ``budget``, never decoded) are skipped with a warning
    listing them.

    Raises:
        UnreadableInputError: no file could be read.
    """
    names = sorted(
        n
        for n in tf.io.gfile.listdir(directory)
        if not n.startswith(".") and not tf.io.gfile.isdir(os.path.join(directory, n))
    )
    paths = [os.path.join(directory, n) for n in names]
    if not paths:
        raise UnreadableInputError(f"Input directory {directory} has no files.")
    summary = PredictionSummary()
    stems = _output_stems(paths)
    coco_results, images_done = [], 0
    for index, (path, stem) in enumerate(
        zip(tqdm(paths, desc="predict", unit="file", disable=not progress), stems, strict=True)
    ):
        try:
            if is_video(path):
                summary.written += predict_video(
                    estimator, path, output_dir, box, name=stem, progress=progress
                )
            else:
                summary.written += predict_image_file(
                    estimator,
                    path,
                    output_dir,
                    box,
                    name=stem,
                    image_id=index + 1,
                    budget=budget,
                    coco_results=coco_results,
                )
                images_done += 1
        except UnreadableInputError as error:
            summary.skipped.append(path)
            logging.debug("Skipping %s: %s", path, error)
    if estimator.multi_person and images_done:
        name, number = "coco_results", 1
        while name in stems:
            number += 1
            name = f"coco_results_{number}"
        combined = os.path.join(output_dir, name + ".json")
        atomic_files.write_text(combined, json.dumps(coco_results) + "\n")
        summary.written.append(combined)
    if summary.skipped:
        logging.warning(
            "Skipped %d unreadable file(s) in %s: %s",
            len(summary.skipped),
            directory,
            ", ".join(os.path.basename(p) for p in summary.skipped),
        )
    if not summary.written:
        raise UnreadableInputError(
            f"None of the {len(paths)} file(s) in {directory} could be read as an image or video: "
            + ", ".join(os.path.basename(p) for p in summary.skipped)
        )
    return summary


def _open_video(path: str):
    # A FIFO, socket or device named like a video is refused before OpenCV opens it (and waits).
    # Videos are read frame by frame: the byte limit is not theirs.
    open_image_file(path, ImageBudget(max_bytes=2**62)).close()
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise UnreadableInputError(f"Cannot open video {path} (missing, or a format OpenCV cannot read).")
    return capture


def _read_frames(capture, count: int) -> list[np.ndarray]:
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def _check_written_video(tmp_path: str, video_path: str, num_frames: int) -> None:
    """Raises ``OSError`` naming ``video_path`` unless ``tmp_path`` opens as a video of ``num_frames``.

    ``cv2.VideoWriter`` reports no write failure: on a full disk (or past a file size limit) it
    leaves a truncated file without its index, which must not replace the previous output.
    """
    capture = cv2.VideoCapture(tmp_path)
    try:
        written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if written != num_frames:
        raise OSError(
            f"{video_path}: OpenCV wrote an unreadable or incomplete video ({max(written, 0)} of "
            f"{num_frames} frames; is the disk full?); the previous file, if any, is kept."
        )


def predict_video(
    estimator: PoseEstimator,
    path: str,
    output_dir: str,
    box=None,
    name: str | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> list[str]:
    """Predicts on every frame of a video; writes ``NAME.mp4`` (annotated) and ``NAME.json``.

    The JSON holds ``{"video", "width", "height", "fps", "num_frames", "box",
    "frames": [{"frame": i, "keypoints": [{"name", "x", "y", "score"}, ...]}, ...]}``
    (``box`` is null when each frame was used whole); for a multi-person model
    each frame has ``"people"``, COCO keypoint results with the frame as ``image_id``.
    """
    stem = name or os.path.splitext(os.path.basename(path))[0]
    video_path = os.path.join(output_dir, stem + ".mp4")
    json_path = os.path.join(output_dir, stem + ".json")
    for output in (video_path, json_path):
        _check_not_input(output, path)
    capture = _open_video(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if np.isfinite(fps) and fps > 0 else 30.0  # some containers do not store it
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    frames_json = []
    size = None
    # cv2.VideoWriter picks the container from the extension, so the temp name ends in .mp4.
    with atomic_files.atomic_path(video_path, suffix=".mp4") as tmp_path:
        try:
            with tqdm(total=total, desc=os.path.basename(path), unit="frame", disable=not progress) as bar:
                while frames := _read_frames(capture, batch_size):
                    results = estimator.predict_batch(frames, [box] * len(frames), batch_size=batch_size)
                    for frame, result in zip(frames, results, strict=True):
                        if writer is None:
                            size = (frame.shape[1], frame.shape[0])
                            writer = cv2.VideoWriter(tmp_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                            if not writer.isOpened():
                                raise ValueError(f"OpenCV cannot write an mp4v video to {tmp_path}.")
                        writer.write(cv2.cvtColor(_draw(estimator, frame, result), cv2.COLOR_RGB2BGR))
                        if estimator.multi_person:  # COCO results with the frame number as image_id
                            people = people_to_coco_results(result, len(frames_json))
                            frames_json.append({"frame": len(frames_json), "people": people})
                        else:
                            keypoints = keypoints_to_json(
                                estimator.spec, result["keypoints"], result["scores"]
                            )
                            frames_json.append({"frame": len(frames_json), "keypoints": keypoints})
                    bar.update(len(frames))
        finally:
            capture.release()
            if writer is not None:
                writer.release()
        if not frames_json:
            raise UnreadableInputError(f"Video {path} has no frame that could be read.")
        _check_written_video(tmp_path, video_path, len(frames_json))
    record = {
        "video": path,
        "width": size[0],
        "height": size[1],
        "fps": float(fps),
        "num_frames": len(frames_json),
        "box": None if box is None else [float(v) for v in box],
        "frames": frames_json,
    }
    if box is None and not estimator.multi_person:
        record["note"] = WHOLE_IMAGE_NOTE
    atomic_files.write_text(json_path, json.dumps(record) + "\n")
    return [video_path, json_path]


def predict_path(
    estimator: PoseEstimator,
    input_path: str,
    output_dir: str,
    box=None,
    progress: bool = True,
    budget: ImageBudget = DEFAULT_BUDGET,
) -> PredictionSummary:
    """Predicts on an image file, a video file or a directory of them; see the module docstring.

    ``budget`` bounds each image file's bytes and the pixels its header claims
    (``data.images.ImageBudget``); larger images are refused (skipped and listed in a folder).

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        UnreadableInputError: the input (or every file of a directory) cannot be read.
    """
    if not tf.io.gfile.exists(input_path):
        raise FileNotFoundError(f"Input not found: {input_path}")
    if tf.io.gfile.exists(output_dir) and not tf.io.gfile.isdir(output_dir):
        raise NotADirectoryError(f"--output {output_dir!r} is a file, not a folder; choose a folder.")
    created = make_output_folder(output_dir)
    try:
        if tf.io.gfile.isdir(input_path):
            return predict_directory(estimator, input_path, output_dir, box, progress=progress, budget=budget)
        if is_video(input_path):
            return PredictionSummary(
                written=predict_video(estimator, input_path, output_dir, box, progress=progress)
            )
        return PredictionSummary(
            written=predict_image_file(estimator, input_path, output_dir, box, budget=budget)
        )
    except BaseException:
        remove_empty_folders(output_dir, created)
        raise
