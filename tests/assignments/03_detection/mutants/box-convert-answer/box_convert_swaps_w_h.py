"""Writes ``xywh`` as ``(x1, y1, h, w)``: width and height swapped, a mistake invisible on square boxes."""

# fails: test-box-convert
# %% grade_id=box-convert-answer
import torch


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt``, each one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in ("xyxy", "xywh", "cxcywh"):
            raise ValueError(f"unknown box format {fmt!r}: use 'xyxy', 'xywh' or 'cxcywh'")
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xyxy":
        columns = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        columns = (x1, y1, y2 - y1, x2 - x1)
    else:
        columns = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return torch.stack(columns, dim=-1)
