"""Named Stacked Hourglass configurations.

Trainable parameter counts with 16 keypoints are pinned by tests; the hg1, hg2
and hg8 counts equal the original Torch network's.
"""

from __future__ import annotations

from tf_hourglass.model.hourglass import StackedHourglass

PRESETS = {
    # The paper's networks: 256 features, order-4 hourglasses, 256x256 input.
    "hg1": dict(num_stacks=1, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg2": dict(num_stacks=2, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg4": dict(num_stacks=4, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg8": dict(num_stacks=8, filters=256, depth=4, input_shape=(256, 256, 3)),
    # A CPU-sized network for the quick start: 128x128 input, 64 features.
    "hg2_small": dict(num_stacks=2, filters=64, depth=4, input_shape=(128, 128, 3)),
    # A tiny network for tests: builds and runs in well under a second.
    "hg_tiny": dict(num_stacks=2, filters=16, depth=2, input_shape=(64, 64, 3)),
}

# Trainable parameters of each preset with 16 keypoints.
PRESET_PARAMETERS = {
    "hg1": 3_426_448,
    "hg2": 6_570_400,
    "hg4": 12_858_304,
    "hg8": 25_434_112,
    "hg2_small": 545_248,
    "hg_tiny": 142_384,
}


def from_preset(preset: str, **overrides) -> StackedHourglass:
    """Builds a named configuration; keyword arguments override its fields.

    Example: ``from_preset("hg8", num_keypoints=14)`` for LSP.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Known presets: {sorted(PRESETS)}")
    return StackedHourglass(**{**PRESETS[preset], **overrides})
