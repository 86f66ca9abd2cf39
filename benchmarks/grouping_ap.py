"""COCO keypoint AP of the graph grouping (``grouping_tf``) and of the NumPy one (Munkres) on synthetic crowds.

    PYTHONPATH=. .venv/bin/python benchmarks/grouping_ap.py [--num_images 100] [--assignment greedy]

The multi-person SavedModel groups in graph ops (``grouping_tf``: a Hungarian
minimum-cost assignment, or greedy) where the Python path, like the official
code, uses Munkres (``grouping``): where rounded costs tie the two may
group differently; the issue's bar is AP within 0.5 points. Each image is a crowd
of ``benchmarks/grouping_maps.crowd_maps`` (1 to ``--max_people`` people, tags
``--min_spacing`` to ``--max_spacing`` apart with noise ``--tag_noise``, D = 2,
false detections, weak maxima) whose
people as drawn are the ground truth: joints drawn with a peak of at least the
detection threshold 0.1 are labelled (the others cannot be found), at input
pixels ``4 * (index + 0.5)`` (the official coordinates, stride 4). Both
groupings run with test.py's settings (``TEST_SETTINGS``); their people become
COCO results (``coco_results``) scored by pycocotools' OKS AP. Prints both
APs, their difference, the images where both find exactly the same people and
the people counts.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grouping_maps import crowd_maps  # noqa: E402

from tf_hourglass.data import grouping, grouping_tf  # noqa: E402
from tf_hourglass.data.keypoint_specs import COCO  # noqa: E402
from tf_hourglass.evaluation.metrics import coco_keypoint_ap  # noqa: E402
from tf_hourglass.prediction.multi_person import People, coco_results  # noqa: E402

_NUM_IMAGES = flags.DEFINE_integer("num_images", 100, "Crowds.")
_SIZE = flags.DEFINE_integer("size", 128, "Heatmap side (the official 128).")
_MAX_PEOPLE = flags.DEFINE_integer("max_people", 20, "Most people per crowd.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_TAG_NOISE = flags.DEFINE_float(
    "tag_noise", 0.15, "Standard deviation of each joint's tag around its person's."
)
_MIN_SPACING = flags.DEFINE_float("min_spacing", 0.8, "People's tags are spaced uniformly from this ...")
_MAX_SPACING = flags.DEFINE_float("max_spacing", 2.0, "... to this per image.")
_ASSIGNMENT = flags.DEFINE_enum("assignment", "hungarian", grouping_tf.ASSIGNMENTS, "The graph's assignment.")
STRIDE = 4


def ground_truth(people, image_id, first_id):
    """COCO annotations of drawn people (P, K, 3) in heatmap pixels: those with a detectable joint."""
    annotations = []
    for person in people:
        visible = person[:, 2] >= grouping.TEST_SETTINGS["detection_threshold"]
        if not visible.any():
            continue
        points = STRIDE * (person[:, :2] + 0.5)
        low, high = points.min(axis=0), points.max(axis=0)
        width, height = np.maximum(high - low, STRIDE)
        flat = np.concatenate([points, 2.0 * visible[:, None]], axis=1) * visible[:, None]
        annotations.append(
            {
                "id": first_id + len(annotations),
                "image_id": image_id,
                "category_id": 1,
                "keypoints": flat.reshape(-1).tolist(),
                "num_keypoints": int(visible.sum()),
                "bbox": [float(low[0]), float(low[1]), float(width), float(height)],
                "area": float(width * height),
                "iscrowd": 0,
            }
        )
    return annotations


def as_people(people, scores):
    """Grouped people (P, K, 3 + D) in heatmap pixels -> ``People`` in input pixels."""
    return People(
        keypoints=STRIDE * people[:, :, :2], keypoint_scores=people[:, :, 2], scores=np.asarray(scores)
    )


def main(argv):
    del argv
    rng = np.random.default_rng(_SEED.value)
    graph = tf.function(
        functools.partial(grouping_tf.group_people, assignment=_ASSIGNMENT.value), autograph=False
    )
    images, annotations, munkres_results, graph_results = [], [], [], []
    same, counts = 0, np.zeros(3, int)
    for image_id in range(1, _NUM_IMAGES.value + 1):
        heatmaps, tags, drawn = crowd_maps(
            rng,
            size=_SIZE.value,
            num_people=int(rng.integers(1, _MAX_PEOPLE.value + 1)),
            tag_dim=2,
            tag_spacing=float(rng.uniform(_MIN_SPACING.value, _MAX_SPACING.value)),
            tag_noise=_TAG_NOISE.value,
            return_people=True,
        )
        images.append({"id": image_id, "width": STRIDE * _SIZE.value, "height": STRIDE * _SIZE.value})
        annotations += ground_truth(drawn, image_id, len(annotations) + 1)
        (people,), (scores,) = grouping.group_people(
            heatmaps[None], tags[None], return_scores=True, **grouping.TEST_SETTINGS
        )
        order = np.argsort(-scores, kind="stable")[:30]
        people, scores = people[order], scores[order]
        graph_people, graph_scores, count = graph(tf.constant(heatmaps[None]), tf.constant(tags[None]))
        count = int(count[0])
        graph_people, graph_scores = graph_people[0, :count].numpy(), graph_scores[0, :count].numpy()
        same += people.shape == graph_people.shape and np.allclose(people, graph_people, atol=1e-4)
        counts += (0, len(people), count)
        munkres_results += coco_results(as_people(people, scores), image_id)
        graph_results += coco_results(as_people(graph_people, graph_scores), image_id)
    counts[0] = len(annotations)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crowds.json")
        with open(path, "w") as file:
            json.dump(
                {
                    "images": images,
                    "annotations": annotations,
                    "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.keypoint_names)}],
                },
                file,
            )
        munkres_ap = 100 * coco_keypoint_ap(path, munkres_results)["AP"]
        graph_ap = 100 * coco_keypoint_ap(path, graph_results)["AP"]
    print(
        f"{_NUM_IMAGES.value} crowds of 1 to {_MAX_PEOPLE.value} people, {_SIZE.value}x{_SIZE.value} maps, tags "
        f"{_MIN_SPACING.value:g} to {_MAX_SPACING.value:g} apart, noise {_TAG_NOISE.value:g}:"
    )
    print(f"  people: {counts[0]} drawn, {counts[1]} found by Munkres (NumPy), {counts[2]} by the graph")
    print(f"  exactly the same people on {same} of {_NUM_IMAGES.value} images")
    print(
        f"  COCO AP: NumPy (Munkres) {munkres_ap:.2f}, graph ({_ASSIGNMENT.value}) {graph_ap:.2f}, "
        f"difference {graph_ap - munkres_ap:+.2f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app.run(main)
