"""Multi-person SavedModel speed: a 640x480 photo through the Python path and through the SavedModel.

    .venv/bin/python benchmarks/people_serving_speed.py [--preset ae_small] [--min_seconds 5]

Times, in ms per photo (medians; random weights, whose maps the grouping
treats like any others): the Python path ``prediction.multi_person.predict_people``
(letterbox, network on the input and its mirror, NumPy grouping with
Munkres, test.py's settings), the exported SavedModel's ``serving_default``
(all of it in the graph), the network alone (the batch of input and mirror,
as both run it), and the grouping alone on the same crowd of ``--num_people``
(``benchmarks/grouping_maps.crowd_maps`` at the model's heatmap size, D = 2):
NumPy ``grouping.group_people`` vs graph ``grouping_tf.group_people``.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grouping_maps import crowd_maps  # noqa: E402
from timing import describe_machine, time_call  # noqa: E402

import tf_hourglass  # noqa: E402
from tf_hourglass.data import grouping, grouping_tf  # noqa: E402
from tf_hourglass.data.keypoint_specs import COCO  # noqa: E402
from tf_hourglass.export.multi_person_saved_model import export_multi_person_saved_model  # noqa: E402
from tf_hourglass.model import as_stack_list  # noqa: E402
from tf_hourglass.prediction.multi_person import codec_for_model, predict_people  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "ae_small", "The AE preset (random weights).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Timing per measurement.")
_NUM_PEOPLE = flags.DEFINE_integer("num_people", 8, "People of the grouping-only crowd.")


def main(argv):
    del argv
    print(describe_machine())
    model = tf_hourglass.from_preset(_PRESET.value)
    codec = codec_for_model(model)
    flip = COCO.flip_permutation()
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    side = codec.input_size[0]

    network = tf.function(lambda inputs: as_stack_list(model(inputs, training=False))[-1])
    python_ms = 1e3 * time_call(
        lambda: predict_people(network, image / np.float32(255.0), codec, flip), _MIN_SECONDS.value
    )
    inputs = tf.random.uniform([2, side, side, 3])
    network_ms = 1e3 * time_call(lambda: network(inputs).numpy(), _MIN_SECONDS.value)

    with tempfile.TemporaryDirectory() as tmp:
        export_multi_person_saved_model(model, codec, flip, tmp)
        serving = tf.saved_model.load(tmp).signatures["serving_default"]
        photo = tf.constant(image[None])
        saved_model_ms = 1e3 * time_call(
            lambda: serving(images=photo)["keypoints"].numpy(), _MIN_SECONDS.value
        )

    heatmaps, tags = crowd_maps(
        np.random.default_rng(1), size=codec.heatmap_size[0], num_people=_NUM_PEOPLE.value, tag_dim=2
    )
    heatmaps, tags = heatmaps[None], tags[None]
    numpy_ms = 1e3 * time_call(
        lambda: grouping.group_people(heatmaps, tags, return_scores=True, **grouping.TEST_SETTINGS),
        _MIN_SECONDS.value,
    )
    graph = tf.function(grouping_tf.group_people, autograph=False)
    heatmaps_t, tags_t = tf.constant(heatmaps), tf.constant(tags)
    graph_ms = 1e3 * time_call(lambda: graph(heatmaps_t, tags_t)[0].numpy(), _MIN_SECONDS.value)

    print(
        f"{_PRESET.value}, input {side}x{side}, heatmaps {codec.heatmap_size[0]}, one 640x480 photo, flip test:"
    )
    print(f"  Python path (predict_people)     {python_ms:8.1f} ms")
    print(f"  SavedModel serving_default       {saved_model_ms:8.1f} ms")
    print(f"  network alone (input + mirror)   {network_ms:8.1f} ms")
    print(f"  grouping alone, {_NUM_PEOPLE.value} people: NumPy {numpy_ms:.1f} ms, graph {graph_ms:.1f} ms")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app.run(main)
