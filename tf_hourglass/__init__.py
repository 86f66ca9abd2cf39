"""tf_hourglass: Stacked Hourglass Networks and Convolutional Pose Machines for single-person pose estimation in Keras 3."""

from tf_hourglass.inference import PoseEstimator
from tf_hourglass.model import PRESETS, ConvolutionalPoseMachine, StackedHourglass
from tf_hourglass.model_loader import from_preset
from tf_hourglass.training.losses import HeatmapLoss

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ConvolutionalPoseMachine",
    "HeatmapLoss",
    "PoseEstimator",
    "StackedHourglass",
    "from_preset",
]
