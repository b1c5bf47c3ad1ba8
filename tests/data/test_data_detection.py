"""Batching detection samples, and the Pascal VOC route tested on a tiny VOC tree made here."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import cast

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from mlcraft.data.detection import VOC_CLASSES, collate_detection, voc_detection
from mlcraft.data.shapes import ShapesDetection


def test_collate_stacks_equal_images_and_keeps_targets_as_a_list() -> None:
    ds = ShapesDetection(5, seed=1)
    images, targets = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_detection)))
    assert type(images) is torch.Tensor and images.shape == (3, 3, 128, 128)
    assert isinstance(targets, list) and len(targets) == 3
    for k in range(3):
        assert torch.equal(images[k], ds[k][0].as_subclass(torch.Tensor))
        assert torch.equal(targets[k]["boxes"], ds[k][1]["boxes"])


def test_collate_keeps_images_of_different_sizes_as_a_list() -> None:
    small = (torch.zeros(3, 8, 8), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)})
    big = (torch.zeros(3, 16, 8), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)})
    images, targets = collate_detection([small, big])
    assert isinstance(images, list) and [im.shape for im in images] == [(3, 8, 8), (3, 16, 8)]
    assert len(targets) == 2
    with pytest.raises(ValueError, match="empty batch"):
        collate_detection([])


_XML = """<annotation><folder>VOC2012</folder><filename>{name}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
_OBJECT = """<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"""


def _fake_voc(root: Path) -> dict[str, list[tuple[str, tuple[int, int, int, int]]]]:
    """A two-image VOC2012 tree in the layout torchvision reads."""
    base = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / folder).mkdir(parents=True)
    images = {
        "2012_000001": [("dog", (10, 20, 50, 60)), ("person", (5, 5, 30, 70))],
        "2012_000002": [("tvmonitor", (0, 0, 40, 30))],
    }
    for name, objects in images.items():
        Image.new("RGB", (64, 48), color=(200, 10, 10)).save(base / "JPEGImages" / f"{name}.jpg")
        xml = _XML.format(
            name=name,
            w=64,
            h=48,
            objects="".join(_OBJECT.format(cls=c, x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for c, b in objects),
        )
        (base / "Annotations" / f"{name}.xml").write_text(xml)
    (base / "ImageSets" / "Main" / "train.txt").write_text("\n".join(images) + "\n")
    return images


def test_voc_samples_have_the_shapes_format(tmp_path: Path) -> None:
    expected = _fake_voc(tmp_path)
    ds = voc_detection(tmp_path, year="2012", image_set="train")
    assert len(cast(Sized, ds)) == 2  # a map-style dataset, typed as the bare Dataset
    for index, objects in enumerate(expected.values()):
        image, target = ds[index]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32 and image.shape == (3, 48, 64)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
        assert target["boxes"].dtype == torch.float32 and tuple(target["boxes"].canvas_size) == (48, 64)
        boxes = torch.tensor([b for _, b in objects], dtype=torch.float32)
        labels = torch.tensor([1 + VOC_CLASSES.index(c) for c, _ in objects])
        torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), boxes, msg="boxes as in the XML")
        assert torch.equal(target["labels"], labels) and target["image_id"] == index
    assert len(VOC_CLASSES) == 20


def test_voc_transforms_move_boxes(tmp_path: Path) -> None:
    _fake_voc(tmp_path)
    ds = voc_detection(tmp_path, transforms=v2.RandomHorizontalFlip(p=1.0))
    _, target = ds[1]
    torch.testing.assert_close(
        target["boxes"].as_subclass(torch.Tensor), torch.tensor([[24.0, 0.0, 64.0, 30.0]]), msg="flipped box"
    )


def test_voc_without_data_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True"):
        voc_detection(tmp_path / "nowhere")
