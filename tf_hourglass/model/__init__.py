"""Model architectures."""

from tf_hourglass.model.hourglass import StackedHourglass, as_stack_list, output_name
from tf_hourglass.model.presets import PRESET_PARAMETERS, PRESETS, from_preset

__all__ = ["PRESETS", "PRESET_PARAMETERS", "StackedHourglass", "as_stack_list", "from_preset", "output_name"]
