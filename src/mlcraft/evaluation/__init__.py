"""Evaluation: COCO mAP by hand, checked against pycocotools (03_detection); entity-level F1 and
retrieval metrics (04_nlp); ranking and calibration metrics (05_tabular). Box geometry and
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
from mlcraft.evaluation.ner import entity_scores, per_type_scores, token_accuracy
from mlcraft.evaluation.retrieval import mrr, ndcg_at_k, recall_at_k

__all__ = [
    "CocoMetrics",
    "ReliabilityCurve",
    "average_precision",
    "brier_score",
    "coco_evaluate",
    "entity_scores",
    "expected_calibration_error",
    "log_loss",
    "min_cost_threshold",
    "mrr",
    "ndcg_at_k",
    "per_type_scores",
    "pr_auc",
    "precision_at_k",
    "precision_recall_curve",
    "recall_at_k",
    "reliability_curve",
    "roc_auc",
    "to_coco_json",
    "token_accuracy",
]
