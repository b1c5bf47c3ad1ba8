"""The "+1 pixel" area convention of the PASCAL VOC tools, ``(x2 - x1 + 1) * (y2 - y1 + 1)``: wrong for
continuous coordinates, and every IoU built on it is off."""

# fails: test-box-iou
# %% grade_id=box-area-answer
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``(N, 4)`` ``xyxy`` boxes."""
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
