"""tf_hourglass: Stacked Hourglass Networks, Convolutional Pose Machines and Associative Embedding in Keras 3."""

from tf_hourglass.data.grouping import group_people
from tf_hourglass.model import PRESETS, AssociativeEmbedding, ConvolutionalPoseMachine, StackedHourglass
from tf_hourglass.model_loader import from_preset
from tf_hourglass.prediction.estimator import PoseEstimator
from tf_hourglass.training.ae_losses import AssociativeEmbeddingLoss
from tf_hourglass.training.losses import HeatmapLoss

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AssociativeEmbedding",
    "AssociativeEmbeddingLoss",
    "ConvolutionalPoseMachine",
    "HeatmapLoss",
    "PoseEstimator",
    "StackedHourglass",
    "from_preset",
    "group_people",
]
