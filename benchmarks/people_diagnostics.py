"""Where a multi-person model's AP goes: joint placement, detection, or the tags' grouping.

    PYTHONPATH=. .venv/bin/python benchmarks/people_diagnostics.py --workdir runs/ae_quickstart \
        [--num_scenes 100] [--scales 1 --scales 1.5,1 --scales 2,1,0.5]

For a workdir trained on synthetic scenes (its ``config.json`` says which), on
the held-out scenes its training scored (the test split), prints:

* the held-out AP as training measured it (flip test, scale 1), and at each
  ``--scales`` set (``predict_people(scales=...)``);
* the AP with the true grouping: each true person's joints taken from the
  network's own detection peak nearest the truth (the arg-max of a 5x5 window
  of heatmap pixels around it, with the official +-0.25 px adjust), score the
  mean peak, no flip. This measures detection and placement alone: the AP
  the model would have if the tags grouped perfectly;
* the joint error: the median and the share beyond 5 px of those peaks'
  distance from the truth, in input pixels;
* the tags: the median spread of the tags at one person's true joints, the
  median gap between two people's mean tags in one scene, and the share of
  pairs of people closer than 0.5 and 1 (the official tag threshold).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_hourglass.data import keypoint_specs  # noqa: E402
from tf_hourglass.data.synthetic import SyntheticScenes  # noqa: E402
from tf_hourglass.evaluation.metrics import coco_keypoint_ap  # noqa: E402
from tf_hourglass.model.associative_embedding import split_outputs  # noqa: E402
from tf_hourglass.model_loader import multi_person_network  # noqa: E402
from tf_hourglass.prediction.multi_person import coco_results, codec_for_model, predict_people  # noqa: E402

WORKDIR = flags.DEFINE_string(
    "workdir", None, "A multi-person training workdir (synthetic scenes).", required=True
)
NUM_SCENES = flags.DEFINE_integer("num_scenes", 100, "Held-out scenes (the test split's first ones).")
SCALES = flags.DEFINE_multi_string(
    "scales", ["1", "1.5,1", "2,1,0.5"], "A test scale set as a comma list; repeat the flag for more."
)
WINDOW = 2  # half-width in heatmap pixels of the window searched around a true joint


def peak_near(heatmap: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
    """(x, y) in heatmap pixels of the arg-max of ``heatmap`` near (x, y), officially adjusted, and its value."""
    height, width = heatmap.shape
    cx, cy = int(round(x)), int(round(y))
    y0, y1 = max(cy - WINDOW, 0), min(cy + WINDOW + 1, height)
    x0, x1 = max(cx - WINDOW, 0), min(cx + WINDOW + 1, width)
    if y0 >= y1 or x0 >= x1:
        return x, y, 0.0
    py, px = np.unravel_index(np.argmax(heatmap[y0:y1, x0:x1]), (y1 - y0, x1 - x0))
    py, px = py + y0, px + x0
    ax, ay = float(px), float(py)
    if 0 < px < width - 1:
        ax += 0.25 * np.sign(heatmap[py, px + 1] - heatmap[py, px - 1])
    if 0 < py < height - 1:
        ay += 0.25 * np.sign(heatmap[py + 1, px] - heatmap[py - 1, px])
    return ax, ay, float(heatmap[py, px])


def main(argv):
    del argv
    workdir = WORKDIR.value
    with open(os.path.join(workdir, "config.json")) as file:
        data = json.load(file)["data"]
    if data.get("format") != "synthetic" and data.get("train") != "synthetic":
        raise SystemExit(f"{workdir}: trained on {data.get('format')!r}, not synthetic scenes.")
    scenes = SyntheticScenes(
        (data["synthetic_image_size"],) * 2,
        tuple(data["scene_people"]),
        tuple(data["scene_height_range"]),
        seed=data["seed"],
    )
    start = data["num_train"] + data["num_val"]
    document, photos = scenes.coco_ground_truth(range(start, start + NUM_SCENES.value))
    network, model = multi_person_network(workdir)
    codec = codec_for_model(model)
    stride, num_keypoints = codec.stride, codec.num_keypoints
    people_of = {}
    for annotation in document["annotations"]:
        people_of.setdefault(annotation["image_id"], []).append(
            np.array(annotation["keypoints"], np.float64).reshape(num_keypoints, 3)
        )

    with tempfile.TemporaryDirectory() as tmp:
        ground_truth = os.path.join(tmp, "ground_truth.json")
        with open(ground_truth, "w") as file:
            json.dump(document, file)

        def ap(results):
            stats = coco_keypoint_ap(ground_truth, results)
            return ", ".join(
                f"{name} {100 * stats[name]:.1f}" for name in ("AP", "AP50", "AP75", "APm", "AR")
            )

        flip = keypoint_specs.COCO.flip_permutation()
        for spec in SCALES.value:
            scales = [float(s) for s in spec.split(",")]
            results = []
            for image_id, photo in photos:
                people = predict_people(network, photo.astype(np.float32) / 255, codec, flip, scales=scales)
                results += coco_results(people, image_id)
            print(f"held-out AP, flip test, scales {scales}: {ap(results)}")

        true_grouping, errors, spreads, gaps = [], [], [], []
        for image_id, photo in photos:
            heatmaps, tags = split_outputs(network(photo[None].astype(np.float32) / 255), num_keypoints)
            heatmaps = codec.unit_heatmaps(np.asarray(heatmaps))[0]
            tags = np.asarray(tags)[0, ..., 0]
            mean_tags = []
            for person in people_of.get(image_id, []):
                found, values, person_tags = np.zeros((num_keypoints, 3)), [], []
                for k, (x, y, visible) in enumerate(person):
                    if visible <= 0:
                        continue
                    hx, hy = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
                    px, py, value = peak_near(heatmaps[..., k], hx, hy)
                    found[k] = [(px + 0.5) * stride - 0.5, (py + 0.5) * stride - 0.5, 1.0]
                    errors.append(np.hypot(found[k, 0] - x, found[k, 1] - y))
                    values.append(value)
                    row = min(max(int(round(hy)), 0), tags.shape[0] - 1)
                    column = min(max(int(round(hx)), 0), tags.shape[1] - 1)
                    person_tags.append(tags[row, column, k])
                if not values:
                    continue
                labelled = person[:, 2] > 0
                found[~labelled] = [*found[labelled, :2].mean(0), 1.0]  # COCO scores every joint
                true_grouping.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "keypoints": found.ravel().tolist(),
                        "score": float(np.mean(values)),
                    }
                )
                spreads.append(np.std(person_tags))
                mean_tags.append(np.mean(person_tags))
            gaps += [abs(a - b) for i, a in enumerate(mean_tags) for b in mean_tags[i + 1 :]]
        print(f"AP with the true grouping (detection and placement only): {ap(true_grouping)}")
        errors = np.array(errors)
        print(
            f"joint error: median {np.median(errors):.2f} px, mean {errors.mean():.2f} px, "
            f"beyond 5 px {100 * np.mean(errors > 5):.0f}% of {len(errors)} labelled joints"
        )
        gaps = np.array(gaps)
        print(
            f"tags: spread inside a person {np.median(spreads):.2f} (median); gap between two people's mean "
            f"tags {np.median(gaps):.2f} (median), below 0.5 {100 * np.mean(gaps < 0.5):.0f}%, below 1 "
            f"{100 * np.mean(gaps < 1):.0f}% of {len(gaps)} pairs"
        )


if __name__ == "__main__":
    app.run(main)
