"""Evaluation: pose metrics (numpy); heatmaps are decoded by ``data.codec.HeatmapCodec``."""

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
    "MPII_COLUMNS",
    "coco_keypoint_ap",
    "curve_auc",
    "evaluate_mpii",
    "format_mpii_table",
    "mpii_head_size",
    "mpii_pckh",
    "mpii_pckh_curve",
    "pck",
    "pck_for_spec",
    "torso_size",
]
