"""Anchor boxes and anchor-to-ground-truth matching for detectors.

Anchors follow Faster R-CNN (Ren et al., 2015, https://arxiv.org/abs/1506.01497) exactly as
``torchvision.models.detection.anchor_utils.AnchorGenerator`` lays them out (one feature
level): for every cell of an ``(H, W)`` feature map with stride ``s``, one box per
(aspect ratio, size) pair, centred on the cell's top-left corner ``(x*s, y*s)``, ratio =
height / width, base half-sizes rounded to integers. Matching follows torchvision's ``Matcher``:
IoU >= ``high`` is foreground, < ``low`` is background (-1), in between is ignored (-2), and with
``allow_low_quality`` every ground truth also claims the anchors it overlaps best, so no object
is left without an anchor.
"""

from __future__ import annotations

import torch

from mlcraft.ops.boxes import box_iou

__all__ = ["BACKGROUND", "IGNORE", "base_anchors", "grid_anchors", "match_anchors"]

BACKGROUND = -1  # IoU below ``low`` with every ground truth
IGNORE = -2  # IoU between ``low`` and ``high``: neither trained as object nor as background


def base_anchors(
    sizes: tuple[float, ...], aspect_ratios: tuple[float, ...], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(len(aspect_ratios) * len(sizes), 4)`` zero-centred ``xyxy`` anchors, ratio-major order."""
    if not sizes or not aspect_ratios or min(sizes) <= 0 or min(aspect_ratios) <= 0:
        raise ValueError(f"sizes and aspect_ratios must be non-empty and positive, got {sizes}, {aspect_ratios}")
    scales = torch.as_tensor(sizes, dtype=dtype)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype)
    h_ratios = torch.sqrt(ratios)  # ratio = h / w with area kept at size²
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)  # (A,)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def grid_anchors(
    feature_size: tuple[int, int],
    stride: tuple[int, int],
    sizes: tuple[float, ...],
    aspect_ratios: tuple[float, ...],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """All anchors of one feature map: ``(H * W * A, 4)`` ``xyxy``, cell-major then anchor order."""
    height, width = feature_size
    stride_h, stride_w = stride
    cell = base_anchors(sizes, aspect_ratios, dtype).to(device)  # (A, 4)
    shift_y, shift_x = torch.meshgrid(
        torch.arange(height, device=device) * stride_h, torch.arange(width, device=device) * stride_w, indexing="ij"
    )  # (H, W) each
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4).to(dtype)  # (H*W, 1, 4)
    return (shifts + cell.view(1, -1, 4)).reshape(-1, 4)  # (H*W*A, 4)


def match_anchors(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4, allow_low_quality: bool = True
) -> torch.Tensor:
    """For each anchor, the index of its ground truth, or :data:`BACKGROUND` / :data:`IGNORE`.

    Args:
        anchors: ``(A, 4)`` xyxy; gt_boxes: ``(G, 4)`` xyxy (``G = 0`` makes every anchor background).
        high, low: IoU thresholds with ``0 <= low <= high <= 1``.
        allow_low_quality: every ground truth also gets the anchor(s) with its highest IoU (ties
            included), even below ``low``; such an anchor then points to the ground truth it
            overlaps most.
    Returns:
        ``(A,)`` int64.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), BACKGROUND, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (G, A)
    best_iou, matches = iou.max(dim=0)  # per anchor: best ground truth
    assigned = matches.clone()
    assigned[best_iou < low] = BACKGROUND
    assigned[(best_iou >= low) & (best_iou < high)] = IGNORE
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
        _, rescued = torch.nonzero(iou == best_per_gt, as_tuple=True)  # anchors that are some GT's best
        assigned[rescued] = matches[rescued]
    return assigned
