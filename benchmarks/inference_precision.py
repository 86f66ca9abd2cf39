"""Accuracy of bfloat16 inference against float32: held-out synthetic figures and the real MPII sample persons.

    .venv/bin/python benchmarks/inference_precision.py --model runs/quickstart [--num_synthetic 500] \
        [--synthetic_start 10100] [--mpii ../shared/data/mpii]

Runs the model's inference graph (``model_loader.keras_inference_model``) in
float32 and in bfloat16 over the same people, with the model's own codec,
and prints per data set: the mean and largest distance between the two
precisions' keypoints (image pixels, joints with ground truth), each
precision's PCKh@0.5 and their difference in points. ``--synthetic_start``
defaults to the quick start's held-out range (10,000 training and 100
validation figures come first), so the figures were never trained on.
The targets (issue 28): mean distance <= 0.5 px, PCKh within 0.2 points.
"""

from __future__ import annotations

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from timing import describe_machine  # noqa: E402

from tf_hourglass.data import sources  # noqa: E402
from tf_hourglass.data.pipeline import make_dataset  # noqa: E402
from tf_hourglass.evaluation import evaluator  # noqa: E402
from tf_hourglass.model_loader import keras_inference_model, load_keras_model  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .keras file or training workdir.", required=True)
_NUM_SYNTHETIC = flags.DEFINE_integer("num_synthetic", 500, "Held-out synthetic figures (0: none).")
_SYNTHETIC_START = flags.DEFINE_integer("synthetic_start", 10_100, "Index of the first synthetic figure.")
_SYNTHETIC_SIZE = flags.DEFINE_integer("synthetic_size", 256, "Side of the synthetic images.")
_MPII = flags.DEFINE_string("mpii", "../shared/data/mpii", "The MPII sample folder ('' to skip).")
_FLIP = flags.DEFINE_bool("flip", True, "Flip test, as training's final score.")


def compare(model, spec, source, flip: bool) -> dict:
    """Both precisions' predictions over ``source``: keypoint distances and PCK(h)."""
    predictions, scores = {}, {}
    for precision in ("float32", "bfloat16"):
        inference_model = keras_inference_model(model, precision=precision)
        codec = inference_model.codec()
        dataset = make_dataset(source, spec, codec, batch_size=16, training=False, with_metadata=True)
        flip_permutation = spec.flip_permutation() if flip else None
        predictions[precision] = evaluator.predict_dataset(inference_model, dataset, codec, flip_permutation)
        scores[precision] = evaluator.score(spec, predictions[precision])["total"]
    has_gt = predictions["float32"].has_gt.astype(bool)
    distances = np.linalg.norm(predictions["float32"].keypoints - predictions["bfloat16"].keypoints, axis=-1)
    return {
        "people": len(has_gt),
        "mean_px": float(distances[has_gt].mean()),
        "max_px": float(distances[has_gt].max()),
        "moved": float((distances[has_gt] > 0).mean()),
        "float32": scores["float32"],
        "bfloat16": scores["bfloat16"],
        "metric": evaluator.metric_name(spec),
    }


def main(argv):
    del argv
    print(f"machine: {describe_machine()}")
    model = load_keras_model(_MODEL.value)
    data = []
    if _NUM_SYNTHETIC.value:
        size = (_SYNTHETIC_SIZE.value,) * 2
        spec, source = sources.synthetic_people([(_SYNTHETIC_START.value, _NUM_SYNTHETIC.value)], size)
        data.append(("synthetic held-out", spec, source))
    if _MPII.value:
        mpii = sources.Source(
            "mpii_h5", os.path.join(_MPII.value, "annot", "valid.h5"), _MPII.value + "/images"
        )
        spec, records = sources.read_records(mpii)
        present = [r for r in records if os.path.exists(r.image_path)]  # the sample has rows 0-4 only
        data.append(("MPII sample persons", spec, sources.InMemorySource(present)))
    print(f"model: {_MODEL.value}, flip test {'on' if _FLIP.value else 'off'}")
    print(
        f"{'data':22} {'people':>6} {'mean px':>8} {'max px':>7} {'moved':>6} {'float32':>8} {'bfloat16':>8} {'diff':>6}"
    )
    for name, spec, source in data:
        r = compare(model, spec, source, _FLIP.value)
        print(
            f"{name:22} {r['people']:>6} {r['mean_px']:>8.3f} {r['max_px']:>7.2f} {r['moved']:>6.1%} "
            f"{r['float32']:>8.2f} {r['bfloat16']:>8.2f} {r['bfloat16'] - r['float32']:>+6.2f}  ({r['metric']})",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
