"""Calls ``torchvision.ops.box_iou`` instead of writing it: right values, caught by the hidden
forbidden-call check."""

# fails: test-box-iou
# %% grade_id=box-iou-answer
import torch
import torchvision


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of ``xyxy`` boxes."""
    return torchvision.ops.box_iou(boxes1, boxes2)
