"""PyTorch Stacked Hourglass weights in our Keras model, layer for layer.

Two public PyTorch projects publish single-person hourglass checkpoints (the
multi-person Associative Embedding one, ``ae``, is in ``pytorch_ae``):

* ``pv``: princeton-vl/pytorch_stacked_hourglass, the authors' port
  (``checkpoint.pt``: ``{'state_dict', 'optimizer', 'epoch'}``, keys prefixed
  ``model.module.``). Its network is the original one, so it loads into
  ``StackedHourglass`` with the default stem.
* ``bp``: bearpaw/pytorch-pose (``checkpoint.pth.tar`` / ``model_best.pth.tar``:
  ``{'epoch', 'arch', 'state_dict', 'best_acc', 'optimizer'}``, keys prefixed
  ``module.``). Its stem widens one residual module earlier:
  ``StackedHourglass(stem="bearpaw")``.

The architecture (stacks, width, depth, residual modules per branch,
keypoints) is read from the tensor names and shapes. Each Keras layer gets its
PyTorch module's tensors: convolution kernels go from PyTorch's OIHW to Keras'
HWIO layout, BatchNorm layers take weight, bias, running mean and running
variance (epsilon is 1e-5 in both). The converted model is checked to have
received every weight it has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from tf_hourglass.model.hourglass import StackedHourglass
from tf_hourglass.weights.state_dicts import (
    INPUT_MEANS,
    copy_weights,
    count_indices,
    describe_arguments,
    output_kernel_shape,
    state_dict_of,
)
from tf_hourglass.weights.torch_checkpoint import CheckpointError, read_torch_checkpoint

STEMS = {"pv": "original", "bp": "bearpaw"}


def _residual(keras_name: str, torch_name: str, source: str, has_skip: bool):
    """(Keras layer, PyTorch module, kind) of one residual module."""
    conv = ".conv" if source == "pv" else ""  # PV wraps each nn.Conv2d in its own Conv module
    yield f"{keras_name}_1_bn", f"{torch_name}.bn1", "bn"
    yield f"{keras_name}_1_conv", f"{torch_name}.conv1{conv}", "conv"
    yield f"{keras_name}_2_bn", f"{torch_name}.bn2", "bn"
    yield f"{keras_name}_2_conv", f"{torch_name}.conv2{conv}", "conv"
    yield f"{keras_name}_3_bn", f"{torch_name}.bn3", "bn"
    yield f"{keras_name}_3_conv", f"{torch_name}.conv3{conv}", "conv"
    if has_skip:
        skip = "skip_layer.conv" if source == "pv" else "downsample.0"
        yield f"{keras_name}_skip_conv", f"{torch_name}.{skip}", "conv"


def _pv_hourglass(keras_name, torch_name, order):
    # PV's Hourglass: up1, low1, low2 (the next hourglass, or a residual at the bottom), low3.
    yield f"{keras_name}_up_res1", f"{torch_name}.up1"
    yield f"{keras_name}_low1_res1", f"{torch_name}.low1"
    if order > 1:
        yield from _pv_hourglass(f"{keras_name}_inner", f"{torch_name}.low2", order - 1)
    else:
        yield f"{keras_name}_bottom_res1", f"{torch_name}.low2"
    yield f"{keras_name}_low3_res1", f"{torch_name}.low3"


def _bp_hourglass(keras_name, torch_name, order, num_modules):
    # BP's Hourglass keeps level n at hg[n-1]: branches 0 upper, 1 before, 2 after, 3 bottom.
    level = f"{torch_name}.hg.{order - 1}"
    branches = [("up", 0), ("low1", 1)] + ([("bottom", 3)] if order == 1 else []) + [("low3", 2)]
    for keras_branch, index in branches:
        for j in range(num_modules):
            yield f"{keras_name}_{keras_branch}_res{j + 1}", f"{level}.{index}.{j}"
        if keras_branch == "low1" and order > 1:
            yield from _bp_hourglass(f"{keras_name}_inner", torch_name, order - 1, num_modules)


def layer_map(model: StackedHourglass, source: str) -> Iterator[tuple[str, str, str]]:
    """(Keras layer name, PyTorch module name, "conv" | "bn") for every weighted layer of ``model``."""
    layer_names = {layer.name for layer in model.layers}
    pv = source == "pv"
    residuals = []  # (Keras residual prefix, PyTorch module)

    yield "stem_conv", "pre.0.conv" if pv else "conv1", "conv"
    yield "stem_bn", "pre.0.bn" if pv else "bn1", "bn"
    stem_modules = ("pre.1", "pre.3", "pre.4") if pv else ("layer1.0", "layer2.0", "layer3.0")
    residuals += [(f"stem_res{i}", module) for i, module in enumerate(stem_modules, start=1)]
    for i in range(1, model.num_stacks + 1):
        s = i - 1
        if pv:
            residuals += list(_pv_hourglass(f"stack{i}_hg", f"hgs.{s}.0", model.depth))
            residuals.append((f"stack{i}_head_res1", f"features.{s}.0"))
        else:
            residuals += list(
                _bp_hourglass(f"stack{i}_hg", f"hg.{s}", model.depth, model.num_residual_modules)
            )
            residuals += [
                (f"stack{i}_head_res{j + 1}", f"res.{s}.{j}") for j in range(model.num_residual_modules)
            ]
    for keras_name, torch_name in residuals:
        yield from _residual(keras_name, torch_name, source, f"{keras_name}_skip_conv" in layer_names)

    for i in range(1, model.num_stacks + 1):
        s = i - 1
        yield f"stack{i}_lin_conv", f"features.{s}.1.conv" if pv else f"fc.{s}.0", "conv"
        yield f"stack{i}_lin_bn", f"features.{s}.1.bn" if pv else f"fc.{s}.1", "bn"
        yield f"stack{i}_heatmap_conv", f"outs.{s}.conv" if pv else f"score.{s}", "conv"
        if i < model.num_stacks:
            yield (
                f"stack{i}_features_back_conv",
                f"merge_features.{s}.conv.conv" if pv else f"fc_.{s}",
                "conv",
            )
            yield (
                f"stack{i}_heatmaps_back_conv",
                f"merge_preds.{s}.conv.conv" if pv else f"score_.{s}",
                "conv",
            )


def architecture_of(state: dict, source: str, path: str) -> dict:
    """StackedHourglass arguments that fit a state dict of ``source``'s layout."""
    num_keypoints, filters = output_kernel_shape(state, source, path)
    if source == "pv":
        depth = 1
        while f"hgs.0.0.{'low2.' * depth}up1.bn1.weight" in state:
            depth += 1
        arguments = dict(
            num_stacks=count_indices(state, r"hgs\.(\d+)\."), depth=depth, num_residual_modules=1
        )
    else:
        arguments = dict(
            num_stacks=count_indices(state, r"hg\.(\d+)\."),
            depth=count_indices(state, r"hg\.0\.hg\.(\d+)\."),
            num_residual_modules=count_indices(state, r"hg\.0\.hg\.0\.0\.(\d+)\."),
        )
    return dict(arguments, num_keypoints=int(num_keypoints), filters=int(filters), stem=STEMS[source])


def check_parameter_budget(arguments: dict, path: str) -> None:
    """Refuses an architecture with more parameters than the file has bytes, before building it.

    The widths come from one tensor's shape, so a small file can claim any size
    (a 1 MB marker of 20000 filters would build a model of billions of
    weights). A real checkpoint holds each parameter in at least one byte; the
    count below is a lower bound (the residual modules' kernels and the heatmap
    convolutions only), so a real checkpoint always passes.
    """
    filters, stacks = arguments["filters"], arguments["num_stacks"]
    residual_modules = stacks * (3 * arguments["depth"] + 2) * arguments["num_residual_modules"]
    # A bottleneck of f filters: 1x1 f -> f/2, 3x3 f/2 -> f/2, 1x1 f/2 -> f.
    at_least = (
        residual_modules * (filters * filters * 13 // 4) + stacks * filters * arguments["num_keypoints"]
    )
    file_bytes = os.path.getsize(path)
    if at_least > file_bytes:
        raise CheckpointError(
            f"{path}: the checkpoint's architecture ({describe_arguments(arguments)}) has at least {at_least} "
            f"parameters, more than its {file_bytes} bytes can hold; it is damaged or not a hourglass checkpoint."
        )


def read_mean_file(path) -> tuple[float, float, float]:
    """The RGB mean in bearpaw's cached ``mean.pth.tar`` (``{'mean': tensor, 'std': tensor}``)."""
    path = os.fspath(path)
    data = read_torch_checkpoint(path)
    mean = data.get("mean") if isinstance(data, dict) else None
    if not isinstance(mean, np.ndarray) or mean.shape != (3,):
        raise CheckpointError(f"{path}: expected {{'mean': a tensor of 3 values}} (bearpaw's mean.pth.tar).")
    return tuple(float(v) for v in mean)


def load_hourglass_checkpoint(path: str, source: str, input_shape, input_mean) -> StackedHourglass:
    """A ``StackedHourglass`` holding a pv or bp checkpoint (see ``checkpoints.load_pytorch_checkpoint``)."""
    state = state_dict_of(read_torch_checkpoint(path), path)
    arguments = architecture_of(state, source, path)
    check_parameter_budget(arguments, path)
    arguments["input_mean"] = (
        INPUT_MEANS[source] if isinstance(input_mean, str) and input_mean == "source" else input_mean
    )
    try:
        model = StackedHourglass(**arguments, input_shape=tuple(input_shape), name=f"hourglass_{source}")
    except ValueError as e:
        raise CheckpointError(
            f"{path}: the checkpoint's architecture ({describe_arguments(arguments)}) is not buildable: {e}"
        ) from e
    copy_weights(model, state, source, path, mapping=layer_map(model, source))
    return model
