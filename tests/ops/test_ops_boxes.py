"""Tests for mlcraft.ops.boxes against torchvision.ops and torchvision's BoxCoder."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
import torchvision.ops as tv
from torchvision.models.detection._utils import BoxCoder

from mlcraft.classroom.testing import assert_close
from mlcraft.ops.boxes import (
    BBOX_XFORM_CLIP,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
)

DTYPES = [torch.float32, torch.float64]
FORMATS = ("xyxy", "xywh", "cxcywh")
WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # Faster R-CNN's


def _random_boxes(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``(n, 4)`` xyxy boxes with ``x1 < x2``, ``y1 < y2``, overlapping often."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    size = torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 0.5
    return torch.cat([corner, corner + size], dim=1).to(dtype)


def _degenerate_boxes(dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(
        [
            [10, 10, 10, 20],  # zero width
            [10, 10, 20, 10],  # zero height
            [5, 5, 5, 5],  # a point
            [5, 5, 5, 5],  # the same point again (IoU 0/0)
            [0, 0, 10, 10],
            [10, 0, 20, 10],  # touches the previous one along an edge
            [10, 10, 20, 20],  # touches it at a corner
            [0, 0, 10, 10],  # identical to box 4
            [2, 2, 8, 8],  # nested in box 4
            [0, 0, 1e4, 1e4],  # large
        ],
        dtype=dtype,
    )


def _cases(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {
        "random": _random_boxes(50, dtype),
        "degenerate": _degenerate_boxes(dtype),
        "empty": torch.zeros(0, 4, dtype=dtype),
    }


CASES = ["random", "degenerate", "empty"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("in_fmt", "out_fmt"), list(itertools.permutations(FORMATS, 2)))
def test_box_convert_matches_torchvision(in_fmt: str, out_fmt: str, case: str, dtype: torch.dtype) -> None:
    boxes = tv.box_convert(_cases(dtype)[case], "xyxy", in_fmt)  # valid input in in_fmt
    ours = box_convert(boxes, in_fmt, out_fmt)
    assert_close(ours, tv.box_convert(boxes, in_fmt, out_fmt), msg=f"{in_fmt}->{out_fmt} {case}")
    # and back again
    assert_close(
        box_convert(ours, out_fmt, in_fmt),
        boxes,
        rtol=1e-5 if dtype == torch.float32 else 1e-12,
        atol=1e-4 if dtype == torch.float32 else 1e-10,
        msg="round trip",
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_box_convert_same_format_returns_a_copy(fmt: str) -> None:
    boxes = _random_boxes(5, torch.float32)
    out = box_convert(boxes, fmt, fmt)
    assert torch.equal(out, boxes) and out.data_ptr() != boxes.data_ptr()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_box_area_matches_torchvision(case: str, dtype: torch.dtype) -> None:
    boxes = _cases(dtype)[case]
    assert_close(box_area(boxes), tv.box_area(boxes), msg=case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("case1", "case2"), list(itertools.product(CASES, CASES)))
@pytest.mark.parametrize(
    ("ours", "theirs"), [(box_iou, tv.box_iou), (generalized_box_iou, tv.generalized_box_iou)], ids=["iou", "giou"]
)
def test_pairwise_iou_matches_torchvision(
    ours: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theirs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    case1: str,
    case2: str,
    dtype: torch.dtype,
) -> None:
    cases = _cases(dtype)
    boxes1, boxes2 = cases[case1], cases[case2]
    if case1 == case2 == "random":
        boxes2 = _random_boxes(30, dtype, seed=1)
    expected = theirs(boxes1, boxes2)
    assert_close(ours(boxes1, boxes2), expected, msg=f"{case1} x {case2}")  # NaN where torchvision has NaN


@pytest.mark.parametrize("dtype", DTYPES)
def test_iou_of_special_pairs(dtype: torch.dtype) -> None:
    boxes = _degenerate_boxes(dtype)
    iou, giou = box_iou(boxes, boxes), generalized_box_iou(boxes, boxes)
    assert iou[4, 7] == 1 and iou[4, 8] == pytest.approx(36 / 100) and iou[4, 5] == 0 and iou[4, 6] == 0
    assert giou[4, 5] == 0 and giou[4, 6] == pytest.approx(-0.5)  # corner contact: enclosing 400, union 200
    assert torch.isnan(iou[2, 3]) and torch.isnan(giou[2, 3])  # two points: 0 / 0 as in torchvision
    assert ((giou[~giou.isnan()] >= -1) & (giou[~giou.isnan()] <= 1)).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [(50, 80), (120, 40), (1, 1)])
@pytest.mark.parametrize("case", CASES)
def test_clip_boxes_matches_torchvision(case: str, size: tuple[int, int], dtype: torch.dtype) -> None:
    boxes = _cases(dtype)[case] - 20  # some boxes cross the top-left border, some the bottom-right
    assert_close(clip_boxes(boxes, size), tv.clip_boxes_to_image(boxes, size), msg=f"{case} {size}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", [WEIGHTS, (1.0, 1.0, 1.0, 1.0)])
def test_encode_decode_match_box_coder(weights: tuple[float, float, float, float], dtype: torch.dtype) -> None:
    boxes, anchors = _random_boxes(64, dtype, seed=2), _random_boxes(64, dtype, seed=3)
    coder = BoxCoder(weights=weights)
    deltas = encode_boxes(boxes, anchors, weights)
    assert_close(deltas, coder.encode_single(boxes, anchors), msg="encode")
    assert_close(decode_boxes(deltas, anchors, weights), coder.decode_single(deltas, anchors), msg="decode")
    tol = (1e-4, 1e-4) if dtype == torch.float32 else (1e-10, 1e-10)
    assert_close(decode_boxes(deltas, anchors, weights), boxes, rtol=tol[0], atol=tol[1], msg="round trip")


@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_clamps_log_scales_like_box_coder(dtype: torch.dtype) -> None:
    anchors = _random_boxes(4, dtype)
    deltas = torch.tensor([[0, 0, 100, 100], [1, -1, 60, -60], [0, 0, 1e4, 0], [0.5, 0.5, -3, 2]], dtype=dtype)
    coder = BoxCoder(weights=WEIGHTS)
    out = decode_boxes(deltas, anchors, WEIGHTS)
    assert torch.isfinite(out).all()
    assert_close(out, coder.decode_single(deltas, anchors), msg="clamped decode")
    widths = anchors[:, 2] - anchors[:, 0]
    assert_close((out[0, 2] - out[0, 0]) / widths[0], torch.tensor(1000 / 16, dtype=dtype), msg="clamp at log(1000/16)")
    assert coder.bbox_xform_clip == BBOX_XFORM_CLIP


def test_encode_decode_empty() -> None:
    empty = torch.zeros(0, 4)
    assert encode_boxes(empty, empty, WEIGHTS).shape == (0, 4)
    assert decode_boxes(empty, empty, WEIGHTS).shape == (0, 4)


BAD_SHAPES = [torch.zeros(4), torch.zeros(3, 3), torch.zeros(2, 4, 1), torch.zeros(2, 5)]


@pytest.mark.parametrize("bad", BAD_SHAPES, ids=lambda t: str(tuple(t.shape)))
def test_bad_shapes_raise(bad: torch.Tensor) -> None:
    good = _random_boxes(2, torch.float32)
    calls: list[Callable[[], object]] = [
        lambda: box_convert(bad, "xyxy", "xywh"),
        lambda: box_area(bad),
        lambda: clip_boxes(bad, (10, 10)),
        lambda: box_iou(bad, good),
        lambda: box_iou(good, bad),
        lambda: generalized_box_iou(bad, good),
        lambda: generalized_box_iou(good, bad),
        lambda: encode_boxes(bad, good),
        lambda: encode_boxes(good, bad),
        lambda: decode_boxes(bad, good),
        lambda: decode_boxes(good, bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
            call()


def test_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="box formats must be one of"):
        box_convert(_random_boxes(2, torch.float32), "xyxy", "yxyx")


@pytest.mark.parametrize("fn", [encode_boxes, decode_boxes], ids=["encode", "decode"])
def test_mismatched_counts_raise_value_error(fn: Callable[..., torch.Tensor]) -> None:
    with pytest.raises(ValueError):
        fn(_random_boxes(3, torch.float32), _random_boxes(2, torch.float32))


def test_one_anchor_for_many_boxes_raises() -> None:
    with pytest.raises(ValueError):
        encode_boxes(_random_boxes(3, torch.float32), _random_boxes(1, torch.float32))


def test_float16_areas_do_not_overflow() -> None:
    boxes = torch.tensor([[0.0, 0.0, 300.0, 300.0]], dtype=torch.float16)
    assert torch.isfinite(box_area(boxes)).all()
    assert_close(box_iou(boxes, boxes).float(), tv.box_iou(boxes, boxes), msg="float16 IoU")
