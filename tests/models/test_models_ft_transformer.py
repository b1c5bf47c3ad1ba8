"""Tests for mlcraft.models.ft_transformer: FTTransformer against the authors' reference
``rtdl_revisiting_models.FTTransformer`` with copied weights, plus structure, dropout,
training, devices and input checks."""

from __future__ import annotations

from typing import Any, cast

import pytest
import torch
from pydantic import ValidationError

from mlcraft.classroom.testing import assert_close
from mlcraft.models.ft_transformer import FTBlock, FTTransformer, FTTransformerConfig, load_rtdl_weights

pytestmark = pytest.mark.usefixtures("isolate_torch")

WIDTH = 16
# dtype -> (rtol, atol) for our forward against the reference's, same weights and inputs
PARITY = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5)}

# (case, n_num_features, cat_cardinalities, n_heads, n_blocks): numeric only, categorical only
# (with a one-value column), both kinds; one head (no output projection), one block (first = last).
CASES = [
    ("numeric", 3, (), 2, 2),
    ("categorical", 0, (3, 5, 1), 4, 1),
    ("both", 4, (2, 7), 1, 3),
]


def _rtdl() -> Any:
    return pytest.importorskip("rtdl_revisiting_models")


def _reference(n_num: int, cards: tuple[int, ...], n_heads: int, n_blocks: int, **overrides: Any) -> Any:
    """The reference with every tensor randomised: its LayerNorms start at (1, 0) and its attention
    biases at 0, which would hide a swapped or dropped tensor."""
    kwargs: dict[str, Any] = {
        "n_blocks": n_blocks,
        "d_block": WIDTH,
        "attention_n_heads": n_heads,
        "attention_dropout": 0.1,
        "ffn_d_hidden": None,
        "ffn_d_hidden_multiplier": 4 / 3,
        "ffn_dropout": 0.1,
        "residual_dropout": 0.05,
        "d_out": 2,
    }
    torch.manual_seed(0)
    reference = _rtdl().FTTransformer(n_cont_features=n_num, cat_cardinalities=list(cards), **(kwargs | overrides))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in reference.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    return reference


def _config(n_num: int, cards: tuple[int, ...], n_heads: int, n_blocks: int, **overrides: Any) -> FTTransformerConfig:
    fields: dict[str, Any] = {
        "n_num_features": n_num,
        "cat_cardinalities": cards,
        "d_out": 2,
        "n_blocks": n_blocks,
        "d_block": WIDTH,
        "n_heads": n_heads,
        "attention_dropout": 0.1,
        "ffn_dropout": 0.1,
        "residual_dropout": 0.05,
    }
    return FTTransformerConfig(**(fields | overrides))


def _inputs(
    n_num: int, cards: tuple[int, ...], batch: int, dtype: torch.dtype = torch.float64, seed: int = 2
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    x_num = torch.randn(batch, n_num, generator=gen, dtype=dtype) if n_num else None
    x_cat = torch.stack([torch.randint(0, c, (batch,), generator=gen) for c in cards], dim=1) if cards else None
    return x_num, x_cat


@pytest.mark.parametrize(("case", "n_num", "cards", "n_heads", "n_blocks"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("batch", [1, 9])
def test_matches_rtdl_reference(
    case: str, n_num: int, cards: tuple[int, ...], n_heads: int, n_blocks: int, dtype: torch.dtype, batch: int
) -> None:
    reference = _reference(n_num, cards, n_heads, n_blocks).to(dtype).eval()
    torch.manual_seed(3)
    ours = load_rtdl_weights(FTTransformer(_config(n_num, cards, n_heads, n_blocks)).to(dtype), reference).eval()
    x_num, x_cat = _inputs(n_num, cards, batch, dtype)
    with torch.no_grad():
        expected = reference(x_num, x_cat)
        actual = ours(x_num, x_cat)
    assert actual.shape == (batch, 2) and actual.dtype == dtype
    rtol, atol = PARITY[dtype]
    assert_close(actual, expected, rtol=rtol, atol=atol, msg=f"{case}, {dtype}, batch {batch}")


def test_without_dropout_training_mode_matches_reference_and_gradients_agree() -> None:
    n_num, cards = 3, (4, 2)
    zero = {"attention_dropout": 0.0, "ffn_dropout": 0.0, "residual_dropout": 0.0}
    reference = _reference(n_num, cards, 2, 2, **zero).double().train()
    ours = load_rtdl_weights(FTTransformer(_config(n_num, cards, 2, 2, **zero)).double(), reference).train()
    x_num, x_cat = _inputs(n_num, cards, 6)
    expected, actual = reference(x_num, x_cat), ours(x_num, x_cat)
    assert_close(actual, expected, rtol=1e-12, atol=1e-12, msg="train mode, all dropouts 0")
    expected.square().sum().backward()
    actual.square().sum().backward()
    pairs = [
        (ours.tokenizer.num_weight.grad, reference.cont_embeddings.weight.grad),
        (ours.cls_token.grad, reference.cls_embedding.weight.grad),
        (cast(torch.nn.Linear, ours.head.linear).weight.grad, reference.backbone.output.linear.weight.grad),
    ]
    for name, (mine, theirs) in zip(("numeric tokens", "[CLS]", "head"), pairs, strict=True):
        assert mine is not None and theirs is not None
        assert_close(mine, theirs, rtol=1e-10, atol=1e-12, msg=f"gradient of the {name}")


def test_structure_matches_the_paper_and_the_reference() -> None:
    cards = (3, 5)
    config = _config(2, cards, 4, 3)
    model = FTTransformer(config)
    blocks = [cast(FTBlock, block) for block in model.blocks]
    assert isinstance(blocks[0].attention_norm, torch.nn.Identity), "the first block skips its first LayerNorm"
    assert all(isinstance(b.attention_norm, torch.nn.LayerNorm) for b in blocks[1:])
    assert blocks[0].ffn.linear1.out_features == 2 * int(WIDTH * 4 / 3), "ReGLU halves the first layer's output"
    for layer in (blocks[1].attention.q, blocks[1].attention.k, blocks[1].attention.v):
        assert torch.count_nonzero(layer.bias) == 0, "attention biases start at zero"
    bound = WIDTH**-0.5
    for name, tensor in [("cls", model.cls_token), ("numeric", model.tokenizer.num_weight)]:
        assert tensor.abs().max() <= bound and tensor.std() > 0.2 * bound, f"{name} tokens ~ U(-1/sqrt(d), 1/sqrt(d))"
    reference = _reference(2, cards, 4, 3)
    ours_count = sum(p.numel() for p in model.parameters())
    assert ours_count == sum(p.numel() for p in reference.parameters()), "same parameters as the reference"
    assert torch.equal(model.tokenizer.cat_offsets, torch.tensor([0, 3]))


def test_default_config_is_the_papers_three_block_default() -> None:
    defaults = _rtdl().FTTransformer.get_default_kwargs(3)
    config = FTTransformerConfig(n_num_features=1)
    assert (config.n_blocks, config.d_block, config.n_heads) == (3, defaults["d_block"], defaults["attention_n_heads"])
    assert config.attention_dropout == defaults["attention_dropout"]
    assert config.ffn_dropout == defaults["ffn_dropout"] and config.residual_dropout == defaults["residual_dropout"]
    assert config.ffn_d_hidden_multiplier == defaults["ffn_d_hidden_multiplier"]


def test_dropout_acts_in_training_mode_only() -> None:
    torch.manual_seed(4)
    model = FTTransformer(_config(3, (4,), 2, 2, attention_dropout=0.3, ffn_dropout=0.3, residual_dropout=0.3))
    x_num, x_cat = _inputs(3, (4,), 8, torch.float32)
    model.train()
    first, second = model(x_num, x_cat), model(x_num, x_cat)
    assert not torch.allclose(first, second), "dropout should make two training passes differ"
    model.eval()
    assert torch.equal(model(x_num, x_cat), model(x_num, x_cat))


def test_empty_batch_gives_empty_output() -> None:
    model = FTTransformer(_config(2, (3,), 2, 2)).eval()
    out = model(torch.zeros(0, 2), torch.zeros(0, 1, dtype=torch.long))
    assert out.shape == (0, 2)


def test_trains_on_a_tiny_regression_problem() -> None:
    torch.manual_seed(5)
    n, cards = 128, (4, 3)
    x_num = torch.randn(n, 3)
    x_cat = torch.stack([torch.randint(0, c, (n,)) for c in cards], dim=1)
    y = (torch.sin(2 * x_num[:, 0]) + x_num[:, 1] * x_num[:, 2] + 0.5 * (x_cat[:, 0] - 1.5)).unsqueeze(1)
    config = FTTransformerConfig(
        n_num_features=3, cat_cardinalities=cards, d_out=1, n_blocks=2, d_block=16, n_heads=4, ffn_dropout=0.0
    )
    model = FTTransformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-5)
    losses = []
    for _ in range(80):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x_num, x_cat), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(model(x_num, x_cat), y).item()
    assert final < 0.3 * losses[0], f"loss fell only from {losses[0]:.3f} to {final:.3f}"


def test_runs_and_trains_on_each_device(device: torch.device) -> None:
    cards = (3, 5)
    torch.manual_seed(6)
    model = FTTransformer(_config(4, cards, 4, 2)).double().eval()
    x_num, x_cat = _inputs(4, cards, 5)
    with torch.no_grad():
        expected = model(x_num, x_cat)  # float64 on the CPU
    on_device = model.float().to(device)
    assert x_num is not None and x_cat is not None
    actual = on_device(x_num.float().to(device), x_cat.to(device))
    assert actual.device.type == device.type
    assert_close(actual, expected.float(), msg=f"float32 forward on {device}")
    actual.sum().backward()
    grads = [p.grad for p in on_device.parameters() if p.numel()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads), f"gradients on {device}"


@pytest.mark.parametrize(
    ("x_num", "x_cat", "error", "match"),
    [
        (torch.zeros(2, 2), torch.tensor([[0, 3], [1, 5]]), ValueError, r"x_cat\[1, 1\] = 5 is outside 0\.\.4"),
        (torch.zeros(2, 2), torch.tensor([[0, 3], [-1, 1]]), ValueError, r"x_cat\[1, 0\] = -1 .*cardinality 3"),
        (None, torch.tensor([[0, 3]]), ValueError, "2 x_num features, so x_num must be given"),
        (torch.zeros(2, 2), None, ValueError, "x_cat must be given"),
        (
            torch.zeros(2, 3),
            torch.tensor([[0, 3], [1, 1]]),
            ValueError,
            r"x_num must have shape \(B, 2\), got \(2, 3\)",
        ),
        (torch.zeros(3, 2), torch.tensor([[0, 3], [1, 1]]), ValueError, "x_num has 3 rows but x_cat has 2"),
        (torch.zeros(2, 2), torch.zeros(2, 2), TypeError, "x_cat must have an integer dtype"),
        (torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 3], [1, 1]]), TypeError, "x_num must have a floating"),
    ],
    ids=[
        "code-too-large",
        "negative-code",
        "missing-num",
        "missing-cat",
        "num-shape",
        "batch",
        "cat-dtype",
        "num-dtype",
    ],
)
def test_bad_inputs_raise_with_the_values(
    x_num: torch.Tensor | None, x_cat: torch.Tensor | None, error: type[Exception], match: str
) -> None:
    model = FTTransformer(_config(2, (3, 5), 2, 1))
    with pytest.raises(error, match=match):
        model(x_num, x_cat)


def test_features_of_an_absent_kind_are_refused() -> None:
    model = FTTransformer(_config(2, (), 2, 1))
    with pytest.raises(ValueError, match="no x_cat features, so x_cat must be None"):
        model(torch.zeros(1, 2), torch.zeros(1, 1, dtype=torch.long))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"n_num_features": 0, "cat_cardinalities": ()}, "at least one feature"),
        ({"cat_cardinalities": (3, 0)}, r"cardinality must be >= 1.*\(3, 0\)"),
        ({"d_block": 18, "n_heads": 4}, r"d_block \(18\) must be divisible by n_heads \(4\)"),
        ({"attention_dropout": 1.0}, "less than 1"),
        ({"ffn_d_hidden_multiplier": 0.001}, r"must be >= 1, got 0"),
    ],
)
def test_config_rejects_bad_fields(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        FTTransformerConfig(**({"n_num_features": 2} | fields))


def test_config_is_frozen() -> None:
    config = FTTransformerConfig(n_num_features=2)
    with pytest.raises(ValidationError):
        config.d_block = 64
    assert config.n_tokens == 3 and config.ffn_d_hidden == int(192 * 4 / 3)


def test_loader_refuses_what_it_cannot_copy() -> None:
    linformer = _reference(3, (), 2, 2, linformer_kv_compression_ratio=0.5, linformer_kv_compression_sharing="headwise")
    with pytest.raises(ValueError, match="Linformer"):
        load_rtdl_weights(FTTransformer(_config(3, (), 2, 2)), linformer)
    relu = _reference(3, (), 2, 2, ffn_activation="ReLU")
    with pytest.raises(ValueError, match="ReLU"):
        load_rtdl_weights(FTTransformer(_config(3, (), 2, 2)), relu)
    with pytest.raises(RuntimeError, match=r"Missing key.*blocks\.2\."):
        load_rtdl_weights(FTTransformer(_config(3, (), 2, 3)), _reference(3, (), 2, 2))
