"""Bounding-box utilities: format conversions, area, clipping, IoU, GIoU and box-delta coding.

Conventions follow ``torchvision.ops`` (and are checked against it in the tests):
- ``xyxy``: ``(x1, y1, x2, y2)`` corners, continuous coordinates, area ``(x2 - x1) * (y2 - y1)``
  (no "+1 pixel" convention);
- ``xywh``: ``(x1, y1, w, h)`` (COCO's format); ``cxcywh``: ``(cx, cy, w, h)``.
GIoU follows Rezatofighi et al. (2019, https://arxiv.org/abs/1902.09630); box deltas follow
Faster R-CNN (Ren et al., 2015), with ``torchvision.models.detection._utils.BoxCoder``'s
weights and clamp.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")
# Largest log-scale accepted when decoding widths/heights (torchvision: log(1000 / 16)).
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _check(boxes: torch.Tensor, name: str = "boxes") -> None:
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")


def _check_pair(values: torch.Tensor, anchors: torch.Tensor, name: str) -> None:
    _check(values, name)
    _check(anchors, "anchors")
    if values.shape[0] != anchors.shape[0]:
        raise ValueError(f"{name} and anchors must pair up one to one, got {values.shape[0]} and {anchors.shape[0]}")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``."""
    if in_fmt not in _FORMATS or out_fmt not in _FORMATS:
        raise ValueError(f"box formats must be one of {_FORMATS}, got {in_fmt!r} -> {out_fmt!r}")
    _check(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    if out_fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (products of coordinates overflow fp16 past 256 px); ints -> int64."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` areas of ``xyxy`` boxes (half precision upcast to float32, as torchvision does);
    degenerate boxes (x2 <= x1) have area <= 0 as given."""
    _check(boxes)
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clip ``xyxy`` boxes to an image of ``size = (height, width)``."""
    _check(boxes)
    height, width = size
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=-1)


def _inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)  # no overlap -> 0, never negative
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    return inter, area1[:, None] + area2[None, :] - inter


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of ``xyxy`` boxes. Two zero-area boxes give 0/0 = NaN, as in torchvision."""
    _check(boxes1, "boxes1")
    _check(boxes2, "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise GIoU ``(N, M)`` in ``[-1, 1]``: IoU minus the share of the enclosing box not covered."""
    _check(boxes1, "boxes1")
    _check(boxes2, "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def encode_boxes(
    boxes: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Deltas ``(N, 4)`` = ``(wx*dx/wa, wy*dy/ha, ww*log(w/wa), wh*log(h/ha))`` of ``boxes`` w.r.t. ``anchors`` (both xyxy)."""
    _check_pair(boxes, anchors, "boxes")
    wx, wy, ww, wh = weights
    b = box_convert(boxes, "xyxy", "cxcywh")
    a = box_convert(anchors, "xyxy", "cxcywh")
    dx = wx * (b[:, 0] - a[:, 0]) / a[:, 2]
    dy = wy * (b[:, 1] - a[:, 1]) / a[:, 3]
    dw = ww * torch.log(b[:, 2] / a[:, 2])
    dh = wh * torch.log(b[:, 3] / a[:, 3])
    return torch.stack((dx, dy, dw, dh), dim=-1)


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`; log-scales are clamped at ``log(1000/16)`` so exp cannot overflow."""
    _check_pair(deltas, anchors, "deltas")
    wx, wy, ww, wh = weights
    a = box_convert(anchors, "xyxy", "cxcywh")
    dw = (deltas[:, 2] / ww).clamp(max=BBOX_XFORM_CLIP)
    dh = (deltas[:, 3] / wh).clamp(max=BBOX_XFORM_CLIP)
    cx = deltas[:, 0] / wx * a[:, 2] + a[:, 0]
    cy = deltas[:, 1] / wy * a[:, 3] + a[:, 1]
    w, h = a[:, 2] * torch.exp(dw), a[:, 3] * torch.exp(dh)
    return box_convert(torch.stack((cx, cy, w, h), dim=-1), "cxcywh", "xyxy")
