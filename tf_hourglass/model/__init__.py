"""Model architectures: Stacked Hourglass, Convolutional Pose Machines and Associative Embedding."""

from tf_hourglass.model.associative_embedding import AssociativeEmbedding
from tf_hourglass.model.cpm import ConvolutionalPoseMachine
from tf_hourglass.model.hourglass import StackedHourglass
from tf_hourglass.model.pose_model import (
    PoseModel,
    as_stack_list,
    keypoint_heatmaps,
    model_inputs,
    output_name,
)
from tf_hourglass.model.presets import (
    AE_PRESETS,
    CPM_PRESETS,
    HOURGLASS_PRESETS,
    PRESET_PARAMETERS,
    PRESETS,
    from_preset,
)

__all__ = [
    "AE_PRESETS",
    "AssociativeEmbedding",
    "CPM_PRESETS",
    "ConvolutionalPoseMachine",
    "HOURGLASS_PRESETS",
    "PRESETS",
    "PRESET_PARAMETERS",
    "PoseModel",
    "StackedHourglass",
    "as_stack_list",
    "from_preset",
    "keypoint_heatmaps",
    "model_inputs",
    "output_name",
]
