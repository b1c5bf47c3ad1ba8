"""Tests for the attention-at-scale helpers of mlcraft.models.attention: online_softmax_attention,
sliding_window_mask, repeat_kv and kv_cache_bytes.

Oracles: ``torch.nn.functional.scaled_dot_product_attention`` (float64 to 1e-12; float32 and bf16
with explicit tolerances), ``enable_gqa=True`` and ``torch.repeat_interleave`` for grouped-query
attention, Hugging Face's ``repeat_kv``, loops over positions in float64 written here, and the
``nbytes`` of caches actually allocated (by hand and by ``GPT.forward_with_cache``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mlcraft.classroom.testing import assert_close
from mlcraft.models.attention import (
    causal_mask,
    kv_cache_bytes,
    online_softmax_attention,
    repeat_kv,
    sliding_window_mask,
)
from mlcraft.models.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("isolate_torch")


def _randn(
    seed: int, *shape: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Drawn on the CPU in float64, so every device and dtype sees the same numbers."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def _qkv(
    b: int = 2, h: int = 3, t_q: int = 7, t_k: int | None = None, d: int = 8, **kw: object
) -> tuple[torch.Tensor, ...]:
    t_k = t_q if t_k is None else t_k
    return tuple(_randn(s, b, h, t, d, **kw) for s, t in ((0, t_q), (1, t_k), (2, t_k)))  # type: ignore[arg-type]


def _attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Float64 oracle: one (batch, head, query) at a time, softmax over the visible keys only."""
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for idx in torch.cartesian_prod(*(torch.arange(n) for n in q.shape[:-1])).reshape(-1, q.dim() - 1).tolist():
        *lead, i = idx
        keys = visible[i].nonzero().flatten().tolist()
        if not keys:
            continue
        scores = torch.stack([q[(*lead, i)].double() @ k[(*lead, j)].double() for j in keys]) / math.sqrt(q.shape[-1])
        weights = torch.softmax(scores, dim=0)
        out[(*lead, i)] = sum(w * v[(*lead, j)].double() for w, j in zip(weights, keys, strict=True))
    return out


# --------------------------------------------------------------------------- online_softmax_attention


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("causal", [False, True])
def test_online_softmax_matches_sdpa_float64(device: torch.device, block_size: int, causal: bool) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    q, k, v = _qkv(t_q=7, device=device)  # block sizes 2 and 3 do not divide T = 7
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    got = online_softmax_attention(q, k, v, block_size=block_size, causal=causal)
    assert got.dtype == torch.float64
    assert_close(got, expected, rtol=1e-12, atol=1e-12, msg=f"block_size={block_size}, causal={causal}")


@pytest.mark.parametrize("block_size", [1, 4, 5])
def test_online_softmax_matches_a_float64_loop(block_size: int) -> None:
    q, k, v = _qkv(b=1, h=2, t_q=6, d=4)
    for causal in (False, True):
        visible = causal_mask(6) if causal else torch.ones(6, 6, dtype=torch.bool)
        assert_close(
            online_softmax_attention(q, k, v, block_size=block_size, causal=causal),
            _attention_loop(q, k, v, visible),
            rtol=1e-12,
            atol=1e-12,
            msg=f"block_size={block_size}, causal={causal}",
        )


def test_online_softmax_causal_with_more_keys_than_queries_is_bottom_right_aligned() -> None:
    q, k, v = _qkv(t_q=3, t_k=8)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 8))
    assert_close(online_softmax_attention(q, k, v, block_size=3, causal=True), expected, rtol=1e-12, atol=1e-12)


def test_online_softmax_survives_scores_that_would_overflow_exp() -> None:
    q, k, v = _qkv(t_q=9, d=4)
    q = q * 300.0  # scores of several thousand: exp overflows unless the running max is subtracted
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    got = online_softmax_attention(q, k, v, block_size=2, causal=True)
    assert got.isfinite().all()
    assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_online_softmax_float32_and_bf16_within_stated_tolerance() -> None:
    q, k, v = _qkv(t_q=256, d=16, dtype=torch.float32)
    expected64 = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    got32 = online_softmax_attention(q, k, v, block_size=8, causal=True)
    assert got32.dtype == torch.float32
    assert_close(got32.double(), expected64, rtol=1e-5, atol=1e-5, msg="float32")
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    got16 = online_softmax_attention(qb, kb, vb, block_size=8, causal=True)
    assert got16.dtype == torch.bfloat16
    expected_b = F.scaled_dot_product_attention(qb.double(), kb.double(), vb.double(), is_causal=True)
    # float32 accumulators: only the final rounding to bf16 (half an ulp, 2^-8 relative) remains;
    # accumulating 32 rescaled blocks in bf16 itself would be off by several ulps.
    assert_close(got16.double(), expected_b, rtol=2**-8, atol=1e-3, msg="bf16 (float32 accumulators)")


def test_online_softmax_gradients_match_sdpa() -> None:
    q, k, v = (t.requires_grad_() for t in _qkv(b=1, h=2, t_q=5, d=4))
    online_softmax_attention(q, k, v, block_size=2, causal=True).square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]  # type: ignore[union-attr]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    for name, ours, ref in zip("qkv", grads, (q.grad, k.grad, v.grad), strict=True):
        assert_close(ours, ref, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_online_softmax_edge_cases() -> None:
    q, k, v = _qkv(t_q=1, d=4)  # T = 1: the only key gets weight 1
    assert_close(online_softmax_attention(q, k, v, block_size=4, causal=True), v, rtol=1e-12, atol=1e-12)
    q0, k0, v0 = _qkv(b=0, t_q=5)  # empty batch
    assert online_softmax_attention(q0, k0, v0, block_size=2).shape == (0, 3, 5, 8)
    qe, ke, ve = _qkv(t_q=3, t_k=0)  # no keys at all: zeros, not NaN
    assert_close(online_softmax_attention(qe, ke, ve, block_size=2), torch.zeros(2, 3, 3, 8, dtype=torch.float64))


def test_online_softmax_rejects_bad_input() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        online_softmax_attention(q, k, v, block_size=0)
    with pytest.raises(ValueError, match="shape mismatch"):
        online_softmax_attention(q, k[..., :4], v, block_size=2)
    q5, k3, v3 = _qkv(t_q=5, t_k=3)
    with pytest.raises(ValueError, match="T_k >= T_q, got T_q=5, T_k=3"):
        online_softmax_attention(q5, k3, v3, block_size=2, causal=True)


# --------------------------------------------------------------------------- sliding_window_mask


@pytest.mark.parametrize(("t", "window"), [(1, 1), (6, 1), (6, 3), (6, 6), (6, 10), (0, 2)])
def test_sliding_window_mask_follows_a_loop(t: int, window: int) -> None:
    expected = torch.tensor([[i - window < j <= i for j in range(t)] for i in range(t)], dtype=torch.bool)
    mask = sliding_window_mask(t, window)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected.reshape(t, t)), f"T={t}, window={window}"


def test_sliding_window_special_cases() -> None:
    assert torch.equal(sliding_window_mask(7, 7), causal_mask(7)), "window = T is causal"
    assert torch.equal(sliding_window_mask(7, 100), causal_mask(7)), "window > T is causal"
    assert torch.equal(sliding_window_mask(7, 1), torch.eye(7, dtype=torch.bool)), "window 1 sees only itself"
    assert sliding_window_mask(5, 2, device="meta").device.type == "meta"


def test_sliding_window_attention_equals_attention_on_the_truncated_context() -> None:
    t, window = 10, 4
    q, k, v = _qkv(t_q=t)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(t, window))
    for i in range(t):
        lo = max(0, i - window + 1)
        alone = F.scaled_dot_product_attention(q[..., i : i + 1, :], k[..., lo : i + 1, :], v[..., lo : i + 1, :])
        assert_close(out[..., i : i + 1, :], alone, rtol=1e-12, atol=1e-12, msg=f"query {i}")
    assert_close(out, _attention_loop(q, k, v, sliding_window_mask(t, window)), rtol=1e-12, atol=1e-12)


def test_sliding_window_receptive_field_grows_by_window_minus_one_per_layer() -> None:
    t, window = 32, 4
    step = sliding_window_mask(t, window).long()
    reach = torch.eye(t, dtype=torch.long)
    for layers in range(1, 5):
        reach = (step @ reach).clamp_max(1)  # which inputs can influence each position after `layers` layers
        assert int(reach[-1].sum()) == layers * (window - 1) + 1


def test_sliding_window_mask_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="window >= 1, got T=4, window=0"):
        sliding_window_mask(4, 0)
    with pytest.raises(ValueError, match="got T=-1"):
        sliding_window_mask(-1, 2)


# --------------------------------------------------------------------------- repeat_kv and GQA


@pytest.mark.parametrize("n_rep", [1, 2, 4])
def test_repeat_kv_equals_repeat_interleave(n_rep: int) -> None:
    x = _randn(3, 2, 2, 5, 4)
    assert torch.equal(repeat_kv(x, n_rep), torch.repeat_interleave(x, n_rep, dim=1))


def test_repeat_kv_equals_hugging_face() -> None:
    modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    x = _randn(4, 1, 3, 6, 8)
    assert torch.equal(repeat_kv(x, 3), modeling_llama.repeat_kv(x, 3))


def test_grouped_query_attention_three_ways() -> None:
    n_heads, n_kv_heads = 6, 2
    q = _randn(0, 2, n_heads, 7, 8)
    k, v = _randn(1, 2, n_kv_heads, 7, 8), _randn(2, 2, n_kv_heads, 7, 8)
    ours = F.scaled_dot_product_attention(q, repeat_kv(k, 3), repeat_kv(v, 3), is_causal=True)
    per_head = torch.stack(
        [F.scaled_dot_product_attention(q[:, h], k[:, h // 3], v[:, h // 3], is_causal=True) for h in range(n_heads)],
        dim=1,
    )  # query head h reads kv head h // group
    assert_close(ours, per_head, rtol=1e-12, atol=1e-12, msg="explicit per-head loop")
    try:
        fused = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    except TypeError:  # torch < 2.5 has no enable_gqa
        return
    assert_close(ours, fused, rtol=1e-12, atol=1e-12, msg="enable_gqa=True")


def test_repeat_kv_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n_rep=0"):
        repeat_kv(_randn(0, 1, 2, 3, 4), 0)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        repeat_kv(_randn(0, 2, 3, 4), 2)


# --------------------------------------------------------------------------- kv_cache_bytes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_kv_cache_bytes_equals_an_allocated_cache(dtype: torch.dtype, n_kv_heads: int) -> None:
    layers, head_dim, seq_len, batch = 3, 8, 11, 2
    cache = [
        (
            torch.zeros(batch, n_kv_heads, seq_len, head_dim, dtype=dtype),
            torch.zeros(batch, n_kv_heads, seq_len, head_dim, dtype=dtype),
        )
        for _ in range(layers)
    ]
    allocated = sum(t.nbytes for pair in cache for t in pair)
    formula = kv_cache_bytes(
        n_layers=layers, n_kv_heads=n_kv_heads, head_dim=head_dim, seq_len=seq_len, batch_size=batch, dtype=dtype
    )
    assert formula == allocated


def test_kv_cache_bytes_equals_the_cache_gpt_builds() -> None:
    config = GPTConfig(vocab_size=17, block_size=16, n_layer=3, n_head=4, d_model=32)
    with torch.no_grad():
        _, cache = GPT(config).eval().forward_with_cache(torch.zeros(2, 9, dtype=torch.long))
    allocated = sum(t.nbytes for pair in cache for t in pair)
    formula = kv_cache_bytes(n_layers=3, n_kv_heads=4, head_dim=8, seq_len=9, batch_size=2, dtype=torch.float32)
    assert formula == allocated


def test_kv_cache_bytes_llama_like_numbers_and_bad_input() -> None:
    def llama_like(n_kv_heads: int, batch_size: int = 1) -> int:  # 32 layers, head_dim 128, 8k tokens, bf16
        return kv_cache_bytes(
            n_layers=32, n_kv_heads=n_kv_heads, head_dim=128, seq_len=8192, batch_size=batch_size, dtype=torch.bfloat16
        )

    assert llama_like(32) == 4 * 2**30  # multi-head: 4 GiB per 8k-token sequence
    assert llama_like(8) == 2**30  # grouped-query with 8 kv heads: 1 GiB
    assert llama_like(1) == 2**27  # multi-query: 128 MiB
    assert llama_like(8, batch_size=0) == 0
    with pytest.raises(ValueError, match="'seq_len': -1"):
        kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=1, seq_len=-1, dtype=torch.float32)
