"""``load_pytorch_checkpoint``: any supported PyTorch checkpoint as a Keras model, by source."""

from __future__ import annotations

import os

from tf_hourglass.weights.pytorch_ae import load_ae_checkpoint
from tf_hourglass.weights.pytorch_hourglass import load_hourglass_checkpoint
from tf_hourglass.weights.state_dicts import INPUT_SIZES, SOURCES


def load_pytorch_checkpoint(path, source: str, input_shape=None, input_mean="source"):
    """A Keras model holding the weights of a PyTorch hourglass checkpoint.

    Args:
        path: ``checkpoint.pt`` (``source="pv"``), ``checkpoint.pth.tar`` /
            ``model_best.pth.tar`` (``source="bp"``) or pose-ae-train's
            ``exp/<name>/checkpoint.pth.tar`` (``source="ae"``), in torch's
            zip or legacy format. Read without torch and without running code
            from the file.
        source: "pv" (princeton-vl/pytorch_stacked_hourglass), "bp"
            (bearpaw/pytorch-pose): a ``StackedHourglass``; "ae"
            (princeton-vl/pose-ae-train): an ``AssociativeEmbedding``.
        input_shape: the model's input; None for the project's training size
            (``INPUT_SIZES``: 256x256 for pv and bp, 512x512 for ae).
        input_mean: RGB values the model subtracts from its [0, 1] input:
            "source" for the project's (none for pv and ae; bearpaw's MPII
            mean for bp, see ``INPUT_MEANS`` and ``read_mean_file``), None for
            none (ae takes none).

    The architecture (stacks, residual modules, depth, widths, keypoints or
    output channels) comes from the checkpoint. Raises ``CheckpointError`` (a
    ``ValueError``) naming the file and what did not fit.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}; received {source!r}.")
    path = os.fspath(path)
    if input_shape is None:
        input_shape = (INPUT_SIZES[source], INPUT_SIZES[source], 3)
    if source == "ae":
        if not (input_mean is None or (isinstance(input_mean, str) and input_mean == "source")):
            raise ValueError(
                f"pose-ae-train's network takes [0, 1] RGB without a mean; received {input_mean!r}."
            )
        return load_ae_checkpoint(path, input_shape)
    return load_hourglass_checkpoint(path, source, input_shape, input_mean)
