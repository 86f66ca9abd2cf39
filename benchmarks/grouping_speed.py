"""Associative Embedding grouping speed: ours (NumPy) and, optionally, the official parser.

    .venv/bin/python benchmarks/grouping_speed.py [--size 128] [--num_people 5] [--rounds 10]
    .venv/bin/python benchmarks/grouping_speed.py --official_repo ../pose-ae-train \\
        --official_python ../venv-torch/bin/python

Times ``tf_hourglass.data.grouping.group_people`` with the official test.py's
settings (``TEST_SETTINGS``: detection threshold 0.1, parse, adjust, refine) per image, on ``--num_maps`` synthetic
crowds (``grouping_maps.crowd_maps``: ``--size`` square maps, 17 joints,
``--num_people`` people, D = 2 tags as flip test gives, weak maxima and false
detections). With ``--official_repo`` (a checkout of princeton-vl/pose-ae-train)
the official ``HeatmapParser.parse`` + test.py ``refine`` runs on the same maps
in a process of its own (``official_grouping.py`` under ``--official_python``,
which needs torch, numpy and munkres), calls interleaved with ours so both see
the same machine load. The first round is a warm-up; the medians over the rest
are printed, in ms per image, and their ratio. Both must find the same number
of people on every image (tests/test_grouping.py checks the people themselves). Goal: at least 5x faster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from grouping_maps import crowd_maps  # noqa: E402
from timing import describe_machine  # noqa: E402

from tf_hourglass.data.grouping import TEST_SETTINGS, group_people  # noqa: E402

_SIZE = flags.DEFINE_integer("size", 128, "Heatmap height and width.")
_NUM_PEOPLE = flags.DEFINE_integer("num_people", 5, "People per image.")
_TAG_DIM = flags.DEFINE_integer("tag_dim", 2, "Tag maps per joint (2: flip test).")
_NUM_MAPS = flags.DEFINE_integer("num_maps", 10, "Different images.")
_ROUNDS = flags.DEFINE_integer("rounds", 10, "Passes over the images (the first is a warm-up).")
_OFFICIAL_REPO = flags.DEFINE_string("official_repo", None, "A checkout of princeton-vl/pose-ae-train.")
_OFFICIAL_PYTHON = flags.DEFINE_string(
    "official_python", sys.executable, "A Python with torch, numpy and munkres for the official parser."
)
_THREADS = flags.DEFINE_integer("threads", 1, "torch threads for the official parser (ours uses one core).")


class OfficialParser:
    """The official parser in a subprocess: ``seconds(i)`` runs it once on maps i."""

    def __init__(self, repo, python, maps_path, threads):
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_grouping.py")
        self.process = subprocess.Popen(
            [python, worker, repo, maps_path, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.versions = self.process.stdout.readline().strip()

    def run(self, i):
        """(seconds, number of people found) of one official parse + refine of maps i."""
        self.process.stdin.write(f"{i}\n")
        self.process.stdin.flush()
        seconds, count = self.process.stdout.readline().split()
        return float(seconds), int(count)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    maps = [
        crowd_maps(rng, size=_SIZE.value, num_people=_NUM_PEOPLE.value, tag_dim=_TAG_DIM.value)
        for _ in range(_NUM_MAPS.value)
    ]
    people = [group_people(h[None], t[None], **TEST_SETTINGS)[0] for h, t in maps]
    print(f"machine: {describe_machine()}")
    print(
        f"maps: {_NUM_MAPS.value} images, {_SIZE.value}x{_SIZE.value}x17, D = {_TAG_DIM.value}, "
        f"{_NUM_PEOPLE.value} people each (+ false detections); found {np.mean([len(p) for p in people]):.1f} "
        f"people per image on average"
    )
    official = None
    if _OFFICIAL_REPO.value:
        with tempfile.TemporaryDirectory() as tmp:
            maps_path = os.path.join(tmp, "maps.npz")
            arrays = {f"heatmaps_{i}": h for i, (h, _) in enumerate(maps)}
            arrays.update({f"tags_{i}": t for i, (_, t) in enumerate(maps)})
            np.savez(maps_path, num_maps=len(maps), **arrays)
            official = OfficialParser(_OFFICIAL_REPO.value, _OFFICIAL_PYTHON.value, maps_path, _THREADS.value)
            counts = [official.run(i)[1] for i in range(len(maps))]  # the worker has loaded the maps
        if counts != [len(p) for p in people]:
            raise SystemExit(f"different people counts: official {counts}, ours {[len(p) for p in people]}")
        print(f"official: {official.versions}, {_THREADS.value} torch thread(s)")
    ours_times, official_times = [], []
    for round_index in range(_ROUNDS.value):
        for i, (heatmaps, tags) in enumerate(maps):
            start = time.perf_counter()
            group_people(heatmaps[None], tags[None], **TEST_SETTINGS)
            seconds = time.perf_counter() - start
            official_seconds = official.run(i)[0] if official else None
            if round_index > 0:
                ours_times.append(seconds)
                if official:
                    official_times.append(official_seconds)
    ours_ms = 1000 * float(np.median(ours_times))
    print(f"ours:     {ours_ms:7.2f} ms per image (median of {len(ours_times)})")
    if official:
        official.close()
        official_ms = 1000 * float(np.median(official_times))
        print(f"official: {official_ms:7.2f} ms per image (median of {len(official_times)})")
        print(f"ratio:    {official_ms / ours_ms:7.1f}x faster")


if __name__ == "__main__":
    app.run(main)
