"""Tests for mlcraft.evaluation.coco against pycocotools' COCOeval (iouType "bbox")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from mlcraft.classroom.testing import assert_close
from mlcraft.evaluation.coco import (
    IOU_THRESHOLDS,
    STAT_NAMES,
    average_precision,
    coco_evaluate,
    precision_recall_curve,
    run_cocoeval,
    to_coco_json,
)

TOL = 1e-6  # |ours - pycocotools| allowed on every number
Image = dict[str, Any]
Format = Literal["xyxy", "xywh"]


def _gt(boxes: Sequence[Sequence[float]], labels: Sequence[int], **extra: Sequence[float]) -> Image:
    out: Image = {"boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), "labels": torch.tensor(labels)}
    out.update({k: torch.tensor(v) for k, v in extra.items()})
    return out


def _dt(boxes: Sequence[Sequence[float]], scores: Sequence[float], labels: Sequence[int]) -> Image:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float64),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _pycocotools(gts: list[Image], dts: list[Image], box_format: Format = "xyxy") -> COCOeval:
    return run_cocoeval(gts, dts, box_format=box_format)


def _check_against_pycocotools(gts: list[Image], dts: list[Image], box_format: Format = "xyxy") -> float:
    """Assert every output equals pycocotools' to TOL; return the largest difference seen."""
    ours = coco_evaluate(gts, dts, box_format=box_format)
    ref = _pycocotools(gts, dts, box_format)
    stats = np.array([ours[name] for name in STAT_NAMES])
    assert_close(stats, ref.stats, rtol=0.0, atol=TOL, msg=f"stats {STAT_NAMES}")
    precision, recall = ref.eval["precision"], ref.eval["recall"]
    assert_close(ours["precision"], precision, rtol=0.0, atol=TOL, msg="precision (T, R, K, A, M)")
    assert_close(ours["recall"], recall, rtol=0.0, atol=TOL, msg="recall (T, K, A, M)")
    assert list(ours["AP_per_class"]) == list(ref.params.catIds)
    for k, label in enumerate(ref.params.catIds):
        s = precision[:, :, k, 0, -1]  # area all, 100 detections
        expected = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
        assert abs(ours["AP_per_class"][label] - expected) <= TOL, (
            f"class {label}: {ours['AP_per_class'][label]} vs {expected}"
        )
    return float(
        max(
            np.abs(stats - ref.stats).max(),
            np.abs(ours["precision"] - precision).max(initial=0.0),
            np.abs(ours["recall"] - recall).max(initial=0.0),
        )
    )


def _random_case(seed: int) -> tuple[list[Image], list[Image]]:
    """Images 1-8, classes 1-4 (non-contiguous ids), 0-6 ground truths per image with sides 3-250 px
    (small, medium and large), detections = jittered ground truths (some with the wrong class),
    duplicates, false positives; distinct scores. Odd seeds add crowd regions and ``area`` fields."""
    rng = np.random.default_rng(seed)
    classes = rng.choice([1, 2, 5, 7, 11], size=rng.integers(1, 5), replace=False)
    gts, dts = [], []
    for _ in range(rng.integers(1, 9)):
        g = int(rng.integers(0, 7))
        top_left = rng.uniform(0, 400, size=(g, 2))
        gt_boxes = np.concatenate([top_left, top_left + np.exp(rng.uniform(np.log(3), np.log(250), size=(g, 2)))], 1)
        gt_labels = rng.choice(classes, size=g)
        dt_boxes, dt_labels = [], []
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            size = np.tile(box[2:] - box[:2], 2)
            for _ in range(int(rng.random() < 0.85) + int(rng.random() < 0.3)):  # a detection, maybe a duplicate
                dt_boxes.append(box + rng.normal(0, 0.08, 4) * size)
                dt_labels.append(label if rng.random() < 0.9 else rng.choice(classes))
        for _ in range(rng.integers(0, 5)):  # false positives
            corner = rng.uniform(0, 400, 2)
            dt_boxes.append(np.concatenate([corner, corner + np.exp(rng.uniform(np.log(3), np.log(250), 2))]))
            dt_labels.append(rng.choice(classes))
        dt = np.array(dt_boxes).reshape(-1, 4)
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 0.5)  # keep x1 < x2 after jitter
        gt: Image = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32), "labels": torch.from_numpy(gt_labels)}
        if seed % 2:
            gt["iscrowd"] = torch.from_numpy(rng.random(g) < 0.15)
            gt["area"] = torch.from_numpy(np.prod(gt_boxes[:, 2:] - gt_boxes[:, :2], 1) * rng.uniform(0.5, 1, g))
        gts.append(gt)
        dts.append(
            {"boxes": torch.tensor(dt, dtype=torch.float32), "labels": torch.tensor(np.array(dt_labels, np.int64))}
        )
    n = sum(len(d["boxes"]) for d in dts)
    scores = torch.from_numpy((rng.permutation(n) + 1) / (n + 1)).float()  # distinct, even in float32
    for d, chunk in zip(dts, scores.split([len(d["boxes"]) for d in dts]), strict=True):
        d["scores"] = chunk
    return gts, dts


SEEDS = list(range(20))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cases_match_pycocotools(seed: int) -> None:
    gts, dts = _random_case(seed)
    if sum(len(d["boxes"]) for d in dts) == 0:  # pycocotools' loadRes cannot take an empty list
        dts[0] = _dt([[0, 0, 5, 5]], [0.5], [int(gts[0]["labels"][0]) if len(gts[0]["labels"]) else 1])
    assert len(torch.cat([d["scores"] for d in dts]).unique()) == sum(len(d["scores"]) for d in dts)
    _check_against_pycocotools(gts, dts)


def test_random_cases_cover_the_interesting_regimes() -> None:
    """The randomized cases above would not test much if they were all alike."""
    cases = [_random_case(seed) for seed in SEEDS]
    areas = np.concatenate(
        [np.prod(np.diff(g["boxes"].numpy().reshape(-1, 2, 2), axis=1), -1).ravel() for gts, _ in cases for g in gts]
    )
    assert (areas < 32**2).any() and ((areas > 32**2) & (areas < 96**2)).any() and (areas > 96**2).any()
    assert any(len(g["boxes"]) == 0 for gts, _ in cases for g in gts), "no image without ground truth"
    assert any(bool(g.get("iscrowd", torch.zeros(1)).any()) for gts, _ in cases for g in gts), "no crowd region"
    results = [coco_evaluate(gts, dts) for gts, dts in cases]
    assert any(-1.0 in r["AP_per_class"].values() for r in results), "no class without ground truth"
    assert sum(0.0 < r["AP"] < 1.0 for r in results) >= 15
    assert any(r["AP"] == -1.0 for r in results), "no case without any ground truth"


def test_image_without_ground_truth_counts_its_detections_as_false_positives() -> None:
    gts = [_gt([[0, 0, 50, 50]], [1]), _gt([], [])]
    dts = [_dt([[0, 0, 50, 50]], [0.5], [1]), _dt([[10, 10, 60, 60]], [0.9], [1])]
    _check_against_pycocotools(gts, dts)
    assert coco_evaluate(gts, dts)["AP"] == pytest.approx((51 * 0.5 + 50 * 0.5) / 101)  # precision 1/2 at recall 1


def test_class_with_ground_truth_but_no_detection_scores_zero() -> None:
    gts = [_gt([[0, 0, 50, 50], [100, 100, 150, 150]], [1, 2])]
    dts = [_dt([[0, 0, 50, 50]], [0.9], [1])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    assert result["AP_per_class"] == pytest.approx({1: 1.0, 2: 0.0})
    assert result["AP"] == pytest.approx(0.5)


def test_class_with_detections_but_no_ground_truth_is_left_out_of_the_mean() -> None:
    gts = [_gt([[0, 0, 50, 50]], [1])]
    dts = [_dt([[0, 0, 50, 50], [0, 0, 50, 50], [60, 60, 90, 90]], [0.9, 0.95, 0.3], [1, 3, 3])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    assert result["AP_per_class"] == pytest.approx({1: 1.0, 3: -1.0})
    assert result["AP"] == pytest.approx(1.0) and (result["precision"][:, :, 1] == -1).all()


def test_duplicate_detections_of_one_object_are_false_positives() -> None:
    gts = [_gt([[0, 0, 40, 40], [100, 100, 140, 140]], [1, 1])]
    dts = [_dt([[0, 0, 40, 40], [1, 1, 40, 40], [0, 0, 39, 41], [100, 100, 140, 140]], [0.9, 0.8, 0.7, 0.6], [1] * 4)]
    _check_against_pycocotools(gts, dts)
    # At IoU 0.5: TP, FP, FP, TP -> precision 1 up to recall 0.5, then 2/4.
    precision, recall, _ = precision_recall_curve(gts, dts, label=1, iou_threshold=0.5)
    np.testing.assert_allclose(precision, [1.0, 0.5, 1 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 0.5, 1.0])
    assert average_precision(recall, precision) == pytest.approx((51 * 1.0 + 50 * 0.5) / 101)


def test_crowd_regions_absorb_detections_and_use_the_detection_area() -> None:
    crowd = [0, 0, 200, 200]
    gts = [_gt([[300, 300, 340, 340], crowd], [1, 1], iscrowd=[0, 1])]
    # Three detections inside the crowd region (IoU with it = 1 by the detection-area rule), one
    # half inside (IoU 0.5 with the crowd), one true positive, and one far-away false positive.
    inside = [[10, 10, 30, 30], [50, 50, 90, 90], [120, 0, 200, 60]]
    dts = [
        _dt(
            [*inside, [180, 0, 220, 40], [300, 300, 340, 340], [500, 500, 520, 520]],
            [0.9, 0.8, 0.7, 0.65, 0.6, 0.1],
            [1] * 6,
        )
    ]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    # Crowd-matched detections are ignored. At IoU 0.5 the ranking is TP, FP (AP 1); above 0.5 the
    # half-inside detection is no longer absorbed and ranks first as a false positive (AP 1/2).
    precision, _, scores = precision_recall_curve(gts, dts, label=1, iou_threshold=0.5)
    np.testing.assert_allclose(scores, [0.6, 0.1])
    np.testing.assert_allclose(precision, [1.0, 0.5])
    precision, _, scores = precision_recall_curve(gts, dts, label=1, iou_threshold=0.55)
    np.testing.assert_allclose(scores, [0.65, 0.6, 0.1])
    assert result["AP50"] == pytest.approx(1.0) and result["AP75"] == pytest.approx(0.5)
    assert result["AP"] == pytest.approx((1.0 + 9 * 0.5) / 10) and result["AR100"] == pytest.approx(1.0)
    # A class whose only ground truth is a crowd region has no ground truth to score.
    only_crowd = coco_evaluate([_gt([crowd], [2], iscrowd=[1])], [_dt([[0, 0, 10, 10]], [0.5], [2])])
    assert only_crowd["AP"] == -1.0 and only_crowd["AP_per_class"] == {2: -1.0}


def test_crowd_region_boxes_in_xywh_and_iou_with_partial_overlap() -> None:
    gts = [_gt([[0, 0, 100, 100], [0, 0, 30, 30]], [1, 1], iscrowd=[1, 0])]
    dts = [_dt([[50, 0, 150, 100], [0, 0, 30, 30], [80, 80, 120, 120]], [0.9, 0.8, 0.7], [1] * 3)]
    _check_against_pycocotools(gts, dts)


def test_explicit_area_decides_the_area_range() -> None:
    # A 50x50 box (box area 2500: medium) whose mask area is 500 (small), and a 20x20 box said to be large.
    gts = [_gt([[0, 0, 50, 50], [100, 100, 120, 120]], [1, 1], area=[500.0, 10_000.0])]
    dts = [_dt([[0, 0, 50, 50], [100, 100, 120, 120]], [0.9, 0.8], [1, 1])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    assert result["AP_small"] == pytest.approx(1.0) and result["AP_large"] == pytest.approx(1.0)
    assert result["AP_medium"] == -1.0


def test_area_range_boundaries_belong_to_both_ranges() -> None:
    gts = [_gt([[0, 0, 32, 32], [100, 100, 196, 196], [300, 300, 310, 310]], [1, 1, 1])]  # 32², 96², 10²
    dts = [_dt([[0, 0, 32, 32], [100, 100, 196, 196], [400, 400, 432, 432]], [0.9, 0.8, 0.7], [1, 1, 1])]
    _check_against_pycocotools(gts, dts)


def test_iou_exactly_at_a_threshold_matches() -> None:
    gts = [_gt([[0, 0, 10, 10], [20, 0, 30, 10]], [1, 1])]
    dts = [_dt([[0, 0, 10, 5], [20, 0, 30, 7.5]], [0.9, 0.8], [1, 1])]  # IoU exactly 0.5 and 0.75
    _check_against_pycocotools(gts, dts)
    assert coco_evaluate(gts, dts)["AP50"] == pytest.approx(1.0)


def test_more_than_100_detections_in_an_image_are_truncated_by_score() -> None:
    rng = np.random.default_rng(0)
    grid = [[x, y, x + 20, y + 20] for x in range(0, 600, 50) for y in range(0, 600, 50)][:130]
    gts = [_gt(grid, [1] * 130), _gt([[0, 0, 100, 100]], [1])]
    # 130 perfect detections with low scores and 30 false positives scoring higher: with 100 per
    # image, only 70 true positives make it.
    fps = [[x + 25, 700, x + 45, 720] for x in range(0, 1500, 50)]
    scores = np.concatenate([rng.uniform(0.0, 0.5, 130), rng.uniform(0.5, 1.0, 30)])
    dts = [_dt(grid + fps, scores.tolist(), [1] * 160), _dt([[0, 0, 100, 100]], [0.7], [1])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    assert result["AR100"] == pytest.approx(71 / 131)
    assert result["AR10"] == pytest.approx(1 / 131) and result["AR1"] == pytest.approx(1 / 131)
    _, recall, scores = precision_recall_curve(gts, dts, label=1, iou_threshold=0.5)
    assert len(scores) == 101 and recall[-1] == pytest.approx(71 / 131)


def test_perfect_detections_score_one() -> None:
    gts, _ = _random_case(4)
    dts = [
        {"boxes": g["boxes"].clone(), "labels": g["labels"].clone(), "scores": torch.rand(len(g["boxes"]))} for g in gts
    ]
    gts = [{"boxes": g["boxes"], "labels": g["labels"]} for g in gts]  # no crowd regions, box areas
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    for name in ("AP", "AP50", "AP75", "AR10", "AR100"):
        assert result[name] == pytest.approx(1.0, abs=1e-12), name
    assert all(ap == pytest.approx(1.0, abs=1e-12) for ap in result["AP_per_class"].values())


def test_tied_scores_are_ranked_like_pycocotools() -> None:
    """Equal scores keep image order, then order within the image (a stable sort, as pycocotools)."""
    gts = [_gt([[0, 0, 40, 40], [50, 50, 90, 90]], [1, 1]), _gt([[0, 0, 40, 40]], [1])]
    dts = [
        _dt([[200, 200, 240, 240], [0, 0, 40, 40], [50, 50, 90, 90], [0, 0, 40, 40]], [0.5, 0.5, 0.5, 0.9], [1] * 4),
        _dt([[0, 0, 40, 40], [300, 300, 340, 340]], [0.5, 0.5], [1, 1]),
    ]
    _check_against_pycocotools(gts, dts)


def test_many_tied_scores_are_ranked_like_pycocotools() -> None:
    """Dozens of equal scores per image and across images (numpy's unstable sorts reorder these)."""
    rng = np.random.default_rng(1)
    gts, dts = [], []
    for _ in range(3):
        corners = rng.uniform(0, 500, size=(25, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(10, 80, size=(25, 2))], 1)
        hit = rng.random(40) < 0.5
        dt_boxes = np.where(
            hit[:, None],
            boxes[rng.integers(0, 25, 40)],
            np.tile(rng.uniform(600, 700, size=(40, 2)), 2) + np.array([0, 0, 20, 20]),
        )
        gts.append(_gt(boxes.tolist(), [1] * 25))
        dts.append(_dt(dt_boxes.tolist(), rng.choice([0.2, 0.5, 0.8], size=40).tolist(), [1] * 40))
    _check_against_pycocotools(gts, dts)


def test_equal_iou_with_two_ground_truths_goes_to_the_later_one() -> None:
    # The first detection overlaps both ground truths with IoU 90/110; COCOeval gives it the later
    # one (B), which leaves A for the second detection at IoU 1. Taking A first would leave B at IoU 2/3.
    gts = [_gt([[0, 0, 10, 10], [2, 0, 12, 10]], [1, 1])]
    dts = [_dt([[1, 0, 11, 10], [0, 0, 10, 10]], [0.9, 0.8], [1, 1])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    assert result["AP75"] == pytest.approx(1.0)  # both true positives up to IoU 0.80 (0.65 the other way)
    # Above 0.818 the first detection misses: FP then TP, precision 1/2 up to recall 1/2.
    assert result["AP"] == pytest.approx((7 + 3 * 0.5 * 51 / 101) / 10)


@pytest.mark.parametrize("ignored", ["crowd", "out_of_range"])
def test_detection_prefers_a_regular_ground_truth_to_a_better_ignored_one(ignored: str) -> None:
    # The detection overlaps the ignored ground truth better (IoU 1) than the regular one (IoU 0.6):
    # COCOeval matches it to the regular one, a true positive, at IoU thresholds up to 0.6; above,
    # it falls back to the ignored one (neither true nor false positive): AP 1 at 3 of 10 thresholds.
    regular, det = [0, 0, 100, 100], [40, 0, 100, 100]
    if ignored == "crowd":
        gts = [_gt([regular, [0, 0, 300, 300]], [1, 1], iscrowd=[0, 1])]
    else:  # in the "large" range, a ground truth whose area field says small is ignored
        gts = [_gt([regular, det], [1, 1], area=[10_000.0, 100.0])]
    dts = [_dt([det], [0.9], [1])]
    _check_against_pycocotools(gts, dts)
    result = coco_evaluate(gts, dts)
    area = 0 if ignored == "crowd" else 3  # all, or large
    assert result["precision"][:3, :, 0, area, -1] == pytest.approx(1.0)
    assert result["AP" if ignored == "crowd" else "AP_large"] == pytest.approx(0.3)


def test_xywh_input_equals_xyxy_input() -> None:
    gts, dts = _random_case(11)  # crowd regions and area fields

    def xywh(boxes: torch.Tensor) -> torch.Tensor:
        return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)

    gts_xywh = [{**g, "boxes": xywh(g["boxes"].double())} for g in gts]
    dts_xywh = [{**d, "boxes": xywh(d["boxes"].double())} for d in dts]
    a, b = coco_evaluate(gts, dts), coco_evaluate(gts_xywh, dts_xywh, box_format="xywh")
    assert_close(b["precision"], a["precision"], rtol=0.0, atol=1e-12, msg="xywh vs xyxy")
    _check_against_pycocotools(gts_xywh, dts_xywh, box_format="xywh")


def test_numpy_and_list_inputs_and_devices(device: torch.device) -> None:
    gts, dts = _random_case(5)
    expected = coco_evaluate(gts, dts)
    on_device = coco_evaluate(
        [{k: v.to(device) for k, v in g.items()} for g in gts], [{k: v.to(device) for k, v in d.items()} for d in dts]
    )
    as_lists = coco_evaluate(
        [{k: v.tolist() for k, v in g.items()} for g in gts], [{k: v.numpy() for k, v in d.items()} for d in dts]
    )
    for result in (on_device, as_lists):
        assert_close(result["precision"], expected["precision"], rtol=0.0, atol=0.0, msg=str(device))
        assert result["AP_per_class"] == expected["AP_per_class"]


def test_no_detections_at_all() -> None:
    gts = [_gt([[0, 0, 50, 50]], [1]), _gt([[0, 0, 200, 200]], [2])]
    result = coco_evaluate(gts, [_dt([], [], []), _dt([], [], [])])
    assert result["AP"] == 0.0 and result["AR100"] == 0.0 and result["AP_per_class"] == {1: 0.0, 2: 0.0}
    assert result["AP_small"] == -1.0 and result["AR_small"] == -1.0  # 50² is medium, 200² large


def test_no_ground_truth_at_all_gives_minus_one() -> None:
    result = coco_evaluate([_gt([], [])], [_dt([[0, 0, 5, 5]], [0.3], [4])])
    assert all(result[name] == -1.0 for name in STAT_NAMES)
    empty = coco_evaluate([], [])
    assert empty["precision"].shape == (10, 101, 0, 4, 3) and empty["AP"] == -1.0 and empty["AP_per_class"] == {}


def test_output_shapes_and_thresholds() -> None:
    result = coco_evaluate(*_random_case(6))
    k = len(result["AP_per_class"])
    assert result["precision"].shape == (10, 101, k, 4, 3) and result["recall"].shape == (10, k, 4, 3)
    np.testing.assert_array_equal(IOU_THRESHOLDS, COCOeval(iouType="bbox").params.iouThrs)


def test_average_precision_by_hand() -> None:
    # Precision 1 up to recall 0.5 (51 thresholds), 0.5 up to 1 (50 thresholds).
    assert average_precision([0.5, 1.0], [1.0, 0.5]) == pytest.approx((51 + 25) / 101)
    # The envelope lifts earlier precision: the curve below is as good as precision 1 everywhere.
    assert average_precision(torch.tensor([0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 1.0])) == pytest.approx(1.0)
    # Recall never above 0.3: thresholds 0.31.. contribute 0.
    assert average_precision(np.array([0.1, 0.3]), np.array([1.0, 1.0])) == pytest.approx(31 / 101)
    assert average_precision([], []) == 0.0


@pytest.mark.parametrize("iou_threshold", [0.5, 0.75, 0.95])
def test_precision_recall_curve_gives_pycocotools_per_class_ap(iou_threshold: float) -> None:
    gts, dts = _random_case(17)  # has crowd regions
    ref = _pycocotools(gts, dts)
    t = int(np.flatnonzero(ref.params.iouThrs == iou_threshold)[0])
    checked = 0
    for k, label in enumerate(ref.params.catIds):
        expected = ref.eval["precision"][t, :, k, 0, -1]
        if (expected == -1).all():
            with pytest.raises(ValueError, match="no ground truth"):
                precision_recall_curve(gts, dts, label, iou_threshold)
            continue
        precision, recall, scores = precision_recall_curve(gts, dts, label, iou_threshold)
        assert np.all(np.diff(scores) <= 0) and np.all(np.diff(recall) >= 0)
        assert average_precision(recall, precision) == pytest.approx(expected.mean(), abs=TOL)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    ("gts", "dts", "match"),
    [
        ([_gt([[0, 0, 1, 1]], [1])], [], "one entry per image"),
        ([{"labels": torch.tensor([1])}], [_dt([], [], [])], "has no 'boxes'"),
        ([_gt([[0, 0, 1, 1]], [1])], [{"boxes": torch.zeros(1, 4), "labels": torch.ones(1)}], "has no 'scores'"),
        ([{"boxes": torch.zeros(2, 3), "labels": torch.ones(2)}], [_dt([], [], [])], r"shape \(N, 4\)"),
        ([{"boxes": torch.zeros(2, 4), "labels": torch.ones(3)}], [_dt([], [], [])], r"shape \(2,\)"),
        ([_gt([[0, 0, 1, 1]], [1], iscrowd=[0, 1])], [_dt([], [], [])], "iscrowd"),
        ([_gt([[0, 0, 1, 1]], [1])], [_dt([[0, 0, 1, 1]], [float("nan")], [1])], "non-finite"),
        ([_gt([[0, 0, float("inf"), 1]], [1])], [_dt([], [], [])], "non-finite"),
        ([{"boxes": torch.zeros(1, 4), "labels": torch.tensor([1.5])}], [_dt([], [], [])], "integers"),
    ],
)
def test_bad_inputs_raise(gts: list[Image], dts: list[Image], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        coco_evaluate(gts, dts)


def test_bad_arguments_raise() -> None:
    gts, dts = [_gt([[0, 0, 1, 1]], [1])], [_dt([[0, 0, 1, 1]], [0.5], [1])]
    with pytest.raises(ValueError, match="box_format"):
        coco_evaluate(gts, dts, box_format="cxcywh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iou_threshold"):
        precision_recall_curve(gts, dts, 1, iou_threshold=1.5)
    with pytest.raises(ValueError, match="no ground truth"):
        precision_recall_curve(gts, dts, 2)
    with pytest.raises(ValueError, match="non-decreasing"):
        average_precision([0.5, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        average_precision([0.5, 1.0], [1.0])


def test_to_coco_json_layout() -> None:
    gts = [_gt([[1, 2, 11, 22]], [3], iscrowd=[1], area=[50.0]), _gt([], [])]
    dataset, results = to_coco_json(gts, [_dt([], [], []), _dt([[0, 0, 2, 4]], [0.25], [9])])
    assert dataset["images"] == [{"id": 0}, {"id": 1}]
    assert dataset["categories"] == [{"id": 3, "name": "3"}, {"id": 9, "name": "9"}]
    assert dataset["annotations"] == [
        {"id": 1, "image_id": 0, "category_id": 3, "bbox": [1.0, 2.0, 10.0, 20.0], "area": 50.0, "iscrowd": 1}
    ]
    assert results == [{"image_id": 1, "category_id": 9, "bbox": [0.0, 0.0, 2.0, 4.0], "score": 0.25}]


def test_run_cocoeval_refuses_an_empty_detection_list() -> None:
    with pytest.raises(ValueError, match="empty detection list"):
        run_cocoeval([_gt([[0, 0, 2, 2]], [1])], [_dt([], [], [])])
