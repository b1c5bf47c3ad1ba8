"""Suppresses when the IoU is ``>= iou_threshold`` instead of ``>``: a box overlapping a kept box by
exactly the threshold is wrongly removed, and identical boxes are removed at threshold 1.0."""

# fails: test-nms
# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (``int64``, best score first) of the ``xyxy`` boxes that greedy NMS keeps."""
    order = torch.argsort(scores, descending=True)
    ranked = boxes[order]
    overlaps = (box_iou(ranked, ranked) >= iou_threshold).cpu()
    removed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for i in range(len(order)):
        if removed[i]:
            continue
        kept.append(i)
        removed |= overlaps[i]
    return order[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]
