"""Tests for mlcraft.models.attention: scaled_dot_product_attention, causal_mask, split/merge_heads,
MultiHeadAttention.

Oracles: ``torch.nn.functional.scaled_dot_product_attention`` and ``torch.nn.MultiheadAttention``
in float64 (agreement to 1e-12: both sides do the same O(T·D) sums, so only a few ulps of 2^-52
separate them), and ``torch.nn.attention.bias.causal_lower_right`` for the KV-cache alignment.
"""

from __future__ import annotations

import math
from typing import TypedDict

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.attention.bias import causal_lower_right

from mlcraft.classroom.testing import assert_close
from mlcraft.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)


class Tolerances(TypedDict):
    rtol: float
    atol: float


F64: Tolerances = {"rtol": 1e-12, "atol": 1e-12}
NEG_INF = float("-inf")


pytestmark = pytest.mark.usefixtures("isolate_torch")


def _f64(device: torch.device) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")


def _randn(gen: torch.Generator, *shape: int, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Drawn on the CPU, so every device sees the same numbers."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def _qkv(
    device: torch.device,
    b: int = 2,
    h: int = 3,
    t_q: int = 5,
    t_k: int | None = None,
    d: int = 8,
    d_v: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    t_k = t_q if t_k is None else t_k
    d_v = d if d_v is None else d_v
    return (
        _randn(gen, b, h, t_q, d, device=device),
        _randn(gen, b, h, t_k, d, device=device),
        _randn(gen, b, h, t_k, d_v, device=device),
    )


# --------------------------------------------------------------------------- causal_mask


@pytest.mark.parametrize(("t_q", "t_k"), [(1, 1), (4, 4), (1, 6), (3, 7), (0, 3)])
def test_causal_mask_follows_documented_rule(t_q: int, t_k: int) -> None:
    mask = causal_mask(t_q, t_k)
    assert mask.dtype == torch.bool
    assert mask.shape == (t_q, t_k)
    expected = torch.tensor([[j <= i + (t_k - t_q) for j in range(t_k)] for i in range(t_q)], dtype=torch.bool)
    assert torch.equal(mask, expected.reshape(t_q, t_k))


@pytest.mark.parametrize(("t_q", "t_k"), [(1, 1), (4, 4), (1, 6), (3, 7)])
def test_causal_mask_is_bottom_right_aligned(t_q: int, t_k: int) -> None:
    assert torch.equal(causal_mask(t_q, t_k), causal_lower_right(t_q, t_k)._materialize())
    # The last query always sees every key (it is the newest token), the first sees T_k - T_q + 1 keys.
    assert bool(causal_mask(t_q, t_k)[-1].all())
    assert int(causal_mask(t_q, t_k)[0].sum()) == t_k - t_q + 1


def test_causal_mask_default_is_square_lower_triangle() -> None:
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.mark.parametrize(("t_q", "t_k"), [(3, 2), (-1, 3)])
def test_causal_mask_rejects_more_queries_than_keys(t_q: int, t_k: int) -> None:
    with pytest.raises(ValueError, match="T_q"):
        causal_mask(t_q, t_k)


# --------------------------------------------------------------------------- sdpa vs torch, float64


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 5, 8), (4, 6, 3), (1, 1, 1, 4)],
    ids=["BHTD", "BTD", "single-token"],
)
def test_sdpa_no_mask_matches_torch(device: torch.device, shape: tuple[int, ...]) -> None:
    _f64(device)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (_randn(gen, *shape, device=device) for _ in range(3))
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == shape
    assert out.dtype == torch.float64
    assert_close(out, F.scaled_dot_product_attention(q, k, v), **F64)


def test_sdpa_boolean_mask_matches_torch(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    gen = torch.Generator().manual_seed(7)
    mask = torch.rand(2, 3, 5, 5, generator=gen) < 0.5
    mask |= torch.eye(5, dtype=torch.bool)  # every query sees at least one key
    mask = mask.to(device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F64)
    # The mask does something: the result differs from the unmasked one.
    assert not torch.allclose(out, scaled_dot_product_attention(q, k, v))


def test_sdpa_float_mask_with_neg_inf_matches_torch(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    gen = torch.Generator().manual_seed(8)
    bias = torch.randn(2, 3, 5, 5, generator=gen, dtype=torch.float64)  # finite additive part
    blocked = (torch.rand(2, 3, 5, 5, generator=gen) < 0.4) & ~torch.eye(5, dtype=torch.bool)
    mask = bias.masked_fill(blocked, NEG_INF).to(device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F64)


def test_sdpa_is_causal_matches_torch_for_square_scores(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device, t_q=6)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **F64)
    # Causality: changing the last key/value leaves every earlier query's output unchanged.
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] += 3.0
    v2[..., -1, :] -= 5.0
    out2 = scaled_dot_product_attention(q, k2, v2, is_causal=True)
    assert torch.equal(out2[..., :-1, :], out[..., :-1, :])
    assert not torch.allclose(out2[..., -1, :], out[..., -1, :])


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_causal_combined_with_padding_mask(device: torch.device, kind: str) -> None:
    _f64(device)
    q, k, v = _qkv(device, t_q=6)
    lengths = torch.tensor([6, 4])  # right padding: batch item 1 has 2 padded keys
    keep = (torch.arange(6)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
    pad = keep if kind == "bool" else torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, NEG_INF)
    pad = pad.to(device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=pad, is_causal=True)
    combined = keep & torch.ones(6, 6, dtype=torch.bool).tril()
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=combined.to(device))
    assert_close(out, expected, **F64)


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("mask_shape", [(5, 5), (2, 1, 5, 5), (2, 3, 5, 5), (2, 1, 1, 5), (1, 3, 1, 5)])
def test_sdpa_mask_broadcasting(device: torch.device, kind: str, mask_shape: tuple[int, ...]) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    gen = torch.Generator().manual_seed(11)
    keep = torch.rand(*mask_shape, generator=gen) < 0.6
    keep[..., 0] = True  # no fully masked rows here
    if kind == "bool":
        mask = keep
    else:
        mask = torch.randn(*mask_shape, generator=gen, dtype=torch.float64).masked_fill(~keep, NEG_INF)
    mask = mask.to(device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (2, 3, 5, 8)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F64)
    # Same as the mask expanded by hand.
    full = mask.expand(2, 3, 5, 5).contiguous()
    assert_close(out, scaled_dot_product_attention(q, k, v, attn_mask=full), **F64)


def test_sdpa_cross_attention_unequal_lengths(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device, t_q=3, t_k=7, d_v=5)
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 3, 5)
    assert_close(out, F.scaled_dot_product_attention(q, k, v), **F64)
    mask = (torch.arange(7)[None, :] % 3 != 1).expand(3, 7).to(device)
    assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        **F64,
    )


@pytest.mark.parametrize(("t_q", "t_k"), [(1, 6), (2, 5), (4, 4)])
def test_sdpa_is_causal_with_cache_uses_bottom_right_alignment(device: torch.device, t_q: int, t_k: int) -> None:
    """With T_k > T_q the queries are the newest T_q positions (KV-cache decoding). Note that
    ``F.scaled_dot_product_attention(is_causal=True)`` aligns top-left instead, so the oracle
    is sdpa with the explicit lower-right mask."""
    _f64(device)
    q, k, v = _qkv(device, t_q=t_q, t_k=t_k)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    explicit = causal_lower_right(t_q, t_k)._materialize().to(device)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=explicit), **F64)
    # Equivalently: the last T_q rows of full causal attention over the T_k positions.
    gen = torch.Generator().manual_seed(3)
    q_full = _randn(gen, 2, 3, t_k, 8, device=device)
    q_full[..., -t_q:, :] = q
    full = F.scaled_dot_product_attention(q_full, k, v, is_causal=True)
    assert_close(out, full[..., -t_q:, :], **F64)


def test_sdpa_is_causal_with_more_queries_than_keys_raises() -> None:
    q, k, v = _qkv(torch.device("cpu"), t_q=4, t_k=3)
    with pytest.raises(ValueError):
        scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("scale", [0.05, 1.0, 3.0])
def test_sdpa_custom_scale(device: torch.device, scale: float) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    out = scaled_dot_product_attention(q, k, v, scale=scale, is_causal=True)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=scale, is_causal=True), **F64)


def test_sdpa_default_scale_is_inverse_sqrt_head_dim(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device, d=16)
    assert_close(
        scaled_dot_product_attention(q, k, v),
        scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(16)),
        **F64,
    )
    assert not torch.allclose(
        scaled_dot_product_attention(q, k, v),
        scaled_dot_product_attention(q, k, v, scale=1.0),
    )


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_are_zero_and_nan_free(device: torch.device, kind: str) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    q.requires_grad_(True)
    keep = torch.ones(2, 3, 5, 5, dtype=torch.bool)
    keep[0, 1, 2] = False  # one row of one head
    keep[1, :, 4] = False  # one query in every head
    mask = keep if kind == "bool" else torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, NEG_INF)
    mask = mask.to(device)
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)
    assert torch.isfinite(out).all()
    assert torch.isfinite(weights).all()
    dead = ~keep.any(dim=-1)  # (B, H, T_q)
    assert int(dead.sum()) == 4
    assert torch.equal(out[dead.to(device)], torch.zeros(4, 8, dtype=torch.float64, device=device))
    assert torch.equal(weights[dead.to(device)], torch.zeros(4, 5, dtype=torch.float64, device=device))
    # The other rows still equal sdpa's.
    expected = F.scaled_dot_product_attention(q.detach(), k, v, attn_mask=mask)
    alive = (~dead).to(device)
    assert_close(out.detach()[alive], expected[alive], **F64)
    # Gradients stay finite too.
    out.sum().backward()
    assert q.grad is not None
    assert torch.isfinite(q.grad).all()


def test_sdpa_every_row_masked_gives_zeros(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    mask = torch.zeros(5, 5, dtype=torch.bool, device=device)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out, torch.zeros_like(out))


def test_sdpa_is_shift_invariant_in_scores(device: torch.device) -> None:
    """Adding 1000 to every score (through a constant float mask) changes nothing: softmax is
    computed stably, not as exp(s) / sum(exp(s)), which would overflow."""
    _f64(device)
    q, k, v = _qkv(device)
    plain = scaled_dot_product_attention(q, k, v)
    shifted = scaled_dot_product_attention(
        q, k, v, attn_mask=torch.full((5, 5), 1000.0, dtype=torch.float64, device=device)
    )
    assert torch.isfinite(shifted).all()
    assert_close(shifted, plain, **F64)
    # Same in float32, where exp(1000) would be inf.
    q32, k32, v32 = q.float(), k.float(), v.float()
    shifted32 = scaled_dot_product_attention(q32, k32, v32, attn_mask=torch.full((5, 5), 1000.0, device=device))
    assert torch.isfinite(shifted32).all()
    assert_close(shifted32, scaled_dot_product_attention(q32, k32, v32), rtol=1e-4, atol=1e-4)


def test_sdpa_huge_scores_are_stable(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    q = q + 1000.0  # scores of order 1e3 * sqrt(D): far beyond exp's range
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.isfinite(out).all()
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **F64)


@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"),
    [
        # float32: unit roundoff 6e-8; a handful of roundings in dot products of length 8 and a
        # softmax over 6 keys with |values| <= ~4 stays well inside 1e-5.
        (torch.float32, 1e-5, 1e-5),
        # bfloat16: unit roundoff 2^-8 = 3.9e-3; scores, weights and outputs are each rounded,
        # and output error scales with |v| (~3 here): allow ~12 ulps absolute, 4 relative.
        (torch.bfloat16, 3e-2, 5e-2),
    ],
)
def test_sdpa_low_precision_inputs(device: torch.device, dtype: torch.dtype, rtol: float, atol: float) -> None:
    _f64(device)
    q, k, v = (t.to(dtype) for t in _qkv(device, t_q=6))
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert out.dtype == dtype
    # Oracle: float64 attention on the same (already rounded) inputs.
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    assert_close(out.double(), expected, rtol=rtol, atol=atol)


def test_sdpa_float32_mask_with_float64_inputs(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    mask = torch.zeros(5, 5, device=device).masked_fill(~torch.eye(5, dtype=torch.bool, device=device), NEG_INF)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.dtype == torch.float64
    assert_close(out, v, **F64)  # each query sees only its own key


# --------------------------------------------------------------------------- return_weights


def test_sdpa_return_weights(device: torch.device) -> None:
    _f64(device)
    q, k, v = _qkv(device)
    keep = torch.ones(5, 5, dtype=torch.bool).tril()
    keep[3] = False  # one fully masked row
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep.to(device), return_weights=True)
    assert weights.shape == (2, 3, 5, 5)
    sums = weights.sum(dim=-1)
    visible = keep.any(dim=-1).to(device)  # (T_q,)
    assert_close(sums[..., visible], torch.ones_like(sums[..., visible]), **F64)
    assert torch.equal(sums[..., ~visible], torch.zeros_like(sums[..., ~visible]))
    assert (weights >= 0).all()
    assert torch.equal(weights[..., ~keep.to(device)], torch.zeros_like(weights[..., ~keep.to(device)]))
    assert_close(weights @ v, out, **F64)
    # Against softmax written independently, on the visible rows.
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    ref = torch.softmax(scores.masked_fill(~keep.to(device), NEG_INF), dim=-1)
    assert_close(weights[..., visible, :], ref[..., visible, :], **F64)


def test_sdpa_without_return_weights_returns_a_tensor() -> None:
    q, k, v = _qkv(torch.device("cpu"))
    assert isinstance(scaled_dot_product_attention(q, k, v), torch.Tensor)


# --------------------------------------------------------------------------- dropout


def test_sdpa_dropout_changes_output_reproducibly() -> None:
    q, k, v = _qkv(torch.device("cpu"))
    plain = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    a, wa = scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    torch.manual_seed(0)
    b = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert torch.equal(a, b)  # same seed, same draw
    assert not torch.allclose(a, plain)
    # Inverted dropout: each weight is either dropped or scaled by 1 / (1 - p).
    _, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    dropped = wa == 0
    assert 0 < int(dropped.sum()) < dropped.numel()
    assert_close(wa[~dropped], 2.0 * w[~dropped], **F64)


def test_sdpa_dropout_preserves_expected_value() -> None:
    """Mean over N independent dropout draws approaches the dropout-free output.

    With keep-probability 1 - p and inverted scaling, one draw of output element ``i`` is
    ``sum_j w_j v_j m_j / (1 - p)`` with ``m_j ~ Bernoulli(1 - p)``: unbiased, with variance
    ``p / (1 - p) * sum_j w_j² v_j²``. The mean of N draws has standard error ``sqrt(var / N)``;
    we allow 5 standard errors per element (two-sided tail 6e-7 each, < 1e-4 over the 40
    elements even without the fixed seed). A missing 1 / (1 - p) rescaling would move the mean
    by half the output, hundreds of standard errors.
    """
    p, n = 0.5, 20_000
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 1, 4, 10 if i == 2 else 3, generator=gen, dtype=torch.float64) for i in range(3))
    ref, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    torch.manual_seed(123)
    draws = scaled_dot_product_attention(q.expand(n, 1, 4, 3), k.expand(n, 1, 4, 3), v, dropout_p=p)
    mean = draws.mean(dim=0, keepdim=True)
    var = p / (1 - p) * (w.squeeze(0).squeeze(0) ** 2 @ v.squeeze(0).squeeze(0) ** 2)  # (T, D_v)
    stderr = (var / n).sqrt()
    assert (mean - ref).abs().squeeze().le(5 * stderr + 1e-12).all()
    # The spread matches the formula too (within 5%: the relative SE of a sample std over 20k draws is 0.5%).
    assert_close(draws.std(dim=0).squeeze(), var.sqrt(), rtol=0.05, atol=1e-9)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_sdpa_invalid_dropout_raises(p: float) -> None:
    q, k, v = _qkv(torch.device("cpu"))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=p)


def test_sdpa_zero_dropout_is_deterministic() -> None:
    q, k, v = _qkv(torch.device("cpu"))
    assert torch.equal(
        scaled_dot_product_attention(q, k, v, dropout_p=0.0),
        scaled_dot_product_attention(q, k, v),
    )


# --------------------------------------------------------------------------- shape errors


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape"),
    [
        ((2, 5, 8), (2, 5, 4), (2, 5, 8)),  # head dim of q and k differ
        ((2, 5, 8), (2, 5, 8), (2, 6, 8)),  # k and v lengths differ
    ],
)
def test_sdpa_shape_mismatch_raises(
    q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        scaled_dot_product_attention(torch.zeros(q_shape), torch.zeros(k_shape), torch.zeros(v_shape))


# --------------------------------------------------------------------------- split / merge heads


def test_split_heads_layout_matches_reference_loop() -> None:
    b, t, h, d = 2, 3, 4, 5
    x = torch.arange(b * t * h * d, dtype=torch.float64).reshape(b, t, h * d)
    out = split_heads(x, h)
    assert out.shape == (b, h, t, d)
    expected = torch.empty(b, h, t, d, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            for ti in range(t):
                for di in range(d):
                    expected[bi, hi, ti, di] = x[bi, ti, hi * d + di]
    assert torch.equal(out, expected)


def test_split_merge_round_trip() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 12, generator=gen)
    for h in (1, 2, 3, 4, 6, 12):
        assert torch.equal(merge_heads(split_heads(x, h)), x)
    y = torch.randn(2, 4, 7, 3, generator=gen)
    assert torch.equal(split_heads(merge_heads(y), 4), y)
    assert merge_heads(y).shape == (2, 7, 12)


def test_split_heads_on_a_fused_projection_slice() -> None:
    """MultiHeadAttention splits column slices of the fused QKV output (not contiguous)."""
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 3, 3 * 8, generator=gen)
    for part in qkv.split(8, dim=-1):
        assert not part.is_contiguous()
        assert torch.equal(split_heads(part, 2), split_heads(part.contiguous(), 2))


@pytest.mark.parametrize(("width", "heads"), [(10, 3), (8, 5), (7, 2)])
def test_split_heads_non_divisible_width_raises(width: int, heads: int) -> None:
    with pytest.raises(ValueError, match="divisible"):
        split_heads(torch.zeros(1, 2, width), heads)


# --------------------------------------------------------------------------- MultiHeadAttention


def _mha_pair(
    device: torch.device, d_model: int = 16, n_heads: int = 4, **kwargs: object
) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)  # inside the autouse fork_rng
    ours = MultiHeadAttention(d_model, n_heads, **kwargs).double().to(device).eval()  # type: ignore[arg-type]
    ref = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64).to(device).eval()
    with torch.no_grad():
        # Non-trivial biases, so a mis-copied bias cannot hide behind zeros.
        ours.qkv.bias.normal_()
        ours.proj.bias.normal_()
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    return ours, ref


def _x(device: torch.device, b: int = 2, t: int = 6, c: int = 16) -> torch.Tensor:
    return _randn(torch.Generator().manual_seed(42), b, t, c, device=device)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_mha_matches_torch_multihead_attention(device: torch.device, fused: bool) -> None:
    _f64(device)
    ours, ref = _mha_pair(device, fused=fused)
    x = _x(device)
    out, (k, v) = ours(x)
    expected, _ = ref(x, x, x, need_weights=False)
    assert out.shape == x.shape
    assert_close(out, expected, **F64)
    assert k.shape == v.shape == (2, 4, 6, 4)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("ref_mask_kind", ["bool", "float"])
def test_mha_causal_matches_torch_multihead_attention(device: torch.device, fused: bool, ref_mask_kind: str) -> None:
    _f64(device)
    ours, ref = _mha_pair(device, causal=True, fused=fused)
    x = _x(device)
    out, _ = ours(x)
    blocked = ~causal_mask(6, device=device)  # nn.MultiheadAttention: True means *masked*
    ref_mask = (
        blocked
        if ref_mask_kind == "bool"
        else torch.zeros(6, 6, dtype=torch.float64, device=device).masked_fill(blocked, NEG_INF)
    )
    expected, _ = ref(x, x, x, attn_mask=ref_mask, need_weights=False)
    assert_close(out, expected, **F64)
    # And the causal mask matters.
    unmasked, _ = ref(x, x, x, need_weights=False)
    assert not torch.allclose(out, unmasked)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_mha_padding_mask_matches_key_padding_mask(device: torch.device, fused: bool) -> None:
    _f64(device)
    ours, ref = _mha_pair(device, fused=fused)
    x = _x(device)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2], device=device)  # (B, T)
    out, _ = ours(x, attn_mask=keep[:, None, None, :])
    expected, _ = ref(x, x, x, key_padding_mask=~keep, need_weights=False)
    assert_close(out, expected, **F64)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_mha_causal_combined_with_user_mask(device: torch.device, kind: str) -> None:
    _f64(device)
    ours, ref = _mha_pair(device, causal=True)
    x = _x(device)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2], device=device)[:, None, None, :]
    mask = (
        keep
        if kind == "bool"
        else torch.zeros(keep.shape, dtype=torch.float64, device=device).masked_fill(~keep, NEG_INF)
    )
    out, _ = ours(x, attn_mask=mask)
    blocked = ~causal_mask(6, device=device)
    expected, _ = ref(x, x, x, attn_mask=blocked, key_padding_mask=~keep[:, 0, 0, :], need_weights=False)
    assert_close(out, expected, **F64)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_fused_and_unfused_agree(device: torch.device, causal: bool) -> None:
    _f64(device)
    fused, _ = _mha_pair(device, causal=causal, fused=True)
    unfused = MultiHeadAttention(16, 4, causal=causal, fused=False).double().to(device).eval()
    unfused.load_state_dict(fused.state_dict())
    x = _x(device)
    assert_close(fused(x)[0], unfused(x)[0], **F64)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("prefill", [1, 3])
def test_mha_kv_cache_equals_full_causal_forward(device: torch.device, fused: bool, prefill: int) -> None:
    _f64(device)
    ours, _ = _mha_pair(device, causal=True, fused=fused)
    x = _x(device, t=7)
    full, (k_full, v_full) = ours(x)
    out, cache = ours(x[:, :prefill])
    pieces = [out]
    for t in range(prefill, 7):
        step, cache = ours(x[:, t : t + 1], kv_cache=cache)
        assert step.shape == (2, 1, 16)
        assert cache[0].shape == cache[1].shape == (2, 4, t + 1, 4)
        pieces.append(step)
    assert_close(torch.cat(pieces, dim=1), full, **F64)
    assert_close(cache[0], k_full, **F64)
    assert_close(cache[1], v_full, **F64)


def test_mha_dropout_inactive_in_eval_mode(device: torch.device) -> None:
    _f64(device)
    noisy, _ = _mha_pair(device, dropout=0.5)
    clean = MultiHeadAttention(16, 4, dropout=0.0).double().to(device).eval()
    clean.load_state_dict(noisy.state_dict())
    x = _x(device)
    noisy.eval()
    torch.manual_seed(1)
    a = noisy(x)[0]
    torch.manual_seed(2)
    b = noisy(x)[0]
    assert torch.equal(a, b)
    assert_close(a, clean(x)[0], **F64)
    # In training mode the same module does drop weights.
    noisy.train()
    assert not torch.allclose(noisy(x)[0], a)


def test_mha_rejects_width_not_divisible_by_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_mha_without_bias() -> None:
    mha = MultiHeadAttention(8, 2, bias=False)
    assert mha.qkv.bias is None
    assert mha.proj.bias is None
    out, _ = mha(torch.zeros(1, 3, 8))
    assert torch.equal(out, torch.zeros(1, 3, 8))
