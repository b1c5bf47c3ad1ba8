"""draw_boxes puts one rectangle and one caption per box on the axes."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from mlcraft.utils.plotting import draw_boxes


def test_draws_boxes_with_captions() -> None:
    fig, ax = plt.subplots()
    boxes = torch.tensor([[1.0, 2.0, 11.0, 22.0], [5.0, 5.0, 9.0, 9.0]])
    draw_boxes(
        ax, torch.rand(3, 32, 32), boxes, torch.tensor([1, 3]), torch.tensor([0.9, 0.25]), class_names=("a", "b", "c")
    )
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [(r.get_x(), r.get_y(), r.get_width(), r.get_height()) for r in rects] == [(1, 2, 10, 20), (5, 5, 4, 4)]
    assert [t.get_text() for t in ax.texts] == ["a 0.90", "c 0.25"]
    assert len(ax.images) == 1
    pixels = ax.images[0].get_array()
    assert pixels is not None and pixels.shape == (32, 32, 3)
    plt.close(fig)


def test_accepts_hwc_uint8_images_and_no_labels() -> None:
    fig, ax = plt.subplots()
    draw_boxes(ax, torch.full((16, 16, 3), 255, dtype=torch.uint8), torch.zeros(0, 4), color="white")
    assert not ax.patches and not ax.texts
    pixels = ax.images[0].get_array()
    assert pixels is not None and float(pixels.max()) == 1.0
    plt.close(fig)


def test_mismatched_lengths_and_bad_images_raise() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        draw_boxes(ax, None, torch.zeros(2, 4), labels=torch.tensor([1]))
    with pytest.raises(ValueError, match="image must be"):
        draw_boxes(ax, torch.zeros(5, 5), torch.zeros(0, 4))
    plt.close(fig)
