"""Tests for mlcraft.models.pooling: masked_mean_pool against sentence-transformers' mean Pooling
module and a float64 loop; cls_pool and last_token_pool against loops; padding invariance (with NaN
and inf in the padding), empty rows, half precision, meta tensors and input checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mlcraft.classroom.testing import assert_close
from mlcraft.models.pooling import cls_pool, last_token_pool, masked_mean_pool

pytestmark = pytest.mark.usefixtures("isolate_torch")

# dtype -> (rtol, atol) of our pooled half/single/double output against the float64 loop on the same values,
# rounded once to the dtype (the sums run in float32 or float64, so one rounding dominates).
TOL = {
    torch.float64: (1e-12, 1e-12),
    torch.float32: (1e-6, 1e-6),
    torch.float16: (1e-3, 1e-4),
    torch.bfloat16: (8e-3, 1e-3),
}


def _mean_loop(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Obviously-correct masked mean in float64: a Python loop over rows and positions."""
    b, t, d = hidden.shape
    out = torch.zeros(b, d, dtype=torch.float64)
    for row in range(b):
        total, count = torch.zeros(d, dtype=torch.float64), 0
        for pos in range(t):
            if mask[row, pos]:
                total += hidden[row, pos].double().cpu()
                count += 1
        out[row] = total / count if count else total
    return out


def _last_loop(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(hidden.shape[0], hidden.shape[2], dtype=hidden.dtype)
    for row in range(hidden.shape[0]):
        real = [pos for pos in range(hidden.shape[1]) if mask[row, pos]]
        if real:
            out[row] = hidden[row, real[-1]].cpu()
    return out


def _batch(b: int = 4, t: int = 7, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random hidden states and a right-padded mask with lengths 1..t (and one full row)."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, t, d, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    lengths[0] = t
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return hidden, mask


def _st_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
    pooling: Any = modules.Pooling(hidden.shape[-1], pooling_mode="mean")
    out: torch.Tensor = pooling({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    return out


# --------------------------------------------------------------------------- masked_mean_pool


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_mean_pool_matches_sentence_transformers_and_loop(dtype: torch.dtype, device: torch.device) -> None:
    hidden, mask = _batch(b=6, t=9, d=8)
    hidden, mask = hidden.to(device, dtype), mask.to(device)
    actual = masked_mean_pool(hidden, mask)
    assert actual.shape == (6, 8) and actual.dtype == dtype and actual.device == hidden.device
    rtol, atol = TOL[dtype]
    assert_close(actual, _st_mean_pool(hidden, mask), rtol=rtol, atol=atol, msg=f"sentence-transformers, {dtype}")
    assert_close(actual.double().cpu(), _mean_loop(hidden, mask), rtol=rtol, atol=atol, msg=f"float64 loop, {dtype}")


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int32, torch.int64, torch.float32, torch.float16], ids=str)
def test_mean_pool_accepts_every_mask_dtype(mask_dtype: torch.dtype) -> None:
    hidden, mask = _batch()
    expected = _mean_loop(hidden, mask)
    assert_close(masked_mean_pool(hidden, mask.to(mask_dtype)), expected, rtol=1e-12, atol=1e-12, msg=str(mask_dtype))


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("fill", ["random", "nan", "inf"])
def test_mean_pool_ignores_whatever_the_padding_holds(side: str, fill: str) -> None:
    hidden, mask = _batch(t=5)
    expected = masked_mean_pool(hidden, mask)
    extra = 3
    pad = {
        "random": 1e6 * torch.randn(hidden.shape[0], extra, hidden.shape[2], dtype=hidden.dtype),
        "nan": torch.full((hidden.shape[0], extra, hidden.shape[2]), float("nan"), dtype=hidden.dtype),
        "inf": torch.full((hidden.shape[0], extra, hidden.shape[2]), float("-inf"), dtype=hidden.dtype),
    }[fill]
    zeros = torch.zeros(mask.shape[0], extra, dtype=mask.dtype)
    # Existing padded positions get the same junk too (they already have mask 0).
    junk_hidden = torch.where(mask[..., None].bool(), hidden, pad[:, :1].expand_as(hidden))
    if side == "right":
        padded, padded_mask = torch.cat([junk_hidden, pad], dim=1), torch.cat([mask, zeros], dim=1)
    else:
        padded, padded_mask = torch.cat([pad, junk_hidden], dim=1), torch.cat([zeros, mask], dim=1)
    actual = masked_mean_pool(padded, padded_mask)
    assert torch.isfinite(actual).all(), f"{fill} padding leaked into the mean"
    assert_close(actual, expected, rtol=1e-6, atol=1e-6, msg=f"{fill} padding on the {side}")


def test_mean_pool_row_without_tokens_is_zero_and_empty_shapes_work() -> None:
    hidden, mask = _batch(b=3, t=4, d=2)
    mask[1] = 0
    hidden[1] = float("nan")
    out = masked_mean_pool(hidden, mask)
    assert_close(out[1], torch.zeros(2, dtype=hidden.dtype), rtol=0.0, atol=0.0, msg="all-padding row")
    assert_close(out[[0, 2]], _mean_loop(hidden, mask)[[0, 2]], rtol=1e-12, atol=1e-12, msg="other rows")
    no_positions = masked_mean_pool(torch.empty(3, 0, 2), torch.empty(3, 0))
    assert_close(no_positions, torch.zeros(3, 2), rtol=0.0, atol=0.0, msg="T = 0")
    assert masked_mean_pool(torch.empty(0, 4, 2), torch.empty(0, 4, dtype=torch.bool)).shape == (0, 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_mean_pool_half_precision_matches_float64_loop(dtype: torch.dtype) -> None:
    hidden, mask = _batch(b=5, t=33, d=16, seed=3)
    hidden = (hidden + 3.0).to(dtype)  # a common offset: naive half-precision sums lose the small terms
    actual = masked_mean_pool(hidden, mask)
    assert actual.dtype == dtype
    rtol, atol = TOL[dtype]
    assert_close(actual, _mean_loop(hidden, mask).to(dtype), rtol=rtol, atol=atol, msg=str(dtype))


def test_mean_pool_float16_sums_do_not_overflow() -> None:
    # 16 tokens of 60000: the float16 sum (960000) would be inf; the mean is 60000.
    hidden = torch.full((2, 16, 3), 60000.0, dtype=torch.float16)
    mask = torch.ones(2, 16, dtype=torch.long)
    actual = masked_mean_pool(hidden, mask)
    assert_close(actual, torch.full((2, 3), 60000.0, dtype=torch.float16), rtol=0.0, atol=0.0, msg="fp16 extreme")


def test_mean_pool_on_meta_tensors_gives_shape_dtype_and_device() -> None:
    hidden = torch.empty(3, 11, 7, dtype=torch.bfloat16, device="meta")
    for mask in (torch.empty(3, 11, device="meta"), torch.empty(3, 11, dtype=torch.bool, device="meta")):
        out = masked_mean_pool(hidden, mask)
        assert out.shape == (3, 7) and out.dtype == torch.bfloat16 and out.device.type == "meta"
    out = last_token_pool(hidden, torch.empty(3, 11, dtype=torch.long, device="meta"))
    assert out.shape == (3, 7) and out.dtype == torch.bfloat16 and out.device.type == "meta"
    assert cls_pool(hidden).shape == (3, 7)


@pytest.mark.parametrize("fn", [masked_mean_pool, last_token_pool], ids=["mean", "last"])
def test_pools_reject_bad_inputs(fn: Any) -> None:
    hidden, mask = _batch(b=2, t=3, d=4)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(2, 3\)"):
        fn(hidden, mask[:, :2])
    with pytest.raises(ValueError, match=r"attention_mask must have shape"):
        fn(hidden, mask[:, :, None])
    with pytest.raises(ValueError, match=r"hidden must have shape \(B, T, D\), got \(2, 3\)"):
        fn(hidden[..., 0], mask)
    with pytest.raises(TypeError, match=r"floating dtype, got torch\.int64"):
        fn(hidden.long(), mask)
    with pytest.raises(ValueError, match=r"only 0 and 1, found \[2\]"):
        fn(hidden, mask * 2)
    with pytest.raises(ValueError, match=r"only 0 and 1, found \[0\.5"):
        fn(hidden, mask * 0.5)
    with pytest.raises(TypeError, match=r"attention_mask must be a torch\.Tensor"):
        fn(hidden, mask.tolist())


# --------------------------------------------------------------------------- cls_pool, last_token_pool


def test_cls_pool_is_first_position(device: torch.device) -> None:
    hidden, _ = _batch()
    hidden = hidden.to(device)
    assert_close(cls_pool(hidden), hidden[:, 0].clone(), rtol=0.0, atol=0.0, msg="cls_pool")
    with pytest.raises(ValueError, match=r"at least one position, got hidden of shape \(2, 0, 3\)"):
        cls_pool(torch.empty(2, 0, 3))
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        cls_pool(hidden[0])


@pytest.mark.parametrize("pattern", ["right", "left", "holes"])
def test_last_token_pool_matches_loop(pattern: str, device: torch.device) -> None:
    hidden, right = _batch(b=6, t=8, d=3, seed=1)
    mask = {
        "right": right,
        "left": right.flip(1),
        "holes": torch.randint(0, 2, right.shape, generator=torch.Generator().manual_seed(5)),
    }[pattern]
    mask[-1] = 0  # one row with no real token
    hidden = torch.where(mask[..., None].bool(), hidden, float("nan"))  # padding holds NaN
    actual = last_token_pool(hidden.to(device), mask.to(device))
    assert actual.device == hidden.to(device).device
    assert_close(actual.cpu(), _last_loop(hidden, mask), rtol=0.0, atol=0.0, msg=f"{pattern} padding")


def test_last_token_pool_right_padding_reads_length_minus_one() -> None:
    hidden, mask = _batch(b=5, t=6, d=2, seed=4)
    lengths = mask.sum(1)
    expected = torch.stack([hidden[i, int(lengths[i]) - 1] for i in range(5)])
    assert_close(last_token_pool(hidden, mask.bool()), expected, rtol=0.0, atol=0.0, msg="length - 1")
    assert_close(last_token_pool(torch.empty(2, 0, 3), torch.empty(2, 0)), torch.zeros(2, 3), rtol=0.0, atol=0.0)
