"""Times the official pose-ae-train grouping, for ``grouping_speed.py``, in a process of its own.

Needs a checkout of princeton-vl/pose-ae-train and a Python with torch, numpy
and munkres (no TensorFlow). It imports the checkout's ``utils/group.py`` and
takes ``refine`` from its ``test.py`` (parsed from the file, because importing
test.py needs OpenCV and the COCO paths), and runs them as test.py does:
``HeatmapParser(detection_val=0.1).parse`` then ``refine`` on every person::

    python benchmarks/official_grouping.py REPO MAPS.npz THREADS
    # each line "i" in -> one line out: seconds of parse + refine on maps i, and the people found

``MAPS.npz`` holds ``heatmaps_<i>`` (H, W, K) and ``tags_<i>`` (H, W, K, D).
"""

from __future__ import annotations

import ast
import os
import sys
import time

import numpy as np


def load_official(repo):
    sys.path.insert(0, repo)
    from utils.group import HeatmapParser

    path = os.path.join(repo, "test.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    refine = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "refine"]
    namespace = {"np": np}
    exec(compile(ast.Module(body=refine, type_ignores=[]), path, "exec"), namespace)
    return HeatmapParser(detection_val=0.1), namespace["refine"]


def main():
    repo, maps_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import warnings

    import munkres
    import torch

    warnings.filterwarnings("ignore")  # torch.autograd.Variable(volatile=True) in the official calc
    torch.set_num_threads(threads)
    parser, refine = load_official(repo)
    with np.load(maps_path) as data:
        maps = [
            (
                np.ascontiguousarray(data[f"heatmaps_{i}"].transpose(2, 0, 1))[None],
                np.ascontiguousarray(data[f"tags_{i}"].transpose(2, 0, 1, 3))[None],
            )
            for i in range(int(data["num_maps"]))
        ]
    print(f"torch {torch.__version__}, munkres {getattr(munkres, '__version__', '?')}", flush=True)
    for line in sys.stdin:
        det, tag = maps[int(line)]
        start = time.perf_counter()
        grouped = parser.parse(det, tag)[0]
        for person in range(len(grouped)):
            grouped[person] = refine(det[0], tag[0], grouped[person])
        print(time.perf_counter() - start, len(grouped), flush=True)


if __name__ == "__main__":
    main()
