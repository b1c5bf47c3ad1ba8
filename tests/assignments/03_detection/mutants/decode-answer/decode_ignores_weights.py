"""Ignores ``weights``: right with the default ``(1, 1, 1, 1)``, wrong for the R-CNN heads' ``(10, 10, 5, 5)``."""

# fails: test-decode
# %% grade_id=decode-answer
import math

import torch


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Apply Faster R-CNN deltas ``(N, 4)`` to ``xyxy`` anchors ``(N, 4)``; returns ``xyxy`` boxes ``(N, 4)``."""
    _ = weights  # never used
    anchors = anchors.to(deltas.dtype)
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0], deltas[:, 1]
    dw = deltas[:, 2].clamp(max=math.log(1000.0 / 16))
    dh = deltas[:, 3].clamp(max=math.log(1000.0 / 16))
    cx, cy = ctr_x + dx * widths, ctr_y + dy * heights
    w, h = widths * torch.exp(dw), heights * torch.exp(dh)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=1)
