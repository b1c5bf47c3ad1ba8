"""Vectorised without the greedy pass: keeps a box if no higher-scoring box overlaps it, whether or not
that box was itself kept, so a removed box still removes others (the chain A > B > C loses C)."""

# fails: test-nms
# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (``int64``, best score first) of the ``xyxy`` boxes that greedy NMS keeps."""
    order = torch.argsort(scores, descending=True)
    ranked = boxes[order]
    iou = box_iou(ranked, ranked).triu(diagonal=1)
    keep = ~(iou > iou_threshold).any(dim=0)
    return order[keep]
