"""Multi-person prediction of a 640x480 photo in every runtime: Keras, SavedModel, TFLite float32/float16/int8.

    PYTHONPATH=. .venv/bin/python benchmarks/people_export_speed.py [--preset ae_small] [--min_seconds 5]

One AE preset with random weights (speed only), exported as
``python -m tf_hourglass.export`` does it (``export_model``, with its checks;
the int8 file calibrated on ``--num_calibration`` synthetic scenes). For each
runtime, in ms per photo (medians of calls interleaved one of each in turn,
after warm-ups, so that a change in the shared machine's speed hits all alike):

* network: the photo's letterboxed input and its mirror (the flip test), as
  ``predict`` runs them: the Keras model through ``model_loader.multi_person_network``
  (graph mode, batch 2), a ``.tflite`` through the same loader
  (``ExportedPeopleNetwork``: LiteRT with XNNPACK, its default threads, batch 1 twice);
* grouping: the rest of ``predict_people`` (letterbox warp, flip merge, the
  NumPy grouping with the official test settings and refinement, back to photo
  pixels) on crowd maps of the network's output size (``grouping_maps.crowd_maps``:
  ``--num_people`` people, false detections), because a random-weight
  network's maps hold nobody. It is the same code after every runtime, so it is
  timed once, interleaved with the rest;
* the grouping's share of network + grouping;
* ``predict_people`` whole on the photo (random weights: its own maps, few people);
* the people-out SavedModel's ``serving_default`` (letterbox, network, flip
  test and grouping all in the graph: not separable).
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grouping_maps import crowd_maps  # noqa: E402
from timing import describe_machine, interleaved_medians  # noqa: E402

import tf_hourglass  # noqa: E402
from tf_hourglass.data.keypoint_specs import COCO  # noqa: E402
from tf_hourglass.export import export_model, verify  # noqa: E402
from tf_hourglass.model_loader import multi_person_network  # noqa: E402
from tf_hourglass.prediction.multi_person import codec_for_model, letterbox, predict_people  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "ae_small", "The AE preset (random weights).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Time each call at least this long in all.")
_NUM_PEOPLE = flags.DEFINE_integer("num_people", 5, "People of the grouping's crowd maps.")
_NUM_CALIBRATION = flags.DEFINE_integer("num_calibration", 50, "Synthetic scenes calibrating the int8 file.")
_NUM_HELDOUT = flags.DEFINE_integer("num_heldout", 8, "Held-out scenes of the int8 file's AP check.")
_QUANTIZE = flags.DEFINE_list("quantize", ["none", "float16", "int8"], "TFLite files to time.")


def crowd_network(codec, num_people: int, seed: int = 1):
    """A stand-in network whose output (input and mirror) is a crowd, for timing the grouping."""
    size, k = codec.heatmap_size[0], codec.num_keypoints
    heatmaps, tags = crowd_maps(np.random.default_rng(seed), size=size, num_joints=k, num_people=num_people)
    output = np.concatenate([heatmaps, tags[..., 0]], axis=-1)
    swap = np.asarray(COCO.flip_permutation())
    mirrored = output[:, ::-1][..., np.concatenate([swap, k + swap])]  # unflipped by predict_people
    batch = np.stack([output, mirrored]).astype(np.float32)
    return lambda inputs: batch


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("WARNING")
    print(f"machine: {describe_machine()}")
    model = tf_hourglass.from_preset(_PRESET.value)
    codec = codec_for_model(model)
    flip = COCO.flip_permutation()
    side = codec.input_size[0]
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    pixels = image / np.float32(255.0)
    inputs, _ = letterbox(pixels, side)
    batch = np.stack([inputs, inputs[:, ::-1]])

    keras_network, _ = multi_person_network(model)
    networks = {"Keras (graph)": keras_network}
    with tempfile.TemporaryDirectory() as folder:
        sizes = {}
        for quantize in _QUANTIZE.value:
            path = os.path.join(folder, f"{quantize}.tflite")
            result = export_model(
                model,
                path,
                "tflite",
                quantize=quantize,
                num_calibration=_NUM_CALIBRATION.value,
                num_heldout=_NUM_HELDOUT.value,
                log=lambda line: print(f"  export: {line}") if line.startswith("parity") else None,
            )
            name = f"TFLite {'float32' if quantize == 'none' else quantize}"
            networks[name], _ = multi_person_network(path)
            sizes[name] = verify.format_size(result.size_bytes)
        saved_model = os.path.join(folder, "people", "1")
        export_model(model, saved_model, "saved_model", log=lambda line: None)
        serving = tf.saved_model.load(saved_model).signatures["serving_default"]
        photo = tf.constant(image[None])

        crowd = crowd_network(codec, _NUM_PEOPLE.value)
        calls = {"grouping": lambda: predict_people(crowd, pixels, codec, flip)}
        for name, network in networks.items():
            calls[f"{name} network"] = lambda network=network: np.asarray(network(batch))
            calls[f"{name} whole"] = lambda network=network: predict_people(network, pixels, codec, flip)
        calls["SavedModel whole"] = lambda: serving(images=photo)["keypoints"].numpy()
        medians = {
            name: 1e3 * seconds for name, seconds in interleaved_medians(calls, _MIN_SECONDS.value).items()
        }

    grouping = medians["grouping"]
    print(
        f"\n{_PRESET.value}, input {side}x{side} (+ mirror), maps {codec.heatmap_size[0]}, one 640x480 photo, "
        f"ms (grouping: crowd of {_NUM_PEOPLE.value}, the same NumPy code after every runtime):"
    )
    print(f"{'runtime':18} {'network':>9} {'grouping':>9} {'share':>7} {'whole':>9} {'size':>9}")
    for name in networks:
        network = medians[f"{name} network"]
        share = grouping / (network + grouping)
        print(
            f"{name:18} {network:9.1f} {grouping:9.1f} {share:7.1%} {medians[f'{name} whole']:9.1f} "
            f"{sizes.get(name, ''):>9}"
        )
    print(
        f"{'SavedModel':18} {'':>9} {'':>9} {'':>7} {medians['SavedModel whole']:9.1f}   (all in the graph)"
    )


if __name__ == "__main__":
    app.run(main)
