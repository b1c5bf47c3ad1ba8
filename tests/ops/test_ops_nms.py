"""Tests for mlcraft.ops.nms against torchvision.ops.nms / batched_nms (exact index tensors)."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tv

from mlcraft.ops.nms import batched_nms, nms

SIZES = [0, 1, 10, 1000, 5000]
THRESHOLDS = [0.0, 0.3, 0.5, 0.7, 1.0]
DTYPES = [torch.float32, torch.float64]


def _boxes(n: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` xyxy boxes at about constant density (many overlaps) and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    extent = 40.0 * max(n, 1) ** 0.5  # ~ 1 box centre per 40 x 40 cell
    corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * extent
    size = torch.rand(n, 2, generator=g, dtype=torch.float64) * 56 + 4
    boxes = torch.cat([corner, corner + size], dim=1)
    scores = (torch.randperm(n, generator=g).double() + 1) / (n + 1)  # distinct in float32 too
    return boxes.to(device, dtype), scores.to(device, dtype)


def _degenerate(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    boxes = torch.tensor(
        [
            [0, 0, 10, 10],
            [0, 0, 10, 10],  # identical to 0
            [10, 0, 20, 10],  # touches 0 along an edge
            [2, 2, 8, 8],  # nested in 0 (IoU 0.36)
            [1, 1, 9, 9],  # nested in 0 (IoU 0.64)
            [5, 5, 5, 5],  # a point inside 0
            [5, 5, 5, 5],  # the same point (IoU 0/0 = NaN: never suppresses)
            [3, 0, 3, 10],  # zero width
            [0, 0, 10, 10.5],  # almost identical to 0
            [30, 30, 40, 40],  # alone
        ],
        dtype=dtype,
        device=device,
    )
    scores = torch.tensor([0.3, 0.9, 0.5, 0.8, 0.1, 0.7, 0.6, 0.4, 0.2, 0.05], dtype=dtype, device=device)
    return boxes, scores


# 5000 boxes run in float32 only (the float64 cases add time, not coverage).
NMS_CASES = [(n, t, d) for n in SIZES[:-1] for t in THRESHOLDS for d in DTYPES]
NMS_CASES += [(SIZES[-1], t, torch.float32) for t in THRESHOLDS]


@pytest.mark.parametrize(("n", "threshold", "dtype"), NMS_CASES, ids=[f"{n}-{t}-{str(d)[6:]}" for n, t, d in NMS_CASES])
def test_nms_matches_torchvision(n: int, threshold: float, dtype: torch.dtype, device: torch.device) -> None:
    boxes, scores = _boxes(n, dtype, device)
    keep = nms(boxes, scores, threshold)
    expected = tv.nms(boxes, scores, threshold)
    assert keep.dtype == torch.int64 and keep.device == boxes.device
    assert torch.equal(keep, expected), f"n={n} threshold={threshold}: kept {keep.numel()} vs {expected.numel()}"
    if n and threshold == 1.0:
        assert keep.numel() == n  # IoU > 1 never happens


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("n", SIZES)
def test_batched_nms_matches_torchvision(n: int, threshold: float, device: torch.device) -> None:
    # n = 5000 (numel 20000 > 4000) sends torchvision's CPU path through its per-class loop; smaller
    # sizes through its coordinate-offset trick.
    boxes, scores = _boxes(n, torch.float32, device, seed=1)
    idxs = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(2)).to(device)
    keep = batched_nms(boxes, scores, idxs, threshold)
    assert torch.equal(keep, tv.batched_nms(boxes, scores, idxs, threshold)), f"n={n} threshold={threshold}"
    if n >= 1000 and threshold < 1.0:
        assert not torch.equal(keep, nms(boxes, scores, threshold)), "classes should change the result"


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_degenerate_boxes_match_torchvision(dtype: torch.dtype, threshold: float, device: torch.device) -> None:
    boxes, scores = _degenerate(dtype, device)
    assert torch.equal(nms(boxes, scores, threshold), tv.nms(boxes, scores, threshold))
    idxs = torch.tensor([0, 0, 1, 0, 1, 0, 0, 1, 0, 1], device=device)
    assert torch.equal(batched_nms(boxes, scores, idxs, threshold), tv.batched_nms(boxes, scores, idxs, threshold))


def test_point_boxes_never_suppress_each_other(device: torch.device) -> None:
    boxes, scores = _degenerate(torch.float32, device)
    keep = nms(boxes[5:7], scores[5:7], 0.0).tolist()
    assert keep == [0, 1]  # IoU 0/0 = NaN, and NaN > threshold is false


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_block_size_does_not_change_the_result(block_size: int) -> None:
    boxes, scores = _boxes(300, torch.float32, torch.device("cpu"), seed=3)
    assert torch.equal(nms(boxes, scores, 0.5, block_size=block_size), tv.nms(boxes, scores, 0.5))


def test_tied_duplicates_keep_the_lower_index(device: torch.device) -> None:
    """Documented tie rule: a stable sort, so among equal scores the lower index is visited first."""
    g = torch.Generator().manual_seed(4)
    dup = torch.tensor([10.0, 10.0, 50.0, 50.0])
    others, _ = _boxes(20, torch.float32, torch.device("cpu"), seed=5)
    others += 200  # away from the duplicates
    for _ in range(5):
        boxes = torch.cat([others, dup.expand(6, 4)])
        perm = torch.randperm(26, generator=g)
        boxes = boxes[perm].to(device)
        scores = torch.full((26,), 0.5, device=device)
        positions = torch.where(perm >= 20)[0].tolist()  # where the six duplicates landed
        keep = nms(boxes, scores, 0.5).tolist()
        assert [i for i in keep if i in positions] == [min(positions)]
        assert keep == sorted(keep)  # equal scores: kept in index order
        idxs = torch.zeros(26, dtype=torch.int64, device=device)
        assert batched_nms(boxes, scores, idxs, 0.5).tolist() == keep


def test_tied_scores_in_batched_nms_keep_index_order(device: torch.device) -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [100, 0, 110, 10], [0, 0, 10, 10], [200, 0, 210, 10]], dtype=torch.float32)
    scores, idxs = torch.tensor([0.5, 0.5, 0.5, 0.9]), torch.tensor([1, 0, 1, 0])
    keep = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.5)
    assert keep.tolist() == [3, 0, 1]  # 2 duplicates 0 (same class, lower index wins)


@pytest.mark.parametrize(
    ("boxes", "scores"),
    [
        (torch.zeros(3, 3), torch.zeros(3)),
        (torch.zeros(3, 4, 1), torch.zeros(3)),
        (torch.zeros(4), torch.zeros(1)),
        (torch.zeros(3, 4), torch.zeros(3, 1)),
        (torch.zeros(3, 4), torch.zeros(2)),
        (torch.zeros(0, 3), torch.zeros(0)),
    ],
    ids=["3-cols", "3d", "1d", "2d-scores", "count-mismatch", "empty-3-cols"],
)
def test_nms_bad_shapes_raise(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"need boxes \(N, 4\) and scores \(N,\)"):
        nms(boxes, scores, 0.5)


def test_batched_nms_bad_shapes_raise() -> None:
    boxes, scores = _boxes(5, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="idxs must have shape"):
        batched_nms(boxes, scores, torch.zeros(4, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match=r"need boxes \(N, 4\)"):
        batched_nms(boxes[:, :3], scores, torch.zeros(5, dtype=torch.int64), 0.5)


@pytest.mark.parametrize(
    ("n_boxes", "cols", "n_scores"), [(5, 4, 3), (0, 3, 0)], ids=["5-boxes-3-scores", "empty-3-cols"]
)
def test_batched_nms_rejects_boxes_that_do_not_match_scores(n_boxes: int, cols: int, n_scores: int) -> None:
    boxes = torch.rand(n_boxes, cols) * 10
    boxes[:, 2:] += 20
    with pytest.raises(ValueError):
        batched_nms(boxes, torch.rand(n_scores), torch.zeros(n_scores, dtype=torch.int64), 0.5)


def test_a_long_suppression_chain_matches_torchvision(device: torch.device) -> None:
    """Each box overlaps only the next (IoU 0.6): greedy keeps every other one. The fixed-point pass
    needs one round per link, so a chain of 200 exercises the sequential fallback as well."""
    n = 200
    x = torch.arange(n, dtype=torch.float64) * 2.5  # width 10, shift 2.5: IoU(k, k+1) = 0.6, IoU(k, k+2) ~ 0.33
    boxes = torch.stack(
        [x, torch.zeros(n, dtype=torch.float64), x + 10, torch.full((n,), 10.0, dtype=torch.float64)], 1
    )
    scores = torch.linspace(1.0, 0.1, n, dtype=torch.float64)  # chain order = score order
    keep = nms(boxes.to(device), scores.to(device), 0.5)
    assert torch.equal(keep.cpu(), tv.nms(boxes, scores, 0.5))
    assert keep.tolist() == list(range(0, n, 2))


@pytest.mark.parametrize("threshold", [-0.5, -1e-9])
def test_negative_thresholds_suppress_even_disjoint_boxes(threshold: float, device: torch.device) -> None:
    boxes, scores = _boxes(50, torch.float32, device, seed=6)
    boxes = torch.cat([boxes, torch.tensor([[5.0, 5, 5, 5], [5.0, 5, 5, 5]], device=device)])  # two points: NaN IoU
    scores = torch.cat([scores, torch.tensor([2.0, 1.5], device=device)])
    keep = nms(boxes, scores, threshold)
    assert torch.equal(keep, tv.nms(boxes, scores, threshold))


def test_non_finite_and_inverted_boxes_match_torchvision() -> None:
    boxes, scores = _boxes(100, torch.float32, torch.device("cpu"), seed=7)
    boxes[::9, 2] = boxes[::9, 0] - 5  # inverted: x2 < x1
    boxes[5, 0] = float("nan")
    boxes[17, 3] = float("inf")
    for threshold in (0.0, 0.3, 0.7):
        assert torch.equal(nms(boxes, scores, threshold), tv.nms(boxes, scores, threshold)), threshold


def test_many_classes_in_one_pass_match_torchvision(device: torch.device) -> None:
    boxes, scores = _boxes(2000, torch.float32, device, seed=8)
    idxs = torch.randint(0, 80, (2000,), generator=torch.Generator().manual_seed(9)).to(device)
    for threshold in (0.3, 0.5):
        assert torch.equal(batched_nms(boxes, scores, idxs, threshold), tv.batched_nms(boxes, scores, idxs, threshold))


def test_block_size_must_be_positive() -> None:
    boxes, scores = _boxes(5, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        nms(boxes, scores, 0.5, block_size=0)


@pytest.mark.parametrize("n", [300, 3000])
def test_detector_like_crowds_match_torchvision(n: int, device: torch.device) -> None:
    """Candidates crowd around objects, as a detector's do: most are removed by an early winner."""
    g = torch.Generator().manual_seed(n)
    objects = max(n // 20, 1)
    centre = torch.rand(objects, 2, generator=g) * 900 + 50
    size = torch.rand(objects, 2, generator=g) * 150 + 20
    which = torch.randint(0, objects, (n,), generator=g)
    c = centre[which] + torch.randn(n, 2, generator=g) * size[which] * 0.1
    s = size[which] * (1 + 0.1 * torch.randn(n, 2, generator=g))
    boxes = torch.cat([c - s / 2, c + s / 2], dim=1).to(device)
    scores = torch.rand(n, generator=g).to(device)
    labels = torch.randint(0, 3, (n,), generator=g).to(device)
    for threshold in (0.3, 0.5, 0.7):
        assert torch.equal(nms(boxes, scores, threshold), tv.nms(boxes, scores, threshold)), threshold
        expected = tv.batched_nms(boxes, scores, labels, threshold)
        assert torch.equal(batched_nms(boxes, scores, labels, threshold), expected), threshold
