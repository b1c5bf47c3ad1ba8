"""A synthetic object-detection set: circles, squares and triangles on cluttered backgrounds.

Detection needs images with known boxes, and a course that must run offline cannot download
COCO. This set is made on the fly, in the spirit of the "shapes" toy sets used to debug
detectors (e.g. the Mask R-CNN shapes sample): every image is a pure function of
``(seed, index)``, so two runs, two machines or two dataloader workers see the same pixels.

Knobs (see :class:`ShapesConfig`): the number of objects, their scale (``min_size`` to
``max_size`` pixels), background **clutter** (noise, strokes and blobs of colour that are not
objects), and **occlusion** (how much of an object's box later objects may cover; objects
drawn later are on top).

Samples follow torchvision's detection conventions: ``(image, target)`` with ``image`` a
``tv_tensors.Image`` and ``target["boxes"]`` a ``tv_tensors.BoundingBoxes`` in ``XYXY``
pixel coordinates, so ``torchvision.transforms.v2`` augmentations move the boxes with the
pixels. Labels are ``1..3`` (:data:`SHAPE_CLASSES`); ``0`` stays free for the background, as
torchvision's detection models expect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import Field, model_validator
from torch.utils.data import Dataset
from torchvision import tv_tensors

from mlcraft.config.base import FrozenConfig

__all__ = ["SHAPE_CLASSES", "ShapesConfig", "ShapesDetection", "make_shapes_image"]

#: Class names; a shape's label is its position here plus one (label 0 is the background).
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")

Target = dict[str, Any]
Transforms = Callable[[tv_tensors.Image, Target], tuple[Any, Target]]
Floats = NDArray[np.float32]

#: Placement attempts per object before it is dropped (only dense, no-occlusion scenes hit this).
_MAX_TRIES = 100


class ShapesConfig(FrozenConfig):
    """How the synthetic images look."""

    image_size: int = Field(default=128, ge=32, le=1024)  # square images, side in pixels
    min_objects: int = Field(default=1, ge=0)  # objects per image, drawn uniformly in [min, max]
    max_objects: int = Field(default=4, ge=1, le=64)
    min_size: int = Field(default=16, ge=4)  # object extent (box side) in pixels, uniform in [min, max]
    max_size: int = Field(default=48, ge=4)
    clutter: float = Field(default=0.0, ge=0.0, le=1.0)  # 0: plain gradient; 1: heavy noise, strokes, blobs
    occlusion: float = Field(default=0.0, ge=0.0, le=0.9)  # largest fraction of a box that later objects may cover

    @model_validator(mode="after")
    def _check_ranges(self) -> ShapesConfig:
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects ({self.min_objects}) > max_objects ({self.max_objects})")
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) > max_size ({self.max_size})")
        if self.max_size > self.image_size:
            raise ValueError(f"max_size ({self.max_size}) must fit in image_size ({self.image_size})")
        return self


def _shape_mask(kind: int, box: Floats, xs: Floats, ys: Floats) -> NDArray[np.bool_]:
    """Pixels (by their centres) inside the shape that exactly fills ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if kind == 1:  # circle
        return np.asarray((xs - cx) ** 2 + (ys - cy) ** 2 <= half**2)
    if kind == 2:  # square
        return np.asarray((xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2))
    # upright isosceles triangle: apex at the top centre, base along the bottom edge
    height = y2 - y1
    inside_rows = (ys >= y1) & (ys <= y2)
    half_width = half * (ys - y1) / height  # the triangle widens linearly from apex to base
    return np.asarray(inside_rows & (np.abs(xs - cx) <= half_width))


def _overlap(box: Floats, others: Floats) -> Floats:
    """Intersection area of ``box`` with each of ``others`` (K, 4)."""
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return np.asarray(w * h, dtype=np.float32)


def _place(rng: np.random.Generator, cfg: ShapesConfig, boxes: list[Floats]) -> Floats | None:
    """A box for a new object that keeps every earlier box at most ``cfg.occlusion`` covered."""
    s = cfg.image_size
    placed = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
    areas = (placed[:, 2] - placed[:, 0]) * (placed[:, 3] - placed[:, 1])
    # Area of each earlier box already under the boxes placed after it.
    covered = np.array([_overlap(placed[k], placed[k + 1 :]).sum() for k in range(len(boxes))], np.float32)
    # Approximation: coverage adds up over later objects (overlaps among them are counted twice),
    # which errs on the side of less occlusion than allowed.
    for _ in range(_MAX_TRIES):
        side = float(rng.integers(cfg.min_size, cfg.max_size + 1))
        x1, y1 = (float(v) for v in rng.uniform(0, s - side, size=2))
        box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
        inter = _overlap(box, placed)
        if cfg.occlusion == 0.0:
            if np.all(inter == 0):
                return box
        elif np.all(covered + inter <= cfg.occlusion * areas):
            return box
    return None


def _background(rng: np.random.Generator, cfg: ShapesConfig, xs: Floats, ys: Floats) -> Floats:
    s = cfg.image_size
    top, bottom = rng.uniform(0.0, 1.0, size=(2, 3)).astype(np.float32)
    t = (ys / s)[..., None]  # (S, S, 1): a vertical gradient between two random colours
    image = (1 - t) * top + t * bottom
    if cfg.clutter == 0.0:
        return np.asarray(image, dtype=np.float32)
    # Blobs and strokes of colour that are not objects, then pixel noise.
    for _ in range(int(rng.integers(0, 1 + round(8 * cfg.clutter)))):
        cx, cy = rng.uniform(0, s, size=2)
        rx, ry = rng.uniform(2, 4 + 10 * cfg.clutter, size=2)
        blob = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        image[blob] = rng.uniform(0, 1, size=3)
    for _ in range(int(rng.integers(0, 1 + round(6 * cfg.clutter)))):
        (ax, ay), (bx, by) = rng.uniform(0, s, size=(2, 2))
        length = max(np.hypot(bx - ax, by - ay), 1e-6)
        # distance of each pixel centre to the segment line, kept where the projection falls on it
        along = ((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / length**2
        dist = np.abs((xs - ax) * (by - ay) - (ys - ay) * (bx - ax)) / length
        image[(dist <= 1.0) & (along >= 0) & (along <= 1)] = rng.uniform(0, 1, size=3)
    image += rng.normal(0.0, 0.12 * cfg.clutter, size=image.shape).astype(np.float32)
    return np.asarray(image, dtype=np.float32)


def make_shapes_image(cfg: ShapesConfig, rng: np.random.Generator) -> tuple[Floats, Floats, NDArray[np.int64]]:
    """One image: ``(pixels (S, S, 3) float32 in [0, 1], boxes (N, 4) xyxy float32, labels (N,) int64)``.

    Each object's box is the tight extent of its shape, in continuous pixel coordinates (pixel
    ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``; a pixel is painted when its centre is inside).
    """
    s = cfg.image_size
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5  # pixel centres, (S, S) each
    image = _background(rng, cfg, xs, ys)
    boxes: list[Floats] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        box = _place(rng, cfg, boxes)
        if box is None:
            continue
        kind = int(rng.integers(1, len(SHAPE_CLASSES) + 1))
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        # Keep objects visible: push the colour away from the background under the box.
        under = image[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])].reshape(-1, 3).mean(0)
        if np.abs(colour - under).sum() < 0.6:
            colour = np.where(under > 0.5, under - 0.5, under + 0.5).astype(np.float32)
        image[_shape_mask(kind, box, xs, ys)] = colour
        boxes.append(box)
        labels.append(kind)
    pixels = np.clip(image, 0.0, 1.0).astype(np.float32)
    box_array = np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
    return pixels, box_array, np.asarray(labels, dtype=np.int64)


class ShapesDetection(Dataset[tuple[Any, Target]]):
    """``num_images`` synthetic detection samples, image ``i`` a pure function of ``(seed, i)``.

    Each sample is ``(image, target)``: ``image`` a ``tv_tensors.Image`` float32 ``(3, S, S)``
    in ``[0, 1]``; ``target = {"boxes": BoundingBoxes (N, 4) XYXY, "labels": int64 (N,) in
    1..3, "image_id": i}``. ``transforms`` (a ``torchvision.transforms.v2`` transform) is called
    as ``transforms(image, target)`` and moves the boxes with the pixels.
    """

    def __init__(
        self,
        num_images: int,
        config: ShapesConfig | None = None,
        *,
        seed: int = 0,
        transforms: Transforms | None = None,
    ) -> None:
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_images, self.seed, self.transforms = num_images, seed, transforms
        self.config = config or ShapesConfig()
        self.classes = SHAPE_CLASSES

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[Any, Target]:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        rng = np.random.default_rng([self.seed, index])  # independent of access order
        pixels, boxes, labels = make_shapes_image(self.config, rng)
        size = self.config.image_size
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())  # (3, S, S)
        target: Target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(boxes), format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(size, size)
            ),
            "labels": torch.from_numpy(labels),
            "image_id": index,
        }
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target
