"""Tests for mlcraft.models.positional: sinusoidal table, learned positions, rotary embeddings.

Oracles: the formula of Vaswani et al. (2017) evaluated element by element with Python floats,
and Hugging Face's LLaMA rotary code (``apply_rotary_pos_emb``, ``LlamaRotaryEmbedding``).
"""

from __future__ import annotations

import math
from typing import TypedDict

import pytest
import torch

from mlcraft.classroom.testing import assert_close
from mlcraft.models.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    apply_rotary,
    rotate_half,
    sinusoidal_encoding,
)


class Tolerances(TypedDict):
    rtol: float
    atol: float


F64: Tolerances = {"rtol": 1e-12, "atol": 1e-12}

# --------------------------------------------------------------------------- sinusoidal


@pytest.mark.parametrize(("n_positions", "d_model", "base"), [(50, 16, 10_000.0), (7, 2, 10_000.0), (20, 6, 100.0)])
def test_sinusoidal_matches_formula(n_positions: int, d_model: int, base: float) -> None:
    table = sinusoidal_encoding(n_positions, d_model, base=base)
    assert table.shape == (n_positions, d_model)
    assert table.dtype == torch.float32
    expected = torch.empty(n_positions, d_model, dtype=torch.float64)
    for p in range(n_positions):
        for i in range(d_model // 2):
            angle = p / base ** (2 * i / d_model)
            expected[p, 2 * i] = math.sin(angle)
            expected[p, 2 * i + 1] = math.cos(angle)
    # The table is the float64 value rounded once to float32: within one float32 ulp of 1 (2^-23).
    assert_close(table.double(), expected, rtol=0.0, atol=2**-23)


def test_sinusoidal_position_zero_and_range() -> None:
    table = sinusoidal_encoding(30, 8)
    assert torch.equal(table[0, 0::2], torch.zeros(4))
    assert torch.equal(table[0, 1::2], torch.ones(4))
    assert table.abs().max() <= 1.0
    # Rows differ: every position gets its own code.
    assert torch.unique(table, dim=0).shape[0] == 30


def test_sinusoidal_zero_positions() -> None:
    assert sinusoidal_encoding(0, 4).shape == (0, 4)


@pytest.mark.parametrize(("n_positions", "d_model"), [(10, 7), (10, 1), (10, 0), (-1, 4)])
def test_sinusoidal_invalid_arguments_raise(n_positions: int, d_model: int) -> None:
    with pytest.raises(ValueError):
        sinusoidal_encoding(n_positions, d_model)


# --------------------------------------------------------------------------- learned


def test_learned_positions_look_up_rows() -> None:
    emb = LearnedPositionalEmbedding(8, 4)
    positions = torch.tensor([0, 3, 7])
    assert torch.equal(emb(positions), emb.table.weight[positions])


def test_learned_positions_out_of_range_raises() -> None:
    emb = LearnedPositionalEmbedding(8, 4)
    with pytest.raises(ValueError, match="max_positions"):
        emb(torch.tensor([0, 8]))


# --------------------------------------------------------------------------- rotary


def _hf_cos_sin(positions: torch.Tensor, head_dim: int, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin in Hugging Face's LLaMA layout (``cat((freqs, freqs))``), computed in float64."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def test_rotate_half() -> None:
    x = torch.arange(6.0)
    assert torch.equal(rotate_half(x), torch.tensor([-3.0, -4.0, -5.0, 0.0, 1.0, 2.0]))


@pytest.mark.parametrize("base", [10_000.0, 500.0])
def test_rotary_matches_hugging_face_float64(device: torch.device, base: float) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    b, h, t, d = 2, 3, 9, 8
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(b, h, t, d, generator=gen, dtype=torch.float64).to(device)
    k = torch.randn(b, h, t, d, generator=gen, dtype=torch.float64).to(device)
    positions = torch.arange(3, 3 + t)
    rope = RotaryEmbedding(d, max_positions=64, base=base).to(device)
    cos, sin = rope(positions.to(device), dtype=torch.float64)
    assert cos.shape == sin.shape == (t, d)
    assert cos.dtype == torch.float64

    hf_cos, hf_sin = _hf_cos_sin(positions, d, base)
    assert_close(cos, hf_cos.to(device), **F64)
    assert_close(sin, hf_sin.to(device), **F64)
    # HF takes (batch, T, D) tables and unsqueezes the head dimension.
    hf_q, hf_k = llama.apply_rotary_pos_emb(
        q, k, hf_cos.expand(b, t, d).to(device), hf_sin.expand(b, t, d).to(device), unsqueeze_dim=1
    )
    assert_close(apply_rotary(q, cos, sin), hf_q, **F64)
    assert_close(apply_rotary(k, cos, sin), hf_k, **F64)
    assert not torch.allclose(hf_q, q)  # the rotation does something


def test_rotary_tables_match_hugging_face_rotary_class() -> None:
    """HF's LlamaRotaryEmbedding computes its angles in float32: |angle| <= 40 here, so the
    float32 angle is off by at most ~40 · 2^-23 ≈ 5e-6 and cos/sin by as much."""
    transformers = pytest.importorskip("transformers")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=64)
    head_dim = 16
    hf_rope = llama.LlamaRotaryEmbedding(config)
    positions = torch.arange(41)
    x = torch.zeros(1, 41, head_dim)
    hf_cos, hf_sin = hf_rope(x, positions[None, :])  # (1, T, D)
    cos, sin = RotaryEmbedding(head_dim, max_positions=64)(positions)
    assert cos.dtype == torch.float32
    assert_close(cos, hf_cos[0], rtol=0.0, atol=2e-5)
    assert_close(sin, hf_sin[0], rtol=0.0, atol=2e-5)


@pytest.mark.parametrize("shift", [1, 5, 17, 40])
def test_rotary_dot_product_depends_only_on_distance(shift: int) -> None:
    d = 16
    rope = RotaryEmbedding(d, max_positions=128)
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(d, generator=gen, dtype=torch.float64)
    k = torch.randn(d, generator=gen, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        cos, sin = rope(torch.tensor([m, n]), dtype=torch.float64)
        qm = apply_rotary(q, cos[0], sin[0])
        kn = apply_rotary(k, cos[1], sin[1])
        return qm @ kn

    for m, n in [(0, 0), (3, 7), (9, 2), (20, 20), (30, 1)]:
        assert_close(score(m + shift, n + shift), score(m, n), **F64)
    # ...but it does depend on the distance.
    assert not torch.allclose(score(3, 7), score(3, 8))


def _pair_norms(y: torch.Tensor) -> torch.Tensor:
    half = y.shape[-1] // 2
    return y[..., :half] ** 2 + y[..., half:] ** 2


def test_rotary_preserves_norms() -> None:
    rope = RotaryEmbedding(8, max_positions=100)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 50, 8, generator=gen, dtype=torch.float64)
    cos, sin = rope(torch.arange(50, 100), dtype=torch.float64)
    rotated = apply_rotary(x, cos, sin)
    assert_close(rotated.norm(dim=-1), x.norm(dim=-1), **F64)
    # Each (i, i + D/2) pair keeps its own norm: RoPE is a block rotation.
    assert_close(_pair_norms(rotated), _pair_norms(x), **F64)


def test_rotary_position_zero_is_identity() -> None:
    rope = RotaryEmbedding(8)
    cos, sin = rope(torch.tensor([0]), dtype=torch.float64)
    assert torch.equal(cos, torch.ones(1, 8, dtype=torch.float64))
    assert torch.equal(sin, torch.zeros(1, 8, dtype=torch.float64))
    x = torch.randn(2, 1, 8, dtype=torch.float64)
    assert torch.equal(apply_rotary(x, cos, sin), x)


def test_rotary_out_of_range_position_raises() -> None:
    rope = RotaryEmbedding(8, max_positions=16)
    rope(torch.arange(16))  # the last valid position is fine
    with pytest.raises(ValueError, match="max_positions"):
        rope(torch.tensor([3, 16]))


def test_rotary_odd_head_dim_raises() -> None:
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_rotary_inv_freq_is_not_saved() -> None:
    assert "inv_freq" not in RotaryEmbedding(8).state_dict()
