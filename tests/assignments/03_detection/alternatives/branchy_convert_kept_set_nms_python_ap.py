"""A different correct solution, written from the statements alone: format conversion as an explicit
if/elif chain through the corners, areas from ``unbind``, IoU through ``torch.nn.functional.relu`` on
``None``-broadcast columns, NMS that checks each candidate against the set of boxes kept so far,
per-class NMS as one greedy pass with a same-label mask, anchor matching with a Python loop over the
ground truths for the low-quality rule, decoding straight to corners, and AP in plain Python (lists,
``sorted``, ``bisect``) after ``tolist()``."""

# %% grade_id=box-convert-answer
import torch

_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt``."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in _FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {_FORMATS}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(dim=-1)
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xyxy":
        cols = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        cols = (x1, y1, x2 - x1, y2 - y1)
    else:
        cols = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return torch.stack(cols, dim=-1)


# %% grade_id=box-area-answer
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``xyxy`` boxes."""
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.mul(x2 - x1, y2 - y1)


# %% grade_id=box-iou-answer
import torch
import torch.nn.functional as F  # noqa: N812 - the spelling learners use


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` from 1-D overlaps along x and y."""
    ax1, ay1, ax2, ay2 = (boxes1[:, k, None] for k in range(4))  # (N, 1) each
    bx1, by1, bx2, by2 = (boxes2[None, :, k] for k in range(4))  # (1, M) each
    overlap_x = F.relu(torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1))
    overlap_y = F.relu(torch.minimum(ay2, by2) - torch.maximum(ay1, by1))
    inter = overlap_x * overlap_y
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union


# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Visit by decreasing score; keep a box unless a kept box overlaps it by more than the threshold."""
    kept: list[int] = []
    for i in sorted(range(boxes.shape[0]), key=lambda k: -float(scores[k])):
        if kept:
            overlaps = box_iou(boxes[i : i + 1], boxes[kept])
            if bool((overlaps > iou_threshold).any()):
                continue
        kept.append(i)
    return torch.tensor(kept, dtype=torch.int64, device=boxes.device)


# %% grade_id=batched-nms-answer
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """One greedy pass over all boxes; only a kept box of the same label can remove a box."""
    order = torch.argsort(scores, descending=True)
    iou = box_iou(boxes, boxes)
    same = labels[:, None] == labels[None, :]
    blocks = (iou > iou_threshold) & same  # blocks[k, i]: kept box k would remove box i
    kept: list[int] = []
    for i in order.tolist():
        if kept and bool(blocks[kept, i].any()):
            continue
        kept.append(i)
    return torch.tensor(kept, dtype=torch.int64, device=boxes.device)


# %% grade_id=match-anchors-answer
import torch


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Best ground truth per anchor, three bands, then each ground truth's best anchors (a loop over objects)."""
    num_anchors = anchors.shape[0]
    result = torch.full((num_anchors,), -1, dtype=torch.int64, device=anchors.device)
    if gt_boxes.shape[0] == 0 or num_anchors == 0:
        return result
    iou = box_iou(gt_boxes, anchors)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)
    result = torch.where(best_iou >= high, best_gt, result)
    result = torch.where((best_iou >= low) & (best_iou < high), torch.full_like(result, -2), result)
    for g in range(gt_boxes.shape[0]):
        row = iou[g]
        tied = row == row.max()
        result[tied] = best_gt[tied]
    return result


# %% grade_id=decode-answer
import math

import torch

_CLAMP = math.log(1000.0 / 16)


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Faster R-CNN decoding, writing the four corners directly."""
    anchors = anchors.to(deltas.dtype)
    wx, wy, ww, wh = weights
    x1, y1, x2, y2 = anchors.unbind(dim=1)
    w_a = x2 - x1
    h_a = y2 - y1
    cx_a = x1 + 0.5 * w_a
    cy_a = y1 + 0.5 * h_a
    dx, dy, dw, dh = deltas.unbind(dim=1)
    cx = cx_a + (dx / wx) * w_a
    cy = cy_a + (dy / wy) * h_a
    half_w = 0.5 * (w_a * torch.exp(torch.clamp(dw / ww, max=_CLAMP)))
    half_h = 0.5 * (h_a * torch.exp(torch.clamp(dh / wh, max=_CLAMP)))
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=1)


# %% grade_id=ap-answer
import bisect

import torch


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO 101-point AP in plain Python: per-image greedy matching, then one ranked list."""
    total_gt = sum(int(g.shape[0]) for g in gt_boxes)
    if total_gt == 0:
        raise ValueError("no ground truth in any image: AP is undefined")
    ranked: list[tuple[float, bool]] = []
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        score_list = scores.tolist()
        if gts.shape[0] == 0 or boxes.shape[0] == 0:
            ranked.extend((s, False) for s in score_list)
            continue
        iou_rows = box_iou(boxes, gts).tolist()
        free = [True] * gts.shape[0]
        for d in sorted(range(len(score_list)), key=lambda k: -score_list[k]):
            best, best_iou = -1, -1.0
            for g, value in enumerate(iou_rows[d]):
                if free[g] and value > best_iou:
                    best, best_iou = g, value
            hit = best >= 0 and best_iou >= iou_threshold
            if hit:
                free[best] = False
            ranked.append((score_list[d], hit))
    ranked.sort(key=lambda pair: -pair[0])
    precision, recall, tp = [], [], 0
    for k, (_, hit) in enumerate(ranked, start=1):
        tp += hit
        precision.append(tp / k)
        recall.append(tp / total_gt)
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    total = 0.0
    for i in range(101):
        r = i / 100
        k = bisect.bisect_left(recall, r)
        total += precision[k] if k < len(recall) else 0.0
    return total / 101
