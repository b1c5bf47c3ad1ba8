"""Does not clamp the intersection's width and height at 0: boxes apart in one direction get a negative
IoU, boxes apart in both directions a positive one."""

# fails: test-box-iou
# %% grade_id=box-iou-answer
import torch


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of ``xyxy`` boxes."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = bottom_right - top_left
    inter = size[..., 0] * size[..., 1]
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    return inter / union
