"""Returns the kept indices sorted by index instead of by decreasing score: the right set of boxes in
the order torchvision does not use (callers take the first ``k`` as the best ``k``)."""

# fails: test-nms
# %% grade_id=nms-answer
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (``int64``, best score first) of the ``xyxy`` boxes that greedy NMS keeps."""
    order = torch.argsort(scores, descending=True)
    ranked = boxes[order]
    overlaps = (box_iou(ranked, ranked) > iou_threshold).cpu()
    removed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for i in range(len(order)):
        if removed[i]:
            continue
        kept.append(i)
        removed |= overlaps[i]
    return torch.sort(order[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]).values
