"""Named configurations of the model families.

Trainable parameter counts (with 16 keypoints for hourglasses and CPMs, 17 for
Associative Embedding) are pinned by tests; the hg1, hg2 and hg8 counts equal
the original Torch network's, cpm6 with 14 keypoints (LSP) has the released
Caffe model's 31,219,866 and ae_hg4 the official PyTorch PoseNet's 138,893,840.
"""

from __future__ import annotations

from tf_hourglass.model.associative_embedding import AssociativeEmbedding
from tf_hourglass.model.cpm import ConvolutionalPoseMachine
from tf_hourglass.model.hourglass import StackedHourglass

HOURGLASS_PRESETS = {
    # The paper's networks: 256 features, order-4 hourglasses, 256x256 input.
    "hg1": dict(num_stacks=1, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg2": dict(num_stacks=2, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg4": dict(num_stacks=4, filters=256, depth=4, input_shape=(256, 256, 3)),
    "hg8": dict(num_stacks=8, filters=256, depth=4, input_shape=(256, 256, 3)),
    # bearpaw/pytorch-pose's networks (their stem widens one module earlier), for its weights.
    "hg2_bearpaw": dict(num_stacks=2, filters=256, depth=4, input_shape=(256, 256, 3), stem="bearpaw"),
    "hg8_bearpaw": dict(num_stacks=8, filters=256, depth=4, input_shape=(256, 256, 3), stem="bearpaw"),
    # A CPU-sized network for the quick start: 128x128 input, 64 features.
    "hg2_small": dict(num_stacks=2, filters=64, depth=4, input_shape=(128, 128, 3)),
    # A tiny network for tests: builds and runs in well under a second.
    "hg_tiny": dict(num_stacks=2, filters=16, depth=2, input_shape=(64, 64, 3)),
}

CPM_PRESETS = {
    # The paper's network: 6 stages, 128 channels, 11x11 stage kernels, 368x368 input.
    "cpm6": dict(num_stages=6, filters=128, stage_kernel_size=11, input_shape=(368, 368, 3)),
    # A CPU-sized CPM for the CPM quick start: 3 stages, 32 channels, 7x7 stage
    # kernels (as the paper's MPII model) on 16x16 maps of a 128x128 input.
    "cpm_small": dict(num_stages=3, filters=32, stage_kernel_size=7, input_shape=(128, 128, 3)),
    # A tiny CPM for tests.
    "cpm_tiny": dict(num_stages=2, filters=8, stage_kernel_size=3, input_shape=(64, 64, 3)),
}

_AE_SMALL_BN = dict(
    num_stacks=2,
    filters=64,
    increase=32,
    depth=4,
    extra_channels=0,
    input_shape=(128, 128, 3),
    stem_filters=(32, 64),
    batch_norm=True,
)

AE_PRESETS = {
    # pose-ae-train's network: 4 stacks, 256 features growing by 128 per level,
    # 17 COCO keypoints with 1-D tags and its 34 unused channels, 512x512 input.
    "ae_hg4": dict(
        num_stacks=4, filters=256, increase=128, depth=4, extra_channels=34, input_shape=(512, 512, 3)
    ),
    # A CPU-sized multi-person network for synthetic scenes: 256x256 input, 64 features.
    "ae_small": dict(
        num_stacks=2, filters=64, increase=32, depth=4, extra_channels=0, input_shape=(256, 256, 3)
    ),
    # ae_small with the official bn=True (a BatchNorm after the stem's and hourglass's ReLUs but
    # low3's), a narrower stem and 128x128 input (32x32 maps).
    "ae_small_bn": _AE_SMALL_BN,
    # The multi-person quick start's network: ae_small_bn without the stem's max-pool, 64x64 maps
    # of a 128x128 input (stride 2), so that joints of small figures are placed twice as finely, at
    # about twice the training step's time.
    "ae_small_fine": dict(_AE_SMALL_BN, output_stride=2),
    # A tiny network for tests.
    "ae_tiny": dict(num_stacks=2, filters=16, increase=8, depth=2, extra_channels=0, input_shape=(64, 64, 3)),
}

PRESETS = {**HOURGLASS_PRESETS, **CPM_PRESETS, **AE_PRESETS}
PRESET_CLASSES = {
    **dict.fromkeys(HOURGLASS_PRESETS, StackedHourglass),
    **dict.fromkeys(CPM_PRESETS, ConvolutionalPoseMachine),
    **dict.fromkeys(AE_PRESETS, AssociativeEmbedding),
}

# Trainable parameters of each preset with 16 keypoints (17 for the ae_ presets).
PRESET_PARAMETERS = {
    "hg1": 3_426_448,
    "hg2": 6_570_400,
    "hg4": 12_858_304,
    "hg8": 25_434_112,
    "hg2_bearpaw": 6_730_912,
    "hg8_bearpaw": 25_594_624,
    "hg2_small": 545_248,
    "hg_tiny": 142_384,
    "cpm6": 31_377_062,
    "cpm_small": 754_187,
    "cpm_tiny": 35_150,
    "ae_hg4": 138_893_840,
    "ae_small": 4_632_196,
    "ae_small_bn": 4_429_892,
    "ae_small_fine": 4_429_892,
    "ae_tiny": 335_844,
}


def preset_class(preset: str):
    """The model class a preset builds."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Known presets: {sorted(PRESETS)}")
    return PRESET_CLASSES[preset]


def from_preset(preset: str, **overrides):
    """Builds a named configuration; keyword arguments override its fields.

    Example: ``from_preset("hg8", num_keypoints=14)`` for LSP.
    """
    return preset_class(preset)(**{**PRESETS[preset], **overrides})
