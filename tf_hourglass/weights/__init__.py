"""Pretrained weights: PyTorch Stacked Hourglass checkpoints as Keras models.

python -m tf_hourglass.weights --source pv --checkpoint checkpoint.pt --output hg8_pv.keras
"""

from tf_hourglass.weights.checkpoints import load_pytorch_checkpoint
from tf_hourglass.weights.state_dicts import SOURCES
from tf_hourglass.weights.torch_checkpoint import CheckpointError, read_torch_checkpoint

__all__ = ["SOURCES", "CheckpointError", "load_pytorch_checkpoint", "read_torch_checkpoint"]
