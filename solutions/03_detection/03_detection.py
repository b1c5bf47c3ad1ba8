# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 03 — Object detection from the boxes up
#
# **You will be able to**
# - convert between box formats and compute areas and IoU matrices;
# - write non-maximum suppression, per image and per class;
# - match anchors to ground truths and decode box deltas;
# - compute COCO-style average precision and check it against a reference.
#
# **Prerequisites**: lessons `00_orientation` and `03_detection`; tensor indexing and boolean masks.
#
# **Time**: reading 15 min; exercises 120 min; the reference solution runs top to bottom in under a minute on a 2-core
# CPU, hidden tests included.
#
# **Further reading**: torchvision `torchvision.ops` docs (`box_iou`, `nms`, `batched_nms`); Ren et al., *Faster R-CNN*, NeurIPS 2015; the COCO detection evaluation page (cocodataset.org/#detection-eval); Everingham et al., *The PASCAL VOC Challenge*, IJCV 2010.
#
# An object detector outputs boxes and scores. Between the network's raw outputs and the
# number in a results table sit a handful of small functions: box format conversions, the
# intersection over union (IoU) of two boxes, non-maximum suppression (NMS), the matching of
# anchors to ground truths, the decoding of predicted box offsets, and average precision (AP).
# Each is a few lines long, and each has a classic mistake that trains without an error and
# quietly costs accuracy, or makes a model look better than it is: a "+1 pixel" in an area,
# an overlap that goes negative, a duplicate detection counted as correct.
#
# You will write them one by one and check each against `torchvision` and `pycocotools`, the
# libraries whose numbers papers report:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `box_convert(boxes, in_fmt, out_fmt)` | 2 |
# | 2 | `box_area(boxes)` and `box_iou(boxes1, boxes2)` | 3 |
# | 3 | `nms(boxes, scores, iou_threshold)` | 3 |
# | 4 | `batched_nms(boxes, scores, labels, iou_threshold)` | 1 |
# | 5 | `match_anchors(anchors, gt_boxes, high=0.5, low=0.4)` | 2 |
# | 6 | `decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0))` | 2 |
# | 7 | `average_precision(pred_boxes, pred_scores, gt_boxes, iou_threshold=0.5)` | 3 |
#
# **Boxes.** A box is four numbers. Three layouts are common:
#
# - `"xyxy"`: `(x1, y1, x2, y2)`, the top-left and bottom-right corners (torchvision's layout);
# - `"xywh"`: `(x1, y1, w, h)`, the top-left corner, the width and the height (COCO's json);
# - `"cxcywh"`: `(cx, cy, w, h)`, the centre, the width and the height (DETR, YOLO).
#
# Coordinates are **continuous**: `x` grows to the right, `y` grows downwards, and a box
# `(x1, y1, x2, y2)` covers the region `x1 <= x <= x2`, `y1 <= y <= y2`, with area
# `(x2 - x1) * (y2 - y1)`. A set of `N` boxes is an `(N, 4)` tensor; unless a task says
# otherwise, boxes are `"xyxy"` with `x1 < x2` and `y1 < y2`.
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Later tasks call the functions of earlier ones
# (NMS, anchor matching and AP all need your `box_iou`), so fix a failing task before moving
# on. Run the notebook from top to bottom before you submit, and do not change or delete the
# test cells.
#
# The tests put their tensors on `DEVICE`, the best device present (CUDA, then Apple MPS, then
# CPU), so your code must work on whatever device its input is on. The checks that need
# `float64` run on `DEVICE64`, which is `DEVICE` except on Apple MPS (no `float64` there),
# where it is the CPU.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (tensors, lists of tensors, numbers, strings) and check what comes back against
# `torchvision` and `pycocotools`, which the grader runs itself. Every task here is a function
# of such data, so no test needs to run beside your code (none is marked `@in_kernel`). The
# exceptions your functions raise reach the tests as the built-in class (`ValueError`), and
# changes your code makes to the tensors and lists it is given are copied back, so the tests
# still see whether you modified your inputs. Return exactly what each task asks for, with the
# dtype and device it asks for: nothing else in your notebook can change a test's verdict.
#
# Previous: lesson [`03_detection`](../../course/03_detection.ipynb) · Next: lesson
# [`04_nlp`](../../course/04_nlp.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher

from mlcraft.classroom.testing import DEVICE, assert_close, call_without, grading_seed

# Apple MPS has no float64: the float64 checks run on the CPU there.
DEVICE64 = torch.device("cpu") if DEVICE.type == "mps" else DEVICE


def random_boxes(n, generator, *, max_xy=100.0, min_wh=1.0, max_wh=40.0, dtype=torch.float64, device=DEVICE64):
    """``n`` random ``xyxy`` boxes: top-left corner in ``[0, max_xy)``, sides in ``[min_wh, max_wh)``."""
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64) * max_xy
    size = min_wh + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (max_wh - min_wh)
    return torch.cat((corner, corner + size), dim=1).to(device=device, dtype=dtype)  # (n, 4)


print(
    f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
    f"tests run on DEVICE = {DEVICE}, float64 checks on DEVICE64 = {DEVICE64}"
)


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-box-convert", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Box formats (2 points)
#
# Data sets, models and libraries disagree on the box layout: COCO's json stores `xywh`,
# torchvision's detectors take `xyxy`, DETR predicts `cxcywh`. Feeding one where another is
# expected raises no error; the boxes are simply in the wrong place, and the mAP collapses.
#
# Write `box_convert(boxes, in_fmt, out_fmt) -> torch.Tensor`:
#
# - `boxes` is a floating-point `(N, 4)` tensor in the format `in_fmt`; the result is the same
#   boxes in the format `out_fmt`, an `(N, 4)` tensor with the dtype and device of `boxes`.
# - Formats are exactly the strings `"xyxy"`, `"xywh"` and `"cxcywh"` (see the top of the
#   notebook). Any other format name raises `ValueError` with that name in the message, **even
#   when `in_fmt == out_fmt`**.
# - Every pair of formats works, including `in_fmt == out_fmt` (the same values back).
# - `N = 0` gives an empty `(0, 4)` tensor.
# - It does not modify `boxes`.
#
# Do not call `torchvision.ops.box_convert` or the course package's `box_convert` (the hidden
# tests check this).


# %% nbgrader={"grade": false, "grade_id": "box-convert-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(N, 4)`` boxes from ``in_fmt`` to ``out_fmt``, each one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``."""
    ### BEGIN SOLUTION
    for fmt in (in_fmt, out_fmt):
        if fmt not in ("xyxy", "xywh", "cxcywh"):
            raise ValueError(f"unknown box format {fmt!r}: use 'xyxy', 'xywh' or 'cxcywh'")
    a, b, c, d = boxes.unbind(-1)  # 4 x (N,)
    # Go through the corners: every format converts to and from xyxy.
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xyxy":
        columns = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        columns = (x1, y1, x2 - x1, y2 - y1)
    else:
        columns = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return torch.stack(columns, dim=-1)  # (N, 4)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-box-convert", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
xyxy = torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 3.0]], dtype=torch.float64, device=DEVICE64)
xywh = torch.tensor([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 1.0, 3.0]], dtype=torch.float64, device=DEVICE64)
cxcywh = torch.tensor([[30.0, 50.0, 40.0, 60.0], [0.5, 1.5, 1.0, 3.0]], dtype=torch.float64, device=DEVICE64)
by_name = {"xyxy": xyxy, "xywh": xywh, "cxcywh": cxcywh}

out = box_convert(xyxy, "xyxy", "xywh")
assert isinstance(out, torch.Tensor), f"box_convert should return a tensor, got {type(out).__name__}"
assert out.shape == (2, 4), f"box_convert of (2, 4) boxes should give shape (2, 4), got {tuple(out.shape)}"
for src in by_name:
    for dst in by_name:
        assert_close(
            box_convert(by_name[src], src, dst),
            by_name[dst],
            rtol=1e-12,
            atol=1e-12,
            check_device=True,
            msg=f"{src} -> {dst}",
        )

try:
    box_convert(xyxy, "xyxy", "yolo")
except ValueError:
    pass
else:
    raise AssertionError("box_convert(boxes, 'xyxy', 'yolo') should raise ValueError: 'yolo' is not a format")
### BEGIN HIDDEN TESTS
# Functions sharing a name: the last one listed is the one a failure message names.
_forbidden_convert = (
    "mlcraft.ops.box_convert",
    "torchvision.ops.box_convert",
    "torchvision.ops._box_convert._box_xywh_to_xyxy",
    "torchvision.ops._box_convert._box_xyxy_to_xywh",
    "torchvision.ops._box_convert._box_cxcywh_to_xyxy",
    "torchvision.ops._box_convert._box_xyxy_to_cxcywh",
)
_formats = ("xyxy", "xywh", "cxcywh")


def _convert(boxes_, src, dst):
    before = boxes_.clone()
    result = call_without(box_convert, boxes_, src, dst, forbidden=_forbidden_convert)
    assert torch.equal(boxes_, before), f"box_convert(boxes, {src!r}, {dst!r}) must not modify boxes"
    assert isinstance(result, torch.Tensor), f"box_convert should return a tensor, got {type(result).__name__}"
    assert result.dtype == boxes_.dtype, f"{src} -> {dst}: the dtype should stay {boxes_.dtype}, got {result.dtype}"
    return result


_g = torch.Generator().manual_seed(grading_seed("test-box-convert", 10))
_xyxy64 = random_boxes(50, _g)
_xyxy32 = random_boxes(50, _g, max_xy=500.0, max_wh=200.0, dtype=torch.float32, device=DEVICE)
for _src in _formats:
    _in64 = torchvision.ops.box_convert(_xyxy64.cpu(), "xyxy", _src).to(DEVICE64)
    _in32 = torchvision.ops.box_convert(_xyxy32.cpu(), "xyxy", _src).to(DEVICE)
    for _dst in _formats:
        assert_close(
            _convert(_in64, _src, _dst),
            torchvision.ops.box_convert(_in64.cpu(), _src, _dst).to(DEVICE64),
            rtol=1e-12,
            atol=1e-10,
            check_device=True,
            msg=f"random boxes, {_src} -> {_dst}, float64",
        )
        assert_close(
            _convert(_in32, _src, _dst),
            torchvision.ops.box_convert(_in32.cpu(), _src, _dst).to(DEVICE),
            rtol=1e-6,
            atol=1e-4,
            check_device=True,
            msg=f"random boxes, {_src} -> {_dst}, float32",
        )
        _empty = _convert(torch.zeros(0, 4, dtype=torch.float64, device=DEVICE64), _src, _dst)
        assert _empty.shape == (0, 4), (
            f"{_src} -> {_dst} of no boxes should have shape (0, 4), got {tuple(_empty.shape)}"
        )
    # A round trip gives the boxes back.
    assert_close(
        _convert(_convert(_xyxy64, "xyxy", _src), _src, "xyxy"),
        _xyxy64,
        rtol=1e-12,
        atol=1e-10,
        msg=f"xyxy -> {_src} -> xyxy",
    )

# A wide, flat box and a tall, thin one: width and height must not be swapped.
_flat = torch.tensor([[2.0, 3.0, 102.0, 8.0], [5.0, 1.0, 7.0, 91.0]], dtype=torch.float64, device=DEVICE64)
assert_close(
    _convert(_flat, "xyxy", "xywh"),
    torch.tensor([[2.0, 3.0, 100.0, 5.0], [5.0, 1.0, 2.0, 90.0]], dtype=torch.float64, device=DEVICE64),
    rtol=0,
    atol=1e-12,
    msg="xyxy -> xywh of a flat and a tall box",
)
assert_close(
    _convert(_flat, "xyxy", "cxcywh"),
    torch.tensor([[52.0, 5.5, 100.0, 5.0], [6.0, 46.0, 2.0, 90.0]], dtype=torch.float64, device=DEVICE64),
    rtol=0,
    atol=1e-12,
    msg="xyxy -> cxcywh of a flat and a tall box",
)

# Unknown formats raise ValueError naming the format, even when both names are the same.
for _bad_in, _bad_out, _bad in (
    ("xyxy", "yxyx", "yxyx"),
    ("xy", "xyxy", "xy"),
    ("polygon", "polygon", "polygon"),
    ("xywh", "cxcy", "cxcy"),
):
    try:
        box_convert(_xyxy64, _bad_in, _bad_out)
    except ValueError as _err:
        assert _bad in str(_err), f"the ValueError for format {_bad!r} should name it, got: {_err}"
    else:
        raise AssertionError(f"box_convert(boxes, {_bad_in!r}, {_bad_out!r}) should raise ValueError")

# One box (N = 1), every output format.
_one = torch.tensor([[3.0, 4.0, 9.0, 12.0]], dtype=torch.float64, device=DEVICE64)
for _dst, _want in (("xyxy", [3.0, 4.0, 9.0, 12.0]), ("xywh", [3.0, 4.0, 6.0, 8.0]), ("cxcywh", [6.0, 8.0, 6.0, 8.0])):
    assert_close(
        _convert(_one, "xyxy", _dst),
        torch.tensor([_want], dtype=torch.float64, device=DEVICE64),
        rtol=0,
        atol=1e-12,
        check_device=True,
        msg=f"one box (1, 4) float64, xyxy -> {_dst}",
    )
# bfloat16 keeps its dtype (small integers: every result is exact in bfloat16).
_bf = torch.tensor([[2.0, 4.0, 10.0, 12.0], [0.0, 6.0, 4.0, 8.0]], dtype=torch.bfloat16, device=DEVICE)
for _src in _formats:
    for _dst in _formats:
        assert_close(
            _convert(_bf, _src, _dst).double(),
            torchvision.ops.box_convert(_bf.cpu().double(), _src, _dst).to(DEVICE),
            rtol=0,
            atol=1e-12,
            check_device=True,
            msg=f"(2, 4) bfloat16 boxes, {_src} -> {_dst}",
        )
# A meta tensor has a shape, a dtype and a device but no values: the result stays on that device.
for _src in _formats:
    for _dst in _formats:
        _m = call_without(
            box_convert, torch.empty(3, 4, dtype=torch.float32, device="meta"), _src, _dst, forbidden=_forbidden_convert
        )
        assert isinstance(_m, torch.Tensor) and (_m.device.type, tuple(_m.shape), _m.dtype) == (
            "meta",
            (3, 4),
            torch.float32,
        ), f"{_src} -> {_dst} of a (3, 4) float32 meta tensor should be (3, 4) float32 on meta, got {_m!r}"
### END HIDDEN TESTS
print("box_convert: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-box-iou", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Area and intersection over union (3 points)
#
# The **intersection over union** of two boxes is the area they share divided by the area they
# cover together:
#
# $$\operatorname{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|}.$$
#
# It is 1 for identical boxes and 0 for boxes that do not overlap. Every later task uses it:
# NMS removes boxes that overlap too much, anchors are matched by IoU, and a detection counts as
# correct when its IoU with an object is at least 0.5.
#
# Write two functions for `"xyxy"` boxes:
#
# - `box_area(boxes) -> torch.Tensor`: the `(N,)` areas `(x2 - x1) * (y2 - y1)` of `(N, 4)`
#   boxes. Coordinates are continuous: **no "+1"**. (Some older code, such as the PASCAL VOC
#   tools, counts pixels and uses `(x2 - x1 + 1) * (y2 - y1 + 1)`; torchvision, COCO and this
#   course do not.)
# - `box_iou(boxes1, boxes2) -> torch.Tensor`: the **pairwise** IoU matrix `(N, M)` of `N`
#   boxes against `M` boxes: entry `[i, j]` is the IoU of `boxes1[i]` and `boxes2[j]`.
#   Vectorise it if you can (no Python loop over the boxes): later tasks call it on hundreds of
#   boxes, and a loop is slow there, though the tests do not time it.
#
# The intersection of two boxes is the box from `max(x1)`, `max(y1)` to `min(x2)`, `min(y2)`.
# When the boxes do not overlap, its "width" or "height" comes out **negative**: clamp both at
# 0 before multiplying, or two boxes that are apart in both directions get a positive "overlap"
# (a negative times a negative) and a made-up IoU.
#
# - Boxes that only touch along an edge, or do not overlap at all, have IoU exactly 0 (never a
#   negative number); identical boxes have IoU 1.
# - `N = 0` or `M = 0` gives an empty `(0, M)` or `(N, 0)` result; `box_area` of no boxes is
#   an empty `(0,)` tensor.
# - The results have the dtype and device of the boxes (`float32` or `float64`). Neither
#   function modifies its inputs. The tests use no zero-area boxes.
#
# Do not call `torchvision.ops.box_iou`, `torchvision.ops.box_area` or the course package's
# versions (the hidden tests check this and compare with torchvision on random boxes).


# %% nbgrader={"grade": false, "grade_id": "box-area-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of ``(N, 4)`` ``xyxy`` boxes: ``(x2 - x1) * (y2 - y1)``."""
    ### BEGIN SOLUTION
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "box-iou-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of ``xyxy`` boxes ``boxes1`` ``(N, 4)`` and ``boxes2`` ``(M, 4)``."""
    ### BEGIN SOLUTION
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    size = (bottom_right - top_left).clamp(min=0)  # no overlap -> 0, never negative
    inter = size[..., 0] * size[..., 1]  # (N, M)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter  # (N, M)
    return inter / union
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-box-iou", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
boxes_a = torch.tensor(
    [[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0]], dtype=torch.float64, device=DEVICE64
)
areas = box_area(boxes_a)
assert isinstance(areas, torch.Tensor), f"box_area should return a tensor, got {type(areas).__name__}"
assert_close(
    areas, torch.tensor([100.0, 100.0, 100.0], dtype=torch.float64), rtol=0, atol=1e-12, msg="box_area (no +1)"
)
assert_close(
    box_area(torch.tensor([[0.5, 1.0, 2.0, 3.5]], dtype=torch.float64, device=DEVICE64)),
    torch.tensor([3.75], dtype=torch.float64),
    rtol=0,
    atol=1e-12,
    msg="box_area of a 1.5 x 2.5 box",
)

iou = box_iou(boxes_a, boxes_a)
assert isinstance(iou, torch.Tensor) and iou.shape == (3, 3), (
    f"box_iou of 3 boxes with 3 boxes should be a (3, 3) tensor, got {getattr(iou, 'shape', type(iou))}"
)
expected_iou = torch.tensor(
    [[1.0, 25 / 175, 0.0], [25 / 175, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64, device=DEVICE64
)
assert_close(iou, expected_iou, rtol=1e-12, atol=1e-12, check_device=True, msg="box_iou of three boxes")
assert_close(iou, torchvision.ops.box_iou(boxes_a, boxes_a), rtol=1e-12, atol=1e-12, msg="box_iou against torchvision")
touching = box_iou(boxes_a[:1], torch.tensor([[10.0, 0.0, 20.0, 10.0]], dtype=torch.float64, device=DEVICE64))
assert touching.item() == 0.0, f"boxes that only touch along an edge should have IoU 0, got {touching.item()}"
### BEGIN HIDDEN TESTS
# Functions sharing a name: the last one listed is the one a failure message names.
_forbidden_iou = (
    "mlcraft.ops.box_iou",
    "mlcraft.ops.box_area",
    "torchvision.ops.box_iou",
    "torchvision.ops.box_area",
    "torchvision.ops.generalized_box_iou",
    "torchvision.ops.boxes._box_inter_union",
)


def _iou(b1, b2):
    before = (b1.clone(), b2.clone())
    result = call_without(box_iou, b1, b2, forbidden=_forbidden_iou)
    assert torch.equal(b1, before[0]) and torch.equal(b2, before[1]), "box_iou must not modify its inputs"
    assert isinstance(result, torch.Tensor), f"box_iou should return a tensor, got {type(result).__name__}"
    assert result.shape == (b1.shape[0], b2.shape[0]), (
        f"box_iou of {b1.shape[0]} and {b2.shape[0]} boxes should have shape {(b1.shape[0], b2.shape[0])}, "
        f"got {tuple(result.shape)}"
    )
    assert result.dtype == b1.dtype, f"box_iou of {b1.dtype} boxes should be {b1.dtype}, got {result.dtype}"
    return result


def _area(b):
    result = call_without(box_area, b, forbidden=_forbidden_iou)
    assert isinstance(result, torch.Tensor) and result.shape == (b.shape[0],), (
        f"box_area of {b.shape[0]} boxes should be a ({b.shape[0]},) tensor"
    )
    return result


_g = torch.Generator().manual_seed(grading_seed("test-box-iou", 20))
# Crowded boxes (most pairs overlap) and spread-out boxes (most pairs are apart, in x, y or both).
for _max_xy, _what in ((30.0, "crowded"), (400.0, "spread out")):
    _b1, _b2 = random_boxes(40, _g, max_xy=_max_xy), random_boxes(30, _g, max_xy=_max_xy)
    assert_close(
        _area(_b1), torchvision.ops.box_area(_b1), rtol=1e-12, atol=1e-12, check_device=True, msg=f"box_area, {_what}"
    )
    _got = _iou(_b1, _b2)
    assert (_got >= 0).all() and (_got <= 1).all(), f"{_what}: IoU must lie in [0, 1], got min {_got.min().item()}"
    assert_close(
        _got,
        torchvision.ops.box_iou(_b1, _b2),
        rtol=1e-12,
        atol=1e-12,
        check_device=True,
        msg=f"box_iou of 40 x 30 {_what} boxes, float64",
    )
_b1 = random_boxes(25, _g, max_xy=300.0, max_wh=120.0, dtype=torch.float32, device=DEVICE)
_b2 = random_boxes(35, _g, max_xy=300.0, max_wh=120.0, dtype=torch.float32, device=DEVICE)
assert_close(
    _iou(_b1, _b2),
    torchvision.ops.box_iou(_b1.cpu().double(), _b2.cpu().double()).float().to(DEVICE),
    rtol=1e-5,
    atol=1e-6,
    check_device=True,
    msg="box_iou of 25 x 35 boxes, float32",
)
assert _area(_b1).dtype == torch.float32, "box_area of float32 boxes should be float32"

# Apart in x only, in y only, in both: IoU exactly 0, never negative or positive.
_unit = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64, device=DEVICE64)
_apart = torch.tensor(
    [[12.0, 2.0, 20.0, 8.0], [2.0, 15.0, 8.0, 30.0], [11.0, 11.0, 30.0, 30.0], [-20.0, -9.0, -1.0, -2.0]],
    dtype=torch.float64,
    device=DEVICE64,
)
assert torch.equal(_iou(_unit, _apart).cpu(), torch.zeros(1, 4, dtype=torch.float64)), (
    f"boxes apart in x, in y or in both should have IoU 0 with [0, 0, 10, 10], got {_iou(_unit, _apart).tolist()}"
)
assert torch.equal(_iou(_apart, _unit).cpu(), torch.zeros(4, 1, dtype=torch.float64)), "IoU 0 in either order"
# Touching along an edge or at a corner; inside one another; identical.
_touch = torch.tensor(
    [[10.0, 0.0, 20.0, 10.0], [0.0, 10.0, 10.0, 20.0], [10.0, 10.0, 20.0, 20.0]], dtype=torch.float64, device=DEVICE64
)
assert torch.equal(_iou(_unit, _touch).cpu(), torch.zeros(1, 3, dtype=torch.float64)), "touching boxes have IoU 0"
_inside = torch.tensor([[2.0, 3.0, 6.0, 8.0]], dtype=torch.float64, device=DEVICE64)
assert_close(_iou(_unit, _inside), [[0.2]], rtol=1e-12, atol=1e-12, check_dtype=False, msg="a box inside another")
assert_close(_iou(_inside, _inside), [[1.0]], rtol=1e-12, atol=1e-12, check_dtype=False, msg="identical boxes")
# Boxes with fractional coordinates, as detectors predict them.
_frac = torch.tensor([[0.5, 0.5, 1.5, 2.0], [1.0, 1.0, 2.0, 2.5]], dtype=torch.float64, device=DEVICE64)
assert_close(_area(_frac), [1.5, 1.5], rtol=0, atol=1e-12, check_dtype=False, msg="areas of fractional boxes")
assert_close(
    _iou(_frac[:1], _frac[1:]), [[0.5 / 2.5]], rtol=1e-12, atol=1e-12, check_dtype=False, msg="fractional boxes"
)

# Empty inputs.
_none = torch.zeros(0, 4, dtype=torch.float64, device=DEVICE64)
assert _iou(_none, _apart).shape == (0, 4), "box_iou of 0 boxes with 4 boxes should have shape (0, 4)"
assert _iou(_apart, _none).shape == (4, 0), "box_iou of 4 boxes with 0 boxes should have shape (4, 0)"
assert _area(_none).shape == (0,), "box_area of no boxes should have shape (0,)"
# Meta tensors (shape, dtype and device only): the results stay on the device of the boxes.
_m1 = torch.empty(5, 4, dtype=torch.float32, device="meta")
_m2 = torch.empty(3, 4, dtype=torch.float32, device="meta")
_mi = call_without(box_iou, _m1, _m2, forbidden=_forbidden_iou)
assert (_mi.device.type, tuple(_mi.shape), _mi.dtype) == ("meta", (5, 3), torch.float32), (
    f"box_iou of (5, 4) and (3, 4) float32 meta tensors should be (5, 3) float32 on meta, got {_mi!r}"
)
_ma = call_without(box_area, _m1, forbidden=_forbidden_iou)
assert (_ma.device.type, tuple(_ma.shape), _ma.dtype) == ("meta", (5,), torch.float32), (
    f"box_area of a (5, 4) float32 meta tensor should be (5,) float32 on meta, got {_ma!r}"
)
### END HIDDEN TESTS
print("box_area and box_iou: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-nms", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — Non-maximum suppression (3 points)
#
# A detector proposes many boxes around each object, shifted by a few pixels. **NMS** keeps the
# best one of each cluster: visit the boxes by **decreasing score**; keep a box unless a box
# kept earlier overlaps it with IoU **greater than** `iou_threshold`. A box that was removed
# removes nothing: only the boxes that are kept count.
#
# Write `nms(boxes, scores, iou_threshold) -> torch.Tensor`:
#
# - `boxes` `(N, 4)` `xyxy`, `scores` `(N,)`; `iou_threshold` a float in `[0, 1]`.
# - It returns the **indices** (into `boxes`) of the boxes kept, as an `int64` tensor on the
#   device of `boxes`, **sorted by decreasing score** (the best box first), exactly what
#   `torchvision.ops.nms` returns.
# - Suppression is strict: a box whose IoU with a kept box is **exactly** `iou_threshold` is
#   kept. So with `iou_threshold = 1.0` every box is kept, even two identical ones, and with
#   `iou_threshold = 0.0` any overlap at all removes the lower-scored box (boxes that only touch
#   have IoU 0 and are both kept).
# - Chains: if A (best) overlaps B and B overlaps C, but A does not overlap C, then A removes B,
#   and C is kept, because B was removed before it could remove anything.
# - `N = 0` gives an empty `int64` tensor of shape `(0,)`.
# - It does not modify its inputs. The tests use distinct scores (ties would make the order
#   ambiguous) and up to a few hundred boxes.
#
# Use your `box_iou`. Do not call `torchvision.ops.nms`, `torchvision.ops.batched_nms` or the
# course package's NMS (the hidden tests check this, and compare with torchvision on random
# clusters of boxes).


# %% nbgrader={"grade": false, "grade_id": "nms-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (``int64``, best score first) of the ``xyxy`` boxes that greedy NMS keeps."""
    ### BEGIN SOLUTION
    order = torch.argsort(scores, descending=True)  # visiting order, best first
    ranked = boxes[order]  # (N, 4)
    # overlaps[i, j]: box i of the visiting order would remove box j. One transfer to the CPU,
    # then a Python loop over plain booleans.
    overlaps = (box_iou(ranked, ranked) > iou_threshold).cpu()  # (N, N)
    removed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for i in range(len(order)):
        if removed[i]:
            continue  # a removed box removes nothing
        kept.append(i)
        removed |= overlaps[i]
    return order[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-nms", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
boxes_n = torch.tensor(
    [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.5]],
    dtype=torch.float64,
    device=DEVICE64,
)
scores_n = torch.tensor([0.9, 0.8, 0.7, 0.95], dtype=torch.float64, device=DEVICE64)
keep = nms(boxes_n, scores_n, 0.5)
assert isinstance(keep, torch.Tensor), f"nms should return a tensor of indices, got {type(keep).__name__}"
assert keep.dtype == torch.int64, f"nms should return int64 indices, got {keep.dtype}"
assert keep.device == boxes_n.device, f"nms should return its indices on the boxes' device {boxes_n.device}"
# Box 3 (score 0.95) removes boxes 0 and 1; box 2 overlaps nothing.
assert keep.tolist() == [3, 2], f"expected indices [3, 2] (best first), got {keep.tolist()}"
assert keep.tolist() == torchvision.ops.nms(boxes_n, scores_n, 0.5).tolist(), "nms differs from torchvision"
assert nms(boxes_n, scores_n, 0.99).tolist() == [3, 0, 1, 2], "with iou_threshold 0.99 nothing is removed here"
### BEGIN HIDDEN TESTS
# Functions sharing a name: the last one listed is the one a failure message names.
_forbidden_nms = (
    "mlcraft.ops.nms",
    "mlcraft.ops.batched_nms",
    "torchvision.ops.nms",
    "torchvision.ops.batched_nms",
    "torchvision.ops.boxes._batched_nms_coordinate_trick",
    "torchvision.ops.boxes._batched_nms_vanilla",
)


def _nms(b, s, t):
    before = (b.clone(), s.clone())
    result = call_without(nms, b, s, t, forbidden=_forbidden_nms)
    assert torch.equal(b, before[0]) and torch.equal(s, before[1]), "nms must not modify boxes or scores"
    assert isinstance(result, torch.Tensor), f"nms should return a tensor, got {type(result).__name__}"
    assert result.dtype == torch.int64, f"nms should return int64 indices, got {result.dtype}"
    assert result.device == b.device, f"nms should return its indices on {b.device}, got {result.device}"
    assert result.dim() == 1, f"nms should return a 1-D tensor of indices, got shape {tuple(result.shape)}"
    return result


def _check_nms(b, s, t, what):
    got = _nms(b, s, t).cpu()
    want = torchvision.ops.nms(b.cpu(), s.cpu(), t)
    assert torch.equal(got, want), (
        f"{what}: expected the indices {want.tolist()} (best score first), got {got.tolist()}"
    )


def _clusters(n_centres, per_centre, generator, dtype, device):
    """Boxes jittered around a few centres, as a detector proposes them, and distinct scores."""
    centres = random_boxes(n_centres, generator, max_xy=200.0, min_wh=10.0, max_wh=60.0, device="cpu")
    jitter = torch.randn(n_centres, per_centre, 4, generator=generator, dtype=torch.float64) * 4.0
    b = (centres[:, None, :] + jitter).reshape(-1, 4)  # (n_centres * per_centre, 4)
    b = torch.cat((torch.minimum(b[:, :2], b[:, 2:] - 1), torch.maximum(b[:, 2:], b[:, :2] + 1)), dim=1)
    s = torch.randperm(len(b), generator=generator).to(torch.float64) / len(b)
    return b.to(device=device, dtype=dtype), s.to(device=device, dtype=dtype)


_g = torch.Generator().manual_seed(grading_seed("test-nms", 30))
for _t in (0.3, 0.5, 0.7):
    _b, _s = _clusters(12, 15, _g, torch.float64, DEVICE64)
    _check_nms(_b, _s, _t, f"180 boxes in 12 clusters, iou_threshold {_t}, float64")
_b, _s = _clusters(20, 10, _g, torch.float32, DEVICE)
_check_nms(_b, _s, 0.5, "200 boxes in 20 clusters, iou_threshold 0.5, float32")
_b, _s = random_boxes(150, _g, max_xy=150.0), torch.rand(150, generator=_g, dtype=torch.float64).to(DEVICE64)
_check_nms(_b, _s, 0.4, "150 random boxes, iou_threshold 0.4")

# Strict: IoU exactly equal to the threshold does not suppress ([0, 0, 10, 10] and [0, 0, 10, 5]: IoU 0.5).
_half = torch.tensor([[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 10.0]], dtype=torch.float64, device=DEVICE64)
_s2 = torch.tensor([0.6, 0.9], dtype=torch.float64, device=DEVICE64)
assert _nms(_half, _s2, 0.5).tolist() == [1, 0], "IoU exactly 0.5 at iou_threshold 0.5 keeps both boxes (> not >=)"
assert _nms(_half, _s2, 0.49).tolist() == [1], "IoU 0.5 at iou_threshold 0.49 keeps only the best box"
_same = torch.tensor([[1.0, 2.0, 8.0, 9.0], [1.0, 2.0, 8.0, 9.0]], dtype=torch.float64, device=DEVICE64)
assert _nms(_same, _s2, 1.0).tolist() == [1, 0], "with iou_threshold 1.0 even identical boxes are both kept"
# Threshold 0: any overlap removes, touching does not.
_row = torch.tensor(
    [[0.0, 0.0, 10.0, 10.0], [9.0, 0.0, 19.0, 10.0], [19.0, 0.0, 29.0, 10.0]], dtype=torch.float64, device=DEVICE64
)
_s3 = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64, device=DEVICE64)
_check_nms(_row, _s3, 0.0, "iou_threshold 0.0")
assert _nms(_row, _s3, 0.0).tolist() == [0, 2], "iou_threshold 0.0: box 1 overlaps box 0 a little; box 2 touches box 1"

# The chain: A removes B; B overlaps C, but B was removed, so C is kept.
_chain = torch.tensor(
    [[10.0, 0.0, 20.0, 10.0], [0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]], dtype=torch.float64, device=DEVICE64
)  # C, A, B
_s_chain = torch.tensor([0.7, 0.9, 0.8], dtype=torch.float64, device=DEVICE64)
assert _nms(_chain, _s_chain, 0.3).tolist() == [1, 0], (
    "A (index 1) removes B (index 2, IoU 1/3); B overlaps C (index 0) but was removed, so C is kept: expected [1, 0], "
    f"got {_nms(_chain, _s_chain, 0.3).tolist()}"
)

# Sorted by decreasing score, not by index.
_apart = torch.tensor(
    [[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0], [10.0, 10.0, 11.0, 11.0]], dtype=torch.float64, device=DEVICE64
)
_s_apart = torch.tensor([0.2, 0.9, 0.5], dtype=torch.float64, device=DEVICE64)
assert _nms(_apart, _s_apart, 0.5).tolist() == [1, 2, 0], "three separate boxes come back best score first"

# One box; no boxes.
assert _nms(_apart[:1], _s_apart[:1], 0.5).tolist() == [0], "a single box is kept"
_empty = _nms(torch.zeros(0, 4, device=DEVICE), torch.zeros(0, device=DEVICE), 0.5)
assert _empty.shape == (0,), f"nms of no boxes should return shape (0,), got {tuple(_empty.shape)}"
# Exactly on another threshold, float32 and float64 ([0, 0, 10, 10] and [0, 0, 10, 2.5]: IoU 0.25, exact in both).
for _dtype, _dev in ((torch.float64, DEVICE64), (torch.float32, DEVICE)):
    _quarter = torch.tensor([[0.0, 0.0, 10.0, 2.5], [0.0, 0.0, 10.0, 10.0]], dtype=_dtype, device=_dev)
    _sq = torch.tensor([0.3, 0.8], dtype=_dtype, device=_dev)
    assert _nms(_quarter, _sq, 0.25).tolist() == [1, 0], f"IoU exactly 0.25 at iou_threshold 0.25 keeps both ({_dtype})"
    assert _nms(_quarter, _sq, 0.24).tolist() == [1], f"IoU 0.25 at iou_threshold 0.24 removes box 0 ({_dtype})"
# Identical boxes just below 1.0: the lower-scored one is removed.
assert _nms(_same, _s2, 0.99).tolist() == [1], "two identical boxes (IoU 1) at iou_threshold 0.99: keep only the best"
### END HIDDEN TESTS
print("nms: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-batched-nms", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — NMS per class (1 point)
#
# A detector that finds people and bicycles must not let a confident "person" box remove the
# "bicycle" box under it: NMS runs **separately for each class**.
#
# Write `batched_nms(boxes, scores, labels, iou_threshold) -> torch.Tensor`:
#
# - `labels` `(N,)` `int64` class ids: non-negative, not necessarily contiguous (e.g. `3` and
#   `17` only). Boxes with **different** labels never suppress each other; boxes with the same
#   label suppress each other exactly as in Task 3.
# - It returns the indices kept, `int64` on the boxes' device, **sorted by decreasing score
#   across all classes**, exactly what `torchvision.ops.batched_nms` returns.
# - `N = 0` gives an empty `int64` tensor of shape `(0,)`. It does not modify its inputs.
#   `boxes`, `scores` and `labels` are on one device; coordinates are non-negative and scores
#   distinct in the tests.
#
# Use your `nms`. Do not call `torchvision.ops.nms` or `torchvision.ops.batched_nms`.


# %% nbgrader={"grade": false, "grade_id": "batched-nms-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: indices (``int64``, best score first) of the boxes kept within each label."""
    ### BEGIN SOLUTION
    kept = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()  # indices of this class
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(kept)
    return keep[torch.argsort(scores[keep], descending=True)]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-batched-nms", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
boxes_b = torch.tensor(
    [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [0.0, 1.0, 10.0, 11.0]], dtype=torch.float64, device=DEVICE64
)
scores_b = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64, device=DEVICE64)
labels_b = torch.tensor([1, 2, 1], device=DEVICE64)
keep = batched_nms(boxes_b, scores_b, labels_b, 0.5)
assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64, "batched_nms should return int64 indices"
# Box 1 overlaps box 0 heavily, but it is another class: both are kept. Box 2 is box 0's class: removed.
assert keep.tolist() == [0, 1], f"expected [0, 1] (box 1 is another class, box 2 is removed), got {keep.tolist()}"
assert keep.tolist() == torchvision.ops.batched_nms(boxes_b, scores_b, labels_b, 0.5).tolist(), "vs torchvision"
### BEGIN HIDDEN TESTS
_forbidden_batched = (
    "mlcraft.ops.nms",
    "mlcraft.ops.batched_nms",
    "torchvision.ops.nms",
    "torchvision.ops.batched_nms",
    "torchvision.ops.boxes._batched_nms_coordinate_trick",
    "torchvision.ops.boxes._batched_nms_vanilla",
)


def _check_batched(b, s, lab, t, what):
    before = (b.clone(), s.clone(), lab.clone())
    got = call_without(batched_nms, b, s, lab, t, forbidden=_forbidden_batched)
    assert all(torch.equal(x, y) for x, y in zip(before, (b, s, lab), strict=True)), "batched_nms modified its inputs"
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64, f"{what}: batched_nms should return int64"
    assert got.device == b.device, f"{what}: the indices should be on {b.device}, got {got.device}"
    want = torchvision.ops.batched_nms(b.cpu(), s.cpu(), lab.cpu(), t)
    assert torch.equal(got.cpu(), want), f"{what}: expected {want.tolist()}, got {got.cpu().tolist()}"


_g = torch.Generator().manual_seed(grading_seed("test-batched-nms", 40))
# Integer coordinates keep every IoU exact in float32, whichever way it is computed.
_centres = (random_boxes(10, _g, max_xy=150.0, min_wh=10.0, max_wh=50.0, device="cpu")).round()
_b = (_centres.repeat_interleave(12, dim=0) + torch.randint(-3, 4, (120, 4), generator=_g)).clamp(min=0)
_b = torch.cat((_b[:, :2], torch.maximum(_b[:, 2:], _b[:, :2] + 2)), dim=1)
_s = torch.randperm(120, generator=_g).double() / 120
_lab = torch.tensor([0, 3, 7])[torch.randint(0, 3, (120,), generator=_g)]
for _t in (0.3, 0.6):
    _check_batched(_b.to(DEVICE64), _s.to(DEVICE64), _lab.to(DEVICE64), _t, f"120 boxes, labels 0/3/7, iou {_t}")
_check_batched(_b.float().to(DEVICE), _s.float().to(DEVICE), _lab.to(DEVICE), 0.5, "120 boxes, labels 0/3/7, float32")
# Every box alone in its class: nothing is removed, whatever the overlap.
_same = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4, dtype=torch.float64, device=DEVICE64)
_check_batched(
    _same,
    torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64, device=DEVICE64),
    torch.tensor([5, 2, 9, 0], device=DEVICE64),
    0.5,
    "four identical boxes of four classes",
)
_empty = call_without(
    batched_nms,
    torch.zeros(0, 4, device=DEVICE),
    torch.zeros(0, device=DEVICE),
    torch.zeros(0, dtype=torch.int64, device=DEVICE),
    0.5,
    forbidden=_forbidden_batched,
)
assert _empty.shape == (0,) and _empty.dtype == torch.int64, "batched_nms of no boxes should be an empty int64 (0,)"
# The strict threshold within a class: IoU exactly 0.5 between the two boxes of label 4.
_bb = torch.tensor(
    [[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0]], dtype=torch.float64, device=DEVICE64
)
_bs = torch.tensor([0.6, 0.9, 0.7], dtype=torch.float64, device=DEVICE64)
_bl = torch.tensor([4, 4, 11], device=DEVICE64)
for _t, _want in ((0.5, [1, 2, 0]), (0.49, [1, 2])):
    _got = call_without(batched_nms, _bb, _bs, _bl, _t, forbidden=_forbidden_batched)
    assert _got.tolist() == _want, (
        f"labels [4, 4, 11], IoU exactly 0.5 within label 4, iou_threshold {_t}: expected {_want}, got {_got.tolist()}"
    )
    _check_batched(_bb, _bs, _bl, _t, f"IoU exactly 0.5 within a class, iou_threshold {_t}")
# One class only (it is plain NMS); one box.
_b1c, _s1c = _b[:40].to(DEVICE64), _s[:40].to(DEVICE64)
_check_batched(_b1c, _s1c, torch.full((40,), 6, device=DEVICE64), 0.4, "40 boxes, all of label 6")
_check_batched(_bb[:1], _bs[:1], _bl[:1], 0.5, "one box")
### END HIDDEN TESTS
print("batched_nms: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-match-anchors", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Matching anchors to ground truths (2 points)
#
# Faster R-CNN, RetinaNet and SSD place thousands of fixed **anchor** boxes over the image and
# train each anchor either to detect an object, or to say "background". Which anchors are
# responsible for which object is decided by IoU, with the rule of torchvision's
# `Matcher(high, low, allow_low_quality_matches=True)`.
#
# Write `match_anchors(anchors, gt_boxes, high=0.5, low=0.4) -> torch.Tensor`, returning for
# each anchor the index of its ground truth, or a negative code:
#
# 1. Compute the IoU of every ground truth with every anchor (your `box_iou`). For each anchor
#    find its **best** ground truth (highest IoU) and that IoU:
#    - IoU `>= high`: the anchor gets the index of its best ground truth (foreground);
#    - IoU `< low`: `-1` (background);
#    - `low <= IoU < high`: `-2` (ignored: too ambiguous to train either way).
# 2. **Low-quality matches.** A small or oddly shaped object may overlap no anchor by `high`,
#    and would never be trained. So, for each ground truth, the anchor(s) with **its** highest
#    IoU are matched too, whatever their code from step 1: each such anchor gets the index of
#    **its own best ground truth** (the one from step 1; usually that same ground truth). When
#    several anchors tie exactly for a ground truth's highest IoU, all of them are matched.
#
# - `anchors` `(A, 4)` with `A >= 1`, `gt_boxes` `(G, 4)`, both `xyxy` and on the same device;
#   `0 <= low <= high <= 1` (`low == high` leaves no ignored band).
# - The result is `(A,)`, `int64`, on the anchors' device. It does not modify its inputs.
# - `G = 0` (an image with no object): every anchor is background, `-1`.
# - The comparisons are exactly as written: an IoU of exactly `high` is foreground, an IoU of
#   exactly `low` is ignored (`-2`).
# - In the tests every ground truth overlaps at least one anchor, and no anchor that ends up
#   foreground, ignored or matched by the rule of step 2 has two ground truths with exactly the
#   same IoU.
#
# Do not call torchvision's `Matcher` or the course package's `match_anchors`.


# %% nbgrader={"grade": false, "grade_id": "match-anchors-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def match_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float = 0.5, low: float = 0.4) -> torch.Tensor:
    """Per anchor: the index of its ground truth, ``-1`` (background) or ``-2`` (ignored); ``(A,)`` int64."""
    ### BEGIN SOLUTION
    if gt_boxes.shape[0] == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # (A,) each: every anchor's best ground truth
    matches = best_gt.clone()
    matches[best_iou < low] = -1
    matches[(best_iou >= low) & (best_iou < high)] = -2
    # Every ground truth also claims the anchor(s) it overlaps most, ties included.
    best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
    rescued = (iou == best_per_gt).any(dim=0)  # (A,)
    matches[rescued] = best_gt[rescued]
    return matches
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-match-anchors", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
gt_m = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64, device=DEVICE64)
anchors_m = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],  # IoU 1     -> 0
        [0.0, 0.0, 10.0, 20.0],  # IoU 0.5   -> 0 (exactly high: foreground)
        [0.0, 0.0, 10.0, 25.0],  # IoU 0.4   -> -2 (exactly low: ignored)
        [0.0, 0.0, 10.0, 30.0],  # IoU 1/3   -> -1
        [50.0, 50.0, 60.0, 60.0],  # IoU 0   -> -1
    ],
    dtype=torch.float64,
    device=DEVICE64,
)
matches = match_anchors(anchors_m, gt_m)
assert isinstance(matches, torch.Tensor), f"match_anchors should return a tensor, got {type(matches).__name__}"
assert matches.dtype == torch.int64 and matches.shape == (5,), (
    f"match_anchors should return a (5,) int64 tensor here, got {matches.dtype} {tuple(matches.shape)}"
)
assert matches.tolist() == [0, 0, -2, -1, -1], f"expected [0, 0, -2, -1, -1], got {matches.tolist()}"

# Low-quality matches: the ground truth's two best anchors (IoU 1/3 each, a tie) are both matched.
anchors_lq = torch.tensor(
    [[-5.0, 0.0, 5.0, 10.0], [5.0, 0.0, 15.0, 10.0], [0.0, 20.0, 10.0, 30.0]], dtype=torch.float64, device=DEVICE64
)
assert match_anchors(anchors_lq, gt_m).tolist() == [0, 0, -1], (
    f"both anchors tied for the ground truth's best IoU (1/3) should be matched: expected [0, 0, -1], "
    f"got {match_anchors(anchors_lq, gt_m).tolist()}"
)
no_gt = match_anchors(anchors_m, gt_m[:0])
assert no_gt.tolist() == [-1] * 5, f"with no ground truth every anchor is background (-1), got {no_gt.tolist()}"
### BEGIN HIDDEN TESTS
from mlcraft.models.anchors import grid_anchors

_forbidden_match = (
    "torchvision.models.detection._utils.Matcher.__call__",
    "torchvision.models.detection._utils.Matcher.set_low_quality_matches_",
    "mlcraft.models.anchors.match_anchors",
)


def _match(a, gt, **thresholds):
    before = (a.clone(), gt.clone())
    result = call_without(match_anchors, a, gt, forbidden=_forbidden_match, **thresholds)
    assert torch.equal(a, before[0]) and torch.equal(gt, before[1]), "match_anchors must not modify its inputs"
    assert isinstance(result, torch.Tensor), f"match_anchors should return a tensor, got {type(result).__name__}"
    assert result.dtype == torch.int64, f"match_anchors should return int64, got {result.dtype}"
    assert result.shape == (a.shape[0],), f"match_anchors should return ({a.shape[0]},), got {tuple(result.shape)}"
    assert result.device == a.device, f"match_anchors should return its result on {a.device}, got {result.device}"
    return result


def _check_match(a, gt, high, low, what):
    got = _match(a, gt, high=high, low=low).cpu()
    want = Matcher(high, low, allow_low_quality_matches=True)(torchvision.ops.box_iou(gt.cpu(), a.cpu()))
    if not torch.equal(got, want):
        bad = torch.nonzero(got != want).flatten()[:5].tolist()
        raise AssertionError(
            f"{what}: {int((got != want).sum())} of {len(want)} anchors differ from torchvision's Matcher, "
            f"e.g. anchors {bad}: expected {want[bad].tolist()}, got {got[bad].tolist()}"
        )


_g = torch.Generator().manual_seed(grading_seed("test-match-anchors", 50))
# A 12 x 12 grid of stride 16 (a 192 x 192 image), sizes 32 and 64, three aspect ratios: 864 anchors.
_anchors = grid_anchors((12, 12), (16, 16), (32.0, 64.0), (0.5, 1.0, 2.0), dtype=torch.float64)
for _n_gt, _high, _low in ((6, 0.5, 0.4), (3, 0.7, 0.3), (8, 0.5, 0.5)):
    _gt = random_boxes(_n_gt, _g, max_xy=150.0, min_wh=8.0, max_wh=90.0, device="cpu")
    _check_match(_anchors.to(DEVICE64), _gt.to(DEVICE64), _high, _low, f"{_n_gt} objects, high {_high}, low {_low}")
_gt = random_boxes(5, _g, max_xy=150.0, min_wh=8.0, max_wh=90.0, device="cpu")
_check_match(_anchors.float().to(DEVICE), _gt.float().to(DEVICE), 0.5, 0.4, "5 objects, float32")

# A tiny object that no anchor overlaps by `low` still gets its best anchor.
_tiny = torch.tensor([[100.3, 60.2, 104.1, 63.9]], dtype=torch.float64)
_got = _match(_anchors.to(DEVICE64), _tiny.to(DEVICE64)).cpu()
_check_match(_anchors.to(DEVICE64), _tiny.to(DEVICE64), 0.5, 0.4, "a tiny object")
assert (_got == 0).sum() >= 1, "a tiny object should still get its best anchor (the low-quality rule)"

# A rescued anchor gets its own best ground truth: here anchor 1 is object 0's best anchor,
# but it overlaps object 1 more.
_gts = torch.tensor([[0.0, 0.0, 10.0, 40.0], [10.0, 0.0, 30.0, 10.0]], dtype=torch.float64, device=DEVICE64)
_anc = torch.tensor(
    [[40.0, 40.0, 50.0, 50.0], [5.0, 0.0, 25.0, 10.0], [10.0, 0.0, 30.0, 10.0]], dtype=torch.float64, device=DEVICE64
)
_check_match(_anc, _gts, 0.5, 0.4, "an anchor rescued for one object whose best object is another")

# Exact thresholds with other values of high and low; high == low; no ground truth.
_exact = torch.tensor(
    [[0.0, 0.0, 10.0, 10.0 / 0.7], [0.0, 0.0, 10.0, 40.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]],
    dtype=torch.float64,
    device=DEVICE64,
)
_check_match(_exact, gt_m, 0.5, 0.25, "IoUs 0.7, 0.25, 1 and 0.5 with high 0.5 and low 0.25")
_check_match(_exact, gt_m, 0.5, 0.5, "high == low == 0.5")
_none = _match(_anchors.to(DEVICE), torch.zeros(0, 4, device=DEVICE))
assert (_none == -1).all(), "with no ground truth, every anchor should be background (-1)"
# Each threshold given alone (the other keeps its default), and the ends of the range.
_gt2 = random_boxes(4, _g, max_xy=150.0, min_wh=8.0, max_wh=90.0, device="cpu").to(DEVICE64)
for _kwargs, _high, _low in (({"high": 0.7}, 0.7, 0.4), ({"low": 0.2}, 0.5, 0.2)):
    _got = _match(_anchors.to(DEVICE64), _gt2, **_kwargs).cpu()
    _want = Matcher(_high, _low, allow_low_quality_matches=True)(torchvision.ops.box_iou(_gt2.cpu(), _anchors))
    assert torch.equal(_got, _want), (
        f"match_anchors(864 anchors, 4 objects, {', '.join(f'{k}={v}' for k, v in _kwargs.items())}): "
        f"{int((_got != _want).sum())} anchors differ from torchvision's Matcher({_high}, {_low})"
    )
_check_match(_exact, gt_m, 1.0, 0.0, "high 1 and low 0: only IoU 1 is foreground, nothing is background")
# One anchor: it is every object's best anchor, so it gets its own best object.
_check_match(_anc[1:2], _gts, 0.5, 0.4, "one anchor, two objects")
# No ground truth on a meta device: the result is on the anchors' device.
_mm = call_without(
    match_anchors,
    torch.empty(6, 4, dtype=torch.float32, device="meta"),
    torch.empty(0, 4, dtype=torch.float32, device="meta"),
    forbidden=_forbidden_match,
)
assert (_mm.device.type, tuple(_mm.shape), _mm.dtype) == ("meta", (6,), torch.int64), (
    f"match_anchors of 6 meta anchors and no ground truth should be (6,) int64 on meta, got {_mm!r}"
)
### END HIDDEN TESTS
print("match_anchors: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-decode", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Decoding box offsets (2 points)
#
# A detector does not predict box corners directly: for each anchor it predicts four
# **deltas** `(dx, dy, dw, dh)`, which move and stretch the anchor (Faster R-CNN, Ren et al.,
# 2015). Writing the anchor as its centre `(cx_a, cy_a)`, width `w_a` and height `h_a`:
#
# $$cx = cx_a + \frac{dx}{w_x} w_a, \quad cy = cy_a + \frac{dy}{w_y} h_a, \quad
# w = w_a \exp\!\Big(\frac{dw}{w_w}\Big), \quad h = h_a \exp\!\Big(\frac{dh}{w_h}\Big).$$
#
# The shift is measured in anchor widths (so one output works for small and large anchors) and
# the size as a log ratio (so it stays positive). `weights = (w_x, w_y, w_w, w_h)` rescale the
# deltas (torchvision's R-CNN heads use `(10, 10, 5, 5)`).
#
# Write `decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)) -> torch.Tensor`, exactly
# what torchvision's `BoxCoder(weights).decode_single(deltas, anchors)` computes:
#
# - `deltas` `(N, 4)` and `anchors` `(N, 4)` `xyxy` pair up row by row; the result is the
#   `(N, 4)` decoded boxes in **`xyxy`**, with the dtype and device of `deltas`.
# - The anchor's centre and size come from its corners: `w_a = x2 - x1`, `cx_a = x1 + w_a / 2`.
#   The decoded `(cx, cy, w, h)` is a **centre** and a size: its corners are
#   `cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2` (not `cx, cy, cx + w, cy + h`).
# - An untrained network can output a huge `dw`, and `exp` of it overflows to `inf`. After
#   dividing by the weights, clamp `dw` and `dh` **from above only** at
#   `math.log(1000 / 16)` before the `exp`: a box is never more than 62.5 times its anchor's
#   size. Large negative values are not clamped.
# - `N = 0` gives an empty `(0, 4)` tensor. It does not modify its inputs.
#
# Do not call torchvision's `BoxCoder` or the course package's `decode_boxes`.


# %% nbgrader={"grade": false, "grade_id": "decode-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decode_boxes(
    deltas: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Apply Faster R-CNN deltas ``(N, 4)`` to ``xyxy`` anchors ``(N, 4)``; returns ``xyxy`` boxes ``(N, 4)``."""
    ### BEGIN SOLUTION
    wx, wy, ww, wh = weights
    anchors = anchors.to(deltas.dtype)
    widths = anchors[:, 2] - anchors[:, 0]  # (N,)
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=math.log(1000.0 / 16))  # exp can no longer overflow
    dh = (deltas[:, 3] / wh).clamp(max=math.log(1000.0 / 16))
    cx, cy = ctr_x + dx * widths, ctr_y + dy * heights
    w, h = widths * torch.exp(dw), heights * torch.exp(dh)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=1)  # (N, 4) xyxy
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-decode", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
anchors_d = torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 10.0, 20.0]], dtype=torch.float64, device=DEVICE64)
deltas_d = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.1, -0.2, math.log(2.0), 0.0]], dtype=torch.float64, device=DEVICE64)
decoded = decode_boxes(deltas_d, anchors_d)
assert isinstance(decoded, torch.Tensor) and decoded.shape == (2, 4), (
    f"decode_boxes of 2 deltas should be a (2, 4) tensor, got {getattr(decoded, 'shape', type(decoded))}"
)
# Zero deltas give the anchor back; the second: centre (5, 10) + (0.1 * 10, -0.2 * 20) = (6, 6), width 2 * 10.
assert_close(
    decoded,
    torch.tensor([[0.0, 0.0, 10.0, 20.0], [-4.0, -4.0, 16.0, 16.0]], dtype=torch.float64, device=DEVICE64),
    rtol=1e-12,
    atol=1e-12,
    check_device=True,
    msg="decode_boxes of two deltas",
)
assert_close(
    decoded,
    BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas_d, anchors_d),
    rtol=1e-12,
    atol=1e-12,
    msg="decode_boxes against torchvision's BoxCoder",
)
### BEGIN HIDDEN TESTS
_forbidden_decode = (
    "torchvision.models.detection._utils.BoxCoder.decode_single",
    "torchvision.models.detection._utils.BoxCoder.decode",
    "mlcraft.ops.decode_boxes",
)


def _check_decode(d, a, weights, what, rtol=1e-12, atol=1e-9):
    before = (d.clone(), a.clone())
    got = call_without(decode_boxes, d, a, weights, forbidden=_forbidden_decode)
    assert torch.equal(d, before[0]) and torch.equal(a, before[1]), "decode_boxes must not modify its inputs"
    assert isinstance(got, torch.Tensor) and got.shape == d.shape, f"{what}: expected shape {tuple(d.shape)}"
    assert got.dtype == d.dtype, f"{what}: the dtype should stay {d.dtype}, got {got.dtype}"
    want = BoxCoder(weights).decode_single(d, a)
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)
    return got


_g = torch.Generator().manual_seed(grading_seed("test-decode", 60))
_a = random_boxes(60, _g, max_xy=300.0, min_wh=4.0, max_wh=120.0)
_d = (torch.randn(60, 4, generator=_g, dtype=torch.float64) * 0.5).to(DEVICE64)
_check_decode(_d, _a, (1.0, 1.0, 1.0, 1.0), "60 random deltas, weights (1, 1, 1, 1)")
_check_decode(_d * 10, _a, (10.0, 10.0, 5.0, 5.0), "60 random deltas, weights (10, 10, 5, 5)")
_check_decode(_d, _a, (2.0, 0.5, 3.0, 0.25), "60 random deltas, weights (2, 0.5, 3, 0.25)")

# Decoding inverts encoding (torchvision's encode_single).
_targets = random_boxes(60, _g, max_xy=300.0, min_wh=4.0, max_wh=120.0)
for _w in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
    _enc = BoxCoder(_w).encode_single(_targets, _a)
    assert_close(
        call_without(decode_boxes, _enc, _a, _w, forbidden=_forbidden_decode),
        _targets,
        rtol=1e-10,
        atol=1e-8,
        msg=f"decode(encode(boxes)) with weights {_w} should give the boxes back",
    )

# Huge log-scales are clamped from above at log(1000 / 16); large negative ones are not clamped.
_a4 = torch.tensor([[0.0, 0.0, 16.0, 8.0]] * 4, dtype=torch.float64, device=DEVICE64)
_d4 = torch.tensor(
    [[0.0, 0.0, 20.0, 10.0], [0.0, 0.0, 200.0, 5.0], [0.0, 0.0, -20.0, -6.0], [0.0, 0.0, 4.0, 4.2]],
    dtype=torch.float64,
    device=DEVICE64,
)
_big = _check_decode(_d4, _a4, (1.0, 1.0, 1.0, 1.0), "huge and very negative dw, dh")
assert torch.isfinite(_big).all(), "decode_boxes must stay finite for huge dw: clamp before exp"
assert_close(
    _big[0, 2] - _big[0, 0], 1000.0, rtol=1e-12, atol=1e-9, check_dtype=False, msg="a width clamped at 16 * 1000 / 16"
)
_check_decode(_d4 * 5, _a4, (5.0, 5.0, 5.0, 5.0), "huge dw with weights: divide by the weight, then clamp")

# float32 on DEVICE; no boxes.
_a32 = random_boxes(40, _g, max_xy=500.0, min_wh=8.0, max_wh=200.0, dtype=torch.float32, device=DEVICE)
_d32 = (torch.randn(40, 4, generator=_g) * 0.3).to(DEVICE)
_check_decode(_d32, _a32, (1.0, 1.0, 1.0, 1.0), "float32", rtol=1e-5, atol=1e-3)
_empty = call_without(
    decode_boxes,
    torch.zeros(0, 4, dtype=torch.float64, device=DEVICE64),
    torch.zeros(0, 4, dtype=torch.float64, device=DEVICE64),
    forbidden=_forbidden_decode,
)
assert _empty.shape == (0, 4), f"decode_boxes of no deltas should have shape (0, 4), got {tuple(_empty.shape)}"
# weights given by keyword; one box; dw exactly at the clamp.
_w = (10.0, 10.0, 5.0, 5.0)
assert_close(
    call_without(decode_boxes, _d[:7] * 10, _a[:7], weights=_w, forbidden=_forbidden_decode),
    BoxCoder(_w).decode_single(_d[:7] * 10, _a[:7]),
    rtol=1e-12,
    atol=1e-9,
    check_device=True,
    msg="7 deltas, weights=(10, 10, 5, 5) given by keyword",
)
_at_clamp = torch.tensor([[0.5, -0.5, math.log(1000.0 / 16), math.log(1000.0 / 16) - 1.0]], dtype=torch.float64)
_check_decode(_at_clamp.to(DEVICE64), _a4[:1], (1.0, 1.0, 1.0, 1.0), "one box, dw exactly log(1000 / 16)")
# The result has the dtype of deltas, whatever the dtype of anchors.
for _dd, _da in ((torch.float32, torch.float64), (torch.float64, torch.float32)):
    _check_decode(
        _d[:9].to(_dd), _a[:9].to(_da), (1.0, 1.0, 1.0, 1.0), f"{_dd} deltas with {_da} anchors", rtol=1e-5, atol=1e-3
    )
# Meta tensors (shape, dtype and device only), with float64 anchors: (5, 4) float32 on meta.
_dm = call_without(
    decode_boxes,
    torch.empty(5, 4, dtype=torch.float32, device="meta"),
    torch.empty(5, 4, dtype=torch.float64, device="meta"),
    forbidden=_forbidden_decode,
)
assert (_dm.device.type, tuple(_dm.shape), _dm.dtype) == ("meta", (5, 4), torch.float32), (
    f"decode_boxes of (5, 4) float32 deltas and float64 anchors on meta should be (5, 4) float32 on meta, got {_dm!r}"
)
### END HIDDEN TESTS
print("decode_boxes: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-ap", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 7 — Average precision of one class (3 points)
#
# A detector's quality is reported as **average precision**: the area under its
# precision-recall curve, computed the way the COCO evaluation computes it. You will compute it
# for one class at one IoU threshold (COCO's "AP50" of one class, with `iou_threshold = 0.5`).
#
# Write `average_precision(pred_boxes, pred_scores, gt_boxes, iou_threshold=0.5) -> float`.
# The three arguments are **lists with one entry per image**: `pred_boxes[i]` `(D_i, 4)` and
# `pred_scores[i]` `(D_i,)` are image `i`'s detections, `gt_boxes[i]` `(G_i, 4)` its ground
# truths, all `xyxy`.
#
# 1. **Match, image by image.** Visit the image's detections by **decreasing score**. Each
#    detection takes, among the ground truths of its image that are **not yet matched**, the
#    one with the highest IoU, if that IoU is `>= iou_threshold`: the detection is a **true
#    positive** and that ground truth is used up. Otherwise it is a **false positive**. A
#    ground truth is matched **at most once**: a second detection of the same object is a false
#    positive (a detector must not get credit for finding one object twice), but it may still
#    match another free ground truth that it overlaps by `iou_threshold`.
# 2. **Rank** all detections of all images together by decreasing score. After the `k` best,
#    precision is `TP_k / k` and recall is `TP_k / G`, where `G` is the number of ground truths
#    in all images.
# 3. **Envelope.** Replace each precision by the highest precision at that rank **or any later
#    rank**, so that precision never increases with recall.
# 4. **Interpolate.** For each of the 101 recall thresholds `r = 0, 0.01, ..., 1`, take the
#    enveloped precision at the **first** rank whose recall is `>= r`, or 0 if the recall
#    never reaches `r`. AP is the **mean** of these 101 numbers.
#
# - Images may have no detections (`D_i = 0`) or no ground truth (`G_i = 0`; then all their
#   detections are false positives).
# - If there are ground truths but no detections at all, AP is `0.0`. If there is **no
#   ground truth in any image**, recall is undefined: raise `ValueError` (the COCO evaluation
#   reports `-1` for such a class and leaves it out of its mean).
# - `iou_threshold` is a float in `[0, 1]`. With `0`, a detection takes a free ground truth of
#   its image even when they do not overlap (IoU `0 >= 0`), as in the COCO evaluation.
# - It returns a Python `float`, works on tensors on any device and does not modify its inputs.
#   It ranks `float64` scores and compares IoUs of `float64` boxes in `float64` (no rounding to
#   `float32`); with `float32` boxes, the tests keep every IoU clear of `iou_threshold` by more
#   than `float32` rounding, so either precision works there.
# - The tests use distinct scores and avoid exact ties in IoU and recalls that fall exactly on
#   a threshold (other than 0 and 1), so `torch.linspace(0, 1, 101)` and
#   `numpy.linspace(0, 1, 101)` both work.
#
# The hidden tests compare your AP with `pycocotools` (the COCO evaluation, restricted to one
# class and one IoU threshold) on random scenes, and with small cases computed by hand. Use your
# `box_iou`; do not call the course package's `coco_evaluate` or `average_precision`, or
# `pycocotools`.


# %% nbgrader={"grade": false, "grade_id": "ap-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def average_precision(
    pred_boxes: list[torch.Tensor],
    pred_scores: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """COCO-style 101-point AP of one class over several images (lists of per-image tensors)."""
    ### BEGIN SOLUTION
    num_gt = sum(int(g.shape[0]) for g in gt_boxes)
    if num_gt == 0:
        raise ValueError("there is no ground truth in any image: recall, hence AP, is undefined")
    all_scores, all_hits = [], []
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        boxes, scores, gts = boxes.detach().cpu().double(), scores.detach().cpu().double(), gts.detach().cpu().double()
        order = torch.argsort(scores, descending=True)
        hits = torch.zeros(len(order), dtype=torch.bool)
        if len(gts) and len(order):
            iou = box_iou(boxes[order], gts)  # (D, G), best detection first
            taken = torch.zeros(len(gts), dtype=torch.bool)
            for d in range(len(order)):
                free = iou[d].masked_fill(taken, -1.0)  # a matched ground truth is used up
                g = int(free.argmax())
                if free[g] >= iou_threshold:
                    hits[d], taken[g] = True, True
        all_scores.append(scores[order])
        all_hits.append(hits)
    ranked = torch.cat(all_hits)[torch.argsort(torch.cat(all_scores), descending=True, stable=True)].double()
    tp, fp = ranked.cumsum(0), (1 - ranked).cumsum(0)  # (D,) each, over all images
    recall, precision = tp / num_gt, tp / (tp + fp)
    envelope = precision.flip(0).cummax(0).values.flip(0)  # best precision at this rank or later
    thresholds = torch.linspace(0, 1, 101, dtype=torch.float64)
    first = torch.searchsorted(recall, thresholds)  # first rank with recall >= each threshold
    reached = first < len(recall)
    interpolated = torch.zeros(101, dtype=torch.float64)
    interpolated[reached] = envelope[first[reached]]
    return float(interpolated.mean())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-ap", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _t(rows):
    """A float64 tensor on DEVICE64; ``(0, 4)`` for an empty list of boxes."""
    return torch.tensor(rows, dtype=torch.float64, device=DEVICE64).reshape(-1, 4)


# One image, three objects; detections by score: hit, background, hit, hit.
gts_1 = [_t([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])]
dets_1 = [_t([[1, 0, 11, 10], [60, 60, 70, 70], [20, 1, 30, 11], [40, 0, 49, 10]])]
scores_1 = [torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64, device=DEVICE64)]
ap = average_precision(dets_1, scores_1, gts_1)
assert isinstance(ap, float), f"average_precision should return a Python float, got {type(ap).__name__}"
# Precision 1, 1/2, 2/3, 3/4 at recall 1/3, 1/3, 2/3, 1; the envelope is 1, 3/4, 3/4, 3/4.
# Thresholds 0..0.33 (34 of them) read 1; thresholds 0.34..1 (67) read 3/4.
assert_close(ap, (34 * 1.0 + 67 * 0.75) / 101, rtol=1e-12, atol=1e-12, msg="AP of hit, miss, hit, hit with 3 objects")

perfect = average_precision(gts_1, [torch.tensor([0.3, 0.2, 0.1], device=DEVICE64)], gts_1)
assert_close(perfect, 1.0, rtol=1e-12, atol=1e-12, msg="detections equal to the ground truths give AP 1")
nothing = average_precision([_t([])], [torch.zeros(0, device=DEVICE64)], gts_1)
assert nothing == 0.0, f"no detections at all should give AP 0.0, got {nothing}"
### BEGIN HIDDEN TESTS
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

_forbidden_ap = (
    "mlcraft.evaluation.coco_evaluate",
    "mlcraft.evaluation.average_precision",
    "mlcraft.evaluation.precision_recall_curve",
    "pycocotools.cocoeval.COCOeval.evaluate",
    "pycocotools.cocoeval.COCOeval.accumulate",
)


def _ap(pb, ps, gb, thr=None):
    before = [x.clone() for x in (*pb, *ps, *gb)]
    kwargs = {} if thr is None else {"iou_threshold": thr}
    result = call_without(average_precision, pb, ps, gb, forbidden=_forbidden_ap, **kwargs)
    after = [*pb, *ps, *gb]
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True)), "average_precision modified its inputs"
    assert isinstance(result, float), f"average_precision should return a Python float, got {type(result).__name__}"
    return result


def _coco_ap(pb, ps, gb, thr):
    """pycocotools' AP for one class at one IoU threshold (area 'all', up to 100 detections per image)."""
    images, annotations, results = [], [], []
    for i, (boxes, scores, gts) in enumerate(zip(pb, ps, gb, strict=True)):
        images.append({"id": i + 1})
        for x1, y1, x2, y2 in gts.tolist():
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            )  # fmt: skip
        for (x1, y1, x2, y2), score in zip(boxes.tolist(), scores.tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.params.iouThrs = np.array([thr])
        evaluator.params.maxDets = [100]
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    return float(evaluator.eval["precision"][0, :, 0, 0, 0].mean())


def _scene(generator, n_images, dtype, device):
    """Random images: objects, noisy and duplicate detections, background boxes, images without either.

    The total number of objects is kept coprime with 10 so that no recall k/G lands exactly on a threshold.
    """
    gts = [
        random_boxes(int(torch.randint(0, 6, (1,), generator=generator)), generator, max_xy=200.0, min_wh=12.0,
                     max_wh=60.0, device="cpu")
        for _ in range(n_images)
    ]  # fmt: skip
    while math.gcd(sum(len(g) for g in gts), 10) != 1:
        if sum(len(g) for g in gts) == 0:
            gts[0] = random_boxes(1, generator, max_xy=200.0, min_wh=12.0, max_wh=60.0, device="cpu")
        else:
            fullest = max(range(n_images), key=lambda i: len(gts[i]))
            gts[fullest] = gts[fullest][:-1]
    boxes = []
    for gt in gts:
        copies = gt.repeat_interleave(torch.randint(0, 3, (len(gt),), generator=generator), dim=0)
        copies = copies + torch.randn(copies.shape, generator=generator, dtype=torch.float64) * 4.0
        copies = torch.cat((copies[:, :2], torch.maximum(copies[:, 2:], copies[:, :2] + 2)), dim=1)
        background = random_boxes(int(torch.randint(0, 4, (1,), generator=generator)), generator, max_xy=250.0,
                                  min_wh=5.0, max_wh=60.0, device="cpu")  # fmt: skip
        boxes.append(torch.cat((copies, background)))
    total = sum(len(b) for b in boxes)
    ranks = (torch.randperm(total, generator=generator).double() + 1) / (total + 1)  # distinct scores
    scores = list(torch.split(ranks, [len(b) for b in boxes]))
    move = lambda xs: [x.to(device=device, dtype=dtype) for x in xs]  # noqa: E731
    return move(boxes), move(scores), move(gts)


_g = torch.Generator().manual_seed(grading_seed("test-ap", 70))
for _seed_images, _thr, _dtype, _dev in (
    (6, 0.5, torch.float64, DEVICE64),
    (10, 0.5, torch.float64, DEVICE64),
    (8, 0.75, torch.float64, DEVICE64),
    (8, 0.3, torch.float64, DEVICE64),
    (12, 0.5, torch.float32, DEVICE),
):
    _pb, _ps, _gb = _scene(_g, _seed_images, _dtype, _dev)
    _want = _coco_ap(_pb, _ps, _gb, _thr)
    _got = _ap(_pb, _ps, _gb, _thr)
    assert_close(
        _got,
        _want,
        rtol=1e-9,
        atol=1e-9,
        msg=f"{_seed_images} random images, iou_threshold {_thr}, {_dtype}: AP against pycocotools",
    )

# Hand-computed cases. A duplicate detection of an object is a false positive.
_gt3 = [_t([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])]
_dup = [_t([[1, 0, 11, 10], [0, 0, 10, 10], [20, 1, 30, 11], [40, 0, 49, 10]])]
_s4 = [torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64, device=DEVICE64)]
assert_close(_ap(_dup, _s4, _gt3), (34 + 67 * 0.75) / 101, rtol=1e-12, atol=1e-12, msg="a duplicate detection")
# The same detections with the scores reversed: miss first ranks badly.
_rev = [torch.tensor([0.6, 0.7, 0.8, 0.9], dtype=torch.float64, device=DEVICE64)]
# By score: [40,..] hit, [20,..] hit, background miss, [1,..] hit: precision 1, 1, 2/3, 3/4.
assert_close(_ap(dets_1, _rev, gts_1), (67 + 34 * 0.75) / 101, rtol=1e-12, atol=1e-12, msg="hit, hit, miss, hit")

# Two images, ranked together: 0.9 hit (img 1), 0.8 hit (img 2), 0.7 miss (img 2), 0.6 miss (img 1), 0.5 hit (img 2).
_pb2 = [_t([[0, 0, 10, 10], [80, 80, 90, 90]]), _t([[0, 0, 10, 10], [50, 50, 60, 60], [30, 30, 40, 41]])]
_ps2 = [
    torch.tensor([0.9, 0.6], dtype=torch.float64, device=DEVICE64),
    torch.tensor([0.8, 0.7, 0.5], dtype=torch.float64, device=DEVICE64),
]
_gb2 = [_t([[0, 0, 10, 10]]), _t([[0, 0, 10, 10], [30, 30, 40, 40]])]
# Precision 1, 1, 2/3, 1/2, 3/5 at recall 1/3, 2/3, 2/3, 2/3, 1; envelope 1, 1, 2/3, 3/5, 3/5.
assert_close(_ap(_pb2, _ps2, _gb2), (67 + 34 * 0.6) / 101, rtol=1e-12, atol=1e-12, msg="two images ranked together")
assert_close(_ap(_pb2, _ps2, _gb2), _coco_ap(_pb2, _ps2, _gb2, 0.5), rtol=1e-9, atol=1e-9, msg="two images, COCO")

# A detection whose best object is taken matches another free object it overlaps by the threshold.
_gtf = [_t([[0, 0, 10, 10], [4, 0, 14, 10], [50, 50, 60, 60]])]
_pbf = [_t([[1, 0, 11, 10], [1.5, 0, 11.5, 10]])]  # IoUs 0.82 / 0.54 and 0.74 / 0.6 with the first two objects
_psf = [torch.tensor([0.9, 0.8], dtype=torch.float64, device=DEVICE64)]
assert_close(_ap(_pbf, _psf, _gtf), 67 / 101, rtol=1e-12, atol=1e-12, msg="the second detection takes the free object")
assert_close(_ap(_pbf, _psf, _gtf, 0.75), 34 / 101, rtol=1e-12, atol=1e-12, msg="the same at iou_threshold 0.75")

# Images without detections or without objects; no detections at all; no objects at all.
_mixed_pb = [_t([]), _t([[0, 0, 10, 10]]), _t([[5, 5, 9, 9]])]
_mixed_ps = [torch.zeros(0, dtype=torch.float64, device=DEVICE64)] + [
    torch.tensor([v], dtype=torch.float64, device=DEVICE64) for v in (0.4, 0.9)
]
_mixed_gb = [_t([[0, 0, 5, 5], [20, 20, 30, 30]]), _t([[0, 0, 10, 10]]), _t([])]
# 0.9 is a miss in an image without objects; 0.4 a hit; the objects of image 0 are never found.
assert_close(_ap(_mixed_pb, _mixed_ps, _mixed_gb), 34 * 0.5 / 101, rtol=1e-12, atol=1e-12, msg="mixed images")
assert _ap([_t([]), _t([])], [torch.zeros(0, device=DEVICE64)] * 2, _gb2) == 0.0, "no detections: AP 0.0"
try:
    average_precision(_pb2, _ps2, [_t([]), _t([])])
except ValueError:
    pass
else:
    raise AssertionError("average_precision with no ground truth in any image should raise ValueError")
try:
    average_precision([], [], [])
except ValueError:
    pass
else:
    raise AssertionError("average_precision([], [], []) (no images, so no ground truth) should raise ValueError")

# An IoU exactly on iou_threshold is a match ([0, 0, 10, 10] and [0, 0, 10, 20]: IoU 0.5); just above it is not.
_g1, _d1 = [_t([[0, 0, 10, 10]])], [_t([[0, 0, 10, 20]])]
_s1 = [torch.tensor([0.5], dtype=torch.float64, device=DEVICE64)]
assert _ap(_d1, _s1, _g1, 0.5) == 1.0, "one detection with IoU exactly 0.5 at iou_threshold 0.5 is a match: AP 1.0"
assert _ap(_d1, _s1, _g1) == 1.0, "IoU exactly 0.5 with the default iou_threshold (0.5) is a match: AP 1.0"
assert _ap(_d1, _s1, _g1, 0.51) == 0.0, "one detection with IoU 0.5 at iou_threshold 0.51 is no match: AP 0.0"
# float64 precision: an IoU 5e-12 below 0.5 (it would round to 0.5 in float32) is no match.
assert _ap([_t([[0, 0, 10, 20.0000000002]])], _s1, _g1, 0.5) == 0.0, (
    "a float64 detection with IoU 0.5 - 5e-12 at iou_threshold 0.5 is no match (compare in float64): AP 0.0"
)
assert _ap(_g1, _s1, [_t([[0, 0, 10, 20.0000000002]])], 0.5) == 0.0, (
    "a float64 ground truth with IoU 0.5 - 5e-12 at iou_threshold 0.5 is no match (compare in float64): AP 0.0"
)
# float64 scores 1e-12 apart (equal in float32): the better one, a hit in image 1, ranks first.
_s64 = [torch.tensor([0.5], dtype=torch.float64, device=DEVICE64), torch.tensor([0.5 + 1e-12], dtype=torch.float64, device=DEVICE64)]
assert_close(
    _ap([_t([[50, 50, 60, 60]]), _t([[0, 0, 10, 10]])], _s64, [_t([]), _t([[0, 0, 10, 10]])]),
    1.0,
    rtol=1e-12,
    atol=1e-12,
    msg="float64 scores 0.5 (a miss) and 0.5 + 1e-12 (a hit): the hit ranks first, AP 1.0",
)
# iou_threshold 0: a detection takes a free object it does not overlap; one whose objects are all taken is a miss.
# Image 0, objects A and B: A (0.9) hits A; A again (0.5) has IoU 0 with the free B, so it hits B; a box far away
# (0.4) finds nothing free: a miss. Image 1 has no object: 0.45 is a miss. Image 2: 0.3 hits its object.
_pb0 = [_t([[0, 0, 10, 10], [0, 0, 10, 10], [200, 200, 210, 210]]), _t([[300, 300, 310, 310]]), _t([[100, 0, 110, 10]])]
_ps0 = [
    torch.tensor([0.9, 0.5, 0.4], dtype=torch.float64, device=DEVICE64),
    torch.tensor([0.45], dtype=torch.float64, device=DEVICE64),
    torch.tensor([0.3], dtype=torch.float64, device=DEVICE64),
]
_gb0 = [_t([[0, 0, 10, 10], [50, 0, 60, 10]]), _t([]), _t([[100, 0, 110, 10]])]
# Hit, hit, miss, miss, hit: precision 1, 1, 2/3, 1/2, 3/5 at recall 1/3, 2/3, 2/3, 2/3, 1.
assert_close(_ap(_pb0, _ps0, _gb0, 0.0), (67 + 34 * 0.6) / 101, rtol=1e-12, atol=1e-12, msg="iou_threshold 0.0")
assert_close(
    _ap(_pb0, _ps0, _gb0, 0.0), _coco_ap(_pb0, _ps0, _gb0, 0.0), rtol=1e-9, atol=1e-9, msg="iou_threshold 0.0, COCO"
)
### END HIDDEN TESTS
print("average_precision: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "wrap-up", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Wrap-up
#
# - Know your box format: `xyxy`, `xywh` and `cxcywh` all look like four numbers. Convert at
#   the boundary (data loader, model output) and nowhere else.
# - Areas are `(x2 - x1) * (y2 - y1)`: no "+1" in continuous coordinates. Clamp the
#   intersection's sides at 0, or boxes far apart get an overlap.
# - NMS keeps a box unless a **kept** box overlaps it by more than the threshold, and runs per
#   class; the order of the kept indices is the order of the scores.
# - Anchor matching has three outcomes (object, background, ignored) and a rescue rule so that
#   every object gets an anchor.
# - Decoded offsets are a centre and a size; clamp the log-size before `exp`.
# - AP counts each object once, ranks detections across images, and takes the precision
#   envelope before reading it at 101 recall thresholds. Compare your number with
#   `pycocotools` before you put it in a table.
#
# The course package has production versions: `mlcraft.ops` (`box_convert`, `box_iou`, `nms`,
# `batched_nms`, `decode_boxes`), `mlcraft.evaluation` (`coco_evaluate`, which reproduces the
# full COCO evaluation) and `mlcraft.models.anchors` (`grid_anchors`, `match_anchors`).


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. Take the boxes `(0, 0, 1, 1)` and `(2, 2, 3, 3)`. Without clamping the intersection's sides at
#    0, what are its width, height and area, and what IoU comes out?
# 2. Why can NMS not be computed in one shot as "remove every box that overlaps a higher-scored box
#    by more than the threshold"? Which case shows the difference?
# 3. With `iou_threshold = 1.0`, two identical boxes: which are kept? What would a suppression rule
#    with `>=` instead of `>` do?
# 4. Your `batched_nms` concatenates the kept indices class by class. Would a test with a single
#    class catch that? Which test does?
# 5. An anchor has IoU 0.30 with ground truth 0 and 0.35 with ground truth 1, and no other anchor
#    overlaps ground truth 0 as much. With `high=0.5` and `low=0.4`, what does `match_anchors`
#    return for it?
# 6. Why is `dw` clamped from above only? What do `dw = 100` without the clamp and `dw = -100` give
#    in `float32`?
# 7. Two ground truths; detections ranked TP, FP, TP. What is the AP? And if the FP were ranked last?
#
# <details><summary>Answers</summary>
#
# 1. Width `1 - 2 = -1`, height `-1`, "area" `(-1) × (-1) = 1`; union `1 + 1 - 1 = 1`; IoU 1: two
#    boxes that do not touch look identical. A random test catches it only if it draws boxes that
#    are apart in both directions.
# 2. Only kept boxes suppress. In a chain where A overlaps B and B overlaps C (A not C), the one-shot
#    rule removes C because of B, although B was itself removed by A; NMS keeps A and C.
# 3. Both: their IoU is exactly 1, which is not greater than 1. With `>=` the lower-scored one would
#    be removed.
# 4. No: with one class the order is already by score. A test with two classes whose scores
#    interleave (class 3 at 0.9 and 0.5, class 17 at 0.7) catches it: the result must be ordered
#    0.9, 0.7, 0.5.
# 5. Step 1 gives `-1` (best IoU 0.35 `< low`). Step 2 matches it as ground truth 0's best anchor,
#    and it gets **its own** best ground truth: 1.
# 6. A large positive `dw` overflows `exp`: `exp(100) ≈ 2.7e43` is `inf` in `float32`, and an infinite
#    box spreads `inf` and `NaN` into IoUs and losses. A negative one only shrinks the box:
#    `exp(-100) ≈ 3.7e-44` is tiny but finite, a harmless near-empty box.
# 7. Precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1; the envelope gives 1, 2/3, 2/3. The 51 thresholds
#    0–0.5 read 1, the 50 thresholds 0.51–1 read 2/3: AP `= (51 + 50 × 2/3) / 101 ≈ 0.835`. With the
#    FP last, AP is 1: a false positive ranked below every true positive costs nothing.
#
# </details>
