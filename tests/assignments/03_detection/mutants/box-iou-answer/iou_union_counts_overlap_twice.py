"""Divides the intersection by ``area1 + area2`` without subtracting the intersection: the overlap is
counted twice in the union, and identical boxes get IoU 0.5."""

# fails: test-box-iou
# %% grade_id=box-iou-answer
import torch


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of ``xyxy`` boxes."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = (bottom_right - top_left).clamp(min=0)
    inter = size[..., 0] * size[..., 1]
    return inter / (box_area(boxes1)[:, None] + box_area(boxes2)[None, :])
