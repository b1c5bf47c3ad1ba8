"""Sorts the detections by increasing score (``argsort`` without ``descending=True``): the least confident
detections are matched and ranked first."""

# fails: test-ap
# %% grade_id=ap-answer
import torch


def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO-style 101-point AP of one class over several images (lists of per-image tensors)."""
    num_gt = sum(int(g.shape[0]) for g in gt_boxes)
    if num_gt == 0:
        raise ValueError("there is no ground truth in any image: recall, hence AP, is undefined")
    all_scores, all_hits = [], []
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        boxes, scores, gts = boxes.detach().cpu().double(), scores.detach().cpu().double(), gts.detach().cpu().double()
        order = torch.argsort(scores)
        hits = torch.zeros(len(order), dtype=torch.bool)
        if len(gts) and len(order):
            iou = box_iou(boxes[order], gts)
            taken = torch.zeros(len(gts), dtype=torch.bool)
            for d in range(len(order)):
                free = iou[d].masked_fill(taken, -1.0)  # a matched ground truth is used up
                g = int(free.argmax())
                if free[g] >= iou_threshold:
                    hits[d], taken[g] = True, True
        all_scores.append(scores[order])
        all_hits.append(hits)
    ranked = torch.cat(all_hits)[torch.argsort(torch.cat(all_scores), stable=True)].double()
    tp, fp = ranked.cumsum(0), (1 - ranked).cumsum(0)  # (D,) each, over all images
    recall, precision = tp / num_gt, tp / (tp + fp)
    envelope = precision.flip(0).cummax(0).values.flip(0)  # best precision at this rank or later
    thresholds = torch.linspace(0, 1, 101, dtype=torch.float64)
    first = torch.searchsorted(recall, thresholds)  # first rank with recall >= each threshold
    reached = first < len(recall)
    interpolated = torch.zeros(101, dtype=torch.float64)
    interpolated[reached] = envelope[first[reached]]
    return float(interpolated.mean())
