"""One-to-one matching of a set of predictions to a set of objects: DETR's Hungarian matcher.

Follows DETR (Carion et al., 2020, "End-to-End Object Detection with Transformers",
https://arxiv.org/abs/2005.12872, ``models/matcher.py`` of the reference code): a detector that
outputs a fixed set of ``Q`` predictions is trained with a loss that does not depend on their
order. Each of the ``G`` ground-truth objects is paired with exactly one prediction, the pairing
of least total cost; every other prediction is trained towards "no object". Because no two
predictions are ever trained on one object, the detector learns not to make duplicates and its
output needs no NMS.

The cost of pairing prediction ``q`` with object ``g`` is DETR's

    cost_class * (-softmax(logits_q)[label_g])
    + cost_bbox * || box_q - box_g ||_1          (on (cx, cy, w, h), normalised to [0, 1])
    + cost_giou * (-GIoU(box_q, box_g))          (GIoU of Rezatofighi et al., 2019, on xyxy)

and the pairing of least total cost is the linear assignment problem, solved exactly by
``scipy.optimize.linear_sum_assignment`` (a shortest-augmenting-path variant of the Hungarian
method of Kuhn, 1955; Crouse, 2016), in ``O(n^3)`` rather than the ``Q! / (Q - G)!`` pairings
a search would try. The tests check the result against such a search over all pairings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]  # scipy ships no stubs

from mlcraft.models.detection_loss import _upcast  # fp16/bf16 -> fp32, wider dtypes kept
from mlcraft.ops.boxes import box_convert, generalized_box_iou

__all__ = ["batched_hungarian_match", "hungarian_match", "matching_cost"]


def _check_inputs(
    pred_logits: torch.Tensor, pred_boxes: torch.Tensor, gt_labels: torch.Tensor, gt_boxes: torch.Tensor
) -> None:
    if pred_logits.dim() != 2:
        raise ValueError(f"pred_logits must have shape (Q, C), got {tuple(pred_logits.shape)}")
    if pred_boxes.shape != (pred_logits.shape[0], 4):
        raise ValueError(
            f"pred_boxes must have shape (Q, 4) = ({pred_logits.shape[0]}, 4), got {tuple(pred_boxes.shape)}"
        )
    if gt_labels.dim() != 1:
        raise ValueError(f"gt_labels must have shape (G,), got {tuple(gt_labels.shape)}")
    if gt_boxes.shape != (gt_labels.shape[0], 4):
        raise ValueError(f"gt_boxes must have shape (G, 4) = ({gt_labels.shape[0]}, 4), got {tuple(gt_boxes.shape)}")
    if not pred_logits.is_floating_point() or not pred_boxes.is_floating_point() or not gt_boxes.is_floating_point():
        raise TypeError(
            f"logits and boxes must be floating point, got {pred_logits.dtype}, {pred_boxes.dtype}, {gt_boxes.dtype}"
        )
    if gt_labels.is_floating_point() or gt_labels.is_complex() or gt_labels.dtype == torch.bool:
        raise TypeError(f"gt_labels must be an integer tensor, got {gt_labels.dtype}")
    num_classes = pred_logits.shape[1]
    if gt_labels.numel() and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= num_classes):
        raise ValueError(f"gt_labels must lie in [0, {num_classes}), got {gt_labels.tolist()}")
    for name, boxes in (("pred_boxes", pred_boxes), ("gt_boxes", gt_boxes)):
        if boxes.numel() and not bool((boxes[:, 2:] > 0).all()):
            bad = boxes[~(boxes[:, 2:] > 0).all(dim=1)]
            raise ValueError(f"{name} must be (cx, cy, w, h) with w > 0 and h > 0, got {bad.tolist()}")


def matching_cost(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    *,
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
) -> torch.Tensor:
    """DETR's pairing cost ``(Q, G)`` of every prediction with every ground-truth object.

    Args:
        pred_logits (Tensor[Q, C]): class logits of each prediction; a softmax over ``C`` gives
            its class probabilities (DETR's last column is "no object", which no object has).
        pred_boxes (Tensor[Q, 4]): ``(cx, cy, w, h)``, normalised by the image size (DETR's
            format; any common scale works), ``w > 0``, ``h > 0``.
        gt_labels (Tensor[G], integer): class index of each object, in ``[0, C)``; ``G`` may be 0.
        gt_boxes (Tensor[G, 4]): ``(cx, cy, w, h)`` on the same scale as ``pred_boxes``.
        cost_class, cost_bbox, cost_giou: weights of the three terms (DETR: 1, 5, 2).

    Returns:
        Tensor[Q, G] in the promoted float dtype of the inputs (float16/bfloat16 computed in
        float32), no gradient: ``cost_class * (-p[label]) + cost_bbox * L1 + cost_giou * (-GIoU)``.
    """
    _check_inputs(pred_logits, pred_boxes, gt_labels, gt_boxes)
    if min(cost_class, cost_bbox, cost_giou) < 0 or cost_class == cost_bbox == cost_giou == 0:
        raise ValueError(
            f"cost weights must be >= 0 and not all 0, got class {cost_class}, bbox {cost_bbox}, giou {cost_giou}"
        )
    with torch.no_grad():
        dtype = torch.promote_types(_upcast(pred_logits).dtype, _upcast(pred_boxes).dtype)
        dtype = torch.promote_types(dtype, _upcast(gt_boxes).dtype)
        probs = pred_logits.to(dtype).softmax(dim=-1)  # (Q, C)
        pred, gt = pred_boxes.to(dtype), gt_boxes.to(pred_boxes.device, dtype)  # (Q, 4), (G, 4)
        class_cost = -probs[:, gt_labels.to(pred_logits.device, torch.int64)]  # (Q, G)
        box_cost = torch.cdist(pred, gt, p=1) if len(gt) and len(pred) else pred.new_zeros(len(pred), len(gt))
        giou = generalized_box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"))  # (Q, G)
        return cost_class * class_cost + cost_bbox * box_cost + cost_giou * (-giou)


def hungarian_match(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    *,
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-to-one pairing of predictions with objects of least total :func:`matching_cost`.

    Arguments as for :func:`matching_cost`.

    Returns:
        ``(pred_idx, gt_idx)``, two int64 tensors of length ``min(Q, G)`` on ``pred_logits``'s
        device: prediction ``pred_idx[k]`` is paired with object ``gt_idx[k]``; ``pred_idx`` is
        increasing, and no index repeats. With ``Q >= G`` (DETR's case) every object is paired;
        the other ``Q - G`` predictions are "no object". ``G = 0`` gives two empty tensors. Among
        pairings of equal total cost (ties) one is returned, deterministically for given inputs.

    Raises:
        ValueError: shapes that do not fit, labels outside ``[0, C)``, boxes with ``w <= 0`` or
            ``h <= 0``, weights that are negative or all zero, or a cost that is not finite.
        TypeError: non-float logits or boxes, non-integer labels.
    """
    cost = matching_cost(
        pred_logits, pred_boxes, gt_labels, gt_boxes, cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou
    )  # (Q, G)
    empty = torch.empty(0, dtype=torch.int64, device=pred_logits.device)
    if cost.numel() == 0:
        return empty, empty.clone()
    if not bool(torch.isfinite(cost).all()):
        raise ValueError(f"the matching cost has non-finite entries at {torch.nonzero(~torch.isfinite(cost)).tolist()}")
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())  # rows increasing
    return (
        torch.as_tensor(rows, dtype=torch.int64, device=pred_logits.device),
        torch.as_tensor(cols, dtype=torch.int64, device=pred_logits.device),
    )


def batched_hungarian_match(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    targets: Sequence[Mapping[str, Any]],
    *,
    cost_class: float = 1.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`hungarian_match` for each image of a batch.

    Args:
        pred_logits (Tensor[B, Q, C]), pred_boxes (Tensor[B, Q, 4]): as for :func:`matching_cost`, per image.
        targets: ``B`` dicts with ``labels`` (Tensor[G_b]) and ``boxes`` (Tensor[G_b, 4], cxcywh).

    Returns:
        ``B`` pairs ``(pred_idx, gt_idx)``, as :func:`hungarian_match` returns them.
    """
    if pred_logits.dim() != 3 or pred_boxes.shape != (*pred_logits.shape[:2], 4):
        raise ValueError(
            f"need pred_logits (B, Q, C) and pred_boxes (B, Q, 4), got {tuple(pred_logits.shape)} and "
            f"{tuple(pred_boxes.shape)}"
        )
    if len(targets) != pred_logits.shape[0]:
        raise ValueError(f"{pred_logits.shape[0]} images of predictions but {len(targets)} targets")
    return [
        hungarian_match(
            pred_logits[b],
            pred_boxes[b],
            target["labels"].as_subclass(torch.Tensor),
            target["boxes"].as_subclass(torch.Tensor),
            cost_class=cost_class,
            cost_bbox=cost_bbox,
            cost_giou=cost_giou,
        )
        for b, target in enumerate(targets)
    ]
