"""Anchors and matching against torchvision's AnchorGenerator and Matcher."""

from __future__ import annotations

import pytest
import torch
from torchvision import ops
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from mlcraft.models.anchors import BACKGROUND, IGNORE, base_anchors, grid_anchors, match_anchors


@pytest.mark.parametrize(
    ("sizes", "ratios", "feature", "stride"),
    [
        ((32,), (1.0,), (4, 5), (8, 8)),
        ((16, 32, 64), (0.5, 1.0, 2.0), (3, 7), (16, 16)),
        ((24, 48), (0.25, 1.5), (6, 2), (4, 8)),
    ],
)
def test_grid_anchors_equal_torchvision(
    sizes: tuple[int, ...], ratios: tuple[float, ...], feature: tuple[int, int], stride: tuple[int, int]
) -> None:
    generator = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
    image = torch.zeros(1, 3, feature[0] * stride[0], feature[1] * stride[1])
    fmap = torch.zeros(1, 8, *feature)
    [expected] = generator(ImageList(image, [tuple(image.shape[-2:])]), [fmap])
    got = grid_anchors(feature, stride, sizes, ratios)
    torch.testing.assert_close(got, expected, rtol=0, atol=0, msg="anchors differ from torchvision")
    assert got.shape == (feature[0] * feature[1] * len(sizes) * len(ratios), 4)


def test_base_anchors_keep_area_and_ratio() -> None:
    anchors = base_anchors((64,), (0.5, 1.0, 2.0), dtype=torch.float64)
    w, h = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), rtol=0.03, atol=0, msg="h/w")
    torch.testing.assert_close(w * h, torch.full((3,), 64.0**2, dtype=torch.float64), rtol=0.03, atol=0, msg="area")
    with pytest.raises(ValueError, match="positive"):
        base_anchors((0,), (1.0,))


def _random_boxes(n: int, generator: torch.Generator, spread: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * spread
    return torch.cat([xy, xy + torch.rand(n, 2, generator=generator) * 40 + 2], dim=1)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("low_quality", [True, False])
def test_match_anchors_equals_torchvision_matcher(seed: int, low_quality: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    anchors, gts = (
        _random_boxes(200, generator),
        _random_boxes(int(torch.randint(1, 8, (1,), generator=generator)), generator),
    )
    expected = Matcher(0.5, 0.4, allow_low_quality_matches=low_quality)(ops.box_iou(gts, anchors))
    got = match_anchors(anchors, gts, high=0.5, low=0.4, allow_low_quality=low_quality)
    assert torch.equal(got, expected), f"seed {seed}: {(got != expected).sum()} anchors differ"
    assert set(got.unique().tolist()) <= {BACKGROUND, IGNORE, *range(gts.shape[0])}


def test_every_ground_truth_gets_an_anchor_even_with_low_overlap() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    gts = torch.tensor([[5.0, 5.0, 30.0, 30.0]])  # IoU with anchor 0 is 25/700, far below low
    assert match_anchors(anchors, gts).tolist() == [0, BACKGROUND]
    assert match_anchors(anchors, gts, allow_low_quality=False).tolist() == [BACKGROUND, BACKGROUND]


def test_no_ground_truth_and_bad_thresholds() -> None:
    anchors = torch.rand(5, 2).repeat(1, 2) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    assert match_anchors(anchors, torch.zeros(0, 4)).tolist() == [BACKGROUND] * 5
    with pytest.raises(ValueError, match="low <= high"):
        match_anchors(anchors, anchors, high=0.3, low=0.5)
