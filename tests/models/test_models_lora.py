"""Tests for mlcraft.models.lora against Hugging Face peft (LoraConfig + get_peft_model) on tiny
random DistilBERT and BERT models: the same layers chosen, the same outputs once peft's lora_A /
lora_B are copied in, the same trainable counts, the same merged model; plus the initialisation,
dropout, gradients and an optimizer step that must leave the base weights alone."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from mlcraft.classroom.testing import assert_close
from mlcraft.models.lora import LoRALinear, apply_lora, count_parameters, merge_lora

pytestmark = [
    pytest.mark.usefixtures("isolate_torch"),
    pytest.mark.filterwarnings(
        "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
    ),  # peft 0.21 on transformers 5
]

R, ALPHA = 4, 8.0
# dtype -> (rtol, atol) of our outputs against peft's, same weights and inputs
PARITY = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-6, 1e-6)}
# model kind -> the names peft's examples use for the attention query and value projections
TARGETS = {"distilbert": ["q_lin", "v_lin"], "bert": ["query", "value"]}


def _base_model(kind: str) -> Any:
    """A tiny random transformers model with no dropout (eval and train give the same outputs)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=50,
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            max_position_embeddings=16,
            dropout=0.0,
            attention_dropout=0.0,
            seq_classif_dropout=0.0,
            num_labels=3,
            pad_token_id=0,
        )
        model = transformers.DistilBertForSequenceClassification(config)
    else:
        config = transformers.BertConfig(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=16,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model = transformers.BertModel(config)
    # Perturb every tensor: HF's zero biases, unit LayerNorms and 0.02-scale weights would make a
    # wrong or missing LoRA path hard to see in the outputs.
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model.eval()


def _peft_model(base: nn.Module, targets: list[str], dropout: float = 0.0, r: int = R, alpha: float = ALPHA) -> Any:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout)
    return peft.get_peft_model(copy.deepcopy(base), config)


def _randomise_peft_and_copy(peft_model: Any, ours: nn.Module, seed: int = 1) -> None:
    """Give peft's lora_B non-zero values (it starts at 0, which would hide a wrong B path) and copy
    peft's lora_A / lora_B into our layers of the same name."""
    gen = torch.Generator().manual_seed(seed)
    inner = peft_model.base_model.model
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, LoRALinear):
                theirs = inner.get_submodule(name)
                theirs.lora_B["default"].weight.copy_(
                    0.5 * torch.randn(theirs.lora_B["default"].weight.shape, generator=gen)
                )
                module.lora_A.copy_(theirs.lora_A["default"].weight)
                module.lora_B.copy_(theirs.lora_B["default"].weight)


def _output(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids, attention_mask=mask)
    result: torch.Tensor = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return result


def _inputs(b: int = 3, t: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(1, 50, (b, t), generator=gen)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 5:] = 0
    return ids, mask


# --------------------------------------------------------------------------- parity with peft


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["distilbert", "bert"])
def test_matches_peft(kind: str, dtype: torch.dtype) -> None:
    base = _base_model(kind).to(dtype)
    peft_model = _peft_model(base, TARGETS[kind]).eval()
    ours = copy.deepcopy(base)
    replaced = apply_lora(ours, TARGETS[kind], r=R, alpha=ALPHA)
    assert replaced == sorted(peft_model.targeted_module_names), "not the layers peft chose"
    assert len(replaced) == 4
    _randomise_peft_and_copy(peft_model, ours)
    ids, mask = _inputs()
    with torch.no_grad():
        expected, actual, plain = _output(peft_model, ids, mask), _output(ours, ids, mask), _output(base, ids, mask)
    assert (expected - plain).abs().max() > 1e-3, "the LoRA update should change the outputs"
    rtol, atol = PARITY[dtype]
    assert_close(actual, expected, rtol=rtol, atol=atol, msg=f"{kind}, {dtype}")
    trainable, total = count_parameters(ours)
    assert (trainable, total) == tuple(peft_model.get_nb_trainable_parameters())
    assert trainable == 4 * R * (32 + 32)  # four (32 -> 32) layers, r * (in + out) each


def test_merge_matches_unmerged_and_peft_merge_and_unload() -> None:
    base = _base_model("distilbert")
    peft_model = _peft_model(base, TARGETS["distilbert"]).eval()
    ours = copy.deepcopy(base)
    apply_lora(ours, TARGETS["distilbert"], r=R, alpha=ALPHA)
    _randomise_peft_and_copy(peft_model, ours)
    ids, mask = _inputs()
    with torch.no_grad():
        unmerged = _output(ours, ids, mask)
        merged_model = merge_lora(ours)
        merged = _output(merged_model, ids, mask)
        theirs = _output(peft_model.merge_and_unload(), ids, mask)
    assert merged_model is ours
    assert not any(isinstance(m, LoRALinear) for m in ours.modules())
    assert type(ours.get_submodule("distilbert.transformer.layer.0.attention.q_lin")) is nn.Linear
    assert_close(merged, unmerged, rtol=1e-5, atol=1e-6, msg="merged vs unmerged")
    assert_close(merged, theirs, rtol=1e-5, atol=1e-6, msg="merged vs peft merge_and_unload")


def test_merged_weight_is_w_plus_scaled_b_a() -> None:
    gen = torch.Generator().manual_seed(3)
    base = nn.Linear(7, 5).double()
    layer = LoRALinear(base, r=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(5, 3, generator=gen, dtype=torch.float64))
    merged = layer.merge()
    expected = base.weight.detach() + 2.0 * layer.lora_B.detach() @ layer.lora_A.detach()
    assert_close(merged.weight.detach(), expected, rtol=1e-12, atol=1e-12, msg="W + (alpha / r) B A")
    assert merged.bias is not None and base.bias is not None
    assert_close(merged.bias.detach(), base.bias.detach(), rtol=0.0, atol=0.0, msg="bias")
    assert not merged.weight.requires_grad  # the base was frozen
    x = torch.randn(4, 7, generator=gen, dtype=torch.float64)
    assert_close(merged(x), layer(x), rtol=1e-12, atol=1e-12, msg="merged forward")
    no_bias = merge_lora(LoRALinear(nn.Linear(3, 2, bias=False), r=1, alpha=1.0))
    assert isinstance(no_bias, nn.Linear) and no_bias.bias is None


# --------------------------------------------------------------------------- initialisation and dropout


def test_init_is_peft_recipe_and_starts_at_the_base_model() -> None:
    base = nn.Linear(20, 12)
    torch.manual_seed(7)
    layer = LoRALinear(base, r=R, alpha=ALPHA)
    torch.manual_seed(7)
    expected_a = torch.empty(R, 20)
    nn.init.kaiming_uniform_(expected_a, a=math.sqrt(5))  # peft's reset_lora_parameters
    assert_close(layer.lora_A.detach(), expected_a, rtol=0.0, atol=0.0, msg="lora_A initialisation")
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(20)
    assert torch.count_nonzero(layer.lora_B) == 0
    x = torch.randn(6, 20)
    assert_close(layer(x), base(x), rtol=0.0, atol=0.0, msg="B = 0: the adapted layer starts as the base")
    assert layer.scale == ALPHA / R and layer.lora_A.shape == (R, 20) and layer.lora_B.shape == (12, R)


def test_dropout_matches_peft_in_training_and_is_off_in_eval() -> None:
    base = _base_model("distilbert")
    peft_model = _peft_model(base, TARGETS["distilbert"], dropout=0.3)
    ours = copy.deepcopy(base)
    apply_lora(ours, TARGETS["distilbert"], r=R, alpha=ALPHA, dropout=0.3)
    _randomise_peft_and_copy(peft_model, ours)
    ids, mask = _inputs()
    peft_model.train()
    ours.train()
    torch.manual_seed(11)
    expected = _output(peft_model, ids, mask)
    torch.manual_seed(11)
    actual = _output(ours, ids, mask)
    assert_close(actual, expected, rtol=1e-6, atol=1e-6, msg="train mode, same dropout draws")
    peft_model.eval()
    ours.eval()
    with torch.no_grad():
        assert_close(_output(ours, ids, mask), _output(peft_model, ids, mask), rtol=1e-6, atol=1e-6, msg="eval mode")
        assert (actual - _output(ours, ids, mask)).abs().max() > 1e-4, "dropout should act in training"


def test_half_precision_layer_keeps_dtype() -> None:
    base = nn.Linear(8, 4).to(torch.bfloat16)
    layer = LoRALinear(base, r=2, alpha=4.0)
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.bfloat16
    with torch.no_grad():
        layer.lora_B.fill_(0.5)
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    out = layer(x)
    expected = (
        x.double() @ base.weight.double().T
        + base.bias.double()
        + 2.0 * (x.double() @ layer.lora_A.double().T) @ (layer.lora_B.double().T)
    )
    assert out.dtype == torch.bfloat16
    assert_close(out.double(), expected, rtol=2e-2, atol=2e-2, msg="bf16 forward vs float64")


# --------------------------------------------------------------------------- training


def test_only_lora_parameters_train_and_base_weights_stay() -> None:
    base = _base_model("distilbert")
    model = copy.deepcopy(base).train()
    apply_lora(model, TARGETS["distilbert"], r=R, alpha=ALPHA)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)  # every parameter handed over
    ids, mask = _inputs()
    for _ in range(2):  # B = 0 at first: A's gradient is 0 on the first step, not on the second
        loss = _output(model, ids, mask).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, param in model.named_parameters():
        is_lora = name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")
        assert param.requires_grad == is_lora, name
        assert (param.grad is not None) == is_lora, name
        changed = not torch.equal(param.detach(), before[name])
        assert changed == is_lora, f"{name}: changed={changed}"


# --------------------------------------------------------------------------- layer selection and checks


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_lin = nn.Linear(4, 4)
        self.xq_lin = nn.Linear(4, 4)  # ends with "q_lin" but not with ".q_lin": not chosen
        self.block = nn.ModuleDict({"q_lin": nn.Linear(4, 4), "other": nn.Linear(4, 2)})
        self.norm = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block["other"](self.norm(self.block["q_lin"](self.xq_lin(self.q_lin(x)))))
        return out


def test_suffix_rule_matches_peft_and_freezes_everything_else() -> None:
    toy = _Toy()
    theirs = _peft_model(toy, ["q_lin"], r=2, alpha=2.0)
    ours = copy.deepcopy(toy)
    replaced = apply_lora(ours, ["q_lin"], r=2, alpha=2.0)
    assert replaced == ["block.q_lin", "q_lin"] == sorted(theirs.targeted_module_names)
    assert count_parameters(ours) == tuple(theirs.get_nb_trainable_parameters())
    assert not any(p.requires_grad for name, p in ours.named_parameters() if "lora_" not in name)
    assert isinstance(ours.xq_lin, nn.Linear) and not isinstance(ours.xq_lin, LoRALinear)


def test_apply_lora_rejects_bad_arguments_and_leaves_the_model_alone() -> None:
    toy = _Toy()
    with pytest.raises(ValueError, match=r"no nn\.Linear matches target_modules=\['k_lin'\]"):
        apply_lora(toy, ["k_lin"], r=2, alpha=2.0)
    with pytest.raises(TypeError, match="sequence of module names"):
        apply_lora(toy, "q_lin", r=2, alpha=2.0)
    with pytest.raises(ValueError, match="r must be an integer >= 1, got 0"):
        apply_lora(toy, ["q_lin"], r=0, alpha=2.0)
    with pytest.raises(ValueError, match="alpha must be > 0, got -1"):
        apply_lora(toy, ["q_lin"], r=2, alpha=-1.0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1\.0"):
        apply_lora(toy, ["q_lin"], r=2, alpha=2.0, dropout=1.0)
    assert all(p.requires_grad for p in toy.parameters()), "a failed call must not freeze anything"
    assert not any(isinstance(m, LoRALinear) for m in toy.modules())
    with pytest.raises(TypeError, match=r"base must be an nn\.Linear, got LayerNorm"):
        LoRALinear(toy.norm, r=1, alpha=1.0)  # type: ignore[arg-type]
    apply_lora(toy, ["q_lin"], r=2, alpha=2.0)
    with pytest.raises(ValueError, match=r"no nn\.Linear matches"):  # already wrapped: nothing left to wrap
        apply_lora(toy, ["q_lin"], r=2, alpha=2.0)


def test_count_parameters_counts_tied_weights_once() -> None:
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    model = nn.Sequential(embedding, head)
    assert count_parameters(model) == (40, 40)
    embedding.weight.requires_grad_(False)
    assert count_parameters(model) == (0, 40)
    assert count_parameters(nn.Sequential()) == (0, 0)
