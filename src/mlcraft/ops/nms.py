"""Non-maximum suppression in plain PyTorch, returning exactly what ``torchvision.ops.nms`` and
``batched_nms`` return.

Greedy NMS (as in Felzenszwalb et al., 2010, and detectors since): take the highest-scoring
box, drop every remaining box whose IoU with it is **greater than** ``iou_threshold``, repeat.
Tie-breaking: boxes are visited in the order of a **stable** descending sort of the scores, so
among equal scores the lower index wins. torchvision does not document its tie order (its
kernels sort without a stability guarantee), so with exactly tied scores the two may keep
different, equally valid boxes; with distinct scores they agree exactly (see the tests).

How it runs without a Python loop over boxes:

1. **Which pairs overlap enough.** Boxes are sorted by ``x1`` and taken in blocks; a block can
   only overlap the boxes whose ``x1`` lies before its largest ``x2`` (a sweep line, found with
   ``searchsorted``), so the IoU is computed on dense ``(block, window)`` tiles, never on all
   ``N x N`` pairs. IoUs use torchvision's arithmetic (``inter / (area_i + area_j - inter)`` in
   the input dtype), so borderline pairs fall on the same side of the threshold.
2. **Which boxes survive.** With ``S[i, j]`` = "higher-ranked ``i`` overlaps lower-ranked
   ``j``", greedy NMS keeps ``j`` iff no *kept* ``i`` has ``S[i, j]``. That system has one
   solution (fix the ranks one by one), found by iterating ``kept <- not any(kept[i] & S[i, j])``
   from "all kept" until nothing changes, as in Cluster-NMS (Zheng et al., 2021). After ``t``
   rounds the ``t`` best-ranked boxes are final, so it converges; each round is one scatter over
   the overlapping pairs, and real detections converge in a handful of rounds. Long chains
   (each box overlapping only the next) fall back to one sequential pass over the pairs.
3. **Rounds by rank.** Steps 1-2 settle the best-ranked undecided boxes; every later box that
   one of their winners overlaps is then dropped at once (a kept box always suppresses), and
   the next round takes the survivors. Where candidates crowd around objects, as a detector's
   do, the first winners remove most boxes before anyone computes their IoUs with each other.
"""

from __future__ import annotations

import torch

__all__ = ["batched_nms", "nms"]

#: Fixed-point rounds before switching to the sequential pass (chains deeper than this are rare).
_MAX_ROUNDS = 32
#: Boxes settled in the first round (later rounds take an eighth of those left, at least this many).
_FIRST_ROUND = 256
#: IoU entries per tile when winners meet the remaining boxes (bounds the rows of a tile).
_TILE = 1 << 16
#: A round whose winners drop less than this fraction of the rest ends the rounds.
_SPARSE = 0.25


def _check_inputs(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"need boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")


#: A set of boxes as contiguous columns: ``x1``, ``y1``, ``x2``, ``y2``, area.
Columns = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _columns(boxes: torch.Tensor) -> Columns:
    x1, y1, x2, y2 = (t.contiguous() for t in boxes.unbind(-1))  # (N,) each, dense: tiles slice them
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def _rows(columns: Columns, start: int, stop: int) -> Columns:
    x1, y1, x2, y2, area = (t[start:stop] for t in columns)
    return x1, y1, x2, y2, area


def _tile_hits(rows: Columns, cols: Columns, iou_threshold: float) -> torch.Tensor:
    """``(B, W)`` mask: IoU(row box, column box) > threshold, with torchvision's arithmetic
    (``inter / (area_i + area_j - inter)`` in the input dtype); a NaN IoU is no hit."""
    rx1, ry1, rx2, ry2, r_area = (t[:, None] for t in rows)
    cx1, cy1, cx2, cy2, c_area = (t[None, :] for t in cols)
    w = torch.minimum(rx2, cx2) - torch.maximum(rx1, cx1)  # (B, W)
    h = torch.minimum(ry2, cy2) - torch.maximum(ry1, cy1)  # (B, W)
    inter = w.clamp_(min=0) * h.clamp_(min=0)
    return inter / (r_area + c_area - inter) > iou_threshold


def _suppressing_pairs(
    ranked: torch.Tensor, classes: torch.Tensor | None, iou_threshold: float, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)`` of ranks, ``i < j``, with IoU > threshold (and equal classes, if given)."""
    n = ranked.shape[0]
    by_x = torch.sort(ranked[:, 0], stable=True).indices  # sorted position -> rank
    boxes = _columns(ranked[by_x])  # in x1 order
    x1, x2 = boxes[0], boxes[2]
    cls = classes[by_x] if classes is not None else None
    # A negative threshold makes even disjoint boxes (IoU 0) suppress: then every pair is a candidate.
    everything = iou_threshold < 0
    sources, targets = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        # Later boxes can overlap the block only if they start before the block's rightmost edge.
        end = n if everything else max(int(torch.searchsorted(x1, x2[start:stop].max().reshape(1))), stop)
        hit = _tile_hits(_rows(boxes, start, stop), _rows(boxes, start, end), iou_threshold)  # (B, W)
        if cls is not None:
            hit &= cls[start:stop, None] == cls[None, start:end]
        hit[:, : stop - start].triu_(diagonal=1)  # inside the block, each pair once and no self-pairs
        if everything:
            hit[:, :start] = False  # pairs with earlier blocks were found by those blocks
        rows, cols = hit.nonzero(as_tuple=True)
        a, b = by_x[rows + start], by_x[cols + start]
        sources.append(torch.minimum(a, b))  # the better-ranked box suppresses the other
        targets.append(torch.maximum(a, b))
    return torch.cat(sources), torch.cat(targets)


def _greedy_keep(n: int, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Keep mask (by rank) of greedy NMS given the suppressing pairs ``sources[k] < targets[k]``."""
    suppressed = torch.zeros(n, dtype=torch.bool, device=sources.device)
    for _ in range(_MAX_ROUNDS):
        update = torch.zeros_like(suppressed)
        update[targets[~suppressed[sources]]] = True
        if torch.equal(update, suppressed):
            return ~suppressed
        suppressed = update
    # A long chain: walk the pairs in rank order of their first box (exact, linear in pairs).
    order = torch.sort(sources, stable=True).indices
    done = bytearray(n)
    for i, j in zip(sources[order].tolist(), targets[order].tolist(), strict=True):
        if not done[i]:
            done[j] = 1
    return torch.tensor([not d for d in done], dtype=torch.bool, device=sources.device)


def _suppressed_by(
    winners: torch.Tensor,
    others: torch.Tensor,
    winner_classes: torch.Tensor | None,
    other_classes: torch.Tensor | None,
    iou_threshold: float,
) -> torch.Tensor:
    """Mask over ``others`` (M, 4): overlapped (IoU > threshold, same class) by some of ``winners`` (K, 4).

    Both are swept in ``x1`` order; each tile of winners only meets the others whose
    ``x1`` lies between its leftmost ``x1`` minus the widest other box and its rightmost ``x2``.
    """
    by_x = torch.sort(others[:, 0], stable=True).indices
    boxes = _columns(others[by_x])  # in x1 order
    x1 = boxes[0]
    widest = (boxes[2] - x1).max()
    cls = other_classes[by_x] if other_classes is not None else None
    rows = torch.sort(winners[:, 0], stable=True).indices
    tops = _columns(winners[rows])  # in x1 order
    wcls = winner_classes[rows] if winner_classes is not None else None
    hit_any = torch.zeros(others.shape[0], dtype=torch.bool, device=others.device)
    # Fewer rows per tile give narrower x-windows but more tiles (each one a few kernel launches).
    tile_rows = min(max(_TILE // max(others.shape[0], 1), 32), 1024)
    for start in range(0, winners.shape[0], tile_rows):
        stop = min(start + tile_rows, winners.shape[0])
        tile = _rows(tops, start, stop)
        bounds = torch.stack([tile[0][0] - widest, tile[2].max()])  # x1 is sorted: [0] is the min
        lo, hi = torch.searchsorted(x1, bounds).tolist()
        if hi <= lo:
            continue
        hit = _tile_hits(tile, _rows(boxes, lo, hi), iou_threshold)  # (B, W)
        if cls is not None and wcls is not None:
            hit &= wcls[start:stop, None] == cls[None, lo:hi]
        hit_any[lo:hi] |= hit.any(dim=0)
    suppressed = torch.zeros_like(hit_any)
    suppressed[by_x] = hit_any
    return suppressed


def _settle(
    ranked: torch.Tensor, classes: torch.Tensor | None, subset: torch.Tensor, iou_threshold: float, block_size: int
) -> torch.Tensor:
    """Greedy NMS on the boxes ``ranked[subset]`` alone (``subset``: ranks, increasing): their keep mask."""
    sub_classes = classes[subset] if classes is not None else None
    sources, targets = _suppressing_pairs(ranked[subset], sub_classes, iou_threshold, block_size)
    return _greedy_keep(subset.numel(), sources, targets)


def _nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor | None, iou_threshold: float, block_size: int
) -> torch.Tensor:
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    ranked_classes = classes[order] if classes is not None else None
    if iou_threshold < 0:  # even disjoint boxes suppress each other: compare every pair
        sources, targets = _suppressing_pairs(ranked, ranked_classes, iou_threshold, block_size)
        return order[_greedy_keep(order.numel(), sources, targets)]
    # With a threshold >= 0, empty, inverted and NaN boxes (IoU 0 or NaN) are always kept.
    keep = torch.ones(order.numel(), dtype=torch.bool, device=boxes.device)
    alive = torch.nonzero((ranked[:, 2] > ranked[:, 0]) & (ranked[:, 3] > ranked[:, 1])).squeeze(1)  # ranks
    # Rounds: settle the best-ranked undecided boxes exactly, then drop every later box that one
    # of their winners overlaps (a kept box always suppresses). Where boxes crowd around objects,
    # the first round's winners remove most of the rest at once.
    while alive.numel():
        split = max(_FIRST_ROUND, alive.numel() // 8)
        head, rest = alive[:split], alive[split:]
        head_keep = _settle(ranked, ranked_classes, head, iou_threshold, block_size)
        keep[head[~head_keep]] = False
        winners = head[head_keep]
        if rest.numel() == 0 or winners.numel() == 0:
            alive = rest
            continue
        rest_classes = ranked_classes[rest] if ranked_classes is not None else None
        winner_classes = ranked_classes[winners] if ranked_classes is not None else None
        lost = _suppressed_by(ranked[winners], ranked[rest], winner_classes, rest_classes, iou_threshold)
        keep[rest[lost]] = False
        alive = rest[~lost]
        if lost.float().mean() < _SPARSE:
            # The winners dropped few boxes: overlaps are sparse, and one sweep over the rest
            # costs less than more rounds.
            keep[alive[~_settle(ranked, ranked_classes, alive, iou_threshold, block_size)]] = False
            break
    return order[keep]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, block_size: int = 256) -> torch.Tensor:
    """Indices (int64, by decreasing score) of the ``xyxy`` boxes kept by greedy NMS.

    Args:
        boxes (Tensor[N, 4]): ``(x1, y1, x2, y2)``; empty or inverted boxes have IoU 0 (or NaN
            between two empty boxes), so they never suppress nor get suppressed (for a
            threshold >= 0), as in torchvision.
        scores (Tensor[N]): one score per box.
        iou_threshold: a box is dropped when its IoU with a kept, better-scored box is
            **strictly greater** than this.
        block_size: rows per IoU tile (memory ~ ``block_size x window`` floats); no effect on
            the result.
    """
    _check_inputs(boxes, scores)
    return _nms(boxes, scores, None, iou_threshold, block_size)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float, block_size: int = 256
) -> torch.Tensor:
    """Class-aware NMS: boxes with different ``idxs`` (class ids) never suppress each other.

    Equal to running :func:`nms` per class and merging the survivors by decreasing score
    (torchvision's exact path), done in one pass: a pair counts only when its classes match.
    torchvision's other path (offsetting each class's coordinates so classes cannot overlap)
    can change IoUs by rounding when coordinates get large; this one computes the same IoUs as
    :func:`nms` does.
    """
    _check_inputs(boxes, scores)
    if idxs.shape != scores.shape:
        raise ValueError(f"idxs must have shape {tuple(scores.shape)}, got {tuple(idxs.shape)}")
    return _nms(boxes, scores, idxs, iou_threshold, block_size)
