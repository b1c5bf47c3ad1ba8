"""Evaluation: box geometry and NMS checked against torchvision (03_detection); COCO mAP and
drift statistics follow."""

from mlcraft.evaluation.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
)
from mlcraft.evaluation.coco import (
    CocoMetrics,
    average_precision,
    coco_evaluate,
    precision_recall_curve,
    to_coco_json,
)
from mlcraft.evaluation.nms import batched_nms, nms

__all__ = [
    "CocoMetrics",
    "average_precision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "coco_evaluate",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
    "nms",
    "precision_recall_curve",
    "to_coco_json",
]
