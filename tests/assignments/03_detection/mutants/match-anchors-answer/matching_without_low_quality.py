"""Thresholds only, without the low-quality rule: an object that no anchor overlaps by ``high`` gets no
anchor at all and is never trained."""

# fails: test-match-anchors
# %% grade_id=match-anchors-answer
import torch


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Per anchor: the index of its ground truth, ``-1`` (background) or ``-2`` (ignored); ``(A,)`` int64."""
    if gt_boxes.shape[0] == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)
    best_iou, best_gt = iou.max(dim=0)
    matches = best_gt.clone()
    matches[best_iou < low] = -1
    matches[(best_iou >= low) & (best_iou < high)] = -2
    return matches
