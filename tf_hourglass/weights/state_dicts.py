"""What every PyTorch source shares: the sources, their keys, reading a state dict, copying it into Keras.

``pytorch_hourglass`` (pv, bp) and ``pytorch_ae`` (ae) map each source's
modules to our Keras layers; ``checkpoints.load_pytorch_checkpoint`` picks one
by source. Convolution kernels go from PyTorch's OIHW to Keras' HWIO layout,
BatchNorm layers take weight, bias, running mean and running variance, and a
converted model is checked to have received every weight it has.
"""

from __future__ import annotations

import re

import numpy as np

from tf_hourglass.weights.torch_checkpoint import CheckpointError

SOURCES = {
    "pv": "princeton-vl/pytorch_stacked_hourglass",
    "bp": "bearpaw/pytorch-pose",
    "ae": "princeton-vl/pose-ae-train",
}
# nn.DataParallel (and PV's trainer wrapper, "model.") put these in front of every key.
KEY_PREFIXES = ("model.module.", "module.", "model.")
# A key each source's state dicts always have and the others' never do, to tell them apart.
MARKER_KEYS = {"pv": "hgs.0.0.up1.bn1.weight", "bp": "score.0.weight", "ae": "features.0.0.up1.conv.weight"}
# The first stack's output convolution: its kernel is (output channels, width, 1, 1).
OUTPUT_KEYS = {"pv": "outs.0.conv.weight", "bp": "score.0.weight", "ae": "outs.0.conv.weight"}
# The input side each project trains at.
INPUT_SIZES = {"pv": 256, "bp": 256, "ae": 512}
# What each project subtracts from its [0, 1] RGB input. bearpaw subtracts its
# MPII training set's mean (computed by its dataset code and cached in
# data/mpii/mean.pth.tar; ``read_mean_file`` reads that file). These values are
# the ones code derived from bearpaw's publishes for MPII.
INPUT_MEANS = {"pv": None, "bp": (0.4404, 0.4440, 0.4327), "ae": None}

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
CONV_TENSORS = ("weight", "bias")


def _ignored(key: str, source: str) -> bool:
    # BatchNorm's step counter is not a weight; PV builds a skip convolution in
    # every residual module and uses it only where channels change.
    return key.endswith(".num_batches_tracked") or (source == "pv" and ".skip_layer." in key)


def state_dict_of(checkpoint, path: str) -> dict[str, np.ndarray]:
    """The model's tensors from a loaded checkpoint, without the DataParallel prefix."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        # str keys: a pickle may mix key types, which sorted() cannot compare.
        found = (
            sorted(map(str, checkpoint))[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        )
        raise CheckpointError(f"{path}: no 'state_dict' of tensors in the checkpoint (found {found}).")
    for prefix in KEY_PREFIXES:  # longest first: "model.module." before "module."
        if all(str(key).startswith(prefix) for key in state):
            state = {str(key)[len(prefix) :]: value for key, value in state.items()}
            break
    tensors = {str(key): value for key, value in state.items() if isinstance(value, np.ndarray)}
    if len(tensors) != len(state):
        bad = next(str(key) for key, value in state.items() if not isinstance(value, np.ndarray))
        raise CheckpointError(f"{path}: state_dict entry {bad!r} is not a tensor.")
    return tensors


def count_indices(state: dict, pattern: str) -> int:
    """How many distinct values the (\\d+) group in ``pattern`` takes over the keys."""
    regex = re.compile(pattern)
    return len({match.group(1) for key in state if (match := regex.match(key))})


def output_kernel_shape(state: dict, source: str, path: str) -> tuple[int, int]:
    """(output channels, width) of ``source``'s state dict; raises naming the source it looks like."""
    marker, output_key = MARKER_KEYS[source], OUTPUT_KEYS[source]
    if marker not in state or output_key not in state:
        other = next((s for s, key in MARKER_KEYS.items() if s != source and key in state), None)
        hint = f"; it looks like a {other!r} checkpoint: pass source={other!r}" if other else ""
        missing = marker if marker not in state else output_key
        raise CheckpointError(
            f"{path}: not a {source!r} ({SOURCES[source]}) hourglass state dict: it has no "
            f"{missing!r}{hint}. Found keys such as {sorted(state)[:4]}."
        )
    if state[output_key].ndim != 4:
        raise CheckpointError(
            f"{path}: {output_key!r} has shape {state[output_key].shape}, not a convolution kernel's."
        )
    return int(state[output_key].shape[0]), int(state[output_key].shape[1])


def describe_arguments(arguments: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in arguments.items())


def copy_weights(model, state: dict, source: str, path: str, mapping) -> None:
    """Sets every weight of ``model`` from ``state``; raises naming every key that does not fit.

    ``mapping``: (Keras layer, PyTorch module, "conv" | "bn") triples (the source's ``layer_map``).
    """
    assignments, expected_keys, mismatches = [], set(), []
    for layer_name, module, kind in mapping:
        layer = model.get_layer(layer_name)
        names = CONV_TENSORS if kind == "conv" else BN_TENSORS
        keys = [f"{module}.{name}" for name in names]
        expected_keys.update(keys)
        if not all(key in state for key in keys):
            continue
        values = [np.asarray(state[key], np.float32) for key in keys]
        if kind == "conv":
            values[0] = values[0].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        for key, value, weight in zip(keys, values, layer.get_weights(), strict=True):
            if value.shape != weight.shape:
                torch_shape = state[key].shape
                mismatches.append(
                    f"{key} has shape {tuple(torch_shape)}, expected {_torch_shape(weight, kind)}"
                )
        assignments.append((layer, values))
    missing = sorted(expected_keys - set(state))
    unexpected = sorted(key for key in set(state) - expected_keys if not _ignored(key, source))
    if missing or unexpected or mismatches:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing tensors (e.g. {missing[:3]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if mismatches:
            problems.append(f"{len(mismatches)} of another shape (e.g. {'; '.join(mismatches[:3])})")
        raise CheckpointError(
            f"{path}: the {source!r} checkpoint does not fit "
            f"{type(model).__name__}({describe_arguments(model.get_config())}): " + ", ".join(problems) + "."
        )
    covered = {layer.name for layer, _ in assignments}
    uncovered = [layer.name for layer in model.layers if layer.weights and layer.name not in covered]
    if uncovered:  # a model layer no checkpoint tensor maps to: a bug in layer_map, never the user's
        raise AssertionError(f"layers without PyTorch weights: {uncovered[:5]}")
    for layer, values in assignments:
        layer.set_weights(values)


def _torch_shape(weight: np.ndarray, kind: str) -> tuple:
    return (
        tuple(np.transpose(weight, (3, 2, 0, 1)).shape)
        if kind == "conv" and weight.ndim == 4
        else weight.shape
    )
