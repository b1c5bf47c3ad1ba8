"""A different correct solution, written from the statements alone: format conversion with ``torch.cat``
of column slices through ``xyxy``, areas as ``diff`` of the two corners viewed as a ``2 x 2`` block,
IoU from an ``(N, M, 2)`` block of overlaps multiplied with ``prod``, NMS as a tensor queue that drops
the suppressed boxes after each kept one, per-class NMS by looping over the labels present and
sorting the union by score, anchor matching fully vectorised with ``any`` over a ``keepdim`` max,
decoding through ``torch.cat`` of centre and half-size, and AP in torch with ``searchsorted`` and a
reversed ``cummax``."""

# %% grade_id=box-convert-answer
import torch


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt`` through ``xyxy``."""
    known = {"xyxy", "xywh", "cxcywh"}
    bad = [fmt for fmt in (in_fmt, out_fmt) if fmt not in known]
    if bad:
        raise ValueError(f"box format {bad[0]!r} is not one of {sorted(known)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    lo, hi = boxes[:, :2], boxes[:, 2:]
    if in_fmt == "xywh":
        xyxy = torch.cat((lo, lo + hi), dim=1)
    elif in_fmt == "cxcywh":
        xyxy = torch.cat((lo - hi / 2, lo + hi / 2), dim=1)
    else:
        xyxy = boxes
    lo, hi = xyxy[:, :2], xyxy[:, 2:]
    if out_fmt == "xywh":
        return torch.cat((lo, hi - lo), dim=1)
    if out_fmt == "cxcywh":
        return torch.cat(((lo + hi) / 2, hi - lo), dim=1)
    return xyxy


# %% grade_id=box-area-answer
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)``: the corners as rows of a 2 x 2 block, differenced, multiplied."""
    corners = boxes.reshape(-1, 2, 2)  # [[x1, y1], [x2, y2]]
    return torch.diff(corners, dim=1).prod(dim=-1).reshape(-1)


# %% grade_id=box-iou-answer
import torch


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` through an ``(N, M, 2)`` block of overlaps."""
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = box_area(boxes1)[:, None]
    area2 = box_area(boxes2)[None, :]
    return inter / (area1 + area2 - inter)


# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """A queue of candidate indices (a tensor); each kept box drops the ones it overlaps too much."""
    queue = torch.sort(scores, descending=True, stable=True).indices
    kept = []
    while queue.numel() > 0:
        best = queue[:1]
        kept.append(best)
        rest = queue[1:]
        if rest.numel() == 0:
            break
        overlap = box_iou(boxes[best], boxes[rest]).squeeze(0)
        queue = rest[overlap <= iou_threshold]
    if not kept:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    return torch.cat(kept).to(device=boxes.device, dtype=torch.int64)


# %% grade_id=batched-nms-answer
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS label by label, then the union sorted by score."""
    kept = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    union = torch.cat(kept)
    return union[torch.argsort(scores[union], descending=True)].to(device=boxes.device, dtype=torch.int64)


# %% grade_id=match-anchors-answer
import torch


def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Vectorised: bands from the per-anchor max, the rescue rule from a keepdim per-object max."""
    if gt_boxes.shape[0] == 0 or anchors.shape[0] == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(anchors, gt_boxes)  # (A, G)
    best_iou, best_gt = iou.max(dim=1)
    background = torch.full_like(best_gt, -1)
    ignored = torch.full_like(best_gt, -2)
    codes = torch.where(best_iou >= high, best_gt, torch.where(best_iou >= low, ignored, background))
    per_gt_best = iou.max(dim=0, keepdim=True).values  # (1, G)
    rescued = (iou == per_gt_best).any(dim=1)
    return torch.where(rescued, best_gt, codes)


# %% grade_id=decode-answer
import math

import torch


def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Decode with the anchor's centre and size as ``(N, 2)`` blocks."""
    anchors = anchors.to(dtype=deltas.dtype, device=deltas.device)
    size_a = anchors[:, 2:] - anchors[:, :2]
    centre_a = anchors[:, :2] + size_a / 2
    w = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)
    shift = deltas[:, :2] / w[:2]
    log_scale = (deltas[:, 2:] / w[2:]).clamp(max=math.log(1000.0 / 16))
    centre = centre_a + shift * size_a
    half = size_a * torch.exp(log_scale) / 2
    return torch.cat((centre - half, centre + half), dim=1)


# %% grade_id=ap-answer
import torch


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO 101-point AP in torch (on the CPU, float64)."""
    n_gt = sum(int(g.shape[0]) for g in gt_boxes)
    if n_gt == 0:
        raise ValueError("average_precision: no ground truth in any image")
    all_scores, all_hits = [], []
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        boxes = boxes.detach().to("cpu", torch.float64)
        scores = scores.detach().to("cpu", torch.float64)
        gts = gts.detach().to("cpu", torch.float64)
        order = torch.argsort(scores, descending=True)
        hits = torch.zeros(boxes.shape[0], dtype=torch.bool)
        if gts.shape[0] > 0 and boxes.shape[0] > 0:
            iou = box_iou(boxes, gts)
            used = torch.zeros(gts.shape[0], dtype=torch.bool)
            for d in order.tolist():
                candidates = iou[d].masked_fill(used, -1.0)
                value, g = candidates.max(dim=0)
                if value >= iou_threshold:
                    used[g] = True
                    hits[d] = True
        all_scores.append(scores)
        all_hits.append(hits)
    scores = torch.cat(all_scores)
    if scores.numel() == 0:
        return 0.0
    hits = torch.cat(all_hits)[torch.argsort(scores, descending=True)]
    tp = torch.cumsum(hits.to(torch.float64), dim=0)
    ranks = torch.arange(1, tp.numel() + 1, dtype=torch.float64)
    precision = tp / ranks
    recall = tp / n_gt
    envelope = torch.flip(torch.cummax(torch.flip(precision, (0,)), dim=0).values, (0,))
    thresholds = torch.linspace(0, 1, 101, dtype=torch.float64)
    idx = torch.searchsorted(recall, thresholds, side="left")
    padded = torch.cat((envelope, torch.zeros(1, dtype=torch.float64)))
    return float(padded[idx].mean())
