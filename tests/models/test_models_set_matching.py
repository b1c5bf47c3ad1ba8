"""DETR's Hungarian matcher against a float64 loop for the cost and a search over every pairing."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchvision import ops

from mlcraft.models.set_matching import batched_hungarian_match, hungarian_match, matching_cost

WEIGHTS = {"cost_class": 1.0, "cost_bbox": 5.0, "cost_giou": 2.0}


def random_problem(
    num_preds: int, num_gts: int, num_classes: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (Q, C), boxes (Q, 4) and labels (G,), boxes (G, 4): normalised cxcywh inside [0, 1]."""
    gen = torch.Generator().manual_seed(seed)

    def boxes(n: int) -> torch.Tensor:
        wh = 0.05 + 0.4 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
        centre = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=gen, dtype=torch.float64)
        return torch.cat((centre, wh), dim=1).to(dtype)

    logits = (2 * torch.randn(num_preds, num_classes, generator=gen, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, num_classes - 1, (num_gts,), generator=gen)  # the last class is "no object"
    return logits, boxes(num_preds), labels, boxes(num_gts)


def cost_by_loop(
    logits: torch.Tensor, pred_boxes: torch.Tensor, labels: torch.Tensor, gt_boxes: torch.Tensor, **weights: float
) -> torch.Tensor:
    """(Q, G) cost one pair at a time, in float64, with torchvision's GIoU as the oracle."""
    logits, pred_boxes, gt_boxes = logits.double(), pred_boxes.double(), gt_boxes.double()
    cost = torch.zeros(len(logits), len(labels), dtype=torch.float64)
    for q in range(len(logits)):
        probs = torch.exp(logits[q]) / torch.exp(logits[q]).sum()
        for g in range(len(labels)):
            l1 = sum(abs(float(pred_boxes[q, k] - gt_boxes[g, k])) for k in range(4))
            giou = ops.generalized_box_iou(
                ops.box_convert(pred_boxes[q : q + 1], "cxcywh", "xyxy"),
                ops.box_convert(gt_boxes[g : g + 1], "cxcywh", "xyxy"),
            )[0, 0]
            cost[q, g] = (
                -weights["cost_class"] * probs[labels[g]] + weights["cost_bbox"] * l1 - weights["cost_giou"] * giou
            )
    return cost


def best_total_by_search(cost: torch.Tensor) -> float:
    """The least total cost over every one-to-one pairing of min(Q, G) rows and columns."""
    num_preds, num_gts = cost.shape
    if num_preds >= num_gts:
        return min(
            sum(float(cost[rows[g], g]) for g in range(num_gts))
            for rows in itertools.permutations(range(num_preds), num_gts)
        )
    return min(
        sum(float(cost[q, cols[q]]) for q in range(num_preds))
        for cols in itertools.permutations(range(num_gts), num_preds)
    )


def check_one_to_one(pred_idx: torch.Tensor, gt_idx: torch.Tensor, num_preds: int, num_gts: int) -> None:
    assert pred_idx.dtype == gt_idx.dtype == torch.int64, (pred_idx.dtype, gt_idx.dtype)
    assert len(pred_idx) == len(gt_idx) == min(num_preds, num_gts), (len(pred_idx), len(gt_idx), num_preds, num_gts)
    assert len(set(pred_idx.tolist())) == len(pred_idx), f"a prediction is used twice: {pred_idx.tolist()}"
    assert len(set(gt_idx.tolist())) == len(gt_idx), f"an object is used twice: {gt_idx.tolist()}"
    assert pred_idx.tolist() == sorted(pred_idx.tolist()), f"pred_idx not increasing: {pred_idx.tolist()}"
    assert all(0 <= q < num_preds for q in pred_idx.tolist()) and all(0 <= g < num_gts for g in gt_idx.tolist())


@pytest.mark.parametrize(("num_preds", "num_gts", "seed"), [(3, 3, 0), (5, 3, 1), (6, 4, 2), (7, 2, 3), (4, 1, 4)])
@pytest.mark.parametrize(
    "weights",
    [
        WEIGHTS,
        {"cost_class": 1.0, "cost_bbox": 0.0, "cost_giou": 0.0},
        {"cost_class": 0.5, "cost_bbox": 1.0, "cost_giou": 3.0},
    ],
)
def test_cost_equals_loop_and_match_equals_search(
    num_preds: int, num_gts: int, seed: int, weights: dict[str, float]
) -> None:
    logits, pred_boxes, labels, gt_boxes = random_problem(num_preds, num_gts, seed=seed)
    expected_cost = cost_by_loop(logits, pred_boxes, labels, gt_boxes, **weights)
    cost = matching_cost(logits, pred_boxes, labels, gt_boxes, **weights)
    torch.testing.assert_close(
        cost, expected_cost, rtol=0, atol=1e-12, msg=f"cost, Q={num_preds} G={num_gts} {weights}"
    )
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, labels, gt_boxes, **weights)
    check_one_to_one(pred_idx, gt_idx, num_preds, num_gts)
    total = float(expected_cost[pred_idx, gt_idx].sum())
    best = best_total_by_search(expected_cost)
    assert abs(total - best) < 1e-12, f"Q={num_preds} G={num_gts} {weights}: total {total} > best {best}"


def test_more_targets_than_predictions_pairs_every_prediction() -> None:
    logits, pred_boxes, labels, gt_boxes = random_problem(2, 5, seed=7)
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    check_one_to_one(pred_idx, gt_idx, 2, 5)
    cost = cost_by_loop(logits, pred_boxes, labels, gt_boxes, **WEIGHTS)
    assert abs(float(cost[pred_idx, gt_idx].sum()) - best_total_by_search(cost)) < 1e-12


def test_beats_greedy_on_a_crafted_case() -> None:
    """Greedy takes the cheapest pair first (pred 0 -> gt 0) and is left with a bad pair; the optimum is not."""
    logits = torch.zeros(2, 2, dtype=torch.float64)  # equal class probabilities: boxes decide
    labels = torch.zeros(2, dtype=torch.int64)
    gt_boxes = torch.tensor([[0.30, 0.5, 0.2, 0.2], [0.45, 0.5, 0.2, 0.2]], dtype=torch.float64)
    pred_boxes = torch.tensor([[0.37, 0.5, 0.2, 0.2], [0.15, 0.5, 0.2, 0.2]], dtype=torch.float64)
    cost = matching_cost(logits, pred_boxes, labels, gt_boxes)
    assert cost[0, 0] == cost.min(), cost  # greedy's first pick
    greedy_total = float(cost[0, 0] + cost[1, 1])
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    assert pred_idx.tolist() == [0, 1] and gt_idx.tolist() == [1, 0], (pred_idx, gt_idx)
    assert float(cost[pred_idx, gt_idx].sum()) < greedy_total - 0.1, (cost, greedy_total)


def test_prefers_the_right_class_and_the_right_box() -> None:
    """Two predictions on two objects: each term alone picks the obvious pairing."""
    gt_boxes = torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.7, 0.7, 0.3, 0.3]])
    labels = torch.tensor([0, 1])
    logits = torch.tensor([[-5.0, 5.0, 0.0], [5.0, -5.0, 0.0]])  # pred 0 says class 1, pred 1 says class 0
    boxes = gt_boxes.flip(0)  # pred 0 sits on object 1, pred 1 on object 0
    for weights in ({"cost_class": 1.0, "cost_bbox": 0.0, "cost_giou": 0.0},
                    {"cost_class": 0.0, "cost_bbox": 1.0, "cost_giou": 0.0},
                    {"cost_class": 0.0, "cost_bbox": 0.0, "cost_giou": 1.0}):  # fmt: skip
        pred_idx, gt_idx = hungarian_match(logits, boxes, labels, gt_boxes, **weights)
        assert pred_idx.tolist() == [0, 1] and gt_idx.tolist() == [1, 0], (weights, pred_idx, gt_idx)


@pytest.mark.parametrize("num_preds", [0, 1, 5])
def test_zero_targets_give_empty_int64(num_preds: int) -> None:
    logits, pred_boxes, _, _ = random_problem(num_preds, 0)
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4))
    assert pred_idx.shape == gt_idx.shape == (0,), (pred_idx.shape, gt_idx.shape)
    assert pred_idx.dtype == gt_idx.dtype == torch.int64, (pred_idx.dtype, gt_idx.dtype)
    assert matching_cost(logits, pred_boxes, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4)).shape == (
        num_preds,
        0,
    )


def test_zero_predictions_give_empty_int64() -> None:
    _, _, labels, gt_boxes = random_problem(0, 3)
    pred_idx, gt_idx = hungarian_match(
        torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64), labels, gt_boxes
    )
    assert pred_idx.shape == gt_idx.shape == (0,) and pred_idx.dtype == gt_idx.dtype == torch.int64


def test_size_one() -> None:
    logits, pred_boxes, labels, gt_boxes = random_problem(1, 1, seed=5)
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    assert pred_idx.tolist() == [0] and gt_idx.tolist() == [0]


def test_ties_give_an_optimal_one_to_one_pairing() -> None:
    """Identical predictions (every row of the cost equal): any pairing is optimal, and it must still be one-to-one."""
    logits, pred_boxes, labels, gt_boxes = random_problem(1, 3, seed=9)
    logits, pred_boxes = logits.repeat(5, 1), pred_boxes.repeat(5, 1)  # 5 copies of one prediction
    cost = cost_by_loop(logits, pred_boxes, labels, gt_boxes, **WEIGHTS)
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    check_one_to_one(pred_idx, gt_idx, 5, 3)
    assert abs(float(cost[pred_idx, gt_idx].sum()) - best_total_by_search(cost)) < 1e-12
    again = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    assert pred_idx.tolist() == again[0].tolist() and gt_idx.tolist() == again[1].tolist(), "not deterministic"
    # two identical objects: either way round costs the same
    twin_gt = gt_boxes[:1].repeat(2, 1)
    pred_idx, gt_idx = hungarian_match(logits[:2], pred_boxes[:2], labels[:1].repeat(2), twin_gt)
    check_one_to_one(pred_idx, gt_idx, 2, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype: torch.dtype) -> None:
    """Half-precision inputs are computed in float32; on well-separated costs the pairing is the float64 one."""
    logits, pred_boxes, labels, gt_boxes = random_problem(6, 3, seed=11)
    expected = hungarian_match(logits, pred_boxes, labels, gt_boxes)
    cost = matching_cost(logits.to(dtype), pred_boxes.to(dtype), labels, gt_boxes.to(dtype))
    assert cost.dtype == torch.float32, cost.dtype
    reference = matching_cost(
        logits.to(dtype).double(), pred_boxes.to(dtype).double(), labels, gt_boxes.to(dtype).double()
    )
    torch.testing.assert_close(cost.double(), reference, rtol=0, atol=1e-5, msg=f"cost in {dtype}")
    got = hungarian_match(logits.to(dtype), pred_boxes.to(dtype), labels, gt_boxes.to(dtype))
    full = cost_by_loop(logits, pred_boxes, labels, gt_boxes, **WEIGHTS)
    gap = float(full[got[0], got[1]].sum() - full[expected[0], expected[1]].sum())
    assert gap < 0.05, f"{dtype}: total cost {gap} above the float64 optimum"


def test_no_gradient_flows_through_the_cost() -> None:
    logits, pred_boxes, labels, gt_boxes = random_problem(4, 2)
    logits.requires_grad_(True)
    assert not matching_cost(logits, pred_boxes, labels, gt_boxes).requires_grad


def test_batched_equals_per_image() -> None:
    problems = [random_problem(5, g, seed=20 + g) for g in (3, 0, 5)]
    logits = torch.stack([p[0] for p in problems])  # (3, 5, 4)
    boxes = torch.stack([p[1] for p in problems])  # (3, 5, 4)
    targets = [{"labels": p[2], "boxes": p[3]} for p in problems]
    batched = batched_hungarian_match(logits, boxes, targets)
    assert len(batched) == 3
    for b, (pred_idx, gt_idx) in enumerate(batched):
        expected = hungarian_match(*problems[b])
        assert pred_idx.tolist() == expected[0].tolist() and gt_idx.tolist() == expected[1].tolist(), b
    with pytest.raises(ValueError, match="2 targets"):
        batched_hungarian_match(logits, boxes, targets[:2])
    with pytest.raises(ValueError, match=r"pred_logits \(B, Q, C\)"):
        batched_hungarian_match(logits[0], boxes[0], targets)


ARG_NAMES = ("pred_logits", "pred_boxes", "gt_labels", "gt_boxes")


def _bad(**changes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A valid (4 predictions, 2 objects) problem with the named arguments replaced, in positional order."""
    args = dict(zip(ARG_NAMES, random_problem(4, 2), strict=True))
    args.update(changes)
    return tuple(args[name] for name in ARG_NAMES)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"pred_logits": torch.zeros(4)}, ValueError, r"pred_logits must have shape \(Q, C\), got \(4,\)"),
        ({"pred_boxes": torch.rand(3, 4)}, ValueError, r"pred_boxes must have shape \(Q, 4\) = \(4, 4\), got \(3, 4\)"),
        ({"pred_boxes": torch.rand(4, 5)}, ValueError, r"got \(4, 5\)"),
        ({"gt_labels": torch.zeros(2, 1, dtype=torch.int64)}, ValueError, r"gt_labels must have shape \(G,\)"),
        ({"gt_boxes": torch.rand(3, 4)}, ValueError, r"gt_boxes must have shape \(G, 4\) = \(2, 4\), got \(3, 4\)"),
        ({"gt_labels": torch.tensor([0, 4])}, ValueError, r"gt_labels must lie in \[0, 4\), got \[0, 4\]"),
        ({"gt_labels": torch.tensor([-1, 0])}, ValueError, r"\[0, 4\), got \[-1, 0\]"),
        ({"gt_labels": torch.tensor([0.0, 1.0])}, TypeError, "integer tensor"),
        ({"pred_logits": torch.zeros(4, 4, dtype=torch.int64)}, TypeError, "floating point"),
        (
            {"gt_boxes": torch.tensor([[0.5, 0.5, 0.0, 0.2], [0.5, 0.5, 0.1, 0.1]])},
            ValueError,
            r"gt_boxes .* w > 0.*0\.0, 0\.2",
        ),
        ({"pred_boxes": torch.tensor([[0.5, 0.5, 0.1, -0.1]] * 4)}, ValueError, "pred_boxes must be"),
    ],
)
def test_bad_input_raises(changes: dict[str, torch.Tensor], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        hungarian_match(*_bad(**changes))


def test_bad_weights_and_non_finite_costs_raise() -> None:
    args = _bad()
    with pytest.raises(ValueError, match=r"not all 0, got class 0\.0, bbox 0\.0, giou 0\.0"):
        hungarian_match(*args, cost_class=0.0, cost_bbox=0.0, cost_giou=0.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        hungarian_match(*args, cost_bbox=-1.0)
    logits = args[0].clone()
    logits[2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite entries at \[\[2, 0\], \[2, 1\]\]"):
        hungarian_match(logits, *args[1:])
