"""Evaluation: COCO mAP by hand, checked against pycocotools (03_detection). Box geometry and
NMS live in :mod:`mlcraft.ops`; drift statistics in :mod:`mlcraft.mlops.drift`."""

from mlcraft.evaluation.classification import (
    ReliabilityCurve,
    brier_score,
    expected_calibration_error,
    log_loss,
    min_cost_threshold,
    pr_auc,
    precision_at_k,
    reliability_curve,
    roc_auc,
)
from mlcraft.evaluation.coco import (
    CocoMetrics,
    average_precision,
    coco_evaluate,
    precision_recall_curve,
    to_coco_json,
)

__all__ = [
    "CocoMetrics",
    "ReliabilityCurve",
    "average_precision",
    "brier_score",
    "coco_evaluate",
    "expected_calibration_error",
    "log_loss",
    "min_cost_threshold",
    "pr_auc",
    "precision_at_k",
    "precision_recall_curve",
    "reliability_curve",
    "roc_auc",
    "to_coco_json",
]
