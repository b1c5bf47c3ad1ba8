"""Ignores the labels: one NMS over all classes, so a confident box of one class removes an overlapping
box of another class."""

# fails: test-batched-nms
# %% grade_id=batched-nms-answer
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: indices (``int64``, best score first) of the boxes kept within each label."""
    return nms(boxes, scores, iou_threshold)
