"""FCOS training targets and loss: which location learns which box, and how wrong it is.

Follows FCOS (Tian et al., 2019, "FCOS: Fully Convolutional One-Stage Object Detection",
https://arxiv.org/abs/1904.01355) in the form torchvision's ``FCOS`` implements it:

- **Assignment** (:func:`fcos_targets`): a location is a positive for a ground-truth box when it
  lies strictly inside the box and, with centre sampling, within ``radius * stride`` of the
  box centre (Chebyshev distance); among several such boxes the one of smallest area wins.
  Every other location is background. Labels ``1..K`` become class index ``label - 1``.
- **Loss** (:func:`detection_losses`): sigmoid focal loss (Lin et al., 2017) over every
  location and class, GIoU loss (Rezatofighi et al., 2019) of the decoded boxes on positives,
  and binary cross-entropy of the centerness logit against
  ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` on positives; each term is summed
  and divided by the number of positives in the batch (at least 1), as torchvision does.

The tests check the assignment and the three terms against
``torchvision.models.detection.FCOS.compute_loss`` for a single feature level, and the focal
loss against ``torchvision.ops.sigmoid_focal_loss``. One difference: torchvision breaks
"smallest area" through ``1e8 - area`` in float32, which ties boxes whose areas differ by less
than 8 px²; here the smaller box always wins (the first one on exact ties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812

from mlcraft.ops.boxes import box_area

__all__ = [
    "FcosTargets",
    "centerness_target",
    "decode_ltrb",
    "detection_loss",
    "detection_losses",
    "fcos_targets",
    "paired_generalized_box_iou",
    "sigmoid_focal_loss",
]


class FcosTargets(NamedTuple):
    """Per-location training targets of a batch (``L`` locations per image)."""

    labels: torch.Tensor  # (B, L) int64: 0 background, 1..K the class of the assigned box
    boxes: torch.Tensor  # (B, L, 4) xyxy: the assigned box (zeros for background), in the points' float dtype
    matched: torch.Tensor  # (B, L) int64: index of the assigned box in its image's target, -1 for background


def _upcast(tensor: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (losses and box arithmetic need the range); float32/64 stay."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def _plain(tensor: Any) -> torch.Tensor:
    """A plain tensor (``tv_tensors.BoundingBoxes`` and friends unwrapped)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a tensor, got {type(tensor).__name__}")
    return tensor.as_subclass(torch.Tensor)


def fcos_targets(
    points: torch.Tensor,
    strides: torch.Tensor,
    targets: Sequence[Mapping[str, Any]],
    *,
    center_sampling_radius: float | None = 1.5,
) -> FcosTargets:
    """Assign each location to at most one ground-truth box.

    Args:
        points (Tensor[L, 2]): ``(x, y)`` centre of each location, in image pixels.
        strides (Tensor[L]): stride of each location's feature map, in pixels.
        targets: one dict per image with ``boxes`` (Tensor[G, 4], xyxy pixels, ``x1 < x2``,
            ``y1 < y2``; ``G`` may be 0) and ``labels`` (Tensor[G], int64 in 1..K).
        center_sampling_radius: positives must lie within ``radius * stride`` of the box centre
            (FCOS: 1.5); ``None`` makes every location inside a box a positive.

    Returns:
        :class:`FcosTargets` with ``labels`` (B, L), ``boxes`` (B, L, 4) and ``matched`` (B, L).
    """
    if points.dim() != 2 or points.shape[1] != 2 or strides.shape != points.shape[:1]:
        raise ValueError(f"need points (L, 2) and strides (L,), got {tuple(points.shape)} and {tuple(strides.shape)}")
    if center_sampling_radius is not None and center_sampling_radius <= 0:
        raise ValueError(f"center_sampling_radius must be > 0 or None, got {center_sampling_radius}")
    points, strides = _upcast(points), _upcast(strides)
    num_points = points.shape[0]
    all_labels, all_boxes, all_matched = [], [], []
    for index, target in enumerate(targets):
        boxes = _plain(target["boxes"]).to(points.device, points.dtype).reshape(-1, 4)  # (G, 4)
        labels = _plain(target["labels"]).to(points.device, torch.int64).reshape(-1)  # (G,)
        if labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"targets[{index}]: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
        if labels.numel() and int(labels.min()) < 1:
            raise ValueError(f"targets[{index}]: labels must be >= 1 (0 is the background), got {labels.tolist()}")
        if boxes.shape[0] == 0:
            matched = torch.full((num_points,), -1, dtype=torch.int64, device=points.device)
        else:
            x, y = points[:, 0:1], points[:, 1:2]  # (L, 1) each
            distances = torch.stack(
                (x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y), dim=-1
            )  # (L, G, 4): left, top, right, bottom
            candidate = distances.min(dim=-1).values > 0  # (L, G) strictly inside
            if center_sampling_radius is not None:
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (G, 2)
                offset = (points[:, None, :] - centres[None, :, :]).abs().max(dim=-1).values  # (L, G)
                candidate &= offset < center_sampling_radius * strides[:, None]
            cost = torch.where(candidate, box_area(boxes)[None, :], torch.inf)  # (L, G)
            smallest, matched = cost.min(dim=1)  # (L,) the first of equal areas
            matched = torch.where(torch.isfinite(smallest), matched, -1)
        positive = matched >= 0
        safe = matched.clamp(min=0)
        all_matched.append(matched)
        if boxes.shape[0] == 0:
            all_labels.append(torch.zeros(num_points, dtype=torch.int64, device=points.device))
            all_boxes.append(points.new_zeros(num_points, 4))
        else:
            all_labels.append(torch.where(positive, labels[safe], 0))
            all_boxes.append(torch.where(positive[:, None], boxes[safe], 0.0))
    if not all_labels:
        raise ValueError("targets is empty: need one dict per image")
    return FcosTargets(torch.stack(all_labels), torch.stack(all_boxes), torch.stack(all_matched))


def decode_ltrb(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Boxes ``(..., 4)`` xyxy from points ``(..., 2)`` and distances ``(..., 4)`` = (left, top, right, bottom)."""
    return torch.cat((points - distances[..., :2], points + distances[..., 2:]), dim=-1)


def centerness_target(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """FCOS centerness ``(N,)`` of points ``(N, 2)`` inside their boxes ``(N, 4)``: 1 at the centre, 0 on an edge."""
    left, top = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    right, bottom = boxes[:, 2] - points[:, 0], boxes[:, 3] - points[:, 1]
    horizontal = torch.minimum(left, right) / torch.maximum(left, right)
    vertical = torch.minimum(top, bottom) / torch.maximum(top, bottom)
    return torch.sqrt((horizontal * vertical).clamp(min=0))


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """GIoU ``(N,)`` of ``boxes1[i]`` with ``boxes2[i]`` (both ``(N, 4)`` xyxy): the diagonal of
    :func:`mlcraft.ops.generalized_box_iou` without the ``(N, N)`` matrix; ``eps`` guards
    degenerate boxes as ``torchvision.ops.generalized_box_iou_loss`` does."""
    if boxes1.shape != boxes2.shape or boxes1.dim() != 2 or boxes1.shape[-1] != 4:
        raise ValueError(f"need two (N, 4) tensors of one shape, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    top_left = torch.max(boxes1[:, :2], boxes2[:, :2])  # (N, 2)
    bottom_right = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)  # (N,)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1 + area2 - inter
    iou = inter / (union + eps)
    enclosing = (torch.max(boxes1[:, 2:], boxes2[:, 2:]) - torch.min(boxes1[:, :2], boxes2[:, :2])).prod(dim=-1)
    return iou - (enclosing - union) / (enclosing + eps)


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Elementwise focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)`` (Lin et al., 2017); ``alpha < 0`` disables the weighting."""
    probs = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def detection_losses(
    outputs: Mapping[str, torch.Tensor],
    targets: Sequence[Mapping[str, Any]],
    *,
    center_sampling_radius: float | None = 1.5,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> dict[str, torch.Tensor]:
    """The three FCOS loss terms of a batch, each a scalar divided by the number of positives (>= 1).

    Args:
        outputs: the head outputs of :class:`mlcraft.models.ShapesDetector`: ``cls_logits``
            (B, L, K), ``box_regression`` (B, L, 4) positive distances (l, t, r, b) in pixels,
            ``centerness`` (B, L) logits, ``points`` (L, 2) and ``strides`` (L,).
        targets: one dict per image, as :func:`fcos_targets` takes them.

    Returns:
        ``{"classification", "box", "centerness"}`` scalars in float32 (float64 for float64
        outputs); torchvision's FCOS names them ``classification``, ``bbox_regression``, ``bbox_ctrness``.
    """
    logits = _upcast(outputs["cls_logits"])  # (B, L, K)
    distances = _upcast(outputs["box_regression"])  # (B, L, 4)
    centerness = _upcast(outputs["centerness"])  # (B, L)
    points, strides = outputs["points"], outputs["strides"]
    if len(targets) != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} images in the outputs but {len(targets)} targets")
    assigned = fcos_targets(points, strides, targets, center_sampling_radius=center_sampling_radius)
    num_classes = logits.shape[-1]
    if assigned.labels.numel() and int(assigned.labels.max()) > num_classes:
        raise ValueError(f"labels must be in 1..{num_classes}, got {int(assigned.labels.max())}")
    positive = assigned.labels > 0  # (B, L)
    num_positive = positive.sum().clamp(min=1).to(logits.dtype)
    one_hot = F.one_hot(assigned.labels, num_classes + 1)[..., 1:].to(logits.dtype)  # (B, L, K); column 0 is background
    classification = sigmoid_focal_loss(logits, one_hot, focal_alpha, focal_gamma).sum() / num_positive
    positive_points = _upcast(points).to(distances.dtype).expand(logits.shape[0], -1, -1)[positive]  # (P, 2)
    predicted = decode_ltrb(positive_points, distances[positive])  # (P, 4)
    matched = assigned.boxes[positive].to(distances.dtype)  # (P, 4)
    box = (1 - paired_generalized_box_iou(predicted, matched)).sum() / num_positive
    quality = centerness_target(positive_points, matched)  # (P,)
    ctr = F.binary_cross_entropy_with_logits(centerness[positive], quality, reduction="sum") / num_positive
    return {"classification": classification, "box": box, "centerness": ctr}


def detection_loss(
    outputs: Mapping[str, torch.Tensor],
    targets: Sequence[Mapping[str, Any]],
    *,
    center_sampling_radius: float | None = 1.5,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> torch.Tensor:
    """Sum of :func:`detection_losses`: the scalar to minimise (usable as the Trainer's ``loss_fn``)."""
    terms = detection_losses(
        outputs,
        targets,
        center_sampling_radius=center_sampling_radius,
        focal_alpha=focal_alpha,
        focal_gamma=focal_gamma,
    )
    return terms["classification"] + terms["box"] + terms["centerness"]
