"""Converts a PyTorch hourglass checkpoint into a ``.keras`` model that every command takes.

The model goes where ``output`` says: a ``.keras`` path, or a folder that
becomes a workdir holding ``final.keras``. Beside it, ``inference.json`` gives
the keypoint order and the training targets' scale (MPII's 16 joints, r-ankle
... l-wrist, Gaussians of sigma 1 heatmap pixel at 64x64 with peak 1, as both
single-person PyTorch projects train), so ``evaluate``, ``predict``,
``PoseEstimator`` and ``export`` decode it as they decode a model trained here.
pose-ae-train's model (``source="ae"``) is multi-person: the ``.keras`` file
says so (its ``ModelInfo`` kind ``multi_person``), with COCO's 17 joints in
COCO order and its targets (sigma 2 at 128x128, peak 1). The model file carries
all of it; ``inference.json`` is written as 0.1.0 wrote it, for older readers.
"""

from __future__ import annotations

import os

from tf_hourglass import atomic_files
from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.records import KeypointSpec
from tf_hourglass.model.info import info_for
from tf_hourglass.run_files import MODEL_FILE, RUN_SETTINGS_FILE, run_settings_text
from tf_hourglass.weights.checkpoints import load_pytorch_checkpoint
from tf_hourglass.weights.state_dicts import INPUT_SIZES

# Both single-person projects render MPII targets as Gaussians of sigma 1 at 64x64 with peak 1.
TARGET_SIGMA = 1.0
TARGET_PEAK = 1.0
# pose-ae-train's GenerateHeatmap: sigma output_res / 64 = 2 at 128x128, peak 1.
TARGET_SIGMAS = {"pv": TARGET_SIGMA, "bp": TARGET_SIGMA, "ae": 2.0}
# The keypoints each source predicts unless told otherwise.
DEFAULT_SPECS = {"pv": "mpii", "bp": "mpii", "ae": "coco"}


def output_paths(output: str) -> tuple[str, str]:
    """(model path, inference.json path) for an output that is a .keras file or a workdir."""
    output = os.fspath(output)
    folder = os.path.dirname(output) if output.endswith(".keras") else output
    model_path = output if output.endswith(".keras") else os.path.join(output, MODEL_FILE)
    return model_path, os.path.join(folder or ".", RUN_SETTINGS_FILE)


def _is_same_file(checkpoint, *paths) -> bool:
    """Whether one of ``paths`` is ``checkpoint`` (its real path, or the same file through a hard link)."""
    target = os.path.realpath(checkpoint)
    for path in paths:
        if os.path.realpath(path) == target:
            return True
        if os.path.exists(path) and os.path.exists(target) and os.path.samefile(path, target):
            return True
    return False


def convert_checkpoint(
    checkpoint,
    output,
    source: str,
    spec: str | KeypointSpec | None = None,
    input_size: int | None = None,
    input_mean="source",
    overwrite: bool = False,
) -> str:
    """Writes the checkpoint's model as ``.keras`` with its ``inference.json``; returns the model path.

    Args:
        checkpoint: a PV ``checkpoint.pt``, BP ``*.pth.tar`` or AE
            ``checkpoint.pth.tar`` file.
        output: ``MODEL.keras`` (``inference.json`` goes beside it) or a folder
            (it gets ``final.keras`` and ``inference.json``).
        source: "pv", "bp" or "ae" (see ``tf_hourglass.weights.SOURCES``).
        spec: the keypoints the checkpoint predicts, in its channel order;
            None for the source's (``DEFAULT_SPECS``: MPII, or COCO for ae).
        input_size: square input side in pixels; None for the source's
            training size (256, or 512 for ae).
        input_mean: what the model subtracts from its input (see
            ``load_pytorch_checkpoint``); "source" for the project's.
        overwrite: replace an existing model file and ``inference.json``.

    Raises ``FileExistsError`` rather than replace existing files without
    ``overwrite``, ``ValueError`` for an output that is the checkpoint itself
    (even with ``overwrite``), and ``ValueError`` (``CheckpointError``) for a
    checkpoint that cannot be read or does not fit; nothing is written then.
    """
    spec = DEFAULT_SPECS[source] if spec is None else spec
    spec = keypoint_specs.get_spec(spec) if isinstance(spec, str) else spec
    input_size = INPUT_SIZES[source] if input_size is None else input_size
    model_path, settings_path = output_paths(output)
    if _is_same_file(checkpoint, output, model_path, settings_path):
        raise ValueError(f"--output {output} is the checkpoint being converted; choose another path.")
    if os.path.exists(output) and output.endswith(".keras") and os.path.isdir(output):
        raise FileExistsError(f"{output} is a directory; give a .keras file path or a workdir folder.")
    atomic_files.check_writable_folder(os.path.dirname(model_path) or ".", f"--output {output}")
    settings = run_settings_text(spec, TARGET_SIGMAS[source], TARGET_PEAK)
    existing = [path for path in (model_path, settings_path) if os.path.exists(path)]
    if os.path.exists(settings_path):
        with open(settings_path, "rb") as f:
            if f.read() == settings.encode():
                existing.remove(settings_path)  # the same settings: nothing would change
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace.")

    model = load_pytorch_checkpoint(
        checkpoint, source, input_shape=(input_size, input_size, 3), input_mean=input_mean
    )
    if model.num_keypoints != spec.num_keypoints:
        raise ValueError(
            f"{checkpoint}: the model predicts {model.num_keypoints} keypoints but the spec {spec.name!r} has "
            f"{spec.num_keypoints}; pass the spec the checkpoint was trained with."
        )
    # The model's kind (single- or multi-person) comes from its class.
    model.pose_info = info_for(model, spec, sigma=TARGET_SIGMAS[source], peak=TARGET_PEAK)
    os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
    atomic_files.save(model.save, model_path, suffix=".keras")
    atomic_files.write_text(settings_path, settings)
    return model_path
