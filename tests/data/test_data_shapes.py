"""The synthetic shapes set: deterministic, tight boxes, working knobs, transforms.v2 moves boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2

from mlcraft.data.shapes import SHAPE_CLASSES, ShapesConfig, ShapesDetection, _shape_mask, make_shapes_image


def _pixels(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return xs, ys


def test_sample_format() -> None:
    ds = ShapesDetection(4, seed=3)
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, 128, 128)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (128, 128)
    assert boxes.dtype == torch.float32 and boxes.shape[-1] == 4
    assert target["labels"].dtype == torch.int64 and target["labels"].shape == boxes.shape[:1]
    assert target["image_id"] == 0
    assert len(ds) == 4 and ds.classes == SHAPE_CLASSES == ("circle", "square", "triangle")


def test_same_seed_and_index_give_the_same_sample_in_any_order() -> None:
    a, b = ShapesDetection(6, seed=11), ShapesDetection(6, seed=11)
    forward = [a[i] for i in range(6)]
    backward = [b[i] for i in reversed(range(6))][::-1]
    for (im1, t1), (im2, t2) in zip(forward, backward, strict=True):
        assert torch.equal(im1, im2)
        assert torch.equal(t1["boxes"], t2["boxes"]) and torch.equal(t1["labels"], t2["labels"])
    assert torch.equal(a[-1][0], a[5][0]), "negative indices count from the end"
    assert not torch.equal(ShapesDetection(1, seed=12)[0][0], a[0][0]), "another seed must give other images"


def test_index_out_of_range_and_bad_arguments() -> None:
    with pytest.raises(IndexError, match="out of range"):
        ShapesDetection(3)[3]
    with pytest.raises(ValueError, match="num_images"):
        ShapesDetection(-1)
    with pytest.raises(ValueError, match="seed"):
        ShapesDetection(1, seed=-2)
    with pytest.raises(ValidationError, match="min_objects"):
        ShapesConfig(min_objects=5, max_objects=2)
    with pytest.raises(ValidationError, match="min_size"):
        ShapesConfig(min_size=40, max_size=20)
    with pytest.raises(ValidationError, match="image_size"):
        ShapesConfig(image_size=64, max_size=80)
    with pytest.raises(ValidationError):
        ShapesConfig(clutter=1.5)


@pytest.mark.parametrize(("label", "expected_fill"), [(1, np.pi / 4), (2, 1.0), (3, 0.5)])
def test_shapes_fill_their_box_as_their_geometry_says(label: int, expected_fill: float) -> None:
    xs, ys = _pixels(128)
    box = np.array([20.0, 30.0, 100.0, 110.0], np.float32)
    mask = _shape_mask(label, box, xs, ys)
    fill = mask.sum() / (80 * 80)
    assert abs(fill - expected_fill) < 0.02, f"{SHAPE_CLASSES[label - 1]} fills {fill:.3f} of its box"
    rows, cols = np.nonzero(mask)
    extent = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
    np.testing.assert_allclose(extent, box, atol=1.0, err_msg="the box must be the shape's tight extent")


def test_boxes_are_tight_inside_the_canvas_and_sized_by_the_scale_knob() -> None:
    cfg = ShapesConfig(image_size=96, min_objects=2, max_objects=5, min_size=10, max_size=30)
    ds = ShapesDetection(40, cfg, seed=5)
    sides = []
    for i in range(len(ds)):
        _, target = ds[i]
        boxes = target["boxes"].as_subclass(torch.Tensor)
        assert 0 <= len(boxes) <= 5
        assert torch.all(boxes[:, :2] >= 0) and torch.all(boxes[:, 2:] <= 96)
        assert torch.all(boxes[:, 2:] > boxes[:, :2])
        assert set(target["labels"].tolist()) <= {1, 2, 3}
        sides.append(boxes[:, 2] - boxes[:, 0])
    side = torch.cat(sides)
    assert side.min() >= 10 - 1e-4 and side.max() <= 30 + 1e-4  # float32 corners round the side
    assert side.max() - side.min() > 10, "sizes must spread over the range"


def test_every_class_appears_in_balance() -> None:
    # ``iter(ds)`` below is what ``for`` does anyway: the dataset iterates by ``__getitem__`` (no
    # ``__iter__``), which mypy accepts from ``iter()`` but not from a bare ``for``.
    labels = torch.cat([t["labels"] for _, t in iter(ShapesDetection(150, seed=0))])
    counts = torch.bincount(labels, minlength=4)[1:].double()
    assert counts.min() / counts.max() > 0.75, f"class counts {counts.tolist()}"


def test_no_occlusion_means_disjoint_boxes() -> None:
    ds = ShapesDetection(30, ShapesConfig(min_objects=4, max_objects=6, occlusion=0.0), seed=2)
    for _, target in iter(ds):
        boxes = target["boxes"].as_subclass(torch.Tensor).double()
        iou = box_iou(boxes, boxes)
        iou.fill_diagonal_(0)
        assert torch.all(iou == 0), "objects must not overlap when occlusion is 0"


def test_occlusion_is_bounded_and_happens() -> None:
    limit = 0.4
    cfg = ShapesConfig(min_objects=6, max_objects=8, min_size=24, max_size=48, occlusion=limit)
    overlapped = 0
    for _, target in iter(ShapesDetection(30, cfg, seed=4)):
        boxes = target["boxes"].as_subclass(torch.Tensor).numpy()
        for k, box in enumerate(boxes):
            later = np.zeros((128, 128), bool)  # pixels of box k under any later object's box
            for other in boxes[k + 1 :]:
                x1, y1 = np.floor(np.maximum(box[:2], other[:2])).astype(int)
                x2, y2 = np.ceil(np.minimum(box[2:], other[2:])).astype(int)
                if x2 > x1 and y2 > y1:
                    later[y1:y2, x1:x2] = True
            x1, y1, x2, y2 = box
            covered = later[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].sum()
            area = (x2 - x1) * (y2 - y1)
            # pixel rounding adds up to one pixel row/column per side
            assert covered <= limit * area + 2 * (x2 - x1 + y2 - y1) + 4
            overlapped += covered > 0
    assert overlapped > 10, "with occlusion allowed, objects must sometimes overlap"


def test_clutter_adds_structure_to_the_background() -> None:
    def roughness(clutter: float) -> float:
        cfg = ShapesConfig(min_objects=0, max_objects=1, clutter=clutter)
        images = torch.stack([im for im, _ in iter(ShapesDetection(20, cfg, seed=7))])
        return float((images[..., 1:] - images[..., :-1]).abs().mean())

    plain, busy = roughness(0.0), roughness(1.0)
    assert busy > 5 * plain, f"clutter 1.0 should be much rougher than 0.0: {busy:.4f} vs {plain:.4f}"


def test_make_shapes_image_with_no_objects() -> None:
    pixels, boxes, labels = make_shapes_image(ShapesConfig(min_objects=0, max_objects=1), np.random.default_rng(0))
    assert pixels.shape == (128, 128, 3) and boxes.shape[1] == 4 and labels.shape == boxes.shape[:1]
    empty = ShapesDetection(50, ShapesConfig(min_objects=0, max_objects=1), seed=0)
    assert any(len(t["labels"]) == 0 for _, t in iter(empty)), "min_objects=0 must give some empty images"


def test_transforms_v2_move_the_boxes_with_the_pixels() -> None:
    plain = ShapesDetection(3, seed=9)
    flipped = ShapesDetection(3, seed=9, transforms=v2.RandomHorizontalFlip(p=1.0))
    for i in range(3):
        (image, target), (f_image, f_target) = plain[i], flipped[i]
        assert torch.equal(f_image, image.flip(-1))
        boxes = target["boxes"].as_subclass(torch.Tensor)
        expected = torch.stack([128 - boxes[:, 2], boxes[:, 1], 128 - boxes[:, 0], boxes[:, 3]], dim=-1)
        torch.testing.assert_close(f_target["boxes"].as_subclass(torch.Tensor), expected, msg="flip must mirror boxes")
        assert torch.equal(f_target["labels"], target["labels"])

    resized = ShapesDetection(2, seed=9, transforms=v2.Resize((64, 64)))
    image, target = resized[0]
    assert image.shape == (3, 64, 64) and tuple(target["boxes"].canvas_size) == (64, 64)
    torch.testing.assert_close(
        target["boxes"].as_subclass(torch.Tensor),
        plain[0][1]["boxes"].as_subclass(torch.Tensor) / 2,
        msg="resize halves boxes",
    )
