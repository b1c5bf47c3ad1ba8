"""A different correct solution: format conversions as 4 x 4 linear maps through the corners, IoU with
``torch.clamp`` on broadcast differences, NMS as a boolean mask updated on the device, per-class NMS by
sorting the survivors of each class, thresholds with ``torch.where``, decoding with ``torch.stack`` of
separate columns, and AP with sorted IoUs per detection and the envelope from a reversed ``cummax``."""

# %% grade_id=box-convert-answer
import torch

# Each format as a linear function of the corners (x1, y1, x2, y2): out = corners @ M.
_FROM_XYXY = {
    "xyxy": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    "xywh": [[1, 0, -1, 0], [0, 1, 0, -1], [0, 0, 1, 0], [0, 0, 0, 1]],
    "cxcywh": [[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]],
}


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt``."""
    for name in (in_fmt, out_fmt):
        if name not in _FROM_XYXY:
            raise ValueError(f"box format must be xyxy, xywh or cxcywh, got {name!r}")
    to_out = torch.tensor(_FROM_XYXY[out_fmt], dtype=torch.float64)
    to_corners = torch.linalg.inv(torch.tensor(_FROM_XYXY[in_fmt], dtype=torch.float64))
    matrix = (to_corners @ to_out).to(dtype=boxes.dtype, device=boxes.device)  # (4, 4)
    return boxes @ matrix  # (N, 4)


# %% grade_id=box-area-answer
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``xyxy`` boxes."""
    x1, y1, x2, y2 = boxes.T
    return (x2 - x1) * (y2 - y1)


# %% grade_id=box-iou-answer
import torch


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)``."""
    lo = torch.max(boxes1[:, :2].unsqueeze(1), boxes2[:, :2].unsqueeze(0))  # (N, M, 2)
    hi = torch.min(boxes1[:, 2:].unsqueeze(1), boxes2[:, 2:].unsqueeze(0))  # (N, M, 2)
    inter = torch.clamp(hi - lo, min=0.0).prod(dim=-1)  # (N, M)
    union = box_area(boxes1).unsqueeze(1) + box_area(boxes2).unsqueeze(0) - inter
    return inter / union


# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS over a boolean mask that stays on the device."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes[order], boxes[order])  # (N, N)
    alive = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if alive[i]:
            later = torch.arange(len(order), device=boxes.device) > i
            alive &= ~(later & (iou[i] > iou_threshold))
    return order[alive].to(torch.int64)


# %% grade_id=batched-nms-answer
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS inside each class, then all survivors by decreasing score."""
    survivors = []
    for label in labels.unique().tolist():
        idx = (labels == label).nonzero(as_tuple=True)[0]
        survivors += idx[nms(boxes[idx], scores[idx], iou_threshold)].tolist()
    survivors.sort(key=lambda i: -float(scores[i]))
    return torch.tensor(survivors, dtype=torch.int64, device=boxes.device)


# %% grade_id=match-anchors-answer
import torch


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Thresholds with ``torch.where``; the low-quality rule as a mask over (object, anchor) pairs."""
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, device=anchors.device, dtype=torch.int64)
    iou = box_iou(gt_boxes, anchors)  # (G, A)
    best_iou, best_gt = iou.max(0)
    code = torch.where(best_iou < low, -1, torch.where(best_iou < high, -2, best_gt))
    is_best_anchor = iou == iou.amax(dim=1, keepdim=True)  # (G, A)
    return torch.where(is_best_anchor.any(0), best_gt, code).to(torch.int64)


# %% grade_id=decode-answer
import math

import torch


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Centre and size of each anchor, moved and scaled column by column."""
    ax1, ay1, ax2, ay2 = (anchors[:, i].to(deltas.dtype) for i in range(4))
    aw, ah = ax2 - ax1, ay2 - ay1
    acx, acy = ax1 + aw / 2, ay1 + ah / 2
    limit = math.log(1000.0 / 16)
    cx = acx + deltas[:, 0] / weights[0] * aw
    cy = acy + deltas[:, 1] / weights[1] * ah
    w = aw * torch.exp(torch.clamp(deltas[:, 2] / weights[2], max=limit))
    h = ah * torch.exp(torch.clamp(deltas[:, 3] / weights[3], max=limit))
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


# %% grade_id=ap-answer
import torch


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO 101-point AP of one class, in torch on the CPU."""
    n_gt = sum(g.shape[0] for g in gt_boxes)
    if n_gt == 0:
        raise ValueError("no ground-truth boxes in any image")
    scores_out, tp_out = [], []
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        boxes, scores, gts = boxes.cpu().double(), scores.cpu().double(), gts.cpu().double()
        sorted_scores, order = scores.sort(descending=True)
        tp = torch.zeros(len(order))
        used: set[int] = set()
        if len(gts):
            ious = box_iou(boxes[order], gts)  # (D, G)
            for d in range(len(order)):
                values, candidates = ious[d].sort(descending=True)
                for value, g in zip(values.tolist(), candidates.tolist(), strict=True):
                    if value < iou_threshold:
                        break
                    if g not in used:
                        used.add(g)
                        tp[d] = 1.0
                        break
        scores_out.append(sorted_scores)
        tp_out.append(tp)
    all_scores = torch.cat(scores_out)
    if all_scores.numel() == 0:
        return 0.0
    tp = torch.cat(tp_out)[all_scores.argsort(descending=True, stable=True)].double()
    cum_tp = tp.cumsum(0)
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    precision = cum_tp / ranks
    recall = cum_tp / n_gt
    envelope = torch.cummax(precision.flip(0), dim=0).values.flip(0)
    total = 0.0
    for j in range(101):
        reached = (recall >= j / 100).nonzero()
        if len(reached):
            total += float(envelope[reached[0, 0]])
    return total / 101
