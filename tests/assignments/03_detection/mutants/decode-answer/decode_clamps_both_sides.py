"""Clamps the log-scales to ``[-log(1000/16), log(1000/16)]``: torchvision clamps from above only, so very
small boxes come out too large."""

# fails: test-decode
# %% grade_id=decode-answer
import math

import torch


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Apply Faster R-CNN deltas ``(N, 4)`` to ``xyxy`` anchors ``(N, 4)``; returns ``xyxy`` boxes ``(N, 4)``."""
    wx, wy, ww, wh = weights
    anchors = anchors.to(deltas.dtype)
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    clip = math.log(1000.0 / 16)
    dw = (deltas[:, 2] / ww).clamp(-clip, clip)
    dh = (deltas[:, 3] / wh).clamp(-clip, clip)
    cx, cy = ctr_x + dx * widths, ctr_y + dy * heights
    w, h = widths * torch.exp(dw), heights * torch.exp(dh)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=1)
