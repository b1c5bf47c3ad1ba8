"""Calls the course package's ``coco_evaluate`` (COCO's evaluation restricted to one IoU threshold through
its precision array) instead of writing AP: right values, caught by the hidden forbidden-call check."""

# fails: test-ap
# %% grade_id=ap-answer
import numpy as np
import torch

from mlcraft.evaluation import coco_evaluate
from mlcraft.evaluation.coco import IOU_THRESHOLDS


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO-style 101-point AP of one class over several images (lists of per-image tensors)."""
    if sum(len(g) for g in gt_boxes) == 0:
        raise ValueError("there is no ground truth in any image: recall, hence AP, is undefined")
    ground_truths = [{"boxes": g, "labels": torch.zeros(len(g))} for g in gt_boxes]
    detections = [
        {"boxes": b, "scores": s, "labels": torch.zeros(len(b))} for b, s in zip(pred_boxes, pred_scores, strict=True)
    ]
    precision = coco_evaluate(ground_truths, detections)["precision"]  # (T, R, K, A, M)
    t = int(np.argmin(np.abs(IOU_THRESHOLDS - iou_threshold)))
    return float(precision[t, :, 0, 0, 2].mean())
