"""Model architectures: Stacked Hourglass and Convolutional Pose Machines."""

from tf_hourglass.model.cpm import ConvolutionalPoseMachine
from tf_hourglass.model.hourglass import StackedHourglass
from tf_hourglass.model.pose_model import (
    PoseModel,
    as_stack_list,
    keypoint_heatmaps,
    model_inputs,
    output_name,
)
from tf_hourglass.model.presets import CPM_PRESETS, HOURGLASS_PRESETS, PRESET_PARAMETERS, PRESETS, from_preset

__all__ = [
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
