"""A rescued anchor gets the object that rescued it instead of its own best object, so an anchor that
overlaps another object much more is trained on the wrong one."""

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
    best_per_gt = iou.max(dim=1, keepdim=True).values
    gt_index, anchor_index = torch.nonzero(iou == best_per_gt, as_tuple=True)
    matches[anchor_index] = gt_index
    return matches
