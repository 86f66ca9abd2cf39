"""Keypoints for photos from a TF Serving REST endpoint (Python standard library only).

    python export/rest_client.py photo.jpg [more.jpg ...] \\
        [--url http://localhost:8501/v1/models/hourglass:predict]

Sends the encoded files to the SavedModel's ``serving_bytes`` signature (one
request, base64 as TF Serving's REST API wants binary data) and prints one JSON
line per photo: ``{"image", "keypoints": [[x, y], ...], "scores": [...]}``,
with keypoints in that photo's pixels and, for 16 keypoints, MPII joint names.
The SavedModel crops the whole photo; for a person box, call ``serving_boxes``
with decoded pixels (see the SavedModel section of README.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://localhost:8501/v1/models/hourglass:predict"
# MPII's joint order (tf_hourglass.data.keypoint_specs.MPII), repeated so that
# this client needs nothing but Python.
MPII_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip


def build_request(paths) -> dict:
    """The JSON body: one ``{"image_bytes": {"b64": ...}}`` instance per file."""
    instances = []
    for path in paths:
        with open(path, "rb") as f:
            instances.append({"image_bytes": {"b64": base64.b64encode(f.read()).decode("ascii")}})
    return {"signature_name": "serving_bytes", "instances": instances}


def parse_response(body: dict, paths) -> list[dict]:
    """One result per photo from TF Serving's row-format answer ``{"predictions": [...]}``."""
    if "error" in body:
        raise RuntimeError(f"TF Serving answered with an error: {body['error']}")
    predictions = body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(paths):
        raise RuntimeError(f"Expected {len(paths)} predictions; received {json.dumps(body)[:200]}")
    results = []
    for path, prediction in zip(paths, predictions, strict=True):
        result = {"image": str(path), "keypoints": prediction["keypoints"], "scores": prediction["scores"]}
        if len(prediction["scores"]) == len(MPII_NAMES):
            result["names"] = list(MPII_NAMES)
        results.append(result)
    return results


def predict(paths, url: str = DEFAULT_URL, timeout: float = 60.0) -> list[dict]:
    """Posts the photos to ``url`` and returns one result dict per photo."""
    data = json.dumps(build_request(paths)).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:  # TF Serving puts the reason in the body
        body = json.loads(error.read() or b"{}") or {"error": str(error)}
    return parse_response(body, paths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="+", help="JPEG/PNG/BMP/GIF files")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"predict endpoint (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    try:
        results = predict(args.images, args.url)
    except (OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
