"""Ops: box geometry and non-maximum suppression, checked against ``torchvision.ops``
(03_detection). Models, data and evaluation build on these; ops import nothing above
``mlcraft.utils``."""

from mlcraft.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
)
from mlcraft.ops.nms import batched_nms, nms

__all__ = [
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
    "nms",
]
