"""Batching detection samples, and the real-data route (Pascal VOC) for learners with a network.

Detection targets have a different number of boxes per image, so a batch keeps them as a list
of dicts, as torchvision's detection reference scripts do. Pascal VOC (Everingham et al., 2010)
loads through ``torchvision.datasets.VOCDetection`` wrapped for ``transforms.v2``, which gives
exactly the sample format of :class:`mlcraft.data.shapes.ShapesDetection`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["VOC_CLASSES", "collate_detection", "voc_detection"]

#: Pascal VOC's 20 classes; a box's label is its position here plus one (0 is the background).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def collate_detection(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
    """``[(image, target), ...]`` -> ``(images, [target, ...])``.

    Images of one size are stacked into a ``(B, C, H, W)`` tensor; images of different sizes
    stay a list (torchvision's detection models take either). Targets stay a list of dicts.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    if all(isinstance(im, torch.Tensor) and im.shape == images[0].shape for im in images):
        return torch.stack([im.as_subclass(torch.Tensor) for im in images]), targets
    return images, targets


class _VocLabels(Dataset[tuple[Any, dict[str, Any]]]):
    """VOC samples as ``(Image float in [0, 1], {"boxes", "labels" 1..20, "image_id"})``."""

    def __init__(self, wrapped: Dataset[Any], transforms: Callable[..., Any] | None) -> None:
        self.wrapped, self.transforms = wrapped, transforms

    def __len__(self) -> int:
        return len(self.wrapped)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        image, target = self.wrapped[index]
        image = v2.functional.to_dtype(v2.functional.to_image(image), torch.float32, scale=True)
        boxes = target["boxes"]  # integer pixel corners as read from the XML
        target = {
            "boxes": tv_tensors.wrap(boxes.as_subclass(torch.Tensor).to(torch.float32), like=boxes),
            "labels": target["labels"].to(torch.int64),
            "image_id": index,
        }
        if self.transforms is not None:
            return self.transforms(image, target)  # type: ignore[no-any-return]
        return image, target


def voc_detection(
    root: str | Path,
    *,
    year: str = "2012",
    image_set: str = "train",
    download: bool = False,
    transforms: Callable[..., Any] | None = None,
) -> Dataset[tuple[Any, dict[str, Any]]]:
    """Pascal VOC detection in the same sample format as ``ShapesDetection``.

    ``root`` holds (or receives, with ``download=True``; about 2 GB for 2012) the
    ``VOCdevkit/VOC<year>`` folder. Labels are ``1 + VOC_CLASSES.index(name)``. Objects marked
    "difficult" are kept, as torchvision's wrapper keeps them.
    """
    from torchvision.datasets import VOCDetection, wrap_dataset_for_transforms_v2

    root = Path(root).expanduser()
    if not download and not (root / "VOCdevkit" / f"VOC{year}").is_dir():
        raise FileNotFoundError(
            f"no VOCdevkit/VOC{year} under {root}; pass download=True (needs a network) or point root at a copy"
        )
    dataset = VOCDetection(str(root), year=year, image_set=image_set, download=download)
    # torchvision's wrapper turns the XML annotations into BoundingBoxes and 1-based label ids
    # (it numbers classes in VOC's order with index 0 for the background).
    wrapped = wrap_dataset_for_transforms_v2(dataset, target_keys=("boxes", "labels"))
    return _VocLabels(wrapped, transforms)
