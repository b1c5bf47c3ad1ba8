"""Foreground only when IoU ``> high`` and background when IoU ``<= low``: an anchor at exactly 0.5
becomes ignored, and one at exactly 0.4 background."""

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
    matches[best_iou <= low] = -1
    matches[(best_iou > low) & (best_iou <= high)] = -2
    best_per_gt = iou.max(dim=1, keepdim=True).values
    rescued = (iou == best_per_gt).any(dim=0)
    matches[rescued] = best_gt[rescued]
    return matches
