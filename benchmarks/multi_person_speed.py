"""Multi-person prediction on a 640x480 photo: the network, the grouping, and the grouping's share.

    .venv/bin/python benchmarks/multi_person_speed.py [--presets ae_small,ae_hg4] [--min_seconds 5]

For each preset (random weights): the network as ``PoseEstimator`` runs it
(``model_loader.multi_person_network``, graph mode) on the official single-scale
input (the photo letterboxed to the preset's input side) and its mirror, i.e.
a batch of 2; the grouping (``AssociativeEmbeddingCodec.decode``: the official
test settings, with refinement) on crowd maps of that output size
(``grouping_maps.crowd_maps``: 5 people, D = 2 tags as flip test gives,
false detections), because a random-weight network's maps hold nobody; and the
whole ``predict_people`` on the photo. Prints ms per photo for each and the
grouping's share of network + grouping. Goal (issue 25): grouping under 5% of
the network's time.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grouping_maps import crowd_maps  # noqa: E402
from timing import describe_machine, time_call  # noqa: E402

import tf_hourglass  # noqa: E402
from tf_hourglass.data.keypoint_specs import COCO  # noqa: E402
from tf_hourglass.model_loader import multi_person_network  # noqa: E402
from tf_hourglass.prediction.multi_person import codec_for_model, predict_people  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["ae_small", "ae_hg4"], "AE presets to time.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "Time each measurement for at least this long.")


def main(argv):
    del argv
    print(f"machine: {describe_machine()}")
    photo = np.random.default_rng(0).uniform(size=(480, 640, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    for preset in _PRESETS.value:
        model = tf_hourglass.from_preset(preset)
        network, model = multi_person_network(model)
        codec = codec_for_model(model)
        side = codec.input_size[0]
        inputs = tf.zeros((2, side, side, 3))  # the input and its mirror
        network_seconds = time_call(
            lambda inputs=inputs, network=network: network(inputs).numpy(), _MIN_SECONDS.value
        )
        size = codec.heatmap_size[0]
        maps = [crowd_maps(rng, size=size, num_people=5, tag_dim=2) for _ in range(10)]
        start = time.perf_counter()
        rounds = 0
        while time.perf_counter() - start < _MIN_SECONDS.value:
            for heatmaps, tags in maps:
                codec.decode(heatmaps[None], tags[None])
            rounds += 1
        grouping_seconds = (time.perf_counter() - start) / (rounds * len(maps))
        whole_seconds = time_call(
            lambda network=network, codec=codec: predict_people(
                network, photo, codec, COCO.flip_permutation()
            ),
            _MIN_SECONDS.value,
        )
        share = grouping_seconds / (network_seconds + grouping_seconds)
        print(
            f"{preset}: input {side}x{side} (+ mirror), maps {size}x{size}: network {network_seconds * 1e3:.1f} ms, "
            f"grouping {grouping_seconds * 1e3:.1f} ms (crowd of 5), grouping share {share:.1%}; "
            f"predict_people on the photo (random weights) {whole_seconds * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    app.run(main)
