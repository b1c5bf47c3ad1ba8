"""Calls ``torchvision.ops.nms`` instead of writing it: right values, caught by the hidden forbidden-call
check (in Task 4 too, whose ``batched_nms`` calls this ``nms``)."""

# fails: test-nms, test-batched-nms
# %% grade_id=nms-answer
import torch
from torchvision.ops import nms as _tv_nms


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (``int64``, best score first) of the ``xyxy`` boxes that greedy NMS keeps."""
    return _tv_nms(boxes, scores, iou_threshold)
