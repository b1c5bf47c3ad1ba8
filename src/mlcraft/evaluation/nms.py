"""Non-maximum suppression in plain PyTorch, returning exactly what ``torchvision.ops.nms`` and
``batched_nms`` return.

Greedy NMS (as in Felzenszwalb et al., 2010, and detectors since): take the highest-scoring
box, drop every remaining box whose IoU with it is **greater than** ``iou_threshold``, repeat.
Tie-breaking: boxes are visited in the order of a **stable** descending sort of the scores, so
among equal scores the lower index wins. torchvision does not document its tie order (its
kernels sort without a stability guarantee), so with exactly tied scores the two may keep
different, equally valid boxes; with distinct scores they agree exactly (see the tests).
"""

from __future__ import annotations

import torch

__all__ = ["batched_nms", "nms"]


def _check_inputs(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"need boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, block_size: int = 512) -> torch.Tensor:
    """Indices (int64, by decreasing score) of the ``xyxy`` boxes kept by greedy NMS.

    IoUs are computed ``block_size`` rows at a time against every later box (vectorised); the
    greedy pass then walks the overlapping pairs in order, which is cheap when boxes overlap
    sparsely (the usual case) and quadratic in Python when nearly all of them overlap.
    """
    _check_inputs(boxes, scores)
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]  # (N, 4) in visiting order
    n = ranked.shape[0]
    x1, y1, x2, y2 = ranked.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    sources, targets = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        # Cheap filter first: only pairs whose x-ranges overlap can have IoU > 0.
        overlap_x = torch.minimum(x2[start:stop, None], x2[None, start:]) > torch.maximum(
            x1[start:stop, None], x1[None, start:]
        )  # (B, N - start)
        rows, cols = overlap_x.nonzero(as_tuple=True)
        later = cols > rows  # only an earlier box suppresses a later one
        i, j = rows[later] + start, cols[later] + start
        # Exact IoU on the candidates, computed as torchvision does (inter / union).
        w = (torch.minimum(x2[i], x2[j]) - torch.maximum(x1[i], x1[j])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[j]) - torch.maximum(y1[i], y1[j])).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[j] - inter)
        hit = iou > iou_threshold  # NaN IoU (two empty boxes) never suppresses
        sources.append(i[hit])
        targets.append(j[hit])
    suppressed = bytearray(n)
    # Pairs come sorted by their first box, so suppressed[i] is final before i's own pairs are read.
    for i, j in zip(torch.cat(sources).tolist(), torch.cat(targets).tolist(), strict=True):
        if not suppressed[i]:
            suppressed[j] = 1
    keep = torch.tensor([not s for s in suppressed], dtype=torch.bool, device=boxes.device)
    return order[keep]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes with different ``idxs`` (class ids) never suppress each other.

    Runs :func:`nms` per class and merges the survivors by decreasing score (stable). This is
    torchvision's exact path; its other path (offsetting each class's coordinates so classes
    cannot overlap) can change IoUs by rounding when coordinates get large.
    """
    _check_inputs(boxes, scores)
    if idxs.shape != scores.shape:
        raise ValueError(f"idxs must have shape {tuple(scores.shape)}, got {tuple(idxs.shape)}")
    keep = torch.zeros(scores.shape[0], dtype=torch.bool, device=boxes.device)
    for class_id in torch.unique(idxs):
        members = torch.where(idxs == class_id)[0]
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.where(keep)[0]
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
