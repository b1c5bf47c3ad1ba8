# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Object detection
#
# A classifier says *what* is in an image. A detector says what is there, *where*, and how many:
# a list of boxes, each with a class and a score. Every piece of a detector is small, and this
# lesson builds each one by hand, checks it against `torchvision` or `pycocotools`, and then
# imports the `mlcraft` version. It comes in two parts, with a natural break between them.
#
# **Part I · Boxes, NMS and the metric** (reading about 55 min)
#
# 1. a short CNN recap: convolution, stride, receptive field, and why detection needs more;
# 2. the data: synthetic shapes with known boxes, and augmentations that move the boxes;
# 3. boxes: formats, area, clipping;
# 4. IoU, the measure of overlap everything else rests on (and GIoU);
# 5. non-maximum suppression (NMS): from many overlapping guesses to one box per object;
# 6. anchors and matching: which prediction is responsible for which object, and DETR's
#    one-to-one Hungarian matching, which needs no NMS;
# 7. the metric: precision–recall curves and COCO's AP, checked against `pycocotools`.
#
# **Part II · Training a detector and the library route** (reading about 35 min)
#
# 8. the detector's loss built by hand (focal loss, FCOS targets and centerness) and checked
#    against torchvision's FCOS; then training a small detector on the CPU, and its predictions
#    before and after;
# 9. the library route (torchvision's Faster R-CNN) and the real-data route.
#
# Everything runs offline on a CPU: the images are generated here. The reference code lives in
# `mlcraft.ops` (boxes, NMS), `mlcraft.evaluation` (COCO metrics), `mlcraft.models` (anchors, set
# matching, the detector and its loss), `mlcraft.recipes` (training and evaluating it) and
# `mlcraft.data` (the shapes set).
#
# **You will be able to…**
#
# - work out a convolution's output shape and a backbone's receptive field by hand; convert boxes
#   between `xyxy`, `xywh` and `cxcywh` and compute all-pairs IoU and GIoU, equal to `torchvision.ops`;
# - write greedy NMS and its class-aware version, choose an IoU threshold, and explain why tied
#   scores can change what is kept;
# - assign training targets three ways: anchors matched by IoU (with the low-quality rule and box
#   deltas), FCOS locations inside a box, and DETR's one-to-one Hungarian matching, and say why
#   the last needs no NMS;
# - compute precision, recall and 101-point AP by hand for a ranked list of detections, and COCO's
#   twelve numbers equal to `pycocotools`;
# - write the focal loss and FCOS's regression and centerness targets from their formulas, and
#   reproduce torchvision's FCOS loss terms from the same matches;
# - train a small FCOS detector on a CPU, evaluate it with COCO AP per class and per IoU threshold,
#   find its errors with a detection confusion matrix, and run torchvision's Faster R-CNN in
#   training and eval mode.
#
# **Prerequisites**: lessons `00_orientation` (the course set-up) and `01_training_loops` (the
# `Trainer`, warm-up and cosine decay, gradient clipping and autocast, which `train_detector` uses
# in section 8). Outside the course: PyTorch tensors, indexing with boolean masks and
# broadcasting; what a convolution layer is (section 1 recaps it); precision and recall.
#
# **Time**: reading about 90 min (Part I about 55 min, Part II about 35 min); exercise
# `exercises/03_detection` about 120 min; running the whole notebook took 55 s on a 2-core CPU (its
# cells, under `pytest --nbval-lax` with one intra-op thread and two notebooks at a time); the full
# 400-step training run (`FULL_RUN`, on by default on a GPU) adds about 1 min; GPU: not measured.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %%
import itertools
import json
import math
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from matplotlib.patches import Rectangle
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision import ops
from torchvision.models.detection import FCOS
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.transforms import v2

from mlcraft.config import TrainingConfig
from mlcraft.data import SHAPE_CLASSES, VOC_CLASSES, ShapesConfig, ShapesDetection, collate_detection, voc_detection
from mlcraft.evaluation import average_precision, coco_evaluate, precision_recall_curve
from mlcraft.evaluation.coco import IOU_THRESHOLDS, STAT_NAMES, run_cocoeval
from mlcraft.models import (
    BACKGROUND,
    IGNORE,
    DetectorConfig,
    ShapesDetector,
    fasterrcnn_for_shapes,
    fcos_targets,
    grid_anchors,
    match_anchors,
    sigmoid_focal_loss,
)
from mlcraft.models.detection_loss import centerness_target
from mlcraft.models.set_matching import hungarian_match, matching_cost
from mlcraft.ops import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    nms,
)
from mlcraft.recipes import DEFAULT_DETECTOR_TRAINING, evaluate_detector, train_detector
from mlcraft.utils import best_device, configure_logging, draw_boxes, seed_everything

# Quiet the trainer's per-step log lines. Any time works: loggers read the level when they log.
configure_logging("WARNING")

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3})
device = best_device()
print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads")


# %% [markdown]
# # Part I · Boxes, NMS and the metric
#
# ## 1. A short CNN recap
#
# ### 1.1 Convolution is a sliding dot product
#
# A 2-D convolution layer slides a small filter over the image. At each position it takes the
# dot product of the filter with the patch under it; with `O` filters, each position gives `O`
# numbers. (Strictly, this is cross-correlation: PyTorch does not flip the filter, and since the
# filter is learned it makes no difference.) With stride `s` the filter jumps `s` pixels at a
# time, and with padding `p` the image gets a border of zeros, so the output has
# $\lfloor (H + 2p - k) / s \rfloor + 1$ rows. Written out as loops:
#
# **Predict, then run.** A 3-channel 9 × 9 image and 4 filters of 3 × 3: what output shape do
# (stride 1, padding 0), (stride 1, padding 1) and (stride 2, padding 1) give?


# %%
def conv2d_loop(x, weight, stride=1, padding=0):
    """x (C, H, W), weight (O, C, k, k) -> (O, H_out, W_out): one dot product per filter and position."""
    x = F.pad(x, (padding, padding, padding, padding))  # zeros around the border
    out_channels, _, k, _ = weight.shape
    h_out, w_out = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = torch.zeros(out_channels, h_out, w_out, dtype=x.dtype)
    for o in range(out_channels):
        for i in range(h_out):
            for j in range(w_out):
                patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k]  # (C, k, k)
                out[o, i, j] = (patch * weight[o]).sum()
    return out


g = torch.Generator().manual_seed(0)
x = torch.randn(3, 9, 9, generator=g, dtype=torch.float64)  # a 3-channel 9×9 "image"
w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)  # 4 filters of 3×3
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    ours = conv2d_loop(x, w, stride, padding)
    torch.testing.assert_close(ours, F.conv2d(x[None], w, stride=stride, padding=padding)[0], rtol=1e-12, atol=1e-12)
    print(f"stride {stride}, padding {padding}: (3, 9, 9) -> {tuple(ours.shape)}, equal to F.conv2d")


# %% [markdown]
# ### 1.2 Stride and receptive field
#
# A detection backbone stacks such layers; every stride-2 layer halves the resolution. Two numbers
# describe what one cell of a feature map "sees":
#
# - its **stride** (the jump $j$): how many input pixels apart two neighbouring cells are;
# - its **receptive field** $r$: the size of the input patch that can influence it. Each layer
#   with kernel $k$ and stride $s$ grows it by $(k - 1)$ steps of the current jump:
#   $r \leftarrow r + (k - 1)\,j$, then $j \leftarrow j\,s$.
#
# Here is the backbone of the detector we train in section 8: four stages, each a 3×3 convolution
# of stride 2 followed by a 3×3 convolution of stride 1.
#
# **Predict, then run.** Apply the rule layer by layer: what are the stride and the receptive
# field after the third stage, and after the fourth?


# %%
backbone_layers = [(f"stage {n} {part}", 3, s) for n in range(1, 5) for part, s in (("conv s2", 2), ("conv s1", 1))]
receptive_field, jump = 1, 1
print(f"{'layer':18} {'kernel':>6} {'stride so far':>14} {'receptive field':>16}")
for name, k, s in backbone_layers:
    receptive_field += (k - 1) * jump
    jump *= s
    print(f"{name:18} {k:>6} {jump:>14} {receptive_field:>13} px")


# %% [markdown]
# Let's check the formula by asking autograd: the gradient of one output cell with respect to the
# input is non-zero exactly on the pixels that influence it. With all weights set to 1 nothing
# can cancel, so the non-zero region is the whole receptive field. We use the first three stages
# (stride 8) and a cell in the middle of the map, away from the zero padding:
#
# **Predict, then run.** Will every pixel of that patch influence the cell equally, or will some
# matter more than others? Which ones?


# %%
probe = nn.Sequential(*(nn.Conv2d(1, 1, k, stride=s, padding=k // 2, bias=False) for _, k, s in backbone_layers[:6]))
for conv in probe:
    nn.init.ones_(conv.weight)
image_in = torch.zeros(1, 1, 128, 128, requires_grad=True)
fmap = probe(image_in)  # (1, 1, 16, 16): stride 8
cell = (8, 8)
fmap[0, 0, cell[0], cell[1]].backward()
influence = image_in.grad[0, 0]  # (128, 128)
rows, cols = torch.nonzero(influence, as_tuple=True)
measured = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
print(f"feature map {tuple(fmap.shape)}; cell {cell} is influenced by a {measured[0]}×{measured[1]} px patch")
assert measured == (43, 43), measured  # the formula's receptive field after three stages

shapes_image = ShapesDetection(1, ShapesConfig(clutter=0.3), seed=3)[0][0]
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
axes[0].imshow(shapes_image.permute(1, 2, 0))
for v in range(0, 129, 8):  # the stride-8 grid: one feature-map cell per square
    axes[0].axvline(v - 0.5, color="white", lw=0.3)
    axes[0].axhline(v - 0.5, color="white", lw=0.3)
top, left = int(rows.min()), int(cols.min())
axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), 43, 43, fill=False, color="red", lw=2))
axes[0].add_patch(Rectangle((cell[1] * 8 - 0.5, cell[0] * 8 - 0.5), 8, 8, color="red", alpha=0.6))
axes[0].set_title("one stride-8 cell (filled) and its 43 px receptive field", fontsize=9)
axes[1].imshow(influence / influence.max(), cmap="magma")
axes[1].set_title("how much each input pixel influences that cell", fontsize=9)
for ax in axes:
    ax.grid(False)
    ax.set_axis_off()
plt.tight_layout()
plt.show()


# %% [markdown]
# Two things to notice. The 43 px receptive field at stride 8 is about the size of our largest
# objects (48 px), so a cell at the centre of a large shape sees little beyond it; that is why the
# detector of section 8 also merges in the fourth stage (stride 16, receptive field 91 px), the way
# a feature pyramid network (FPN) does. And the influence is far from uniform: pixels near the
# centre reach the cell through many more paths than those at the border. The *effective*
# receptive field is smaller than the theoretical one.
#
# ### 1.3 Why detection needs more than classification
#
# A classifier ends with global pooling: average the feature map over all positions, then a linear
# layer. Convolutions are translation-**equivariant** (shift the image, and the feature map shifts
# the same way), so the pooled vector is translation-**invariant**: it cannot say *where* anything
# is. With circular padding this is exact, as a check shows:


# %%
torch.manual_seed(0)
features = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")
)
with torch.no_grad():
    img = shapes_image[None]  # (1, 3, 128, 128)
    moved = torch.roll(img, shifts=(20, -35), dims=(2, 3))  # the same picture, shifted
    fmap_a, fmap_b = features(img), features(moved)  # (1, 8, 128, 128) each
torch.testing.assert_close(torch.roll(fmap_a, shifts=(20, -35), dims=(2, 3)), fmap_b, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(fmap_a.mean(dim=(2, 3)), fmap_b.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
print("feature map: shifts with the image (equivariant); pooled vector: unchanged (invariant)")


# %% [markdown]
# A detector therefore keeps the spatial map and makes a prediction at *every* location: "is there
# an object near here, of which class, and where exactly are its edges?". That raises the
# questions the rest of the lesson answers. How do we describe and compare boxes (sections 3–4)?
# Neighbouring locations all see the same object, so how do we keep one box per object
# (section 5)? During training, which location should predict which object (section 6)? And with
# a variable number of boxes per image, what does "accuracy" even mean (section 7)?
#
# ## 2. The data
#
# `mlcraft.data.ShapesDetection` draws circles, squares and triangles on coloured backgrounds.
# Every image is a pure function of `(seed, index)`, so it needs no download and is the same on
# every machine. Samples follow torchvision's conventions: the image is a `tv_tensors.Image`,
# float in [0, 1], and the target holds `BoundingBoxes` in `xyxy` pixel coordinates and labels
# 1..3 (0 is reserved for the background, as torchvision's detection models expect).


# %%
data = ShapesDetection(8, ShapesConfig(), seed=0)
image, target = data[0]
print(f"image: {type(image).__name__} {tuple(image.shape)} {image.dtype}, values in [{image.min():.2f}, {image.max():.2f}]")
print(f"boxes: {type(target['boxes']).__name__}, format {target['boxes'].format.name}, canvas {target['boxes'].canvas_size}")
print(target["boxes"].as_subclass(torch.Tensor))
print(f"labels: {target['labels'].tolist()} = {[SHAPE_CLASSES[i - 1] for i in target['labels']]}")

fig, axes = plt.subplots(2, 4, figsize=(12, 6.2))
for i, ax in enumerate(axes.flat):
    image, target = data[i]
    draw_boxes(ax, image, target["boxes"], target["labels"], class_names=SHAPE_CLASSES, title=f"image {i}")
plt.tight_layout()
plt.show()


# %% [markdown]
# Each box is the tight extent of its shape. Three knobs of `ShapesConfig` make the task harder:
# **clutter** (noise, blobs and strokes that are not objects), **occlusion** (how much of an
# object later objects may cover) and **scale** (`min_size` to `max_size`, the side of the boxes
# in pixels). One row per knob:


# %%
knobs = {
    "clutter": [{"clutter": c} for c in (0.0, 0.3, 0.6, 1.0)],
    "occlusion": [{"occlusion": o, "min_objects": 6, "max_objects": 8} for o in (0.0, 0.3, 0.6, 0.9)],
    "scale": [{"min_size": lo, "max_size": hi} for lo, hi in ((8, 16), (16, 32), (32, 64), (64, 96))],
}
fig, axes = plt.subplots(3, 4, figsize=(12, 9.5))
for row, settings in zip(axes, knobs.values(), strict=True):
    for ax, setting in zip(row, settings, strict=True):
        image, target = ShapesDetection(1, ShapesConfig(**setting), seed=1)[0]
        title = ", ".join(f"{k}={v}" for k, v in setting.items() if k in ("clutter", "occlusion", "min_size", "max_size"))
        draw_boxes(ax, image, target["boxes"], target["labels"], class_names=SHAPE_CLASSES, title=title)
plt.tight_layout()
plt.show()


# %% [markdown]
# ### Augmentations must move the boxes
#
# Flip an image and its boxes must flip too. `torchvision.transforms.v2` does this for us: because
# the boxes are `BoundingBoxes`, each transform knows to apply the same geometry to them.
# `SanitizeBoundingBoxes` then removes boxes that became too small or left the image, *and their
# labels*. A horizontal flip is simple enough to check by hand: $x_1' = W - x_2$, $x_2' = W - x_1$.
#
# **Predict, then run.** After a rotation of up to 20°, will the new boxes fit the rotated shapes
# as tightly as the original boxes fit theirs, or be looser? What happens to an object pushed out
# of the frame entirely?


# %%
image, target = data[1]
flipped_image, flipped = v2.RandomHorizontalFlip(p=1.0)(image, target)
W = image.shape[-1]
boxes = target["boxes"].as_subclass(torch.Tensor)
by_hand = torch.stack([W - boxes[:, 2], boxes[:, 1], W - boxes[:, 0], boxes[:, 3]], dim=1)
torch.testing.assert_close(flipped["boxes"].as_subclass(torch.Tensor), by_hand, rtol=0, atol=1e-5)
torch.testing.assert_close(flipped_image.as_subclass(torch.Tensor), image.flip(-1).as_subclass(torch.Tensor), rtol=0, atol=0)
print("v2.RandomHorizontalFlip moves the boxes exactly as x1' = W - x2, x2' = W - x1")

augment = v2.Compose(
    [
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomAffine(degrees=20, translate=(0.15, 0.15), scale=(0.7, 1.2)),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=4),
    ]
)
augmented = ShapesDetection(8, ShapesConfig(), seed=0, transforms=augment)
torch.manual_seed(1)  # v2 transforms draw from torch's global generator
fig, axes = plt.subplots(2, 4, figsize=(12, 6.2))
for i in range(4):
    image, target = data[i]
    draw_boxes(axes[0, i], image, target["boxes"], target["labels"], class_names=SHAPE_CLASSES, title=f"image {i}")
    image, target = augmented[i]
    draw_boxes(axes[1, i], image, target["boxes"], target["labels"], class_names=SHAPE_CLASSES, title=f"image {i}, augmented")
plt.tight_layout()
plt.show()


# %% [markdown]
# Look at the rotated shapes: the new box is the box around the *rotated box*, not around the
# rotated shape, so it is looser than a box drawn by hand. Rotations beyond a few degrees teach a
# detector sloppy boxes; flips, shifts and scaling are exact. Objects pushed partly out of the
# frame get clipped boxes, and objects pushed out entirely disappear with their labels.
#
# ## 3. Boxes
#
# Three formats are common, and mixing them up is one of the most frequent detection bugs (the
# model trains, the numbers are just bad):
#
# - `xyxy`: corners $(x_1, y_1, x_2, y_2)$; torchvision's models and ops;
# - `xywh`: top-left corner, width, height; COCO's json files;
# - `cxcywh`: centre, width, height; what box regressions and DETR predict.
#
# Coordinates are continuous: a box from $x_1 = 10$ to $x_2 = 20$ is 10 px wide (no "+1").
#
# **Predict, then run.** Write the box $(30, 40, 90, 70)$ in `xywh` and in `cxcywh` before the cell
# prints them.


# %%
def xyxy_to_xywh(b):
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def xywh_to_xyxy(b):
    x, y, w, h = b.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def xyxy_to_cxcywh(b):
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def random_boxes(n, size=128.0, generator=None):
    """n valid xyxy boxes (x2 > x1, y2 > y1) inside a size × size image, float64."""
    corners = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 0.8
    sides = 4 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 0.4
    return torch.cat((corners, corners + sides), dim=1)


boxes = random_boxes(100, generator=g)
for fmt, to_fmt, from_fmt in [("xywh", xyxy_to_xywh, xywh_to_xyxy), ("cxcywh", xyxy_to_cxcywh, cxcywh_to_xyxy)]:
    converted = to_fmt(boxes)
    torch.testing.assert_close(converted, ops.box_convert(boxes, "xyxy", fmt), rtol=0, atol=1e-12)
    torch.testing.assert_close(from_fmt(converted), boxes, rtol=0, atol=1e-12)  # round trip
    torch.testing.assert_close(box_convert(boxes, "xyxy", fmt), converted, rtol=0, atol=1e-12)
    torch.testing.assert_close(box_convert(converted, fmt, "xyxy"), boxes, rtol=0, atol=1e-12)
print("hand-written conversions = torchvision.ops.box_convert = mlcraft's box_convert, both ways")

box = torch.tensor([[30.0, 40.0, 90.0, 70.0]])
for fmt in ("xyxy", "xywh", "cxcywh"):
    print(f"{fmt:>6}: {box_convert(box, 'xyxy', fmt)[0].tolist()}")


# %% [markdown]
# Area is width × height. Clipping to the image clamps the x coordinates to $[0, W]$ and the y
# coordinates to $[0, H]$; a box entirely outside ends up with zero width or height, which is why
# clipping is usually followed by removing empty boxes.
#
# **Predict, then run.** Clip the three boxes of the cell, `(-10, 20, 50, 140)`, `(100, -5, 150, 30)`
# and `(130, 10, 160, 40)`, to a 128 × 128 image. What is the area of each afterwards?


# %%
def area_by_hand(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def clip_by_hand(b, height, width):
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


torch.testing.assert_close(area_by_hand(boxes), ops.box_area(boxes), rtol=0, atol=1e-9)
torch.testing.assert_close(box_area(boxes), ops.box_area(boxes), rtol=0, atol=1e-9)

spilling = torch.tensor([[-10.0, 20.0, 50.0, 140.0], [100.0, -5.0, 150.0, 30.0], [130.0, 10.0, 160.0, 40.0]])
clipped = clip_by_hand(spilling, 128, 128)
torch.testing.assert_close(clipped, ops.clip_boxes_to_image(spilling, (128, 128)), rtol=0, atol=0)
torch.testing.assert_close(clip_boxes(spilling, (128, 128)), clipped, rtol=0, atol=0)
for before, after, a in zip(spilling.tolist(), clipped.tolist(), area_by_hand(clipped).tolist(), strict=True):
    print(f"{before} -> clipped {after}, area {a:.0f}")


# %% [markdown]
# The third box lies entirely right of the image: after clipping it has width 0, area 0.
#
# ## 4. Intersection over union
#
# How well does a predicted box fit an object? The standard answer is the **intersection over
# union**: the area the two boxes share, divided by the area they cover together. It is 1 for
# identical boxes and 0 for boxes that do not overlap, and it does not depend on the size of the
# boxes, so a 3 px error on a small object costs more than on a large one. First for one pair, in
# plain Python:


# %%
def iou_pair(a, b):
    """IoU of two xyxy boxes, each a list of 4 floats."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))  # overlap of the x ranges, 0 if none
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def iou_loop(boxes1, boxes2):
    """(N, M) IoU matrix, one pair at a time."""
    return torch.tensor([[iou_pair(a, b) for b in boxes2.tolist()] for a in boxes1.tolist()], dtype=torch.float64)


# %% [markdown]
# Detectors compare hundreds of predictions with every ground-truth box, so we want all pairs at
# once. Broadcasting does it: index the first set as `(N, 1, 2)` and the second as `(1, M, 2)`, and
# the max/min of the corners is an `(N, M, 2)` tensor.
#
# **Predict, then run.** For 60 boxes against 50, how many times faster will the broadcast version
# be than the Python loop: about 2, 20 or 200 times?


# %%
def iou_matrix(boxes1, boxes2):
    """(N, 4) and (M, 4) xyxy boxes -> (N, M) pairwise IoU."""
    area1, area2 = area_by_hand(boxes1), area_by_hand(boxes2)  # (N,), (M,)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)  # (N, M, 2): negative means no overlap -> 0
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    return inter / (area1[:, None] + area2[None, :] - inter)  # (N, M)


boxes1, boxes2 = random_boxes(60, generator=g), random_boxes(50, generator=g)
start = time.perf_counter()
loop_result = iou_loop(boxes1, boxes2)
loop_seconds = time.perf_counter() - start
start = time.perf_counter()
vector_result = iou_matrix(boxes1, boxes2)
vector_seconds = time.perf_counter() - start
reference = ops.box_iou(boxes1, boxes2)
torch.testing.assert_close(loop_result, reference, rtol=0, atol=1e-12)
torch.testing.assert_close(vector_result, reference, rtol=0, atol=1e-12)
torch.testing.assert_close(box_iou(boxes1, boxes2), reference, rtol=0, atol=1e-12)
print(f"(60, 4) × (50, 4) -> {tuple(vector_result.shape)}; loop, broadcast, torchvision and mlcraft agree to 1e-12")
print(f"loop {loop_seconds * 1e3:.1f} ms, broadcast {vector_seconds * 1e3:.2f} ms ({loop_seconds / vector_seconds:.0f}x faster)")


# %% [markdown]
# Random boxes rarely hit the edge cases, so test them on purpose:
#
# **Predict, then run.** What IoU do two boxes that only touch along an edge have? A 20 × 20 box
# inside a 40 × 40 box? Two 40 × 40 boxes shifted by half their width? And two boxes of zero area
# at the same place?


# %%
edge_cases = {
    "identical": ([10, 10, 50, 50], [10, 10, 50, 50], 1.0),
    "disjoint": ([10, 10, 50, 50], [60, 60, 90, 90], 0.0),
    "touching edges": ([10, 10, 50, 50], [50, 10, 90, 50], 0.0),
    "one inside the other": ([10, 10, 50, 50], [20, 20, 40, 40], 400 / 1600),
    "half shifted": ([0, 0, 40, 40], [20, 0, 60, 40], 800 / 2400),
}
for name, (a, b, expected) in edge_cases.items():
    pair = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    values = [iou_pair(a, b), iou_matrix(*pair).item(), ops.box_iou(*pair).item(), box_iou(*pair).item()]
    torch.testing.assert_close(torch.tensor(values, dtype=torch.float64), torch.full((4,), expected, dtype=torch.float64))
    print(f"{name:22} IoU = {values[0]:.4f} (expected {expected:.4f}): pair, matrix, torchvision, mlcraft agree")
empty = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
print(f"two zero-area boxes: 0 / 0 = {box_iou(empty, empty).item()} (torchvision: {ops.box_iou(empty, empty).item()})")


# %% [markdown]
# What does a given IoU look like? Two boxes of the same size, side $s$, shifted by $d$ along x,
# have $\mathrm{IoU} = (s - d) / (s + d)$, so a shift of $d = s\,(1 - \mathrm{IoU}) / (1 + \mathrm{IoU})$:
#
# **Predict, then run.** By what share of its side can a box slide before its IoU with its twin
# falls to 0.5?


# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
side = 60.0
for ax, target_iou in zip(axes, (0.9, 0.75, 0.5, 0.3), strict=True):
    shift = side * (1 - target_iou) / (1 + target_iou)
    a, b = [20.0, 20.0, 20 + side, 20 + side], [20 + shift, 20.0, 20 + side + shift, 20 + side]
    ax.add_patch(Rectangle(a[:2], side, side, fill=False, color="tab:blue", lw=2))
    ax.add_patch(Rectangle(b[:2], side, side, fill=False, color="tab:orange", lw=2, ls="--"))
    ax.add_patch(Rectangle((b[0], b[1]), a[2] - b[0], side, color="tab:green", alpha=0.3))
    ax.set_xlim(0, 130)
    ax.set_ylim(100, 0)
    ax.set_aspect("equal")
    ax.set_title(f"IoU {iou_pair(a, b):.2f}: shifted by {shift / side:.0%} of the side", fontsize=9)
plt.tight_layout()
plt.show()


# %% [markdown]
# IoU 0.5, the usual threshold for "found it", allows a shift of a third of the box: quite
# generous. COCO's main metric therefore averages over thresholds up to 0.95 (section 7).
#
# ### GIoU
#
# As a training loss, $1 - \mathrm{IoU}$ has a flaw: for boxes that do not overlap it is 1 whatever
# their distance, so its gradient is zero and it cannot pull a prediction towards the object. The
# **generalized IoU** (Rezatofighi et al., 2019) subtracts the fraction of the smallest enclosing
# box $C$ that neither box covers: $\mathrm{GIoU} = \mathrm{IoU} - |C \setminus (A \cup B)| / |C|$.
# It lies in $[-1, 1]$ and keeps decreasing as disjoint boxes move apart. The FCOS detector of
# section 8 uses $1 - \mathrm{GIoU}$ as its box loss.
#
# **Predict, then run.** A 40 px box slides away from its twin. What is its GIoU at an offset of
# 40 px, where the two just touch? And at 100 px, is it close to −1 yet?


# %%
def giou_matrix(boxes1, boxes2):
    """(N, M) generalized IoU of xyxy boxes."""
    iou = iou_matrix(boxes1, boxes2)  # (N, M)
    area1, area2 = area_by_hand(boxes1), area_by_hand(boxes2)
    inter = iou * (area1[:, None] + area2[None, :]) / (1 + iou)  # from IoU = I / (A1 + A2 - I)
    union = area1[:, None] + area2[None, :] - inter
    enclosing_wh = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:]) - torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    enclosing = enclosing_wh[..., 0] * enclosing_wh[..., 1]  # (N, M): area of the smallest box around both
    return iou - (enclosing - union) / enclosing


torch.testing.assert_close(giou_matrix(boxes1, boxes2), ops.generalized_box_iou(boxes1, boxes2), rtol=0, atol=1e-12)
torch.testing.assert_close(generalized_box_iou(boxes1, boxes2), ops.generalized_box_iou(boxes1, boxes2), rtol=0, atol=1e-12)
print("hand-written GIoU = torchvision.ops.generalized_box_iou = mlcraft's generalized_box_iou")

fixed = torch.tensor([[40.0, 40.0, 80.0, 80.0]], dtype=torch.float64)
offsets = torch.linspace(-100, 100, 201, dtype=torch.float64)
sliding = fixed + torch.stack([offsets, torch.zeros_like(offsets), offsets, torch.zeros_like(offsets)], dim=1)
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(offsets, ops.box_iou(sliding, fixed)[:, 0], label="IoU")
ax.plot(offsets, ops.generalized_box_iou(sliding, fixed)[:, 0], label="GIoU")
ax.set_xlabel("horizontal offset of a 40 px box from its twin (px)")
ax.set_title("IoU is flat (no gradient) once the boxes separate; GIoU keeps sloping")
ax.legend()
plt.tight_layout()
plt.show()


# %% [markdown]
# ## 5. Non-maximum suppression
#
# A dense detector makes a prediction at every location, and every location near an object
# predicts a box for it. The raw output is a cloud of overlapping boxes. **Greedy NMS** keeps the
# best one and removes its near-duplicates:
#
# 1. sort the boxes by score;
# 2. keep the best remaining box;
# 3. drop every remaining box whose IoU with it is **greater than** the threshold;
# 4. repeat until no box is left.
#
# To see it work, we fake a detector's raw output on one image: a dozen jittered copies of each
# object's box, scored by how well they fit, plus a few stray boxes.


# %%
def noisy_predictions(gt_boxes, copies=12, strays=6, seed=0):
    """Jittered copies of each gt box (score ~ fit) and random strays (low scores): boxes (N, 4), scores (N,)."""
    gen = torch.Generator().manual_seed(seed)
    sides = (gt_boxes[:, 2:] - gt_boxes[:, :2]).repeat(1, 2)  # (G, 4): w, h, w, h
    jitter = 0.12 * sides[:, None, :] * torch.randn(len(gt_boxes), copies, 4, generator=gen)  # (G, copies, 4)
    jittered = (gt_boxes[:, None, :] + jitter).reshape(-1, 4)  # (G * copies, 4)
    fit = box_iou(jittered, gt_boxes).max(dim=1).values
    scores = fit * (0.75 + 0.25 * torch.rand(len(jittered), generator=gen))
    corners = torch.rand(strays, 2, generator=gen) * 90
    stray_boxes = torch.cat((corners, corners + 15 + 25 * torch.rand(strays, 2, generator=gen)), dim=1)
    stray_scores = 0.4 * torch.rand(strays, generator=gen)
    return torch.cat((jittered, stray_boxes)), torch.cat((scores, stray_scores))


nms_image, nms_target = ShapesDetection(1, ShapesConfig(min_objects=3, max_objects=3), seed=7)[0]
gt_boxes = nms_target["boxes"].as_subclass(torch.Tensor)
pred_boxes, pred_scores = noisy_predictions(gt_boxes)
print(f"{len(gt_boxes)} objects, {len(pred_boxes)} predicted boxes")


# %% [markdown]
# The algorithm, as written above: a list of candidates, and a filter per kept box.


# %%
def nms_plain(boxes, scores, iou_threshold):
    """Indices of the kept boxes, best first. Among equal scores, the lower index goes first."""
    remaining = torch.sort(scores, descending=True, stable=True).indices.tolist()
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if iou_pair(boxes[best].tolist(), boxes[i].tolist()) <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64)


# %% [markdown]
# This computes each IoU in Python. The vectorised version computes the IoU matrix once, in
# visiting order, and keeps a "suppressed" mask; the greedy pass itself stays a loop, because
# whether box $i$ survives depends on which earlier boxes survived.
#
# **Predict, then run.** As the IoU threshold goes from 0.3 to 0.5 to 0.7, will NMS keep more
# boxes or fewer?


# %%
def nms_matrix(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = iou_matrix(boxes[order], boxes[order])  # (N, N), rows and columns in visiting order
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold  # box i removes its duplicates
    return order[keep]


for threshold in (0.3, 0.5, 0.7):
    kept = nms_plain(pred_boxes, pred_scores, threshold)
    torch.testing.assert_close(nms_matrix(pred_boxes, pred_scores, threshold), kept, rtol=0, atol=0)
    torch.testing.assert_close(ops.nms(pred_boxes, pred_scores, threshold), kept, rtol=0, atol=0)
    torch.testing.assert_close(nms(pred_boxes, pred_scores, threshold), kept, rtol=0, atol=0)
    print(f"IoU threshold {threshold}: keeps {len(kept):2} of {len(pred_boxes)} boxes (ours = torchvision = mlcraft)")


# %% [markdown]
# **Predict, then run.** At threshold 0.5, will exactly one box per object survive? What happens
# to the stray boxes, which overlap no object?


# %%
kept = nms(pred_boxes, pred_scores, 0.5)
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
draw_boxes(axes[0], nms_image, pred_boxes, scores=None, color="yellow", title=f"before NMS: {len(pred_boxes)} boxes")
draw_boxes(axes[1], nms_image, gt_boxes, color="white", linestyle="--")
draw_boxes(axes[1], None, pred_boxes[kept], scores=pred_scores[kept], color="yellow",
           title=f"after NMS (IoU > 0.5 suppressed): {len(kept)} boxes; ground truth dashed")  # fmt: skip
plt.tight_layout()
plt.show()


# %% [markdown]
# One box per object survives, with its best score, plus low-scoring boxes that overlap nothing
# much: NMS removes *duplicates*, not false positives. How a detector ranks those is what the
# metric of section 7 judges. The threshold is a trade-off: too low and two genuinely
# overlapping objects merge into one detection; too high and duplicates survive (0.5 to 0.7 is
# typical).
#
# ### Class-aware NMS
#
# A square partly hidden behind a circle can overlap it with IoU above the threshold. They are two
# objects, but class-agnostic NMS keeps only one. Detectors therefore run NMS **per class**
# (`batched_nms`): boxes of different classes never suppress each other. torchvision implements it
# with a trick: shift each class's boxes by a class-dependent offset larger than the image, so
# boxes of different classes cannot overlap, then run one plain NMS.
#
# **Predict, then run.** A square (score 0.9) and a circle (score 0.8) overlap with IoU 0.61. Which
# boxes does class-agnostic NMS at 0.5 keep, and which does class-aware NMS keep?


# %%
overlapping = torch.tensor([[20.0, 20.0, 70.0, 70.0], [28.0, 25.0, 78.0, 75.0]])  # IoU 0.61
two_scores, two_classes = torch.tensor([0.9, 0.8]), torch.tensor([2, 1])  # a square and a circle
print(f"IoU {box_iou(overlapping[:1], overlapping[1:]).item():.2f}")
print(f"class-agnostic NMS keeps {nms(overlapping, two_scores, 0.5).tolist()}")
print(f"class-aware NMS keeps    {batched_nms(overlapping, two_scores, two_classes, 0.5).tolist()}")


def batched_nms_by_offset(boxes, scores, classes, iou_threshold):
    offsets = classes.to(boxes) * (boxes.max() + 1)  # (N,): each class gets its own region of the plane
    return nms_matrix(boxes + offsets[:, None], scores, iou_threshold)


labels_for_preds = torch.randint(1, 4, (len(pred_boxes),), generator=g)
expected = ops.batched_nms(pred_boxes, pred_scores, labels_for_preds, 0.5)
torch.testing.assert_close(batched_nms_by_offset(pred_boxes, pred_scores, labels_for_preds, 0.5), expected, rtol=0, atol=0)
torch.testing.assert_close(batched_nms(pred_boxes, pred_scores, labels_for_preds, 0.5), expected, rtol=0, atol=0)
print(f"random classes on the noisy boxes: class-aware NMS keeps {len(expected)} (ours = torchvision = mlcraft)")


# %% [markdown]
# ### Ties
#
# Which box wins when two scores are exactly equal? The greedy algorithm does not say, and the
# answer can change the *number* of boxes kept: below, boxes 0 and 1 tie, and box 2 overlaps box 1
# above the threshold (0.4) but box 0 below it. Keep box 0 first and box 2 survives; keep box 1
# first and it does not.
# `mlcraft.ops.nms` uses a stable sort, so the lower index wins. torchvision does not
# document its order, so with exact ties the two may legitimately differ; with distinct scores
# they agree exactly (as checked above). Real scores are rarely tied, except after rounding, or
# with quantized models.


# %%
tied = torch.tensor([[0.0, 0.0, 40.0, 40.0], [10.0, 0.0, 50.0, 40.0], [25.0, 0.0, 65.0, 40.0]])
tied_scores = torch.tensor([0.8, 0.8, 0.7])
print(f"IoU(0, 1) = {box_iou(tied[:1], tied[1:2]).item():.2f}, IoU(1, 2) = {box_iou(tied[1:2], tied[2:]).item():.2f}, "
      f"IoU(0, 2) = {box_iou(tied[:1], tied[2:]).item():.2f}")  # fmt: skip
print(f"mlcraft (stable: lower index first) keeps {nms(tied, tied_scores, 0.4).tolist()}")
swapped = torch.tensor([1, 0, 2])  # the same boxes, box 1 listed first
print(f"with box 1 listed first, mlcraft keeps      {swapped[nms(tied[swapped], tied_scores[swapped], 0.4)].tolist()}")
print(f"torchvision on this machine keeps         {ops.nms(tied, tied_scores, 0.4).tolist()}")


# %% [markdown]
# ## 6. Anchors and matching
#
# To *train* a detector we must decide, for every prediction location, what it should output:
# which object (if any) it is responsible for, and the box it should regress. Faster R-CNN,
# RetinaNet and SSD answer with **anchors**: at every cell of the feature map, a fixed set of
# reference boxes of several sizes and aspect ratios. Each anchor is matched to a ground-truth box
# by IoU, and the network predicts a class for each anchor and a small correction of its box.
#
# `mlcraft.models.grid_anchors` lays them out as torchvision's `AnchorGenerator` does: one box per
# (aspect ratio, size) pair, centred on the top-left corner of each cell, with ratio = height /
# width. On a stride-16 map of a 128 px image, 3 sizes × 3 ratios:
#
# **Predict, then run.** How many anchors is that for one image?


# %%
anchor_sizes, aspect_ratios, anchor_stride = (16, 32, 64), (0.5, 1.0, 2.0), 16
feature_size = (128 // anchor_stride, 128 // anchor_stride)
anchors = grid_anchors(feature_size, (anchor_stride, anchor_stride), anchor_sizes, aspect_ratios)  # (H*W*A, 4)
per_cell = len(anchor_sizes) * len(aspect_ratios)
print(f"feature map {feature_size}, {per_cell} anchors per cell -> {tuple(anchors.shape)} anchors")

generator = AnchorGenerator(sizes=(anchor_sizes,), aspect_ratios=(aspect_ratios,))
image_list = ImageList(torch.zeros(1, 3, 128, 128), [(128, 128)])
tv_anchors = generator(image_list, [torch.zeros(1, 8, *feature_size)])[0]
torch.testing.assert_close(anchors, tv_anchors, rtol=0, atol=0)
print("identical to torchvision's AnchorGenerator")


# %%
anchor_image = ShapesDetection(1, ShapesConfig(), seed=5)[0][0]
centres = (anchors[:, :2] + anchors[:, 2:]) / 2
cell = 4 * feature_size[1] + 4  # the cell in row 4, column 4
cell_anchors = anchors[cell * per_cell : (cell + 1) * per_cell]  # (9, 4), ratio-major: 3 sizes of ratio 0.5 first
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
axes[0].imshow(anchor_image.permute(1, 2, 0))
for r, (ratio, colour) in enumerate(zip(aspect_ratios, ("tab:orange", "tab:green", "tab:red"), strict=True)):
    group = cell_anchors[r * len(anchor_sizes) : (r + 1) * len(anchor_sizes)]
    draw_boxes(axes[0], None, group, color=colour)
    axes[0].plot([], [], color=colour, label=f"height / width = {ratio}")
axes[0].legend(loc="lower left", fontsize=8)
axes[0].set_title("the 9 anchors of one cell: sizes 16, 32, 64", fontsize=9)
draw_boxes(axes[1], anchor_image, anchors[4::per_cell], color="yellow", title="one of the 9 (32 px, ratio 1) at every cell")
for ax in axes:
    ax.scatter(centres[::per_cell, 0], centres[::per_cell, 1], s=6, color="white")
    ax.set_xlim(-40, 168)
    ax.set_ylim(168, -40)
plt.tight_layout()
plt.show()


# %% [markdown]
# 576 anchors for an image with a handful of objects: almost all of them are background, which is
# why detectors need losses that cope with imbalance (the focal loss of section 8). Anchors at the
# border hang outside the image; that is fine, they simply rarely match.
#
# ### Matching
#
# Given the IoU of every anchor with every ground-truth box, torchvision's `Matcher` labels each
# anchor:
#
# - best IoU ≥ `high` (0.5 here): **foreground**, responsible for that box;
# - best IoU < `low` (0.4): **background** (-1);
# - in between: **ignored** (-2), trained neither way, since it is neither clearly right nor
#   clearly wrong.
#
# That alone can leave an object with *no* anchor at all: a small or off-grid object may overlap
# no anchor by 0.5. The **low-quality rule** then gives every ground truth the anchor(s) it
# overlaps best, whatever the IoU. First by hand:
#
# **Predict, then run.** The cell looks for an image with an object that no anchor covers with
# IoU ≥ 0.5. How many positive anchors will that object get without the rule, and how many with
# it? Will most anchors be foreground, background or ignored?


# %%
def match_by_hand(anchors, gt_boxes, high=0.5, low=0.4, allow_low_quality=True):
    """(A,) index of the matched gt per anchor, -1 background, -2 ignored."""
    iou = iou_matrix(gt_boxes, anchors)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # (A,): each anchor's best ground truth
    matches = torch.where(best_iou >= high, best_gt, torch.where(best_iou < low, -1, -2))
    if allow_low_quality:
        is_best = iou == iou.max(dim=1, keepdim=True).values  # (G, A): each gt's best anchor(s), ties included
        rescued = is_best.any(dim=0)  # (A,)
        matches[rescued] = best_gt[rescued]
    return matches


# Find an image with an object that no anchor covers with IoU >= 0.5.
match_data = ShapesDetection(50, ShapesConfig(), seed=11)
for index in range(len(match_data)):
    match_image, match_target = match_data[index]
    match_gt = match_target["boxes"].as_subclass(torch.Tensor)
    if (box_iou(match_gt, anchors).max(dim=1).values < 0.5).any():
        break
iou_with_anchors = box_iou(match_gt, anchors)  # (G, A)
ours = match_by_hand(anchors, match_gt)
torch.testing.assert_close(ours, Matcher(0.5, 0.4, allow_low_quality_matches=True)(iou_with_anchors), rtol=0, atol=0)
torch.testing.assert_close(ours, match_anchors(anchors, match_gt, high=0.5, low=0.4), rtol=0, atol=0)
without_rule = match_anchors(anchors, match_gt, high=0.5, low=0.4, allow_low_quality=False)
print(f"image {index}: ours = torchvision's Matcher = mlcraft's match_anchors")
print(f"anchors: {(ours >= 0).sum()} foreground, {(ours == BACKGROUND).sum()} background, {(ours == IGNORE).sum()} ignored")
for k, box in enumerate(match_gt.tolist()):
    print(f"object {k} ({SHAPE_CLASSES[match_target['labels'][k] - 1]}, {box[2] - box[0]:.0f} px): best anchor IoU "
          f"{iou_with_anchors[k].max():.2f}; positives {(without_rule == k).sum()} without the rule, {(ours == k).sum()} with it")  # fmt: skip


# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, matches, title in ((axes[0], without_rule, "thresholds only"), (axes[1], ours, "with the low-quality rule")):
    draw_boxes(ax, match_image, match_gt, color="white", linestyle="--")
    positive = matches >= 0
    draw_boxes(ax, None, anchors[positive], labels=match_target["labels"][matches[positive]], class_names=SHAPE_CLASSES,
               title=f"{title}: {positive.sum()} positive anchors")  # fmt: skip
plt.tight_layout()
plt.show()


# %% [markdown]
# Each positive anchor carries the class of the object it is matched to; ground truth is dashed white. With
# thresholds only, the object whose best IoU is below 0.5 gets no positive anchor, so the detector
# would be trained to call it background. The low-quality rule gives it one.
#
# ### Box deltas
#
# A matched anchor does not regress the box coordinates directly but a **delta** relative to
# itself (Faster R-CNN's encoding): the centre offset in units of the anchor's size, and the log of
# the size ratio,
#
# $$d_x = \frac{x - x_a}{w_a},\quad d_y = \frac{y - y_a}{h_a},\quad d_w = \log\frac{w}{w_a},\quad d_h = \log\frac{h}{h_a}.$$
#
# These targets have similar magnitudes for small and large objects, and the decoded width
# $w_a e^{d_w}$ is positive whatever the network outputs. torchvision's `BoxCoder` multiplies the
# deltas by weights (Faster R-CNN uses (10, 10, 5, 5)) to balance them against the class loss.
#
# **Predict, then run.** Will the weights (10, 10, 5, 5) make the range of the deltas wider or
# narrower than the weights (1, 1, 1, 1)? Will decoding the encoded deltas give the boxes back?


# %%
def encode_by_hand(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    b, a = xyxy_to_cxcywh(boxes), xyxy_to_cxcywh(anchors)  # (N, 4) each
    wx, wy, ww, wh = weights
    return torch.stack(
        (wx * (b[:, 0] - a[:, 0]) / a[:, 2], wy * (b[:, 1] - a[:, 1]) / a[:, 3],
         ww * torch.log(b[:, 2] / a[:, 2]), wh * torch.log(b[:, 3] / a[:, 3])), dim=1,
    )  # fmt: skip


positive = ours >= 0
matched_anchors, matched_boxes = anchors[positive], match_gt[ours[positive]]  # (P, 4) each
for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
    coder = BoxCoder(weights)
    deltas = encode_by_hand(matched_boxes, matched_anchors, weights)
    torch.testing.assert_close(deltas, coder.encode_single(matched_boxes, matched_anchors), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encode_boxes(matched_boxes, matched_anchors, weights), deltas, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decode_boxes(deltas, matched_anchors, weights), matched_boxes, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(coder.decode_single(deltas, matched_anchors), matched_boxes, rtol=1e-5, atol=1e-4)
    print(f"weights {weights}: deltas in [{deltas.min():.2f}, {deltas.max():.2f}]; ours = BoxCoder = mlcraft; decode(encode(b)) = b")


# %% [markdown]
# ### Anchor-free: what our detector does instead
#
# Anchors come with hyper-parameters (sizes, ratios, two IoU thresholds, the low-quality rule) that
# must suit the data, and 9 candidates per location. **FCOS** (Tian et al., 2019), the detector we
# train in section 8, drops them: each feature-map *location* is a candidate. A location inside a
# ground-truth box, near its centre, is a positive for that box and predicts its four distances to
# the box's sides $(l, t, r, b)$; every other location is background. A third output,
# **centerness**, learns how central a location is, and down-weights the off-centre boxes before
# NMS. Matching becomes "is this point inside the box, near its centre?", with no IoU thresholds.
# The rest of the pipeline (IoU, GIoU, NMS, the metric) is unchanged.
#
# ### One-to-one matching: DETR's set loss
#
# Anchors and FCOS both match **many-to-one**: every anchor or location near an object is trained
# to predict it, so a trained detector fires several boxes per object and needs NMS (section 5) to
# keep one. DETR (Carion et al., 2020) makes the opposite choice. A transformer outputs a fixed
# *set* of $Q$ predictions (100 in the paper), each a class distribution (the $K$ classes plus
# "no object") and one box. The set has no order, so the loss first pairs each of the $G$ objects
# with exactly **one** prediction, the pairing of least total cost, and trains every other
# prediction towards "no object". A second prediction on an object that is already paired is then
# an error the loss itself punishes: the model learns not to make duplicates, and its output needs
# no NMS. (With many-to-one targets, the duplicates are exactly what the loss asks for.)
#
# DETR's cost of pairing prediction $q$ with object $g$, with boxes as $(c_x, c_y, w, h)$
# normalised by the image size, is
#
# $$C_{qg} = -\,p_q(c_g) \;+\; 5\,\lVert b_q - b_g \rVert_1 \;-\; 2\,\mathrm{GIoU}(b_q, b_g),$$
#
# the probability it gives the object's class, the L1 distance of the boxes and their GIoU
# (section 4). Finding the pairing of least total cost is the *linear assignment problem*. The
# obvious shortcut, **greedy** (take the cheapest pair, strike its row and column, repeat), is
# not always right:
#
# **Predict, then run.** Two objects side by side, two predictions: prediction 0 sits between the
# objects, a little closer to object 0; prediction 1 sits just beside object 0, far from object 1.
# Greedy pairs prediction 0 with object 0 first, the cheapest pair. Is its total cost the lowest
# possible?


# %%
def matching_cost_by_hand(logits, pred_boxes, labels, gt_boxes, w_class=1.0, w_bbox=5.0, w_giou=2.0):
    """(Q, G) DETR cost of logits (Q, K + 1), boxes (Q, 4) against labels (G,), boxes (G, 4); boxes cxcywh."""
    probs = logits.softmax(dim=-1)  # (Q, K + 1): the last column is "no object"
    l1 = (pred_boxes[:, None, :] - gt_boxes[None, :, :]).abs().sum(dim=-1)  # (Q, G)
    giou = giou_matrix(cxcywh_to_xyxy(pred_boxes), cxcywh_to_xyxy(gt_boxes))  # (Q, G), section 4
    return -w_class * probs[:, labels] + w_bbox * l1 - w_giou * giou


def greedy_match(cost):
    """Take the cheapest remaining pair, strike its row and column, repeat: sorted (q, g) pairs."""
    cost, pairs = cost.clone(), []
    for _ in range(min(cost.shape)):
        q, g = divmod(int(cost.argmin()), cost.shape[1])
        pairs.append((q, g))
        cost[q, :], cost[:, g] = math.inf, math.inf
    return sorted(pairs)


def best_match_by_search(cost):
    """Try all Q! / (Q - G)! one-to-one pairings (Q >= G): sorted (q, g) pairs of the cheapest."""
    rows = min(itertools.permutations(range(cost.shape[0]), cost.shape[1]),
               key=lambda rows: sum(float(cost[q, g]) for g, q in enumerate(rows)))  # fmt: skip
    return sorted((q, g) for g, q in enumerate(rows))


def total_cost(cost, pairs):
    return sum(float(cost[q, g]) for q, g in pairs)


two_gts = torch.tensor([[0.30, 0.5, 0.2, 0.2], [0.45, 0.5, 0.2, 0.2]], dtype=torch.float64)  # cx, cy, w, h in [0, 1]
two_preds = torch.tensor([[0.37, 0.5, 0.2, 0.2], [0.15, 0.5, 0.2, 0.2]], dtype=torch.float64)
two_logits = torch.zeros(2, 4, dtype=torch.float64)  # 3 classes + "no object", all equally likely: the boxes decide
two_labels = torch.tensor([0, 0])
cost = matching_cost_by_hand(two_logits, two_preds, two_labels, two_gts)
torch.testing.assert_close(cost, matching_cost(two_logits, two_preds, two_labels, two_gts), rtol=0, atol=1e-12)
print(f"cost (rows: predictions, columns: objects), equal to mlcraft's matching_cost:\n{cost.numpy().round(3)}")
pred_idx, gt_idx = hungarian_match(two_logits, two_preds, two_labels, two_gts)
optimal = list(zip(pred_idx.tolist(), gt_idx.tolist(), strict=True))
# The independent check is the search over every pairing. hungarian_match calls linear_sum_assignment itself, so
# agreeing with it only shows that the wrapper passes the matrix and returns the indices the right way round.
assert optimal == best_match_by_search(cost), "the Hungarian pairing is the cheapest of all pairings"
rows, cols = linear_sum_assignment(cost.numpy())
assert optimal == list(zip(rows.tolist(), cols.tolist(), strict=True)), "the wrapper's indices are the solver's"
for name, pairs in (("greedy", greedy_match(cost)), ("optimal (Hungarian)", optimal)):
    print(f"{name:20} pairs (prediction, object) {pairs}: total cost {total_cost(cost, pairs):+.3f}")
assert total_cost(cost, optimal) < total_cost(cost, greedy_match(cost)) - 1.0
two_giou = giou_matrix(cxcywh_to_xyxy(two_preds), cxcywh_to_xyxy(two_gts))  # (2, 2)
print(f"prediction 1 and object 1: IoU {box_iou(cxcywh_to_xyxy(two_preds), cxcywh_to_xyxy(two_gts))[1, 1]:.1f}, GIoU {two_giou[1, 1]:+.2f}")
assert math.isclose(float(two_giou[1, 1]), -0.2, abs_tol=1e-12), "IoU 0; the enclosing box (0.1) exceeds the union (0.08) by 0.02"


# %% [markdown]
# Greedy grabs the single cheapest pair and is left with prediction 1 for object 1, which it does
# not overlap at all (IoU 0, GIoU −0.2: a gap of a tenth of the image between them); trained on
# that, prediction 1 would be pulled across the image. The optimum gives up a little on the first
# pair to avoid the bad second one. `hungarian_match` (in `mlcraft.models.set_matching`) computes
# the cost matrix and hands it to `scipy.optimize.linear_sum_assignment`, which solves the problem
# exactly (a variant of Kuhn's Hungarian method, $O(n^3)$). The check that means something is the
# search over every pairing; the comparison with `linear_sum_assignment` itself only confirms that
# the wrapper returns the solver's indices the right way round.
#
# On a real image: a shapes picture, each object with two jittered "predictions" of it (the
# duplicates a many-to-one detector makes) and two stray predictions.
#
# **Predict, then run.** Of the 8 predictions, how many will be paired, and how many trained
# towards "no object"? Which of the two copies of an object will be paired with it?


# %%
num_objects = len(gt_boxes)  # the three objects of the NMS image (section 5)
query_boxes, _ = noisy_predictions(gt_boxes, copies=2, strays=2, seed=3)  # (8, 4) xyxy px: 2 copies per object, 2 strays
query_gen = torch.Generator().manual_seed(3)
query_logits = torch.randn(len(query_boxes), len(SHAPE_CLASSES) + 1, generator=query_gen)  # (8, 4): 3 classes + no object
copy_of = torch.arange(2 * num_objects) // 2  # the object each copy was made from
query_logits[torch.arange(2 * num_objects), nms_target["labels"][copy_of] - 1] += 3.0  # the copies favour the right class
query_cxcywh = box_convert(query_boxes / 128, "xyxy", "cxcywh")  # DETR's format: normalised by the image size
object_cxcywh = box_convert(gt_boxes / 128, "xyxy", "cxcywh")
object_labels = nms_target["labels"] - 1  # DETR counts classes from 0
pred_idx, gt_idx = hungarian_match(query_logits, query_cxcywh, object_labels, object_cxcywh)
query_cost = matching_cost(query_logits, query_cxcywh, object_labels, object_cxcywh)
assert sorted(zip(pred_idx.tolist(), gt_idx.tolist(), strict=True)) == best_match_by_search(query_cost)  # 336 pairings tried
no_object = sorted(set(range(len(query_boxes))) - set(pred_idx.tolist()))
print(f"pairs (prediction, object): {list(zip(pred_idx.tolist(), gt_idx.tolist(), strict=True))}; "
      f"'no object': predictions {no_object}")  # fmt: skip
print(f"total cost: optimal {total_cost(query_cost, zip(pred_idx.tolist(), gt_idx.tolist(), strict=True)):+.3f}, "
      f"greedy {total_cost(query_cost, greedy_match(query_cost)):+.3f}")  # fmt: skip

fig, ax = plt.subplots(figsize=(4.8, 4.8))
draw_boxes(ax, nms_image, gt_boxes, color="white", linestyle="--")
draw_boxes(ax, None, query_boxes[no_object], color="grey", linestyle=":")
draw_boxes(ax, None, query_boxes[pred_idx], color="yellow")
paired_with = dict(zip(pred_idx.tolist(), gt_idx.tolist(), strict=True))  # prediction -> object
for g, (_, _, x2, y2) in enumerate(gt_boxes.tolist()):
    ax.text(x2 - 1, y2 - 2, f"object {g}", color="white", fontsize=7, ha="right")
for q, (x1, y1, _, _) in enumerate(query_boxes.tolist()):
    paired = q in paired_with
    ax.text(x1 + 1, y1 + 6, f"{q} → {paired_with[q]}" if paired else f"{q}: no object",
            color="yellow" if paired else "lightgrey", fontsize=7)  # fmt: skip
ax.set_title("predictions paired with an object (yellow) or 'no object' (grey)", fontsize=9)
plt.tight_layout()
plt.show()


# %% [markdown]
# Each object gets exactly one prediction, the copy that fits it best in class, position and
# overlap; its twin and the strays become "no object" targets, so the duplicate is trained away
# instead of being removed by NMS afterwards. That is also why DETR's classification loss
# down-weights the "no object" class (by 0.1): most of the 100 predictions are "no object" in every
# image, the same imbalance the focal loss of section 8 tackles.
#
# Is the exact solver affordable inside a training loop? DETR matches 100 predictions to up to a
# few dozen objects, per image, at every step.
#
# **Predict, then run.** How long does `linear_sum_assignment` take for 100 predictions and 20
# objects: microseconds, milliseconds or seconds? How many pairings would a search try?


# %%
timing_gen = torch.Generator().manual_seed(0)
big_logits = torch.randn(100, 4, generator=timing_gen, dtype=torch.float64)
big_preds = box_convert(random_boxes(100, generator=timing_gen) / 160, "xyxy", "cxcywh")  # (100, 4), inside [0, 1]
big_gts = box_convert(random_boxes(20, generator=timing_gen) / 160, "xyxy", "cxcywh")  # (20, 4)
big_labels = torch.randint(0, 3, (20,), generator=timing_gen)
big_cost = matching_cost(big_logits, big_preds, big_labels, big_gts).numpy()  # (100, 20)
start = time.perf_counter()
for _ in range(20):
    rows, cols = linear_sum_assignment(big_cost)
solver_ms = (time.perf_counter() - start) / 20 * 1e3
start = time.perf_counter()
for _ in range(20):
    hungarian_match(big_logits, big_preds, big_labels, big_gts)
match_ms = (time.perf_counter() - start) / 20 * 1e3
big_greedy = greedy_match(torch.from_numpy(big_cost))
greedy_total, optimal_total = total_cost(big_cost, big_greedy), float(big_cost[rows, cols].sum())
greedy_differs = len(set(big_greedy) - set(zip(rows.tolist(), cols.tolist(), strict=True)))  # of the 20 pairs
print(f"100 × 20: linear_sum_assignment {solver_ms:.3f} ms, hungarian_match with its cost matrix {match_ms:.2f} ms")
print(f"a search would try 100! / 80! = {math.perm(100, 20):.2e} pairings")
print(f"total cost: optimal {optimal_total:+.3f}, greedy {greedy_total:+.3f}: "
      f"greedy is {greedy_total - optimal_total:.3f} worse, {greedy_differs} of its 20 pairs differ from the optimum")  # fmt: skip
assert greedy_total > optimal_total + 0.1 and greedy_differs > 0, "on these random boxes greedy is strictly worse"


# %% [markdown]
# A fraction of a millisecond per image, against some $10^{39}$ pairings for a search: the exact
# matching costs nothing next to the forward pass. Greedy's total can never beat the optimum's,
# and on these random boxes it is strictly worse: it pairs a few of the 20 objects with the wrong
# prediction, the crafted case of above happening by chance. DETR's price for dropping NMS lies elsewhere: with one prediction per
# object, each object trains a single query, and the original DETR trained for 500 epochs on COCO,
# where Faster R-CNN's usual schedules are 12 to 36 (later variants, such as Deformable DETR,
# close much of that gap).
#
# ## 7. The metric: precision, recall and AP
#
# A detector outputs a ranked list of boxes. To score it:
#
# 1. **match**: go through the detections by decreasing score; each one is a true positive (TP)
#    if it overlaps a not-yet-matched ground truth of its class with IoU ≥ the threshold (it takes
#    the one with the highest IoU), else a false positive (FP). A second detection of an already
#    found object is a FP: duplicates are punished.
# 2. after the $k$ best detections, **precision** = TP / k and **recall** = TP / (number of ground
#    truths). Lowering the score threshold walks along the precision–recall curve.
# 3. **AP** summarises the curve in one number: the area under it, computed COCO's way.
#
# Here is one class, three images, five objects and eight detections, written out:
#
# **Predict, then run.** Go through the eight detections in the cell by decreasing score. Which
# are true positives at IoU 0.5, and what are the precision and the recall after the last one?


# %%
toy_gts = [
    torch.tensor([[10.0, 10, 50, 50], [60, 60, 100, 100]]),
    torch.tensor([[20.0, 30, 70, 80]]),
    torch.tensor([[5.0, 5, 35, 35], [80, 20, 120, 60]]),
]
toy_dets = [  # (image, box, score)
    (0, [12.0, 11, 51, 49], 0.95),  # a good box
    (1, [22.0, 28, 69, 83], 0.90),  # a good box
    (0, [14.0, 14, 48, 52], 0.80),  # a duplicate of the first
    (2, [82.0, 22, 121, 58], 0.70),  # a good box
    (2, [40.0, 70, 70, 100], 0.60),  # nothing there
    (0, [70.0, 70, 110, 110], 0.50),  # right object, poorly placed
    (2, [6.0, 4, 36, 33], 0.40),  # a good box
    (1, [90.0, 90, 120, 120], 0.30),  # nothing there
]


def match_detections(gts, dets, iou_threshold=0.5):
    """True/False (TP/FP) for each detection of dets (image, box, score), in decreasing score order."""
    taken = [torch.zeros(len(b), dtype=torch.bool) for b in gts]
    outcome = []
    for image_id, box, _ in sorted(dets, key=lambda d: -d[2]):
        ious = box_iou(torch.tensor([box]), gts[image_id])[0]  # (G,)
        ious[taken[image_id]] = -1  # an object already found cannot be found again
        best = int(ious.argmax()) if len(ious) else -1
        hit = best >= 0 and ious[best] >= iou_threshold
        if hit:
            taken[image_id][best] = True
        outcome.append(bool(hit))
    return outcome


is_tp = match_detections(toy_gts, toy_dets)
num_gt = sum(len(b) for b in toy_gts)
tp = np.cumsum(is_tp)
fp = np.cumsum([not t for t in is_tp])
toy_precision, toy_recall = tp / (tp + fp), tp / num_gt
print(f"{'rank':>4} {'score':>6} {'':>3} {'TP':>3} {'FP':>3} {'precision':>10} {'recall':>7}")
for k, (det, hit) in enumerate(zip(sorted(toy_dets, key=lambda d: -d[2]), is_tp, strict=True)):
    print(f"{k + 1:>4} {det[2]:>6.2f} {'TP' if hit else 'FP':>3} {tp[k]:>3} {fp[k]:>3} {toy_precision[k]:>10.3f} {toy_recall[k]:>7.2f}")


# %% [markdown]
# The curve zig-zags: precision drops at each FP and recovers at each TP. COCO first takes the
# **envelope**, the best precision achievable at this recall *or higher* (you would never choose a
# threshold that gives less recall *and* less precision), then reads it at the 101 recall values
# 0, 0.01, …, 1 and averages. Recall values never reached (here above 0.8: one object was never
# found) count as precision 0.
#
# **Predict, then run.** The precision is 1.0 over the first 40% of recall, then falls. Will AP be
# above or below 0.5, the precision after the last detection?


# %%
def ap_101_point(recall, precision):
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this rank or any later one
    thresholds = np.linspace(0, 1, 101)
    first_rank = np.searchsorted(recall, thresholds, side="left")  # the first rank reaching each recall
    sampled = np.where(first_rank < len(recall), envelope[np.minimum(first_rank, len(recall) - 1)], 0.0)
    return sampled.mean(), envelope, sampled


toy_ap, toy_envelope, toy_sampled = ap_101_point(toy_recall, toy_precision)
print(f"AP by hand: {toy_ap:.4f}")
assert math.isclose(average_precision(toy_recall, toy_precision), toy_ap, abs_tol=1e-12)

# mlcraft's curve and COCO evaluation take per-image dicts, as a detector outputs them.
toy_gt_dicts = [{"boxes": b, "labels": torch.ones(len(b), dtype=torch.int64)} for b in toy_gts]
toy_det_dicts = [
    {"boxes": torch.tensor([d[1] for d in toy_dets if d[0] == i]).reshape(-1, 4),
     "scores": torch.tensor([d[2] for d in toy_dets if d[0] == i]),
     "labels": torch.ones(sum(d[0] == i for d in toy_dets), dtype=torch.int64)}
    for i in range(len(toy_gts))
]  # fmt: skip
lib_precision, lib_recall, _ = precision_recall_curve(toy_gt_dicts, toy_det_dicts, label=1, iou_threshold=0.5)
np.testing.assert_allclose(lib_precision, toy_precision, rtol=0, atol=1e-12)
np.testing.assert_allclose(lib_recall, toy_recall, rtol=0, atol=1e-12)
toy_metrics = coco_evaluate(toy_gt_dicts, toy_det_dicts)
assert math.isclose(toy_metrics["AP50"], toy_ap, abs_tol=1e-12), toy_metrics["AP50"]
print(f"mlcraft: average_precision {average_precision(toy_recall, toy_precision):.4f}, coco_evaluate AP50 {toy_metrics['AP50']:.4f}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(toy_recall, toy_precision, "o-", color="tab:blue", label="precision after each detection")
ax.step(toy_recall, toy_envelope, where="pre", color="tab:orange", label="envelope")
ax.fill_between(np.linspace(0, 1, 101), toy_sampled, step="post", alpha=0.2, color="tab:orange",
                label=f"101-point area = AP = {toy_ap:.3f}")  # fmt: skip
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_xlim(0, 1.02)
ax.set_ylim(0, 1.05)
ax.legend(loc="lower left")
ax.set_title("one class, IoU threshold 0.5")
plt.tight_layout()
plt.show()


# %% [markdown]
# **COCO's AP** repeats this for every class and for 10 IoU thresholds 0.50, 0.55, …, 0.95, and
# averages all of them: a detector must find objects *and* place its boxes well. It also reports
# AP50 and AP75 (one threshold each), AP for small (< 32² px), medium and large (> 96² px)
# objects, and AR, the recall reached with at most 1, 10 or 100 detections per image.
#
# To see per-class curves on a whole validation set, we need many detections. Section 8 trains a
# real detector; for now, a *simulated* one: it jitters each ground-truth box (triangles the most,
# circles the least), sometimes misses an object, sometimes gets its class wrong, duplicates some
# boxes, and adds low-scoring false alarms.
#
# **Predict, then run.** At IoU 0.5 and at IoU 0.75, which class will have the lowest AP? Will any
# curve reach recall 1?


# %%
def plain_targets(dataset):
    """Ground truths as plain tensors: one {"boxes", "labels"} dict per image."""
    return [{"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"]} for _, t in dataset]


def simulated_detections(ground_truths, seed=0, jitter_by_class=(0.04, 0.07, 0.12)):
    gen = torch.Generator().manual_seed(seed)
    detections = []
    for gt in ground_truths:
        kept = torch.rand(len(gt["boxes"]), generator=gen) > 0.1  # 10% of objects missed
        boxes, labels = gt["boxes"][kept], gt["labels"][kept].clone()
        sides = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)  # (N, 4)
        jitter = torch.tensor(jitter_by_class)[labels - 1, None]  # (N, 1)
        boxes = boxes + jitter * sides * torch.randn(boxes.shape, generator=gen)
        scores = box_iou(boxes, gt["boxes"]).max(dim=1).values * (0.6 + 0.4 * torch.rand(len(boxes), generator=gen))
        confused = torch.rand(len(boxes), generator=gen) < 0.1  # 10% get a wrong class
        labels[confused] = labels[confused] % 3 + 1
        duplicate = torch.rand(len(boxes), generator=gen) < 0.3
        corners = torch.rand(3, 2, generator=gen) * 100
        false_alarms = torch.cat((corners, corners + 16 + 20 * torch.rand(3, 2, generator=gen)), dim=1)
        detections.append({
            "boxes": torch.cat((boxes, boxes[duplicate] + 3, false_alarms)),
            "scores": torch.cat((scores, 0.8 * scores[duplicate], 0.5 * torch.rand(3, generator=gen))),
            "labels": torch.cat((labels, labels[duplicate], torch.randint(1, 4, (3,), generator=gen))),
        })  # fmt: skip
    return detections


val_set = ShapesDetection(256, ShapesConfig(), seed=1)  # the validation images of section 8, too
val_truths = plain_targets(val_set)
simulated = simulated_detections(val_truths)
print(f"{len(val_truths)} images, {sum(len(t['boxes']) for t in val_truths)} objects, "
      f"{sum(len(d['boxes']) for d in simulated)} simulated detections")  # fmt: skip


# %%
def plot_pr_curves(ground_truths, detections, title):
    _, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, iou_threshold in zip(axes, (0.5, 0.75), strict=True):
        for label, name in enumerate(SHAPE_CLASSES, start=1):
            precision, recall, _ = precision_recall_curve(ground_truths, detections, label, iou_threshold)
            ap = average_precision(recall, precision)
            ax.plot(recall, precision, label=f"{name}: AP = {ap:.3f}")
        ax.set_xlabel("recall")
        ax.set_title(f"{title}, IoU ≥ {iou_threshold}", fontsize=10)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower left")
    axes[0].set_ylabel("precision")
    plt.tight_layout()
    plt.show()


plot_pr_curves(val_truths, simulated, "simulated detector")


# %% [markdown]
# At IoU 0.5 the jitter hardly matters; what separates the curves is where the wrong labels land.
# A confused object is a false positive for the class it is given, with the high score of a
# well-placed box: circles, placed best, turn into confident false "squares" and pull the square
# curve down at low recall. At 0.75 the curves separate in the order of the jitter, and the
# triangles, placed worst, lose most. No curve reaches recall 1: the missed objects cap it, and
# so do the confused ones, which count as misses for their true class.
#
# `coco_evaluate` computes all twelve COCO numbers. It is written out in numpy
# (`mlcraft/evaluation/coco.py`), and it must agree with the official `pycocotools` `COCOeval`.
# `run_cocoeval` runs the official evaluator on the same data: `to_coco_json` writes our boxes in
# COCO's format (`xywh`, one id per image), then a `COCO()` index is built from that dict, the
# detections are attached with `loadRes`, and `evaluate`, `accumulate`, `summarize` fill
# `.stats` with the twelve numbers in `STAT_NAMES` order (the tests and a benchmark use the same
# function):
#
# **Predict, then run.** Which will be higher, AP50 or AP? And what will `AP_large` be, when no
# object in these images is larger than 96² px?


# %%
def pycocotools_stats(ground_truths, detections):
    """COCOeval's 12 summary numbers for the same data, or None where pycocotools is not installed."""
    try:
        return run_cocoeval(ground_truths, detections).stats
    except ImportError:
        print("pycocotools is not installed (pip install pycocotools): skipping the comparison")
        return None


def compare_with_pycocotools(metrics, ground_truths, detections):
    official = pycocotools_stats(ground_truths, detections)
    print(f"{'':10} {'mlcraft':>8} {'pycocotools':>12}")
    for k, name in enumerate(STAT_NAMES):
        print(f"{name:10} {metrics[name]:>8.4f} {official[k] if official is not None else float('nan'):>12.4f}")
    if official is not None:
        np.testing.assert_allclose([metrics[name] for name in STAT_NAMES], official, rtol=0, atol=1e-12)
        print("all 12 numbers equal to 1e-12")


simulated_metrics = coco_evaluate(val_truths, simulated)
compare_with_pycocotools(simulated_metrics, val_truths, simulated)
print("AP per class:", {SHAPE_CLASSES[k - 1]: round(v, 4) for k, v in simulated_metrics["AP_per_class"].items()})


# %% [markdown]
# AP is well below AP50, as the 0.75 curves suggested. `AP_large` is -1: no object is larger than
# 96² px, and COCO leaves such entries out of every mean rather than counting them as 0.


# %% [markdown]
# # Part II · Training a detector and the library route
#
# Reading about 35 min. Part I built the bookkeeping every detector needs; Part II builds the loss
# of a real one, trains it and meets the library versions. If you stop for a break, stop here.
# From Part I you need:
#
# - box formats, IoU and GIoU (sections 3 and 4): the box loss is $1 - \mathrm{GIoU}$;
# - class-aware NMS (section 5), which the detector's `predict` runs;
# - FCOS's idea of assigning *locations* to objects (end of section 6);
# - precision–recall curves and COCO's AP (section 7).
#
# The cells below also reuse names defined in Part I: the validation set `val_set` and its
# `val_truths`, `plot_pr_curves`, `compare_with_pycocotools`, the simulated detector's
# `simulated_metrics`, the image of section 6 (`match_image`, `match_target`, `match_gt`) and small
# helpers such as `area_by_hand`. After a restart, run Part I's cells first (in Jupyter: Run → Run
# All Above, about 15 s); the training run in section 8 is most of the notebook's run time.
#
# ## 8. Training the detector
#
# `mlcraft.models.detector.ShapesDetector` is FCOS on a small CNN: the four-stage backbone of
# section 1.2, its stride-16 stage merged into the stride-8 map as an FPN does, and two small
# towers that predict, at each of the 16 × 16 locations of a 128 px image, 3 class logits, the
# four distances $(l, t, r, b)$ to the sides of a box, and a centerness logit. Training pairs each
# location with at most one object; the loss is the focal loss for the classes (most locations
# are background), $1 - \mathrm{GIoU}$ for the boxes (section 4) and a binary cross-entropy for
# centerness. `predict` turns the outputs into detections: score, threshold, top-k, class-aware
# NMS (section 5). Before training it, we build each piece of that loss by hand and check it
# against torchvision's own FCOS.
#
# **Predict, then run.** For a batch of 4 images, what shapes will the class logits, the box
# distances and the centerness logits have, with one row per location?


# %%
detector_config = DetectorConfig()
seed_everything(DEFAULT_DETECTOR_TRAINING.seed)
untrained = ShapesDetector(detector_config)  # train_detector seeds the same way: the same initial weights
print(f"ShapesDetector: {sum(p.numel() for p in untrained.parameters()) / 1e6:.2f} M parameters")
images, _ = collate_detection([val_set[i] for i in range(4)])
with torch.no_grad():
    outputs = untrained(images)  # (4, 3, 128, 128) -> raw outputs per location
for name, value in outputs.items():
    print(f"  {name:15} {tuple(value.shape)}")


# %% [markdown]
# ### The focal loss
#
# Each image gives 256 locations × 3 classes = 768 binary questions "is there an object of this
# class here?", and almost all answers are no. Once the detector has learnt that, those are *easy*
# negatives: probability $p \approx 0.01$, a cross-entropy of only $-\log 0.99 \approx 0.01$ each.
# But they are many (RetinaNet scores about 100,000 anchors per image), and together they swamp the
# few objects. The **focal loss** (Lin et al., 2017) scales the cross-entropy down by how easy an
# example already is. With $p_t$ the probability the model gives the right answer ($p$ for a
# positive, $1 - p$ for a negative) and $\alpha_t$ a fixed weight ($\alpha$ for positives,
# $1 - \alpha$ for negatives),
#
# $$\mathrm{FL}(p_t) = -\,\alpha_t\,(1 - p_t)^{\gamma} \log p_t, \qquad \alpha = 0.25,\ \gamma = 2 .$$
#
# With $\gamma = 0$ and no $\alpha$ it is the cross-entropy. In code, the probability of the right
# answer is the sigmoid of the logit with its sign flipped for negatives, and `logsigmoid` keeps
# its log exact where $p_t$ is tiny.
#
# **Predict, then run.** An easy negative has $p = 0.01$. How many times smaller is its focal loss
# than its cross-entropy at $\gamma = 2$ (leave $\alpha$ aside): 10, 100 or 10,000 times?


# %%
def focal_loss_by_hand(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """-alpha_t (1 - p_t)^gamma log p_t for 0/1 targets; alpha < 0 turns alpha_t off; reduction as in torchvision."""
    signed = torch.where(targets == 1, logits, -logits)  # sigmoid(signed) = p_t, the probability of the right answer
    p_t = torch.sigmoid(signed)
    alpha_t = torch.where(targets == 1, alpha, 1 - alpha) if alpha >= 0 else 1.0
    loss = -alpha_t * (1 - p_t) ** gamma * F.logsigmoid(signed)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


focal_gen = torch.Generator().manual_seed(0)
focal_logits = 3 * torch.randn(4, 256, 3, generator=focal_gen, dtype=torch.float64)  # (B, L, K)
focal_targets = (torch.rand(4, 256, 3, generator=focal_gen) < 0.05).to(torch.float64)
for reduction in ("none", "mean", "sum"):
    torch.testing.assert_close(focal_loss_by_hand(focal_logits, focal_targets, reduction=reduction),
                               ops.sigmoid_focal_loss(focal_logits, focal_targets, reduction=reduction), rtol=0, atol=1e-12)  # fmt: skip
torch.testing.assert_close(focal_loss_by_hand(focal_logits, focal_targets), sigmoid_focal_loss(focal_logits, focal_targets), rtol=0, atol=1e-12)
print("focal loss by hand = torchvision.ops.sigmoid_focal_loss (none, mean, sum) = mlcraft's, to 1e-12 in float64")


def loss_of(p, target, **focal_args):
    """Focal loss of one example the model scores at probability p (gamma=0, alpha=-1: the cross-entropy)."""
    logit = torch.logit(torch.tensor([p], dtype=torch.float64))
    return focal_loss_by_hand(logit, torch.tensor([float(target)], dtype=torch.float64), **focal_args).item()


ce, focal = loss_of(0.01, 0, gamma=0.0, alpha=-1), loss_of(0.01, 0, gamma=2.0, alpha=-1)
assert math.isclose(ce, -math.log(0.99), rel_tol=1e-12) and math.isclose(focal, 0.01**2 * ce, rel_tol=1e-9)
print(f"easy negative (p = 0.01): cross-entropy {ce:.2e}, focal (gamma 2) {focal:.2e}: {ce / focal:,.0f} times smaller")

# A RetinaNet-sized image: 100,000 easy negatives (p = 0.01) and 10 objects the model is unsure of (p = 0.5).
for name, args in (("cross-entropy", {"gamma": 0.0, "alpha": -1}), ("focal loss (alpha 0.25, gamma 2)", {})):
    negatives, positives = 100_000 * loss_of(0.01, 0, **args), 10 * loss_of(0.5, 1, **args)
    print(f"{name:33}: negatives {negatives:8.3f}, objects {positives:6.3f}: {negatives / (negatives + positives):.0%} of the loss from easy negatives")


# %% [markdown]
# The factor $(1 - p_t)^\gamma = 0.01^2$ makes the easy negative 10,000 times quieter; with
# $\alpha_t = 0.75$ for negatives, about 13,000 times. Summed over an image, the cross-entropy is
# almost all background, and the focal loss hands most of it back to the objects. The curves show
# how $\gamma$ bends the loss: nearly flat for well-classified examples, nearly the cross-entropy
# for badly classified ones (Figure 1 of the paper).
#
# **Predict, then run.** At $p_t = 0.5$, where the model guesses, how much of the cross-entropy
# does $\gamma = 2$ keep?


# %%
p_t = torch.linspace(0.001, 0.999, 200, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(6, 3.6))
for gamma in (0, 1, 2, 5):
    curve = focal_loss_by_hand(torch.logit(p_t), torch.ones_like(p_t), gamma=float(gamma), alpha=-1)  # positives: p = p_t
    ax.plot(p_t, curve, label=f"γ = {gamma}" + (" (cross-entropy)" if gamma == 0 else ""))
ax.axvspan(0.6, 1.0, color="tab:green", alpha=0.08, label="well classified")
ax.set_xlabel("probability of the right answer $p_t$")
ax.set_ylabel("loss")
ax.set_ylim(0, 5)
ax.set_title("focal loss, no α: −(1 − p_t)^γ log p_t", fontsize=10)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"at p_t = 0.5, gamma 2 keeps {loss_of(0.5, 1, gamma=2.0, alpha=-1) / loss_of(0.5, 1, gamma=0.0, alpha=-1):.2f} of the cross-entropy")


# %% [markdown]
# ### FCOS targets and centerness by hand
#
# FCOS's matching, on the image of section 6: a location is a positive for a box when it lies
# inside the box and within 1.5 strides of its centre (the smallest box wins where boxes overlap).
# No thresholds to tune, and the small triangle, which had no anchor above IoU 0.5, gets its
# locations like any other object:


# %%
points = untrained.points((128, 128))  # (L, 2) location centres in pixels
fcos = fcos_targets(points, torch.full((len(points),), 8.0), [match_target], center_sampling_radius=1.5)
assigned = fcos.matched[0]  # (L,): index of the object, -1 for background
fig, ax = plt.subplots(figsize=(4.6, 4.6))
draw_boxes(ax, match_image, match_gt, match_target["labels"], class_names=SHAPE_CLASSES, linestyle="--")
ax.scatter(points[:, 0], points[:, 1], s=4, color="white", alpha=0.5)
for k in range(len(match_gt)):
    ax.scatter(*points[assigned == k].T, s=30, label=f"object {k}: {(assigned == k).sum()} locations")
ax.legend(loc="upper right", fontsize=8)
ax.set_title("FCOS positives (stride 8, centre radius 1.5 strides)", fontsize=9)
plt.tight_layout()
plt.show()


# %% [markdown]
# Written out for one image, the rule is a loop over locations and boxes. For a location
# $(x, y)$ and a box $(x_1, y_1, x_2, y_2)$ the regression target is the four distances to the
# sides, $l = x - x_1$, $t = y - y_1$, $r = x_2 - x$, $b = y_2 - y$; the box is a *candidate* when
# all four are positive (the location is inside) and the location is less than
# radius × stride from the box centre in both $x$ and $y$ (**centre sampling**: locations near
# the border of a box see mostly background, and make poor positives). Among the candidates the
# box of smallest area wins: a small object lying on a large one would otherwise get no location.
# The positive's **centerness** target is
#
# $$\text{centerness} = \sqrt{\frac{\min(l, r)}{\max(l, r)} \cdot \frac{\min(t, b)}{\max(t, b)}},$$
#
# 1 at the centre of the box and 0 on its edge. At inference, the score
# $\sqrt{p \cdot \text{centerness}}$ ranks an off-centre location's (usually worse) box lower.
#
# **Predict, then run.** The image below holds 6 to 8 overlapping shapes. How many of its 256
# locations will be positives with centre sampling, and how many without (`radius=None`)? How many
# locations lie inside two or more boxes, and how many are still candidates of two or more boxes
# with centre sampling (inside each box and near each centre)?


# %%
def fcos_targets_by_hand(points, stride, boxes, radius=1.5):
    """One image: for each location, the matched box index (-1: background), its (l, t, r, b) and its candidate count."""
    matched, distances, candidate_counts = [], [], []
    for x, y in points.tolist():
        candidates = []  # (area, index, (l, t, r, b)) of every box this location may learn
        for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            ltrb = (x - x1, y - y1, x2 - x, y2 - y)
            near_centre = radius is None or max(abs(x - (x1 + x2) / 2), abs(y - (y1 + y2) / 2)) < radius * stride
            if min(ltrb) > 0 and near_centre:
                candidates.append(((x2 - x1) * (y2 - y1), k, ltrb))
        _, k, ltrb = min(candidates) if candidates else (0.0, -1, (0.0, 0.0, 0.0, 0.0))  # smallest area (then lowest index)
        matched.append(k)
        distances.append(ltrb)
        candidate_counts.append(len(candidates))
    return torch.tensor(matched), torch.tensor(distances, dtype=torch.float64), torch.tensor(candidate_counts)


def centerness_by_hand(ltrb):
    """(N,) centerness of (N, 4) distances (left, top, right, bottom), all > 0."""
    left, top, right, bottom = ltrb.unbind(-1)
    return torch.sqrt(torch.minimum(left, right) / torch.maximum(left, right) * torch.minimum(top, bottom) / torch.maximum(top, bottom))


crowded_image, crowded_target = ShapesDetection(1, ShapesConfig(occlusion=0.6, min_objects=6, max_objects=8), seed=2)[0]
crowded_boxes, crowded_labels = crowded_target["boxes"].as_subclass(torch.Tensor).double(), crowded_target["labels"]
points64 = points.double()
strides64 = torch.full((len(points),), 8.0, dtype=torch.float64)
ctr_maps = {}
for radius in (1.5, None):
    matched, ltrb, counts = fcos_targets_by_hand(points64, 8.0, crowded_boxes, radius)
    library = fcos_targets(points64, strides64, [{"boxes": crowded_boxes, "labels": crowded_labels}], center_sampling_radius=radius)
    positive = matched >= 0
    torch.testing.assert_close(library.matched[0], matched, rtol=0, atol=0)
    torch.testing.assert_close(library.labels[0], torch.where(positive, crowded_labels[matched.clamp(min=0)], 0), rtol=0, atol=0)
    torch.testing.assert_close(library.boxes[0][positive], crowded_boxes[matched[positive]], rtol=0, atol=0)
    ctr = centerness_by_hand(ltrb[positive])
    torch.testing.assert_close(centerness_target(points64[positive], library.boxes[0][positive]), ctr, rtol=0, atol=1e-12)
    ctr_maps[radius] = (positive, ctr)
    contested = "inside 2+ boxes" if radius is None else f"inside 2+ boxes and within {radius} strides of their centres"
    print(f"radius {radius}: {int(positive.sum()):3} positives for {len(crowded_boxes)} objects; "
          f"{int((counts >= 2).sum()):2} locations {contested} (the smallest box wins)")  # fmt: skip
    print(f"{'':13}centerness of the positives: min {ctr.min():.2f}, median {ctr.median():.2f}, max {ctr.max():.2f}")
print("matches, labels, boxes = mlcraft's fcos_targets; centerness = centerness_target (1e-12)")
(_, sampled_ctr), (_, all_ctr) = ctr_maps[1.5], ctr_maps[None]
assert sampled_ctr.median() > all_ctr.median(), "centre sampling keeps the more central locations"
assert sampled_ctr.min() < 0.3, "yet a small box can still give a positive with a low centerness"

fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, (radius, (positive, ctr)) in zip(axes, ctr_maps.items(), strict=True):
    draw_boxes(ax, crowded_image, crowded_boxes, color="white", linestyle="--")
    dots = ax.scatter(*points[positive].T, c=ctr, cmap="viridis", vmin=0, vmax=1, s=28, edgecolors="black", linewidths=0.3)
    ax.set_title(f"positives coloured by centerness, radius {radius}", fontsize=9)
fig.colorbar(dots, ax=axes, shrink=0.8, label="centerness target")
plt.show()


# %% [markdown]
# Without centre sampling every location inside a box is a positive, including those on its rim
# with centerness near 0. With it there are fewer positives, and mostly nearer the centre (the
# median centerness rises), but on small boxes the centerness can still be low: 1.5 strides is
# 12 px, and a box 27 px wide reaches only 13.5 px from its centre, so a location admitted near
# the radius can sit a few pixels from the box's edge (the lowest here, 0.17, lies 2.9 px from the
# right side and 5.1 px from the top of a 27 px box). Where boxes overlap, the smaller box takes
# the shared locations.
#
# ### The same loss in torchvision's FCOS
#
# torchvision ships FCOS as `torchvision.models.detection.FCOS`. We build it with a tiny random
# backbone (three stride-2 convolutions, 32 channels, since the head's GroupNorm needs a multiple
# of 32) and one feature level of stride 8, so nothing is downloaded, and run its training pieces
# in float64 as `FCOS.forward` does (backbone → head → anchors → `compute_loss`), skipping its
# resize-and-normalise transform. `FCOS.compute_loss` assigns locations to boxes and hands the
# result, `matched_idxs`, to the head's `compute_loss`, which returns the three terms. We catch
# `matched_idxs` on their way, compare them with `fcos_targets` (on two validation images and the
# crowded image above, where the smallest-box rule decides some locations), and recompute the
# three terms by hand from the same matches. The installed source, `torchvision/models/detection/fcos.py`
# (`FCOSHead.compute_loss`), fixes the details to copy: each term is *summed* over the batch and
# divided by the number of foreground locations (at least 1); the focal loss runs over every
# location and class column; the GIoU loss and the centerness BCE over the foreground only; and
# the box coder multiplies the predicted distances by the anchor size (`normalize_by_size`).
#
# **Predict, then run.** torchvision's "anchors" for a stride-8 level are 8 px squares, one per
# location. Will their centres be the same points as `ShapesDetector`'s locations?


# %%
torch.manual_seed(0)
tiny_backbone = nn.Sequential(
    nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, stride=2, padding=1),
)  # fmt: skip
tiny_backbone.out_channels = 32  # FCOS reads this attribute
tv_fcos = FCOS(tiny_backbone, num_classes=len(SHAPE_CLASSES) + 1, anchor_generator=AnchorGenerator(((8,),), ((1.0,),)))
tv_fcos = tv_fcos.double()
nn.init.constant_(tv_fcos.head.regression_head.bbox_reg.bias, 1.0)  # untrained boxes 2 strides wide, not points

# Two validation images and the crowded image above, where some locations are candidates of two boxes.
tv_images, tv_raw_targets = collate_detection([val_set[0], val_set[1], (crowded_image, crowded_target)])
tv_images = tv_images.double()
tv_targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor).double(), "labels": t["labels"]} for t in tv_raw_targets]
tv_features = [tv_fcos.backbone(tv_images)]  # one level: (3, 32, 16, 16)
head_outputs = tv_fcos.head(tv_features)  # cls_logits (3, 256, 4), bbox_regression (3, 256, 4), bbox_ctrness (3, 256, 1)
tv_anchors = tv_fcos.anchor_generator(ImageList(tv_images, [(128, 128)] * len(tv_images)), tv_features)  # 3 × (256, 4)

caught = {}
head_compute_loss = tv_fcos.head.compute_loss


def catch_matches(targets, outputs, anchors, matched_idxs):
    """Stands in for the head's compute_loss for one call: keeps the matches, then computes as usual."""
    caught["matched_idxs"] = matched_idxs
    return head_compute_loss(targets, outputs, anchors, matched_idxs)


tv_fcos.head.compute_loss = catch_matches  # on this instance only
try:
    tv_losses = tv_fcos.compute_loss(tv_targets, head_outputs, tv_anchors, [len(tv_anchors[0])])  # one level of 256
finally:
    del tv_fcos.head.compute_loss  # the class's method again, even if the call failed

anchors_b = torch.stack(tv_anchors)  # (B, L, 4)
centres = (anchors_b[..., :2] + anchors_b[..., 2:]) / 2  # (B, L, 2): the locations
sizes = anchors_b[..., 2] - anchors_b[..., 0]  # (B, L): 8 px, the stride
print(f"first torchvision locations {centres[0, :3].tolist()}, ShapesDetector's {points[:3].tolist()}")
ours = fcos_targets(centres[0], sizes[0], tv_targets, center_sampling_radius=1.5)
matched = torch.stack(caught["matched_idxs"])  # (B, L)
torch.testing.assert_close(matched, ours.matched, rtol=0, atol=0)
_, _, tv_counts = fcos_targets_by_hand(centres[2], 8.0, tv_targets[2]["boxes"])  # the crowded image
crowded_areas = box_area(tv_targets[2]["boxes"])  # (G,)
area_gaps = (crowded_areas[:, None] - crowded_areas[None, :]).abs() + torch.eye(len(crowded_areas)) * 1e9
assert (tv_counts >= 2).sum() > 0 and area_gaps.min() > 8, "the smallest-box rule is exercised, on areas float32 can tell apart"
print(f"torchvision's matched_idxs = mlcraft's fcos_targets on the same points, "
      f"including {int((tv_counts >= 2).sum())} locations that are candidates of two boxes")  # fmt: skip

foreground = matched >= 0  # (B, L)
num_foreground = max(1, int(foreground.sum()))
matched_labels = torch.stack([t["labels"][m.clamp(min=0)] for t, m in zip(tv_targets, matched, strict=True)])  # (B, L)
matched_boxes = torch.stack([t["boxes"][m.clamp(min=0)] for t, m in zip(tv_targets, matched, strict=True)])  # (B, L, 4)

one_hot = torch.zeros_like(head_outputs["cls_logits"])  # (B, L, K + 1): column = label, column 0 never positive
one_hot[foreground, matched_labels[foreground]] = 1.0
classification = focal_loss_by_hand(head_outputs["cls_logits"], one_hot, reduction="sum") / num_foreground

distances = head_outputs["bbox_regression"] * sizes[..., None]  # (B, L, 4): the coder's normalize_by_size, in px
predicted = torch.cat((centres - distances[..., :2], centres + distances[..., 2:]), dim=-1)[foreground]  # (P, 4) xyxy
target_boxes = matched_boxes[foreground]  # (P, 4)
eps = 1e-7  # torchvision's generalized_box_iou_loss guards both divisions with it
top_left, bottom_right = torch.max(predicted[:, :2], target_boxes[:, :2]), torch.min(predicted[:, 2:], target_boxes[:, 2:])
inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)  # (P,)
union = area_by_hand(predicted) + area_by_hand(target_boxes) - inter
enclosing = (torch.max(predicted[:, 2:], target_boxes[:, 2:]) - torch.min(predicted[:, :2], target_boxes[:, :2])).prod(dim=-1)
giou = inter / (union + eps) - (enclosing - union) / (enclosing + eps)
box_regression = (1 - giou).sum() / num_foreground

fg_centres = centres[foreground]  # (P, 2)
target_ltrb = torch.cat((fg_centres - target_boxes[:, :2], target_boxes[:, 2:] - fg_centres), dim=-1)  # (P, 4) px
ctr_logits, ctr_targets = head_outputs["bbox_ctrness"][..., 0][foreground], centerness_by_hand(target_ltrb)
bce = -(ctr_targets * F.logsigmoid(ctr_logits) + (1 - ctr_targets) * F.logsigmoid(-ctr_logits))
centerness = bce.sum() / num_foreground

by_hand = {"classification": classification, "bbox_regression": box_regression, "bbox_ctrness": centerness}
for name, value in by_hand.items():
    torch.testing.assert_close(value, tv_losses[name], rtol=0, atol=1e-10, msg=name)
    print(f"{name:15} torchvision {tv_losses[name].item():.6f}  by hand {value.item():.6f}")
print(f"{num_foreground} foreground locations in {len(tv_images)} images; all three terms equal to 1e-10 in float64")


# %% [markdown]
# All three terms agree from the same matches. Where torchvision's FCOS differs from
# `ShapesDetector`, both conventions are valid; they are choices a checkpoint bakes in, so
# porting weights between the two means translating them:
#
# - **Where a location is.** torchvision's anchor centres sit on the top-left corners of the
#   cells, $(j s, i s)$; ours at the cell centres, $((j + \tfrac12) s, (i + \tfrac12) s)$, half a
#   stride further. The head learns whichever it is trained with; the centre is symmetric, which
#   makes it the usual choice in FCOS's own code.
# - **Class columns.** torchvision's `num_classes` counts the background, so labels 1..K index the
#   logit columns directly and column 0 is a class that is never positive (the focal loss trains
#   it towards 0 everywhere, a wasted output). `ShapesDetector` has K columns and uses label − 1.
# - **Box distances.** torchvision predicts `relu(raw)` in strides (the box coder's
#   `normalize_by_size`); ours predicts `stride × exp(raw)` in pixels. Both make the regression
#   scale-free across levels; `exp` is positive with a gradient everywhere, `relu` can get stuck
#   at 0, where the GIoU's `eps` keeps the loss finite.
# - **Levels.** With several levels, torchvision also gives each level a range of box sizes
#   (largest distance between 4 and 8 strides); with one level the range is 0 to ∞, as here.
#
# One difference is a matter of precision, not of convention. Both give a contested location to
# the smallest box, but torchvision ranks the candidates by `1e8 − area` in the boxes' dtype and
# takes the largest. Here the boxes are float64 and the areas compare exactly. In the usual
# float32, numbers near $10^8$ lie 8 apart, so two candidate boxes whose areas differ by less than
# about 8 px² can round to the same key, and the tie goes to the box listed first, which need not
# be the smaller; `fcos_targets` compares the areas themselves. The crowded image's areas differ
# by far more than 8 px² (the assert above), so a float32 key would rank its boxes the same way.
#
# ### Training
#
# Before training, the network's outputs mean nothing. Here are its detections on four validation
# images; we will draw the same images, the same way, after training.
#
# **Predict, then run.** Every class logit starts at probability 0.01 and every centerness logit
# at about 0, and a detection's score is $\sqrt{\text{class probability} \times \text{centerness}}$. What
# scores will the untrained detections have, and will any reach 0.3?


# %%
def show_detections(model, title, indices=(0, 1, 2, 3), min_score=0.3):
    """Ground truth dashed white; detections scoring >= min_score on top (the 3 best where none does)."""
    images, targets = collate_detection([val_set[i] for i in indices])
    model_device = next(model.parameters()).device
    detections = [{k: v.cpu() for k, v in d.items()} for d in model.predict(images.to(model_device))]  # best first
    fig, axes = plt.subplots(1, len(indices), figsize=(3.2 * len(indices), 3.6))
    for ax, image, target, det in zip(axes, images, targets, detections, strict=True):
        shown = det["scores"] >= min_score
        caption = f"{int(shown.sum())} detection{'' if shown.sum() == 1 else 's'} ≥ {min_score}"
        if not shown.any():
            shown = torch.arange(len(det["scores"])) < 3
            caption = f"none ≥ {min_score}: the 3 best shown"
        draw_boxes(ax, image, target["boxes"], color="white", linestyle="--")
        draw_boxes(ax, None, det["boxes"][shown], det["labels"][shown], det["scores"][shown], class_names=SHAPE_CLASSES, title=caption)
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


show_detections(untrained, "before training")


# %% [markdown]
# Every class logit starts at the same small probability (`prior_prob = 0.01`, as in RetinaNet,
# so that the loss of the many background locations does not swamp the first steps), so every
# score sits near $\sqrt{0.01 \times 0.5} \approx 0.07$ and none reaches 0.3. The three best are
# 16 px boxes: the distances start at `stride × exp(0)` = 8 px on each side, and tiny differences
# in the initial weights decide where.
#
# Now train. `train_detector` builds the model and runs the `Trainer` of lesson 01 with the
# settings measured for this lesson, `DEFAULT_DETECTOR_TRAINING`: AdamW at a peak learning rate
# of 3e-3 after 40 warm-up steps, cosine decay, gradients clipped at norm 10, bf16 autocast, and
# 400 steps of 32 images drawn from 2048 training images (about 6 passes over them). That full
# run takes about a minute and a half on two CPU cores and seconds on a GPU. On a CPU the lesson
# trains half of it by default: 200 steps with the same schedule shape, compressed (20 warm-up
# steps, then the cosine decay over the other 180). It shows the full run's loss curve, COCO
# numbers and error counts beside its own, from a small file made once with the full run.


# %%
# The full run takes about 1.5 min on a 2-core CPU and seconds on a GPU. It is on by default on a GPU;
# set MLCRAFT_FULL_RUN=1 (or change this line to True) to run it on a CPU.
FULL_RUN = device.type == "cuda" or os.environ.get("MLCRAFT_FULL_RUN") == "1"
SHORT_STEPS = 200  # the CPU default; the full run is DEFAULT_DETECTOR_TRAINING's 400 steps
FULL_RUN_FILE = Path("assets") / "03_detector_full_run.json"  # relative to the notebook's folder, course/
# Only an explicit MLCRAFT_FULL_RUN=1 rewrites the committed results; a full run that is on because a GPU
# is there (or because the line above was edited) writes them to a temporary file instead.
REFRESH_SAVED_RUN = os.environ.get("MLCRAFT_FULL_RUN") == "1"
if FULL_RUN:
    training_config = DEFAULT_DETECTOR_TRAINING
else:
    # model_validate runs the config's checks (warmup_steps <= max_steps); model_copy(update=...) would skip them
    short_fields = {"max_steps": SHORT_STEPS, "warmup_steps": SHORT_STEPS // 10}
    training_config = TrainingConfig.model_validate({**DEFAULT_DETECTOR_TRAINING.model_dump(), **short_fields})


def save_full_run(trainer, metrics, confusion, path, seconds):
    """Write the run's loss at every step, its COCO numbers and its detection confusion matrix on val_set as JSON.

    The committed assets/03_detector_full_run.json was made by this function on the full path: 400 steps of
    32 images (DEFAULT_DETECTOR_TRAINING), seed 0, on a 2-core AMD EPYC CPU with one intra-op thread
    (MLCRAFT_FULL_RUN=1 OMP_NUM_THREADS=1 jupyter nbconvert --execute), on 2026-12-04.
    """
    record = {
        "made_by": "course/03_detection.py, section 8, save_full_run (MLCRAFT_FULL_RUN=1)",
        "date": time.strftime("%Y-%m-%d"),
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "steps": len(trainer.history),
        "batch_size": trainer.config.batch_size,
        "seed": trainer.config.seed,
        "seconds": round(seconds, 1),
        "loss": [round(h["loss"], 4) for h in trainer.history],
        "coco": {name: round(float(metrics[name]), 4) for name in STAT_NAMES},
        "AP_per_class": {SHAPE_CLASSES[k - 1]: round(float(v), 4) for k, v in metrics["AP_per_class"].items()},
        "AP_per_iou_threshold": [round(float(v), 4) for v in metrics["precision"][:, :, :, 0, -1].mean(axis=(1, 2))],
        "confusion": {  # the matrix of "Where it fails": detections with score >= 0.3, matched at IoU >= 0.5
            "rows": [*SHAPE_CLASSES, "nothing there"],
            "columns": [*SHAPE_CLASSES, "missed"],
            "counts": confusion.tolist(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def load_full_run(path):
    """The saved full run as a dict, or None (with a note) where the file is not there, e.g. on Colab."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"no saved full run to compare with ({err.__class__.__name__}: {path}); the plots show this run only")
        return None


# %%
train_set = ShapesDetection(2048, ShapesConfig(), seed=0)  # seed 0: no image in common with val_set (seed 1)
print(training_config)
start = time.perf_counter()
detector, trainer = train_detector(train_set, config=detector_config, training=training_config)
train_seconds = time.perf_counter() - start
steps = len(trainer.history)
print(f"{'full' if FULL_RUN else 'short'} run: {steps} steps of {training_config.batch_size} images in {train_seconds:.0f} s on {trainer.device}")
full_run = None if FULL_RUN else load_full_run(FULL_RUN_FILE)  # the full path saves its own at the end of section 8


# %%
losses = torch.tensor([h["loss"] for h in trainer.history])
window = 10
smoothed = F.avg_pool1d(losses[None, None], window, stride=1)[0, 0]  # moving average
fig, ax = plt.subplots(figsize=(7, 3.5))
if full_run is not None:
    full_losses = torch.tensor(full_run["loss"])
    full_smoothed = F.avg_pool1d(full_losses[None, None], window, stride=1)[0, 0]
    ax.plot(range(1, len(full_losses) + 1), full_losses, alpha=0.3, lw=0.8, color="tab:grey")
    ax.plot(range(window, len(full_losses) + 1), full_smoothed, color="tab:grey",
            label=f"full run, {full_run['steps']} steps (saved), moving average")  # fmt: skip
ax.plot(range(1, steps + 1), losses, alpha=0.35, lw=0.8, color="tab:blue", label="this run, per step")
ax.plot(range(window, steps + 1), smoothed, color="tab:orange", label=f"this run, moving average ({window} steps)")
ax.set_xlabel("step")
ax.set_ylabel("loss (focal + GIoU + centerness)")
ax.set_yscale("log")
ax.set_title("ShapesDetector on synthetic shapes")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


# %%
show_detections(detector, "after training")


# %% [markdown]
# The same four images, the same drawing. Now the numbers that summarise it: COCO AP on the 256
# held-out validation images (another seed, never seen in training). `evaluate_detector` runs
# `predict` over a data set and calls `coco_evaluate`. We also collect the detections ourselves,
# to plot the per-class curves and to compare with `pycocotools` once more, on a real detector.
#
# **Predict, then run.** Will AP50 be close to 1? Will AP, which asks for IoU up to 0.95, be as
# close?


# %%
metrics = evaluate_detector(detector, val_set)
val_images, _ = collate_detection([val_set[i] for i in range(len(val_set))])
val_detections = [
    {k: v.cpu() for k, v in det.items()} for batch in val_images.split(32) for det in detector.predict(batch.to(trainer.device))
]  # the batches evaluate_detector uses
assert math.isclose(coco_evaluate(val_truths, val_detections)["AP"], metrics["AP"], abs_tol=1e-9)
compare_with_pycocotools(metrics, val_truths, val_detections)
print("AP per class:", {SHAPE_CLASSES[k - 1]: round(v, 3) for k, v in metrics["AP_per_class"].items()})
print(f"\nvalidation, this run ({steps} steps): AP50 {metrics['AP50']:.3f}, AP {metrics['AP']:.3f}")
if full_run is not None:  # None on the full path
    print(f"validation, saved full run ({full_run['steps']} steps): AP50 {full_run['coco']['AP50']:.3f}, AP {full_run['coco']['AP']:.3f}")
assert metrics["AP50"] > 0.9 and metrics["AP"] > 0.7, "both runs find nearly every object; the short one places boxes less tightly"


# %%
plot_pr_curves(val_truths, val_detections, "trained ShapesDetector")


# %% [markdown]
# Half the steps already find nearly every object: AP50 is close to the full run's. What the
# second half of the run buys is mostly tighter boxes, which only AP sees. The full run is the one
# `train_detector`'s docstring reports (AP50 1.000, AP 0.926, measured with two threads; sums split
# over another number of threads, or run on another device, round slightly differently, and
# training amplifies such differences, so expect the same AP50 and an AP within about 0.01). Its
# table also shows what more steps buy: AP 0.943 after 600 steps, 0.961 after 1800.
#
# At IoU 0.5 the curves hug the top right corner: almost every object is found, with the right
# class, before almost any false alarm, so AP50 is close to 1. AP is lower because it also asks for
# IoU up to 0.95. `metrics["precision"]` holds the interpolated curves for every threshold
# (axes: IoU threshold, recall, class, area range, detections per image), so AP at each
# threshold is one mean away:
#
# **Predict, then run.** Up to which IoU threshold will the trained detector keep an AP near 1, and
# how will its curve compare with the simulated detector's?


# %%
def ap_per_iou_threshold(metrics):
    precision = metrics["precision"][:, :, :, 0, -1]  # (T, R, K): all areas, 100 detections per image
    assert (precision >= 0).all(), "every class has ground truth here, so no -1 entries"
    return precision.mean(axis=(1, 2))  # (T,)


fig, ax = plt.subplots(figsize=(6, 3.5))
for name, m in ((f"trained ShapesDetector, {steps} steps", metrics), ("simulated detector (section 7)", simulated_metrics)):
    ax.plot(IOU_THRESHOLDS, ap_per_iou_threshold(m), "o-", label=f"{name}: AP = {m['AP']:.3f}")
if full_run is not None:
    ax.plot(IOU_THRESHOLDS, full_run["AP_per_iou_threshold"], "s--", color="tab:grey",
            label=f"full run, {full_run['steps']} steps (saved): AP = {full_run['coco']['AP']:.3f}")  # fmt: skip
ax.set_xlabel("IoU threshold")
ax.set_ylabel("AP at that threshold")
ax.set_ylim(0, 1.05)
ax.set_title("COCO's AP is the mean of these ten points")
ax.legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()
print("AP at IoU 0.50 ... 0.95, this run:", ap_per_iou_threshold(metrics).round(3).tolist())
if full_run is not None:
    print("                   saved full run:", full_run["AP_per_iou_threshold"])


# %% [markdown]
# The full run loses almost nothing up to IoU 0.85 and then drops; the short run's boxes are
# looser and its curve bends earlier. At 0.95 a box must be within about a pixel of the truth on a
# 30 px object. That last stretch is what AP measures and
# AP50 does not. `AR1` is low for another reason: it allows one detection per image and class,
# and an image can hold several objects of one class.
#
# ### Where it fails
#
# AP hides *how* a detector fails. A cheap look is a confusion matrix for detection. Take the
# confident detections (score ≥ 0.3). Each one that overlaps an object with IoU ≥ 0.5 counts in
# that object's row, in the column of its predicted class; one that overlaps no object counts in
# the "nothing there" row. Each object without a confident detection *of its class* counts as
# "missed".
#
# **Predict, then run.** Which errors will dominate: missed objects, found objects given the wrong
# class, or detections where there is nothing?


# %%
true_names, predicted_names = [*SHAPE_CLASSES, "nothing there"], [*SHAPE_CLASSES, "missed"]
confusion = torch.zeros(len(true_names), len(predicted_names), dtype=torch.int64)
errors_per_image = []
for truth, det in zip(val_truths, val_detections, strict=True):
    confident = det["scores"] >= 0.3
    iou = box_iou(truth["boxes"], det["boxes"][confident])  # (G, D)
    errors = 0
    for d, label in enumerate(det["labels"][confident].tolist()):
        g = int(iou[:, d].argmax()) if len(iou) else -1  # the object this detection overlaps most
        row = int(truth["labels"][g]) - 1 if g >= 0 and iou[g, d] >= 0.5 else len(SHAPE_CLASSES)
        confusion[row, label - 1] += 1
        errors += row != label - 1
    same_class = truth["labels"][:, None] == det["labels"][confident][None, :]  # (G, D)
    found = ((iou >= 0.5) & same_class).any(dim=1)  # (G,): a confident detection of the right class
    for label in truth["labels"][~found].tolist():
        confusion[label - 1, -1] += 1
        errors += 1
    errors_per_image.append(errors)

corner = "true \\ predicted"
print(f"{corner:>16}" + "".join(f"{name:>10}" for name in predicted_names))
for name, counts in zip(true_names, confusion.tolist(), strict=True):
    print(f"{name:>16}" + "".join(f"{v:>10}" for v in counts))
worst = sorted(range(len(val_set)), key=lambda i: -errors_per_image[i])[:4]
show_detections(detector, "the validation images with the most errors", indices=worst)


# %%
# The full path saves its run here, now that every number is computed; the short path reads the saved
# full run's matrix and sets its error counts beside this run's.
def error_counts(confusion):
    """Missed objects, detections of another class on an object, detections on nothing: (K + 1, K + 1) matrix."""
    confusion, k = torch.as_tensor(confusion), len(SHAPE_CLASSES)
    on_objects = confusion[:k, :k]  # (K, K): rows true class, columns predicted class
    return {"missed": int(confusion[:k, k].sum()), "another class": int(on_objects.sum() - on_objects.trace()),
            "nothing there": int(confusion[k, :k].sum())}  # fmt: skip


run_errors = {f"this run, {steps} steps": error_counts(confusion)}
if FULL_RUN:
    run_file = FULL_RUN_FILE if REFRESH_SAVED_RUN else Path(tempfile.gettempdir()) / FULL_RUN_FILE.name
    save_full_run(trainer, metrics, confusion, run_file, train_seconds)
    print(f"this run's results written to {run_file}" + ("" if REFRESH_SAVED_RUN else f"; {FULL_RUN_FILE} is rewritten only with MLCRAFT_FULL_RUN=1"))
elif full_run is not None:
    assert full_run["confusion"]["rows"] == true_names and full_run["confusion"]["columns"] == predicted_names
    print(f"saved full run ({full_run['steps']} steps):\n{corner:>16}" + "".join(f"{name:>10}" for name in predicted_names))
    for name, counts in zip(true_names, full_run["confusion"]["counts"], strict=True):
        print(f"{name:>16}" + "".join(f"{v:>10}" for v in counts))
    run_errors[f"saved full run, {full_run['steps']} steps"] = error_counts(full_run["confusion"]["counts"])
for name, counts in run_errors.items():
    print(f"{name:26}: " + ", ".join(f"{kind} {n:3}" for kind, n in counts.items()) + f"; {sum(counts.values()):3} errors in all")
if not FULL_RUN and full_run is not None:
    short_errors, full_errors = run_errors.values()
    assert full_errors["missed"] == 0 and 3 * sum(full_errors.values()) < sum(short_errors.values()), \
        "the saved full run misses nothing and makes several times fewer errors than the short run"  # fmt: skip


# %% [markdown]
# Almost nothing is missed: nearly every object has a confident detection of its own class (the
# diagonal), and the "missed" column holds a handful at most. The errors are *extra* detections,
# mostly with lower scores, of two kinds, both visible above:
#
# - a **second label on one object**: a shape gets a box of its own class and, with a lower
#   score, a box of another class; most often circles and squares take each other's label (the
#   box of a circle *is* a square). Class-aware NMS (section 5) never lets boxes of different
#   classes suppress each other, so both survive;
# - **detections where there is nothing**, mostly squares, usually on a patch of plain background
#   next to other objects, whose edges frame it like the sides of a square.
#
# The counts above put numbers on it. The short run makes many of both; the saved full run, with
# twice the steps, makes several times fewer (about 6 times fewer in all when this lesson was
# measured, most of the gain in labels of another class; the assert checks at least 3 times) and
# misses nothing. Both kinds mostly come after the true positives in the ranking, which is why
# they cost AP50 so little; an application would cut them with a score threshold around 0.5. To
# see a detector struggle, raise `clutter` and `occlusion` in `ShapesConfig` and train again: the
# same tools (curves, AP per threshold, this matrix) show what breaks.
#
# ## 9. The library route, and real data
#
# ### torchvision's Faster R-CNN
#
# Production detectors come from libraries. `fasterrcnn_for_shapes` builds torchvision's
# `fasterrcnn_mobilenet_v3_large_fpn` for our 3 classes and 128 px images, with `weights=None` and
# `weights_backbone=None`: every weight is random, nothing is downloaded. It is a *two-stage*
# detector: a region proposal network (RPN) scores anchors (section 6) and proposes boxes, then a
# second head classifies and refines each proposal, cropped from the feature maps with RoIAlign.
#
# torchvision's detection models have one calling convention, worth knowing by heart. In
# **training** mode, `model(images, targets)` takes a list of `(3, H, W)` images and a list of
# `{"boxes", "labels"}` dicts, and returns a **dict of losses**; you sum them and backpropagate.
# In **eval** mode, `model(images)` returns one `{"boxes", "labels", "scores"}` dict per image:
# the same format as `ShapesDetector.predict`, so `coco_evaluate` takes either.
#
# A few steps on the same data, just to see the API at work (not to train it):
#
# **Predict, then run.** How many losses will the model return in training mode, and to which
# stage does each belong? Per step of 4 images, will it be about as fast as `ShapesDetector`, or
# many times slower?


# %%
seed_everything(0)
frcnn = fasterrcnn_for_shapes(num_classes=3, image_size=128).to(device)
frcnn.roi_heads.fg_bg_sampler.batch_size_per_image = 64  # proposals sampled per image for the second stage (default 512)
print(f"Faster R-CNN (MobileNetV3-FPN): {sum(p.numel() for p in frcnn.parameters()) / 1e6:.1f} M parameters")

frcnn_data = ShapesDetection(12, ShapesConfig(), seed=0)
optimizer = torch.optim.SGD(frcnn.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
frcnn.train()
start = time.perf_counter()
for step in range(3):
    images, targets = collate_detection([frcnn_data[4 * step + i] for i in range(4)])
    plain = [{"boxes": t["boxes"].as_subclass(torch.Tensor).to(device), "labels": t["labels"].to(device)} for t in targets]
    loss_dict = frcnn(list(images.to(device)), plain)  # training mode: a dict of losses
    loss = sum(loss_dict.values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"step {step}: " + ", ".join(f"{name} {value.item():.3f}" for name, value in loss_dict.items()))
frcnn_seconds = (time.perf_counter() - start) / 3
ours_seconds = train_seconds / steps / training_config.batch_size * 4  # ShapesDetector, per 4 images
print(f"per step of 4 images on {device}: Faster R-CNN {frcnn_seconds:.2f} s, ShapesDetector {ours_seconds:.3f} s "
      f"({frcnn_seconds / ours_seconds:.0f}x)")  # fmt: skip
print(f"at this speed, 10,000 Faster R-CNN steps would take {10_000 * frcnn_seconds / 3600:.1f} hours here")


# %% [markdown]
# **Predict, then run.** In eval mode the model returns one dict per image. Which keys will it hold?
# After three training steps from random weights, what AP50 do you expect?


# %%
frcnn.eval()
with torch.no_grad():
    frcnn_out = frcnn([val_set[i][0].as_subclass(torch.Tensor).to(device) for i in range(8)])  # eval mode: detections
frcnn_out = [{key: value.cpu() for key, value in det.items()} for det in frcnn_out]
print({key: (tuple(value.shape), value.dtype) for key, value in frcnn_out[0].items()})
frcnn_metrics = coco_evaluate(val_truths[:8], frcnn_out)  # the same function as for ShapesDetector
print(f"coco_evaluate on 8 validation images after 3 steps: AP50 {frcnn_metrics['AP50']:.3f}, AP {frcnn_metrics['AP']:.3f}")


# %% [markdown]
# The losses name the two stages: `loss_objectness` and `loss_rpn_box_reg` for the RPN,
# `loss_classifier` and `loss_box_reg` for the second head. After three steps the model knows
# nothing yet (AP ≈ 0), as expected. The detections have our format, so `coco_evaluate` reads
# them as they are, and `evaluate_detector` accepts a torchvision model as well as ours.
#
# What would it take to train it? Per image, a training step costs far more than our detector's
# (printed above, and that with the second stage cut to 64 sampled proposals per image instead
# of 512), and all 19 M weights start from random. We have not trained it to convergence here;
# detectors of this size are trained for tens of thousands of steps (torchvision's COCO recipe
# for this model runs 26 epochs of 118,000 images, starting from an ImageNet-trained backbone).
# The estimate above says what even 10,000 steps would cost on this CPU: a job for a GPU.
#
# With a network, the usual route is **pretrained weights**: a backbone trained on ImageNet, or
# the whole detector trained on COCO, fine-tuned on your data. They are a download (tens of MB),
# so this lesson never fetches them; on Colab:
#
# ```python
# from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
# from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
#
# model = fasterrcnn_mobilenet_v3_large_fpn(weights="DEFAULT")  # COCO weights, downloaded once
# in_features = model.roi_heads.box_predictor.cls_score.in_features
# model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes=3 + 1)  # new head: 3 shapes + background
# ```
#
# ### Real images
#
# `mlcraft.data.voc_detection` loads Pascal VOC (20 classes) through torchvision in exactly the
# sample format of `ShapesDetection`, so everything above runs on it unchanged. The download is
# about 2 GB, so the cell below does nothing unless the data is already there or you set
# `DOWNLOAD_VOC = True`:


# %%
DOWNLOAD_VOC = False  # True: fetch Pascal VOC 2012 (about 2 GB) into VOC_ROOT
VOC_ROOT = Path(os.environ.get("MLCRAFT_VOC_ROOT", "data"))
if DOWNLOAD_VOC or (VOC_ROOT / "VOCdevkit" / "VOC2012").is_dir():
    voc = voc_detection(VOC_ROOT, year="2012", image_set="val", download=DOWNLOAD_VOC)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, i in zip(axes, (0, 1, 2), strict=True):
        image, target = voc[i]
        draw_boxes(ax, image, target["boxes"], target["labels"], class_names=VOC_CLASSES, title=f"VOC val image {i}")
    plt.tight_layout()
    plt.show()
else:
    print(f"Pascal VOC not found under {VOC_ROOT.resolve()}: set DOWNLOAD_VOC = True, or MLCRAFT_VOC_ROOT to a copy")


# %% [markdown]
# Other sets follow the same pattern: `torchvision.datasets.CocoDetection` wrapped with
# `torchvision.datasets.wrap_dataset_for_transforms_v2` gives the same `(image, {"boxes",
# "labels"})` samples, in `xyxy`. Real images are larger and varied, so resize them in the
# transforms (`v2.Resize`) and expect training to need a GPU.
#
# ## 10. What you built
#
# - **Boxes**: three formats and their conversions, area and clipping, each equal to
#   `torchvision.ops`.
# - **IoU** as a loop and as one broadcast, GIoU, and what their values look like.
# - **NMS**: greedy suppression, its class-aware version and its tie rule, equal to
#   `torchvision.ops.nms` and `batched_nms`.
# - **Anchors and matching**: anchors laid out as `AnchorGenerator` does, IoU matching with the
#   low-quality rule as `Matcher` does, and box deltas as `BoxCoder` encodes them; the
#   anchor-free alternative; and DETR's one-to-one Hungarian matching, optimal where greedy is not.
# - **The metric**: precision and recall by hand, the envelope and 101-point AP, and COCO's
#   twelve numbers equal to `pycocotools`.
# - **The detector's loss**: the focal loss, FCOS's targets and centerness, each from its
#   formula, and torchvision's three FCOS loss terms reproduced from the same matches.
# - **A detector** trained on your CPU, and the library route with torchvision.
#
# What to take away: a detector is dense predictions plus three pieces of bookkeeping (matching for
# training, NMS for inference, matching again for evaluation), and each piece is a few lines you
# can test against a library. When a detector's AP is bad, check those pieces first: box formats,
# the matching thresholds, the NMS threshold, and which IoU threshold the metric uses.
#
# ## Self-check
#
# 1. A detector trains without errors but its AP stays near 0. Its boxes come from a COCO json
#    file and go into a torchvision model. What do you check first?
#
#    <details><summary>Answer</summary>The box format. COCO's json files store <code>xywh</code>,
#    torchvision's models and ops take <code>xyxy</code>; mixing them up trains without an error and
#    gives bad numbers. Convert with <code>box_convert</code> and draw a few boxes on their images
#    (section 3). Then the matching thresholds, the NMS threshold and the IoU threshold of the
#    metric (section 10).</details>
#
# 2. Why is $1 - \mathrm{IoU}$ a poor loss for a predicted box that does not overlap its object,
#    and what does GIoU change?
#
#    <details><summary>Answer</summary>For disjoint boxes the IoU is 0 whatever their distance, so
#    the loss is flat at 1 and its gradient is zero: nothing pulls the box towards the object. GIoU
#    subtracts the share of the smallest enclosing box that neither box covers, so it keeps
#    decreasing, towards −1, as the boxes move apart (section 4).</details>
#
# 3. After NMS at 0.5, an image still shows low-scoring boxes on plain background. Did NMS fail?
#    What would a threshold of 0.7 change?
#
#    <details><summary>Answer</summary>No: NMS removes duplicates, boxes that overlap a better box by
#    more than the threshold, not false positives. A score threshold removes those, and AP judges
#    how they are ranked. At 0.7 fewer boxes are suppressed: two genuinely overlapping objects are
#    less likely to merge into one detection, and more duplicates survive (section 5).</details>
#
# 4. A circle and a square overlap with IoU 0.61. What does class-agnostic NMS at 0.5 keep, and how
#    does `batched_nms` avoid the problem?
#
#    <details><summary>Answer</summary>Class-agnostic NMS keeps only the higher-scoring box, losing an
#    object. <code>batched_nms</code> runs NMS per class: torchvision shifts each class's boxes by an
#    offset larger than the image, so boxes of different classes cannot overlap, and runs one plain
#    NMS (section 5).</details>
#
# 5. In anchor matching, what is the band between the two IoU thresholds for, and why is the
#    low-quality rule needed?
#
#    <details><summary>Answer</summary>Anchors with a best IoU between 0.4 and 0.5 are neither clearly
#    right nor clearly wrong, so they are ignored: trained neither as foreground nor as background.
#    A small or off-grid object may overlap no anchor by 0.5 and would be trained as background;
#    the low-quality rule gives every ground truth the anchor(s) it overlaps best (section 6).</details>
#
# 6. In COCO evaluation, is a second detection of an object that a higher-scoring detection has
#    already found a true or a false positive? Why does that matter?
#
#    <details><summary>Answer</summary>A false positive: each object can be matched only once, so
#    duplicates lower the precision. That is why a detector's output goes through NMS before it is
#    evaluated (sections 5 and 7).</details>
#
# 7. A detector has AP50 0.99 and AP 0.70. What does that tell you, and where do you look next?
#
#    <details><summary>Answer</summary>It finds the objects with the right class, but its boxes are
#    not tight: AP averages over the IoU thresholds 0.5 to 0.95. Plot AP per IoU threshold
#    (section 8) to see where it drops: the boxes need work, not the classes.</details>
#
# 8. A dense detector scores 100,000 locations per image; nearly all are easy negatives at
#    $p = 0.01$. How much does one of them add to the cross-entropy, and to the focal loss with
#    $\gamma = 2$? Why does the sum matter more than the single number?
#
#    <details><summary>Answer</summary>Cross-entropy $-\log 0.99 \approx 0.01$; the focal loss
#    multiplies it by $(1 - p_t)^2 = 0.01^2$, so about $10^{-6}$ (10,000 times less; with
#    $\alpha_t = 0.75$, about 13,000 times). One easy negative is negligible either way, but
#    100,000 of them add up to about 1,000 under cross-entropy, far more than a handful of objects
#    contribute, and the gradient then mostly says "background". Under the focal loss their sum is
#    about 0.1 (100,000 × 1.0 × 10⁻⁶; 0.075 with $\alpha_t = 0.75$), less than ten objects the model
#    is unsure of add, and the objects drive training (section 8).</details>
#
# 9. A location lies inside a 20 px box and a 60 px box, close to both centres. Which box does
#    FCOS assign it to? What does centre sampling change, and what is the centerness target of a
#    location 5 px from the left edge and 15 px from the right, at the vertical centre?
#
#    <details><summary>Answer</summary>The smaller box (smallest area wins), otherwise a small
#    object lying on a large one might get no location at all. Centre sampling keeps only
#    locations within 1.5 strides of a box's centre, dropping the rim locations that see mostly
#    background. Centerness is $\sqrt{(5/15) \cdot 1} \approx 0.58$ (section 8).</details>
#
# 10. You move a trained torchvision FCOS head's conventions into a `ShapesDetector`-style head.
#     Name three conventions that differ, none of them wrong.
#
#     <details><summary>Answer</summary>Where a location is (the top-left corner of its cell in
#     torchvision, the cell centre in ours); the class columns (torchvision keeps a never-positive
#     column 0 for the background, ours has K columns for labels 1..K); and the box outputs
#     (`relu(raw)` in strides in torchvision, `stride × exp(raw)` in pixels in ours). Both
#     normalise each term by the number of foreground locations (section 8).</details>
#
# 11. Why does DETR need no NMS, and why would a greedy matcher be a poor substitute for the
#     Hungarian one?
#
#     <details><summary>Answer</summary>Its loss pairs each object with exactly one prediction and
#     trains all the others towards "no object", so a duplicate is penalised during training and
#     the model learns not to make one. Greedy pairing takes the cheapest pair first and can be
#     left with a bad pair (the crafted example of section 6: higher total cost), which would pull
#     a prediction towards an object it does not fit; `linear_sum_assignment` finds the optimum
#     in a fraction of a millisecond for 100 × 20.</details>
#
# ## Further reading
#
# - W. Luo, Y. Li, R. Urtasun, R. Zemel (2016), "Understanding the effective receptive field in
#   deep convolutional neural networks", NeurIPS, https://arxiv.org/abs/1701.04128
# - R. Girshick (2015), "Fast R-CNN", ICCV, https://arxiv.org/abs/1504.08083
# - S. Ren, K. He, R. Girshick, J. Sun (2015), "Faster R-CNN: towards real-time object detection
#   with region proposal networks", NeurIPS, https://arxiv.org/abs/1506.01497
# - T.-Y. Lin et al. (2017), "Feature pyramid networks for object detection", CVPR,
#   https://arxiv.org/abs/1612.03144
# - T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár (2017), "Focal loss for dense object
#   detection" (RetinaNet), ICCV, https://arxiv.org/abs/1708.02002
# - Z. Tian, C. Shen, H. Chen, T. He (2019), "FCOS: fully convolutional one-stage object
#   detection", ICCV, https://arxiv.org/abs/1904.01355; and (2020) "FCOS: a simple and strong
#   anchor-free object detector" (centre sampling, centerness on the regression branch), TPAMI,
#   https://arxiv.org/abs/2006.09214
# - N. Carion et al. (2020), "End-to-end object detection with transformers" (DETR), ECCV,
#   https://arxiv.org/abs/2005.12872; X. Zhu et al. (2021), "Deformable DETR", ICLR,
#   https://arxiv.org/abs/2010.04159
# - H. W. Kuhn (1955), "The Hungarian method for the assignment problem", Naval Research
#   Logistics Quarterly 2, https://doi.org/10.1002/nav.3800020109; D. F. Crouse (2016), "On
#   implementing 2D rectangular assignment algorithms", IEEE TAES,
#   https://doi.org/10.1109/TAES.2016.140952; SciPy's `linear_sum_assignment`,
#   https://docs.scipy.org/doc/scipy/reference/generated/scipy.optimize.linear_sum_assignment.html
# - H. Rezatofighi et al. (2019), "Generalized intersection over union: a metric and a loss for
#   bounding box regression", CVPR, https://arxiv.org/abs/1902.09630
# - T.-Y. Lin et al. (2014), "Microsoft COCO: common objects in context", ECCV,
#   https://arxiv.org/abs/1405.0312; COCO detection evaluation, https://cocodataset.org/#detection-eval
# - M. Everingham et al. (2010), "The Pascal Visual Object Classes (VOC) challenge", IJCV,
#   https://doi.org/10.1007/s11263-009-0275-4
# - torchvision: `torchvision.ops` (boxes, IoU, NMS), https://pytorch.org/vision/stable/ops.html;
#   transforms v2 and bounding boxes, https://pytorch.org/vision/stable/transforms.html; detection
#   models, https://pytorch.org/vision/stable/models.html, and FCOS,
#   https://pytorch.org/vision/stable/models/fcos.html
# - pycocotools, the official COCO API, https://github.com/cocodataset/cocoapi
#
# ---
#
# - **Previous lesson:** [02_attention.ipynb](02_attention.ipynb)
# - **Exercise:** [../exercises/03_detection/03_detection.ipynb](../exercises/03_detection/03_detection.ipynb).
#   Check it with `mlcraft check exercises/03_detection/03_detection.ipynb`.
# - **Next lesson:** [04_nlp.ipynb](04_nlp.ipynb)
