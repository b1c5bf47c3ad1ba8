"""Evaluation: COCO mAP by hand, checked against pycocotools (03_detection). Box geometry and
NMS live in :mod:`mlcraft.ops`; drift statistics in :mod:`mlcraft.mlops.drift`."""

from mlcraft.evaluation.coco import (
    CocoMetrics,
    average_precision,
    coco_evaluate,
    precision_recall_curve,
    to_coco_json,
)

__all__ = [
    "CocoMetrics",
    "average_precision",
    "coco_evaluate",
    "precision_recall_curve",
    "to_coco_json",
]
