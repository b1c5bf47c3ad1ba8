"""COCO detection metrics (mAP and AR) written out, equal to ``pycocotools.cocoeval.COCOeval``.

Follows ``COCOeval.evaluate``, ``accumulate`` and ``summarize`` with ``iouType="bbox"`` and the
default parameters (Lin et al., 2014, https://arxiv.org/abs/1405.0312; reference code
https://github.com/cocodataset/cocoapi). The tests check the 12 summary numbers and the
per-class APs against pycocotools to 1e-6.

Conventions (all COCO's):

- Boxes are ``xyxy`` by default (torchvision's convention); pass ``box_format="xywh"`` for COCO
  json's ``(x, y, w, h)``. Internally they become float64 ``xywh`` and IoU is computed as
  pycocotools computes it (right edge ``x + w``), so thresholds and area ranges see the same numbers.
- IoU thresholds 0.50:0.05:0.95 (T = 10); recall thresholds 0:0.01:1 (R = 101); at most 1, 10
  or 100 detections per image and class (M = 3): the best by score, sorted with a *stable* sort
  (among equal scores the earlier detection comes first, as pycocotools' ``mergesort``).
- Area ranges all, small (area <= 32²), medium (32²..96²), large (>= 96²) (A = 4). A ground
  truth's area is its ``area`` field (default: its box area), a detection's is its box area.
  Ground truths outside the range are ignored, and so are unmatched detections outside it.
- ``iscrowd`` ground truths are always ignored; the IoU of a detection with a crowd region is
  the intersection over the *detection's* area, and one crowd region can absorb many detections.
- Matching is greedy, per image, class and IoU threshold, detections by decreasing score: each
  takes the still-free ground truth of highest IoU (>= threshold; the later one on ties),
  preferring regular to ignored ground truths. A detection matched to an ignored ground truth
  counts neither as a true nor as a false positive; duplicates of a matched ground truth are
  false positives.
- Precision is made non-increasing in recall (the envelope) before it is read at each recall
  threshold with ``searchsorted(side="left")``; past the highest recall reached it is 0.
- ``-1`` means "no ground truth" (a class, or a class within an area range, with no regular
  ground truth) and is left out of every mean. A class with ground truth but no detections has
  precision and recall 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, cast

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETECTIONS",
    "RECALL_THRESHOLDS",
    "STAT_NAMES",
    "CocoMetrics",
    "average_precision",
    "coco_evaluate",
    "precision_recall_curve",
    "run_cocoeval",
    "to_coco_json",
]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]
Targets = Sequence[Mapping[str, ArrayLike]]  # one dict per image
Floats = NDArray[np.float64]
BoxFormat = Literal["xyxy", "xywh"]

IOU_THRESHOLDS: Final[Floats] = np.linspace(0.5, 0.95, 10)  # (T,), the same floats as pycocotools
RECALL_THRESHOLDS: Final[Floats] = np.linspace(0.0, 1.0, 101)  # (R,)
MAX_DETECTIONS: Final = (1, 10, 100)  # (M,) detections kept per image and class
AREA_RANGES: Final = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
# The order of ``COCOeval.stats``.
STAT_NAMES: Final = (
    *("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"),
    *("AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"),
)
_EPS: Final = float(np.spacing(1))  # pycocotools' guard in tp / (tp + fp)


class CocoMetrics(TypedDict):
    """What :func:`coco_evaluate` returns: ``COCOeval.stats`` by name, per-class AP and the curves."""

    AP: float  # mean precision over IoU 0.50:0.95, recall thresholds and classes; area all, 100 dets
    AP50: float
    AP75: float
    AP_small: float
    AP_medium: float
    AP_large: float
    AR1: float  # mean over IoU thresholds and classes of the recall reached with 1 detection per image
    AR10: float
    AR100: float
    AR_small: float
    AR_medium: float
    AR_large: float
    AP_per_class: dict[int, float]  # label -> AP (area all, 100 dets); -1.0 for a class with no ground truth
    precision: Floats  # (T, R, K, A, M) interpolated precision, -1 where there is no ground truth
    recall: Floats  # (T, K, A, M) highest recall reached, -1 where there is no ground truth


@dataclass(frozen=True)
class _Image:
    """One image's boxes as float64 ``xywh`` numpy arrays."""

    gt_boxes: Floats  # (G, 4)
    gt_labels: NDArray[np.int64]  # (G,)
    gt_crowd: NDArray[np.bool_]  # (G,)
    gt_area: Floats  # (G,)
    dt_boxes: Floats  # (D, 4)
    dt_scores: Floats  # (D,)
    dt_labels: NDArray[np.int64]  # (D,)


@dataclass(frozen=True)
class _Matches:
    """One image, every class: its detections (best first within each class, at most 100 per
    class) and how each matched, per IoU threshold ``T`` and area range ``A``."""

    scores: Floats  # (D,) decreasing within each class
    labels: NDArray[np.int64]  # (D,)
    rank: NDArray[np.int64]  # (D,) position among the image's detections of the same class
    matched: NDArray[np.bool_]  # (T, A, D) matched to some ground truth
    ignored: NDArray[np.bool_]  # (T, A, D) counts neither as a true nor as a false positive
    gt_labels: NDArray[np.int64]  # (G,)
    gt_regular: NDArray[np.bool_]  # (A, G) ground truths that count in each area range


def _array(value: ArrayLike) -> Floats:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _field(target: Mapping[str, ArrayLike], key: str, name: str, n: int | None) -> Floats:
    """``target[key]`` as float64, checked to be ``(n,)`` (or ``(N, 4)`` boxes when ``n`` is None)."""
    if key not in target:
        raise ValueError(f"{name} has no {key!r}; it has {sorted(target)}")
    values = _array(target[key])
    if n is None:  # boxes; an empty array of any shape means no boxes
        values = values.reshape(0, 4) if values.size == 0 else values
        if values.ndim != 2 or values.shape[1] != 4:
            raise ValueError(f"{name}['boxes'] must have shape (N, 4), got {values.shape}")
    elif values.shape != (n,):
        raise ValueError(f"{name}[{key!r}] must have shape ({n},) like its boxes, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name}[{key!r}] has non-finite values: {values[~np.isfinite(values)][:5]}")
    return values


def _labels(target: Mapping[str, ArrayLike], name: str, n: int) -> NDArray[np.int64]:
    values = _field(target, "labels", name, n)
    if not np.array_equal(values, np.round(values)):
        raise ValueError(f"{name}['labels'] must be integers, got {values[values != np.round(values)][:5]}")
    return values.astype(np.int64)


def _to_xywh(boxes: Floats, box_format: str) -> Floats:
    if box_format == "xywh":
        return boxes
    return np.stack((boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), axis=1)


def _parse(ground_truths: Targets, detections: Targets, box_format: str) -> list[_Image]:
    if box_format not in ("xyxy", "xywh"):
        raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
    if len(ground_truths) != len(detections):
        raise ValueError(
            f"need one entry per image in both: {len(ground_truths)} ground truths, {len(detections)} detections"
        )
    images = []
    for i, (gt, dt) in enumerate(zip(ground_truths, detections, strict=True)):
        gt_boxes = _to_xywh(_field(gt, "boxes", f"ground_truths[{i}]", None), box_format)
        dt_boxes = _to_xywh(_field(dt, "boxes", f"detections[{i}]", None), box_format)
        g, d = len(gt_boxes), len(dt_boxes)
        crowd = _field(gt, "iscrowd", f"ground_truths[{i}]", g) != 0 if "iscrowd" in gt else np.zeros(g, dtype=bool)
        area = _field(gt, "area", f"ground_truths[{i}]", g) if "area" in gt else gt_boxes[:, 2] * gt_boxes[:, 3]
        images.append(
            _Image(
                gt_boxes, _labels(gt, f"ground_truths[{i}]", g), crowd, area,
                dt_boxes, _field(dt, "scores", f"detections[{i}]", d), _labels(dt, f"detections[{i}]", d),
            )
        )  # fmt: skip
    return images


def _coco_iou(dt: Floats, gt: Floats, crowd: NDArray[np.bool_]) -> Floats:
    """``(D, G)`` IoU of ``xywh`` boxes as pycocotools' ``bbIou``; for a crowd ground truth the union is the detection."""
    top_left = np.maximum(dt[:, None, :2], gt[None, :, :2])  # (D, G, 2)
    bottom_right = np.minimum(dt[:, None, :2] + dt[:, None, 2:], gt[None, :, :2] + gt[None, :, 2:])  # (D, G, 2)
    wh = bottom_right - top_left
    inter = np.where((wh > 0).all(axis=-1), wh[..., 0] * wh[..., 1], 0.0)  # (D, G)
    dt_area, gt_area = dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]
    union = np.where(crowd[None, :], dt_area[:, None], dt_area[:, None] + gt_area[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _match(ious: Floats, gt_ignore: NDArray[np.bool_], gt_crowd: NDArray[np.bool_], floor: Floats) -> NDArray[np.int64]:
    """``(P, D)`` index of the ground truth each detection (best first) matches in each of ``P``
    independent runs (an IoU threshold and an area range each), or -1.

    ``ious`` is ``(D, G)``, ``gt_ignore`` ``(P, G)``, ``floor`` ``(P, 1)`` the least IoU of a match.
    """
    num_dt, num_gt = ious.shape
    match = np.full((len(floor), num_dt), -1, dtype=np.int64)
    if num_gt == 0 or num_dt == 0:
        return match
    taken = np.zeros((len(floor), num_gt), dtype=bool)  # (P, G)
    rows = np.arange(len(floor))
    reachable = ious >= floor.min()  # (D, G): pairs that can match in some run
    # A detection below the lowest floor against every ground truth matches nothing: skip it.
    for d in np.flatnonzero(reachable.any(axis=1)):
        candidates = np.flatnonzero(reachable[d])
        if len(candidates) == 1:  # one possible ground truth: no choice to make (the common case)
            g = candidates[0]
            hit = (ious[d, g] >= floor[:, 0]) & (~taken[:, g] | gt_crowd[g])  # (P,)
            match[hit, d] = g
            taken[hit, g] = True
            continue
        free = (~taken | gt_crowd) & (ious[d] >= floor)  # (P, G); crowd regions are never used up
        regular = free & ~gt_ignore
        free = np.where(regular.any(axis=1, keepdims=True), regular, free)  # ignored ones only as a fallback
        # Highest IoU; on ties the later ground truth, as COCOeval's running max (`<` skips, `>=` replaces).
        best = num_gt - 1 - np.argmax(np.where(free, ious[d], -1.0)[:, ::-1], axis=1)  # (P,)
        hit = free.any(axis=1)
        match[hit, d] = best[hit]
        taken[rows[hit], best[hit]] = True
    return match


def _rank_within_class(labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Position of each entry among the earlier entries with the same label (0, 1, 2, ...)."""
    by_label = np.argsort(labels, kind="mergesort")  # stable: keeps the order within a label
    sorted_labels = labels[by_label]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]) if len(labels) else np.zeros(0, int)
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(labels)]))
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_label] = np.arange(len(labels)) - run_start
    return rank


def _evaluate_image(image: _Image, thresholds: Floats, ranges: Floats) -> _Matches:
    """``COCOeval.evaluateImg`` for one image, every class, IoU threshold ``(T,)`` and area range
    ``(A, 2)`` at once. Classes never interact: a detection can only match its own class."""
    order = np.argsort(-image.dt_scores, kind="mergesort")  # stable: within a class too
    rank = _rank_within_class(image.dt_labels[order])
    kept = rank < MAX_DETECTIONS[-1]
    order, rank = order[kept], rank[kept]  # dropping a class's tail leaves the ranks before it
    dt_boxes, scores, labels = image.dt_boxes[order], image.dt_scores[order], image.dt_labels[order]
    gt_crowd, gt_area = image.gt_crowd, image.gt_area
    ious = _coco_iou(dt_boxes, image.gt_boxes, gt_crowd)  # (D, G)
    ious[labels[:, None] != image.gt_labels[None, :]] = 0.0  # other classes never match
    dt_area = dt_boxes[:, 2] * dt_boxes[:, 3]
    num_t, num_a, num_d = len(thresholds), len(ranges), len(scores)
    low, high = ranges[:, :1], ranges[:, 1:]  # (A, 1) each
    gt_ignore = gt_crowd | (gt_area < low) | (gt_area > high)  # (A, G)
    floor = np.minimum(thresholds, 1 - 1e-10)  # an IoU of exactly 1 still matches at 1.0
    runs_ignore = np.broadcast_to(gt_ignore, (num_t, *gt_ignore.shape)).reshape(num_t * num_a, -1)  # (T*A, G)
    match = _match(ious, runs_ignore, gt_crowd, np.repeat(floor, num_a)[:, None]).reshape(num_t, num_a, num_d)
    matched = match >= 0
    outside = (dt_area < low) | (dt_area > high)  # (A, D)
    ignored = ~matched & outside[None]  # unmatched and outside the range
    t, a, d = np.nonzero(matched)
    ignored[t, a, d] = gt_ignore[a, match[t, a, d]]  # matched to an ignored ground truth
    return _Matches(scores, labels, rank, matched, ignored, image.gt_labels, ~gt_ignore)


def _interpolate(recall: Floats, precision: Floats) -> Floats:
    """Precision envelope read at the 101 recall thresholds (0 past the highest recall)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # max over this and every later rank
    index = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")  # first rank reaching each threshold
    reached = index < len(recall)
    out = np.zeros(len(RECALL_THRESHOLDS))
    out[reached] = envelope[index[reached]]
    return out


def _accumulate(
    scores: Floats,
    rank: NDArray[np.int64],
    matched: NDArray[np.bool_],
    counted: NDArray[np.bool_],
    num_gt: NDArray[np.int64],
) -> tuple[Floats, Floats]:
    """``COCOeval.accumulate`` for one class: precision ``(T, R, A, M)`` and recall ``(T, A, M)``.

    The class's detections of every image come concatenated in image order (best first within
    an image), so a stable sort by score ranks ties as pycocotools does. ``rank`` is each
    detection's position within its image, ``num_gt`` ``(A,)`` the regular ground truths.
    """
    num_t, num_a = matched.shape[:2]
    precision = -np.ones((num_t, len(RECALL_THRESHOLDS), num_a, len(MAX_DETECTIONS)))
    recall = -np.ones((num_t, num_a, len(MAX_DETECTIONS)))
    for m, max_det in enumerate(MAX_DETECTIONS):
        keep = np.flatnonzero(rank < max_det)
        order = keep[np.argsort(-scores[keep], kind="mergesort")]
        hit, count = matched[..., order], counted[..., order]
        tp = np.cumsum(hit & count, axis=-1).astype(np.float64)  # (T, A, D)
        fp = np.cumsum(~hit & count, axis=-1).astype(np.float64)
        for a in np.flatnonzero(num_gt > 0):  # no regular ground truth: stays -1
            rc, pr = tp[:, a] / num_gt[a], tp[:, a] / (fp[:, a] + tp[:, a] + _EPS)  # (T, D)
            precision[:, :, a, m] = [_interpolate(r, p) for r, p in zip(rc, pr, strict=True)]
            recall[:, a, m] = rc[:, -1] if len(order) else 0.0
    return precision, recall


def _gather(images: Sequence[_Image], thresholds: Floats, ranges: Floats) -> dict[str, NDArray[Any]]:
    """Every image evaluated and its detections concatenated in image order."""
    num_t, num_a = len(thresholds), len(ranges)
    none = _Matches(
        np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
        np.zeros((num_t, num_a, 0), bool), np.zeros((num_t, num_a, 0), bool),
        np.zeros(0, np.int64), np.zeros((num_a, 0), bool),
    )  # fmt: skip
    per_image = [none] + [_evaluate_image(image, thresholds, ranges) for image in images]  # `none`: no images
    return {
        "scores": np.concatenate([m.scores for m in per_image]),
        "labels": np.concatenate([m.labels for m in per_image]),
        "rank": np.concatenate([m.rank for m in per_image]),
        "matched": np.concatenate([m.matched for m in per_image], axis=-1),  # (T, A, D)
        "counted": ~np.concatenate([m.ignored for m in per_image], axis=-1),
        "gt_labels": np.concatenate([m.gt_labels for m in per_image]),
        "gt_regular": np.concatenate([m.gt_regular for m in per_image], axis=-1),  # (A, G)
    }


def _classes(images: Sequence[_Image]) -> list[int]:
    return sorted({int(x) for image in images for x in (*image.gt_labels, *image.dt_labels)})


def _mean_valid(values: Floats) -> float:
    """Mean of the entries that are not -1 (no ground truth), or -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def coco_evaluate(ground_truths: Targets, detections: Targets, *, box_format: BoxFormat = "xyxy") -> CocoMetrics:
    """COCO box AP/AR of ``detections`` against ``ground_truths``, one entry per image in both lists.

    Args:
        ground_truths: per image, ``boxes`` (Tensor[G, 4] or array, in ``box_format``),
            ``labels`` (Tensor[G], integer class ids), optional ``iscrowd`` (Tensor[G], 0/1) and
            optional ``area`` (Tensor[G], e.g. a segmentation's area; default: box area).
        detections: per image, ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]) and ``labels`` (Tensor[D]).
        box_format: ``"xyxy"`` (``0 <= x1 <= x2``, torchvision) or ``"xywh"`` (COCO json).

    Returns:
        :class:`CocoMetrics`: the 12 numbers of ``COCOeval.stats`` by name (see :data:`STAT_NAMES`),
        ``AP_per_class`` and the ``precision`` ``(T, R, K, A, M)`` / ``recall`` ``(T, K, A, M)``
        arrays, with classes ``K`` in increasing label order over both lists and the axes ordered
        as :data:`IOU_THRESHOLDS`, :data:`RECALL_THRESHOLDS`, :data:`AREA_RANGES`, :data:`MAX_DETECTIONS`.
        ``-1`` means "no ground truth".

    Raises:
        ValueError: for lists of different lengths, missing keys, wrong shapes, non-finite
            values, non-integer labels or an unknown ``box_format``.
    """
    images = _parse(ground_truths, detections, box_format)
    labels = _classes(images)
    ranges = np.array(list(AREA_RANGES.values()))  # (A, 2)
    shape = (len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(labels), len(ranges), len(MAX_DETECTIONS))
    precision, recall = -np.ones(shape), -np.ones(shape[:1] + shape[2:])
    every = _gather(images, IOU_THRESHOLDS, ranges)
    for k, label in enumerate(labels):
        mine = every["labels"] == label
        num_gt = every["gt_regular"][:, every["gt_labels"] == label].sum(axis=1)  # (A,)
        precision[:, :, k], recall[:, k] = _accumulate(
            every["scores"][mine], every["rank"][mine], every["matched"][..., mine], every["counted"][..., mine], num_gt
        )
    # ``COCOeval.summarize``: area index 0..3 = all/small/medium/large, detections index 2 = 100.
    t50, t75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0]), int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
    ap, ar = precision[..., 2], recall[..., 2]  # (T, R, K, A), (T, K, A) at 100 detections
    values = [_mean_valid(ap[..., 0]), _mean_valid(ap[t50, ..., 0]), _mean_valid(ap[t75, ..., 0])]
    values += [_mean_valid(ap[..., a]) for a in (1, 2, 3)]
    values += [_mean_valid(recall[:, :, 0, m]) for m in range(len(MAX_DETECTIONS))]
    values += [_mean_valid(ar[..., a]) for a in (1, 2, 3)]
    stats = dict(zip(STAT_NAMES, values, strict=True))
    per_class = {label: _mean_valid(ap[:, :, k, 0]) for k, label in enumerate(labels)}
    return cast(CocoMetrics, {**stats, "AP_per_class": per_class, "precision": precision, "recall": recall})


def average_precision(recall: ArrayLike, precision: ArrayLike) -> float:
    """COCO's 101-point interpolated AP of one precision-recall curve (one class, one IoU threshold).

    Args:
        recall (Tensor[N]): recall after each detection, best first (non-decreasing, in [0, 1]).
        precision (Tensor[N]): precision after each detection.

    Returns:
        The mean over recall thresholds 0, 0.01, ..., 1 of the highest precision reached at
        that recall or beyond (0 where the recall is never reached; 0 for ``N = 0``).

    Raises:
        ValueError: for shapes other than two equal ``(N,)`` or a recall that decreases.
    """
    r, p = _array(recall), _array(precision)
    if r.ndim != 1 or r.shape != p.shape:
        raise ValueError(f"recall and precision must both have shape (N,), got {r.shape} and {p.shape}")
    if (np.diff(r) < 0).any():
        raise ValueError(f"recall must be non-decreasing, got a decrease at index {int(np.argmax(np.diff(r) < 0)) + 1}")
    return float(np.mean(_interpolate(r, p)))


def precision_recall_curve(
    ground_truths: Targets,
    detections: Targets,
    label: int,
    iou_threshold: float = 0.5,
    *,
    box_format: BoxFormat = "xyxy",
) -> tuple[Floats, Floats, Floats]:
    """Raw precision and recall of class ``label`` at one IoU threshold, for plotting (area all, 100 dets).

    Returns:
        ``(precision, recall, scores)``, each ``(N,)``: after each counted detection, best
        first (detections matched to crowd regions are left out). ``average_precision(recall,
        precision)`` equals COCO's AP for this class and threshold.

    Raises:
        ValueError: if ``label`` has no regular ground truth (recall undefined), or for an
            ``iou_threshold`` outside [0, 1] and the input errors of :func:`coco_evaluate`.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    images = _parse(ground_truths, detections, box_format)
    every = _gather(images, np.array([iou_threshold]), np.array([AREA_RANGES["all"]]))
    num_gt = int(every["gt_regular"][0, every["gt_labels"] == label].sum())
    if num_gt == 0:
        raise ValueError(f"class {label} has no ground truth (crowd regions aside): its recall is undefined")
    mine = np.flatnonzero((every["labels"] == label) & (every["rank"] < MAX_DETECTIONS[-1]))
    scores = every["scores"][mine]
    order = np.argsort(-scores, kind="mergesort")
    matched = every["matched"][0, 0, mine][order]
    counted = every["counted"][0, 0, mine][order]
    tp, fp = np.cumsum(matched[counted]).astype(np.float64), np.cumsum(~matched[counted]).astype(np.float64)
    return tp / (tp + fp), tp / num_gt, scores[order][counted]


def to_coco_json(
    ground_truths: Targets, detections: Targets, *, box_format: BoxFormat = "xyxy"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The same data as COCO json: a ground-truth dataset and a detection result list.

    Image ``i`` gets id ``i``; annotations get ids from 1 (pycocotools reads 0 as "unmatched");
    categories are the labels of both lists. Feed them to pycocotools with
    ``gt = COCO(); gt.dataset = dataset; gt.createIndex(); dt = gt.loadRes(results)``
    (``loadRes`` needs at least one detection and adds fields to ``results`` in place).
    """
    images = _parse(ground_truths, detections, box_format)
    labels = _classes(images)
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i, image in enumerate(images):
        for box, label, crowd, area in zip(image.gt_boxes, image.gt_labels, image.gt_crowd, image.gt_area, strict=True):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": int(label), "bbox": [float(v) for v in box],
                 "area": float(area), "iscrowd": int(crowd)}
            )  # fmt: skip
        for box, score, label in zip(image.dt_boxes, image.dt_scores, image.dt_labels, strict=True):
            results.append(
                {"image_id": i, "category_id": int(label), "bbox": [float(v) for v in box], "score": float(score)}
            )
    dataset = {
        "images": [{"id": i} for i in range(len(images))],
        "annotations": annotations,
        "categories": [{"id": label, "name": str(label)} for label in labels],
    }
    return dataset, results


def run_cocoeval(ground_truths: Targets, detections: Targets, *, box_format: BoxFormat = "xyxy") -> Any:
    """The same data through the official ``pycocotools.cocoeval.COCOeval`` (``iouType="bbox"``):
    evaluate, accumulate and summarize with its progress output silenced. Returns the evaluator
    (``.stats`` holds the 12 numbers in :data:`STAT_NAMES` order, ``.eval`` the arrays).

    Raises:
        ValueError: when there is no detection at all (``loadRes`` cannot take an empty list).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = to_coco_json(ground_truths, detections, box_format=box_format)
    if not results:
        raise ValueError("pycocotools cannot evaluate an empty detection list")
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress and its own table
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator
