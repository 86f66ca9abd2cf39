"""pose-ae-train's Associative Embedding checkpoints in our Keras model, layer for layer.

princeton-vl/pose-ae-train's ``train.py`` saves ``exp/<name>/checkpoint.pth.tar``
as ``{'state_dict', 'optimizer', 'epoch'}``; the state dict is its ``Trainer``
wrapper's around ``DataParallel(PoseNet)``, so every key starts with
``model.module.`` (``state_dicts.state_dict_of`` strips it):

* ``pre.{0,1,3,4}.conv``: the stem convolutions (``pre.2`` is the max-pool);
* ``features.{i}.0``: stack i's hourglass, ``up1``, ``low1``, ``low2`` (the
  inner hourglass, or a convolution at the bottom) and ``low3``, each a
  ``Conv`` whose ``nn.Conv2d`` is ``.conv``; ``features.{i}.{1,2}.conv``: the
  two convolutions after it;
* ``outs.{i}.conv``: the output convolution;
* ``merge_preds.{i}.conv.conv``, ``merge_features.{i}.conv.conv``: the merge
  convolutions (``Merge`` wraps a ``Conv``).

Stacks, width, depth, increase, the stem's widths and ``bn`` (``PoseNet(bn=True)``
adds ``.bn`` BatchNorms beside the stem's and the hourglass's ``.conv``) are
read from the keys and shapes. The
output channels are K detection heatmaps, K tags and the rest unused (the
official ``calc_loss`` reads channels [0, 17) and [17, 34) of its 68), so K and
the tag dimension are the official ones (17 COCO joints, 1) unless given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from tf_hourglass.model.associative_embedding import AssociativeEmbedding
from tf_hourglass.weights.state_dicts import (
    copy_weights,
    count_indices,
    describe_arguments,
    output_kernel_shape,
    state_dict_of,
)
from tf_hourglass.weights.torch_checkpoint import CheckpointError, read_torch_checkpoint

SOURCE = "ae"


def _conv(keras_name: str, torch_name: str, batch_norm: bool):
    """A ``Conv``'s convolution and, with ``bn=True``, the BatchNorm after its ReLU."""
    yield keras_name, f"{torch_name}.conv", "conv"
    if batch_norm:
        yield f"{keras_name}_bn", f"{torch_name}.bn", "bn"


def _hourglass(keras_name: str, torch_name: str, order: int, batch_norm: bool):
    yield from _conv(f"{keras_name}_up", f"{torch_name}.up1", batch_norm)
    yield from _conv(f"{keras_name}_low1", f"{torch_name}.low1", batch_norm)
    if order > 1:
        yield from _hourglass(f"{keras_name}_inner", f"{torch_name}.low2", order - 1, batch_norm)
    else:
        yield from _conv(f"{keras_name}_bottom", f"{torch_name}.low2", batch_norm)
    yield from _conv(f"{keras_name}_low3", f"{torch_name}.low3", False)  # Conv(nf, f, 3): never bn


def layer_map(model: AssociativeEmbedding) -> Iterator[tuple[str, str, str]]:
    """(Keras layer name, PyTorch module name, "conv" | "bn") for every weighted layer of ``model``."""
    for i, module in enumerate(("pre.0", "pre.1", "pre.3", "pre.4"), start=1):
        yield from _conv(f"stem_conv{i}", module, model.batch_norm)
    for i in range(1, model.num_stacks + 1):
        s = i - 1
        yield from _hourglass(f"stack{i}_hg", f"features.{s}.0", model.depth, model.batch_norm)
        yield f"stack{i}_head_conv1", f"features.{s}.1.conv", "conv"
        yield f"stack{i}_head_conv2", f"features.{s}.2.conv", "conv"
        yield f"stack{i}_output_conv", f"outs.{s}.conv", "conv"
        if i < model.num_stacks:
            yield f"stack{i}_preds_back_conv", f"merge_preds.{s}.conv.conv", "conv"
            yield f"stack{i}_features_back_conv", f"merge_features.{s}.conv.conv", "conv"


def architecture_of(state: dict, path: str, num_keypoints: int = 17, tag_dim: int = 1) -> dict:
    """``AssociativeEmbedding`` arguments that fit a pose-ae-train state dict."""
    out_channels, filters = output_kernel_shape(state, SOURCE, path)
    depth = 1
    while f"features.0.0.{'low2.' * depth}up1.conv.weight" in state:
        depth += 1
    # Each level's lower branch widens its input: read every level's width.
    widths = [filters]
    for level in range(depth):
        key = f"features.0.0.{'low2.' * level}low1.conv.weight"
        if key not in state or state[key].ndim != 4:
            raise CheckpointError(f"{path}: no hourglass convolution {key!r} in the 'ae' checkpoint.")
        widths.append(int(state[key].shape[0]))
    increase = widths[1] - widths[0]
    if any(b - a != increase for a, b in zip(widths[:-1], widths[1:], strict=False)) or increase < 0:
        raise CheckpointError(
            f"{path}: the hourglass widths {widths} do not grow by one amount per level; this model "
            f"grows by `increase` at every level (pose-ae-train's official 128 does)."
        )
    extra_channels = out_channels - num_keypoints * (1 + tag_dim)
    if extra_channels < 0:
        raise CheckpointError(
            f"{path}: the outputs have {out_channels} channels, fewer than {num_keypoints} keypoints "
            f"x (1 heatmap + {tag_dim} tag) need."
        )
    stem_filters = []
    for key in ("pre.0.conv.weight", "pre.1.conv.weight"):
        if key not in state or state[key].ndim != 4:
            raise CheckpointError(f"{path}: no stem convolution {key!r} in the 'ae' checkpoint.")
        stem_filters.append(int(state[key].shape[0]))
    return dict(
        num_stacks=count_indices(state, r"features\.(\d+)\."),
        stem_filters=tuple(stem_filters),
        # PoseNet(bn=True) puts a BatchNorm after the stem's and hourglass's ReLUs (but low3's).
        batch_norm="pre.0.bn.weight" in state,
        filters=filters,
        increase=increase,
        depth=depth,
        num_keypoints=num_keypoints,
        tag_dim=tag_dim,
        extra_channels=extra_channels,
    )


def load_ae_checkpoint(path, input_shape=(512, 512, 3), num_keypoints=17, tag_dim=1) -> AssociativeEmbedding:
    """An ``AssociativeEmbedding`` holding a pose-ae-train checkpoint's weights (zip or legacy format).

    ``load_pytorch_checkpoint(path, "ae")`` calls this; ``num_keypoints`` and
    ``tag_dim`` say how the output channels are laid out (the official 17, 1).
    Raises ``CheckpointError`` (a ``ValueError``) naming the file and what did
    not fit.
    """
    path = os.fspath(path)
    state = state_dict_of(read_torch_checkpoint(path), path)
    arguments = architecture_of(state, path, num_keypoints, tag_dim)
    try:
        model = AssociativeEmbedding(
            **arguments, input_shape=tuple(input_shape), name="associative_embedding_ae"
        )
    except ValueError as e:
        raise CheckpointError(
            f"{path}: the checkpoint's architecture ({describe_arguments(arguments)}) is not buildable: {e}"
        ) from e
    copy_weights(model, state, SOURCE, path, mapping=layer_map(model))
    return model
