"""A different correct solution: formats through a table of corner functions, IoU from ``prod`` and
``clamp_min``, NMS as a shrinking Python list, per-class NMS with torchvision's coordinate-offset trick,
the low-quality rule as a loop over objects, decoding through the learner's own ``box_convert``, and
AP computed in NumPy with the envelope as a running maximum from the right."""

# %% grade_id=box-convert-answer
import torch

_TO_CORNERS = {
    "xyxy": lambda a, b, c, d: (a, b, c, d),
    "xywh": lambda a, b, c, d: (a, b, a + c, b + d),
    "cxcywh": lambda a, b, c, d: (a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d),
}
_FROM_CORNERS = {
    "xyxy": lambda x1, y1, x2, y2: (x1, y1, x2, y2),
    "xywh": lambda x1, y1, x2, y2: (x1, y1, x2 - x1, y2 - y1),
    "cxcywh": lambda x1, y1, x2, y2: (0.5 * (x1 + x2), 0.5 * (y1 + y2), x2 - x1, y2 - y1),
}


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt``."""
    if in_fmt not in _TO_CORNERS:
        raise ValueError(f"in_fmt {in_fmt!r} is not one of {sorted(_TO_CORNERS)}")
    if out_fmt not in _FROM_CORNERS:
        raise ValueError(f"out_fmt {out_fmt!r} is not one of {sorted(_FROM_CORNERS)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    corners = _TO_CORNERS[in_fmt](*[boxes[:, i] for i in range(4)])
    return torch.stack(_FROM_CORNERS[out_fmt](*corners), dim=1)


# %% grade_id=box-area-answer
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``xyxy`` boxes."""
    return (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)


# %% grade_id=box-iou-answer
import torch


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)``."""
    n, m = boxes1.shape[0], boxes2.shape[0]
    b1 = boxes1.unsqueeze(1).expand(n, m, 4)
    b2 = boxes2.unsqueeze(0).expand(n, m, 4)
    inter_w = (torch.min(b1[..., 2], b2[..., 2]) - torch.max(b1[..., 0], b2[..., 0])).clamp_min(0)
    inter_h = (torch.min(b1[..., 3], b2[..., 3]) - torch.max(b1[..., 1], b2[..., 1])).clamp_min(0)
    inter = inter_w * inter_h
    return inter / (box_area(boxes1).unsqueeze(1) + box_area(boxes2).unsqueeze(0) - inter)


# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with a shrinking list of candidates."""
    candidates = torch.argsort(scores, descending=True).tolist()
    keep = []
    while candidates:
        best = candidates.pop(0)
        keep.append(best)
        if not candidates:
            break
        ious = box_iou(boxes[best : best + 1], boxes[candidates])[0].tolist()
        candidates = [c for c, v in zip(candidates, ious, strict=True) if not v > iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


# %% grade_id=batched-nms-answer
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Shift each class to its own region of the plane, so that boxes of different classes never overlap."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    offsets = labels.to(boxes.dtype) * (boxes.max() + 1)  # (N,)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


# %% grade_id=match-anchors-answer
import torch


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Thresholds, then each object's best anchors (ties included) get their own best object."""
    result = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
    if len(gt_boxes) == 0:
        return result
    iou = box_iou(anchors, gt_boxes)  # (A, G)
    best = iou.argmax(dim=1)
    best_iou = iou.gather(1, best[:, None])[:, 0]
    result = torch.where(best_iou >= high, best, torch.where(best_iou >= low, torch.full_like(best, -2), result))
    for g in range(len(gt_boxes)):
        column = iou[:, g]
        for a in torch.nonzero(column == column.max()).flatten().tolist():
            result[a] = best[a]
    return result


# %% grade_id=decode-answer
import math

import torch


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Decode into centre and size, then let ``box_convert`` give the corners."""
    a = box_convert(anchors.to(deltas.dtype), "xyxy", "cxcywh")  # (N, 4)
    scale = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)
    d = deltas / scale  # (N, 4)
    log_size = torch.minimum(d[:, 2:], torch.tensor(math.log(1000.0 / 16), dtype=d.dtype, device=d.device))
    centre = a[:, :2] + d[:, :2] * a[:, 2:]
    size = a[:, 2:] * log_size.exp()
    return box_convert(torch.cat((centre, size), dim=1), "cxcywh", "xyxy")


# %% grade_id=ap-answer
import numpy as np
import torch


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO 101-point AP, matching with the learner's IoU and the curve in NumPy."""
    total_gt = sum(len(g) for g in gt_boxes)
    if total_gt == 0:
        raise ValueError(f"AP needs at least one ground truth, got {len(gt_boxes)} images without any")
    records = []  # (score, is_true_positive)
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        s = scores.detach().cpu().numpy().astype(np.float64)
        order = np.argsort(-s, kind="stable")
        if len(gts) == 0:
            records += [(s[i], False) for i in order]
            continue
        ious = box_iou(boxes.detach().cpu().double(), gts.detach().cpu().double()).numpy()  # (D, G)
        free = np.ones(len(gts), dtype=bool)
        for i in order:
            candidates = np.where(free, ious[i], -np.inf)
            j = int(np.argmax(candidates))
            hit = bool(candidates[j] >= iou_threshold)
            if hit:
                free[j] = False
            records.append((s[i], hit))
    if not records:
        return 0.0
    scores_all = np.array([r[0] for r in records])
    hits = np.array([r[1] for r in records])[np.argsort(-scores_all, kind="stable")]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / total_gt
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    values = []
    for r in np.linspace(0.0, 1.0, 101):
        k = int(np.searchsorted(recall, r, side="left"))
        values.append(precision[k] if k < len(recall) else 0.0)
    return float(np.mean(values))
