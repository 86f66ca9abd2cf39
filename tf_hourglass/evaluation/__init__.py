"""Evaluation: heatmap decoding, coordinate frames and pose metrics (numpy)."""

from tf_hourglass.evaluation.decoding import (
    DECODE_METHODS,
    average_flip,
    decode_heatmaps,
    flip_back,
    heatmap_to_image_coords,
    image_to_heatmap_coords,
    image_to_input_coords,
    input_to_image_coords,
)
from tf_hourglass.evaluation.metrics import (
    MPII_COLUMNS,
    coco_keypoint_ap,
    curve_auc,
    evaluate_mpii,
    format_mpii_table,
    mpii_head_size,
    mpii_pckh,
    mpii_pckh_curve,
    pck,
    pck_for_spec,
    torso_size,
)

__all__ = [
    "DECODE_METHODS",
    "MPII_COLUMNS",
    "average_flip",
    "coco_keypoint_ap",
    "curve_auc",
    "decode_heatmaps",
    "evaluate_mpii",
    "flip_back",
    "format_mpii_table",
    "heatmap_to_image_coords",
    "image_to_heatmap_coords",
    "image_to_input_coords",
    "input_to_image_coords",
    "mpii_head_size",
    "mpii_pckh",
    "mpii_pckh_curve",
    "pck",
    "pck_for_spec",
    "torso_size",
]
