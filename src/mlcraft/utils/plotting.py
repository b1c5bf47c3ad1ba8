"""Drawing detections on images with matplotlib (boxes, class names, scores)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["draw_boxes"]

#: Colours per class id (matplotlib's tab10), cycled when there are more classes.
_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def _as_image(image: Any) -> Any:
    """(3, H, W) or (H, W, 3) tensor/array with values in [0, 1] -> an (H, W, 3) numpy array."""
    tensor = torch.as_tensor(image).detach().cpu()
    if tensor.dim() == 3 and tensor.shape[0] in (1, 3) and tensor.shape[-1] not in (1, 3):
        tensor = tensor.permute(1, 2, 0)
    if tensor.dim() != 3 or tensor.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (3, H, W) or (H, W, 3), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float() / 255.0
    return tensor.clamp(0, 1).float().numpy()


def draw_boxes(
    ax: Any,
    image: Any,
    boxes: Any,
    labels: Any = None,
    scores: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    color: str | None = None,
    linestyle: str = "-",
    title: str | None = None,
) -> Any:
    """Show ``image`` on the matplotlib ``ax`` with ``boxes`` (N, 4) ``xyxy`` in pixels on top.

    ``labels`` (N,) pick a colour per class and, with ``class_names`` (label ``k`` names
    ``class_names[k - 1]``, label 0 being the background), a caption; ``scores`` (N,) are added
    to the caption. ``color`` forces one colour (e.g. ground truth in white, dashed, under
    predictions). Returns ``ax``.
    """
    from matplotlib.patches import Rectangle

    if image is not None:
        ax.imshow(_as_image(image))
    box_array = torch.as_tensor(boxes).detach().cpu().reshape(-1, 4).float()
    n = box_array.shape[0]
    label_list = [int(v) for v in torch.as_tensor(labels).reshape(-1)] if labels is not None else [None] * n
    score_list = [float(v) for v in torch.as_tensor(scores).reshape(-1)] if scores is not None else [None] * n
    if len(label_list) != n or len(score_list) != n:
        raise ValueError(f"got {n} boxes, {len(label_list)} labels and {len(score_list)} scores")
    for (x1, y1, x2, y2), label, score in zip(box_array.tolist(), label_list, score_list, strict=True):
        edge = color or (_PALETTE[label % len(_PALETTE)] if label is not None else _PALETTE[0])
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=edge, linewidth=1.5, linestyle=linestyle)
        )
        parts = []
        if label is not None:
            parts.append(class_names[label - 1] if class_names and 1 <= label <= len(class_names) else str(label))
        if score is not None:
            parts.append(f"{score:.2f}")
        if parts:
            ax.text(
                x1,
                y1,
                " ".join(parts),
                color="white",
                fontsize=7,
                va="bottom",
                bbox={"facecolor": edge, "alpha": 0.8, "pad": 1, "linewidth": 0},
            )
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax
