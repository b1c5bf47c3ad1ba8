"""The FCOS shapes detector against torchvision (FCOS loss and matching, focal loss, GIoU) and COCO mAP."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from mlcraft.classroom.testing import assert_close
from mlcraft.data.detection import collate_detection
from mlcraft.data.shapes import ShapesDetection
from mlcraft.evaluation import coco_evaluate
from mlcraft.models.detection_loss import (
    centerness_target,
    detection_loss,
    detection_losses,
    fcos_targets,
    paired_generalized_box_iou,
    sigmoid_focal_loss,
)
from mlcraft.models.detector import DetectorConfig, ShapesDetector, fasterrcnn_for_shapes, feature_points, postprocess
from mlcraft.ops import generalized_box_iou

SMALL = DetectorConfig(widths=(8, 16, 32), head_width=16, head_depth=1)  # fast model for shape/gradient tests


def _target(boxes: list[list[float]], labels: list[int], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=dtype).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _random_targets(generator: torch.Generator, size: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """1-5 boxes inside a ``size`` image whose areas differ by > 16 px (no near-ties in "smallest area")."""
    count = int(torch.randint(1, 6, (1,), generator=generator))
    while True:
        wh = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 40 + 8
        xy = torch.rand(count, 2, generator=generator, dtype=torch.float64) * (size - wh)
        areas = wh.prod(dim=1)
        gaps = (areas[:, None] - areas[None, :]).abs() + torch.eye(count, dtype=torch.float64) * 1e9
        if bool((gaps > 16).all()):
            break
    labels = torch.randint(1, 4, (count,), generator=generator)
    return {"boxes": torch.cat([xy, xy + wh], dim=1).to(dtype), "labels": labels}


# ----------------------------------------------------------------------------- model and locations
def test_forward_shapes_and_points() -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL)
    for height, width in [(128, 128), (100, 60)]:
        out = model(torch.rand(2, 3, height, width))
        fh, fw = math.ceil(height / 8), math.ceil(width / 8)
        num = fh * fw
        assert out["cls_logits"].shape == (2, num, 3), f"{height}x{width}: {out['cls_logits'].shape}"
        assert out["box_regression"].shape == (2, num, 4) and out["box_regression"].dtype == torch.float32
        assert out["centerness"].shape == (2, num)
        assert bool((out["box_regression"] > 0).all()), "box distances must be positive"
        assert torch.equal(out["points"], model.points((height, width))), "points() disagrees with forward"
        assert torch.equal(out["strides"], torch.full((num,), 8.0))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 32, 32))


def test_feature_points_by_hand() -> None:
    expected = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [4.0, 12.0], [12.0, 12.0], [20.0, 12.0]])
    assert torch.equal(feature_points((2, 3), 8), expected), feature_points((2, 3), 8)
    assert torch.equal(feature_points((1, 2), 16), torch.tensor([[8.0, 8.0], [24.0, 8.0]]))
    with pytest.raises(ValueError, match="positive"):
        feature_points((0, 3), 8)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="widths"):
        DetectorConfig(widths=(16, 32))
    with pytest.raises(ValueError):
        DetectorConfig(score_threshold=1.5)
    with pytest.raises(ValueError):
        DetectorConfig(unknown=1)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- targets
def test_fcos_targets_by_hand() -> None:
    points = feature_points((16, 16), 8)  # 128 x 128 image, points at 4, 12, ..., 124
    strides = torch.full((256,), 8.0)
    big, small = [0.0, 0.0, 64.0, 64.0], [24.0, 24.0, 56.0, 40.0]  # centres (32, 32) and (40, 32)
    targets = [_target([big, small], [1, 2]), _target([], [])]

    def at(x: float, y: float) -> int:
        return int(((points[:, 0] == x) & (points[:, 1] == y)).nonzero())

    assigned = fcos_targets(points, strides, targets, center_sampling_radius=None)
    assert assigned.labels.shape == (2, 256) and assigned.boxes.shape == (2, 256, 4)
    assert int(assigned.labels[0, at(28, 28)]) == 2, "a location inside two boxes goes to the smaller"
    assert int(assigned.matched[0, at(28, 28)]) == 1
    assert_close(assigned.boxes[0, at(28, 28)], torch.tensor(small), msg="assigned box")
    assert int(assigned.labels[0, at(4, 4)]) == 1, "inside the big box only"
    assert int(assigned.labels[0, at(100, 100)]) == 0 and int(assigned.matched[0, at(100, 100)]) == -1
    assert int(assigned.labels[0, at(20, 28)]) == 1, "x = 20 is outside the small box (24..56)"
    inside_big = (points < 64).all(dim=1)
    assert torch.equal(assigned.labels[0] > 0, inside_big), "positives are exactly the locations inside a box"
    assert int((assigned.labels[0] == 2).sum()) == 8, "x in {28, 36, 44, 52}, y in {28, 36}"
    assert not bool(assigned.labels[1].any()), "an image with no boxes is all background"
    assert bool((assigned.matched[1] == -1).all()) and not bool(assigned.boxes[1].any())
    # Centre sampling: strictly within 1.5 * 8 = 12 px of a box centre (Chebyshev distance).
    sampled = fcos_targets(points, strides, targets, center_sampling_radius=1.5)
    assert int(sampled.labels[0, at(4, 4)]) == 0, "(4, 4) is 28 px from the big box's centre"
    assert int(sampled.labels[0, at(28, 28)]) == 1, "12 px from the small box's centre: only the big box samples it"
    assert int(sampled.labels[0, at(36, 28)]) == 2, "sampled by both: the smaller wins"
    assert int((sampled.labels[0] == 2).sum()) == 4, "x in {36, 44}, y in {28, 36}"
    assert int((sampled.labels[0] == 1).sum()) == 2, "x = 28, y in {28, 36}"


def test_fcos_targets_reject_bad_input() -> None:
    points, strides = feature_points((2, 2), 8), torch.full((4,), 8.0)
    with pytest.raises(ValueError, match="labels must be >= 1"):
        fcos_targets(points, strides, [_target([[0, 0, 8, 8]], [0])])
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        fcos_targets(points, strides, [_target([[0, 0, 8, 8], [1, 1, 9, 9]], [1])])
    with pytest.raises(ValueError, match="points"):
        fcos_targets(points[:, :1], strides, [_target([], [])])


def _torchvision_fcos_loss(
    outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]], radius: float
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """torchvision's FCOS.compute_loss on our outputs (one level): anchors are stride-sized squares
    centred on our points, regression normalised by their size, labels shifted to 0..K-1."""
    num_classes = outputs["cls_logits"].shape[-1]
    head = FCOSHead(in_channels=32, num_anchors=1, num_classes=num_classes)
    matched: list[torch.Tensor] = []
    real_head_loss = head.compute_loss

    def spy(tv_targets: Any, head_outputs: Any, anchors: Any, matched_idxs: list[torch.Tensor]) -> Any:
        matched.extend(matched_idxs)
        return real_head_loss(tv_targets, head_outputs, anchors, matched_idxs)

    head.compute_loss = spy
    fake = SimpleNamespace(center_sampling_radius=radius, head=head)
    half = outputs["strides"][:, None] / 2
    anchors = torch.cat([outputs["points"] - half, outputs["points"] + half], dim=1)  # (L, 4)
    batch = outputs["cls_logits"].shape[0]
    tv_targets = [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets]
    head_outputs = {
        "cls_logits": outputs["cls_logits"],
        "bbox_regression": outputs["box_regression"] / outputs["strides"][None, :, None],
        "bbox_ctrness": outputs["centerness"][..., None],
    }
    losses = FCOS.compute_loss(fake, tv_targets, head_outputs, [anchors] * batch, [anchors.shape[0]])
    return losses, matched


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [1.5, 3.0])
def test_targets_and_loss_equal_torchvision_fcos(seed: int, radius: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    dtype, batch, size = torch.float64, 3, 96
    points = feature_points((size // 8, size // 8), 8).to(dtype)
    num = points.shape[0]
    targets = [_random_targets(generator, size, dtype) for _ in range(batch)]
    if seed % 2:
        targets[1] = _target([], [], dtype)  # an image without boxes in the batch
    outputs = {
        "cls_logits": torch.randn(batch, num, 3, generator=generator, dtype=dtype) * 2,
        "box_regression": torch.rand(batch, num, 4, generator=generator, dtype=dtype) * 30 + 0.5,
        "centerness": torch.randn(batch, num, generator=generator, dtype=dtype),
        "points": points,
        "strides": torch.full((num,), 8.0, dtype=dtype),
    }
    expected, tv_matched = _torchvision_fcos_loss(outputs, targets, radius)
    assigned = fcos_targets(outputs["points"], outputs["strides"], targets, center_sampling_radius=radius)
    assert torch.equal(assigned.matched, torch.stack(tv_matched)), f"seed {seed}: assignment differs from torchvision"
    assert int((assigned.matched >= 0).sum()) > 0, "the case must have positives"
    got = detection_losses(outputs, targets, center_sampling_radius=radius)
    names = {"classification": "classification", "box": "bbox_regression", "centerness": "bbox_ctrness"}
    for ours, theirs in names.items():
        assert_close(got[ours], expected[theirs], rtol=1e-10, atol=1e-12, msg=f"seed {seed}: {ours} loss")
    total = detection_loss(outputs, targets, center_sampling_radius=radius)
    assert_close(total, sum(expected.values()), rtol=1e-10, atol=1e-12, msg="total loss")


# ----------------------------------------------------------------------------- loss terms
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5), (0.9, 3.0)])
def test_sigmoid_focal_loss_equals_torchvision(alpha: float, gamma: float) -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 5, generator=generator, dtype=torch.float64) * 4
    logits[0] = torch.tensor([30.0, -30.0, 0.0, 60.0, -60.0], dtype=torch.float64)  # saturated logits
    targets = (torch.rand(64, 5, generator=generator, dtype=torch.float64) > 0.7).to(torch.float64)
    expected = tv_sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
    got = sigmoid_focal_loss(logits, targets, alpha, gamma)
    assert_close(got, expected, rtol=1e-12, atol=1e-15, msg=f"focal loss alpha={alpha} gamma={gamma}")


def test_paired_giou_and_box_loss_equal_generalized_box_iou() -> None:
    generator = torch.Generator().manual_seed(2)
    xy = torch.rand(50, 2, 2, generator=generator, dtype=torch.float64) * 100
    boxes1 = torch.cat([xy[:, 0], xy[:, 0] + torch.rand(50, 2, generator=generator, dtype=torch.float64) * 40 + 1], 1)
    boxes2 = torch.cat([xy[:, 1], xy[:, 1] + torch.rand(50, 2, generator=generator, dtype=torch.float64) * 40 + 1], 1)
    boxes2[:5] = boxes1[:5]  # identical pairs: GIoU 1
    expected = torch.diagonal(generalized_box_iou(boxes1, boxes2))
    assert_close(paired_generalized_box_iou(boxes1, boxes2), expected, rtol=0, atol=1e-8, msg="paired GIoU")
    # The box term of the loss is sum(1 - GIoU(decoded, assigned)) / positives.
    points = feature_points((12, 12), 8).to(torch.float64)
    targets = [_random_targets(generator, 96, torch.float64) for _ in range(2)]
    distances = torch.rand(2, 144, 4, generator=generator, dtype=torch.float64) * 20 + 1
    outputs = {
        "cls_logits": torch.zeros(2, 144, 3, dtype=torch.float64),
        "box_regression": distances,
        "centerness": torch.zeros(2, 144, dtype=torch.float64),
        "points": points,
        "strides": torch.full((144,), 8.0, dtype=torch.float64),
    }
    assigned = fcos_targets(points, outputs["strides"], targets)
    positive = assigned.labels > 0
    predicted = torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)[positive]
    giou = torch.diagonal(generalized_box_iou(predicted, assigned.boxes[positive]))
    expected_box = (1 - giou).sum() / positive.sum()
    assert_close(detection_losses(outputs, targets)["box"], expected_box, rtol=0, atol=1e-8, msg="box loss")


def test_centerness_target_by_hand() -> None:
    points = torch.tensor([[5.0, 5.0], [2.0, 5.0], [1.0, 1.0]], dtype=torch.float64)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3, dtype=torch.float64)
    expected = torch.tensor([1.0, math.sqrt(2 / 8), math.sqrt(1 / 9 * 1 / 9)], dtype=torch.float64)
    assert_close(centerness_target(points, boxes), expected, msg="centerness")


def test_loss_with_no_ground_truth_is_finite_and_trains_only_classification() -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL)
    out = model(torch.rand(2, 3, 64, 64))
    terms = detection_losses(out, [_target([], []), _target([], [])])
    assert bool(torch.isfinite(terms["classification"])) and float(terms["classification"].detach()) > 0
    assert float(terms["box"].detach()) == 0.0 and float(terms["centerness"].detach()) == 0.0, terms
    loss = model.loss(out, [_target([], []), _target([], [])])
    loss.backward()
    assert model.cls_logits.weight.grad is not None and bool(model.cls_logits.weight.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match=r"labels must be in 1..3"):
        detection_loss(out, [_target([[8, 8, 40, 40]], [4]), _target([], [])])
    with pytest.raises(ValueError, match="2 images in the outputs but 1 targets"):
        detection_loss(out, [_target([], [])])


def test_gradients_flow_to_every_parameter() -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL)
    targets = [_target([[8, 8, 40, 40], [30, 10, 60, 34]], [1, 3]), _target([[16, 20, 48, 60]], [2])]
    loss = model.loss(model(torch.rand(2, 3, 64, 64)), targets)
    assert bool(torch.isfinite(loss))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert bool(torch.isfinite(parameter.grad).all()), f"{name} has non-finite gradients"
        assert bool(parameter.grad.abs().sum() > 0), f"{name} has an all-zero gradient"


# ----------------------------------------------------------------------------- postprocess
def _hand_outputs(num_classes: int = 2) -> dict[str, torch.Tensor]:
    """A 4 x 4 map (32 x 32 image) scoring nothing (logits -20) unless a test sets it."""
    points = feature_points((4, 4), 8)
    return {
        "cls_logits": torch.full((1, 16, num_classes), -20.0),
        "box_regression": torch.full((1, 16, 4), 2.0),
        "centerness": torch.full((1, 16), 20.0),
        "points": points,
        "strides": torch.full((16,), 8.0),
    }


def test_postprocess_decodes_hand_set_outputs() -> None:
    out = _hand_outputs()
    out["cls_logits"][0, 5, 1] = 3.0  # location 5 = point (12, 12), class index 1 -> label 2
    out["box_regression"][0, 5] = torch.tensor([2.0, 3.0, 4.0, 5.0])
    out["cls_logits"][0, 15, 0] = 2.0  # point (28, 28): box runs past the 32 px image and is clipped
    out["box_regression"][0, 15] = torch.tensor([6.0, 6.0, 10.0, 10.0])
    [det] = postprocess(out, (32, 32), score_threshold=0.5)
    expected_boxes = torch.tensor([[10.0, 9.0, 16.0, 17.0], [22.0, 22.0, 32.0, 32.0]])
    expected_scores = torch.sqrt(torch.sigmoid(torch.tensor([3.0, 2.0])) * torch.sigmoid(torch.tensor(20.0)))
    assert_close(det["boxes"], expected_boxes, msg="decoded and clipped boxes")
    assert_close(det["scores"], expected_scores, msg="scores are sqrt(cls * centerness)")
    assert torch.equal(det["labels"], torch.tensor([2, 1])), det["labels"]
    assert det["labels"].dtype == torch.int64
    with pytest.raises(ValueError, match="score_threshold"):
        postprocess(out, (32, 32), score_threshold=1.0)


def test_postprocess_nms_is_per_class() -> None:
    out = _hand_outputs()
    for location, cls, logit in [(5, 0, 3.0), (6, 1, 2.0), (9, 0, 1.0)]:  # same box from three locations
        out["cls_logits"][0, location, cls] = logit
        point = out["points"][location]
        out["box_regression"][0, location] = torch.cat([point - 4.0, 20.0 - point])  # box (4, 4, 20, 20)
    [det] = postprocess(out, (32, 32), score_threshold=0.3, iou_threshold=0.5)
    assert torch.equal(det["labels"], torch.tensor([1, 2])), f"one box per class survives: {det}"
    assert_close(det["boxes"], torch.tensor([[4.0, 4.0, 20.0, 20.0]] * 2), msg="kept boxes")


def test_postprocess_respects_max_detections_and_empty() -> None:
    out = _hand_outputs()
    out["cls_logits"][0, :, 0] = torch.linspace(0.0, 3.0, 16)  # 16 disjoint 4x4 boxes, distinct scores
    [det] = postprocess(out, (32, 32), score_threshold=0.1, max_detections=3)
    assert det["boxes"].shape == (3, 4)
    assert bool((det["scores"][:-1] >= det["scores"][1:]).all()), "best first"
    assert int(out["points"][15][0]) == 28 and torch.equal(det["boxes"][0], torch.tensor([26.0, 26.0, 30.0, 30.0]))
    [none] = postprocess(_hand_outputs(), (32, 32), score_threshold=0.5)
    assert none["boxes"].shape == (0, 4) and none["scores"].shape == (0,) and none["labels"].shape == (0,)


def test_postprocess_output_goes_through_coco_evaluate() -> None:
    out = _hand_outputs()
    out["cls_logits"][0, 5, 1] = 3.0
    out["box_regression"][0, 5] = torch.tensor([2.0, 3.0, 4.0, 5.0])  # box (10, 9, 16, 17)
    out["cls_logits"][0, 10, 0] = 1.0  # a false positive of class 1
    detections = postprocess(out, (32, 32), score_threshold=0.3)
    metrics = coco_evaluate([_target([[10.0, 9.0, 16.0, 17.0]], [2])], detections)
    assert metrics["AP_per_class"][2] == pytest.approx(1.0), metrics["AP_per_class"]
    assert metrics["AP50"] == pytest.approx(1.0), "class 1 has no ground truth, so only class 2 counts"


# ----------------------------------------------------------------------------- devices and AMP
def test_forward_loss_postprocess_on_device(device: torch.device) -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL).to(device)
    targets = [
        {key: value.to(device) for key, value in _target([[8, 8, 40, 40]], [1]).items()},
        {key: value.to(device) for key, value in _target([], []).items()},
    ]
    images = torch.rand(2, 3, 64, 64, device=device)
    loss = model.loss(model(images), targets)
    assert loss.device.type == device.type and bool(torch.isfinite(loss))
    loss.backward()
    detections = model.predict(images)
    assert model.training, "predict restores train mode"
    assert len(detections) == 2 and all(d["boxes"].device.type == device.type for d in detections)
    assert all(d["boxes"].shape[0] <= SMALL.max_detections for d in detections)


def test_bf16_autocast_forward_and_loss_on_cpu() -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL).eval()  # eval: BatchNorm uses the same running stats in both runs
    images = torch.rand(2, 3, 64, 64)
    targets = [_target([[8, 8, 40, 40], [30, 10, 60, 34]], [1, 3]), _target([], [])]
    reference = model.loss(model(images), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
        loss = model.loss(outputs, targets)
    assert outputs["cls_logits"].dtype == torch.bfloat16, "the convolutions ran in bf16"
    assert outputs["box_regression"].dtype == torch.float32, "distances are computed in float32"
    assert loss.dtype == torch.float32 and bool(torch.isfinite(loss))
    assert_close(loss, reference, rtol=5e-2, atol=1e-3, msg="bf16 loss near the fp32 loss")
    loss.backward()


# ----------------------------------------------------------------------------- the library route
def test_fasterrcnn_for_shapes_downloads_nothing_and_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    import torch.hub

    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    torch.manual_seed(0)
    model = fasterrcnn_for_shapes(num_classes=3, image_size=128)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4, "3 classes + background"
    images, targets = collate_detection([ShapesDetection(2, seed=0)[i] for i in range(2)])
    model.train()
    losses = model(list(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert bool(torch.isfinite(total)), losses
    total.backward()
    model.eval()
    with torch.no_grad():
        detections = model(list(images))
    ours = ShapesDetector(SMALL).predict(images)
    for theirs, mine in zip(detections, ours, strict=True):
        assert set(theirs) == set(mine) == {"boxes", "scores", "labels"}
        assert theirs["labels"].dtype == mine["labels"].dtype == torch.int64
    ground_truths = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    metrics = coco_evaluate(ground_truths, detections)
    assert -1.0 <= metrics["AP"] <= 1.0
    with pytest.raises(ValueError, match="anchor sizes"):
        fasterrcnn_for_shapes(anchor_sizes=(8, 16))
